"""Telling whether a file the dashboard shows changed since it was last read."""

from __future__ import annotations


def file_key(path) -> tuple[int, int] | None:
    """(mtime in ns, size) of the file, None when it is absent: a rewrite changes the key."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
