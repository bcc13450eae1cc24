"""What the UI gets of an arm: an immutable table row (``ArmSnapshot``: last values, best
validation, ETA, verdict, sparklines) and copies of its series for plotting (``PlotData``), both
built from an ``ArmSeries`` under the arm's lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.live.columns import StepSeries
from engine.live.parse import as_float
from engine.live.plotmath import bucket_peaks
from engine.live.series import ArmSeries
from engine.runs.schema import EPOCH

SPARK_BUCKETS = 12
# Epoch-record fields kept as plot series.
EPOCH_FIELDS = EPOCH.series


@dataclass(frozen=True, eq=False)
class ArmSnapshot:
    """One arm's table row, immutable, cheap to hand to the UI thread.

    Not compared field by field (NaN != NaN would make every row look changed): ``change_key``
    holds what can change between two polls without the series changing.
    """

    name: str
    in_study: bool
    state: str  # engine.runs.status.run_state vocabulary
    collapsed: bool  # a collapse or fatal detector event exists
    epochs_done: int
    epochs_total: int | None
    # None: not recorded (yet). NaN / inf: recorded as such by the engine.
    last_loss: float | None
    best_val: float | None
    best_val_epoch: int | None
    grad_norm: float | None
    lr: float | None
    samples_per_s: float | None
    eta_s: float | None
    verdict_label: str
    verdict_text: str
    verdict_detail: str
    spark_loss: tuple[tuple[float, ...], tuple[bool, ...]]
    spark_grad: tuple[tuple[float, ...], tuple[bool, ...]]
    n_steps: int
    n_events: int
    alarms: tuple[str, ...]  # "rule@epoch" of each collapse/fatal event, in order
    nonfinite_steps: int
    bad_lines: int
    unknown_types: int
    has_recon: bool
    has_run: bool  # a telemetry file exists: launching again means resume or restart
    version: int
    note: str = ""  # from status.json: whom a queued arm waits for, why a run failed
    # Within-epoch progress: steps of the current epoch done, of steps_per_epoch (None: the
    # header does not say, or no header yet).
    epoch_step: int | None = None
    steps_per_epoch: int | None = None
    # Wall time of the newest record (step, epoch, event, ...); None before any.
    updated_t: float | None = None
    # Age of the newest record at the time of the snapshot, whole seconds, for a running arm
    # (what says a live run is not frozen); None otherwise.
    updated_age_s: int | None = None
    # Final amplitude SSIM of the telemetry metrics record; None before the final evaluation.
    amp_ssim: float | None = None
    # False: the run's telemetry has not been read yet (the store's first read of a large
    # study, engine/live/runstore.py). Such a row (``placeholder_snapshot``) holds only what
    # status.json says: every telemetry-derived field is None or empty and must be shown as
    # "reading", never as a value (and ``epochs_done`` is -1 where status.json has no epoch).
    loaded: bool = True

    @property
    def change_key(self) -> tuple:
        eta = None if self.eta_s is None else int(self.eta_s)
        return (
            self.version,
            self.state,
            eta,
            self.has_recon,
            self.has_run,
            self.verdict_text,
            self.note,
            # a live arm's "updated N s ago" ticks every second
            self.updated_age_s if self.state == "running" else None,
            self.loaded,
        )


@dataclass(frozen=True)
class PlotData:
    """Copies of one arm's series for plotting; x of step series is the fractional epoch."""

    name: str
    steps: dict[str, tuple[np.ndarray, np.ndarray]]  # field -> (x epochs, y)
    epochs: dict[str, tuple[np.ndarray, np.ndarray]]  # field -> (x epoch index + 1, y)
    events: tuple[dict, ...]
    header: dict | None
    steps_per_epoch: float | None
    version: int
    metrics: dict | None = None  # the last telemetry metrics record (final evaluation)


def effective_state(s: ArmSeries, state: str) -> str:
    """The run state from status.json, or the telemetry's status record when there is none."""
    if state == "not started" and s.final_status:  # telemetry without status.json
        return str(s.final_status.get("state", "not started"))
    return state


class SparkCache:
    """The sparklines of one arm, recomputed only when its series changed."""

    def __init__(self) -> None:
        self._key: int | None = None
        self._value: tuple[tuple, tuple] = ((), ())

    def get(self, s: ArmSeries) -> tuple[tuple, tuple]:
        if self._key != s.version:
            self._key = s.version
            self._value = (
                bucket_peaks(s.steps["loss"].y.view(), SPARK_BUCKETS),
                bucket_peaks(s.steps["grad_norm"].y.view(), SPARK_BUCKETS),
            )
        return self._value


# Every telemetry-derived field of a row whose telemetry is not read yet: unknown, not zero
# (the cells show "reading…", and no verdict is guessed).
NOT_READ = {
    "collapsed": False,
    "last_loss": None,
    "best_val": None,
    "best_val_epoch": None,
    "grad_norm": None,
    "lr": None,
    "samples_per_s": None,
    "eta_s": None,
    "verdict_label": "",
    "verdict_text": "reading…",
    "verdict_detail": "",
    "spark_loss": ((), ()),
    "spark_grad": ((), ()),
    "n_steps": 0,
    "n_events": 0,
    "alarms": (),
    "nonfinite_steps": 0,
    "bad_lines": 0,
    "unknown_types": 0,
    "version": -1,
    "loaded": False,
}


def placeholder_snapshot(
    *,
    name: str,
    in_study: bool,
    state: str,
    status: dict | None,
    epochs_hint: int | None,
    has_recon: bool,
    has_run: bool,
    note: str,
) -> ArmSnapshot:
    """The row of a run whose telemetry is not read yet: its state and epoch from status.json
    (``state`` from ``run_state``), nothing that needs the telemetry (no verdict: "healthy" or
    any other word would be a guess)."""
    st = status or {}
    epoch, epochs = st.get("epoch"), st.get("epochs")
    return ArmSnapshot(
        name=name,
        in_study=in_study,
        state=state,
        epochs_done=epoch if isinstance(epoch, int) and epoch >= 0 else -1,
        epochs_total=epochs if isinstance(epochs, int) and epochs > 0 else epochs_hint,
        has_recon=has_recon,
        has_run=has_run,
        note=note,
        **NOT_READ,
    )


def make_snapshot(
    s: ArmSeries,
    *,
    name: str,
    in_study: bool,
    state: str,
    epochs_hint: int | None,
    sparks: SparkCache,
    has_recon: bool,
    has_run: bool,
    note: str,
    now: float,
) -> ArmSnapshot:
    """One arm's table row from its series (``state`` from ``effective_state``); the caller
    holds the arm's lock."""
    epochs_total = s.epochs_total() or epochs_hint
    verdict = _verdict(s, state)
    val = [(as_float(e.get("val_loss")), int(e.get("epoch", i))) for i, e in enumerate(s.epochs)]
    finite_val = [(v, ep) for v, ep in val if math.isfinite(v)]
    best_val, best_epoch = min(finite_val) if finite_val else (None, None)
    last_epoch = s.epochs[-1] if s.epochs else {}
    lr = _last(s.steps["lr"]) if len(s.steps["lr"]) else _field(last_epoch, "lr")
    sps = _field(last_epoch, "samples_per_s") if last_epoch else _step_rate(s)
    spark_loss, spark_grad = sparks.get(s)
    alarms = s.alarms()
    updated = _updated(s)
    return ArmSnapshot(
        name=name,
        in_study=in_study,
        state=state,
        collapsed=bool(alarms),
        epochs_done=len(s.epochs),
        epochs_total=epochs_total,
        last_loss=_last(s.steps["loss"]),
        best_val=best_val,
        best_val_epoch=best_epoch,
        grad_norm=_last(s.steps["grad_norm"]),
        lr=lr,
        samples_per_s=sps,
        eta_s=_eta(s, state, epochs_total, now),
        verdict_label=verdict[0],
        verdict_text=verdict[1],
        verdict_detail=verdict[2],
        spark_loss=spark_loss,
        spark_grad=spark_grad,
        n_steps=len(s.steps["loss"]),
        n_events=len(s.events),
        alarms=tuple(f"{e.get('rule')}@{e.get('epoch')}" for e in alarms),
        nonfinite_steps=s.nonfinite_steps,
        bad_lines=s.stats.bad_lines,
        unknown_types=s.stats.unknown_types,
        has_recon=has_recon,
        has_run=has_run,
        version=s.version,
        note=note,
        epoch_step=_epoch_step(s),
        steps_per_epoch=_int_or_none(_steps_per_epoch(s.header)),
        updated_t=updated,
        updated_age_s=(
            max(0, int(now - updated)) if updated is not None and state == "running" else None
        ),
        amp_ssim=_amp_ssim(s.metrics),
    )


def _epoch_step(s: ArmSeries) -> int | None:
    """Steps done in the current epoch: the newest step record's global step, less the steps
    of the completed epochs (the step is global and monotonic, also over a resume)."""
    spe = _steps_per_epoch(s.header)
    if spe is None:
        return None
    loss = s.steps["loss"]
    if not len(loss):
        return 0
    done = int(loss.x.last()) + 1 - len(s.epochs) * int(spe)
    return min(max(done, 0), int(spe))


def _updated(s: ArmSeries) -> float | None:
    """Wall time of the newest record read: the last step's, or a later epoch, event,
    metrics or status record's."""
    times = [s.step_times[1]] if s.step_times else []
    for record in (
        s.epochs[-1] if s.epochs else None,
        s.events[-1] if s.events else None,
        s.metrics,
        s.final_status,
        s.header,
    ):
        if record:
            t = as_float(record.get("t", record.get("start_time")))
            if math.isfinite(t):
                times.append(t)
    return max(times) if times else None


def _amp_ssim(metrics: dict | None) -> float | None:
    inner = metrics.get("metrics") if isinstance(metrics, dict) else None
    pair = inner.get("ssim") if isinstance(inner, dict) else None
    if isinstance(pair, list) and pair and pair[0] is not None:
        return as_float(pair[0])
    return None


def _int_or_none(x: float | None) -> int | None:
    return None if x is None else int(x)


def make_plot_data(name: str, s: ArmSeries) -> PlotData:
    """Copies of the series for plotting; the caller holds the arm's lock."""
    spe = _steps_per_epoch(s.header)
    scale = 1.0 / spe if spe else 1.0
    steps = {
        field: (s.steps[field].x.view() * scale, s.steps[field].y.view().astype(np.float64))
        for field in s.steps
    }
    epochs = {}
    for field in EPOCH_FIELDS:
        pairs = [
            (as_float(e.get("epoch")) + 1, as_float(e.get(field)))
            for e in s.epochs
            if field in e and e[field] is not None
        ]
        xs = np.array([p[0] for p in pairs], dtype=np.float64)
        ys = np.array([p[1] for p in pairs], dtype=np.float64)
        epochs[field] = (xs, ys)
    return PlotData(name, steps, epochs, tuple(s.events), s.header, spe, s.version, s.metrics)


def _step_rate(s: ArmSeries) -> float | None:
    """Samples per second from the step timestamps, before the first epoch record."""
    batch = _batch_size(s.header)
    if s.step_times is None or batch is None:
        return None
    first, last, count = s.step_times
    return (count - 1) * batch / (last - first) if last > first else None


def _eta(s: ArmSeries, state: str, epochs_total: int | None, now: float) -> float | None:
    if state != "running" or not epochs_total:
        return None
    done = len(s.epochs)
    times = [as_float(e.get("epoch_time")) for e in s.epochs]
    times = [t for t in times if math.isfinite(t)]
    if times:
        per_epoch = sum(times) / len(times)
        since = now - as_float(s.epochs[-1].get("t"))
        in_epoch = since if math.isfinite(since) else 0.0
        return max(0.0, (epochs_total - done) * per_epoch - in_epoch)
    spe = _steps_per_epoch(s.header)
    if spe is None or s.step_times is None or not s.step_times[1] > s.step_times[0]:
        return None
    first, last, count = s.step_times
    rate = (count - 1) / (last - first)
    return max(0.0, (epochs_total * spe - len(s.steps["loss"])) / rate)


def _last(series: StepSeries) -> float | None:
    return series.y.last() if len(series) else None


def _field(record: dict, name: str) -> float | None:
    """A number from a record; None when absent (null without a nonfinite note)."""
    value = record.get(name)
    return as_float(value) if value is not None else None


def _steps_per_epoch(header: dict | None) -> float | None:
    try:
        value = float(header["steps_per_epoch"])
    except (TypeError, KeyError, ValueError):
        return None
    return value if value > 0 else None


def _batch_size(header: dict | None) -> int | None:
    try:
        return int(header["config"]["train"]["batch_size"])
    except (TypeError, KeyError, ValueError):
        return None


def _verdict(s: ArmSeries, state: str) -> tuple[str, str, str]:
    from engine.scoring.verdict import classify_run

    v = classify_run(s.records_for_verdict(), state)
    where = f" e{v.epoch}" if v.epoch is not None else ""
    return v.label, f"{v.text}{where}", v.detail
