"""Outcome statistics per sweep point: the Wilson interval, what counts, grouping without the seed.

Rows are study metrics rows made by the exporter's own ``metrics_row`` for the runs of a real
loaded study (a sweep of seeds x lr over one arm, a plain arm beside it); the end-to-end check on
real trained runs is tests/engine/test_export_sweep.py.
"""

from __future__ import annotations

import textwrap

import pytest

from engine.reporting.metrics_file import metrics_row
from engine.reporting.outcomes import (
    fraction_text,
    outcome_groups,
    verdict_counts_text,
    wilson_interval,
)
from engine.reporting.tables import outcomes_table
from engine.study.arms import load_study
from tests.tiny import TINY_DATA, TINY_GENERATOR


@pytest.mark.parametrize(
    "k, n, lo, hi",
    [(1, 3, 0.0615, 0.7923), (0, 3, 0.0, 0.5615), (3, 3, 0.4385, 1.0), (2, 3, 0.2077, 0.9385)],
)
def test_wilson_interval_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for n in range(1, 21):
        for k in range(n + 1):
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9), (k, n)


def test_fraction_text_is_written_as_the_issue_asks():
    assert fraction_text(1, 3) == "1/3 (95 % CI 6–79 %)"
    assert fraction_text(0, 3) == "0/3 (95 % CI 0–56 %)"
    assert fraction_text(3, 3) == "3/3 (95 % CI 44–100 %)"
    assert fraction_text(0, 0) == "0/0 (no settled runs)"
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_verdict_counts_use_the_verdict_symbols_and_name_a_shared_symbol():
    assert verdict_counts_text({"collapsed": 1, "healthy": 2}) == "✔ 2 ✖ 1"
    # collapsed and failed both print ✖: with both present each count names its label
    assert (
        verdict_counts_text({"collapsed": 1, "failed": 1, "twin": 1})
        == "⇆ 1 ✖ 1 collapsed ✖ 1 failed"
    )


ARMS = f"""
[data]
{TINY_DATA}
train_stride = 8
test_stride = 8

[defaults]
architecture = "cnn"
fno_width = 4
{TINY_GENERATOR}
seed = 3

[arms.a]
[arms.b]

[sweeps.s]
arms = ["a"]
[sweeps.s.grid]
seed = [11, 12, 13]
lr = [1e-3, 0.05]

[sweeps.seeds]
arms = ["b"]
[sweeps.seeds.grid]
seed = [21, 22]
"""


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "arms.toml"
    path.write_text(textwrap.dedent(ARMS))
    return load_study(path, validate_models=False)


def row(study, run: str, state: str, verdict: str, val=None, ssim=None) -> dict:
    """The exporter's own row for a run in the given state, verdict and headline values."""
    stats = {
        "arm": run,
        "run_id": None if state == "not started" else f"{run}-1",
        "state": state,
        "verdict": {"label": verdict},
        "val_loss_best": val,
        "amp_ssim": ssim,
    }
    return metrics_row(study, stats, study.arms[run].to_dict(), 0.0)


def test_metrics_rows_carry_sweep_point_and_group(study):
    point = row(study, "a.lr-0.05.seed-12", "finished", "healthy")
    assert (point["sweep"], point["point"], point["sweep_group"]) == (
        "s",
        "lr-0.05.seed-12",
        "a.lr-0.05",
    )
    assert point["train.seed"] == 12
    plain = row(study, "a", "finished", "healthy")
    assert (plain["sweep"], plain["point"], plain["sweep_group"]) == ("", "", "")


def test_groups_without_the_seed_count_only_settled_runs(study):
    rows = [
        row(study, "a", "finished", "healthy", 0.2, 0.5),  # plain arm: not in a seeds-only group
        row(study, "a.lr-0.001.seed-11", "finished", "healthy", 0.10, 0.60),
        row(study, "a.lr-0.001.seed-12", "finished", "collapsed", 0.30, 0.10),
        row(study, "a.lr-0.001.seed-13", "finished", "twin", 0.20, 0.40),
        row(study, "a.lr-0.05.seed-11", "killed", "collapsed", 0.5, 0.1),  # settled: counted
        row(study, "a.lr-0.05.seed-12", "running", "collapsed", 0.6),  # still running
        row(study, "a.lr-0.05.seed-13", "failed", "failed"),  # never trained (e.g. OOM at load)
        row(study, "b", "finished", "healthy", 0.15, 0.7),  # joins its seeds-only sweep
        row(study, "b.seed-21", "not started", "incomplete"),
        row(study, "b.seed-22", "finished", "healthy", 0.25, 0.5),
    ]
    groups = {g["group"]: g for g in outcome_groups(rows)}
    assert list(groups) == ["a.lr-0.001", "a.lr-0.05", "b"]  # plain "a" alone is not reported

    low = groups["a.lr-0.001"]
    assert low["runs"] == ["a.lr-0.001.seed-11", "a.lr-0.001.seed-12", "a.lr-0.001.seed-13"]
    assert low["seeds"] == [11, 12, 13] and low["sweeps"] == ["s"]
    assert (low["collapsed"], low["counted"]) == (1, 3)
    assert low["collapse_text"] == "1/3 (95 % CI 6–79 %)"
    assert low["verdicts_text"] == "✔ 1 ⇆ 1 ✖ 1"
    assert low["states"] == {"finished": 3}
    assert low["val_loss_best"] == {"n": 3, "median": 0.2, "min": 0.1, "max": 0.3}
    assert low["amp_ssim"]["median"] == pytest.approx(0.4)

    high = groups["a.lr-0.05"]
    assert (high["collapsed"], high["counted"]) == (1, 1)  # the running and failed runs: not
    assert high["states"] == {"killed": 1, "running": 1, "failed": 1}
    assert high["verdicts_text"] == "✖ 2 collapsed ✖ 1 failed"
    assert high["val_loss_best"] == {"n": 1, "median": 0.5, "min": 0.5, "max": 0.5}

    b = groups["b"]
    assert b["runs"] == ["b", "b.seed-21", "b.seed-22"] and b["seeds"] == [3, 21, 22]
    assert (b["collapsed"], b["counted"]) == (0, 2)
    assert b["collapse_text"] == "0/2 (95 % CI 0–66 %)"
    assert b["collapse_ci95"] == pytest.approx([0.0, 0.6576], abs=1e-4)


def test_a_group_with_nothing_settled_has_no_fraction(study):
    rows = [row(study, f"b.seed-{s}", "not started", "incomplete") for s in (21, 22)]
    (g,) = outcome_groups(rows)
    assert g["collapse_fraction"] is None and g["collapse_ci95"] is None
    assert g["collapse_text"] == "0/0 (no settled runs)"
    assert g["val_loss_best"] == {"n": 0, "median": None, "min": None, "max": None}


def test_no_sweep_no_section(study):
    assert outcome_groups([row(study, "a", "finished", "healthy")]) == []
    assert outcomes_table([]) == []


def test_the_table_has_one_row_per_group_and_says_what_counts(study):
    rows = [
        row(study, "a.lr-0.001.seed-11", "finished", "healthy", 0.1, 0.6),
        row(study, "a.lr-0.001.seed-12", "finished", "collapsed", 0.3, 0.1),
        row(study, "a.lr-0.001.seed-13", "finished", "healthy", 0.2, 0.4),
    ]
    lines = outcomes_table(outcome_groups(rows))
    text = "\n".join(lines)
    assert (
        "| `a.lr-0.001` | s | 3 | 3 finished | ✔ 2 ✖ 1 | 1/3 (95 % CI 6–79 %) | 0.2 (0.1–0.3) | "
        "0.4 (0.1–0.6) |" in text
    )
    assert "Not counted: runs not started, queued or still running" in text
    assert "Wilson" in text and "min–max" in text
