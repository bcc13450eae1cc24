"""Screenshots of the dashboard at 80x24 (and one per screen at 160x48) on the frozen fixture
studies (live polling off).

snap_compare only works from sync tests. A first run has no history and fails: read the HTML
report, then accept with ``pytest tests/app/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from tests.app.conftest import make_app, settle
from tests.app.studyfix import queue_arm
from tests.app.sweepfix import make_sweep_study

SMALL, LARGE = (80, 24), (160, 48)


def shot(snap_compare, arms_file, *steps, size=SMALL, then=None) -> bool:
    """The screen once the first read is shown and after each step (each followed by a pause
    and a settle); ``then``: a last wait of its own (a screen with a worker that never ends)."""

    async def ready(pilot):
        await settle(pilot)
        for step in steps:
            await step(pilot)
            await pilot.pause()
            await settle(pilot)
        if then is not None:
            await then(pilot)

    return snap_compare(make_app(arms_file), terminal_size=size, run_before=ready)


def press(*keys):
    async def step(pilot):
        await pilot.press(*keys)

    return step


def detail(arm: str):
    async def step(pilot):
        pilot.app.open_detail(arm)

    return step


def highlight(name: str):
    async def step(pilot):
        table = pilot.app.screen.table
        table.move_cursor(row=table.get_row_index(name), animate=False)

    return step


def test_main_screen_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file)


def test_detail_curves_of_a_collapsed_arm_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, detail("arm_collapse"))


def test_detail_reconstruction_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, detail("arm_ok"), press("4"))


def test_compare_two_arms_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, press("space", "space", "c"))


# -- issue 14: the states and panels a user must be able to read at 80x24 ------------------


def test_queued_arm_with_its_reason_80x24(snap_compare, study_file):
    queue_arm(
        study_file,
        "arm_idle",
        "queued for cpu (at most 1 per device); busy: arm_ok on cpu (study fixture, pid 4242), "
        "started 3 minutes ago; it starts when a slot frees up",
    )
    assert shot(snap_compare, study_file, highlight("arm_idle"))


def test_failed_arm_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, highlight("arm_failed"))


def test_metrics_panel_of_a_finished_arm_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, detail("arm_ok"), press("2"))


def test_help_overlay_80x24(snap_compare, study_file):
    assert shot(snap_compare, study_file, press("question_mark"))


# -- issue 11: one row per sweep group ---------------------------------------------------------


def test_sweep_groups_80x24(snap_compare, tmp_path):
    assert shot(snap_compare, make_sweep_study(tmp_path / "sweep"), press("g"))


def test_sweep_groups_160x48(snap_compare, tmp_path):
    assert shot(snap_compare, make_sweep_study(tmp_path / "sweep"), press("g"), size=LARGE)


# -- one per screen at 160x48 -----------------------------------------------------------------


def test_main_screen_160x48(snap_compare, study_file):
    assert shot(snap_compare, study_file, size=LARGE)


def test_detail_screen_160x48(snap_compare, study_file):
    assert shot(snap_compare, study_file, detail("arm_ok"), size=LARGE)


def test_compare_screen_160x48(snap_compare, study_file):
    assert shot(snap_compare, study_file, press("space", "space", "space", "c"), size=LARGE)


def test_help_screen_160x48(snap_compare, study_file):
    assert shot(snap_compare, study_file, press("question_mark"), size=LARGE)


def test_log_tail_screen_160x48(snap_compare, study_file):
    run_dir = study_file.parent / "runs" / "arm_failed"
    (run_dir / "run.log").write_text(
        "epoch 1/6 loss 0.41\nepoch 2/6 loss 0.35\nRuntimeError: boom\n", encoding="utf-8"
    )

    async def follow(pilot):
        await pilot.press("t")
        await pilot.pause(0.3)

    assert shot(snap_compare, study_file, highlight("arm_failed"), size=LARGE, then=follow)
