"""Out of memory is an outcome: a real engine under an address-space cap (RLIMIT_AS, set in the
child) ends as ``oom`` with the failed allocation and the cap in status.json and the telemetry;
without --force, the same arm is refused before anything is written."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.runs.status import FINAL_STATES, read_status, run_state
from engine.runs.telemetry import iter_records, load_records
from engine.scoring.verdict import classify_run
from tests.tiny import TINY_DATA, TINY_GENERATOR

REPO = Path(__file__).resolve().parents[1]
# Room for the interpreter, torch and a tiny cnn (they train under 3 GiB of address space, the
# first test checks it), not for a hybrid generator 1,024 channels wide.
CAP = 3 << 30

ARMS = f"""
[study]
name = "oom"
output_dir = "runs"

[data]
{TINY_DATA}
train_stride = 8
test_stride = 8

[defaults]
{TINY_GENERATOR}
fno_width = 4
epochs = 1
batch_size = 8
infer_batch_size = 16

[arms.small]
architecture = "cnn"

[arms.wide]
architecture = "hybrid"
fno_width = 1024
"""


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def cli(study: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "--arms", str(study / "arms.toml"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_cap_address_space,
        env={**os.environ, "XDG_CACHE_HOME": str(study / "xdg-cache")},
    )


@pytest.fixture()
def study(tmp_path) -> Path:
    (tmp_path / "arms.toml").write_text(textwrap.dedent(ARMS))
    return tmp_path


@pytest.mark.slow  # starts real engines
def test_an_engine_out_of_memory_ends_oom_with_the_numbers(study):
    small = cli(study, "run", "small", "--device", "cpu")
    assert small.returncode == 0, small.stderr  # the cap leaves room for a run that fits

    out = cli(study, "run", "wide", "--device", "cpu", "--force")
    assert out.returncode == 1, out.stderr
    assert "ran out of memory" in out.stderr
    run = study / "runs" / "wide"
    assert run_state(run) == "oom" and "oom" in FINAL_STATES
    status = read_status(run)
    assert status["state"] == "oom" and status["exit_code"] == 1
    assert "can't allocate memory" in status["error"]
    # The allocator's message names the size; the capacity is the cap this process lived under.
    assert status["oom_bytes_requested"] > 0
    assert str(status["oom_bytes_requested"]) in status["error"]
    assert status["device_capacity_bytes"] == CAP
    last = list(iter_records(run / "telemetry.jsonl"))[-1]
    assert last["type"] == "status" and last["state"] == "oom"
    assert last["oom_bytes_requested"] == status["oom_bytes_requested"]
    assert last["device_capacity_bytes"] == CAP
    # It did not train: the verdict says failed, with the reason, never "incomplete" or healthy.
    verdict = classify_run(load_records(run / "telemetry.jsonl"), run_state(run))
    assert verdict.label == "failed" and "out of memory" in verdict.detail


@pytest.mark.slow  # traces the generator in a child process (seconds)
def test_an_arm_estimated_above_the_memory_is_refused_and_nothing_is_written(study):
    out = cli(study, "run", "wide", "--device", "cpu")
    assert out.returncode == 2, out.stderr
    assert "needs an estimated" in out.stderr and "--force" in out.stderr
    assert "3.0 GiB of host memory" in out.stderr
    assert not (study / "runs").exists()
    # The estimate was cached: the list shows it without tracing again.
    listed = cli(study, "list")
    assert listed.returncode == 0
    wide = next(line for line in listed.stdout.splitlines() if line.strip().startswith("wide"))
    assert "memory ~" in wide and "GiB at batch 8" in wide
    cache = list((study / "xdg-cache" / "fnotui" / "memory").glob("*.json"))
    assert {json.loads(p.read_text())["batch_size"] for p in cache} == {8}
