"""The bulk parser's nonfinite path: a step whose NaN or inf is named in its ``nonfinite`` note
is read from polars' columns with the note applied column-wise, and must read exactly as
engine.runs.telemetry.decode_record (the one strict reader) reads it, line by line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.live import series as series_mod
from engine.live.parse import note_fills
from engine.live.series import NONFINITE_COUNTED, STEP_FIELDS, ArmSeries
from engine.runs.telemetry import TelemetryWriter, decode_record

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
NAN_TRACES = sorted(TRACES.glob("real_nan_*.jsonl"))


def strict_steps(data: bytes) -> tuple[dict[str, tuple[list, list]], int, int]:
    """Step series (field -> (steps, values)), non-finite steps and bad lines, read line by
    line with decode_record (files with one header, no resume)."""
    out: dict[str, tuple[list, list]] = {f: ([], []) for f in STEP_FIELDS}
    nonfinite = bad = 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            record = decode_record(raw)
        except ValueError:
            bad += 1
            continue
        if record.get("type") != "step":
            continue
        for f in STEP_FIELDS:
            if record.get(f) is not None:
                out[f][0].append(record["step"])
                out[f][1].append(float(record[f]))
        nonfinite += any(
            isinstance(record.get(f), float) and not math.isfinite(record[f])
            for f in NONFINITE_COUNTED
        )
    return out, nonfinite, bad


def read(data: bytes, monkeypatch, bulk_min: int) -> tuple[ArmSeries, list[bytes]]:
    """The series of ``data`` and the lines decoded one by one on the way."""
    decoded: list[bytes] = []

    def counting(raw):
        decoded.append(bytes(raw))
        return decode_record(raw)

    monkeypatch.setattr(series_mod, "BULK_MIN_LINES", bulk_min)
    monkeypatch.setattr(series_mod, "decode_record", counting)
    s = ArmSeries()
    s.ingest(data)
    return s, decoded


def assert_series_equal(s: ArmSeries, expected: dict[str, tuple[list, list]]) -> None:
    for f in STEP_FIELDS:
        xs, ys = expected[f]
        np.testing.assert_array_equal(s.steps[f].x.view(), np.asarray(xs, dtype=np.int64))
        # the series keep float32 values; NaN equals NaN here, inf keeps its sign
        np.testing.assert_array_equal(s.steps[f].y.view(), np.asarray(ys, dtype=np.float32))


@pytest.mark.parametrize("trace", NAN_TRACES, ids=lambda p: p.stem)
def test_real_nan_traces_read_by_polars_as_decode_record_reads_them(trace, monkeypatch):
    data = trace.read_bytes()
    expected, nonfinite, bad = strict_steps(data)
    assert nonfinite > 100 and bad == 0  # the trace is what this test is about
    bulk, decoded = read(data, monkeypatch, 5)
    assert_series_equal(bulk, expected)
    assert bulk.nonfinite_steps == nonfinite
    # no step went through the per-line decoder: every note was applied column-wise
    assert not any(decode_record(raw).get("type") == "step" for raw in decoded)
    each, _ = read(data, monkeypatch, 10**9)
    assert_series_equal(each, expected)
    assert each.nonfinite_steps == nonfinite
    assert len(bulk.epochs) == len(each.epochs) > 0
    assert bulk.stats.bad_lines == each.stats.bad_lines == 0


def written(tmp_path: Path, records: list[dict]) -> bytes:
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        for r in records:
            w.write(r)
    return path.read_bytes()


def writer_steps(n: int) -> list[dict]:
    """Steps with NaN, inf and -inf in every parsed field, alone and together, some with a
    nested non-finite value (a note the bulk path leaves to the strict reader)."""
    nan, inf = math.nan, math.inf
    header = {"type": "header", "schema": "fnotui/1", "steps_per_epoch": 10, "t": 1.0}
    records: list[dict] = [header]
    odd = [
        {"loss": nan},
        {"loss": inf, "grad_norm": -inf},
        {"grad_norm_clipped": nan, "grad_norm": 3.0},
        {"lr": nan},  # the lr comes from the schedule: not a non-finite step
        {"t": inf},
        {"loss": -inf, "lr": inf, "t": nan, "grad_norm": nan, "grad_norm_clipped": inf},
        {"extra": {"a": nan}},  # "/extra/a": not a parsed field
        {"loss": nan, "extra": [1.0, inf]},
    ]
    for i in range(n):
        r = {"type": "step", "epoch": i // 10, "step": i, "loss": 1.0 / (i + 1), "lr": 0.1}
        r["t"] = 10.0 + i
        if i % 3 == 0:
            r.update(odd[(i // 3) % len(odd)])
        records.append(r)
        if i % 10 == 9:
            records.append({"type": "epoch", "epoch": i // 10, "step": i + 1, "val_loss": nan})
    return records


def test_writer_lines_with_nan_and_inf_read_by_polars_as_decode_record_reads_them(
    tmp_path, monkeypatch
):
    data = written(tmp_path, writer_steps(3000))
    expected, nonfinite, _ = strict_steps(data)
    bulk, decoded = read(data, monkeypatch, 5)
    assert_series_equal(bulk, expected)
    assert bulk.nonfinite_steps == nonfinite > 500
    # only steps with a nested note were decoded one by one
    steps = [decode_record(raw) for raw in decoded]
    steps = [r for r in steps if r.get("type") == "step"]
    assert steps and all("extra" in r for r in steps)
    assert bulk.step_times == read(data, monkeypatch, 10**9)[0].step_times


def test_a_note_json_rejects_is_a_bad_line_on_the_bulk_path_too(tmp_path, monkeypatch):
    # Another writer's bad note: polars reads the line (the note is a string to it), the
    # strict reader does not (no such non-finite value), so it is counted, never a step.
    data = written(tmp_path, writer_steps(3000))
    lines = data.split(b"\n")
    i = next(k for k, raw in enumerate(lines) if b'{"/loss":"nan"}' in raw)
    lines[i] = lines[i].replace(b'"nan"', b'"NaN?"')
    data = b"\n".join(lines)
    expected, nonfinite, bad = strict_steps(data)
    assert bad == 1
    for bulk_min in (5, 10**9):
        s, _ = read(data, monkeypatch, bulk_min)
        assert_series_equal(s, expected)
        assert s.nonfinite_steps == nonfinite
        assert s.stats.bad_lines == 1


@pytest.mark.parametrize(
    ("note", "fills"),
    [
        ('{"/loss": "nan", "/grad_norm": "-inf"}', {"loss": math.nan, "grad_norm": -math.inf}),
        ('{"/t": "inf"}', {"t": math.inf}),
        ('{"/loss": "nan", "/loss": "inf"}', {"loss": math.inf}),  # json keeps the last
        ('{"/loss": "NaN"}', None),  # not a value decode_record knows: a bad line
        ('{"/loss": 1}', None),
        ('{"/step": "nan"}', None),  # the step number: the strict reader decides
        ('{"/type": "nan"}', None),  # no longer a step at all
        ('{"/extra/a": "nan"}', None),  # nested: only the strict reader can check it
        ('{"loss": "nan"}', None),  # not a JSON pointer
        ('["/loss"]', None),
        ("nan", None),
    ],
)
def test_note_fills_applies_only_what_it_can_apply_as_decode_record_would(note, fills):
    got = note_fills(note)
    if fills is None:
        assert got is None
    else:
        assert got is not None and got.keys() == fills.keys()
        assert all((math.isnan(got[k]) and math.isnan(v)) or got[k] == v for k, v in fills.items())
