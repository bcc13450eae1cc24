"""One arm's telemetry folded into series: step columns, epoch, event, metrics and status records.

``ArmSeries.ingest`` takes complete lines from the tailer. Small increments (the live case) go
line by line; a large backlog goes through polars (engine/live/parse.py) one block at a time. If
polars rejects a block (a malformed line in the middle), the block is halved until the bad part
is small and read line by line, so a bad line costs a little speed, never records. A resume
(``segment`` record) drops what the resumed process recomputes, by the telemetry's one
superseding rule.
"""

from __future__ import annotations

import math

import numpy as np

from engine.live.columns import StepSeries
from engine.live.parse import Lines, bulk_epochs, bulk_parse, records_to_columns
from engine.live.tail import newline_offsets
from engine.runs.schema import (
    BARRIERS,
    EPOCH,
    EVENT,
    HEADER,
    METRICS,
    RECORD_TYPES,
    SEGMENT,
    STATUS,
    STEP,
)
from engine.runs.telemetry import ReadStats, decode_record, resume_point, superseded

# Fields of a step record kept as series; the step number is every series' x.
STEP_FIELDS = STEP.series
# Below this many plain step lines the per-line path is as fast as a polars call.
BULK_MIN_LINES = 2000
BULK_BLOCK_LINES = 200_000
# Severities that make an arm "collapsed" in the table (a detector verdict, not a process state).
ALARM_SEVERITIES = ("collapse", "fatal")
# Step fields whose NaN or inf counts as a non-finite step (the lr comes from the schedule).
NONFINITE_COUNTED = tuple(f for f in STEP_FIELDS if f != "lr")


class ArmSeries:
    """Everything read so far from one arm's telemetry, for the latest run in the file.

    A second ``header`` means the arm was trained again into the same directory: the series
    restart from it (``segment`` records, reserved for resumed runs, continue the series).
    """

    def __init__(self) -> None:
        self.stats = ReadStats()
        # What the file did that a well-behaved writer never does; they survive clear(), which
        # a header triggers, so the reason can be shown on the arm.
        self.headers = 0
        self.crlf = False
        self.clear()

    def clear(self) -> None:
        self.header: dict | None = None
        self.steps = {name: StepSeries() for name in STEP_FIELDS}
        # Epoch records read in bulk keep only the fields of engine.live.parse.EPOCH_KEPT (what
        # the readers of this series use): a new reader of another field adds it there.
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
        if not self.crlf and b"\r\n" in data:  # json reads the \r as blank space
            self.crlf = True
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
        parsed = bulk_parse(lines)
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
            if kind == STEP.name:
                steps.append(record)
                continue
            if kind in BARRIERS:
                self._add_decoded_steps([] if kind == HEADER.name else steps)
                steps = []
            self._add_other(record)
        self._add_decoded_steps(steps)

    def _ingest_parsed(
        self, lines: Lines, cols: dict[str, np.ndarray], special: np.ndarray, epochs: np.ndarray
    ) -> None:
        """``cols`` holds every row of the block; ``special`` the rows that are not steps
        polars could read (other record types, steps with a note it could not apply), decoded
        here one by one.
        Steps are added in runs between barriers (header, segment), in file order."""
        plain = np.ones(len(lines), dtype=bool)
        plain[special] = False
        steps: list[dict] = []
        start = 0  # first row whose steps are not yet added
        read = bulk_epochs([lines[i] for i in epochs.tolist()]) if len(epochs) else None
        bulk = dict(zip(epochs.tolist(), read)) if read is not None else {}
        for i in special.tolist():
            record = bulk.get(i)
            if record is None:
                try:
                    record = decode_record(lines[i])
                except ValueError:  # polars read it, json does not: trust the strict reader
                    self.stats.bad_lines += 1
                    continue
            kind = record.get("type")
            if kind == STEP.name:
                steps.append(record)
                continue
            if kind in BARRIERS:
                if kind == SEGMENT.name:
                    self._add_rows(cols, plain, start, i, steps)
                steps, start = [], i + 1
            self._add_other(record)
        self._add_rows(cols, plain, start, len(lines), steps)

    def _add_rows(self, cols, plain, start: int, end: int, steps: list[dict]) -> None:
        rows = np.flatnonzero(plain[start:end]) + start
        blocks = [{k: v[rows] for k, v in cols.items()}] if len(rows) else []
        if blocks:  # the rows whose nonfinite notes were applied column-wise
            bad = np.zeros(len(rows), dtype=bool)
            for f in NONFINITE_COUNTED:
                bad |= blocks[0][f + "?"] & ~np.isfinite(blocks[0][f])
            self.nonfinite_steps += int(bad.sum())
        if steps:
            blocks.append(records_to_columns(steps))
            self._count_nonfinite(steps)
        if blocks:
            self._add_steps(blocks)

    def _add_decoded_steps(self, steps: list[dict]) -> None:
        if steps:
            self._add_steps([records_to_columns(steps)])
            self._count_nonfinite(steps)

    def _add_other(self, record: dict) -> None:
        kind = record.get("type")
        if kind == HEADER.name:
            self.clear()
            self.header = record
            self.headers += 1
        elif kind == SEGMENT.name:
            self._resume_from(record)
        elif kind == EPOCH.name:
            self.epochs.append(record)
        elif kind == EVENT.name:
            self.events.append(record)
        elif kind == METRICS.name:
            self.metrics = record
        elif kind == STATUS.name:
            self.final_status = record
        elif kind not in RECORD_TYPES:
            self.stats.unknown_types += 1

    def _resume_from(self, segment: dict) -> None:
        """A resumed engine recomputes everything from its checkpoint on: drop the
        interrupted process's records from there, by engine.runs.telemetry.superseded."""
        epoch, step = resume_point(segment)
        for series in self.steps.values():
            series.truncate(step)  # the rule for step records, on sorted columns
        self.step_times = None  # the step rate restarts with the new process
        self.epochs = [e for e in self.epochs if not superseded(e, epoch, step)]
        self.events = [e for e in self.events if not superseded(e, epoch, step)]
        self.metrics = None  # superseded, as is every status and metrics record
        self.final_status = None
        self.segments += 1

    def _count_nonfinite(self, steps: list[dict]) -> None:
        self.nonfinite_steps += sum(
            1
            for r in steps
            if any(
                isinstance(r.get(f), float) and not math.isfinite(r[f]) for f in NONFINITE_COUNTED
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
