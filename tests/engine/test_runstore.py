"""Run store: series from telemetry lines (bulk and line by line), snapshots, downsampling."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import numpy as np
import pytest

from engine.live import series as runstore  # where the bulk-path threshold lives
from engine.live.plotmath import bucket_peaks, ema, minmax_downsample, nonfinite_points
from engine.live.runstore import RunStore
from engine.live.series import ArmSeries
from engine.runs.telemetry import encode_record

HEADER = {
    "type": "header",
    "schema": "fnotui/1",
    "arm": "a",
    "steps_per_epoch": 10,
    "config": {"train": {"epochs": 4, "batch_size": 8}},
    "start_time": 100.0,
    "t": 100.0,
}


def line(record: dict) -> bytes:
    return encode_record(record).rstrip("\n").encode()


def step(i: int, loss: float = 1.0, **extra) -> dict:
    return {
        "type": "step",
        "epoch": i // 10,
        "step": i,
        "loss": loss,
        "lr": 1e-3,
        "t": 100.0 + i,
        **extra,
    }


def blob(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def telemetry(n_steps: int, nan_at=(), inf_at=()) -> list[bytes]:
    lines = [line(HEADER)]
    for i in range(n_steps):
        loss = math.nan if i in nan_at else math.inf if i in inf_at else 1.0 / (i + 1)
        lines.append(line(step(i, loss, grad_norm=float(i % 7))))
        if i % 10 == 9:
            lines.append(
                line(
                    {
                        "type": "epoch",
                        "epoch": i // 10,
                        "step": i + 1,
                        "train_loss": 0.5,
                        "val_loss": 1.0 / (i + 2),
                        "epoch_time": 10.0,
                        "samples_per_s": 8.0,
                        "lr": 1e-3,
                        "t": 110.0 + i,
                    }
                )
            )
    return lines


@pytest.mark.parametrize("bulk_min", [10**9, 5])  # line by line / polars blocks
def test_series_read_the_same_by_either_path_and_keep_every_nan(monkeypatch, bulk_min):
    monkeypatch.setattr(runstore, "BULK_MIN_LINES", bulk_min)
    s = ArmSeries()
    s.ingest(blob(telemetry(100, nan_at={7, 50}, inf_at={60})))
    x, y = s.steps["loss"].x.view(), s.steps["loss"].y.view()
    assert len(x) == 100 and list(x) == list(range(100))
    assert np.isnan(y[[7, 50]]).all() and y[60] == math.inf
    assert y[8] == pytest.approx(1 / 9)
    assert s.nonfinite_steps == 3
    assert len(s.epochs) == 10 and s.header["arm"] == "a"
    assert len(s.steps["grad_norm"]) == 100
    assert len(s.steps["grad_norm_clipped"]) == 0  # absent, not NaN


def test_series_bulk_path_survives_a_malformed_line_in_the_middle(monkeypatch):
    monkeypatch.setattr(runstore, "BULK_MIN_LINES", 4)
    lines = telemetry(60)
    lines.insert(30, b'{"type":"step","step":')  # a crash leftover, terminated by a later writer
    s = ArmSeries()
    s.ingest(blob(lines))
    assert len(s.steps["loss"]) == 60
    assert s.stats.bad_lines == 1


def test_series_restart_at_a_second_header(monkeypatch):
    for bulk_min in (10**9, 5):
        monkeypatch.setattr(runstore, "BULK_MIN_LINES", bulk_min)
        s = ArmSeries()
        s.ingest(blob(telemetry(30) + [line({**HEADER, "arm": "again"}), line(step(0, 0.25))]))
        assert s.header["arm"] == "again"
        assert list(s.steps["loss"].y.view()) == [0.25]
        assert s.epochs == []


def test_series_skip_unknown_types_and_count_them():
    s = ArmSeries()
    s.ingest(blob([line(HEADER), b'{"type":"future_kind","t":1}', b"", b"not json"]))
    assert s.stats.unknown_types == 1 and s.stats.bad_lines == 1


def test_minmax_downsample_keeps_a_one_point_spike():
    y = np.ones(100_000)
    y[54_321] = 1e6
    y[12_345] = -5.0
    x = np.arange(len(y), dtype=float)
    xd, yd = minmax_downsample(x, y, 50)
    assert len(yd) <= 100
    assert yd.max() == 1e6 and xd[yd.argmax()] == 54_321
    assert yd.min() == -5.0
    assert np.all(np.diff(xd) >= 0)


def test_minmax_downsample_drops_nonfinite_and_nonfinite_points_finds_them():
    y = np.array([1.0, math.nan, 2.0, math.inf, -math.inf, 3.0])
    x = np.arange(6.0)
    xd, yd = minmax_downsample(x, y, 100)
    assert np.isfinite(yd).all() and list(xd) == [0, 2, 5]
    marks = nonfinite_points(x, y)
    assert list(marks["nan"]) == [1] and list(marks["inf"]) == [3] and list(marks["-inf"]) == [4]


def test_bucket_peaks_flag_nonfinite_buckets_and_keep_spikes():
    y = np.array([1.0, 9.0, 1.0, 1.0, math.nan, 1.0, math.nan, math.nan])
    peaks, bad = bucket_peaks(y, 4)
    assert peaks[0] == 9.0
    assert bad == (False, False, True, True)
    assert math.isnan(peaks[3])  # all NaN: no finite peak
    assert bucket_peaks(np.array([]), 4) == ((), ())
    assert len(bucket_peaks(np.array([1.0, 2.0]), 24)[0]) == 2


def test_ema_steps_over_nan():
    out = ema(np.array([1.0, math.nan, 3.0, math.inf]), 0.5)
    assert list(out) == [1.0, 1.0, 2.0, 2.0]


def write_run(root, name, lines, status=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "telemetry.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    if status is not None:
        (run / "status.json").write_text(json.dumps(status))
    return run


def test_store_snapshots_study_arms_discovered_runs_and_collapse(tmp_path):
    lines = telemetry(40)
    lines.append(
        line(
            {
                "type": "event",
                "rule": "output_collapse",
                "severity": "collapse",
                "epoch": 2,
                "step": 30,
                "value": 0.0,
                "threshold": 0.1,
                "message": "flat",
                "t": 150.0,
            }
        )
    )
    lines.append(line({"type": "status", "state": "finished", "exit_code": 0, "t": 160.0}))
    write_run(tmp_path, "a", lines, {"state": "finished", "pid": 1, "host": "h"})
    write_run(tmp_path, "extra", telemetry(5))
    (tmp_path / ".cache").mkdir()
    store = RunStore(tmp_path, {"a": 4, "b": 7})
    assert store.poll()
    snaps = {s.name: s for s in store.snapshots()}
    assert set(snaps) == {"a", "b", "extra"}
    a = snaps["a"]
    assert a.state == "finished" and a.collapsed and a.alarms == ("output_collapse@2",)
    assert a.verdict_label == "collapsed" and "collapsed" in a.verdict_text
    assert a.epochs_done == 4 and a.epochs_total == 4
    assert a.best_val == pytest.approx(1 / 41) and a.best_val_epoch == 3
    assert a.last_loss == pytest.approx(1 / 40) and a.samples_per_s == 8.0
    assert snaps["b"].state == "not started" and snaps["b"].epochs_total == 7
    assert not snaps["extra"].in_study
    assert not store.poll()  # nothing new


def test_store_follows_appends_and_estimates_eta_of_a_running_arm(tmp_path):
    now = time.time()
    run = write_run(
        tmp_path,
        "a",
        telemetry(10),
        {"state": "running", "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now},
    )
    store = RunStore(tmp_path, {"a": 4}, discover=False)
    store.poll(now=now)
    first = store.snapshots()[0]
    assert first.state == "running" and first.n_steps == 10
    with open(run / "telemetry.jsonl", "ab") as fh:
        fh.write(line(step(10, math.nan)) + b"\n" + line(step(11, 0.5))[:20])  # partial last
    assert store.poll(now=now)
    snap = store.snapshots()[0]
    assert snap.n_steps == 11 and math.isnan(snap.last_loss) and snap.nonfinite_steps == 1
    assert snap.spark_loss[1][-1]  # the NaN shows in the sparkline's last bucket
    assert snap.eta_s is not None and snap.eta_s >= 0


def test_plot_data_copies_series_with_epoch_x(tmp_path):
    write_run(tmp_path, "a", telemetry(20))
    store = RunStore(tmp_path, {"a": 4})
    store.poll()
    data = store.plot_data("a")
    x, y = data.steps["loss"]
    assert x[10] == 1.0  # step 10 with 10 steps per epoch
    xs, ys = data.epochs["val_loss"]
    assert list(xs) == [1.0, 2.0]
    y[0] = 123.0  # a copy: the store is untouched
    assert store.plot_data("a").steps["loss"][1][0] == 1.0


@pytest.mark.parametrize("bulk_min", [10**9, 5])
def test_series_resumed_segment_supersedes_the_interrupted_tail(monkeypatch, bulk_min):
    monkeypatch.setattr(runstore, "BULK_MIN_LINES", bulk_min)
    lines = telemetry(25)  # epochs 0 and 1 complete, 5 steps into epoch 2
    lines.append(line({"type": "status", "state": "killed", "t": 1.0}))
    lines.append(
        line({"type": "segment", "segment": 1, "resume_epoch": 2, "resume_step": 20, "t": 2.0})
    )
    lines += [line(step(i, 0.125)) for i in range(20, 30)]
    s = ArmSeries()
    s.ingest(blob(lines))
    x, y = s.steps["loss"].x.view(), s.steps["loss"].y.view()
    assert list(x) == list(range(30))
    assert list(y[20:]) == [0.125] * 10  # the resumed values, not the interrupted ones
    assert [e["epoch"] for e in s.epochs] == [0, 1]
    assert s.final_status is None and s.segments == 1
