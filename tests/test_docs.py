"""Generated reference documents must match the code they describe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arms_reference_is_current():
    expected = load_script("gen_arms_doc").render()
    assert (REPO / "docs" / "arms.md").read_text() == expected, \
        "docs/arms.md is stale: run python scripts/gen_arms_doc.py"
