"""The header's subtitle: the study and where it is; for a remote study the ssh link's state
first, with a live countdown to the next attempt."""

from __future__ import annotations

import time
from pathlib import Path

from engine.control.base import LinkState

# A connected link that has been quiet this long says so in the title (the host ticks every 2 s).
QUIET_AFTER_S = 5.0


def link_text(link: LinkState | None, now: float | None = None) -> str:
    """The link state, short enough to lead an 80-column title."""
    if link is None:
        return "connecting"
    now = time.time() if now is None else now
    if link.state == "connected":
        quiet = now - link.last_heard if link.last_heard else 0.0
        return f"◌ silent {quiet:.0f} s" if quiet >= QUIET_AFTER_S else "● connected"
    if link.state == "reconnecting":
        if link.retry_at is None:
            return "⚠ link down · reconnecting"
        return f"⚠ link down · retry in {max(0.0, link.retry_at - now):.0f} s"
    if link.state == "connecting":
        return "… connecting"
    if link.state == "failed":
        return "✘ link failed"
    return link.state


def display_path(path: Path, arms_file: Path) -> str:
    """A path relative to the arms file's folder when it is inside it (short, stable)."""
    try:
        return str(Path(path).resolve().relative_to(arms_file.resolve().parent))
    except ValueError:
        return str(path)


def study_title(study, where: str | None, arms_file: Path, link: LinkState | None) -> str:
    """``study · its output folder`` here; ``link · study · host:dir`` for a remote study."""
    if where is None:
        return f"{study.name} · {display_path(study.output_dir, arms_file)}"
    return f"{link_text(link)} · {study.name} · {where}"
