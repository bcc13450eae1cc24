"""Detector rules on hand-made series: each fires once, when it should, and re-arms."""

from __future__ import annotations

import math

import numpy as np

from engine.config import DetectConfig
from engine.scoring.detectors import EpochDetectors, StepDetectors, detect_run
from engine.scoring.verdict import classify_run

CFG = DetectConfig()


def feed_steps(losses, grads=None, cfg=CFG):
    det = StepDetectors(cfg)
    grads = grads if grads is not None else [None] * len(losses)
    events = []
    for i, (loss, g) in enumerate(zip(losses, grads)):
        events += det.update(i // 100, i, loss, g)
    return events


def feed_epochs(vals, stds, target=1.0, cfg=CFG):
    det = EpochDetectors(cfg, target)
    events = []
    for e, (v, s) in enumerate(zip(vals, stds)):
        events += det.update(e, 10 * e, v, s)
    return events


def noisy_healthy(n=2000, seed=0):
    """Decaying loss with multiplicative noise and an Adam bump at every epoch boundary."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    loss = 0.5 * np.exp(-t / 800) + 0.1
    loss *= 1 + 0.05 * rng.standard_normal(n)
    loss[t % 100 < 3] *= 1.15
    grads = np.exp(0.3 * rng.standard_normal(n)) * (1 + 0.5 * np.exp(-t / 300))
    return loss.tolist(), grads.tolist()


def test_healthy_noisy_steps_raise_no_alarm():
    for seed in range(5):
        loss, grads = noisy_healthy(seed=seed)
        assert feed_steps(loss, grads) == [], seed


def test_nan_loss_fires_fatal_at_once_and_only_once():
    loss = [0.5] * 10 + [math.nan] * 5
    events = feed_steps(loss)
    assert [(e.rule, e.severity, e.step) for e in events] == [("nonfinite_loss", "fatal", 10)]


def test_inf_grad_norm_fires_fatal():
    events = feed_steps([0.5] * 5, [1.0, 1.0, math.inf, 1.0, 1.0])
    assert [(e.rule, e.step) for e in events] == [("nonfinite_grad", 2)]


def test_loss_spike_fires_once_per_episode_and_rearms():
    loss, _ = noisy_healthy(600)
    loss[300] = loss[301] = 50.0  # one episode of two spiky steps
    loss[500] = 50.0  # a second, separate episode
    events = [e for e in feed_steps(loss) if e.rule == "loss_spike"]
    assert [e.step for e in events] == [300, 500]
    assert all(e.severity == "warning" and e.value == 50.0 for e in events)


def test_loss_spike_waits_for_warmup():
    events = feed_steps([0.5] * 10 + [500.0])
    assert events == []


def test_grad_spike_fires_on_a_multiplicative_jump():
    _, grads = noisy_healthy(400)
    grads[350] = grads[349] * 1e3
    events = [e for e in feed_steps([0.2] * 400, grads) if e.rule == "grad_spike"]
    assert [e.step for e in events] == [350]
    assert events[0].threshold < grads[350]


def test_output_collapse_fires_after_patience_with_onset():
    stds = [0.5, 0.4, 0.3, 0.001, 0.0, 0.0, 0.0]
    events = feed_epochs([1.0, 0.5, 0.4, 0.45, 0.45, 0.45, 0.45], stds, target=0.2)
    collapse = [e for e in events if e.rule == "output_collapse"]
    assert len(collapse) == 1
    assert (collapse[0].onset_epoch, collapse[0].epoch) == (3, 4)
    assert collapse[0].severity == "collapse"


def test_output_collapse_respects_warmup_epochs():
    events = feed_epochs(
        [1.0, 0.9, 0.8],
        [0.0, 0.5, 0.5],
        target=1.0,
        cfg=DetectConfig(collapse_patience=1, warmup_epochs=1),
    )
    assert [e for e in events if e.rule == "output_collapse"] == []


def test_divergence_is_val_far_above_its_best_for_patience_epochs():
    vals = [1.0, 0.3, 0.2, 0.25, 0.9, 1.0, 1.1]
    events = [e for e in feed_epochs(vals, [0.5] * 7) if e.rule == "divergence"]
    assert len(events) == 1
    assert (events[0].onset_epoch, events[0].epoch) == (4, 5)
    assert "epoch 2" in events[0].message  # names where the best was


def test_one_bad_epoch_is_not_divergence():
    vals = [1.0, 0.3, 0.2, 0.9, 0.21, 0.2]
    assert [e for e in feed_epochs(vals, [0.5] * 6) if e.rule == "divergence"] == []


def test_plateau_is_an_info_note():
    vals = [1.0, 0.5] + [0.5] * 12
    events = [e for e in feed_epochs(vals, [0.5] * 14) if e.rule == "plateau"]
    assert len(events) == 1 and events[0].severity == "info"


def test_nan_val_loss_is_fatal():
    events = feed_epochs([1.0, math.nan], [0.5, math.nan])
    assert [e.rule for e in events] == ["nonfinite_val"]


def trace(val, stds, losses_per_epoch=5):
    records = [
        {
            "type": "header",
            "start_time": 100.0,
            "target_amp_std": 1.0,
            "config": {"train": {"epochs": len(val)}},
        }
    ]
    step = 0
    for e, (v, s) in enumerate(zip(val, stds)):
        for _ in range(losses_per_epoch):
            records.append(
                {
                    "type": "step",
                    "epoch": e,
                    "step": step,
                    "loss": v,
                    "grad_norm": 1.0,
                    "t": 100.0 + step,
                }
            )
            step += 1
        records.append(
            {
                "type": "epoch",
                "epoch": e,
                "step": step,
                "val_loss": v,
                "pred_amp_std": s,
                "t": 100.0 + step,
            }
        )
    return records


def test_replay_equals_live_and_feeds_the_verdict():
    records = trace([1.0, 0.4, 0.3, 0.35, 0.35, 0.35], [0.5, 0.5, 0.5, 0.0, 0.0, 0.0])
    events = detect_run(records, CFG)
    assert [e.rule for e in events] == ["output_collapse"]
    with_events = records + [e.to_record(t=110.0) for e in events]
    verdict = classify_run(with_events, "finished")
    assert (verdict.label, verdict.rule, verdict.onset_epoch, verdict.epoch) == (
        "collapsed",
        "output_collapse",
        3,
        4,
    )
    assert verdict.t_since_start == 10.0 and "collapsed" in verdict.text


def test_verdict_labels():
    healthy = trace([1.0, 0.5, 0.4], [0.5] * 3)
    assert classify_run(healthy, "finished").label == "healthy"
    assert classify_run(healthy, "running").label == "running"
    assert classify_run(healthy, "failed").label == "failed"
    assert classify_run(healthy, "crashed").label == "incomplete"
    assert classify_run(healthy[:-1], "finished").label == "incomplete"  # short of its epochs
    nan = healthy + [{"type": "event", "rule": "nonfinite_loss", "epoch": 1, "t": 103.0}]
    assert classify_run(nan, "failed").label == "nan"
    div = healthy + [{"type": "event", "rule": "divergence", "epoch": 2, "t": 104.0}]
    assert classify_run(div, "finished").label == "diverged"
