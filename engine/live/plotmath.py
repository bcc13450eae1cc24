"""Plotting math for step and epoch series: downsampling that keeps spikes, sparkline buckets,
smoothing, and the positions of NaN and inf values (which plots draw as markers).

Pure numpy functions of (x, y) arrays; the dashboard's plot widget (app/widgets/plot.py) and the
run store's snapshots (sparklines) call them.
"""

from __future__ import annotations

import math

import numpy as np


def minmax_downsample(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``2 * buckets`` finite points keeping each bucket's min and max (in x order),
    so a one-step spike survives any zoom level. Non-finite points are dropped here; ask
    ``nonfinite_points`` for them and draw them as markers."""
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = len(y)
    if n <= 2 * buckets or buckets < 1:
        return x.copy(), y.copy()
    size = math.ceil(n / buckets)
    full = n // size
    xs, ys = [], []
    if full:
        yb = y[: full * size].reshape(full, size)
        base = np.arange(full) * size
        lo = base + yb.argmin(axis=1)
        hi = base + yb.argmax(axis=1)
        first = np.minimum(lo, hi)
        second = np.maximum(lo, hi)
        idx = np.stack([first, second], axis=1).ravel()
        xs.append(x[idx])
        ys.append(y[idx])
    if full * size < n:
        tail_y = y[full * size :]
        lo = full * size + int(tail_y.argmin())
        hi = full * size + int(tail_y.argmax())
        idx = np.array(sorted((lo, hi)))
        xs.append(x[idx])
        ys.append(y[idx])
    return np.concatenate(xs), np.concatenate(ys)


def nonfinite_points(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """x positions of NaN, +inf and -inf values: {"nan": ..., "inf": ..., "-inf": ...}."""
    return {"nan": x[np.isnan(y)], "inf": x[np.isposinf(y)], "-inf": x[np.isneginf(y)]}


def bucket_peaks(y: np.ndarray, buckets: int) -> tuple[tuple[float, ...], tuple[bool, ...]]:
    """Per-bucket maximum of the finite values (a spike is never averaged away) and whether
    the bucket held a NaN or inf. Empty buckets are NaN with no flag. Fewer values than buckets
    give one bucket per value."""
    n = len(y)
    if n == 0:
        return (), ()
    k = min(buckets, n)
    edges = (np.arange(k + 1) * n) // k
    finite = np.isfinite(y)
    masked = np.where(finite, y, -np.inf)
    peaks = np.maximum.reduceat(masked, edges[:-1])
    bad = np.logical_or.reduceat(~finite, edges[:-1])
    peaks = np.where(np.isneginf(peaks), np.nan, peaks)
    return tuple(float(v) for v in peaks), tuple(bool(b) for b in bad)


def ema(y: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average that steps over non-finite values (they stay visible as
    markers in the raw series; the smoothed line must not turn into NaN forever after)."""
    out = np.empty_like(y)
    acc = math.nan
    for i, v in enumerate(y.tolist()):
        if math.isfinite(v):
            acc = v if math.isnan(acc) else acc + alpha * (v - acc)
        out[i] = acc
    return out
