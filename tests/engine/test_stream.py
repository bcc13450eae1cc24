"""engine/live/stream.py without ssh: resume checks of an append-only file, and ticks that keep
coming while the study is busy (the observed run states depend on them)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

from engine.live.stream import HEAD_BYTES, AppendFollower, run_stream
from engine.study.arms import load_study

ARMS = """
[study]
name = "s"
output_dir = "runs"

[arms.a]
architecture = "cnn"
"""


def follower_holding(path: Path) -> AppendFollower:
    data = path.read_bytes()
    return AppendFollower(path, len(data), data[:HEAD_BYTES], data[-HEAD_BYTES:])


def test_resume_continues_a_file_that_only_grew(tmp_path):
    path = tmp_path / "telemetry.jsonl"
    path.write_bytes(b'{"type":"header"}\n{"step":0}\n')
    f = follower_holding(path)
    with open(path, "ab") as fh:
        fh.write(b'{"step":1}\n')
    reset, data, gone = f.poll()
    assert (reset, data, gone) == (False, b'{"step":1}\n', False)


def test_resume_resets_a_rewritten_file_with_the_same_beginning(tmp_path):
    # A --restart with the same config writes the same header: only the bytes just before
    # the client's offset tell the two files apart.
    path = tmp_path / "telemetry.jsonl"
    path.write_bytes(b'{"type":"header"}\n{"step":0,"loss":0.5}\n')
    f = follower_holding(path)
    path.write_bytes(b'{"type":"header"}\n{"step":0,"loss":0.7}\n{"step":1,"loss":0.6}\n')
    reset, data, _ = f.poll()
    assert reset and data == path.read_bytes()


def test_resume_resets_a_shorter_file(tmp_path):
    path = tmp_path / "run.log"
    path.write_bytes(b"line one\nline two\n")
    f = follower_holding(path)
    path.write_bytes(b"line one\n")
    reset, data, _ = f.poll()
    assert reset and data == b"line one\n"


def test_ticks_with_states_keep_coming_while_an_arm_writes(tmp_path):
    (tmp_path / "arms.toml").write_text(ARMS)
    study = load_study(tmp_path / "arms.toml", validate_models=False)
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    tel = run / "telemetry.jsonl"
    tel.write_text('{"type":"header"}\n')
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            with open(tel, "a") as fh:
                fh.write(json.dumps({"type": "step", "step": i}) + "\n")
            i += 1
            time.sleep(0.02)

    threading.Thread(target=writer, daemon=True).start()
    out = io.StringIO()
    try:
        run_stream(study, out, poll_s=0.05, tick_s=0.3, max_s=2.0)
    finally:
        stop.set()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [m["t"] for m in messages]
    assert kinds[0] == "hello" and kinds.count("append") >= 10
    ticks = [m for m in messages if m["t"] == "tick"]
    assert len(ticks) >= 4 and all("a" in t["states"] for t in ticks)
