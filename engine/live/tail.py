"""Follow a growing JSONL file by byte offset: the file layer under the dashboard (no Textual).

Per file we keep (device, inode, offset, carry, fingerprint) and, on every poll, open the path,
``fstat`` it, and read only the bytes past the offset (docs/telemetry.md, 'Following a growing
file'):

- a size below the offset, or different first bytes, means the file was truncated or rewritten:
  everything read so far is void, so the poll says ``reset`` and starts again from byte 0;
- a different inode at the path means the file was replaced (rotation, a new run dir): the same;
- the unterminated tail of the new bytes is kept as the carry (the writer is still writing it)
  and is never parsed until its newline arrives;
- a line longer than ``max_line`` is a broken writer, not a record: it is dropped and counted,
  and the carry can never grow past ``max_line``.

The file is opened and closed on every poll instead of held open, so on NFS the close-to-open
consistency rule gives us fresh attributes and data; filesystem notifications are not used
because they are unreliable on NFS and Lustre.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.runs.telemetry import MAX_LINE_BYTES

# The first bytes of the file, compared on every poll that sees growth: a file truncated and
# rewritten past our offset between two polls has the same-or-larger size but a new beginning.
FINGERPRINT_BYTES = 256
# Bytes read per poll at most; a larger backlog is read over the following polls.
DEFAULT_MAX_READ = 256 << 20


@dataclass
class TailChunk:
    """What one poll found: the new complete lines and whether the earlier content is void
    (truncation or replacement, so the reader must start over).

    ``data`` holds the lines as read, each with its newline: a large backlog is handed on in
    one piece (a bulk parser wants one buffer, not a million small objects); ``lines`` splits
    it for line-by-line readers.
    """

    data: bytes = b""
    ends: np.ndarray | None = None  # newline offsets in ``data``, for large reads
    reset: bool = False
    missing: bool = False  # the file does not exist (yet, or any more)
    more: bool = False  # the read stopped at max_read; poll again for the rest

    @property
    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")[:-1] if self.data else []


class Tailer:
    """Incremental reader of one append-only file; ``poll`` returns only new, complete lines."""

    def __init__(
        self, path: Path, *, max_line: int = MAX_LINE_BYTES, max_read: int = DEFAULT_MAX_READ
    ):
        self.path = Path(path)
        self.max_line = max_line
        self.max_read = max_read
        self.offset = 0  # bytes consumed, including the carry
        self.carry = b""
        self.identity: tuple[int, int] | None = None  # (st_dev, st_ino)
        self.fingerprint = b""
        self.discarding = False  # inside an over-long line: drop bytes until its newline
        self.too_long = 0  # over-long lines dropped since the last reset
        self.resets = 0

    def _reset(self) -> None:
        self.offset = 0
        self.carry = b""
        self.fingerprint = b""
        self.discarding = False
        self.too_long = 0
        self.resets += 1

    def poll(self) -> TailChunk:
        chunk = TailChunk()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            chunk.missing = True
            if self.identity is not None:  # it existed: the run dir was removed or moved
                self.identity = None
                self._reset()
                chunk.reset = True
            return chunk
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino)
            if self.identity is not None and identity != self.identity:
                self._reset()
                chunk.reset = True
            self.identity = identity
            if st.st_size < self.offset:
                self._reset()
                chunk.reset = True
            if st.st_size == self.offset:
                return chunk
            if self.offset > 0 and self.fingerprint:
                head = os.pread(fd, len(self.fingerprint), 0)
                if head != self.fingerprint:
                    self._reset()
                    chunk.reset = True
            want = min(st.st_size - self.offset, self.max_read)
            data = _pread_all(fd, want, self.offset)
            if len(self.fingerprint) < FINGERPRINT_BYTES and self.offset < FINGERPRINT_BYTES:
                self.fingerprint = os.pread(fd, FINGERPRINT_BYTES, 0)
        finally:
            os.close(fd)
        self.offset += len(data)
        chunk.more = self.offset < st.st_size
        chunk.data, chunk.ends = self._complete_lines(data)
        return chunk

    def _complete_lines(self, data: bytes) -> tuple[bytes, np.ndarray | None]:
        """The complete lines of carry + ``data`` (and, for a large read, their newline
        offsets); keeps the unterminated rest as the carry."""
        if self.discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return b"", None
            data = data[nl + 1 :]
            self.discarding = False
        if self.carry:
            data = self.carry + data
        cut = data.rfind(b"\n") + 1
        complete, carry = data[:cut], data[cut:]
        if len(carry) > self.max_line:
            self.too_long += 1
            self.discarding = True
            carry = b""
        self.carry = carry
        if len(complete) <= self.max_line:  # no line can be too long
            return complete, None
        ends = newline_offsets(complete)
        if np.diff(ends, prepend=-1).max() - 1 > self.max_line:
            lines = complete.split(b"\n")[:-1]
            kept = [line for line in lines if len(line) <= self.max_line]
            self.too_long += len(lines) - len(kept)
            complete = b"".join(line + b"\n" for line in kept)
            ends = newline_offsets(complete)
        return complete, ends


def newline_offsets(data: bytes) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    parts = []
    while size > 0:
        block = os.pread(fd, size, offset)
        if not block:  # shrank under us; the next poll sees the truncation
            break
        parts.append(block)
        size -= len(block)
        offset += len(block)
    return b"".join(parts)
