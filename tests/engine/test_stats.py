"""Per-arm statistics: the original stats-dump keys, verdict fields, tolerance of damaged runs."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import numpy as np
import pytest

from engine.reporting.evidence import is_norm_weight, read_run, run_id
from engine.reporting.levels import constant_output_val_loss
from engine.reporting.stats import (
    arm_stats,
    epoch_frame,
    norm_weight_near_zero,
    norm_weight_summary,
)
from engine.runs.telemetry import encode_record

ORIGINAL_KEYS = (
    "val_loss_best",
    "val_loss_final",
    "train_loss_final",
    "has_nan",
    "n_epochs",
    "grad_norm_mean",
    "grad_norm_max",
    "grad_norm_min",
    "amp_mae",
    "phase_mae",
    "amp_ssim",
    "phase_ssim",
    "amp_psnr",
    "phase_psnr",
    "norm_weights",
    "norm_weight_near_zero",
)


def header(epochs=4, start=1.7e9, pid=4242):
    return {
        "type": "header",
        "schema": "fnotui/1",
        "arm": "a",
        "pid": pid,
        "start_time": start,
        "config": {
            "data": {"N": 8},
            "model": {"architecture": "cnn"},
            "train": {"epochs": epochs, "loss": "mae", "infer_batch_size": 2},
        },
        "target_amp_std": 0.2,
        "steps_per_epoch": 2,
        "t": start,
    }


def epoch_rec(e, val, pred_std=0.15, train=None, grad=1.0):
    return {
        "type": "epoch",
        "epoch": e,
        "step": 2 * (e + 1),
        "train_loss": train or val * 1.1,
        "val_loss": val,
        "grad_norm": grad,
        "lr": 1e-3,
        "pred_amp_std": pred_std,
        "t": 1.7e9 + e + 1,
    }


def step_rec(e, i, loss=0.3, grad=1.0):
    return {
        "type": "step",
        "epoch": e,
        "step": 2 * e + i,
        "loss": loss,
        "grad_norm": grad,
        "lr": 1e-3,
        "t": 1.7e9 + e + i / 2,
    }


def write_run(root, records, status="finished", metrics=True, history=None, tail=b""):
    root.mkdir(parents=True, exist_ok=True)
    data = "".join(encode_record(r) for r in records).encode() + tail
    (root / "telemetry.jsonl").write_bytes(data)
    st = {
        "state": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": 1.7e9,
        "heartbeat": time.time(),
    }
    (root / "status.json").write_text(json.dumps(st))
    if metrics:
        (root / "metrics.json").write_text(
            json.dumps(
                {
                    "mae": [0.1, 0.2],
                    "mse": [0.01, 0.04],
                    "psnr": [20.0, 15.0],
                    "ssim": [0.8, 0.7],
                    "ms_ssim": [None, None],
                    "frc50": [0.3, None],
                    "phase_vacuous": True,
                }
            )
        )
    if history is not None:
        (root / "history.json").write_text(json.dumps(history))
    return root


def healthy_records(epochs=4):
    recs = [header(epochs)]
    for e in range(epochs):
        recs += [step_rec(e, 0, grad=0.5 + e), step_rec(e, 1, grad=2.0 + e)]
        recs.append(epoch_rec(e, 0.5 / (e + 1)))
    recs.append({"type": "status", "state": "finished", "exit_code": 0, "t": 1.7e9 + 9})
    return recs


def test_stats_have_every_original_stats_dump_key(tmp_path):
    s = arm_stats(read_run("a", write_run(tmp_path / "a", healthy_records())))
    for key in ORIGINAL_KEYS:
        assert key in s, key
    assert s["n_epochs"] == 4 and s["val_loss_best"] == pytest.approx(0.125)
    assert s["val_loss_final"] == pytest.approx(0.125) and s["best_epoch"] == 3
    assert s["grad_norm_min"] == 0.5 and s["grad_norm_max"] == 5.0
    assert s["grad_norm_mean"] == pytest.approx(np.mean([0.5, 2, 1.5, 3, 2.5, 4, 3.5, 5]))
    assert s["amp_ssim"] == 0.8 and s["phase_psnr"] == 15.0 and s["phase_frc50"] is None
    assert s["phase_vacuous"] is True and s["has_nan"] is False
    assert s["verdict"]["label"] == "healthy" and s["collapse_epoch"] is None
    assert s["norm_weight_near_zero"] is None  # no normalisation weights at all


def test_collapse_epoch_and_time_come_from_the_recorded_event(tmp_path):
    recs = healthy_records(6)[:-1]
    recs.insert(
        -2,
        {
            "type": "event",
            "rule": "output_collapse",
            "severity": "collapse",
            "epoch": 4,
            "step": 10,
            "value": 0.0,
            "threshold": 0.01,
            "message": "constant",
            "onset_epoch": 3,
            "t": 1.7e9 + 5.5,
        },
    )
    s = arm_stats(read_run("a", write_run(tmp_path / "a", recs)))
    assert s["verdict"]["label"] == "collapsed"
    assert (s["collapse_epoch"], s["collapse_onset_epoch"]) == (4, 3)
    assert s["collapse_time_s"] == pytest.approx(5.5)
    curve = s["failure_curve"]
    assert curve["onset_epoch"] == 3 and curve["best_epoch_before_onset"] == 2
    assert curve["val_loss_before"] == pytest.approx(0.5 / 3)


def test_nan_step_sets_has_nan_and_grad_stats_ignore_it(tmp_path):
    recs = healthy_records()
    recs.insert(3, step_rec(0, 1, loss=math.nan, grad=math.inf))
    s = arm_stats(read_run("a", write_run(tmp_path / "a", recs)))
    assert s["has_nan"] is True
    assert s["grad_norm_max"] == 5.0 and s["grad_norm_nonfinite"] == 1


def test_norm_weight_keys_and_near_zero_rule():
    assert is_norm_weight("blocks.0.norm.weight")
    assert is_norm_weight("encoder.1.groupnorm.weight")
    assert not is_norm_weight("blocks.0.norm.bias")
    assert not is_norm_weight("blocks.0.conv.weight")
    summary = norm_weight_summary(
        {"b.norm.weight": np.array([0.01, -0.03]), "c.norm.weight": np.array([0.05, 0.05])}
    )
    assert summary["b.norm.weight"] == {
        "mean": pytest.approx(-0.01),
        "std": pytest.approx(0.02),
        "abs_max": pytest.approx(0.03),
    }
    assert norm_weight_near_zero(summary) is True
    summary["d.norm.weight"] = {"mean": 1.0, "std": 0.0, "abs_max": 1.0}
    assert norm_weight_near_zero(summary) is False
    assert norm_weight_near_zero({}) is None


def test_norm_weights_are_read_from_the_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    root = write_run(tmp_path / "a", healthy_records())
    torch.save(
        {"blk.norm.weight": torch.zeros(4), "blk.conv.weight": torch.ones(2, 2)}, root / "model.pt"
    )
    s = arm_stats(read_run("a", root))
    assert list(s["norm_weights"]) == ["blk.norm.weight"]
    assert s["norm_weight_near_zero"] is True and s["norm_weights_source"] == "model.pt"


def test_missing_run_directory_is_not_started(tmp_path):
    ev = read_run("ghost", tmp_path / "ghost")
    assert ev.state == "not started" and ev.problems
    s = arm_stats(ev)
    assert s["run_id"] is None and s["n_epochs"] == 0 and s["verdict"]["label"] == "incomplete"


def test_truncated_telemetry_is_used_up_to_its_last_complete_line(tmp_path):
    recs = healthy_records()[:-1]  # no final status record
    root = write_run(
        tmp_path / "a", recs, status="finished", metrics=False, tail=b'{"type":"step","epoch":4,"st'
    )
    ev = read_run("a", root)
    assert any("unterminated" in p for p in ev.problems)
    assert any("metrics.json" in p for p in ev.problems)
    s = arm_stats(ev)
    assert s["n_epochs"] == 4 and s["amp_ssim"] is None


def test_garbage_lines_are_counted_not_fatal(tmp_path):
    root = write_run(tmp_path / "a", healthy_records())
    with open(root / "telemetry.jsonl", "ab") as fh:
        fh.write(b"not json\n")
    ev = read_run("a", root)
    assert any("unparseable" in p for p in ev.problems)
    assert arm_stats(ev)["telemetry"]["bad_lines"] == 1


def test_history_fills_in_when_telemetry_is_short(tmp_path):
    recs = healthy_records()[:4]  # header and epoch 0 only
    history = {
        "train_loss": [1.0, 0.8, 0.7],
        "val_loss": [0.9, 0.7, 0.6],
        "grad_norm": [1, 1, 1],
        "lr": [1e-3] * 3,
        "pred_amp_std": [0.1] * 3,
    }
    root = write_run(tmp_path / "a", recs, history=history)
    frame = epoch_frame(read_run("a", root).records, history)
    assert frame["val_loss"].to_list() == [0.9, 0.7, 0.6]


def test_nan_epochs_known_only_from_history_end_the_run_as_nan(tmp_path):
    # A reader that cannot decode the NaN epoch records still has history.json, where the
    # engine's strict JSON wrote each non-finite value as null.
    recs = healthy_records()[:4]
    history = {
        "train_loss": [1.0, None, None],
        "val_loss": [0.9, None, None],
        "grad_norm": [1, None, None],
        "lr": [1e-3] * 3,
        "pred_amp_std": [0.1, None, None],
    }
    s = arm_stats(read_run("a", write_run(tmp_path / "a", recs, history=history)))
    assert s["n_epochs"] == 3 and s["has_nan"] is True
    assert s["val_loss_final"] is None and s["val_loss_best"] == 0.9


def test_no_telemetry_gives_no_healthy_verdict(tmp_path):
    root = write_run(tmp_path / "a", [], status="finished")
    (root / "telemetry.jsonl").unlink()
    s = arm_stats(read_run("a", root))
    assert s["verdict"]["label"] == "incomplete"


def test_run_id_is_stable_and_names_arm_start_and_pid():
    h = header(start=1_700_000_000.25, pid=77)
    assert run_id("arm_x", h) == run_id("arm_x", dict(h)) == "arm_x-20231114T221320Z-77"
    assert run_id("arm_x", None) is None


def test_constant_output_loss_is_the_minimum_over_constants():
    torch = pytest.importorskip("torch")
    from engine.sim.physics import ForwardModel, mae_loss

    rng = np.random.default_rng(0)
    probe = (rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))).astype(np.complex64)
    y = rng.gamma(2.0, 1.0, size=(5, 8, 8)).astype(np.float32)
    best, c = constant_output_val_loss(y, probe, "mae", batch=2)
    physics = ForwardModel(torch.from_numpy(probe))

    def loss_at(const):
        pred = physics(torch.full((5, 8, 8), const, dtype=torch.complex64))
        yt = torch.from_numpy(y)
        return float(
            torch.stack([mae_loss(pred[s : s + 2], yt[s : s + 2]) for s in range(0, 5, 2)]).mean()
        )

    grid = np.exp(np.linspace(np.log(c) - 2, np.log(c) + 2, 101))
    assert best == pytest.approx(loss_at(c), rel=1e-6)
    assert best <= min(loss_at(g) for g in grid) + 1e-6


def test_epoch_frame_pads_a_newer_history_key_of_a_resumed_run_at_the_front():
    # Resumed from a checkpoint written before val_amp_mae existed: only the last two epochs
    # have it; the other series must not be cut to two epochs.
    history = {
        "train_loss": [0.5, 0.4, 0.3, 0.2],
        "val_loss": [0.6, 0.5, 0.4, 0.3],
        "grad_norm": [1.0] * 4,
        "lr": [1e-3] * 4,
        "pred_amp_std": [0.1] * 4,
        "val_amp_mae": [0.2, 0.15],
    }
    frame = epoch_frame([], history)
    assert frame["val_loss"].to_list() == [0.6, 0.5, 0.4, 0.3]
    mae = frame["val_amp_mae"].to_list()
    assert math.isnan(mae[0]) and math.isnan(mae[1]) and mae[2:] == [0.2, 0.15]
