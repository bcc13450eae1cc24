"""Bulk parsing of telemetry lines into step columns.

A large backlog is parsed by polars in one call per block, which yields the step columns and
tells which rows are anything else. A step's NaN and inf are written as null and named in its
``nonfinite`` note; a note that names top-level step fields is applied column-wise (the same
values ``engine.runs.telemetry.decode_record``, the one strict reader, restores). Epoch records
come from a second polars call (``bulk_epochs``). Other record types, and records with any other
note, are decoded one by one with ``decode_record``. ``Lines`` addresses the lines of one
buffer through their newline offsets, so a block is sliced without per-line objects.
"""

from __future__ import annotations

import json
import math

import numpy as np

from engine.runs.schema import EPOCH, STEP

# Parsed from step records: the series, plus the wall time that feeds the step-rate summary.
PARSED_FIELDS = STEP.series + ("t",)
_POINTER_FIELDS = {"/" + name: name for name in PARSED_FIELDS}
_NONFINITE_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
# The epoch-record fields the series' readers use (engine/live/snapshot.py: table row, plots,
# verdict; the resume rule): an epoch record read in bulk keeps only these.
EPOCH_KEPT = ("epoch", "step") + EPOCH.series + ("next_lr", "epoch_time", "samples_per_s", "t")
# A note may fill any of them but the epoch number, which the strict reader must judge.
_EPOCH_POINTERS = {"/" + name: name for name in EPOCH_KEPT if name != "epoch"}


def as_float(value) -> float:
    """A record value as float; absent and non-numeric become NaN (callers check presence)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def records_to_columns(records: list[dict]) -> dict[str, np.ndarray]:
    n = len(records)
    out = {"step": np.fromiter((as_float(r.get("step")) for r in records), np.float64, n)}
    for name in PARSED_FIELDS:
        out[name + "?"] = np.fromiter((name in r and r[name] is not None for r in records), bool, n)
        out[name] = np.fromiter((as_float(r.get(name)) for r in records), np.float64, n)
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


def note_fills(note: str, pointers: dict[str, str] = _POINTER_FIELDS) -> dict[str, float] | None:
    """What a record's ``nonfinite`` note sets, as {field: value}; None when the note is
    anything but an object naming fields of ``pointers`` (top-level, parsed) with "nan" |
    "inf" | "-inf" (such a line is left to the strict reader, which also decides whether it
    is bad)."""
    try:
        parsed = json.loads(note)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    fills = {}
    for pointer, name in parsed.items():  # json keeps the last of a repeated key, as decode does
        field = pointers.get(pointer)
        value = _NONFINITE_VALUES.get(name) if isinstance(name, str) else None
        if field is None or value is None:
            return None
        fills[field] = value
    return fills


def bulk_parse(lines: Lines) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray] | None:
    """Parse a block of lines with polars in one call: step columns for every row, the
    indices of the rows that are not steps polars could read (other records, a step without a
    number, or a step whose ``nonfinite`` note ``note_fills`` cannot apply), and those of them
    that are epoch records (for ``bulk_epochs``). NaN and inf always come
    with a note, never from polars' nulls: the note's values are filled in column-wise, as
    ``decode_record`` restores them. A null without a note means the field is absent. Returns
    None if polars rejects the block or its rows do not line up with the lines.
    """
    import polars as pl

    schema = {
        "type": pl.String,
        "step": pl.Float64,
        "nonfinite": pl.String,  # an object comes back as its JSON text
        **{name: pl.Float64 for name in PARSED_FIELDS},
    }
    try:
        df = pl.read_ndjson(lines.block(), schema=schema)
    except Exception:  # polars raises several error types for malformed input
        return None
    if df.height != len(lines):
        return None
    # One select for every column: each polars call costs about a millisecond, per run.
    is_step = (pl.col("type") == STEP.name).fill_null(False) & pl.col("step").is_not_null()
    out = df.select(
        pl.col("step").fill_null(math.nan),
        *(pl.col(name).fill_null(math.nan) for name in PARSED_FIELDS),
        *(pl.col(name).is_not_null().alias(name + "?") for name in PARSED_FIELDS),
        (~is_step).alias(" special"),
        (is_step & pl.col("nonfinite").is_not_null()).alias(" noted"),
        (pl.col("type") == EPOCH.name).fill_null(False).alias(" epoch"),
    )
    cols = {name: out[name].to_numpy() for name in out.columns}
    special = cols.pop(" special")
    noted = np.flatnonzero(cols.pop(" noted"))
    epochs = np.flatnonzero(cols.pop(" epoch"))
    if len(noted):
        strict = _fill_notes(cols, noted, df["nonfinite"].gather(noted).to_list())
        if strict:
            special = special.copy()
            special[strict] = True
    return cols, np.flatnonzero(special), epochs


def _fill_notes(cols: dict[str, np.ndarray], rows: np.ndarray, notes: list[str]) -> list[int]:
    """Apply the notes of step rows to ``cols`` in place; the rows left to the strict reader."""
    plans: dict[str, dict[str, float] | None] = {}
    groups: dict[str, list[int]] = {}
    strict = []
    for i, note in zip(rows.tolist(), notes):
        if note not in plans:
            plans[note] = note_fills(note)
        if plans[note] is None:
            strict.append(i)
        else:
            groups.setdefault(note, []).append(i)
    for note, where in groups.items():
        idx = np.asarray(where)
        for field, value in plans[note].items():
            for key, v in ((field, value), (field + "?", True)):
                if not cols[key].flags.writeable:  # polars hands out read-only views
                    cols[key] = cols[key].copy()
                cols[key][idx] = v
    return strict


def bulk_epochs(lines: list[bytes]) -> list[dict | None] | None:
    """Epoch records read by polars in one call, instead of a ``json.loads`` each (the
    records of a large study are a quarter of its bytes). For each line: the record with the
    fields of ``EPOCH_KEPT`` that are not null (the series' readers take null and absent
    alike) and its note applied, or None where the strict reader must decide (no epoch number,
    or a note ``note_fills`` cannot apply). None if polars rejects the lines.
    """
    import polars as pl

    schema = {
        "type": pl.String,
        "nonfinite": pl.String,
        **{name: pl.Float64 for name in EPOCH_KEPT},
    }
    try:
        df = pl.read_ndjson(b"\n".join(lines) + b"\n", schema=schema)
    except Exception:  # polars raises several error types for malformed input
        return None
    if df.height != len(lines):
        return None
    plans: dict[str, dict[str, float] | None] = {}
    out: list[dict | None] = []
    for row in df.to_dicts():
        note = row.pop("nonfinite")
        if row["type"] != EPOCH.name or row["epoch"] is None:
            out.append(None)
            continue
        record = {k: v for k, v in row.items() if v is not None}
        for key in ("epoch", "step"):  # JSON integers, as json reads them
            if key in record and record[key].is_integer():
                record[key] = int(record[key])
        if note is not None:
            if note not in plans:
                plans[note] = note_fills(note, _EPOCH_POINTERS)
            if plans[note] is None:
                out.append(None)
                continue
            record.update(plans[note])
        out.append(record)
    return out
