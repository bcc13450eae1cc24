"""A run's resolved config as an indented tree of keys and values."""

from __future__ import annotations

import json

from rich.text import Text

from app.widgets.cells import fmt_num


def config_text(header: dict | None, fallback: dict | None) -> Text:
    """The resolved config as the engine logged it (read back from the live objects);
    before a run exists, the config arms.toml resolves to."""
    t = Text()
    if header is None:
        t.append("not started: the config arms.toml resolves to\n\n", style="dim")
        _tree(t, fallback or {}, 0)
        return t
    for key in (
        "parameters",
        "channel_schedule",
        "device",
        "torch",
        "host",
        "pid",
        "n_train",
        "n_test",
        "steps_per_epoch",
        "target_amp_std",
    ):
        if key in header:
            _tree(t, {key: header[key]}, 0)
    for key in ("config", "optimizer", "scheduler", "clip", "physics", "seeding", "dataset"):
        if key in header:
            t.append(f"\n[{key}]\n", style="bold")
            value = header[key]
            _tree(t, value if isinstance(value, dict) else {key: value}, 0)
    return t


def _tree(t: Text, d: dict, depth: int) -> None:
    pad = "  " * depth
    for key, value in d.items():
        if isinstance(value, dict):
            t.append(f"{pad}{key}:\n", style="bold" if depth == 0 else "")
            _tree(t, value, depth + 1)
        else:
            shown = json.dumps(value) if not isinstance(value, float) else fmt_num(value, 6)
            t.append(f"{pad}{key} = ")
            t.append(shown + "\n", style="cyan")
