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


# -- issue 14: the states and panels a user must be able to read at 80x24 ------------------


def _queue_arm_idle(study_file) -> None:
    """arm_idle queued by a live process of this host (status.json as engine/runs/status.py
    writes it for a queued arm), with the reason it waits."""
    import json
    import os
    import socket
    import time

    idle = study_file.parent / "runs" / "arm_idle"
    idle.mkdir(parents=True)
    (idle / "status.json").write_text(
        json.dumps(
            {
                "arm": "arm_idle",
                "state": "queued",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "heartbeat": time.time(),
                "queue": "queued for cpu (at most 1 per device); busy: arm_ok on cpu "
                "(study fixture, pid 4242), started 3 minutes ago; it starts when a slot "
                "frees up",
            }
        )
    )


async def _highlight(pilot, name: str) -> None:
    from app.widgets.arm_table import ArmTable

    table = pilot.app.screen.query_one(ArmTable)
    table.move_cursor(row=table.get_row_index(name), animate=False)
    await pilot.pause()


def test_queued_arm_with_its_reason_80x24(snap_compare, study_file):
    _queue_arm_idle(study_file)

    async def ready(pilot):
        await settle(pilot)
        await _highlight(pilot, "arm_idle")

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_failed_arm_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        await _highlight(pilot, "arm_failed")

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_metrics_panel_of_a_finished_arm_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.open_detail("arm_ok")
        await pilot.pause()
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


def test_help_overlay_80x24(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(study_file), terminal_size=(80, 24), run_before=ready)


# -- one per screen at 160x48 -----------------------------------------------------------------


def test_main_screen_160x48(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(160, 48), run_before=ready)


def test_detail_screen_160x48(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        pilot.app.open_detail("arm_ok")
        await pilot.pause()
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(160, 48), run_before=ready)


def test_compare_screen_160x48(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        await pilot.press("space", "space", "space", "c")
        await pilot.pause()
        await settle(pilot)

    assert snap_compare(make_app(study_file), terminal_size=(160, 48), run_before=ready)


def test_help_screen_160x48(snap_compare, study_file):
    async def ready(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(study_file), terminal_size=(160, 48), run_before=ready)


def test_log_tail_screen_160x48(snap_compare, study_file):
    run_dir = study_file.parent / "runs" / "arm_failed"
    (run_dir / "run.log").write_text(
        "epoch 1/6 loss 0.41\nepoch 2/6 loss 0.35\nRuntimeError: boom\n", encoding="utf-8"
    )

    async def ready(pilot):
        await settle(pilot)
        await _highlight(pilot, "arm_failed")
        await pilot.press("t")
        await pilot.pause(0.3)

    assert snap_compare(make_app(study_file), terminal_size=(160, 48), run_before=ready)
