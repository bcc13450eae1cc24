"""Launching from the dashboard starts a real, detached engine that outlives the TUI; an arm
that already has a run is only resumed or restarted after asking."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from app.screens.choice import ChoiceScreen
from app.widgets.arm_table import ArmTable
from engine.control.launch import LaunchError, engine_command, stop_run
from engine.runs.status import read_status, run_state
from tests.app.conftest import make_app, settle, wait_for


def select(app, arm: str) -> None:
    table = app.screen.query_one(ArmTable)
    table.move_cursor(row=table.get_row_index(arm))


@pytest.mark.slow
def test_run_key_starts_a_detached_engine_that_outlives_the_tui(study_file):
    run_dir = study_file.parent / "runs" / "arm_idle"
    pids = []

    async def main():
        app = make_app(study_file, live=True)
        async with app.run_test() as pilot:
            await settle(pilot)
            select(app, "arm_idle")
            await pilot.press("r")
            await wait_for(pilot, lambda: app.control.launched, what="the launch")
            pids.extend(app.control.launched)
            # the engine writes its own status.json as soon as it runs
            await wait_for(
                pilot,
                lambda: (read_status(run_dir) or {}).get("pid") == pids[0],
                timeout=60,
                what="the engine's status.json",
            )

    asyncio.run(main())
    pid = pids[0]
    try:
        assert os.getsid(pid) != os.getsid(0)  # its own session: no SIGHUP from our terminal
        os.kill(pid, 0)  # the TUI has exited; the engine has not
        deadline = time.monotonic() + 60
        while run_state(run_dir) == "running":
            try:
                stop_run(run_dir)
                break
            except LaunchError:  # finished between the two checks
                break
        while time.monotonic() < deadline and run_state(run_dir) == "running":
            time.sleep(0.2)
        assert run_state(run_dir) in ("killed", "finished")
        assert (run_dir / "telemetry.jsonl").exists() and (run_dir / "run.log").exists()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_run_key_on_an_arm_with_a_run_asks_resume_or_restart(study_file):
    async def main():
        app = make_app(study_file)
        async with app.run_test() as pilot:
            await settle(pilot)
            select(app, "arm_failed")
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, ChoiceScreen)
            labels = [c[1] for c in app.screen.choices]
            assert labels == ["Resume", "Restart", "Cancel"]
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ChoiceScreen)
            select(app, "arm_ok")  # finished: restart only
            await pilot.press("r")
            await pilot.pause()
            assert [c[1] for c in app.screen.choices] == ["Restart", "Cancel"]
            await pilot.press("n")
            await pilot.pause()
            assert app.control.launched == {}

    asyncio.run(main())


def test_engine_command_passes_profile_overrides_and_mode(tmp_path):
    cmd = engine_command(
        tmp_path / "arms.toml", "a", tmp_path / "out", "quick", "cpu", "resume", ["epochs=2"]
    )
    assert cmd[1:3] == ["-m", "app.cli"]
    assert cmd[cmd.index("--run") + 1] == "a" and cmd[cmd.index("--profile") + 1] == "quick"
    assert cmd[cmd.index("--set") + 1] == "epochs=2" and cmd[-1] == "--resume"
    with pytest.raises(ValueError):
        engine_command(tmp_path / "arms.toml", "a", None, None, "cpu", "sideways")


def test_stop_run_refuses_arms_that_are_not_running_here(study_file, tmp_path):
    from tests.app.studyfix import write_status

    runs = study_file.parent / "runs"
    with pytest.raises(LaunchError, match="not been started"):
        stop_run(runs / "arm_idle")
    with pytest.raises(LaunchError, match="not running"):
        stop_run(runs / "arm_ok")
    write_status(runs / "arm_stale", state="running", host="elsewhere", pid=1, heartbeat=0)
    with pytest.raises(LaunchError, match="elsewhere"):
        stop_run(runs / "arm_stale")
