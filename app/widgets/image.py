"""A 2-D array as a picture of half-block characters: two pixels per cell (▀ with the top
pixel as foreground and the bottom one as background), so cells make square pixels.

The array is area-averaged down to the widget's size (never up), keeping its aspect ratio.
NaN or inf pixels are painted magenta and counted in the caption, since a collapsed
reconstruction is exactly what this view must show honestly. Rich reduces the RGB colours to
the terminal's palette (256 colours over SSH), so the grey ramp and the phase map stay legible.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

NONFINITE_RGB = (255, 0, 255)


def area_resample(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean over the source pixels of each target pixel (non-finite pixels poison their
    target on purpose: a NaN in the data must stay visible)."""
    h, w = img.shape
    rows, cols = max(1, min(rows, h)), max(1, min(cols, w))
    r_edges = (np.arange(rows + 1) * h) // rows
    c_edges = (np.arange(cols + 1) * w) // cols
    summed = np.add.reduceat(
        np.add.reduceat(img.astype(np.float64), r_edges[:-1], axis=0), c_edges[:-1], axis=1
    )
    counts = np.outer(np.diff(r_edges), np.diff(c_edges))
    return summed / counts


def fit(h: int, w: int, max_rows: int, max_cols: int) -> tuple[int, int]:
    """Pixel rows and columns that fit ``max_rows`` x ``max_cols`` pixels keeping the aspect."""
    scale = min(max_rows / h, max_cols / w, 1.0)
    return max(1, int(h * scale)), max(1, int(w * scale))


def display_range(values: np.ndarray) -> tuple[float, float] | None:
    """1st and 99th percentile of the finite values (None if there are none)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    lo, hi = np.percentile(finite, [1, 99])
    return float(lo), float(hi)


def grey(values: np.ndarray, vrange: tuple[float, float] | None = None) -> np.ndarray:
    """Values on a grey ramp (uint8 RGB) over ``vrange`` (default: their own range)."""
    return _ramp(values, lambda t: np.stack([t, t, t], axis=-1), vrange)


def phase_colors(values: np.ndarray, vrange: tuple[float, float] | None = None) -> np.ndarray:
    """A blue-white-red diverging map over ``vrange`` (default: their own range)."""

    def blue_white_red(t):
        r = np.clip(2 * t, 0, 1)
        b = np.clip(2 - 2 * t, 0, 1)
        g = 1 - np.abs(2 * t - 1)
        return np.stack([r, g, b], axis=-1)

    return _ramp(values, blue_white_red, vrange)


def _ramp(values: np.ndarray, cmap, vrange) -> np.ndarray:
    finite = np.isfinite(values)
    out = np.empty(values.shape + (3,), dtype=np.uint8)
    vrange = vrange or display_range(values)
    if vrange is not None:
        lo, hi = vrange
        if hi > lo:
            t = np.clip((np.where(finite, values, lo) - lo) / (hi - lo), 0, 1)
        else:  # a constant image: the middle of the ramp, not its black end
            t = np.full(values.shape, 0.5)
        out[...] = (cmap(t) * 255).astype(np.uint8)
    out[~finite] = NONFINITE_RGB
    return out


def half_block_strips(rgb: np.ndarray, width: int) -> list[Strip]:
    """One Strip per two pixel rows, centred in ``width`` cells (padded to fill them)."""
    rows, cols, _ = rgb.shape
    if rows % 2:
        rgb = np.concatenate([rgb, np.zeros((1, cols, 3), dtype=np.uint8)], axis=0)
    pad = max(0, (width - cols) // 2)
    strips = []
    styles: dict[tuple, Style] = {}
    for r in range(0, rgb.shape[0], 2):
        segments = [Segment(" " * pad)] if pad else []
        for top, bottom in zip(rgb[r].tolist(), rgb[r + 1].tolist()):
            key = (*top, *bottom)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(
                    color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)
                )
            segments.append(Segment("▀", style))
        right = max(0, width - pad - cols)
        if right:
            segments.append(Segment(" " * right))
        strips.append(Strip(segments, pad + cols + right))
    return strips


class HalfBlockImage(Widget):
    """Shows one image; re-fits it whenever the widget is resized."""

    DEFAULT_CSS = """
    HalfBlockImage { width: 1fr; height: 1fr; }
    """

    def __init__(self, *, cmap: str = "grey", id: str | None = None):
        super().__init__(id=id)
        self.cmap = cmap
        self._image: np.ndarray | None = None
        self._vrange: tuple[float, float] | None = None
        self._strips: list[Strip] = []
        self._fitted_for: tuple[int, int] | None = None
        self.nonfinite = 0

    def set_image(
        self, image: np.ndarray | None, vrange: tuple[float, float] | None = None
    ) -> None:
        """Show ``image`` with its values mapped over ``vrange`` (default: its own 1-99th
        percentile); pass the ground truth's range to show a reconstruction on its scale."""
        self._image = None if image is None else np.asarray(image, dtype=np.float64)
        self._vrange = vrange
        self.nonfinite = 0 if image is None else int((~np.isfinite(self._image)).sum())
        self._fitted_for = None
        self.refresh()

    def _fit(self) -> None:
        size = (self.size.width, self.size.height)
        if self._fitted_for == size:
            return
        self._fitted_for = size
        self._strips = []
        if self._image is None or self._image.ndim != 2 or min(size) < 1:
            return
        rows, cols = fit(*self._image.shape, 2 * size[1], size[0])
        small = area_resample(self._image, rows, cols)
        rgb = (phase_colors if self.cmap == "phase" else grey)(small, self._vrange)
        self._strips = half_block_strips(rgb, size[0])

    def render_line(self, y: int) -> Strip:
        self._fit()
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)


def describe(image: np.ndarray) -> str:
    """Caption facts: range of the finite values and the count of non-finite pixels."""
    finite = np.isfinite(image)
    bad = int((~finite).sum())
    if not finite.any():
        return f"all {bad} pixels non-finite"
    lo, hi = float(image[finite].min()), float(image[finite].max())
    text = f"{lo:.3g}…{hi:.3g}"
    return text + (f", ✖ {bad} NaN/inf px" if bad else "")
