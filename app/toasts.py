"""What the dashboard's notifications say: a control action's outcome (files written, problems)
and the collapse alarms that appear while one watches. Text only: the App shows it."""

from __future__ import annotations

from pathlib import Path

from app.link_title import display_path
from engine.control.base import Outcome

# At most this many alarm toasts per update; the events list is the authoritative record.
MAX_ALARM_TOASTS = 3
# Problems named in an action's warning toast; the rest are counted.
MAX_PROBLEMS = 3


def files_summary(files: list[str], most: int = 5) -> str:
    """Written files in a few lines: a name written in several folders (each arm's stats.json)
    once with its count, the rest grouped by folder, at most ``most`` lines."""
    split = [f.rpartition("/") for f in files]
    by_name: dict[str, list[str]] = {}
    for folder, _, name in split:
        by_name.setdefault(name, []).append(folder or ".")
    repeated = {name for name, folders in by_name.items() if len(folders) > 1}
    parts = [f"{name} in {len(by_name[name])} folders" for name in sorted(repeated)]
    folders: dict[str, list[str]] = {}
    for folder, _, name in split:
        if name not in repeated:
            folders.setdefault(folder or ".", []).append(name)
    parts += [f"{folder}/: {', '.join(names)}" for folder, names in folders.items()]
    if len(parts) > most:
        parts = parts[: most - 1] + [f"and {len(parts) - most + 1} more folders"]
    return f"wrote {len(files)} files\n" + "\n".join(parts)


def outcome_text(outcome: Outcome, arms_file: Path) -> str:
    """The files an action wrote (paths relative to the study), or its message."""
    if outcome.files:
        return files_summary([display_path(p, arms_file) for p in outcome.files])
    return outcome.message or "done"


def problems_text(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more (see the summary)" if more else "")


class AlarmToasts:
    """Collapse alarms that appear while we watch (not those found at start-up), each once."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] | None = None

    def new(self, snapshots) -> list[dict]:
        """``notify`` keyword arguments for the alarms new in these snapshots, a few at most."""
        current = {(s.name, a) for s in snapshots for a in s.alarms}
        if self._seen is None:
            self._seen = current
            return []
        new = sorted(current - self._seen)
        self._seen |= current
        toasts = []
        for name, alarm in new[:MAX_ALARM_TOASTS]:
            rule, _, epoch = alarm.partition("@")
            toasts.append(
                {
                    "message": f"{name}: {rule} at epoch {epoch}",
                    "title": "✖ collapse alarm",
                    "severity": "error",
                    "timeout": 10,
                }
            )
        if len(new) > MAX_ALARM_TOASTS:
            toasts.append(
                {
                    "message": f"and {len(new) - MAX_ALARM_TOASTS} more alarms: see each arm's "
                    "events",
                    "severity": "error",
                }
            )
        return toasts
