"""The dashboard as a user runs it: a real process in a real pseudo-terminal, keys typed into
it. The engine it launches must outlive it however it ends (kill -9, a hang-up as when an ssh
session drops), and a dashboard opened after the engine was killed -9 must say crashed, then
resume it with the run key."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.runs.status import run_state
from tests.slowstudy import epochs_in, wait_for, write_slow_study
from tests.terminal import Terminal


def engine_pid(run: Path) -> int:
    return json.loads((run / "status.json").read_text())["pid"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture()
def terminals():
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.kill()


def stop_engine(run: Path) -> None:
    try:
        pid = engine_pid(run)
    except (OSError, ValueError, KeyError):
        return
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_engine_outlives_the_dashboard_and_a_crash_shows_then_resumes(tmp_path, terminals):
    write_slow_study(tmp_path, "tty")
    run = tmp_path / "runs" / "slow"
    try:
        _scenario(tmp_path, run, terminals)
    finally:
        stop_engine(run)


def _scenario(tmp_path: Path, run: Path, terminals: list) -> None:

    # 1. Launch from the dashboard, then kill -9 the dashboard: the engine trains on.
    tui = Terminal(tmp_path)
    terminals.append(tui)
    tui.wait_text("not started")
    tui.press("r")
    wait_for(lambda: run_state(run) == "running" and epochs_in(run) >= 1, what="the launch")
    tui.wait_text("running")
    pid = engine_pid(run)
    os.kill(tui.proc.pid, signal.SIGKILL)
    tui.proc.wait(10)
    seen = epochs_in(run)
    wait_for(lambda: epochs_in(run) >= seen + 2, what="epochs after the dashboard died")
    assert alive(pid) and run_state(run) == "running"

    # 2. A second dashboard loses its terminal (SIGHUP, as when ssh drops): it exits by
    #    itself, the engine trains on.
    tui = Terminal(tmp_path)
    terminals.append(tui)
    tui.wait_text("running")
    tui.hang_up()
    assert tui.proc.wait(20) is not None
    seen = epochs_in(run)
    wait_for(lambda: epochs_in(run) >= seen + 2, what="epochs after the hang-up")
    assert alive(pid)

    # 3. kill -9 the engine (after a checkpoint): a new dashboard says crashed, never running.
    wait_for(lambda: (run / "checkpoint.pt").is_file(), what="a checkpoint")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), timeout=10, what="the engine to die")
    tui = Terminal(tmp_path)
    terminals.append(tui)
    tui.wait_text("crashed")
    assert run_state(run) == "crashed"

    # 4. The run key on a crashed arm offers Resume; choosing it continues the run.
    done_before = epochs_in(run)
    tui.press("r")
    tui.wait_text("Resume")
    tui.press("r")
    wait_for(
        lambda: run_state(run) == "running" and engine_pid(run) != pid, what="the resumed engine"
    )
    wait_for(lambda: epochs_in(run) > done_before, what="an epoch after resuming")
    assert b'"type":"segment"' in (run / "telemetry.jsonl").read_bytes()
    tui.press("q")
    assert tui.proc.wait(20) == 0
    new_pid = engine_pid(run)
    assert alive(new_pid)  # quitting the dashboard leaves the engine alone, too
    os.kill(new_pid, signal.SIGTERM)
    wait_for(lambda: run_state(run) == "killed", what="the final stop")
