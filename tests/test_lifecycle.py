"""Detached launch, graceful stop, and racing launches: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runs.status import run_state
from engine.runs.telemetry import ReadStats, iter_records
from tests.slowstudy import wait_for, write_slow_study

REPO = Path(__file__).resolve().parents[1]


def cli(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture()
def study(tmp_path) -> Path:
    return write_slow_study(tmp_path, "life")


def epochs_done(run: Path) -> int:
    try:
        return len(json.loads((run / "history.json").read_text())["val_loss"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


@pytest.mark.slow  # starts a real engine
def test_launch_detaches_then_stop_saves_and_records_killed(study):
    out = cli("launch", "slow", cwd=study)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.split("pid ")[1].split(",")[0])
    run = study / "runs" / "slow"
    assert os.getsid(pid) != os.getsid(0)  # its own session: survives our shell and an ssh hang-up
    wait_for(lambda: epochs_done(run) >= 1, what="a first epoch")
    assert run_state(run) == "running"

    again = cli("launch", "slow", cwd=study)
    assert again.returncode == 2 and "already running" in again.stderr

    stop = cli("stop", "slow", cwd=study)
    assert stop.returncode == 0, stop.stderr
    wait_for(lambda: run_state(run) == "killed", what="the killed status")
    status = json.loads((run / "status.json").read_text())
    assert status["exit_code"] == 130 and (run / "checkpoint.pt").is_file()
    assert "SIGTERM received" in (run / "run.log").read_text()


@pytest.mark.slow  # starts a real engine
def test_launched_arms_queue_one_per_device_in_order(study):
    arms = study / "arms.toml"
    arms.write_text(arms.read_text() + '\n[arms.second]\narchitecture = "cnn"\n')
    out = cli("launch", "slow", "second", "--device", "cpu", cwd=study)
    assert out.returncode == 0, out.stderr
    assert "at most 1 engine(s) at a time on each of cpu" in out.stdout
    first, second = study / "runs" / "slow", study / "runs" / "second"
    wait_for(
        lambda: run_state(first) == "running" and run_state(second) == "queued",
        what="slow running, second queued",
    )
    queued = json.loads((second / "status.json").read_text())
    assert "busy: slow on cpu" in queued["queue"]
    assert not (second / "telemetry.jsonl").exists()  # nothing trains while queued

    again = cli("launch", "second", cwd=study)  # queued counts as taken
    assert again.returncode == 2 and "already queued" in again.stderr

    # Stopped while queued: it leaves the queue and the arm is as it was (never started).
    assert cli("stop", "second", cwd=study).returncode == 0
    wait_for(lambda: run_state(second) == "not started", what="second dequeued")
    assert "left the queue (SIGTERM); nothing was trained" in (second / "run.log").read_text()

    # Queued again, it starts as soon as the first arm stops, on the slot it left.
    assert cli("launch", "second", "--device", "cpu", cwd=study).returncode == 0
    wait_for(lambda: run_state(second) == "queued", what="second queued again")
    time.sleep(1.0)
    assert cli("stop", "slow", cwd=study).returncode == 0
    wait_for(
        lambda: run_state(second) == "running" and epochs_done(second) >= 1, what="second training"
    )
    header = next(iter_records(second / "telemetry.jsonl"))
    assert header["queue"]["device"] == "cpu" and header["queue"]["slot"] == 0
    assert header["queue"]["max_parallel"] == 1 and header["queue"]["waited_s"] > 0.5
    assert run_state(first) == "killed"
    assert cli("stop", "second", cwd=study).returncode == 0
    wait_for(lambda: run_state(second) == "killed", what="second stopped")


@pytest.mark.slow  # starts a real engine
def test_launch_reports_an_engine_that_refuses_at_once(study):
    assert (
        cli("--arms", "arms.toml", "--run", "slow", "--set", "epochs=1", cwd=study).returncode == 0
    )
    out = cli("launch", "slow", "--set", "epochs=1", cwd=study)  # neither --resume nor --restart
    assert out.returncode == 2
    assert "exited with code 2" in out.stderr and "already holds a run" in out.stderr
    assert run_state(study / "runs" / "slow") == "finished"  # the finished run is untouched


def test_stop_of_an_arm_that_is_not_running_is_refused(study):
    out = cli("stop", "slow", cwd=study)
    assert out.returncode == 2 and "slow" in out.stderr


@pytest.mark.slow  # starts a real engine
def test_two_racing_launches_of_one_arm_train_exactly_once(study):
    args = [
        sys.executable,
        "-m",
        "app.cli",
        "--arms",
        "arms.toml",
        "--run",
        "slow",
        "--set",
        "epochs=2",
    ]
    procs = [
        subprocess.Popen(args, cwd=study, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    codes = sorted(code for _, _, code in results)
    assert codes == [0, 2], results
    loser_err = next(err for _, err, code in results if code == 2)
    assert "in use by another running engine" in loser_err or "already holds a run" in loser_err
    headers = [
        r
        for r in iter_records(study / "runs" / "slow" / "telemetry.jsonl")
        if r["type"] == "header"
    ]
    assert len(headers) == 1


@pytest.mark.slow  # starts a real engine
def test_write_error_fails_the_run_cleanly_and_keeps_telemetry_whole(study):
    # Build the dataset cache first, without a limit, so the limit bites while training.
    first = cli("--arms", "arms.toml", "--run", "slow", "--set", "epochs=1", cwd=study)
    assert first.returncode == 0, first.stderr
    limit = 48 * 1024  # bytes per file: a few epochs of telemetry, then EFBIG ("disk full")

    def limit_file_size():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "--arms", "arms.toml", "--run", "slow", "--restart"],
        cwd=study,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_file_size,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "File too large" in proc.stderr or "too large" in proc.stderr.lower()
    run = study / "runs" / "slow"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 1 and status["error"]
    data = (run / "telemetry.jsonl").read_bytes()
    assert data.endswith(b"\n")  # no half-written record left behind
    stats = ReadStats()
    records = list(iter_records(run / "telemetry.jsonl", stats))
    assert stats.bad_lines == 0 and not stats.partial_tail
    assert records[0]["type"] == "header" and any(r["type"] == "step" for r in records)
