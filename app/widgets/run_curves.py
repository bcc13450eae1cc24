"""The curves of one run that the plot screens draw: the arm detail's four panels, and the
object error the compare screen overlays."""

from __future__ import annotations

import numpy as np

from app.widgets.plot import Curve
from engine.live.snapshot import PlotData


def detail_curves(panel: str, d: PlotData) -> list[Curve]:
    s, e = d.steps, d.epochs
    if panel == "loss":
        return [
            Curve("step loss", *s["loss"], "braille", "cyan"),
            Curve("train", *e["train_loss"], "•", "yellow", smoothable=False),
            Curve("val", *e["val_loss"], "x", "magenta", smoothable=False),
        ]
    if panel == "grad":
        curves = [Curve("pre-clip", *s["grad_norm"], "braille", "cyan")]
        if len(s["grad_norm_clipped"][0]):
            curves.append(Curve("post-clip", *s["grad_norm_clipped"], "+", "green"))
        return curves
    if panel == "lr":
        if len(s["lr"][0]):
            return [Curve("lr (per step)", *s["lr"], "braille", "cyan", smoothable=False)]
        return [Curve("lr", *e["lr"], "•", "cyan", smoothable=False)]
    # Spread (near zero = constant-output collapse) and the error against the ground truth and
    # against its twin, which the loss cannot see (phase-retrieval ambiguities): all in object
    # amplitude units, the units of the final amplitude MAE.
    norm = object_scale(d)
    curves = [
        Curve("spread", *_scaled(e["pred_amp_std"], norm), "•", "cyan", smoothable=False),
        Curve("GT spread", *_scaled(e["target_amp_std"], norm), "-", "green", smoothable=False),
        Curve("error vs GT", *object_error(d), "x", "magenta", smoothable=False),
    ]
    if len(e.get("val_amp_mae_twin", ((), ()))[0]):
        curves.append(
            Curve("error vs twin", *e["val_amp_mae_twin"], "+", "yellow", smoothable=False)
        )
    return curves


def object_scale(d: PlotData) -> float:
    """The test split's norm_Y_I: normalised patch amplitude -> object amplitude (1 if the
    header does not say)."""
    norms = ((d.header or {}).get("dataset") or {}).get("norm_Y_I") or {}
    value = norms.get("test") if isinstance(norms, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def object_error(d: PlotData) -> tuple[np.ndarray, np.ndarray]:
    """val_amp_mae in object amplitude units. Runs written before the twin-aware validation
    (no val_amp_mae_twin) logged it in normalised patch units: converted here."""
    x, y = d.epochs["val_amp_mae"]
    if len(d.epochs.get("val_amp_mae_twin", ((), ()))[0]):
        return x, y
    return x, y * object_scale(d)


def _scaled(series: tuple[np.ndarray, np.ndarray], factor: float):
    x, y = series
    return x, y * factor
