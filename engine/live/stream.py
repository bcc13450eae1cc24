"""``fnotui stream``: the remote half of ``fnotui --remote`` (engine/live/remote.py is the local half).

Run on the study's host (over ssh, by the dashboard), it writes to stdout one JSON message per
line describing how the study's run directories change, so that the other side can keep a
byte-exact mirror of the files the dashboard reads and show it with the ordinary file-following
code. Nothing listens on a port: ssh carries stdout, and a dropped link just ends this process.

Messages (``t`` is the type; ``data`` is base64):

- ``hello``: protocol version, host, study name, the arms file's text, output dir, arms.
- ``append``: bytes ``[offset, offset + len)`` of an append-only file (telemetry.jsonl,
  run.log), sent as they are written, partial last line included: the mirror is a copy of the
  bytes, and its reader already handles a half-written line.
- ``reset``: an append-only file was truncated, rewritten or replaced: start it again.
- ``file``: the whole content of a small file that is rewritten atomically (status.json,
  config.json, history.json, metrics.json, stats.json, recon.npz), whenever it changes.
- ``gone``: such a file (or an append-only one) no longer exists.
- ``state``: the run state seen *here*, where the engine's pid can be checked
  (engine.runs.status.run_state: crashed is only knowable on the engine's host).
- ``tick``: every ``tick_s``, busy or not: the time and every arm's current state, so the
  other side can tell a quiet study from a dead link and keeps its observed states fresh.

Resuming after a dropped link costs nothing: the client says (one JSON line on stdin, or
``--from``), per file, how many bytes it has, what its first bytes are and what its last bytes
are; a file that still has those bytes at those places continues from there, anything else is
reset (the last bytes catch a file rewritten since with the same beginning, e.g. a restart with
the same config). A small file whose digest the client already has is not sent again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from engine.runs.rundir import RunDir
from engine.runs.status import run_state

PROTOCOL = 1
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
APPEND_FILES = ("telemetry.jsonl", "run.log")
SNAPSHOT_FILES = (
    "status.json",
    "config.json",
    "history.json",
    "metrics.json",
    "stats.json",
    "recon.npz",
)
HEAD_BYTES = 256  # the first and last bytes a client holds, sent back to prove its copy is a
# prefix of the same file
CHUNK_BYTES = 1 << 20  # one append message carries at most this much
DISCOVER_EVERY_S = 5.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class AppendFollower:
    """Bytes appended to one file since ``offset``; resets when the file is not the same file."""

    path: Path
    offset: int = 0
    head: bytes = b""  # the first bytes the other side holds (at most HEAD_BYTES)
    tail: bytes = b""  # the bytes it holds just before ``offset`` (checked once, on resume)
    identity: tuple[int, int] | None = None
    exists: bool = False

    def poll(self) -> tuple[bool, bytes, bool]:
        """(reset, new bytes, gone). At most CHUNK_BYTES per call; call again while it
        returns data."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            gone = self.exists or self.offset > 0
            self.exists, self.offset, self.head, self.identity = False, 0, b"", None
            return False, b"", gone
        try:
            st = os.fstat(fd)
            reset = False
            identity = (st.st_dev, st.st_ino)
            if (
                self.identity is not None
                and identity != self.identity
                or st.st_size < self.offset
                or self.head
                and os.pread(fd, len(self.head), 0) != self.head
                or self.tail
                and os.pread(fd, len(self.tail), self.offset - len(self.tail)) != self.tail
            ):
                reset = True
            self.tail = b""  # from here on, inode and size changes tell us
            if reset:
                self.offset, self.head = 0, b""
            self.identity, self.exists = identity, True
            want = min(st.st_size - self.offset, CHUNK_BYTES)
            data = os.pread(fd, want, self.offset) if want > 0 else b""
            if len(self.head) < HEAD_BYTES and (data or reset):
                self.head = os.pread(fd, HEAD_BYTES, 0)
        finally:
            os.close(fd)
        self.offset += len(data)
        return reset, data, False


@dataclass
class SnapshotFollower:
    path: Path
    known: str | None = None  # digest of the content the other side holds
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) when last read

    def poll(self) -> tuple[bytes | None, bool]:
        """(new content or None, gone)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            gone = self.known is not None
            self.known, self.stamp = None, None
            return None, gone
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return None, False
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, False  # replaced between stat and read: next poll
        self.stamp = stamp
        d = digest(data)
        if d == self.known:
            return None, False
        self.known = d
        return data, False


@dataclass
class ArmFollower:
    name: str
    run: RunDir
    appends: dict[str, AppendFollower] = field(default_factory=dict)
    snapshots: dict[str, SnapshotFollower] = field(default_factory=dict)
    state: str | None = None

    @classmethod
    def create(cls, name: str, root: Path, known: dict) -> ArmFollower:
        arm = cls(name, RunDir(root))
        for fname in APPEND_FILES:
            have = known.get(fname) or {}
            arm.appends[fname] = AppendFollower(
                root / fname,
                int(have.get("size", 0)),
                unb64(have.get("head", "")),
                unb64(have.get("tail", "")),
            )
        for fname in SNAPSHOT_FILES:
            have = known.get(fname) or {}
            arm.snapshots[fname] = SnapshotFollower(root / fname, have.get("digest"))
        return arm


class StudyStreamer:
    """Polls a study's run directories and emits the messages described above."""

    def __init__(self, study, emit: Callable[[dict], None], known: dict | None = None):
        self.study = study
        self.emit = emit
        self.known = known or {}
        self.output_dir = Path(study.output_dir)
        self.arms: dict[str, ArmFollower] = {}
        for name in study.arms:
            self._follow(name)
        self._last_discover = 0.0

    def _follow(self, name: str) -> None:
        self.arms[name] = ArmFollower.create(name, self.output_dir / name, self.known.get(name, {}))

    def hello(self) -> None:
        self.discover()
        self._last_discover = time.monotonic()
        self.emit(
            {
                "t": "hello",
                "protocol": PROTOCOL,
                "host": socket.gethostname(),
                "study": self.study.name,
                "arms_file": str(self.study.path),
                "arms_text": Path(self.study.path).read_text(encoding="utf-8"),
                "output_dir": str(self.output_dir),
                "arms": list(self.study.arms),
                "runs": list(self.arms),
                "time": time.time(),
            }
        )

    def discover(self) -> None:
        """Run directories under output_dir that the arms file does not name (any more)."""
        try:
            entries = sorted(os.scandir(self.output_dir), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name in self.arms or not entry.is_dir():
                continue
            run = RunDir(Path(entry.path))
            # Only names the other side accepts as a directory name (engine.live.remote.SAFE_NAME).
            if SAFE_NAME.match(entry.name) and (run.telemetry.exists() or run.status.exists()):
                self._follow(entry.name)

    def poll(self) -> bool:
        """One pass over every arm; True if anything was sent."""
        if time.monotonic() - self._last_discover >= DISCOVER_EVERY_S:
            self._last_discover = time.monotonic()
            self.discover()
        sent = False
        for arm in self.arms.values():
            for fname, follower in arm.appends.items():
                while True:
                    start = follower.offset
                    reset, data, gone = follower.poll()
                    if gone:
                        self.emit({"t": "gone", "arm": arm.name, "name": fname})
                        sent = True
                    if reset:
                        self.emit({"t": "reset", "arm": arm.name, "name": fname})
                        start, sent = 0, True
                    if not data:
                        break
                    self.emit(
                        {
                            "t": "append",
                            "arm": arm.name,
                            "name": fname,
                            "offset": start,
                            "data": b64(data),
                        }
                    )
                    sent = True
            for fname, follower in arm.snapshots.items():
                data, gone = follower.poll()
                if gone:
                    self.emit({"t": "gone", "arm": arm.name, "name": fname})
                    sent = True
                elif data is not None:
                    self.emit({"t": "file", "arm": arm.name, "name": fname, "data": b64(data)})
                    sent = True
            state = run_state(arm.run.root)
            if state != arm.state:
                arm.state = state
                self.emit({"t": "state", "arm": arm.name, "state": state, "time": time.time()})
                sent = True
        return sent


def run_stream(
    study,
    out: TextIO,
    known: dict | None = None,
    *,
    poll_s: float = 0.5,
    tick_s: float = 2.0,
    should_stop: Callable[[], bool] = lambda: False,
    max_s: float | None = None,
) -> None:
    """Emit the study's changes on ``out`` until it is closed (the link dropped) or
    ``should_stop``. A closed stdout is the normal end, not an error."""

    def emit(message: dict) -> None:
        out.write(json.dumps(message, separators=(",", ":")) + "\n")

    streamer = StudyStreamer(study, emit, known)
    t_end = None if max_s is None else time.monotonic() + max_s
    try:
        streamer.hello()
        last_tick = time.monotonic()
        while not should_stop() and (t_end is None or time.monotonic() < t_end):
            sent = streamer.poll()
            if time.monotonic() - last_tick >= tick_s:
                states = {name: arm.state for name, arm in streamer.arms.items()}
                emit({"t": "tick", "time": time.time(), "states": states})
                last_tick, sent = time.monotonic(), True
            if sent:
                out.flush()
            time.sleep(poll_s)
    except BrokenPipeError:
        pass  # the client went away (dropped link, quit dashboard): nothing left to do
