"""The info panel shows an arm's memory estimate before it runs, from the estimate cache that
fnotui list, run, launch and sweep fill (the dashboard itself never traces: no torch in it)."""

from __future__ import annotations

from engine.study.arms import load_study
from engine.training.memory_check import estimates, fmt_bytes
from tests.app.conftest import drive


def test_a_not_started_arm_shows_its_cached_estimate(study_file, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    study = load_study(study_file, validate_models=False)
    idle = estimates({"arm_idle": study.arms["arm_idle"]})["arm_idle"]  # traced in a child
    assert not isinstance(idle, str), idle

    async def check(pilot):
        app = pilot.app
        table = app.screen.table
        table.move_cursor(row=table.get_row_index("arm_idle"), animate=False)
        await pilot.pause()
        info = str(app.screen.query_one("#info").render())
        assert f"memory ~{fmt_bytes(idle.total)} at batch 8" in info

    drive(study_file, check)


def test_an_arm_without_an_estimate_says_how_to_get_one(study_file, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))

    async def check(pilot):
        table = pilot.app.screen.table
        table.move_cursor(row=table.get_row_index("arm_idle"), animate=False)
        await pilot.pause()
        info = str(pilot.app.screen.query_one("#info").render())
        assert "memory not estimated yet (fnotui list does it)" in info

    drive(study_file, check)


def test_until_the_cache_is_read_the_panel_says_so_not_that_there_is_no_estimate(study_file):
    from app.screens.dashboard import info_text

    async def check(pilot):
        idle = {s.name: s for s in pilot.app.snapshots}["arm_idle"]
        waiting = info_text(idle, None, memory_read=False).plain
        assert "memory estimate reading" in waiting and "not estimated" not in waiting
        assert "not estimated yet" in info_text(idle, None, memory_read=True).plain
        assert "memory ~1 GiB" in info_text(idle, "~1 GiB", memory_read=False).plain

    drive(study_file, check)
