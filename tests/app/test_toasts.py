"""The title's link text, the action and alarm toasts, and the reader's pacing: no App."""

from __future__ import annotations

from pathlib import Path

from app.link_title import QUIET_AFTER_S, display_path, link_text
from app.toasts import MAX_ALARM_TOASTS, AlarmToasts, files_summary, outcome_text, problems_text
from engine.control.base import LinkState, Outcome
from engine.live.runstore import RunStore
from engine.study.arms import load_study
from tests.app.studyfix import make_study


def test_link_text_counts_down_and_says_a_quiet_link():
    now = 1000.0
    assert link_text(None) == "connecting"
    assert link_text(LinkState("connected", last_heard=now - 1), now) == "● connected"
    quiet = LinkState("connected", last_heard=now - QUIET_AFTER_S - 2)
    assert link_text(quiet, now) == f"◌ silent {QUIET_AFTER_S + 2:.0f} s"
    assert link_text(LinkState("reconnecting", retry_at=now + 4.2), now) == (
        "⚠ link down · retry in 4 s"
    )
    assert link_text(LinkState("failed"), now) == "✘ link failed"


def test_an_export_toast_names_a_file_every_arm_has_once(tmp_path):
    arms_file = tmp_path / "arms.toml"
    files = [tmp_path / "runs" / a / "stats.json" for a in ("a", "b", "c")]
    files += [tmp_path / "runs" / "report" / n for n in ("summary.md", "metrics.csv")]
    text = outcome_text(Outcome("exported", files=tuple(files)), arms_file)
    assert text.splitlines() == [
        "wrote 5 files",
        "stats.json in 3 folders",
        "runs/report/: summary.md, metrics.csv",
    ]
    assert display_path(Path("/elsewhere/x"), arms_file) == "/elsewhere/x"
    assert outcome_text(Outcome("started pid 7"), arms_file) == "started pid 7"
    many = files_summary([f"d{i}/f{i}" for i in range(9)], most=3)
    assert many.splitlines()[-1] == "and 7 more folders"
    assert problems_text(["a", "b", "c", "d"]) == "a; b; c; and 1 more (see the summary)"


def test_alarm_toasts_say_new_alarms_once_and_not_those_found_at_start(tmp_path):
    study = load_study(make_study(tmp_path / "study"), validate_models=False)
    store = RunStore.from_study(study)
    store.poll()
    snaps = store.snapshots()
    toasts = AlarmToasts()
    assert toasts.new(snaps) == []  # arm_collapse's alarms were there at start-up
    assert toasts.new(snaps) == []
    fresh = AlarmToasts()
    fresh.new(())
    said = fresh.new(snaps)
    alarms = [(s.name, a) for s in snaps for a in s.alarms]
    assert 0 < len(alarms) <= MAX_ALARM_TOASTS and len(said) == len(alarms)
    assert said[0]["message"] == "arm_collapse: nonfinite_loss at epoch 3"
    assert fresh.new(snaps) == []  # once


def test_the_reader_waits_in_proportion_to_the_cpu_of_its_last_poll():
    from app.tui import READER_IDLE_RATIO, next_poll_in

    assert next_poll_in(0.4, 0.01, 0.005) == 0.4 - 0.01  # a small study: the set interval
    # a large one: never more than 1/(1 + ratio) of a core for the reader
    assert next_poll_in(0.4, 0.3, 0.2) == READER_IDLE_RATIO * 0.2
    assert next_poll_in(0.05, 0.5, 0.0) == 0.0
