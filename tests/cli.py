"""Running the ``fnotui`` command line the way a user does: a fresh Python process of this
interpreter, output captured as text, unbuffered so a killed run's last lines are there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fnotui_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def fnotui(*args: str, cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kw.pop("env", {})}
    return subprocess.run(
        fnotui_argv(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw
    )


def sets(*overrides: str) -> list[str]:
    """``--set`` before each ``KEY=VALUE``."""
    return [word for kv in overrides for word in ("--set", kv)]
