"""kill -9 mid-epoch, resume, and finish with exactly the results of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.runs.status import run_state
from engine.runs.telemetry import iter_records, resolve_segments
from tests.cli import fnotui, fnotui_argv
from tests.tiny import tiny_study_toml

REPO = Path(__file__).resolve().parents[1]

WARM = {
    "architecture": "stable_hybrid",
    "scheduler": "WarmupCosine",
    "lr": 2e-3,
    "warmup_epochs": 2,
    "grad_clip": 1.0,
}
ARMS = tiny_study_toml(
    "resume",
    {"warm": WARM},
    data={"train_stride": 4, "set_phi": True},
    epochs=10,
    infer_batch_size=16,
    seed=11,
)


def run(args, cwd) -> subprocess.CompletedProcess:
    return fnotui(*args, cwd=cwd)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "arms.toml").write_text(ARMS)
    return root


@pytest.fixture(scope="module")
def reference(study) -> Path:
    out = run(["--arms", "arms.toml", "--run", "warm", "--out", "ref"], study)
    assert out.returncode == 0, out.stderr
    return study / "ref" / "warm"


def steps_written(telemetry: Path) -> int:
    if not telemetry.exists():
        return 0
    return telemetry.read_bytes().count(b'"type":"step"')


@pytest.mark.slow  # starts a real engine
def test_kill_9_mid_epoch_then_resume_equals_uninterrupted(study, reference):
    rng = random.Random()
    run_dir = study / "killed" / "warm"
    proc = subprocess.Popen(
        fnotui_argv("--arms", "arms.toml", "--run", "warm", "--out", "killed"),
        cwd=study,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill at a random step after the first checkpoint: 2 to 7 epochs in, mid-epoch.
    steps_per_epoch = 11  # 81 patterns at batch 8
    target = rng.randint(2 * steps_per_epoch + 1, 7 * steps_per_epoch - 1)
    if target % steps_per_epoch == 0:
        target += 1
    deadline = time.time() + 120
    while steps_written(run_dir / "telemetry.jsonl") < target and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert run_state(run_dir) == "crashed"  # a dead run never looks alive
    assert (run_dir / "checkpoint.pt").is_file()

    refused = run(["--arms", "arms.toml", "--run", "warm", "--out", "killed"], study)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # no silent mixing

    resumed = run(["--arms", "arms.toml", "--run", "warm", "--out", "killed", "--resume"], study)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout

    for name in ("history.json", "metrics.json"):
        assert json.loads((run_dir / name).read_text()) == json.loads(
            (reference / name).read_text()
        ), name

    records = resolve_segments(iter_records(run_dir / "telemetry.jsonl"))
    ref_records = list(iter_records(reference / "telemetry.jsonl"))
    kinds = [r["type"] for r in records]
    assert kinds.count("header") == 1 and kinds.count("segment") == 1
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(len(steps)))  # superseded partial epoch dropped
    losses = [r["loss"] for r in records if r["type"] == "step"]
    assert losses == [r["loss"] for r in ref_records if r["type"] == "step"]


@pytest.mark.slow  # starts a real engine
def test_resume_of_a_finished_run_is_refused(study, reference):
    out = run(["--arms", "arms.toml", "--run", "warm", "--out", "ref", "--resume"], study)
    assert out.returncode == 2 and "already finished" in out.stderr


@pytest.mark.slow  # starts a real engine
def test_resume_with_changed_config_is_refused(study, reference):
    out = run(["--arms", "arms.toml", "--run", "warm", "--out", "ref2", "--set", "epochs=3"], study)
    assert out.returncode == 0
    (study / "ref2" / "warm" / "status.json").write_text('{"state": "killed"}')
    out = run(
        ["--arms", "arms.toml", "--run", "warm", "--out", "ref2", "--resume", "--set", "lr=1e-3"],
        study,
    )
    assert out.returncode == 2 and "config changed" in out.stderr and "train.lr" in out.stderr


@pytest.mark.slow  # starts a real engine
def test_restart_archives_the_earlier_run(study, reference):
    out = run(["--arms", "arms.toml", "--run", "warm", "--out", "ref3", "--set", "epochs=1"], study)
    assert out.returncode == 0
    out = run(
        ["--arms", "arms.toml", "--run", "warm", "--out", "ref3", "--set", "epochs=1", "--restart"],
        study,
    )
    assert out.returncode == 0, out.stderr
    archived = list((study / "ref3" / ".archive").iterdir())
    assert len(archived) == 1 and (archived[0] / "telemetry.jsonl").is_file()
