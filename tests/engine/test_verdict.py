"""Verdicts of runs that reconstruct the twin: named as such, never healthy, never hidden."""

from __future__ import annotations

import math

import pytest

from engine.scoring.verdict import LABELS, SYMBOLS, classify_run, final_twin, twin_verdict


def header(epochs: int = 2) -> dict:
    return {"type": "header", "start_time": 100.0, "config": {"train": {"epochs": epochs}}}


def finished_run(fraction, undecidable=0.0, epochs: int = 2) -> list[dict]:
    recs = [header(epochs)] + [
        {"type": "epoch", "epoch": e, "val_loss": 0.1} for e in range(epochs)
    ]
    recs.append(
        {
            "type": "metrics",
            "epoch": epochs - 1,
            "step": 10,
            "weights": "last epoch",
            "metrics": {
                "ssim": [0.15, 0.1],
                "twin_fraction": fraction,
                "twin_undecidable_fraction": undecidable,
                "ssim_vs_twin": [0.97, 0.9],
            },
            "t": 200.0,
        }
    )
    return recs


@pytest.mark.parametrize(
    "fraction, label",
    [
        (1.0, "twin"),
        (0.9, "twin"),
        (0.6, "mixed twin"),
        (0.11, "mixed twin"),
        (0.1, "healthy"),
        (0.0, "healthy"),
    ],
)
def test_the_twin_fraction_of_a_finished_run_names_its_branch(fraction, label):
    verdict = classify_run(finished_run(fraction), "finished")
    assert verdict.label == label
    if label != "healthy":
        assert verdict.rule == "twin_fraction" and f"{fraction:.0%}" in verdict.detail
        assert verdict.text == f"{SYMBOLS[label]} {label}"


def test_alarms_and_process_states_come_before_the_twin():
    recs = finished_run(1.0)
    collapse = {
        "type": "event",
        "rule": "output_collapse",
        "severity": "collapse",
        "epoch": 1,
        "step": 8,
        "t": 150.0,
    }
    assert classify_run(recs[:-1] + [collapse] + recs[-1:], "finished").label == "collapsed"
    assert classify_run(recs, "running").label == "running"
    assert classify_run(recs, "failed").label == "failed"
    assert (
        classify_run(finished_run(1.0, epochs=3)[:-2] + recs[-1:], "finished").label == "incomplete"
    )


def test_a_fraction_drawn_from_too_few_decidable_patches_names_no_branch():
    verdict = classify_run(finished_run(1.0, undecidable=0.8), "finished")
    assert verdict.label == "healthy" and "80% of the patches are undecidable" in verdict.detail
    assert classify_run(finished_run(1.0, undecidable=0.5), "finished").label == "twin"


def test_runs_without_a_twin_evaluation_stay_healthy():
    old = finished_run(None)
    del old[-1]["metrics"]["twin_fraction"]
    assert classify_run(old, "finished").label == "healthy"
    assert classify_run(old[:-1], "finished").label == "healthy"  # no metrics record at all
    assert classify_run(finished_run(math.nan), "finished").label == "healthy"  # none decidable


def test_metrics_json_wins_over_telemetry_and_the_last_record_over_earlier_ones():
    recs = finished_run(0.0)
    reevaluated = {
        **recs[-1],
        "metrics": {"twin_fraction": 0.95, "twin_undecidable_fraction": 0.1},
        "reevaluated": True,
    }
    assert classify_run(recs + [reevaluated], "finished").label == "twin"
    metrics_json = {"ssim": [0.5, 0.5], "twin": {"fraction": 0.5, "undecidable_fraction": 0.0}}
    assert classify_run(recs + [reevaluated], "finished", metrics_json).label == "mixed twin"
    assert final_twin(None, {"ssim": [0.5, 0.5]}) == (None, None)
    assert final_twin(recs[-1], None) == (0.0, 0.0)


def test_every_label_has_a_glyph():
    assert set(SYMBOLS) == set(LABELS)
    assert len({SYMBOLS["twin"], SYMBOLS["mixed twin"], SYMBOLS["healthy"]}) == 3
    assert twin_verdict(None, None).label == "healthy"
