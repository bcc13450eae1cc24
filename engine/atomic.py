"""Atomic file replacement for the small JSON artifacts (status, config, history, metrics).

Write a temporary file in the target's directory, flush and fsync it, then ``os.replace`` it onto
the target: a reader sees the old file or the new one, never half of either, even after kill -9.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path``, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusive temp file beside ``path``, created with mode 0666 less the umask, as
    open() creates telemetry.jsonl and run.log: every artifact of a run gets one mode (mkstemp
    would make these 0600, unreadable to colleagues who can read the telemetry)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_json(path: Path, obj: Any) -> None:
    """Strict JSON (NaN/inf become null: the JSON artifacts mirror the original formats, and the
    telemetry is where non-finite values are recorded by name)."""
    text = json.dumps(_finite_or_null(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value
