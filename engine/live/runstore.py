"""In-memory series of every arm of a study, built from tailed telemetry (no Textual).

The dashboard's reader thread calls ``RunStore.poll()`` a few times a second; each arm's
``Tailer`` returns only new complete lines, which ``ArmSeries.ingest`` folds into growable numpy
columns (step records) and small lists (epoch, event, metrics, status records). The UI never
touches these mutable structures: it receives immutable ``ArmSnapshot``s, and plot screens ask
for ``PlotData`` copies, both built under the arm's lock.

Parsing speed matters here (a study of a million step records must open in under two seconds):
a large backlog is parsed by polars in one call per block, which yields the step columns and
tells which rows are anything else: other record types and every record that carries a NaN or
an inf (its ``nonfinite`` note) are then decoded one by one with
``engine.runs.telemetry.decode_record``, the one strict reader. Small increments (the live case) go
line by line. If polars rejects a block (a malformed line in the middle), the block is halved
until the bad part is small and read line by line, so a bad line costs a little speed, never
records.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.live.tail import Tailer, newline_offsets
from engine.runs.rundir import RunDir
from engine.runs.status import read_status, run_state
from engine.runs.telemetry import RECORD_TYPES, ReadStats, decode_record

# Fields of a step record kept as series; the step number is every series' x.
STEP_FIELDS = ("loss", "grad_norm", "grad_norm_clipped", "lr")
# Parsed from step records; the wall time only feeds the step-rate summary.
PARSED_FIELDS = STEP_FIELDS + ("t",)
# Below this many plain step lines the per-line path is as fast as a polars call.
BULK_MIN_LINES = 2000
BULK_BLOCK_LINES = 200_000
SPARK_BUCKETS = 12
# Records that split the stream: a header starts a new run, a segment resumes this one.
BARRIERS = ("header", "segment")
# Severities that make an arm "collapsed" in the table (a detector verdict, not a process state).
ALARM_SEVERITIES = ("collapse", "fatal")
DISCOVER_EVERY_S = 5.0


class Column:
    """A growable numpy array: amortised O(1) appends of blocks, views without copies."""

    def __init__(self, dtype):
        self._buf = np.empty(0, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        k = len(values)
        if self.n + k > len(self._buf):
            # The first block (a whole backlog) gets a little headroom, later ones doubling.
            size = (
                self.n + k + (self.n + k) // 8 + 256
                if self.n == 0
                else max(2 * len(self._buf), self.n + k)
            )
            grown = np.empty(size, dtype=self._buf.dtype)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n : self.n + k] = values
        self.n += k

    def view(self) -> np.ndarray:
        return self._buf[: self.n]

    def last(self) -> float:
        return float(self._buf[self.n - 1]) if self.n else math.nan


class StepSeries:
    """One step-record field as (step, value) pairs, only where the record carries the field.

    A missing field (grad norm not measured on this step) is simply absent, so a NaN in
    ``y`` always means the engine recorded a NaN. Values are float32: the engine computes
    them in float32, so nothing is lost, and a million steps cost 8 MB per field.
    """

    def __init__(self) -> None:
        self.x = Column(np.int64)
        self.y = Column(np.float32)

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x.extend(x)
        self.y.extend(y)

    def truncate(self, step: float) -> None:
        """Forget the values at ``step`` and later."""
        keep = int(np.searchsorted(self.x.view(), step, side="left"))
        self.x.n = self.y.n = keep

    def __len__(self) -> int:
        return self.x.n


def _as_float(value) -> float:
    """A record value as float; absent and non-numeric become NaN (callers check presence)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


class ArmSeries:
    """Everything read so far from one arm's telemetry, for the latest run in the file.

    A second ``header`` means the arm was trained again into the same directory: the series
    restart from it (``segment`` records, reserved for resumed runs, continue the series).
    """

    def __init__(self) -> None:
        self.stats = ReadStats()
        self.clear()

    def clear(self) -> None:
        self.header: dict | None = None
        self.steps = {name: StepSeries() for name in STEP_FIELDS}
        self.epochs: list[dict] = []
        self.events: list[dict] = []
        self.metrics: dict | None = None
        self.final_status: dict | None = None
        self.nonfinite_steps = 0
        self.step_times: tuple[float, float, int] | None = None  # first t, last t, count
        self.segments = 0  # resumed processes appended to this run
        self.version = getattr(self, "version", 0) + 1

    # -- ingest ----------------------------------------------------------------------------

    def ingest(self, data: bytes, ends: np.ndarray | None = None) -> bool:
        """Fold complete telemetry lines (``data`` ends with a newline; ``ends``, if known,
        are its newline offsets) into the series; True if anything was read."""
        if not data:
            return False
        if (data.count(b"\n") if ends is None else len(ends)) < BULK_MIN_LINES:
            self._ingest_each(data.split(b"\n")[:-1])
        else:
            lines = Lines(data, newline_offsets(data) if ends is None else ends)
            for lo in range(0, len(lines), BULK_BLOCK_LINES):
                self._ingest_block(lines.slice(lo, lo + BULK_BLOCK_LINES))
        self.version += 1
        return True

    def _ingest_block(self, lines: Lines) -> None:
        if len(lines) < BULK_MIN_LINES:
            self._ingest_each(lines.split())
            return
        parsed = _bulk_parse(lines)
        if parsed is not None:
            self._ingest_parsed(lines, *parsed)
            return
        # polars refused the block (a malformed line somewhere): halve it until the bad part
        # is small enough to read line by line, so one bad line costs little.
        half = len(lines) // 2
        self._ingest_block(lines.slice(0, half))
        self._ingest_block(lines.slice(half, len(lines)))

    def _ingest_each(self, lines: list[bytes]) -> None:
        steps: list[dict] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                record = decode_record(raw)
            except ValueError:
                self.stats.bad_lines += 1
                continue
            kind = record.get("type")
            if kind == "step":
                steps.append(record)
                continue
            if kind in BARRIERS:
                self._add_decoded_steps([] if kind == "header" else steps)
                steps = []
            self._add_other(record)
        self._add_decoded_steps(steps)

    def _ingest_parsed(
        self, lines: Lines, cols: dict[str, np.ndarray], special: np.ndarray
    ) -> None:
        """``cols`` holds every row of the block; ``special`` the rows that are not plain
        steps (other record types, steps with a nonfinite note), decoded here one by one.
        Steps are added in runs between barriers (header, segment), in file order."""
        plain = np.ones(len(lines), dtype=bool)
        plain[special] = False
        steps: list[dict] = []
        start = 0  # first row whose steps are not yet added
        for i in special.tolist():
            try:
                record = decode_record(lines[i])
            except ValueError:  # polars read it, json does not: trust the strict reader
                self.stats.bad_lines += 1
                continue
            kind = record.get("type")
            if kind == "step":
                steps.append(record)
                continue
            if kind in BARRIERS:
                if kind == "segment":
                    self._add_rows(cols, plain, start, i, steps)
                steps, start = [], i + 1
            self._add_other(record)
        self._add_rows(cols, plain, start, len(lines), steps)

    def _add_rows(self, cols, plain, start: int, end: int, steps: list[dict]) -> None:
        rows = np.flatnonzero(plain[start:end]) + start
        blocks = [{k: v[rows] for k, v in cols.items()}] if len(rows) else []
        if steps:
            blocks.append(_records_to_columns(steps))
            self._count_nonfinite(steps)
        if blocks:
            self._add_steps(blocks)

    def _add_decoded_steps(self, steps: list[dict]) -> None:
        if steps:
            self._add_steps([_records_to_columns(steps)])
            self._count_nonfinite(steps)

    def _add_other(self, record: dict) -> None:
        kind = record.get("type")
        if kind == "header":
            self.clear()
            self.header = record
        elif kind == "segment":
            self._resume_from(record)
        elif kind == "epoch":
            self.epochs.append(record)
        elif kind == "event":
            self.events.append(record)
        elif kind == "metrics":
            self.metrics = record
        elif kind == "status":
            self.final_status = record
        elif kind not in RECORD_TYPES:
            self.stats.unknown_types += 1

    def _resume_from(self, segment: dict) -> None:
        """A resumed engine recomputes everything from its checkpoint on: drop the
        interrupted process's records from there (as engine.runs.telemetry.resolve_segments does)."""
        epoch = _as_float(segment.get("resume_epoch"))
        step = _as_float(segment.get("resume_step"))
        epoch = 0.0 if math.isnan(epoch) else epoch
        step = 0.0 if math.isnan(step) else step
        for series in self.steps.values():
            series.truncate(step)
        self.step_times = None  # the step rate restarts with the new process
        self.epochs = [e for e in self.epochs if _as_float(e.get("epoch")) < epoch]
        self.events = [e for e in self.events if _as_float(e.get("step")) < step]
        self.metrics = None
        self.final_status = None
        self.segments += 1

    def _count_nonfinite(self, steps: list[dict]) -> None:
        self.nonfinite_steps += sum(
            1
            for r in steps
            if any(
                isinstance(r.get(f), float) and not math.isfinite(r[f])
                for f in ("loss", "grad_norm", "grad_norm_clipped")
            )
        )

    def _add_steps(self, blocks: list[dict[str, np.ndarray]]) -> None:
        merged = {k: np.concatenate([c[k] for c in blocks]) for k in blocks[0]}
        step = merged["step"]
        if len(blocks) > 1 or (len(step) > 1 and np.any(np.diff(step) < 0)):
            order = np.argsort(step, kind="stable")
            merged = {k: v[order] for k, v in merged.items()}
            step = merged["step"]
        for name in STEP_FIELDS:
            present = merged[name + "?"]
            if present.all():
                self.steps[name].extend(step, merged[name])
            elif present.any():
                self.steps[name].extend(step[present], merged[name][present])
        t = merged["t"][merged["t?"] & np.isfinite(merged["t"])]
        if len(t):
            first, _, count = self.step_times or (float(t[0]), 0.0, 0)
            self.step_times = (first, float(t[-1]), count + len(t))

    # -- derived values --------------------------------------------------------------------

    def epochs_total(self) -> int | None:
        try:
            return int(self.header["config"]["train"]["epochs"])
        except (TypeError, KeyError, ValueError):
            return None

    def alarms(self) -> list[dict]:
        return [e for e in self.events if e.get("severity") in ALARM_SEVERITIES]

    def records_for_verdict(self) -> list[dict]:
        """The records engine.scoring.verdict.classify_run reads (it ignores step records); the final
        metrics record carries the twin fraction of a finished run."""
        head = [self.header] if self.header else []
        final = [self.metrics] if self.metrics else []
        return head + self.epochs + self.events + final


def _records_to_columns(records: list[dict]) -> dict[str, np.ndarray]:
    n = len(records)
    out = {"step": np.fromiter((_as_float(r.get("step")) for r in records), np.float64, n)}
    for name in PARSED_FIELDS:
        out[name + "?"] = np.fromiter((name in r and r[name] is not None for r in records), bool, n)
        out[name] = np.fromiter((_as_float(r.get(name)) for r in records), np.float64, n)
    keep = ~np.isnan(out["step"])  # a step record without a step number cannot be placed
    return out if keep.all() else {k: v[keep] for k, v in out.items()}


class Lines:
    """Lines of one buffer, addressed through their newline offsets (no per-line objects)."""

    def __init__(self, data: bytes, ends: np.ndarray, lo: int = 0, hi: int | None = None):
        self.data, self.ends = data, ends
        self.lo, self.hi = lo, len(ends) if hi is None else min(hi, len(ends))

    def __len__(self) -> int:
        return self.hi - self.lo

    def _start(self, i: int) -> int:
        return 0 if i == 0 else int(self.ends[i - 1]) + 1

    def __getitem__(self, i: int) -> bytes:
        i += self.lo
        return self.data[self._start(i) : int(self.ends[i])]

    def slice(self, lo: int, hi: int) -> Lines:
        return Lines(self.data, self.ends, self.lo + lo, self.lo + hi)

    def block(self) -> bytes:
        """The lines as one buffer (no copy when they are the whole buffer)."""
        if self.lo == 0 and self.hi == len(self.ends) and len(self.data) == self.ends[-1] + 1:
            return self.data
        return self.data[self._start(self.lo) : int(self.ends[self.hi - 1]) + 1]

    def split(self) -> list[bytes]:
        return self.block().split(b"\n")[:-1] if len(self) else []


def _bulk_parse(lines: Lines) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Parse a block of lines with polars in one call: step columns for every row, and the
    indices of the rows that must be decoded one by one (not a step, a step without a number,
    or a step with a ``nonfinite`` note: NaN and inf always carry one, so they never come from
    polars' nulls). A null in a plain step means the field is absent. Returns None if polars
    rejects the block or its rows do not line up with the lines.
    """
    import polars as pl

    schema = {
        "type": pl.String,
        "step": pl.Float64,
        "nonfinite": pl.String,
        **{name: pl.Float64 for name in PARSED_FIELDS},
    }
    try:
        df = pl.read_ndjson(lines.block(), schema=schema)
    except Exception:  # polars raises several error types for malformed input
        return None
    if df.height != len(lines):
        return None
    special = (
        (df["type"] != "step").fill_null(True)
        | df["nonfinite"].is_not_null()
        | df["step"].is_null()
    )
    cols = {"step": df["step"].fill_null(math.nan).to_numpy()}
    for name in PARSED_FIELDS:
        col = df[name]
        cols[name + "?"] = col.is_not_null().to_numpy()
        cols[name] = col.fill_null(math.nan).to_numpy()
    return cols, np.flatnonzero(special.to_numpy())


# -- downsampling ----------------------------------------------------------------------------


def minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` finite points keeping each bucket's min and max (in x order),
    so a one-step spike survives any zoom level. Non-finite points are dropped here; ask
    ``nonfinite_points`` for them and draw them as markers."""
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = len(y)
    if n <= 2 * buckets or buckets < 1:
        return x.copy(), y.copy()
    size = math.ceil(n / buckets)
    full = n // size
    xs, ys = [], []
    if full:
        yb = y[: full * size].reshape(full, size)
        base = np.arange(full) * size
        lo = base + yb.argmin(axis=1)
        hi = base + yb.argmax(axis=1)
        first = np.minimum(lo, hi)
        second = np.maximum(lo, hi)
        idx = np.stack([first, second], axis=1).ravel()
        xs.append(x[idx])
        ys.append(y[idx])
    if full * size < n:
        tail_y = y[full * size :]
        lo = full * size + int(tail_y.argmin())
        hi = full * size + int(tail_y.argmax())
        idx = np.array(sorted((lo, hi)))
        xs.append(x[idx])
        ys.append(y[idx])
    return np.concatenate(xs), np.concatenate(ys)


def nonfinite_points(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """x positions of NaN, +inf and -inf values: {"nan": ..., "inf": ..., "-inf": ...}."""
    return {"nan": x[np.isnan(y)], "inf": x[np.isposinf(y)], "-inf": x[np.isneginf(y)]}


def bucket_peaks(y: np.ndarray, buckets: int) -> tuple[tuple[float, ...], tuple[bool, ...]]:
    """Per-bucket maximum of the finite values (a spike is never averaged away) and whether
    the bucket held a NaN or inf. Empty buckets are NaN with no flag. Fewer values than buckets
    give one bucket per value."""
    n = len(y)
    if n == 0:
        return (), ()
    k = min(buckets, n)
    edges = (np.arange(k + 1) * n) // k
    finite = np.isfinite(y)
    masked = np.where(finite, y, -np.inf)
    peaks = np.maximum.reduceat(masked, edges[:-1])
    bad = np.logical_or.reduceat(~finite, edges[:-1])
    peaks = np.where(np.isneginf(peaks), np.nan, peaks)
    return tuple(float(v) for v in peaks), tuple(bool(b) for b in bad)


def ema(y: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average that steps over non-finite values (they stay visible as
    markers in the raw series; the smoothed line must not turn into NaN forever after)."""
    out = np.empty_like(y)
    acc = math.nan
    for i, v in enumerate(y.tolist()):
        if math.isfinite(v):
            acc = v if math.isnan(acc) else acc + alpha * (v - acc)
        out[i] = acc
    return out


# -- snapshots for the UI -----------------------------------------------------------------


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


EPOCH_FIELDS = (
    "train_loss",
    "val_loss",
    "grad_norm",
    "lr",
    "pred_amp_std",
    "target_amp_std",
    "val_amp_mae",
    "val_amp_mae_twin",
    "val_twin_fraction",
)


class ArmRun:
    """One arm: its run directory, tailer, series, and the lock the reader holds while
    changing them."""

    def __init__(self, name: str, run_dir: Path, in_study: bool, epochs_hint: int | None):
        self.name = name
        self.run = RunDir(Path(run_dir))
        self.in_study = in_study
        self.epochs_hint = epochs_hint
        self.tailer = Tailer(self.run.telemetry)
        self.series = ArmSeries()
        self.lock = threading.Lock()
        self._spark_cache: tuple[int, tuple, tuple] | None = None

    def poll(self) -> bool:
        changed = False
        while True:
            chunk = self.tailer.poll()
            with self.lock:
                if chunk.reset:
                    self.series.clear()
                    changed = True
                if chunk.data:
                    changed |= self.series.ingest(chunk.data, chunk.ends)
                self.series.stats.bad_lines += self.tailer.too_long
                self.tailer.too_long = 0
            if not chunk.more:
                return changed

    def snapshot(self, now: float) -> ArmSnapshot:
        state = run_state(self.run.root, now=now)
        with self.lock:
            s = self.series
            if state == "not started" and s.final_status:  # telemetry without status.json
                state = str(s.final_status.get("state", "not started"))
            epochs_total = s.epochs_total() or self.epochs_hint
            verdict = _verdict(s, state)
            val = [
                (_as_float(e.get("val_loss")), int(e.get("epoch", i)))
                for i, e in enumerate(s.epochs)
            ]
            finite_val = [(v, ep) for v, ep in val if math.isfinite(v)]
            best_val, best_epoch = min(finite_val) if finite_val else (None, None)
            last_epoch = s.epochs[-1] if s.epochs else {}
            lr = _last(s.steps["lr"]) if len(s.steps["lr"]) else _field(last_epoch, "lr")
            sps = _field(last_epoch, "samples_per_s") if last_epoch else self._step_rate(s)
            if self._spark_cache is None or self._spark_cache[0] != s.version:
                self._spark_cache = (
                    s.version,
                    bucket_peaks(s.steps["loss"].y.view(), SPARK_BUCKETS),
                    bucket_peaks(s.steps["grad_norm"].y.view(), SPARK_BUCKETS),
                )
            alarms = s.alarms()
            return ArmSnapshot(
                name=self.name,
                in_study=self.in_study,
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
                eta_s=self._eta(s, state, epochs_total, now),
                verdict_label=verdict[0],
                verdict_text=verdict[1],
                verdict_detail=verdict[2],
                spark_loss=self._spark_cache[1],
                spark_grad=self._spark_cache[2],
                n_steps=len(s.steps["loss"]),
                n_events=len(s.events),
                alarms=tuple(f"{e.get('rule')}@{e.get('epoch')}" for e in alarms),
                nonfinite_steps=s.nonfinite_steps,
                bad_lines=s.stats.bad_lines,
                unknown_types=s.stats.unknown_types,
                has_recon=self.run.recon.exists(),
                has_run=self.tailer.identity is not None,
                version=s.version,
                note=self._note(state),
            )

    def _note(self, state: str) -> str:
        if state not in ("queued", "failed", "killed"):
            return ""
        st = read_status(self.run.root) or {}
        return str(st.get("queue" if state == "queued" else "error") or "")

    @staticmethod
    def _step_rate(s: ArmSeries) -> float | None:
        """Samples per second from the step timestamps, before the first epoch record."""
        batch = _batch_size(s.header)
        if s.step_times is None or batch is None:
            return None
        first, last, count = s.step_times
        return (count - 1) * batch / (last - first) if last > first else None

    @staticmethod
    def _eta(s: ArmSeries, state: str, epochs_total: int | None, now: float) -> float | None:
        if state != "running" or not epochs_total:
            return None
        done = len(s.epochs)
        times = [_as_float(e.get("epoch_time")) for e in s.epochs]
        times = [t for t in times if math.isfinite(t)]
        if times:
            per_epoch = sum(times) / len(times)
            since = now - _as_float(s.epochs[-1].get("t"))
            in_epoch = since if math.isfinite(since) else 0.0
            return max(0.0, (epochs_total - done) * per_epoch - in_epoch)
        spe = _steps_per_epoch(s.header)
        if spe is None or s.step_times is None or not s.step_times[1] > s.step_times[0]:
            return None
        first, last, count = s.step_times
        rate = (count - 1) / (last - first)
        return max(0.0, (epochs_total * spe - len(s.steps["loss"])) / rate)

    def plot_data(self) -> PlotData:
        with self.lock:
            s = self.series
            spe = _steps_per_epoch(s.header)
            scale = 1.0 / spe if spe else 1.0
            steps = {
                name: (s.steps[name].x.view() * scale, s.steps[name].y.view().astype(np.float64))
                for name in ("loss", "grad_norm", "grad_norm_clipped", "lr")
            }
            epochs = {}
            for name in EPOCH_FIELDS:
                pairs = [
                    (_as_float(e.get("epoch")) + 1, _as_float(e.get(name)))
                    for e in s.epochs
                    if name in e and e[name] is not None
                ]
                xs = np.array([p[0] for p in pairs], dtype=np.float64)
                ys = np.array([p[1] for p in pairs], dtype=np.float64)
                epochs[name] = (xs, ys)
            return PlotData(
                self.name, steps, epochs, tuple(s.events), s.header, spe, s.version, s.metrics
            )


def _last(series: StepSeries) -> float | None:
    return series.y.last() if len(series) else None


def _field(record: dict, name: str) -> float | None:
    """A number from a record; None when absent (null without a nonfinite note)."""
    value = record.get(name)
    return _as_float(value) if value is not None else None


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


class RunStore:
    """Every arm of a study (plus run directories found beside them), polled together."""

    def __init__(self, output_dir: Path, arms: dict[str, int | None], *, discover: bool = True):
        self.output_dir = Path(output_dir)
        self.discover = discover
        self.arms: dict[str, ArmRun] = {
            name: ArmRun(name, self.output_dir / name, True, epochs)
            for name, epochs in arms.items()
        }
        self._last_discover = -math.inf
        self._snapshots: dict[str, ArmSnapshot] = {}

    @classmethod
    def from_study(cls, study, **kwargs) -> RunStore:
        return cls(study.output_dir, {n: c.train.epochs for n, c in study.arms.items()}, **kwargs)

    def _discover(self) -> bool:
        """Run directories under output_dir that arms.toml does not (or no longer) name."""
        found = False
        try:
            entries = sorted(os.scandir(self.output_dir), key=lambda e: e.name)
        except OSError:
            return False
        for entry in entries:
            if entry.name.startswith(".") or entry.name in self.arms or not entry.is_dir():
                continue
            run = RunDir(Path(entry.path))
            if run.telemetry.exists() or run.status.exists():
                self.arms[entry.name] = ArmRun(entry.name, run.root, False, None)
                found = True
        return found

    def poll(self, now: float | None = None) -> bool:
        """Read what is new in every arm; True if any table row changed."""
        now = time.time() if now is None else now
        changed = False
        if self.discover and time.monotonic() - self._last_discover >= DISCOVER_EVERY_S:
            self._last_discover = time.monotonic()
            changed |= self._discover()
        arms = list(self.arms.values())
        for arm in arms:
            arm.poll()
        for arm in arms:
            snap = arm.snapshot(now)
            old = self._snapshots.get(arm.name)
            if old is None or old.change_key != snap.change_key:
                self._snapshots[arm.name] = snap
                changed = True
        return changed

    def snapshots(self) -> tuple[ArmSnapshot, ...]:
        return tuple(self._snapshots[n] for n in self.arms if n in self._snapshots)

    def plot_data(self, name: str) -> PlotData:
        return self.arms[name].plot_data()

    def run_dir(self, name: str) -> Path:
        return self.arms[name].run.root
