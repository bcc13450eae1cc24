"""Bulk parsing of telemetry lines into step columns.

A large backlog is parsed by polars in one call per block, which yields the step columns and
tells which rows are anything else: other record types and every record that carries a NaN or
an inf (its ``nonfinite`` note) are then decoded one by one with
``engine.runs.telemetry.decode_record``, the one strict reader. ``Lines`` addresses the lines of
one buffer through their newline offsets, so a block is sliced without per-line objects.
"""

from __future__ import annotations

import math

import numpy as np

from engine.runs.schema import STEP

# Parsed from step records: the series, plus the wall time that feeds the step-rate summary.
PARSED_FIELDS = STEP.series + ("t",)


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


def bulk_parse(lines: Lines) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
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
