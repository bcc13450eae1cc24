"""Screenshots of the dashboard at 80x24 on the frozen fixture study (live polling off).

snap_compare only works from sync tests. A first run has no history and fails: read the HTML
report, then accept with ``pytest tests/app/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from tests.app.conftest import make_app, settle


def test_main_screen_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_detail_curves_of_a_collapsed_arm_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.open_detail("arm_collapse")
        await pilot.pause()
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_detail_reconstruction_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.open_detail("arm_ok")
        await pilot.pause()
        await pilot.press("4")
        await settle(pilot)
        await pilot.pause()

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_compare_two_arms_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        await pilot.press("space", "space", "c")
        await pilot.pause()
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)
