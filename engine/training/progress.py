"""What the loop reports as it goes: step records flushed from the device in batches (with the
step detectors' firings), detector reactions, and the one console line per epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.config import ArmConfig
from engine.fmt import fmt_duration
from engine.runs.schema import STEP
from engine.runs.telemetry import TelemetryWriter
from engine.scoring.detectors import Event, StepDetectors

# Step records are buffered on the device and copied to the host in one transfer every this many
# steps (or at the epoch end): a per-step .item() would stall a GPU (docs/engineering.md,
# 'Throughput on a GPU').
STEP_FLUSH_EVERY = 32
# ... and at least this often, so that a dashboard is never more than about this far behind even
# when a step takes seconds (an epoch of the quick profile on a CPU is 28 steps, 60-90 s).
STEP_FLUSH_SECONDS = 2.0


def flush_due(pending: list[tuple], now: float) -> bool:
    """Whether the buffered steps should go out now: by count, or by the age of the oldest."""
    return bool(pending) and (
        len(pending) >= STEP_FLUSH_EVERY or now - pending[0][4] >= STEP_FLUSH_SECONDS
    )


@dataclass
class EpochSummary:
    """What the console line and callers need after each epoch."""

    epoch: int  # 1-based, as printed
    epochs: int
    train_loss: float
    val_loss: float
    grad_norm: float
    lr: float
    samples_per_s: float
    epoch_time: float
    eta_s: float


def react(cfg: ArmConfig, events: list[Event], log) -> str | None:
    """Log detector firings; under on_collapse = "stop", return why training must stop."""
    reason = None
    for e in events:
        if e.severity in ("warning", "collapse", "fatal"):
            log(
                f"[{cfg.name}] {e.severity}: {e.rule} at epoch {e.epoch + 1}, step {e.step}: "
                f"{e.message}"
            )
        if e.severity in ("collapse", "fatal") and cfg.train.on_collapse == "stop":
            reason = reason or e.rule
    return reason


def format_epoch_line(arm: str, e: EpochSummary) -> str:
    return (
        f"[{arm}] epoch {e.epoch:>{len(str(e.epochs))}}/{e.epochs}  loss {e.train_loss:.4g}  "
        f"val {e.val_loss:.4g}  |g| {e.grad_norm:.3g}  lr {e.lr:.3g}  "
        f"{e.samples_per_s:.0f} samples/s  {e.epoch_time:.1f}s/epoch  "
        f"ETA {fmt_duration(e.eta_s)}"
    )


def flush_steps(
    telemetry: TelemetryWriter,
    pending: list[tuple],
    epoch: int,
    lr: float,
    detectors: StepDetectors | None = None,
) -> list[Event]:
    """One host transfer for the buffered step values, then one record per step; the step
    detectors see each value and their firings are written right after the step they concern."""
    if not pending:
        return []
    nan = torch.full((), math.nan, device=pending[0][1].device)
    values = (
        torch.stack(
            [
                torch.stack(
                    [
                        loss.float(),
                        (nan if pre is None else pre).float(),
                        (nan if post is None else post).float(),
                    ]
                )
                for _, loss, pre, post, _ in pending
            ]
        )
        .cpu()
        .tolist()
    )
    events: list[Event] = []
    for (step, _, pre, post, t), (loss, pre_v, post_v) in zip(pending, values):
        record = STEP.record(epoch=epoch, step=step, loss=loss, lr=lr, t=t)
        if pre is not None:
            record["grad_norm"] = pre_v
        if post is not None:
            record["grad_norm_clipped"] = post_v
        telemetry.write(record)
        if detectors is not None:
            fired = detectors.update(epoch, step, loss, pre_v if pre is not None else None)
            for event in fired:
                telemetry.write(event.to_record(t))
            events += fired
    return events
