"""Series storage: growable numpy columns and (step, value) series built on them.

Appends come in blocks (a whole backlog, then a few lines per poll), so a column grows
geometrically and hands out views without copies.
"""

from __future__ import annotations

import math

import numpy as np


class Column:
    """A growable numpy array: amortised O(1) appends of blocks, views without copies."""

    def __init__(self, dtype):
        self._buf = np.empty(0, dtype=dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        k = len(values)
        if self.n + k > len(self._buf):
            # The first block (a whole backlog) gets a little headroom, later ones doubling.
            size = (
                self.n + k + (self.n + k) // 8 + 256
                if self.n == 0
                else max(2 * len(self._buf), self.n + k)
            )
            grown = np.empty(size, dtype=self._buf.dtype)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n : self.n + k] = values
        self.n += k

    def view(self) -> np.ndarray:
        return self._buf[: self.n]

    def last(self) -> float:
        return float(self._buf[self.n - 1]) if self.n else math.nan


class StepSeries:
    """One step-record field as (step, value) pairs, only where the record carries the field.

    A missing field (grad norm not measured on this step) is simply absent, so a NaN in
    ``y`` always means the engine recorded a NaN. Values are float32: the engine computes
    them in float32, so nothing is lost, and a million steps cost 8 MB per field.
    """

    def __init__(self) -> None:
        self.x = Column(np.int64)
        self.y = Column(np.float32)

    def extend(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x.extend(x)
        self.y.extend(y)

    def truncate(self, step: float) -> None:
        """Forget the values at ``step`` and later."""
        keep = int(np.searchsorted(self.x.view(), step, side="left"))
        self.x.n = self.y.n = keep

    def __len__(self) -> int:
        return self.x.n
