"""A small, frozen study on disk for the dashboard tests: real arms.toml, real telemetry.

Every value is fixed (no clock, no randomness), so snapshot tests are stable. Arms:

- ``arm_ok``        finished, healthy, with a recon.npz and its final metrics (metrics.json and
                    the telemetry ``metrics`` record, as the engine writes them)
- ``arm_collapse``  finished, an output_collapse alarm, then NaN and inf losses
- ``arm_failed``    failed after two epochs
- ``arm_stale``     "running" on another host with an old heartbeat: stale
- ``arm_idle``      not started
- ``old_arm``       a run directory that arms.toml does not name; it reconstructed the twin
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_json
from engine.runs.schema import RECORD_KINDS
from engine.runs.telemetry import encode_record
from engine.scoring.metrics import compute_metrics
from engine.scoring.twin import classify_branches, twin_block, twin_headline, twin_image
from tests.tiny import TINY_DATA, TINY_GENERATOR

ARMS_TOML = f"""
[study]
name = "fixture"
output_dir = "runs"

[data]
{TINY_DATA}
train_stride = 8
test_stride = 8
set_phi = true

[defaults]
fno_width = 4
{TINY_GENERATOR}
epochs = 6
batch_size = 8
infer_batch_size = 7
seed = 3

[arms.arm_ok]
architecture = "stable_hybrid"

[arms.arm_collapse]
architecture = "hybrid"

[arms.arm_failed]
architecture = "fno"

[arms.arm_stale]
architecture = "cnn"

[arms.arm_idle]
architecture = "cnn"
"""

T0 = 1_700_000_000.0
STEPS_PER_EPOCH = 10


def header(arm: str, epochs: int = 6) -> dict:
    return {
        "type": "header",
        "schema": "fnotui/1",
        "arm": arm,
        "config": {
            "name": arm,
            "train": {"epochs": epochs, "batch_size": 8, "lr": 1e-3, "optimizer": "adam"},
            "model": {"architecture": "hybrid"},
            "data": {"N": 32},
        },
        "parameters": 1234,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "target_amp_std": 0.12,
        "optimizer": {"class": "Adam", "lr": 1e-3},
        "clip": {"enabled": False},
        "host": "fixture-host",
        "pid": 1,
        "start_time": T0,
        "t": T0,
    }


def step(i: int, loss: float, grad: float) -> dict:
    return {
        "type": "step",
        "epoch": i // STEPS_PER_EPOCH,
        "step": i,
        "loss": loss,
        "lr": 1e-3,
        "t": T0 + i,
        "grad_norm": grad,
    }


def epoch(e: int, val: float, pred_std: float = 0.1) -> dict:
    return {
        "type": "epoch",
        "epoch": e,
        "step": (e + 1) * STEPS_PER_EPOCH,
        "train_loss": 1.0 / (e + 1),
        "val_loss": val,
        "grad_norm": 1.0,
        "lr": 1e-3,
        "next_lr": 1e-3,
        "pred_amp_std": pred_std,
        "target_amp_std": 0.12,
        # error vs ground truth: grows as the output loses its spread
        "val_amp_mae": 0.05 + 0.1 * val + (0.12 - min(pred_std, 0.12)),
        "epoch_time": 10.0,
        "samples_per_s": 8.0,
        "t": T0 + (e + 1) * STEPS_PER_EPOCH,
    }


def healthy_records(arm: str, epochs: int = 6, done: int = 6) -> list[dict]:
    recs = [header(arm, epochs)]
    for e in range(done):
        for k in range(STEPS_PER_EPOCH):
            i = e * STEPS_PER_EPOCH + k
            recs.append(step(i, 1.0 / (1 + i / 5) + 0.02 * (k % 3), 1.0 + 0.1 * (k % 4)))
        recs.append(epoch(e, 0.8 / (e + 1)))
    return recs


def checked(record: dict) -> dict:
    """The record as its kind's declaration builds it (engine/runs/schema.py): a fixture record
    with a field the engine does not write, or without one it always writes, fails here. The
    fixture headers stay partial on purpose (the dashboard must read what older engines wrote),
    so only their fields are checked, not their completeness."""
    kind = RECORD_KINDS[record["type"]]
    fields = {k: v for k, v in record.items() if k != "type"}
    if record["type"] == "header":
        undeclared = set(fields) - set(kind.names)
        assert not undeclared, f"header fields the engine never writes: {sorted(undeclared)}"
        return record
    return kind.record(**fields)


def write_telemetry(path: Path, records: list[dict], partial: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(encode_record(checked(r)) for r in records).encode() + partial)


def queue_arm(study_file: Path, arm: str, reason: str) -> None:
    """``arm`` queued by a live process of this host (this one), with the reason it waits:
    status.json written by the engine's own StatusFile, as engine/training/devices.py does
    while an arm waits for a device."""
    from engine.runs.rundir import RunDir
    from engine.runs.status import StatusFile
    from engine.study.arms import load_study

    epochs = load_study(study_file, validate_models=False).arms[arm].train.epochs
    run = RunDir(study_file.parent / "runs" / arm)
    run.root.mkdir(parents=True)
    StatusFile(run, arm, epochs).write(state="queued", queue=reason)


def write_status(run: Path, **fields) -> None:
    run.mkdir(parents=True, exist_ok=True)
    status = {
        "arm": run.name,
        "pid": 1,
        "host": "fixture-host",
        "started": T0,
        "heartbeat": T0 + 100,
        "epoch": 0,
        "epochs": 6,
        "step": 0,
        "exit_code": None,
        "error": None,
        "ended": None,
        **fields,
    }
    (run / "status.json").write_text(json.dumps(status))


def make_study(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    arms = root / "arms.toml"
    arms.write_text(textwrap.dedent(ARMS_TOML))
    runs = root / "runs"

    ok = healthy_records("arm_ok")
    ok_metrics = final_metrics(twin=False)
    atomic_write_json(runs / "arm_ok" / "metrics.json", ok_metrics)
    ok.append(metrics_record(ok_metrics, epoch=5, step=60))
    ok.append(
        {"type": "status", "state": "finished", "exit_code": 0, "epochs_done": 6, "t": T0 + 71}
    )
    write_telemetry(runs / "arm_ok" / "telemetry.jsonl", ok)
    write_status(runs / "arm_ok", state="finished", exit_code=0, epoch=6, step=60)
    write_recon(runs / "arm_ok" / "recon.npz")

    bad = healthy_records("arm_collapse", done=3)
    bad.append(
        {
            "type": "event",
            "rule": "output_collapse",
            "severity": "collapse",
            "epoch": 2,
            "step": 30,
            "value": 0.001,
            "threshold": 0.012,
            "message": "predicted amplitude std 0.001 < 0.1 x target",
            "t": T0 + 31,
        }
    )
    for i in range(30, 40):
        loss = math.nan if i >= 35 else (math.inf if i == 33 else 5.0)
        bad.append(step(i, loss, math.nan if i >= 35 else 50.0))
    bad.append(
        {
            "type": "event",
            "rule": "nonfinite_loss",
            "severity": "fatal",
            "epoch": 3,
            "step": 35,
            "value": math.nan,
            "threshold": 0.0,
            "message": "step loss is NaN",
            "t": T0 + 36,
        }
    )
    bad.append(
        {"type": "status", "state": "finished", "exit_code": 0, "epochs_done": 3, "t": T0 + 40}
    )
    write_telemetry(runs / "arm_collapse" / "telemetry.jsonl", bad)
    write_status(runs / "arm_collapse", state="finished", exit_code=0, epoch=3, step=40)

    failed = healthy_records("arm_failed", done=2)
    failed.append(
        {
            "type": "status",
            "state": "failed",
            "exit_code": 1,
            "error": "RuntimeError: boom",
            "t": T0 + 25,
        }
    )
    write_telemetry(runs / "arm_failed" / "telemetry.jsonl", failed)
    write_status(runs / "arm_failed", state="failed", exit_code=1, error="RuntimeError: boom")

    write_telemetry(
        runs / "arm_stale" / "telemetry.jsonl",
        healthy_records("arm_stale", done=1),
        partial=b'{"type":"step","epoch":1,"st',
    )
    write_status(runs / "arm_stale", state="running", host="elsewhere", pid=4242, heartbeat=T0 + 10)

    old = healthy_records("old_arm", 2, 2)
    old_metrics = final_metrics(twin=True)
    atomic_write_json(runs / "old_arm" / "metrics.json", old_metrics)
    old.append(metrics_record(old_metrics, epoch=1, step=20))
    write_telemetry(runs / "old_arm" / "telemetry.jsonl", old)
    write_status(runs / "old_arm", state="finished", exit_code=0)
    return arms


def fixture_images(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, reconstruction) of the fixture, complex n x n, finite everywhere."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    gt_amp = 0.5 + 0.5 * ((np.floor(xx * 6) + np.floor(yy * 6)) % 2) + 0.3 * xx * yy
    gt_phase = np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy)
    return gt_amp * np.exp(1j * gt_phase), (gt_amp * 0.9 + 0.05) * np.exp(1j * gt_phase * 0.8)


def final_metrics(twin: bool, tile: int = 16) -> dict:
    """metrics.json of a finished run, computed by the engine's metric and twin code: the
    fixture reconstruction (or its twin, tile by tile) scored against the ground truth, its
    tiles (as non-overlapping patches) classified by branch."""
    gt, recon = fixture_images()
    if twin:
        recon = twin_image(recon, tile)
    n = gt.shape[0] // tile

    def tiles(image: np.ndarray) -> np.ndarray:
        return image.reshape(n, tile, n, tile).transpose(0, 2, 1, 3).reshape(-1, tile, tile)

    branches = classify_branches(tiles(recon), tiles(gt))
    assert branches.fraction == (1.0 if twin else 0.0)  # the fixture means what it says
    metrics = compute_metrics(recon, gt)
    metrics["twin"] = twin_block(branches, compute_metrics(recon, twin_image(gt, tile)))
    return metrics


def metrics_record(metrics: dict, epoch: int, step: int) -> dict:
    """The telemetry record engine.training.train writes after the final evaluation."""
    headline = {k: metrics[k] for k in ("mae", "mse", "psnr", "ssim", "frc50")}
    return {
        "type": "metrics",
        "epoch": epoch,
        "step": step,
        "weights": "last epoch",
        "metrics": {**headline, **twin_headline(metrics)},
        "t": T0 + 70,
    }


def write_recon(path: Path, n: int = 48) -> None:
    yy, xx = np.mgrid[0:n, 0:n] / n
    gt_amp = 0.5 + 0.5 * ((np.floor(xx * 6) + np.floor(yy * 6)) % 2)
    gt_phase = np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy)
    recon_amp = gt_amp * 0.9 + 0.05
    recon_phase = gt_phase * 0.8
    recon_amp[3, 3] = np.nan  # a NaN pixel must show, not crash
    np.savez(
        path,
        recon_amplitude=recon_amp,
        recon_phase=recon_phase,
        gt_amplitude=gt_amp,
        gt_phase=gt_phase,
    )
