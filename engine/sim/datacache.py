"""Verified, atomically written .npz files: the storage layer of the dataset cache.

It knows nothing about ptychography. A cache file holds named arrays plus a JSON header; the header
carries what the caller asks to be checked (format version, recipe hash) and a sha256 per array.
``read_cache`` either returns arrays whose names, shapes, dtypes and bytes are exactly what was
written, or raises ``DatasetError`` saying why; it never hands back a partial or foreign file.
That is the guard against a cache reused without checking its recipe (docs/science.md,
'Phase-free cache').
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from engine.errors import DatasetError

HEADER_KEY = "header"
# mkstemp creates files readable by their owner only; a cache is meant to be shared by every run.
CACHE_FILE_MODE = 0o644

ArraySpec = tuple[tuple[int, ...], np.dtype]


def recipe_digest(recipe: dict) -> str:
    """sha256 of a JSON-serialisable recipe, independent of key order."""
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def array_digest(array: np.ndarray) -> str:
    """sha256 of an array's raw bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def write_cache(path: Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write arrays and header to ``path`` atomically: temp file in the same folder, fsync, replace.

    A reader therefore sees either the old file or the complete new one, even if this process dies
    mid-write; a crash leaves at most a stray ``.tmp`` file, never a truncated cache.
    """
    if HEADER_KEY in arrays:
        raise ValueError(f"array name {HEADER_KEY!r} is reserved for the header")
    full_header = dict(header, checksums={name: array_digest(a) for name, a in arrays.items()})
    text = np.array(json.dumps(full_header, sort_keys=True, allow_nan=False))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{HEADER_KEY: text}, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, CACHE_FILE_MODE)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DatasetError(f"cannot write dataset cache {path}: {exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_cache(
    path: Path, expect_header: dict, expect_arrays: dict[str, ArraySpec]
) -> tuple[dict[str, np.ndarray], dict]:
    """Load and verify a cache file; raise DatasetError naming the first problem found.

    Checked in order: the file is a readable .npz; every ``expect_header`` item matches the stored
    header; the array names are exactly ``expect_arrays``; each shape and dtype matches; each
    array's sha256 matches the stored checksum.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(str(npz[HEADER_KEY][()]))
            if not isinstance(header, dict):
                raise DatasetError("header is not a JSON object")
            for key, want in expect_header.items():
                if header.get(key) != want:
                    raise DatasetError(f"header {key} is {header.get(key)!r}, expected {want!r}")
            names = set(npz.files) - {HEADER_KEY}
            if names != set(expect_arrays):
                raise DatasetError(
                    f"arrays {sorted(names)} do not match the expected {sorted(expect_arrays)}"
                )
            arrays = {name: npz[name] for name in expect_arrays}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"unreadable ({type(exc).__name__}: {exc})") from exc
    checksums = header.get("checksums", {})
    for name, (shape, dtype) in expect_arrays.items():
        array = arrays[name]
        if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
            want = f"{np.dtype(dtype)}{tuple(shape)}"
            raise DatasetError(f"array {name} is {array.dtype}{array.shape}, expected {want}")
        if checksums.get(name) != array_digest(array):
            raise DatasetError(f"array {name} does not match its stored checksum")
    return arrays, header
