"""The study of the process-level tests (launch, stop, queue, remote, the dashboard in a
terminal): one arm, ``slow``, a tiny cnn at N 32 that trains an epoch in a fraction of a second
but has 400 of them, so it is still running whenever a test looks."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from tests.tiny import TINY_DATA, TINY_GENERATOR

SLOW_ARMS = f"""
[study]
name = "{{name}}"
output_dir = "runs"

[data]
{TINY_DATA}
train_stride = 8
test_stride = 8

[defaults]
fno_width = 4
{TINY_GENERATOR}
epochs = 400
batch_size = 8
infer_batch_size = 16

[arms.slow]
architecture = "cnn"
"""


def write_slow_study(folder: Path, name: str = "slow") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arms.toml").write_text(textwrap.dedent(SLOW_ARMS.format(name=name)))
    return folder


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
