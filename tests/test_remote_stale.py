"""A cut ssh link in a real terminal: ``fnotui --remote`` over a loopback sshd with a running
and a finished arm. While the server is down the running arm turns ``stale`` (with its age),
never ``crashed`` (over loopback the host name matches, so a local pid check would have said
so), the finished arm stays finished, and the title leads with the link state and a live
countdown. ctrl+r reconnects at once when the server is back.

The silence threshold (30 s) is lowered to 6 s through FNOTUI_SILENT_AFTER_S
(engine/runs/status.py), so the cut lasts ~15 s instead of 40 and tests the same rule."""

from __future__ import annotations

import re
import time

import pytest

from engine.runs.status import run_state
from tests.slowstudy import wait_for, write_slow_study
from tests.test_remote import cli, kill_engine, remote_terminal, sshd  # noqa: F401 (a fixture)

SILENT_S = 6


@pytest.mark.slow
def test_a_cut_link_shows_stale_never_crashed_and_recovers(sshd, tmp_path):  # noqa: F811
    study = write_slow_study(tmp_path / "study", "cut", quick={"architecture": "cnn", "epochs": 1})
    slow, quick = study / "runs" / "slow", study / "runs" / "quick"
    tui = None
    try:
        assert cli("launch", "quick", "--device", "cpu", cwd=study).returncode == 0
        wait_for(lambda: run_state(quick) == "finished", timeout=120, what="the quick arm")
        assert cli("launch", "slow", "--device", "cpu", cwd=study).returncode == 0
        wait_for(lambda: run_state(slow) == "running", what="the slow arm")
        tui = remote_terminal(sshd, study, tmp_path, env={"FNOTUI_SILENT_AFTER_S": str(SILENT_S)})
        mirrored = tmp_path / "mirror" / "runs"
        # Before: both true states, and the link leads the title.
        tui.wait_text("● connected")
        tui.wait_text("running")
        # A finished arm's state cell shows its verdict after the ✔ glyph.
        wait_for(lambda: re.search(r"quick\s+✔", tui.text), timeout=30, what="quick finished")

        # During: the server and its connections are gone.
        mark = len(tui.text)
        cut = time.monotonic()
        sshd.stop()
        tui.wait_text("link down", timeout=30)
        wait_for(lambda: "retry in" in tui.text[mark:], timeout=30, what="the countdown")
        wait_for(lambda: "stale" in tui.text[mark:], timeout=SILENT_S + 20, what="stale")
        wait_for(
            lambda: "no word from the engine's host for" in tui.text[mark:],
            timeout=10,
            what="the stale age",
        )
        while time.monotonic() - cut < 15:
            time.sleep(0.5)
        during = tui.text[mark:]
        assert "crashed" not in during, during[-800:]
        # This process keeps the 30 s threshold: the screen said stale after SILENT_S.
        assert run_state(mirrored / "slow", now=time.time() + 30 - SILENT_S) == "stale"
        assert run_state(mirrored / "quick") == "finished"
        assert run_state(slow) == "running"  # the engine never noticed

        # After: the server is back; ctrl+r skips the rest of the back-off.
        mark = len(tui.text)
        sshd.start()
        tui.press("\x12")
        wait_for(lambda: "● connected" in tui.text[mark:], timeout=30, what="the reconnect")
        wait_for(lambda: "running" in tui.text[mark:], timeout=20, what="running again")
        assert "crashed" not in tui.text[mark:]
        assert run_state(mirrored / "slow") == "running"
        assert run_state(mirrored / "quick") == "finished"
        tui.press("q")
        assert tui.proc.wait(20) == 0
    finally:
        if tui is not None:
            tui.kill()
        kill_engine(slow)
        kill_engine(quick)
        if sshd.proc is None or sshd.proc.poll() is not None:
            sshd.start()  # the module's other tests share the server
