"""The run store's first read (in threads) and its row memo: a row is rebuilt when something
it shows can have changed, and the previous row object is returned otherwise."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

import pytest

from engine.live import runstore as runstore_mod
from engine.live.runstore import RunStore
from engine.runs.telemetry import TelemetryWriter

HEADER = {
    "type": "header",
    "schema": "fnotui/1",
    "steps_per_epoch": 10,
    "config": {"train": {"epochs": 4, "batch_size": 8}},
    "start_time": 100.0,
    "t": 100.0,
}


def steps(lo: int, hi: int) -> list[dict]:
    out: list[dict] = []
    for i in range(lo, hi):
        loss = math.nan if i == 13 else 1.0 / (i + 1)
        out.append({"type": "step", "epoch": i // 10, "step": i, "loss": loss, "t": 100.0 + i})
        if i % 10 == 9:
            out.append({"type": "epoch", "epoch": i // 10, "step": i + 1, "val_loss": 1 / i})
    return out


def write(run: Path, records: list[dict]) -> None:
    with TelemetryWriter(run / "telemetry.jsonl") as w:
        for r in records:
            w.write(r)


def status(run: Path, state: str) -> None:
    st = {"state": state, "pid": os.getpid(), "host": socket.gethostname()}
    (run / "status.json").write_text(json.dumps({**st, "heartbeat": time.time()}))


def test_a_row_is_the_same_object_until_something_it_shows_changes(tmp_path):
    run = tmp_path / "a"
    write(run, [HEADER, *steps(0, 20)])
    status(run, "finished")
    store = RunStore(tmp_path, {"a": 4}, discover=False)
    assert store.poll(now=1000.0)
    first = store.snapshots()[0]
    assert not store.poll(now=1005.0)
    assert store.snapshots()[0] is first
    write(run, steps(20, 25))  # new telemetry: a new row
    assert store.poll(now=1006.0)
    grown = store.snapshots()[0]
    assert grown is not first and grown.n_steps == 25
    (run / "recon.npz").write_bytes(b"")  # a reconstruction appeared
    assert store.poll(now=1007.0)
    assert store.snapshots()[0].has_recon and not first.has_recon
    status(run, "failed")  # the state changed without any telemetry
    assert store.poll(now=1008.0)
    assert store.snapshots()[0].state == "failed"


def test_a_running_row_is_rebuilt_once_a_second(tmp_path):
    run = tmp_path / "a"
    write(run, [HEADER, *steps(0, 20)])
    status(run, "running")
    store = RunStore(tmp_path, {"a": 4}, discover=False)
    now = time.time()
    arm = store.arms["a"]
    store.poll(now=now)
    a = arm.snapshot(math.floor(now) + 0.1)
    assert a.state == "running"
    assert arm.snapshot(math.floor(now) + 0.6) is a  # same second: same row
    b = arm.snapshot(math.floor(now) + 1.1)  # the ETA and the record's age move on
    assert b is not a and b.updated_age_s == a.updated_age_s + 1


@pytest.mark.parametrize("threads", [1, 4])
def test_the_first_read_in_threads_reads_what_a_poll_per_run_reads(tmp_path, monkeypatch, threads):
    monkeypatch.setattr(runstore_mod, "FIRST_READ_THREADS", threads)
    names = [f"r{i}" for i in range(6)]
    for i, name in enumerate(names):
        write(tmp_path / name, [HEADER, *steps(0, 3000 + 100 * i)])  # over the bulk threshold
        status(tmp_path / name, "finished")
    store = RunStore(tmp_path, dict.fromkeys(names, 4), discover=False)
    assert store.poll(now=1000.0)
    rows = {s.name: s for s in store.snapshots()}
    for i, name in enumerate(names):
        alone = RunStore(tmp_path, {name: 4}, discover=False)  # one run: polled in place
        alone.poll(now=1000.0)
        (row,) = alone.snapshots()
        n = 3000 + 100 * i
        assert rows[name].n_steps == row.n_steps == n
        assert rows[name].epochs_done == row.epochs_done == n // 10
        assert rows[name].nonfinite_steps == row.nonfinite_steps == 1
        assert rows[name].best_val == row.best_val and rows[name].last_loss == row.last_loss
