"""OS file locks (``flock``): held by an open file, released by the kernel when it closes.

A lock dies with its process however the process dies, so a crash never leaves one behind;
that is why run locks, device slots, the dataset build and the mirror directory use them.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def try_lock(path: Path, mode: str = "a+") -> TextIO | None:
    """The file at ``path`` opened and exclusively locked, or None at once if another process
    holds it. Closing the returned file releases the lock; the file stays readable and
    writable through it (device slots keep their holder's details in it)."""
    fh = open(path, mode)  # noqa: SIM115 (the open file is the lock: the caller closes it)
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


@contextmanager
def hold(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[TextIO]:
    """Hold the exclusive lock on ``path`` for the ``with`` block, waiting for it if needed;
    ``on_wait`` is called once, before waiting, when another process holds it."""
    fh = try_lock(path, "a")
    if fh is None:
        if on_wait is not None:
            on_wait()
        fh = open(path, "a")  # noqa: SIM115 (closed below: closing releases the lock)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except BaseException:
            fh.close()
            raise
    try:
        yield fh
    finally:
        fh.close()
