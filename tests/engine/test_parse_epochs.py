"""Epoch records read in bulk by polars (engine.live.parse.bulk_epochs) keep what the series'
readers use, with the same values ``decode_record`` gives; every number of the table row and
the plots is the same as when each line is decoded on its own."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.live import series as series_mod
from engine.live.parse import EPOCH_KEPT, bulk_epochs
from engine.live.series import ArmSeries
from engine.live.snapshot import SparkCache, make_plot_data, make_snapshot
from engine.runs.telemetry import TelemetryWriter, decode_record

TRACES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "traces").glob("*.jsonl"))


def kept(record: dict) -> dict:
    return {k: record[k] for k in EPOCH_KEPT if record.get(k) is not None}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and type(a) is type(b)


def read(data: bytes, monkeypatch, bulk_min: int) -> ArmSeries:
    monkeypatch.setattr(series_mod, "BULK_MIN_LINES", bulk_min)
    s = ArmSeries()
    s.ingest(data)
    return s


def row(s: ArmSeries, state: str, now: float):
    snap = make_snapshot(
        s,
        name="a",
        in_study=True,
        state=state,
        epochs_hint=None,
        sparks=SparkCache(),
        has_recon=False,
        has_run=True,
        note="",
        now=now,
    )
    return {k: v for k, v in vars(snap).items() if k != "version"}


def assert_rows_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert repr(a[k]) == repr(b[k]), k  # NaN reads "nan" in both, also inside tuples


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
def test_bulk_epochs_give_decode_record_values_on_the_real_traces(trace):
    lines = [raw for raw in trace.read_bytes().split(b"\n") if b'"type":"epoch"' in raw]
    assert lines
    got = bulk_epochs(lines)
    assert got is not None and len(got) == len(lines)
    for raw, record in zip(lines, got):
        if record is None:  # left to the strict reader: a note with nested pointers
            assert any(p.count("/") > 1 for p in json.loads(raw)["nonfinite"])
            continue
        want = kept(decode_record(raw))
        assert record.keys() - {"type"} == want.keys()
        assert all(same(record[k], want[k]) for k in want)


@pytest.mark.parametrize("trace", TRACES, ids=lambda p: p.stem)
@pytest.mark.parametrize("state", ["finished", "running"])
def test_table_row_and_plots_are_the_same_read_in_bulk_or_line_by_line(trace, state, monkeypatch):
    data = trace.read_bytes()
    if state == "running":  # half-way, so that the ETA has epochs to go
        lines = data.split(b"\n")
        data = b"\n".join(lines[: len(lines) // 2]) + b"\n"
    bulk = read(data, monkeypatch, 5)
    each = read(data, monkeypatch, 10**9)
    now = each.step_times[1] + 0.5 if each.step_times else 2e9
    assert_rows_equal(row(bulk, state, now), row(each, state, now))
    pb, pe = make_plot_data("a", bulk), make_plot_data("a", each)
    for field in pe.epochs:
        for u, v in zip(pb.epochs[field], pe.epochs[field]):
            np.testing.assert_array_equal(u, v)
    assert len(bulk.epochs) == len(each.epochs)


def test_writer_epochs_with_nan_and_inf_read_in_bulk_as_decode_record_reads_them(tmp_path):
    nan, inf = math.nan, math.inf
    path = tmp_path / "telemetry.jsonl"
    odd = [{"val_loss": nan}, {"train_loss": inf, "grad_norm": -inf}, {"t": nan}, {}]
    with TelemetryWriter(path) as w:
        for e in range(40):
            w.write(
                {
                    "type": "epoch",
                    "epoch": e,
                    "step": 10 * (e + 1),
                    "train_loss": 1.0 / (e + 1),
                    "val_loss": 2.0 / (e + 1),
                    "lr": 0.1,
                    "next_lr": None if e == 39 else 0.1,
                    "epoch_time": 1.5,
                    "samples_per_s": 30.0,
                    "layerscale": {"a": {"mean": nan if e % 5 == 0 else 1.0}},
                    "t": 100.0 + e,
                    **odd[e % len(odd)],
                }
            )
    lines = path.read_bytes().split(b"\n")[:-1]
    got = bulk_epochs(lines)
    assert got is not None
    nested = 0
    for raw, record in zip(lines, got):
        decoded = decode_record(raw)
        if record is None:  # the nested layerscale NaN: the strict reader's to judge
            nested += 1
            assert math.isnan(decoded["layerscale"]["a"]["mean"])
            continue
        want = kept(decoded)
        assert record.keys() - {"type"} == want.keys()
        assert all(same(record[k], want[k]) for k in want)
    assert nested == 8


def test_bulk_epochs_leave_what_they_cannot_read_to_the_strict_reader(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        w.write({"type": "epoch", "epoch": 0, "val_loss": math.nan})
        w.write({"type": "epoch", "val_loss": 1.0})  # no epoch number
        w.write({"type": "epoch", "epoch": math.nan, "val_loss": 1.0})  # the note names it
        w.write({"type": "epoch", "epoch": 2, "val_loss": 1.0})
    lines = path.read_bytes().split(b"\n")[:-1]
    got = bulk_epochs(lines)
    assert got is not None
    assert got[0] is not None and math.isnan(got[0]["val_loss"]) and got[0]["epoch"] == 0
    assert got[1] is None and got[2] is None
    assert got[3] == {"type": "epoch", "epoch": 2, "val_loss": 1.0}
    assert bulk_epochs([*lines, b'{"type":"epoch","epoch":1,"val_loss":true}']) is None
