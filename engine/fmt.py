"""Durations as people read them, one spelling for the console, the dashboard and the reports."""

from __future__ import annotations

import math


def fmt_duration(seconds: float | None) -> str:
    """45s, 5m29s, 1h02m, 2d03h; "—" for a duration that is unknown or not finite."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
