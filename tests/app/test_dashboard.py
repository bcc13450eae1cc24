"""Pilot tests of the dashboard on a frozen study: table contents, navigation, key actions.

Each test runs the real app through conftest.drive (its own event loop: pytest-asyncio is not a
dependency).
"""

from __future__ import annotations

from textual.notifications import Notify
from textual.widgets import DataTable, TabbedContent

from app.screens.compare import CompareScreen
from app.screens.dashboard import DashboardScreen
from app.screens.detail import ArmDetailScreen
from app.widgets.arm_table import ArmTable
from app.widgets.cells import VERDICT_STYLES, fmt_num
from app.widgets.image import HalfBlockImage
from app.widgets.plot import PlotView
from tests.app.conftest import drive, settle, wait_for


def cell(table: ArmTable, arm: str, column: str) -> str:
    return table.get_cell(arm, column).plain


async def open_detail(pilot, arm: str) -> None:
    """The arm's detail screen, drawn."""
    pilot.app.open_detail(arm)
    await pilot.pause()
    await settle(pilot)


def test_table_lists_every_arm_and_discovered_run_with_state_words(study_file):
    async def check(pilot):
        app = pilot.app
        table = app.screen.query_one(ArmTable)
        assert table.arm_names() == [
            "arm_ok",
            "arm_collapse",
            "arm_failed",
            "arm_stale",
            "arm_idle",
            "old_arm",
        ]
        # the state column says the verdict where it says more than the state
        assert cell(table, "arm_ok", "state") == "✔ healthy"
        assert cell(table, "arm_collapse", "state").startswith("‼ nan")
        assert cell(table, "arm_failed", "state") == "✘ failed"
        assert cell(table, "arm_stale", "state") == "? stale"
        assert cell(table, "arm_idle", "state") == "○ not started"
        assert "not in arms.toml" in cell(table, "old_arm", "arm")
        assert cell(table, "arm_ok", "epoch") == "6/6"
        assert cell(table, "arm_ok", "val") == "0.1333"
        assert cell(table, "arm_collapse", "loss") == "✖nan"
        assert cell(table, "arm_collapse", "spark_loss").endswith("✖✖")
        assert cell(table, "arm_collapse", "verdict").startswith("‼ nan")
        assert cell(table, "arm_ok", "verdict") == "✔ healthy"
        assert cell(table, "old_arm", "verdict") == "⇆ twin"
        assert cell(table, "arm_ok", "ssim") != "—"  # the final amplitude SSIM
        assert cell(table, "arm_idle", "ssim") == "—"
        assert cell(table, "arm_idle", "loss") == "—"
        # the partial last line of arm_stale is not a record: 1 epoch of 10 steps
        assert app.store.snapshots()[3].n_steps == 10

    drive(study_file, check)


def test_enter_opens_the_highlighted_arm_and_escape_comes_back(study_file):
    async def check(pilot):
        app = pilot.app
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ArmDetailScreen)
        assert app.screen.arm == "arm_collapse"
        await settle(pilot)
        loss = app.screen.query_one("#plot-loss", PlotView)
        assert "NaN×5" in str(loss.render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)

    drive(study_file, check)


def test_detail_tabs_show_events_config_and_reconstruction(study_file):
    async def check(pilot):
        app = pilot.app
        await open_detail(pilot, "arm_ok")
        await pilot.press("2")
        assert app.screen.query_one(TabbedContent).active == "events"
        events = app.screen.query_one("#events-table", DataTable)
        assert events.row_count == 0  # a healthy run: no detector fired
        summary = str(app.screen.query_one("#events-summary").render())
        assert summary.startswith("no detector events")
        final = str(app.screen.query_one("#final-metrics").render())
        assert "final metrics" in final and "(metrics.json)" in final
        await pilot.press("3")
        config = str(app.screen.query_one("#config-text").render())
        assert "epochs = 6" in config and "fixture-host" in config
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen._recon_key is not None, what="recon.npz")
        await pilot.pause()
        image = app.screen.query_one("#img-recon_amplitude", HalfBlockImage)
        assert image.nonfinite == 1
        caption = str(app.screen.query_one("#cap-recon_amplitude").render())
        assert "1 NaN/inf" in caption

    drive(study_file, check, size=(100, 40))


def test_log_and_ema_toggles_redraw_a_nan_arm_without_crashing(study_file):
    async def check(pilot):
        app = pilot.app
        app.open_detail("arm_collapse")
        await pilot.pause()
        for key in ("l", "e", "l", "e", "l"):
            await pilot.press(key)
            await settle(pilot)
        screen = app.screen
        assert screen.log_y and not screen.smooth
        text = str(screen.query_one("#plot-grad", PlotView).render())
        assert "NaN×5" in text and "1e" in text  # markers, decade ticks

    drive(study_file, check)


def test_space_marks_arms_and_c_compares_them(study_file):
    notes = []

    async def check(pilot):
        app = pilot.app
        await pilot.press("c")  # nothing marked yet
        await pilot.pause()
        assert any(isinstance(m, Notify) and "two or more" in m.notification.message for m in notes)
        await pilot.press("space", "space")
        table = app.screen.query_one(ArmTable)
        assert table.marked == {"arm_ok", "arm_collapse"}
        assert cell(table, "arm_ok", "mark") == "●"
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.arms == ["arm_ok", "arm_collapse"]
        await settle(pilot)
        val = str(app.screen.query_one("#cmp-val", PlotView).render())
        assert "arm_ok" in val and "arm_collapse" in val

    drive(study_file, check, notes=notes)


def test_export_key_notifies_the_written_files(study_file):
    notes = []

    async def check(pilot):
        await pilot.press("x")

        def exported():
            return [
                m.notification
                for m in notes
                if isinstance(m, Notify) and m.notification.title == "export"
            ]

        await wait_for(pilot, exported, timeout=60, what="the export notification")
        note = exported()[0]
        assert "stats.json in 5 folders" in note.message  # one line: 4 arms and the report
        assert "summary.md" in note.message
        assert note.markup is False

    drive(study_file, check, notes=notes)
    assert (study_file.parent / "runs" / "arm_ok" / "stats.json").exists()


def test_command_palette_offers_the_actions(study_file):
    async def check(pilot):
        app = pilot.app
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in (
            "Launch selected arms",
            "Stop selected arms",
            "Compare selected arms",
            "Export study",
            "Open arm arm_ok",
            "Launch arm arm_idle",
        ):
            assert title in titles
        assert "Stop arm arm_ok" not in titles  # finished: nothing to stop

    drive(study_file, check)


def test_live_table_follows_appended_records(study_file, tmp_path):
    import os
    import socket
    import time

    from engine.runs.telemetry import encode_record
    from tests.app.studyfix import epoch, step, write_status

    run_dir = study_file.parent / "runs" / "arm_stale"
    write_status(
        run_dir, state="running", pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time()
    )
    telemetry = run_dir / "telemetry.jsonl"

    async def check(pilot):
        app = pilot.app
        table = app.screen.query_one(ArmTable)
        assert cell(table, "arm_stale", "state") == "▶ running"
        assert cell(table, "arm_stale", "epoch") == "1/6"
        with open(telemetry, "ab") as fh:  # finish the half-written line, then more
            fh.write(b'ep":1,"loss":0.5,"step":10,"t":1.0}\n')
            for i in range(11, 20):
                fh.write(encode_record(step(i, 0.25, 2.0)).encode())
            fh.write(encode_record(epoch(1, 0.125)).encode())
        await wait_for(
            pilot, lambda: cell(table, "arm_stale", "epoch") == "2/6", what="the appended epoch"
        )
        assert cell(table, "arm_stale", "val") == "0.125"
        assert app.store.snapshots()[3].n_steps == 20
        with open(telemetry, "ab") as fh:  # a NaN and an inf arrive live
            fh.write(encode_record(step(20, float("nan"), float("inf"))).encode())
        await wait_for(
            pilot, lambda: cell(table, "arm_stale", "loss") == "✖nan", what="the NaN step"
        )
        assert cell(table, "arm_stale", "grad") == "✖inf"
        assert "✖" in cell(table, "arm_stale", "spark_grad")

    drive(study_file, check, live=True, poll_interval=0.05)


def test_stop_key_asks_then_sends_sigterm(study_file, tmp_path):
    import socket
    import subprocess
    import sys
    import time

    from tests.app.studyfix import write_status

    marker = tmp_path / "got-sigterm"
    # A stand-in engine: "--run" in its command line, like a real one; SIGTERM writes a file.
    code = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').close(), "
        "sys.exit(0)))\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "--run", "arm_stale"])
    try:
        run_dir = study_file.parent / "runs" / "arm_stale"
        write_status(
            run_dir, state="running", pid=proc.pid, host=socket.gethostname(), heartbeat=time.time()
        )
        time.sleep(0.3)  # let it install the handler

        async def check(pilot):
            app = pilot.app
            table = app.screen.query_one(ArmTable)
            table.move_cursor(row=table.get_row_index("arm_stale"))
            await pilot.press("s")
            await pilot.pause()
            await pilot.press("escape")  # cancel: nothing is sent
            await pilot.pause()
            assert proc.poll() is None
            await pilot.press("s")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: proc.poll() is not None, what="the SIGTERM")

        drive(study_file, check)
        assert marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_left_and_right_scroll_the_table_a_column_at_a_time(study_file):
    from app.widgets.arm_table import FIXED_COLUMNS

    async def check(pilot):
        app = pilot.app
        table = app.screen.query_one(ArmTable)
        assert table.fixed_columns == FIXED_COLUMNS  # mark and arm name stay in view
        widths = [c.get_render_width(table) for c in table.ordered_columns[FIXED_COLUMNS:]]
        await pilot.press("right", "right")
        await pilot.pause()
        assert table.scroll_x == widths[0] + widths[1]
        await pilot.press("left")
        await pilot.pause()
        assert table.scroll_x == widths[0]

    drive(study_file, check)


def test_a_queued_arm_shows_whom_it_waits_for_and_a_failed_one_why(study_file):
    from app.screens.dashboard import info_text
    from tests.app.studyfix import queue_arm

    queue_arm(study_file, "arm_idle", "queued for cpu (at most 1 per device); busy: arm_ok on cpu")

    async def check(pilot):
        app = pilot.app
        table = app.screen.query_one(ArmTable)
        assert cell(table, "arm_idle", "state") == "◷ queued"
        snaps = {s.name: s for s in app.snapshots}
        text = info_text(snaps["arm_idle"]).plain
        assert "busy: arm_ok on cpu" in text and "s takes it out of the queue" in text
        failed = info_text(snaps["arm_failed"]).plain
        assert snaps["arm_failed"].note and snaps["arm_failed"].note in failed

    drive(study_file, check)


def _final_metrics_shown(app) -> str:
    return str(app.screen.query_one("#final-metrics").render())


def test_detail_shows_the_final_metrics_and_twin_fraction_of_a_finished_arm(study_file):
    import json

    runs = study_file.parent / "runs"
    written = json.loads((runs / "old_arm" / "metrics.json").read_text())

    async def check(pilot):
        app = pilot.app
        await open_detail(pilot, "old_arm")
        await pilot.press("2")
        text = _final_metrics_shown(app)
        lines = text.splitlines()
        assert "SSIM" in lines[1] and "PSNR" in lines[1] and "FRC50" in lines[1]
        amp = lines[2].split()
        assert amp[0] == "amp" and amp[1] == fmt_num(written["ssim"][0])
        assert amp[2] == fmt_num(written["psnr"][0]) and amp[3] == fmt_num(written["mae"][0])
        assert lines[3].split()[1] == fmt_num(written["ssim"][1])
        twin = written["twin"]
        assert f"fraction {fmt_num(twin['fraction'], 3)} of decidable patches" in lines[4]
        assert f"({twin['undecidable_fraction']:.0%} undecidable)" in lines[4]
        assert f"SSIM vs twin {fmt_num(twin['metrics']['ssim'][0])}" in lines[5]

    drive(study_file, check, size=(100, 40))


def test_detail_falls_back_to_the_telemetry_record_without_metrics_json(study_file):
    runs = study_file.parent / "runs"
    (runs / "arm_ok" / "metrics.json").unlink()

    async def check(pilot):
        app = pilot.app
        await open_detail(pilot, "arm_ok")
        text = _final_metrics_shown(app)
        assert "(telemetry)" in text and "fraction 0 of decidable patches" in text
        assert "undecidable" in text and "SSIM vs twin" in text
        app.pop_screen()
        await pilot.pause()
        app.open_detail("arm_failed")  # failed before its evaluation: nothing to show
        await pilot.pause()
        await settle(pilot)
        assert _final_metrics_shown(app).startswith("final metrics: no data yet")

    drive(study_file, check, size=(100, 40))


def test_every_verdict_label_has_a_style_and_the_table_shows_its_glyph():
    from engine.scoring.verdict import LABELS, SYMBOLS, Verdict

    assert set(VERDICT_STYLES) == set(LABELS)
    assert Verdict("mixed twin").text == f"{SYMBOLS['mixed twin']} mixed twin"
