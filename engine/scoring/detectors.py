"""Collapse and instability detectors: small state machines fed one value at a time.

They take numbers and return ``Event``s; no I/O, no clock. The engine feeds them live and writes
each firing as an ``event`` telemetry record; ``detect_run`` replays a finished telemetry stream
through the same code, so the engine, the dashboard and the exporter share one truth.

Every rule has a warm-up, a patience and hysteresis (a rule that fired re-arms only after the
signal has returned to normal), so one episode gives one event, not one per step.

Rules (thresholds in arms.toml ``[detect]``, see docs/arms.md; rationale in docs/detectors.md):

========================  ========  ============================================================
rule                      severity  fires when
========================  ========  ============================================================
``nonfinite_loss``        fatal     a step loss is NaN or inf (at once)
``nonfinite_grad``        fatal     a pre-clip grad norm is NaN or inf (at once)
``nonfinite_val``         fatal     a validation loss is NaN or inf (at once)
``loss_spike``            warning   step loss z-score over a rolling window > loss_spike_z
``grad_spike``            warning   log grad-norm z-score against its EMA > grad_spike_z
``divergence``            collapse  val loss > divergence_factor x its best, patience epochs
``output_collapse``       collapse  predicted-amplitude std < collapse_std_ratio x target's,
                                    patience epochs (the constant-amplitude collapse)
``plateau``               info      no relative val improvement > plateau_min_delta for
                                    plateau_patience epochs
========================  ========  ============================================================
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from engine.config import DetectConfig
from engine.runs.schema import EVENT

SEVERITIES = ("info", "warning", "collapse", "fatal")
# Rules whose firing means the arm failed to train (they decide the verdict).
COLLAPSE_RULES = ("output_collapse", "divergence")
FATAL_RULES = ("nonfinite_loss", "nonfinite_grad", "nonfinite_val")
# A window whose values are (nearly) constant has std ~ 0 and would turn any wiggle into an
# "infinite" z-score: floor the spread at this fraction of the mean's magnitude.
RELATIVE_STD_FLOOR = 1e-3


@dataclass(frozen=True)
class Event:
    rule: str
    severity: str
    epoch: int
    step: int
    value: float
    threshold: float
    message: str
    onset_epoch: int | None = None  # first epoch of the condition (epoch rules with patience)

    def to_record(self, t: float) -> dict:
        values = asdict(self)
        if values["onset_epoch"] is None:
            del values["onset_epoch"]
        return EVENT.record(**values, t=t)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class _Latch:
    """Hysteresis for one rule: fire once, re-arm when the signal is normal again."""

    def __init__(self) -> None:
        self.armed = True

    def trigger(self) -> bool:
        if self.armed:
            self.armed = False
            return True
        return False

    def rearm(self) -> None:
        self.armed = True


class LossSpikeRule:
    """Upward z-score of a step loss against the previous ``window`` finite losses."""

    def __init__(self, cfg: DetectConfig):
        self.cfg = cfg
        self.window: deque[float] = deque(maxlen=cfg.loss_spike_window)
        self.latch = _Latch()

    def z(self, x: float) -> float | None:
        if len(self.window) < self.cfg.loss_spike_warmup:
            return None
        n = len(self.window)
        mean = sum(self.window) / n
        var = sum((v - mean) ** 2 for v in self.window) / n
        spread = max(math.sqrt(var), RELATIVE_STD_FLOOR * abs(mean), 1e-12)
        return (x - mean) / spread

    def update(self, epoch: int, step: int, x: float) -> Event | None:
        if not _finite(x):
            return None
        z = self.z(x)
        event = None
        if z is not None:
            if z > self.cfg.loss_spike_z and self.latch.trigger():
                event = Event(
                    "loss_spike",
                    "warning",
                    epoch,
                    step,
                    x,
                    self.cfg.loss_spike_z,
                    f"step loss {x:.4g} is {z:.1f} sd above the last {len(self.window)} steps",
                )
            elif z < self.cfg.spike_rearm_z:
                self.latch.rearm()
        self.window.append(x)
        return event


class GradSpikeRule:
    """Upward z-score of log(grad norm) against its exponential moving mean and variance.

    Grad norms vary multiplicatively, so the rule works in log space; a spike enters the EMA
    only clipped to the threshold, so one spike does not blind the rule to the next (ZClip's
    idea, arXiv 2504.02507). The first ``grad_spike_warmup`` values only build the statistics.
    """

    def __init__(self, cfg: DetectConfig):
        self.cfg = cfg
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.latch = _Latch()

    def update(self, epoch: int, step: int, g: float) -> Event | None:
        if not _finite(g) or g <= 0:
            return None
        x = math.log(g)
        c = self.cfg
        if self.n < c.grad_spike_warmup:  # Welford for the warm-up values
            self.n += 1
            delta = x - self.mean
            self.mean += delta / self.n
            self.var += (delta * (x - self.mean) - self.var) / self.n
            return None
        sd = max(math.sqrt(self.var), 1e-6)
        z = (x - self.mean) / sd
        event = None
        if z > c.grad_spike_z and self.latch.trigger():
            event = Event(
                "grad_spike",
                "warning",
                epoch,
                step,
                g,
                math.exp(self.mean + c.grad_spike_z * sd),
                f"grad norm {g:.4g} is {z:.1f} sd (log scale) above its moving average",
            )
        elif z < c.spike_rearm_z:
            self.latch.rearm()
        x = min(x, self.mean + c.grad_spike_z * sd)
        a = c.grad_spike_alpha
        delta = x - self.mean
        self.mean += (1 - a) * delta
        self.var = a * (self.var + (1 - a) * delta * delta)
        return event


class StepDetectors:
    """Rules evaluated on every optimizer step."""

    def __init__(self, cfg: DetectConfig):
        self.loss_spike = LossSpikeRule(cfg)
        self.grad_spike = GradSpikeRule(cfg)
        self.nonfinite_loss = _Latch()
        self.nonfinite_grad = _Latch()

    def update(self, epoch: int, step: int, loss: float, grad_norm: float | None) -> list[Event]:
        events = []
        if not _finite(loss):
            if self.nonfinite_loss.trigger():
                events.append(
                    Event(
                        "nonfinite_loss",
                        "fatal",
                        epoch,
                        step,
                        loss,
                        math.nan,
                        f"training loss is {loss} at step {step}",
                    )
                )
        else:
            self.nonfinite_loss.rearm()
            e = self.loss_spike.update(epoch, step, loss)
            if e:
                events.append(e)
        if grad_norm is not None:
            if not _finite(grad_norm):
                if self.nonfinite_grad.trigger():
                    events.append(
                        Event(
                            "nonfinite_grad",
                            "fatal",
                            epoch,
                            step,
                            grad_norm,
                            math.nan,
                            f"grad norm is {grad_norm} at step {step}",
                        )
                    )
            else:
                self.nonfinite_grad.rearm()
                e = self.grad_spike.update(epoch, step, grad_norm)
                if e:
                    events.append(e)
        return events


class _Persistence:
    """Counts consecutive epochs a condition holds; remembers where the run of epochs began."""

    def __init__(self, patience: int):
        self.patience = patience
        self.count = 0
        self.onset: int | None = None
        self.latch = _Latch()

    def update(self, epoch: int, condition: bool) -> bool:
        """True exactly once per episode: on the epoch the condition has held ``patience`` times."""
        if not condition:
            self.count = 0
            self.onset = None
            self.latch.rearm()
            return False
        if self.count == 0:
            self.onset = epoch
        self.count += 1
        return self.count >= self.patience and self.latch.trigger()


class EpochDetectors:
    """Rules evaluated after each validation pass."""

    def __init__(self, cfg: DetectConfig, target_amp_std: float):
        self.cfg = cfg
        self.target_amp_std = target_amp_std
        self.best_val = math.inf
        self.best_epoch: int | None = None
        self.divergence = _Persistence(cfg.divergence_patience)
        self.collapse = _Persistence(cfg.collapse_patience)
        self.plateau = _Persistence(cfg.plateau_patience)
        self.nonfinite_val = _Latch()

    def update(self, epoch: int, step: int, val_loss: float, pred_amp_std: float) -> list[Event]:
        c = self.cfg
        events = []
        past_warmup = epoch >= c.warmup_epochs
        if not _finite(val_loss):
            if self.nonfinite_val.trigger():
                events.append(
                    Event(
                        "nonfinite_val",
                        "fatal",
                        epoch,
                        step,
                        val_loss,
                        math.nan,
                        f"validation loss is {val_loss} at epoch {epoch}",
                    )
                )
        else:
            self.nonfinite_val.rearm()
            bound = c.divergence_factor * self.best_val
            if self.divergence.update(epoch, past_warmup and val_loss > bound):
                events.append(
                    Event(
                        "divergence",
                        "collapse",
                        epoch,
                        step,
                        val_loss,
                        bound,
                        f"val loss {val_loss:.4g} above {c.divergence_factor:g} x its best "
                        f"{self.best_val:.4g} (epoch {self.best_epoch}) for "
                        f"{c.divergence_patience} epochs",
                        onset_epoch=self.divergence.onset,
                    )
                )
            improved = (
                val_loss < self.best_val * (1 - c.plateau_min_delta)
                if math.isfinite(self.best_val)
                else True
            )
            if self.plateau.update(epoch, not improved):
                events.append(
                    Event(
                        "plateau",
                        "info",
                        epoch,
                        step,
                        val_loss,
                        self.best_val,
                        f"no val improvement above {c.plateau_min_delta:g} (relative) for "
                        f"{c.plateau_patience} epochs",
                        onset_epoch=self.plateau.onset,
                    )
                )
            if val_loss < self.best_val:
                self.best_val, self.best_epoch = val_loss, epoch
        threshold = c.collapse_std_ratio * self.target_amp_std
        low = _finite(pred_amp_std) and pred_amp_std < threshold
        if self.collapse.update(epoch, past_warmup and low):
            events.append(
                Event(
                    "output_collapse",
                    "collapse",
                    epoch,
                    step,
                    pred_amp_std,
                    threshold,
                    f"predicted amplitude is nearly constant: std {pred_amp_std:.3g} < "
                    f"{c.collapse_std_ratio:g} x target std {self.target_amp_std:.3g} for "
                    f"{c.collapse_patience} epochs",
                    onset_epoch=self.collapse.onset,
                )
            )
        return events


def detect_run(records: Iterable[dict], cfg: DetectConfig) -> list[Event]:
    """Replay a run's telemetry records (decoded, in order, resumed segments already resolved
    with engine.runs.telemetry.resolve_segments) through the detectors."""
    steps = StepDetectors(cfg)
    epochs: EpochDetectors | None = None
    events: list[Event] = []
    for r in records:
        kind = r.get("type")
        if kind == "header":
            epochs = EpochDetectors(cfg, float(r.get("target_amp_std") or math.nan))
        elif kind == "step":
            events += steps.update(r["epoch"], r["step"], r.get("loss"), r.get("grad_norm"))
        elif kind == "epoch" and epochs is not None:
            events += epochs.update(r["epoch"], r["step"], r.get("val_loss"), r.get("pred_amp_std"))
    return events
