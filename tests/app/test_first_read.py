"""The first read of a study shown as it goes: placeholder rows from status.json, then each
run's true row as its run is read (engine/live/runstore.py, app/tui.py).

The store's first read is held run by run at ``RunStore.before_read`` (no sleeps): a run is
read only once the test lets it through, so every frame in between is seen for certain.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.widgets.arm_table import ArmTable
from app.widgets.group_table import GroupTable
from engine.live import runstore
from engine.live.runstore import RunStore
from engine.study.arms import load_study
from tests.app.conftest import make_app, settle, wait_for
from tests.app.sweepfix import ARM_A_GROUP_ROW, EPOCHS, make_sweep_study, records, write_run

GROUP_COLUMNS = ("group", "collapse", "verdicts", "runs", "val", "ssim")
RUN_COLUMNS = ("state", "epoch", "loss", "eta", "val", "spark_loss", "verdict")


@pytest.fixture
def sweep_file(tmp_path):
    return make_sweep_study(tmp_path / "sweep")


class Gate:
    """``before_read`` that lets a run be read only once ``release`` names it."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def __call__(self, name: str) -> None:
        # bounded: a failing test must not leave reader threads hanging for ever
        assert self._event(name).wait(30), f"{name} never released"

    def release(self, *names: str) -> None:
        for name in names:
            self._event(name).set()


def cells(table, name: str, columns) -> tuple[str, ...]:
    return tuple(table.get_cell(name, c).plain for c in columns)


def test_rows_show_reading_until_their_run_is_read_then_the_true_values(sweep_file, monkeypatch):
    # One reading thread: it waits at the gate on the first run in line (the table's first
    # row, arm_a), so no other run is read until the test says.
    monkeypatch.setattr(runstore, "FIRST_READ_THREADS", 1)
    notes: list = []
    settled_rows: dict[str, tuple] = {}
    early_rows: dict[str, tuple] = {}

    async def main():
        app = make_app(sweep_file)
        gate = Gate()
        app.store.before_read = gate
        names = list(app.store.arms)
        async with app.run_test(size=(100, 30), message_hook=notes.append) as pilot:
            table = app.screen.query_one(ArmTable)
            await wait_for(pilot, lambda: table.row_count == len(names), what="placeholder rows")
            assert not app.loaded.is_set()
            # Name, state and epoch from status.json; every telemetry cell says so, and no
            # verdict ("✔ finished" would pass for "✔ healthy": the glyph is ◌).
            assert cells(table, "arm_a.seed-12", RUN_COLUMNS) == (
                "◌ finished",
                "2/4",
                "reading",
                "—",  # not running: no ETA, which is true without the telemetry
                "reading…",
                "reading…",
                "reading…",
            )
            assert cells(table, "arm_a.seed-13", ("state", "loss")) == ("◌ not started", "reading")
            for name in names:
                assert "healthy" not in table.get_cell(name, "state").plain
            info = str(app.screen.query_one("#info").render())
            assert "reading… its telemetry" in info and "healthy" not in info

            # The group view has no statistics for a group with runs not read.
            await pilot.press("g")
            groups = app.screen.query_one("#groups", GroupTable)
            await wait_for(pilot, lambda: groups.row_count == 4, what="group rows")
            assert cells(groups, "arm_a", GROUP_COLUMNS) == (
                "arm_a",
                "… 0 of 4 read",
                "reading…",
                "✔3 ○1",  # states: status.json's
                "reading…",
                "reading…",
            )
            # One run read: its group says how many, still no fraction.
            gate.release("arm_a")
            await wait_for(
                pilot,
                lambda: groups.get_cell("arm_a", "collapse").plain == "… 1 of 4 read",
                what="one run of arm_a read",
            )
            group_info = str(app.screen.query_one("#info").render())
            assert "1 of 4 read" in group_info and "CI" not in group_info
            await pilot.press("g")
            await pilot.pause()
            # its row is whole; the others still wait
            early_rows["arm_a"] = cells(table, "arm_a", RUN_COLUMNS)
            assert "reading" not in " ".join(early_rows["arm_a"])
            assert table.get_cell("arm_a.seed-11", "loss").plain == "reading"

            gate.release(*names)
            await settle(pilot)
            for name in names:
                settled_rows[name] = cells(table, name, RUN_COLUMNS)
            await pilot.press("g")
            await pilot.pause()
            # the same statistics as a study read in one go (tests/app/test_groups.py)
            assert cells(groups, "arm_a", GROUP_COLUMNS) == ARM_A_GROUP_ROW

    asyncio.run(main())
    # The row shown as soon as its run was read is the settled row, not a partial one.
    assert early_rows["arm_a"] == settled_rows["arm_a"]
    assert settled_rows["arm_a"][0] == "✔ healthy"
    assert settled_rows["arm_a.seed-12"][0].startswith("✖ collapsed")
    assert not any("reading" in " ".join(row) for row in settled_rows.values())
    # Alarms that were there before the dashboard started are not toasted as they are read.
    assert not [n for n in notes if "collapse alarm" in str(getattr(n, "notification", ""))]


def test_the_first_read_reads_the_prioritized_runs_first(sweep_file, monkeypatch):
    monkeypatch.setattr(runstore, "FIRST_READ_THREADS", 1)
    store = RunStore.from_study(load_study(sweep_file, validate_models=False))
    order: list[str] = []
    loaded_before: list[int] = []

    def record(name: str) -> None:
        order.append(name)
        loaded_before.append(sum(s.loaded for s in store.snapshots()))

    store.before_read = record
    store.prioritize(["arm_b.lr-0.01.seed-22", "arm_a.seed-12", "not_a_run"])
    assert store.poll()
    assert order[:2] == ["arm_b.lr-0.01.seed-22", "arm_a.seed-12"]
    assert sorted(order) == sorted(store.arms)  # every run once
    # every row was published (as a placeholder) before the first run was read, and each
    # true row as soon as its run was
    assert len(store.snapshots()) == len(store.arms)
    assert loaded_before == list(range(len(order)))
    assert all(s.loaded for s in store.snapshots()) and store.unread == 0


def test_a_run_discovered_after_the_first_read_shows_its_values(sweep_file, monkeypatch):
    monkeypatch.setattr(runstore, "DISCOVER_EVERY_S", 0.0)
    store = RunStore.from_study(load_study(sweep_file, validate_models=False))
    store.poll()
    runs = store.output_dir
    write_run(runs, "late_run", records("late_run", 1.0), state="finished", exit_code=0, epoch=4)
    assert store.poll()
    late = next(s for s in store.snapshots() if s.name == "late_run")
    assert late.loaded and late.epochs_done == EPOCHS and late.last_loss is not None
