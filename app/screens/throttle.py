"""The plot screens' redraw throttle: at most one redraw a second however fast telemetry comes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Plots are redrawn at most this often; a change arriving sooner schedules one redraw for later.
REDRAW_MIN_S = 1.0


class RedrawThrottle:
    """Calls ``redraw`` now if the last one is ``min_s`` old, else once, when it will be."""

    def __init__(self, screen, redraw: Callable[[], None], min_s: float = REDRAW_MIN_S):
        self._screen, self._redraw, self._min_s = screen, redraw, min_s
        self._drawn_at = -math.inf
        self._pending = None

    def request(self) -> None:
        wait = self._min_s - (time.monotonic() - self._drawn_at)
        if wait <= 0:
            self._redraw()
        elif self._pending is None:
            self._pending = self._screen.set_timer(wait, self._redraw)

    def starting(self) -> None:
        """A redraw begins (requested or not): a scheduled one is no longer pending."""
        self._pending = None

    def drawn(self) -> None:
        self._drawn_at = time.monotonic()
