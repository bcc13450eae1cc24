"""Loaded by every Python process a fast test starts (tests/conftest.py puts this folder first on
PYTHONPATH): an engine that starts training there fails at once, naming the test to mark slow.

Only armed when FNOTUI_TEST_FORBID_ENGINE holds the test's id. It wraps
``engine.training.train.train_arm`` when that module is first imported, and imports nothing
itself, so read-only commands stay as light as they are for users.
"""

from __future__ import annotations

import os
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder

TEST = os.environ.get("FNOTUI_TEST_FORBID_ENGINE")
TARGET = "engine.training.train"


class _WrapTrainArm(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)

            def train_arm(*args, **kwargs):
                raise RuntimeError(
                    f"{TEST} is not marked slow but started an engine: mark it "
                    f"@pytest.mark.slow (fast runs use -m 'not slow')"
                )

            module.train_arm = train_arm

        spec.loader.exec_module = exec_and_wrap
        return spec


if TEST:
    sys.meta_path.insert(0, _WrapTrainArm())
