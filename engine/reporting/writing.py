"""Writing an export's files: every write is atomic, and a failure becomes a problem line.

``export_study`` never raises for bad input or a full disk (the dashboard runs it in a worker
thread), so each write goes through ``write_file``, which records the written path or the reason
it could not be written in the ``ExportResult``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from engine.atomic import atomic_write_bytes

REPORT_DIR = "report"
SUMMARY_FILE = "summary.md"


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_file(result: ExportResult, path: Path, write) -> bool:
    """Run one write; a failure becomes a problem line instead of aborting the export."""
    try:
        write(path)
    except OSError as exc:
        result.problems.append(f"could not write {path}: {exc}")
        return False
    result.files.append(path)
    return True


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def copy_file(src: Path, dst: Path) -> None:
    """Copy through a temp file in the destination folder, so a reader never sees half a file."""
    with open(src, "rb") as fh_in:
        atomic_write_bytes(dst, lambda fh: shutil.copyfileobj(fh_in, fh))
    shutil.copystat(src, dst)
