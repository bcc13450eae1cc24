"""The study of the process-level tests (launch, stop, queue, remote, the dashboard in a
terminal): one arm, ``slow``, a tiny cnn at N 32 that trains an epoch in a fraction of a second
but has 400 of them, so it is still running whenever a test looks."""

from __future__ import annotations

import time
from pathlib import Path

from tests.tiny import tiny_study


def write_slow_study(folder: Path, name: str = "slow", **more_arms: dict) -> Path:
    """The study in ``folder``; ``more_arms`` (name -> knobs) beside the slow one."""
    arms = {"slow": {"architecture": "cnn"}, **more_arms}
    return tiny_study(folder, name, arms, epochs=400, infer_batch_size=16)


def wait_for(predicate, timeout: float = 90, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def epochs_in(run: Path) -> int:
    """Epoch records in the arm's telemetry so far."""
    tel = run / "telemetry.jsonl"
    return tel.read_bytes().count(b'"type":"epoch"') if tel.exists() else 0
