"""Damaged telemetry never kills a reader: every case leaves the arm readable as far as it goes,
polled again, and with a one-line reason on the arm (its snapshot's ``note``).

Fixtures are written by the engine's own writer and record constructors, then damaged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.live.runstore import RunStore
from engine.runs.schema import EPOCH, HEADER, HISTORY_FIELDS, SCHEMA, STEP
from engine.runs.telemetry import TelemetryWriter

HEADER_RECORD = HEADER.record(
    **{
        **dict.fromkeys(HEADER.names),
        "schema": SCHEMA,
        "arm": "a",
        "steps_per_epoch": 4,
        "config": {"train": {"epochs": 3, "batch_size": 2}},
        "t": 0.0,
    }
)


def write_run(run: Path, epochs: int = 2) -> Path:
    """Two epochs of four steps through the engine's writer."""
    path = run / "telemetry.jsonl"
    with TelemetryWriter(path) as w:
        w.write(HEADER_RECORD)
        for step in range(4 * epochs):
            w.write(STEP.record(epoch=step // 4, step=step, loss=1.0 / (step + 1), lr=0.1, t=step))
            if step % 4 == 3:
                values = dict.fromkeys(HISTORY_FIELDS, 0.5)
                w.write(
                    EPOCH.record(
                        epoch=step // 4,
                        step=step + 1,
                        **values,
                        next_lr=None,
                        target_amp_std=0.2,
                        epoch_time=1.0,
                        samples_per_s=10.0,
                        t=float(step),
                    )
                )
    return path


def store_of(tmp_path: Path) -> tuple[RunStore, Path]:
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    return RunStore(tmp_path / "runs", {"a": 3}, discover=False), run


def snap(store: RunStore):
    store.poll()
    (s,) = store.snapshots()
    return s


def test_a_clean_run_has_no_note(tmp_path):
    store, run = store_of(tmp_path)
    write_run(run)
    s = snap(store)
    assert s.n_steps == 8 and s.epochs_done == 2 and s.note == ""


def test_truncated_last_line_is_named_and_the_rest_is_read(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    data = path.read_bytes()
    path.write_bytes(data[:-40])  # a crash in the middle of the last record
    s = snap(store)
    assert s.n_steps == 8 and s.epochs_done == 1
    assert "last line incomplete" in s.note and "\n" not in s.note


def test_binary_garbage_is_counted_and_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    with open(path, "ab") as fh:
        fh.write(os.urandom(300).replace(b"\n", b"x") + b"\n")
        fh.write(b"\x00\xff\xfe garbage\n")
    s = snap(store)
    assert s.n_steps == 8 and s.bad_lines == 2
    assert "2 unreadable lines" in s.note


def test_a_directory_in_place_of_the_telemetry_is_named_and_polled_again(tmp_path):
    store, run = store_of(tmp_path)
    (run / "telemetry.jsonl").mkdir()
    s = snap(store)
    assert s.note == "cannot read telemetry.jsonl: it is a directory"
    assert s.n_steps == 0
    # Still polled: once the directory is replaced by a real file, the run is read.
    (run / "telemetry.jsonl").rmdir()
    write_run(run)
    s = snap(store)
    assert s.n_steps == 8 and s.note == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_is_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    path.chmod(0)
    try:
        s = snap(store)
        assert "cannot read telemetry.jsonl: Permission denied" in s.note
    finally:
        path.chmod(0o644)
    assert snap(store).note == ""


def test_a_vanished_file_is_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    assert snap(store).n_steps == 8
    path.unlink()
    s = snap(store)
    assert "telemetry.jsonl vanished" in s.note


def test_a_5_mb_line_is_dropped_counted_and_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run, epochs=1)
    with open(path, "ab") as fh:
        fh.write(b'{"type":"event","x":"' + b"a" * (5 << 20) + b'"}\n')
    with TelemetryWriter(path) as w:  # the writer carries on after it
        w.write(STEP.record(epoch=1, step=4, loss=0.1, lr=0.1, t=4.0))
    s = snap(store)
    while store.arms["a"].tailer.offset < path.stat().st_size:
        s = snap(store)
    assert s.n_steps == 5
    assert "1 lines over 1 MiB dropped" in s.note


def test_crlf_line_ends_are_read_and_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    s = snap(store)
    assert s.n_steps == 8 and s.epochs_done == 2 and s.bad_lines == 0
    assert "CRLF" in s.note


def test_a_duplicated_header_is_named(tmp_path):
    store, run = store_of(tmp_path)
    path = write_run(run)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"".join(lines))
    s = snap(store)
    assert s.n_steps == 8
    assert "2 header records" in s.note


def test_a_bug_in_one_arm_does_not_stop_the_others(tmp_path, monkeypatch):
    """Any exception in an arm's read (not only OSError) becomes that arm's reason."""
    run_a = tmp_path / "runs" / "a"
    run_b = tmp_path / "runs" / "b"
    write_run(run_a)
    write_run(run_b)
    store = RunStore(tmp_path / "runs", {"a": 3, "b": 3}, discover=False)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(store.arms["a"].series, "ingest", broken)
    store.poll()
    a, b = store.snapshots()
    assert a.note == "reader error on telemetry.jsonl: RuntimeError: boom"
    assert b.n_steps == 8 and b.note == ""
