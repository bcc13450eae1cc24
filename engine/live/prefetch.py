"""The first read of a study in a child process, so that it has a core of its own.

Reading a study's backlog is mostly Python work: polars parses the lines, but tailing, decoding
the records polars leaves, building each run's series and its row hold the GIL. In the
dashboard that read ran in threads of the process that was importing and starting Textual at
the same moment, so on a small machine the two took turns on one core and the rows on screen
waited for both (docs/benchmarks.md, "Dashboard"). Here a child process reads the runs instead,
in the order the dashboard asks for, and hands back each run's reader state (its ``Tailer``
position and its ``ArmSeries``, exactly as ``ArmRun.poll`` left them) through a pipe; the
dashboard adopts that state and follows the run from there as if it had read it itself.

The child only makes the first read faster, never different: it runs the same ``ArmRun.poll``
on the same files, and whatever it does not deliver (it could not start, died, or sent a frame
that does not unpickle) is read in process as before (engine/live/runstore.py).

The dashboard starts the child first thing, before it loads the study, so that the child's
imports (numpy, polars) overlap with its own; ``read`` then hands it the runs.

Protocol. The parent writes JSON lines to the child's stdin: first ``{"runs": [[name, dir],
...]}`` in reading order, then any number of ``{"first": [name, ...]}`` (read these next, the
rows now on screen) and perhaps ``{"stop": true}`` (no run after the one in hand: a run that
takes long, or a file that blocks, must not hold the others back, so the parent's threads take
them). The child answers on stdout with frames: an 8-byte big-endian length, then a pickle of
``(name, None)`` as it takes a run and ``(name, RunState)`` once it has read it. End of stdin
(the dashboard quit) ends the child. Pickle is safe
here: the only writer is our own child, started from the same interpreter and code.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the parent imports this module before numpy is loaded
    from engine.live.series import ArmSeries
    from engine.live.tail import Tailer

log = logging.getLogger("fnotui.reader")

_LENGTH = struct.Struct(">Q")


def move_to_front(order: list[str], names: Iterable[str]) -> list[str]:
    """``order`` with those of ``names`` it holds moved to its front, in the order of ``names``
    (the rows on screen, read next): the one reordering rule of the store and of the child."""
    waiting = set(order)
    front = [n for n in dict.fromkeys(names) if n in waiting]
    moved = set(front)
    return front + [n for n in order if n not in moved]


@dataclass
class RunState:
    """What ``ArmRun.poll`` leaves behind for one run: enough to go on polling it, and what it
    logged on the way (level, message), for the parent's log."""

    tailer: Tailer
    series: ArmSeries
    error: str
    long_lines: int
    seen: bool
    logs: list[tuple[int, str]] = field(default_factory=list)


class Prefetch:
    """The parent's side: start the child, give it the runs, steer their order, receive them."""

    COMMAND = [sys.executable, "-m", "engine.live.prefetch"]

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # where the ``engine`` package lives
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self._lock = threading.Lock()  # the order is written from the UI's and reader's threads
        self._reading = False
        self.proc = subprocess.Popen(
            self.COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # never the terminal: the dashboard owns it, and a stray line would corrupt the
            # screen; what goes wrong in the child shows as runs read in process (logged)
            stderr=subprocess.DEVNULL,
            env=env,
            # not the user's directory: ``-m`` puts the working directory first on sys.path,
            # and an ``engine`` package there must not stand in for ours
            cwd=root,
        )

    def read(self, runs: list[tuple[str, Path]]) -> None:
        """The runs to read, in this order (``prioritize`` reorders what is left)."""
        self._send({"runs": [[name, os.path.abspath(path)] for name, path in runs]})
        self._reading = True

    def stop(self) -> None:
        """Read no further run after the one in hand (the parent's threads take the rest)."""
        self._send({"stop": True})

    def _send(self, message: dict) -> None:
        with self._lock:
            self._write(message)

    def _write(self, message: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):  # the child is gone: its runs are read in process
            pass

    def prioritize(self, names: list[str]) -> None:
        """Read these runs next (those the child has not sent yet). Before ``read`` there is
        nothing to reorder: the order ``read`` gives is the caller's. Never waits (the UI calls
        it): while another message is being written, this one is dropped, and the caller sends
        its order again with its next update."""
        if self._reading and self._lock.acquire(blocking=False):
            try:
                self._write({"first": list(names)})
            finally:
                self._lock.release()

    def __iter__(self) -> Iterator[tuple[str, RunState | None]]:
        """What the child sends, until it is done or gone: ``(name, None)`` when it takes a
        run, ``(name, state)`` when it has read it."""
        while True:
            try:
                head = self.proc.stdout.read(_LENGTH.size)
                if len(head) < _LENGTH.size:
                    return
                name, state = pickle.loads(self._body(_LENGTH.unpack(head)[0]))
            except Exception as exc:  # a truncated frame (the child was killed while writing)
                log.warning("first read: a frame from the child did not unpickle: %r", exc)
                return
            yield name, state

    def _body(self, size: int) -> bytes:
        """``size`` bytes, or fewer at the end of the pipe; read in pieces, so that a length
        that is garbage costs nothing before the pipe ends."""
        parts, left = [], size
        while left > 0:
            part = self.proc.stdout.read(min(left, 1 << 24))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def abandon(self) -> None:
        """Kill the child now; the reader of its frames sees the pipe end."""
        if self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> int | None:
        """Stop the child (if it is still reading) and reap it; its exit code."""
        with self._lock:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.proc.stdout.close()
        return code


def start_prefetch() -> Prefetch | None:
    """A child process for the first read, or None if none can be started (the store then
    reads every run in process)."""
    try:
        return Prefetch()
    except Exception as exc:  # (an OSError, or no interpreter to run): never the dashboard's end
        log.warning("first read: cannot start a child process (%s); reading in process", exc)
        return None


# -- the child ------------------------------------------------------------------------------


class _Inbox:
    """What the parent said: the runs, then reorders and a stop; drained from stdin by its own
    thread from the child's first instant, so the parent's writes never wait on a full pipe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given = threading.Event()
        self.dirs: dict[str, Path] = {}
        self._names: list[str] = []

    def take(self, message: dict) -> None:
        with self._lock:
            if "runs" in message:
                self.dirs = {name: Path(path) for name, path in message["runs"]}
                self._names = list(self.dirs)
                self._given.set()
            elif message.get("stop"):
                self._names = []
            elif "first" in message:
                self._names = move_to_front(self._names, message["first"])

    def wait_for_runs(self) -> None:
        self._given.wait()

    def pop(self) -> str | None:
        with self._lock:
            return self._names.pop(0) if self._names else None


def _listen(inbox: _Inbox) -> None:
    """The parent's messages; its end of the pipe closing means it is gone: stop too."""
    for line in sys.stdin.buffer:
        try:
            inbox.take(json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    os._exit(0)


class _Kept(logging.Handler):
    """The reader's log records of the run being read, for the parent to log as its own (the
    child's stderr goes nowhere)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, self.format(record)))


def main() -> int:
    # The frames get stdout's pipe to themselves: anything printed goes nowhere instead of
    # into the middle of a frame.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    inbox = _Inbox()
    threading.Thread(target=_listen, args=(inbox,), daemon=True).start()
    # polars now, while the parent loads the study, rather than at the first large run. Run as
    # ``-m``, this module is __main__: RunState must be pickled under its importable name for
    # the parent to find it.
    import polars  # noqa: F401

    from engine.live.prefetch import RunState as ImportableRunState
    from engine.live.runstore import ArmRun

    kept = _Kept()
    reader_log = logging.getLogger("fnotui")
    reader_log.addHandler(kept)
    reader_log.setLevel(logging.INFO)
    reader_log.propagate = False
    inbox.wait_for_runs()

    def send(frame: tuple) -> None:
        body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(body)))
        out.write(body)
        out.flush()

    try:
        while (name := inbox.pop()) is not None:
            send((name, None))  # taken: the parent's own threads leave it to us
            arm = ArmRun(name, inbox.dirs[name], True, None)
            kept.records = []
            arm.poll()  # never raises: a run it cannot read carries the reason in ``error``
            send(
                (
                    name,
                    ImportableRunState(
                        arm.tailer, arm.series, arm.error, arm.long_lines, arm._seen, kept.records
                    ),
                )
            )
    except BrokenPipeError:  # the dashboard quit
        pass
    return 0


if __name__ == "__main__":
    code = main()
    # No interpreter shutdown: the listener thread is still blocked on stdin, and polars' own
    # threads are still up; nothing is left to flush.
    os._exit(code)
