"""The group view (g): one row per sweep group on a frozen sweep study (tests/app/sweepfix.py).

The statistics are the export's (engine/reporting/outcomes.py); these tests check that the
dashboard feeds them its live runs the way the export feeds its rows, and what a user sees.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from app.screens.compare import CompareScreen
from app.screens.detail import ArmDetailScreen
from app.sweep_groups import group_names, run_label
from app.widgets.group_table import GroupTable
from engine.runs.telemetry import TelemetryWriter
from engine.study.arms import load_study
from tests.app.conftest import drive, settle, wait_for
from tests.app.studyfix import T0, checked, epoch, header, step, write_status
from tests.app.sweepfix import ARM_A_GROUP_ROW, make_sweep_study

COLUMNS = ("group", "collapse", "verdicts", "runs", "val", "ssim")


@pytest.fixture
def sweep_file(tmp_path):
    return make_sweep_study(tmp_path / "sweep")


def row_text(table: GroupTable, name: str) -> tuple[str, ...]:
    return tuple(table.get_cell(name, column).plain for column in COLUMNS)


async def show_groups(pilot) -> GroupTable:
    await settle(pilot)
    await pilot.press("g")
    await pilot.pause()
    return pilot.app.screen.query_one("#groups", GroupTable)


def test_groups_leave_out_only_the_seed_and_keep_a_plain_arm_alone(sweep_file):
    study = load_study(sweep_file, validate_models=False)
    names = list(study.arms)
    assert group_names(names, study.points) == ["arm_a", "arm_b", "arm_b.lr-0.001", "arm_b.lr-0.01"]
    assert run_label("arm_a.seed-12", study.points) == "seed 12"
    assert run_label("arm_a", study.points) == "arm"


def test_g_shows_each_group_with_the_export_counting(sweep_file):
    async def check(pilot):
        app = pilot.app
        table = await show_groups(pilot)
        assert table.names() == ["arm_a", "arm_b", "arm_b.lr-0.001", "arm_b.lr-0.01"]
        # arm, seeds 11 and 12 settled (12 collapsed), seed 13 not started: not counted
        assert row_text(table, "arm_a") == ARM_A_GROUP_ROW
        assert row_text(table, "arm_b.lr-0.001")[1:3] == ("0/2 (0–66 %)", "✔ 2")
        # the failed run never trained: only the stopped, collapsed one counts
        assert row_text(table, "arm_b.lr-0.01")[1:5] == (
            "1/1 (21–100 %)",
            "✖ 1 collapsed ✖ 1 failed",
            "✘1 ■1",
            "1.2",
        )
        assert row_text(table, "arm_b") == ("arm_b", "0/0", "—", "○1", "—", "—")
        info = str(app.screen.query_one("#info").render())
        assert "collapsed 1/3 (95 % CI 6–79 %)" in info and "seed 12 ✖ collapsed" in info
        assert app.screen.selected_arms() == [
            "arm_a",
            "arm_a.seed-11",
            "arm_a.seed-12",
            "arm_a.seed-13",
        ]
        await pilot.press("g")  # back to one row per run
        await pilot.pause()
        assert not table.display and app.screen.table.id == "arms"
        assert app.screen.selected_arms() == ["arm_a"]

    drive(sweep_file, check, size=(160, 48))


def test_enter_on_a_group_compares_its_seeds_and_a_group_of_one_opens_its_run(sweep_file):
    async def check(pilot):
        app = pilot.app
        table = await show_groups(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.arms == ["arm_a", "arm_a.seed-11", "arm_a.seed-12", "arm_a.seed-13"]
        await settle(pilot)
        await pilot.press("escape", "down", "space", "c")  # both off in the group view
        await pilot.pause()
        assert app.screen.table is table and not app.screen.query_one("#arms").marked
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ArmDetailScreen) and app.screen.arm == "arm_b"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.table is table

    drive(sweep_file, check)


def test_filter_and_sort_act_on_the_groups(sweep_file):
    async def check(pilot):
        app = pilot.app
        table = await show_groups(pilot)
        await pilot.press("slash", "l", "r", "enter")
        await pilot.pause()
        assert table.names() == ["arm_b.lr-0.001", "arm_b.lr-0.01"]
        await pilot.press("escape", "o", "o")  # study order, name, collapsed (high first)
        await pilot.pause()
        assert table.names()[:2] == ["arm_b.lr-0.01", "arm_a"]
        assert "sort: collapsed" in str(app.screen.query_one("#info").border_title)

    drive(sweep_file, check)


def test_groups_follow_a_seed_as_it_runs_and_settles(sweep_file):
    run_dir = sweep_file.parent / "runs" / "arm_a.seed-13"
    here = {"pid": os.getpid(), "host": socket.gethostname()}

    async def check(pilot):
        table = await show_groups(pilot)
        writer = TelemetryWriter(run_dir / "telemetry.jsonl")
        try:
            write_status(run_dir, state="running", heartbeat=time.time(), **here)
            writer.write(header("arm_a.seed-13", epochs=1))
            for i in range(10):
                writer.write(step(i, 0.5, 1.0))
            await wait_for(pilot, lambda: row_text(table, "arm_a")[3] == "▶1 ✔3", what="run")
            assert row_text(table, "arm_a")[1] == "1/3 (6–79 %)"  # running: not counted
            writer.write(epoch(0, 0.05))
            writer.write(checked({"type": "status", "state": "finished", "exit_code": 0, "t": T0}))
        finally:
            writer.close()
        write_status(run_dir, state="finished", exit_code=0, epoch=4, epochs=1, **here)
        await wait_for(pilot, lambda: row_text(table, "arm_a")[1] == "1/4 (5–70 %)", what="end")
        assert row_text(table, "arm_a")[2:5] == ("✔ 3 ✖ 1", "✔4", "0.15 (0.05–0.8)")

    drive(sweep_file, check, live=True, poll_interval=0.05, size=(160, 48))


def test_a_group_whose_runs_did_not_change_is_the_same_row(sweep_file):
    from app.sweep_groups import group_rows
    from engine.live.runstore import RunStore
    from tests.app.studyfix import queue_arm

    study = load_study(sweep_file, validate_models=False)
    store = RunStore.from_study(study)
    store.poll()
    first = {g.name: g for g in group_rows(store.snapshots(), study.points)}
    queue_arm(sweep_file, "arm_a.seed-13", "waiting for a device slot")
    store.poll()
    again = {g.name: g for g in group_rows(store.snapshots(), study.points, first)}
    assert again["arm_b.lr-0.001"] is first["arm_b.lr-0.001"]  # nothing new: not recomputed
    assert again["arm_a"] is not first["arm_a"]
    assert again["arm_a"].outcome["states"] == {"finished": 3, "queued": 1}
