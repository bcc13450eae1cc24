"""The offset-and-carry tailer: partial lines, truncation, replacement, over-long lines."""

from __future__ import annotations

import math
import os

from engine.live.tail import Tailer
from engine.runs.telemetry import ReadStats, decode_lines, encode_record


def append(path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_tailer_reports_missing_file_then_reads_it_when_it_appears(tmp_path):
    path = tmp_path / "t.jsonl"
    tailer = Tailer(path)
    chunk = tailer.poll()
    assert chunk.missing and not chunk.lines and not chunk.reset
    append(path, b'{"a":1}\n')
    assert tailer.poll().lines == [b'{"a":1}']


def test_tailer_keeps_partial_line_until_newline(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b'{"a":1}\n{"b":')
    tailer = Tailer(path)
    assert tailer.poll().lines == [b'{"a":1}']
    assert tailer.carry == b'{"b":'
    assert tailer.poll().lines == []  # nothing new: the half line is not parsed
    append(path, b"2}")
    assert tailer.poll().lines == []
    append(path, b"\n")
    assert tailer.poll().lines == [b'{"b":2}']
    assert tailer.carry == b""


def test_tailer_reads_only_new_bytes(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"1\n2\n")
    tailer = Tailer(path)
    assert tailer.poll().lines == [b"1", b"2"]
    append(path, b"3\n")
    assert tailer.poll().lines == [b"3"]
    assert tailer.offset == os.path.getsize(path)


def test_tailer_detects_truncation_and_starts_over(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"1\n2\n3\n")
    tailer = Tailer(path)
    tailer.poll()
    path.write_bytes(b"9\n")
    chunk = tailer.poll()
    assert chunk.reset and chunk.lines == [b"9"]


def test_tailer_detects_a_rewrite_that_grew_past_the_offset(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b'{"run":1}\n')
    tailer = Tailer(path)
    tailer.poll()
    path.write_bytes(b'{"run":2}\n{"x":3}\n')  # truncated and rewritten between two polls
    chunk = tailer.poll()
    assert chunk.reset and chunk.lines == [b'{"run":2}', b'{"x":3}']


def test_tailer_reopens_a_replaced_file(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"old1\nold2\n")
    tailer = Tailer(path)
    tailer.poll()
    other = tmp_path / "new.jsonl"
    other.write_bytes(b"new1\nnew2\nnew3\n")
    os.replace(other, path)  # a different inode at the same path
    chunk = tailer.poll()
    assert chunk.reset and chunk.lines == [b"new1", b"new2", b"new3"]


def test_tailer_resets_when_the_file_disappears(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"1\n")
    tailer = Tailer(path)
    tailer.poll()
    path.unlink()
    chunk = tailer.poll()
    assert chunk.missing and chunk.reset


def test_tailer_drops_and_counts_over_long_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"ok\n" + b"x" * 50 + b"\nfine\n")
    tailer = Tailer(path, max_line=10)
    assert tailer.poll().lines == [b"ok", b"fine"]
    assert tailer.too_long == 1


def test_tailer_carry_never_grows_past_the_line_cap(tmp_path):
    path = tmp_path / "t.jsonl"
    tailer = Tailer(path, max_line=10)
    append(path, b"y" * 30)  # a broken writer, no newline yet
    assert tailer.poll().lines == []
    assert tailer.carry == b"" and tailer.too_long == 1
    append(path, b"y" * 30 + b"\nafter\n")
    assert tailer.poll().lines == [b"after"]  # the rest of the long line is skipped


def test_tailer_reads_a_large_backlog_over_several_polls(tmp_path):
    path = tmp_path / "t.jsonl"
    append(path, b"".join(b"%d\n" % i for i in range(1000)))
    tailer = Tailer(path, max_read=100)
    lines = []
    while True:
        chunk = tailer.poll()
        lines += chunk.lines
        if not chunk.more:
            break
    assert lines == [b"%d" % i for i in range(1000)]


def test_decode_lines_restores_nonfinite_and_counts_bad_lines():
    stats = ReadStats()
    lines = [
        encode_record({"type": "step", "loss": math.nan, "g": math.inf}).strip().encode(),
        b"{not json",
        b"",
        b'{"type":"mystery"}',
        b"[1,2]",
    ]
    records = decode_lines(lines, stats)
    assert math.isnan(records[0]["loss"]) and records[0]["g"] == math.inf
    assert stats.bad_lines == 2
    assert stats.unknown_types == 1
