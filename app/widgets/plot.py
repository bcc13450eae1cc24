"""Line plots as Rich Text, drawn by plotext behind a guard, and the widget that shows them.

plotext 6.1 must never see a non-finite value: a NaN aborts the whole process from its C++
kernel (``std::bad_alloc``), an inf raises, and its log scale raises on values <= 0, on a single
point and on a nearly flat series. So ``render_plot`` hands it finite numbers only:

- every series is min/max-downsampled to about two points per column (``minmax_downsample``),
  so a one-step spike is never averaged away and a plot never costs more than its width;
- NaN, +inf and -inf points are drawn by us as markers at the top or bottom edge and counted in
  the legend (a word and a glyph, not only a colour);
- log-y is our own transform (log10 of the positive values, with decade tick labels); values
  <= 0 are counted in the legend instead of crashing the scale.

plotext keeps one global figure, so builds are serialised with a lock; callers run
``render_plot`` in a thread worker and put the Text into a ``PlotView`` on the UI thread.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.widgets import Static

from engine.live.plotmath import ema, minmax_downsample, nonfinite_points

_PLOTEXT_LOCK = threading.Lock()
# Keep far from float overflow inside plotext's own arithmetic.
_CLIP = 1e150


@dataclass(frozen=True)
class Curve:
    label: str
    x: np.ndarray
    y: np.ndarray
    marker: str  # one character, or "braille" for a fine line
    color: str  # a plotext colour name
    smoothable: bool = True  # EMA applies to step series, not to a handful of epoch points


def smooth_curve(curve: Curve) -> Curve:
    """EMA with a span of about 1% of the points (at least 5), over the finite values."""
    n = len(curve.y)
    if n < 3 or not curve.smoothable:
        return curve
    span = max(5.0, n / 100.0)
    return Curve(
        f"{curve.label} (EMA)",
        curve.x,
        ema(curve.y, 2.0 / (span + 1.0)),
        curve.marker,
        curve.color,
        curve.smoothable,
    )


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    if hi - lo >= 1.0:
        first, last = math.ceil(lo), math.floor(hi)
        step = max(1, math.ceil((last - first + 1) / 5))
        positions = [float(p) for p in range(first, last + 1, step)]
        return positions, [f"1e{int(p)}" for p in positions]
    positions = list(np.linspace(lo, hi, 3)) if hi > lo else [lo]
    return positions, [f"{10**p:.3g}" for p in positions]


def _nice_ticks(lo: float, hi: float, count: int) -> tuple[list[float], list[str]]:
    if not hi > lo:
        return [lo], [f"{lo:.3g}"]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    positions = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    return positions, [f"{p:.4g}" for p in positions]


def render_plot(
    curves: list[Curve],
    width: int,
    height: int,
    *,
    log_y: bool = False,
    smooth: bool = False,
    empty: str = "no data yet",
) -> Text:
    """A plot of ``curves`` in ``width`` x ``height`` cells: one legend line, then the plot."""
    width, height = max(width, 10), max(height, 4)
    legend = Text()  # non-finite counts first: they must survive a narrow plot
    labels = Text()
    drawn: list[tuple[Curve, np.ndarray, np.ndarray]] = []
    marks = {"nan": [], "inf": [], "-inf": [], "<=0": []}
    faint: list[tuple[Curve, np.ndarray, np.ndarray]] = []
    for curve in curves:
        raw = curve
        if smooth:
            curve = smooth_curve(curve)
        for kind, xs in nonfinite_points(raw.x, raw.y).items():
            marks[kind].extend(xs.tolist())
        pairs = [(curve, drawn)]
        if curve is not raw:  # smoothed: the raw series stays, faint, under its EMA
            pairs.insert(0, (Curve(raw.label, raw.x, raw.y, "braille", "gray"), faint))
        for shown, into in pairs:
            x, y = minmax_downsample(shown.x, shown.y, width)
            if log_y:
                positive = y > 0
                if into is drawn:  # count the non-positive points once
                    marks["<=0"].extend(x[~positive].tolist())
                x, y = x[positive], np.log10(y[positive])
            y = np.clip(y, -_CLIP, _CLIP)
            if len(y):
                into.append((shown, x, y))
        glyph = "⢕" if curve.marker == "braille" else curve.marker
        labels.append(glyph + " ", style=curve.color)
        labels.append(curve.label + "  ")
    if faint:
        labels.append("grey: raw", style="dim")
    drawn = faint + drawn
    for kind, glyph, word in (
        ("nan", "✖", "NaN"),
        ("inf", "▲", "+inf"),
        ("-inf", "▼", "-inf"),
        ("<=0", "▽", "≤0 (log)"),
    ):
        if marks[kind]:
            legend.append(f"{glyph} {word}×{len(marks[kind])}  ", style="bold red")
    legend.append_text(labels)
    legend.truncate(width, overflow="ellipsis")
    if not drawn:
        body = Text(
            f"\n{empty}" if not any(marks.values()) else "\nno finite values to draw", style="dim"
        )
        return _lines(legend, body)
    ys = np.concatenate([y for _, _, y in drawn])
    xs = np.concatenate([x for _, x, _ in drawn])
    y_lo, y_hi = float(ys.min()), float(ys.max())
    with _PLOTEXT_LOCK:
        plot = _build(
            drawn, marks, width, height - 1, log_y, y_lo, y_hi, float(xs.min()), float(xs.max())
        )
    return _lines(legend, plot)


def _lines(*parts: Text) -> Text:
    text = Text("\n").join(parts)
    text.no_wrap = True
    text.overflow = "crop"
    return text


def _build(drawn, marks, width, height, log_y, y_lo, y_hi, x_lo, x_hi) -> Text:
    import plotext as plt

    fig = plt.figure
    fig.clear()
    plt.terminal.limit(False, False)
    fig.plot_size(width, height)
    fig.theme("simple")
    fig.legend(False)
    for curve, x, y in drawn:
        signal = fig.signal(x.tolist(), y.tolist(), marker=plt.marker(curve.marker, curve.color))
        fig.draw(signal.lines() if len(x) > 1 else signal)
    if y_hi > y_lo:
        bottom, top = y_lo, y_hi
    else:  # a flat series: plotext would label a meaningless range, so give it one
        pad = 1.0 if log_y or y_lo == 0 else abs(y_lo) * 0.5
        bottom, top = y_lo - pad, y_hi + pad
        fig.ruler("y").lim(bottom, top)
    for kind, glyph, level in (
        ("nan", "✖", top),
        ("inf", "▲", top),
        ("-inf", "▼", bottom),
        ("<=0", "▽", bottom),
    ):
        xs = _thin(marks[kind], x_lo, x_hi, width)
        if xs:
            fig.draw(fig.signal(xs, [level] * len(xs), marker=plt.marker(glyph, "red")))
    if log_y:
        positions, labels = _log_ticks(bottom, top)
        fig.ruler("y").ticks(positions, labels)
        # plotext 6.1 mislabels the x axis once y ticks are set: set x ticks too.
        fig.ruler("x").ticks(*_nice_ticks(x_lo, x_hi, max(2, width // 10)))
    try:
        out = fig.build().string()
    except (ValueError, ArithmeticError) as exc:  # a plotext limit we have not met yet
        return Text(f"(plot unavailable: {exc})", style="dim")
    finally:
        fig.clear()
    return Text.from_ansi(out.rstrip("\n"), no_wrap=True)


def _thin(xs: list[float], lo: float, hi: float, width: int) -> list[float]:
    """One marker per half column is enough: a collapsed run can have 100k NaN steps."""
    arr = np.asarray([v for v in xs if math.isfinite(v)], dtype=np.float64)
    if len(arr) <= 2 * width:
        return arr.tolist()
    span = (hi - lo) or 1.0
    _, first = np.unique(np.round((arr - lo) / span * 2 * width), return_index=True)
    return arr[np.sort(first)].tolist()


class PlotView(Static):
    """Shows a pre-rendered plot; the screen renders it off the event loop at this size."""

    DEFAULT_CSS = """
    PlotView { height: 1fr; width: 1fr; }
    """

    def plot_size(self) -> tuple[int, int]:
        size = self.content_size
        return size.width, size.height
