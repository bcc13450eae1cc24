"""The export's figures: loss and grad-norm curves of every arm, one reconstruction per arm.

The drawing itself is engine/reporting/figures.py (matplotlib, imported only here, when figures
are drawn); this module turns run evidence into its inputs and a failed figure into a problem line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from engine.reporting.evidence import RunEvidence
from engine.reporting.report import Reference
from engine.reporting.stats import epoch_frame, step_frame
from engine.reporting.writing import ExportResult

FIGURES_DIR = "figures"


def _curves(evidence: dict[str, RunEvidence], stats: dict[str, dict]):
    from engine.reporting.figures import ArmCurves

    curves = []
    for arm, ev in evidence.items():
        epochs = epoch_frame(ev.records, ev.history)
        if epochs.height == 0:
            continue
        steps = step_frame(ev.records).filter(pl.col("grad_norm").is_not_null())
        per_epoch = int((ev.header or {}).get("steps_per_epoch") or 0)
        step = steps["step"].to_numpy().astype(np.float64)
        if per_epoch:
            frac = step / per_epoch
        else:
            frac = steps["epoch"].to_numpy().astype(np.float64) + 0.5
        s = stats[arm]
        curves.append(
            ArmCurves(
                arm=arm,
                epoch=epochs["epoch"].to_numpy(),
                train_loss=epochs["train_loss"].fill_null(np.nan).to_numpy(),
                val_loss=epochs["val_loss"].fill_null(np.nan).to_numpy(),
                step=step,
                step_epoch=frac,
                grad_norm=steps["grad_norm"].to_numpy(),
                val_amp_mae=epochs["val_amp_mae"].fill_null(np.nan).to_numpy(),
                collapse_epoch=s["collapse_epoch"],
                label=s["verdict"]["label"],
            )
        )
    return curves


def draw_figures(
    out: Path,
    evidence: dict[str, RunEvidence],
    stats: dict[str, dict],
    references: list[Reference],
    result: ExportResult,
) -> dict[str, str]:
    """Draw the figures; returns {name: path relative to ``out``} of those written."""
    try:
        from engine.reporting import figures as fig
    except ImportError as exc:
        result.problems.append(f"no figures: {exc}")
        return {}
    links: dict[str, str] = {}
    curves = _curves(evidence, stats)
    levels = [r.constant_val_loss for r in references if r.constant_val_loss is not None]
    jobs = []
    if curves:
        jobs.append(
            (
                "loss",
                "loss.png",
                lambda p: fig.loss_figure(curves, p, levels[0] if len(levels) == 1 else None),
            )
        )
        jobs.append(("grad_norm", "grad_norm.png", lambda p: fig.grad_norm_figure(curves, p)))
    for arm, ev in evidence.items():
        if ev.recon is not None:
            vacuous = bool(stats[arm].get("phase_vacuous"))
            jobs.append(
                (
                    f"recon:{arm}",
                    f"recon_{arm}.png",
                    lambda p, r=ev.recon, a=arm, v=vacuous: fig.reconstruction_figure(a, r, p, v),
                )
            )
    for name, filename, draw in jobs:
        path = out / FIGURES_DIR / filename
        try:
            draw(path)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            result.problems.append(f"figure {filename} failed: {exc}")
            continue
        result.files.append(path)
        links[name] = f"{FIGURES_DIR}/{filename}"
    return links
