"""A small, frozen study with sweeps for the group view, written with the engine's TelemetryWriter.

Every value is fixed (no clock, no randomness), so snapshot tests are stable. Groups (a sweep
point without its seed, engine/study/sweeps.py):

- ``arm_a``          the arm and its seeds sweep: arm and seed 11 finished healthy, seed 12
                     collapsed (output_collapse), seed 13 not started -> collapsed 1/3
- ``arm_b.lr-0.001`` seeds 21 and 22 finished healthy -> 0/2
- ``arm_b.lr-0.01``  seed 21 failed (never counts), seed 22 stopped after a collapse -> 1/1
- ``arm_b``          the plain arm, not started: a group of one
"""

from __future__ import annotations

from pathlib import Path

from engine.atomic import atomic_write_json
from engine.runs.telemetry import TelemetryWriter
from tests.app.studyfix import (
    STEPS_PER_EPOCH,
    T0,
    checked,
    epoch,
    final_metrics,
    header,
    metrics_record,
    step,
    write_status,
)
from tests.tiny import tiny_study

EPOCHS = 4
ARMS = {"arm_a": {}, "arm_b": {"architecture": "hybrid"}}
SWEEPS = {
    "seeds": {"arms": ["arm_a"], "grid": {"seed": [11, 12, 13]}},
    "lr": {"arms": ["arm_b"], "grid": {"seed": [21, 22], "lr": [0.001, 0.01]}},
}


def records(run: str, scale: float, done: int = EPOCHS) -> list[dict]:
    """Header, steps and epochs of ``done`` epochs; the validation loss is scaled by ``scale``."""
    recs = [header(run, EPOCHS)]
    for e in range(done):
        for k in range(STEPS_PER_EPOCH):
            i = e * STEPS_PER_EPOCH + k
            recs.append(step(i, scale / (1 + i / 5), 1.0 + 0.1 * (k % 4)))
        recs.append(epoch(e, scale * 0.8 / (e + 1)))
    return recs


def collapse_event(e: int) -> dict:
    return {
        "type": "event",
        "rule": "output_collapse",
        "severity": "collapse",
        "epoch": e,
        "step": (e + 1) * STEPS_PER_EPOCH,
        "value": 0.001,
        "threshold": 0.012,
        "message": "predicted amplitude std 0.001 < 0.1 x target",
        "t": T0 + 31,
    }


def write_run(runs: Path, name: str, recs: list[dict], **status) -> None:
    """The run's telemetry through the engine's writer, and its status.json."""
    writer = TelemetryWriter(runs / name / "telemetry.jsonl")
    try:
        for rec in recs:
            writer.write(checked(rec))
    finally:
        writer.close()
    write_status(runs / name, epochs=EPOCHS, **status)


def finished(runs: Path, name: str, scale: float) -> None:
    recs = records(name, scale)
    metrics = final_metrics(twin=False)
    atomic_write_json(runs / name / "metrics.json", metrics)
    recs.append(metrics_record(metrics, epoch=EPOCHS - 1, step=EPOCHS * STEPS_PER_EPOCH))
    recs.append({"type": "status", "state": "finished", "exit_code": 0, "t": T0 + 71})
    write_run(runs, name, recs, state="finished", exit_code=0, epoch=EPOCHS)


# The arm_a group's row (group, collapsed, verdicts, runs, best val, SSIM): arm and seeds 11
# and 12 settled (12 collapsed), seed 13 not started and not counted.
ARM_A_GROUP_ROW = ("arm_a", "1/3 (6–79 %)", "✔ 2 ✖ 1", "✔3 ○1", "0.2 (0.1–0.8)", "0.998")


def make_sweep_study(root: Path) -> Path:
    tiny_study(root, "sweepfix", ARMS, sweeps=SWEEPS, architecture="cnn", epochs=EPOCHS, seed=3)
    arms, runs = root / "arms.toml", root / "runs"
    finished(runs, "arm_a", 1.0)
    finished(runs, "arm_a.seed-11", 0.5)
    collapsed = records("arm_a.seed-12", 2.0, done=2) + [collapse_event(1)]
    collapsed.append({"type": "status", "state": "finished", "exit_code": 0, "t": T0 + 40})
    write_run(runs, "arm_a.seed-12", collapsed, state="finished", exit_code=0, epoch=2)
    finished(runs, "arm_b.lr-0.001.seed-21", 0.25)
    finished(runs, "arm_b.lr-0.001.seed-22", 0.75)
    failed = records("arm_b.lr-0.01.seed-21", 1.0, done=1)
    failed.append(
        {
            "type": "status",
            "state": "failed",
            "exit_code": 1,
            "error": "RuntimeError: boom",
            "t": T0,
        }
    )
    write_run(runs, "arm_b.lr-0.01.seed-21", failed, state="failed", exit_code=1, error="boom")
    stopped = records("arm_b.lr-0.01.seed-22", 3.0, done=2) + [collapse_event(1)]
    stopped.append({"type": "status", "state": "killed", "exit_code": 130, "t": T0 + 40})
    write_run(runs, "arm_b.lr-0.01.seed-22", stopped, state="killed", exit_code=130, epoch=2)
    return arms
