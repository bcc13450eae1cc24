"""Telemetry lines are strict JSON, keep non-finite values by name, and survive torn writes."""

from __future__ import annotations

import json
import math

import polars as pl

from engine.atomic import atomic_write_json
from engine.runs.telemetry import (
    ReadStats,
    TelemetryWriter,
    decode_record,
    encode_record,
    iter_records,
)


def test_nonfinite_values_become_null_and_are_named():
    line = encode_record(
        {
            "type": "step",
            "loss": math.nan,
            "grad_norm": math.inf,
            "lr": 1e-3,
            "ls": {"a": {"mean": -math.inf}},
            "v": [1.0, math.nan],
        }
    )
    strict = json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert strict["loss"] is None and strict["grad_norm"] is None
    assert strict["nonfinite"] == {
        "/loss": "nan",
        "/grad_norm": "inf",
        "/ls/a/mean": "-inf",
        "/v/1": "nan",
    }
    back = decode_record(line)
    assert math.isnan(back["loss"]) and back["grad_norm"] == math.inf
    assert back["ls"]["a"]["mean"] == -math.inf and math.isnan(back["v"][1])
    assert back["lr"] == 1e-3 and "nonfinite" not in back


def test_finite_record_has_no_nonfinite_key():
    assert "nonfinite" not in json.loads(encode_record({"type": "step", "loss": 0.5}))


def test_writer_appends_lines_that_polars_reads(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        for i in range(5):
            w.write({"type": "step", "step": i, "loss": math.nan if i == 3 else i / 10})
    df = pl.read_ndjson(path)
    assert df.height == 5
    assert df["loss"].to_list()[3] is None
    assert df["nonfinite"].to_list()[3] == {"/loss": "nan"}


def test_reader_skips_partial_last_line_and_counts_garbage(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        w.write({"type": "step", "step": 0, "loss": 1.0})
    with open(path, "ab") as fh:
        fh.write(b"this is not json\n")
        fh.write(b'{"type": "step", "step": 1, "lo')  # torn write, no newline
    stats = ReadStats()
    records = list(iter_records(path, stats))
    assert [r["step"] for r in records] == [0]
    assert stats.bad_lines == 1 and stats.partial_tail


def test_writer_terminates_a_partial_line_left_by_a_crash(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    path.write_bytes(b'{"type":"step","step":0}\n{"type":"step","st')
    with TelemetryWriter(path) as w:
        w.write({"type": "segment", "step": 1})
    stats = ReadStats()
    records = list(iter_records(path, stats))
    assert [r["type"] for r in records] == ["step", "segment"]
    assert stats.bad_lines == 1 and not stats.partial_tail


def test_atomic_json_is_strict_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "history.json"
    atomic_write_json(target, {"val_loss": [1.0, math.nan]})
    assert json.loads(target.read_text()) == {"val_loss": [1.0, None]}
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_nonfinite_inside_dotted_and_slashed_keys_round_trips():
    record = {
        "type": "epoch",
        "layerscale": {"encoder.0.layerscale": {"mean": math.nan}},
        "odd": {"a/b~c": math.inf},
    }
    back = decode_record(encode_record(record))
    assert math.isnan(back["layerscale"]["encoder.0.layerscale"]["mean"])
    assert back["odd"]["a/b~c"] == math.inf
