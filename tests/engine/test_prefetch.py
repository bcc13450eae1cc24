"""The first read in a child process (engine/live/prefetch.py): it must read every run exactly as
the store's own first read does, hand over where to go on following, honour the dashboard's
order, and lose nothing when the child dies or talks nonsense (the store reads the rest itself).

The runs are real training traces (tests/fixtures/traces) replayed through the engine's
``TelemetryWriter`` and ``StatusFile``; one is long enough for the polars path, one stops in the
middle of a line, one has a corrupt line, one has not started, one has no directory.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.live import runstore as runstore_mod
from engine.live import series as series_mod
from engine.live.prefetch import Prefetch, start_prefetch
from engine.live.runstore import RunStore
from engine.runs.rundir import RunDir
from engine.runs.status import StatusFile
from engine.runs.telemetry import MAX_LINE_BYTES, TelemetryWriter, decode_record, encode_record

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"


def trace(name: str) -> list[dict]:
    path = TRACES / f"{name}.jsonl"
    return [decode_record(line) for line in path.read_text().splitlines() if line.strip()]


def write_run(runs: Path, name: str, records: list[dict], state: str | None) -> Path:
    run = RunDir(runs / name)
    run.root.mkdir(parents=True, exist_ok=True)
    writer = TelemetryWriter(run.telemetry)
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()
    if state is not None:
        status = StatusFile(run, name, epochs=4)
        if state == "running":
            status.write(epoch=1)
        else:
            status.finish(state, exit_code=0 if state == "finished" else 1)
    return run.telemetry


def long_run(records: list[dict], copies: int) -> list[dict]:
    """The trace's steps and epochs repeated, renumbered, past the bulk threshold."""
    header = [r for r in records if r["type"] == "header"][:1]
    body = [r for r in records if r["type"] in ("step", "epoch")]
    out, step, epoch = list(header), 0, 0
    for _ in range(copies):
        for record in body:
            record = dict(record)
            if record["type"] == "step":
                record["step"], record["epoch"] = step, epoch
                step += 1
            else:
                record["epoch"] = epoch
                epoch += 1
            out.append(record)
    return out


@pytest.fixture
def study(tmp_path) -> tuple[Path, list[str]]:
    runs = tmp_path / "runs"
    healthy, collapse = trace("real_healthy_cnn"), trace("real_collapse_fno_lr01")
    nan = trace("real_nan_hybrid_sgd_lr10")
    write_run(runs, "healthy", healthy, "finished")
    write_run(runs, "collapse", collapse, "finished")
    write_run(runs, "nan", nan, "failed")
    long = long_run(healthy, copies=1 + series_mod.BULK_MIN_LINES // len(healthy))
    write_run(runs, "long", long, "finished")
    telemetry = write_run(runs, "half", collapse[:30], "running")
    with open(telemetry, "ab") as f:  # the writer is in the middle of its next line
        f.write(encode_record(collapse[30]).encode()[:25])
    telemetry = write_run(runs, "corrupt", healthy[:20], "finished")
    with open(telemetry, "ab") as f:
        f.write(b'{"type": "step", "step": 99, "lo\n')
        f.write(b'{"type": "event", "message": "' + b"x" * MAX_LINE_BYTES + b'"}\n')  # too long
        f.write("".join(encode_record(r) for r in healthy[20:40]).encode())
    (runs / "idle").mkdir()  # made, not started
    (runs / "dir" / "telemetry.jsonl").mkdir(parents=True)  # unreadable: said, never a crash
    names = ["healthy", "collapse", "nan", "long", "half", "corrupt", "idle", "absent", "dir"]
    return runs, names


def store_of(runs: Path, names: list[str], prefetch=None) -> RunStore:
    store = RunStore(runs, {name: 4 for name in names}, discover=False, prefetch=prefetch)
    store.read_here = []  # runs the store read itself, not the child
    store.before_read = store.read_here.append
    return store


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def assert_same_reading(here: RunStore, child: RunStore) -> None:
    """Every row and every plot's data the same, whoever read them."""
    rows_here = {s.name: s for s in here.snapshots()}
    rows_child = {s.name: s for s in child.snapshots()}
    assert rows_here.keys() == rows_child.keys()
    for name, row in rows_here.items():
        assert row.loaded and rows_child[name].loaded, name
        for f in dataclasses.fields(row):
            # a change counter of the store's own objects; what moves with the wall clock (a
            # running run's ETA and age, taken when each store published the row)
            if f.name in ("version", "updated_age_s", "eta_s"):
                continue
            mine, theirs = getattr(row, f.name), getattr(rows_child[name], f.name)
            assert same(mine, theirs), (name, f.name, mine, theirs)
        plot_here, plot_child = here.plot_data(name), child.plot_data(name)
        for f in ("steps", "epochs", "events", "header", "steps_per_epoch", "metrics"):
            assert same(getattr(plot_here, f), getattr(plot_child, f)), (name, f)


def test_child_reads_every_run_as_the_store_does_and_following_goes_on(study):
    runs, names = study
    here = store_of(runs, names)
    here.poll()
    child = store_of(runs, names, prefetch=start_prefetch())
    child.poll()
    assert child.read_here == []  # the child read them all
    assert here.read_here == names
    assert_same_reading(here, child)
    # the broken line and the over-long one, counted alike by both readers
    assert child.arms["corrupt"].series.stats.bad_lines == 2
    assert here.arms["corrupt"].series.stats.bad_lines == 2
    assert child.arms["corrupt"].long_lines == here.arms["corrupt"].long_lines == 1
    assert child.arms["dir"].error == here.arms["dir"].error != ""

    # Following from where the child stopped: the half line completed, more records after it.
    collapse = trace("real_collapse_fno_lr01")
    with open(runs / "half" / "telemetry.jsonl", "ab") as f:
        f.write(encode_record(collapse[30]).encode()[25:])
        f.write("".join(encode_record(r) for r in collapse[31:60]).encode())
    assert here.poll() and child.poll()
    assert_same_reading(here, child)
    fresh = store_of(runs, names)
    fresh.poll()
    assert_same_reading(fresh, child)
    assert len(child.arms["half"].series.steps["loss"]) > 0


def test_the_child_reads_the_runs_the_dashboard_names_first(study):
    runs, names = study
    delivered: list[str] = []

    class Recorded(Prefetch):
        def __iter__(self):
            for name, state in super().__iter__():
                if state is not None:
                    delivered.append(name)
                yield name, state

    store = store_of(runs, names, prefetch=Recorded())
    store.prioritize(["idle", "long"])  # the rows on screen, before the read begins
    store.poll()
    assert delivered[:2] == ["idle", "long"]
    assert sorted(delivered) == sorted(names)


def test_a_child_killed_mid_read_loses_no_run(study):
    runs, names = study

    class Killed(Prefetch):
        def __iter__(self):
            for name, state in super().__iter__():
                yield name, state
                if state is not None:
                    self.proc.kill()  # a real SIGKILL, after the first run

    here = store_of(runs, names)
    here.poll()
    child = store_of(runs, names, prefetch=Killed())
    child.poll()
    # the first run came from the child; how many more it had written into the pipe before
    # the kill depends on the machine, and the store read the rest
    assert names[0] not in child.read_here
    assert_same_reading(here, child)


@pytest.mark.parametrize(
    "program",
    [
        "import sys; sys.exit(3)",  # dies at once
        "import sys; sys.stdout.buffer.write(b'\\x00' * 7 + b'\\x05garbage'); sys.stdout.flush()",
        "import sys; sys.stdout.buffer.write(b'\\xff' * 8); sys.stdout.flush()",  # a huge length
    ],
)
def test_a_child_that_fails_or_talks_nonsense_leaves_the_read_to_the_store(
    study, program, monkeypatch
):
    runs, names = study
    monkeypatch.setattr(Prefetch, "COMMAND", [sys.executable, "-c", program])
    here = store_of(runs, names)
    here.poll()
    child = store_of(runs, names, prefetch=start_prefetch())
    child.poll()
    assert child.read_here == names
    assert_same_reading(here, child)


def test_no_child_process_at_all_is_not_an_error(study, monkeypatch):
    runs, names = study
    monkeypatch.setattr(Prefetch, "COMMAND", ["/nonexistent/python"])
    assert start_prefetch() is None
    store = store_of(runs, names, prefetch=None)
    store.poll()
    assert store.read_here == names


def test_the_childs_log_reaches_the_dashboards_log(study):
    runs, names = study
    # A handler of our own on the reader's logger: a dashboard started earlier in this process
    # stops "fnotui" propagating to the root logger (its log goes to a file), so caplog would
    # see nothing.
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    reader_log = logging.getLogger("fnotui.reader")
    reader_log.addHandler(handler)
    try:
        store = store_of(runs, names, prefetch=start_prefetch())
        store.poll()
    finally:
        reader_log.removeHandler(handler)
    assert store.read_here == []
    assert "dir: cannot read telemetry.jsonl: it is a directory" in seen


def test_a_reorder_during_the_read_is_honoured(tmp_path):
    # Runs whose state is larger than a pipe's buffer: the child is at most a run ahead.
    runs, healthy = tmp_path / "runs", trace("real_healthy_cnn")
    names = [f"r{i}" for i in range(6)]
    for name in names:
        write_run(
            runs,
            name,
            long_run(healthy, copies=3 * series_mod.BULK_MIN_LINES // len(healthy)),
            "finished",
        )
    delivered: list[str] = []
    store = store_of(runs, names)

    class Scrolled(Prefetch):
        def __iter__(self):
            for name, state in super().__iter__():
                if state is not None:
                    delivered.append(name)
                    if len(delivered) == 1:  # the user scrolls to the end
                        store.prioritize(["r5", "r4"])
                yield name, state

    store._prefetch = Scrolled()
    store.poll()
    assert store.read_here == []
    assert set(delivered[1:4]) >= {"r5", "r4"}, delivered


def test_a_run_that_blocks_the_child_does_not_hold_the_others_back(study, monkeypatch):
    runs, names = study
    fifo = runs / "blocked" / "telemetry.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)  # opening it waits for a writer: a stalled network filesystem, say
    names = ["blocked", *names]
    # Patient until the child has taken the blocking run (its start-up is slow on a loaded
    # machine), impatient after.
    monkeypatch.setattr(runstore_mod, "PREFETCH_STALL_S", 60.0)

    class Watched(Prefetch):
        def __iter__(self):
            for name, state in super().__iter__():
                if name == "blocked" and state is None:
                    monkeypatch.setattr(runstore_mod, "PREFETCH_STALL_S", 0.5)
                yield name, state

    store = store_of(runs, names, prefetch=Watched())
    reader = threading.Thread(target=store.poll, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        loaded = {s.name for s in store.snapshots() if s.loaded}
        if loaded >= set(names[1:]):
            break
        time.sleep(0.05)
    assert {s.name for s in store.snapshots() if s.loaded} == set(names[1:])
    assert "blocked" not in store.read_here  # the child has it: nobody reads it twice
    with open(fifo, "wb"):  # the file answers at last (a pipe reads as empty: no records)
        pass
    reader.join(30)
    assert not reader.is_alive()
    assert {s.name for s in store.snapshots() if s.loaded} == set(names)


def test_a_child_that_never_answers_is_given_up(study, monkeypatch):
    runs, names = study
    monkeypatch.setattr(runstore_mod, "PREFETCH_STALL_S", 0.5)
    # alive, reading nothing, saying nothing: stuck in its start-up, say
    monkeypatch.setattr(Prefetch, "COMMAND", [sys.executable, "-c", "import time; time.sleep(60)"])
    here = store_of(runs, names)
    here.poll()
    child = store_of(runs, names, prefetch=start_prefetch())
    started = time.monotonic()
    child.poll()
    assert time.monotonic() - started < 20
    assert child.read_here == names
    assert_same_reading(here, child)
