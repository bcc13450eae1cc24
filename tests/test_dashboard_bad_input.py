"""The real App on damaged telemetry: a telemetry.jsonl that is a directory used to kill the
first-read thread (IsADirectoryError) and leave the row empty; now the arm says why, the
reader keeps polling, and the arm is read once the file is whole."""

from __future__ import annotations

import asyncio
import time

from app.session import Session
from app.tui import FnotuiApp
from engine.study.arms import load_study
from tests.engine.test_reader_bad_input import write_run
from tests.slowstudy import write_slow_study


def test_a_directory_for_telemetry_is_named_on_the_arm_and_the_reader_lives_on(tmp_path):
    arms = write_slow_study(tmp_path) / "arms.toml"
    run = tmp_path / "runs" / "slow"
    (run / "telemetry.jsonl").mkdir(parents=True)
    study = load_study(arms, validate_models=False)
    app = FnotuiApp(Session.local(study, arms, poll_interval=0.05))

    async def until(pilot, condition, what):
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    def note() -> str:
        return app.snapshots[0].note if app.snapshots else ""

    async def main():
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "it is a directory" in note(), "the reason")
            assert note() == "cannot read telemetry.jsonl: it is a directory"
            assert app.snapshots[0].n_steps == 0
            (run / "telemetry.jsonl").rmdir()
            write_run(run)
            await until(pilot, lambda: app.snapshots[0].n_steps == 8, "the repaired run")
            assert note() == ""
            reader = [w for w in app.workers if w.group == "reader"]
            assert reader and reader[0].is_running

    asyncio.run(main())
