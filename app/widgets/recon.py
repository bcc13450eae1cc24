"""A run's reconstruction beside its ground truth, amplitude above phase."""

from __future__ import annotations

import numpy as np
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Static

from app.widgets.image import HalfBlockImage, describe, display_range

RECON_KEYS = ("recon_amplitude", "gt_amplitude", "recon_phase", "gt_phase")


def read_recon(path) -> dict[str, np.ndarray]:
    """The images of recon.npz that the panel shows (those present)."""
    with np.load(path) as npz:
        return {k: np.asarray(npz[k]) for k in RECON_KEYS if k in npz.files}


class ReconPanel(Grid):
    """Reconstruction beside ground truth, amplitude above phase."""

    def compose(self) -> ComposeResult:
        for key in RECON_KEYS:
            with Vertical(classes="recon-cell"):
                yield Static(
                    key.replace("_", " "), id=f"cap-{key}", classes="caption", markup=False
                )
                yield HalfBlockImage(cmap="phase" if "phase" in key else "grey", id=f"img-{key}")

    def show(self, arrays: dict[str, np.ndarray]) -> None:
        """Each reconstruction on its ground truth's scale, so a collapse looks flat."""
        for key in RECON_KEYS:
            image = arrays.get(key)
            truth = arrays.get(key.replace("recon_", "gt_"))
            vrange = display_range(truth) if truth is not None else None
            self.query_one(f"#img-{key}", HalfBlockImage).set_image(image, vrange)
            caption = key.replace("_", " ")
            if image is not None:
                caption += f"  {describe(image)}"
            self.query_one(f"#cap-{key}", Static).update(caption)
