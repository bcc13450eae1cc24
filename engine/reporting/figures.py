"""PNG figures for the study report: loss curves, grad-norm traces, reconstructions beside GT.

matplotlib is imported inside each function, so ``import engine.reporting.export`` stays light, and only its
object API is used (``Figure`` + the Agg canvas, no pyplot): no global backend switch, no shared
state, safe in the dashboard's worker thread.

Curves use a true log-y axis with non-positive and non-finite values masked (not clipped), and long
step traces are decimated to a min/max envelope per bucket so no spike is ever dropped
(tensorboard#6796). Epochs on the x axes are 1-based, as on the console.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write_bytes

# A step trace longer than this is drawn as a min/max envelope over this many buckets.
MAX_POINTS = 1500
DPI = 110


@dataclass
class ArmCurves:
    """The series of one arm that the figures draw (numpy arrays; NaN where absent)."""

    arm: str
    epoch: np.ndarray  # 0-based
    train_loss: np.ndarray
    val_loss: np.ndarray
    step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0))  # fractional epoch
    grad_norm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    val_amp_mae: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per epoch, or empty
    collapse_epoch: int | None = None  # 0-based firing epoch of the verdict rule
    label: str = ""  # verdict label


def _positive(y: np.ndarray) -> np.ndarray:
    """Mask what a log axis cannot show, instead of clipping it to a fake value."""
    y = np.asarray(y, dtype=np.float64)
    return np.ma.masked_where(~np.isfinite(y) | (y <= 0), y)


def envelope(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS):
    """(x, low, high) per bucket, or None when the trace is short enough to draw as it is.

    Non-finite values are ignored inside a bucket; a bucket with none finite gives NaN.
    """
    n = len(y)
    if n <= max_points:
        return None
    edges = np.linspace(0, n, max_points + 1).astype(int)
    xs, lo, hi = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        seg = y[a:b]
        seg = seg[np.isfinite(seg) & (seg > 0)]
        xs.append(x[(a + b - 1) // 2])
        lo.append(seg.min() if seg.size else np.nan)
        hi.append(seg.max() if seg.size else np.nan)
    return np.asarray(xs), np.asarray(lo), np.asarray(hi)


def _save(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write_bytes(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=DPI))


def loss_figure(curves: list[ArmCurves], path: Path, constant_level: float | None = None) -> None:
    """Train and validation loss per epoch for every arm; a cross marks each verdict firing; the
    best constant output's validation loss is drawn as a dashed reference line. Where the runs
    recorded it, a third panel shows the amplitude error against the ground truth, which the
    loss cannot see (equal losses, different objects: docs/studies/stage_a_h100)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with_error = any(np.isfinite(c.val_amp_mae).any() for c in curves if len(c.val_amp_mae))
    fig = Figure(figsize=(16 if with_error else 11, 4.2), layout="constrained")
    axes = fig.subplots(1, 3 if with_error else 2)
    axes[1].sharey(axes[0])
    panels = [(axes[0], "train_loss", "training loss"), (axes[1], "val_loss", "validation loss")]
    if with_error:
        panels.append((axes[2], "val_amp_mae", "amplitude error vs ground truth"))
    for ax, key, title in panels:
        for c in curves:
            y = getattr(c, key)
            if not len(y):
                continue
            (line,) = ax.plot(c.epoch + 1, _positive(y), marker="o", ms=3, label=c.arm)
            if c.collapse_epoch is not None:
                hit = np.flatnonzero(c.epoch == c.collapse_epoch)
                if hit.size and np.isfinite(y[hit[0]]) and y[hit[0]] > 0:
                    ax.plot(
                        c.epoch[hit[0]] + 1,
                        y[hit[0]],
                        marker="X",
                        ms=11,
                        color=line.get_color(),
                        markeredgecolor="black",
                    )
        if constant_level is not None and key == "val_loss":
            ax.axhline(constant_level, color="grey", ls="--", lw=1, label="best constant output")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("loss")
    if with_error:
        axes[2].set_ylabel("MAE (test patches, aligned)")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle("Loss per epoch (X = collapse, divergence or NaN verdict fired)")
    _save(fig, path)


def grad_norm_figure(curves: list[ArmCurves], path: Path) -> None:
    """Pre-clip global grad norm per step, on a fractional-epoch axis, one panel per arm."""
    from matplotlib.figure import Figure

    drawn = [c for c in curves if len(c.grad_norm)]
    n = max(len(drawn), 1)
    fig = Figure(figsize=(11, 2.2 * n + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0])
    for ax, c in zip(axes, drawn):
        x = c.step_epoch + 1
        env = envelope(x, np.asarray(c.grad_norm, dtype=np.float64))
        if env is None:
            ax.plot(x, _positive(c.grad_norm), lw=0.8)
        else:
            ex, lo, hi = env
            ax.fill_between(ex, lo, hi, step="mid", alpha=0.7, lw=0)
        bad = ~np.isfinite(c.grad_norm)
        if bad.any():
            ax.plot(
                x[bad],
                np.full(
                    bad.sum(),
                    np.nanmax(_positive(c.grad_norm).filled(np.nan))
                    if np.isfinite(c.grad_norm).any()
                    else 1.0,
                ),
                "r|",
                ms=12,
                label="non-finite",
            )
            ax.legend(fontsize=8, loc="upper left")
        if c.collapse_epoch is not None:  # the whole epoch whose validation fired the rule
            ax.axvspan(c.collapse_epoch + 1, c.collapse_epoch + 2, color="red", alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_ylabel("grad norm")
        ax.set_title(f"{c.arm} ({c.label})" if c.label else c.arm, fontsize=9, loc="left")
        ax.grid(True, which="both", alpha=0.3)
    axes[-1].set_xlabel("epoch (steps as fractions of an epoch)")
    if not drawn:
        axes[0].text(
            0.5, 0.5, "no step records with grad norms", ha="center", transform=axes[0].transAxes
        )
    fig.suptitle(
        "Pre-clip global grad norm per step (red band: the epoch whose validation "
        "fired the verdict rule; "
        "long traces as min/max envelopes)"
    )
    _save(fig, path)


def reconstruction_figure(arm: str, recon: dict, path: Path, phase_vacuous: bool) -> None:
    """Amplitude and phase of the stitched reconstruction beside the ground truth (same colour
    range per row, taken from the GT, so a flat output looks flat)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    rows = (
        ("amplitude", recon["gt_amplitude"], recon["recon_amplitude"]),
        ("phase", recon["gt_phase"], recon["recon_phase"]),
    )
    for r, (name, gt, pred) in enumerate(rows):
        finite = gt[np.isfinite(gt)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if vmax <= vmin:
            vmax = vmin + 1.0
        for col, (image, who) in enumerate(((gt, "ground truth"), (pred, arm))):
            ax = axes[r, col]
            im = ax.imshow(
                image, cmap="gray" if name == "amplitude" else "twilight", vmin=vmin, vmax=vmax
            )
            finite = image[np.isfinite(image)]
            spread = float(finite.std()) if finite.size else float("nan")
            title = f"{who}: {name} (std {spread:.3g})"
            if name == "phase" and phase_vacuous:
                title += " [vacuous]"
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=list(axes[r]), shrink=0.8)
    fig.suptitle(f"{arm}: reconstruction (last epoch's weights) beside ground truth")
    _save(fig, path)
