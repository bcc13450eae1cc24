"""Append-only JSONL telemetry: record encoding, the one writer, and a tolerant reader.

Strict JSON on every line (docs/telemetry.md, 'Guarantees'): NaN and +-inf are not JSON, so each
non-finite float is written as ``null`` and named in the record's ``nonfinite`` object
(JSON Pointer of the field, RFC 6901 -> "nan" | "inf" | "-inf"); ``decode_record`` restores them.
JSON Pointers, not dotted paths: state-dict names such as ``encoder.0.layerscale`` contain dots. Losing the record
that carries the NaN would be the worst possible bug for a collapse-hunting tool.

The schema (record kinds and their fields) is declared once, in engine/runs/schema.py.

After a resume the file repeats the records since the last checkpoint; ``superseded`` is the one
rule that says which records the resumed process replaced, and ``load_records`` / ``read_steps``
are the readers that apply it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import TelemetryError
from engine.runs.schema import (
    BARRIERS,
    EPOCH,
    METRICS,
    RECORD_TYPES,
    SEGMENT,
    STATUS,
    STEP,
    RecordKind,
)

TELEMETRY_FILE = "telemetry.jsonl"
# A line longer than this is a broken writer, not a record: readers skip it and count it.
MAX_LINE_BYTES = 1 << 20


def _nonfinite_name(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def _pointer_token(key) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def encode_record(record: dict) -> str:
    """One strict-JSON line (with trailing newline); non-finite floats become null + a note."""
    nonfinite: dict[str, str] = {}

    def clean(value: Any, pointer: str) -> Any:
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            nonfinite[pointer] = _nonfinite_name(value)
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{pointer}/{_pointer_token(k)}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    cleaned = clean(record, "")
    if nonfinite:
        cleaned["nonfinite"] = nonfinite
    return json.dumps(cleaned, allow_nan=False, separators=(",", ":")) + "\n"


def _set_pointer(obj: Any, pointer: str, value: float) -> None:
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]
    for token in tokens[:-1]:
        obj = obj[int(token)] if isinstance(obj, list) else obj[token]
    last = tokens[-1]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        obj[last] = value


_NONFINITE_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def decode_record(line: str | bytes) -> dict:
    """Parse one line and restore the non-finite values it names. Raises ValueError if bad."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("a telemetry record must be a JSON object")
    notes = record.pop("nonfinite", {})
    if not isinstance(notes, dict):  # valid JSON from a broken writer: a bad line, not a crash
        raise ValueError(f"nonfinite must be an object, got {type(notes).__name__}")
    for pointer, name in notes.items():
        try:
            _set_pointer(record, pointer, _NONFINITE_VALUES[name])
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"bad nonfinite entry {pointer!r}: {name!r}") from None
    return record


class TelemetryWriter:
    """The single writer of one arm's telemetry file.

    One ``write()`` per complete line (so a crash leaves at most one partial last line), a flush
    after every record, ``fsync`` on demand (the loop calls it at each epoch end and at exit).
    A partial last line left by an earlier crash is terminated before appending, so the new
    records never get glued onto it.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._terminate_partial_line()
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 (held until close())
        self.records_written = 0
        self.bytes_written = 0

    def _terminate_partial_line(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() == 0:
                    return
                fh.seek(-1, os.SEEK_END)
                last = fh.read(1)
        except FileNotFoundError:
            return
        if last != b"\n":
            with open(self.path, "ab") as fh:
                fh.write(b"\n")

    def write(self, record: dict) -> None:
        data = encode_record(record).encode("utf-8")
        start = self._fh.tell()
        try:
            view = memoryview(data)
            while view:  # unbuffered: normally one write() syscall per line
                n = self._fh.write(view)
                if not n:
                    raise OSError(f"write returned {n}")
                view = view[n:]
        except OSError as exc:
            # A full disk (or a file-size limit) can take half a line: cut it off again, so the
            # file stays whole records up to the last one that fit.
            try:
                os.ftruncate(self._fh.fileno(), start)
            except OSError:
                pass
            raise TelemetryError(f"cannot append to {self.path}: {exc}") from exc
        self.records_written += 1
        self.bytes_written += len(data)

    def fsync(self) -> None:
        try:
            os.fsync(self._fh.fileno())
        except OSError as exc:
            raise TelemetryError(f"cannot fsync {self.path}: {exc}") from exc

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self.fsync()
            finally:
                self._fh.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ReadStats:
    """What a reader could not use: counted, never hidden."""

    def __init__(self) -> None:
        self.bad_lines = 0
        self.partial_tail = False
        self.unknown_types = 0


def decode_lines(lines, stats: ReadStats) -> list[dict]:
    """Decode complete lines; blank lines are skipped, bad or over-long ones counted."""
    records = []
    for raw in lines:
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            stats.bad_lines += 1
            continue
        try:
            record = decode_record(raw)
        except ValueError:
            stats.bad_lines += 1
            continue
        if record.get("type") not in RECORD_TYPES:
            stats.unknown_types += 1
        records.append(record)
    return records


def iter_records(path: Path, stats: ReadStats | None = None) -> Iterator[dict]:
    """Every complete, parseable record of a telemetry file, in order.

    Unparseable or over-long lines are skipped and counted; an unterminated last line is the
    writer's record in progress (or a crash leftover) and is never parsed.
    """
    stats = stats if stats is not None else ReadStats()
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail:
        stats.partial_tail = True
    yield from decode_lines(lines, stats)


def resume_point(segment: dict) -> tuple[float, float]:
    """(epoch, step) a ``segment`` record resumes from; a missing or non-numeric value reads as 0."""
    return _number(segment.get("resume_epoch")), _number(segment.get("resume_step"))


def superseded(record: dict, resume_epoch: float, resume_step: float) -> bool:
    """Whether a resume from (``resume_epoch``, ``resume_step``) replaces ``record``, one the
    interrupted process wrote before the ``segment`` record.

    The resumed process recomputes everything from its checkpoint on: the epoch records from
    ``resume_epoch``, the step and event records from ``resume_step``, and the interrupted
    process's ending (its metrics and status). The header and earlier segments stay. This is the
    one rule: ``resolve_segments`` applies it to a record list, the dashboard's run store
    (engine/live/series.py) to its series, the docs' polars recipe to a frame.
    """
    kind = record.get("type")
    if kind in BARRIERS:
        return False
    if kind in (STATUS.name, METRICS.name):
        return True  # the interrupted process's ending is not the run's ending
    if kind == EPOCH.name:
        return _number(record.get("epoch")) >= resume_epoch
    return _number(record.get("step")) >= resume_step


def _number(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return float(value)
    return 0.0


def resolve_segments(records) -> list[dict]:
    """The logical record stream of a run that may have been resumed.

    A ``segment`` record (written by a resumed engine) says training continued from the
    checkpoint taken after ``resume_epoch`` epochs and ``resume_step`` steps; the records it
    ``superseded`` are dropped. The result reads as one uninterrupted run, plus the segment
    markers themselves.
    """
    out: list[dict] = []
    for r in records:
        if r.get("type") == SEGMENT.name:
            epoch, step = resume_point(r)
            out = [k for k in out if not superseded(k, epoch, step)]
        out.append(r)
    return out


def load_records(path: Path, stats: ReadStats | None = None) -> list[dict]:
    """Every record of a telemetry file as one uninterrupted run: the documented reader.

    ``iter_records`` with the superseding rule applied, so the steps a resumed run repeats are
    counted once. Pass ``stats`` to learn how many lines could not be used.
    """
    return resolve_segments(iter_records(path, stats))


# Polars types of the scalar JSON types; object and array fields stay out of frames.
_POLARS_TYPES = {"integer": "Int64", "number": "Float64", "string": "String", "boolean": "Boolean"}


def records_frame(records, kind: RecordKind = STEP):
    """The records of one kind as a polars frame, one column per scalar field of the
    declaration (in its order); non-finite values stay NaN, absent fields are null."""
    import polars as pl

    schema = {
        f.name: getattr(pl, _POLARS_TYPES[f.type.split("|")[0]])
        for f in kind.fields
        if f.type.split("|")[0] in _POLARS_TYPES
    }
    cols: dict[str, list] = {k: [] for k in schema}
    for r in records:
        if r.get("type") == kind.name:
            for k, v in cols.items():
                v.append(r.get(k))
    return pl.DataFrame(cols, schema=schema, strict=False)


def read_steps(path: Path, stats: ReadStats | None = None):
    """The step records of a telemetry file as a polars frame (columns: the step fields), each
    step once even after a resume."""
    return records_frame(load_records(path, stats), STEP)
