"""The per-epoch validation pass: loss, predicted-amplitude spread, and the amplitude error
against the truth and its twin (docs/twin.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.scoring.twin import classify_branches
from engine.sim.physics import batched_loss

# Predicted-amplitude spread is measured on this many test patches (a fixed, scan-ordered batch).
PROBE_BATCH = 64


@dataclass(frozen=True)
class Validation:
    """One validation pass. Amplitude errors are in the units of the final amplitude MAE."""

    loss: float
    pred_amp_std: float
    amp_mae: float  # against the ground truth
    amp_mae_twin: float  # against its twin, patch by patch
    twin_fraction: float  # of the decidable patches, those closer to the twin


@torch.no_grad()
def validate(
    model,
    physics,
    loss_fn,
    x_test: torch.Tensor,
    batch: int,
    amp_test: torch.Tensor | None = None,
    border: int = 0,
    norm_Y_I: float = 1.0,
    probe: torch.Tensor | None = None,
) -> Validation:
    """Validation loss (mean over batches of ``batch`` patterns, each normalised by its own mean
    observation, as the original did); the mean per-patch std of the predicted amplitude over the
    first PROBE_BATCH test patches (fixed and scan-ordered, so epochs are comparable); and the
    amplitude error against the ground truth (``amp_test``, normalised patches), NaN without it.

    The amplitude error is the one the loss cannot see: a diffraction-amplitude loss is blind to
    the phase-retrieval ambiguities, and arms with equal validation loss can reconstruct very
    different objects. It is the MAE over the central region each patch contributes to the
    stitched image (``border`` pixels dropped per side), after one mean-ratio scale over the
    whole test set, times the test ``norm_Y_I``: the units of the final amplitude MAE. It is
    also measured against the twin of every patch (flipped through its centre; the amplitude of
    conj(O(-r)) is |O(-r)|), with the fraction of patches nearer the twin, because for a real,
    centrosymmetric probe the twin is an exact solution the loss cannot rule out. The branch of
    each patch is decided by engine.scoring.twin.classify_branches, weighted by |probe|^2 (uniform when
    ``probe`` is None); undecidable patches are left out of the fraction (NaN if none is)."""
    was_training = model.training
    model.eval()
    stds, amps = [], []
    n = x_test.shape[-1]

    def predict(rows: slice) -> torch.Tensor:
        # The batching is engine.sim.physics.batched_loss's, shared with the reference levels.
        obj = model(x_test[rows])
        if rows.start < PROBE_BATCH:
            probe_amp = obj[: PROBE_BATCH - rows.start].abs().flatten(1)
            stds.append(probe_amp.std(dim=1, unbiased=False))
        if amp_test is not None:
            amps.append(obj.abs())
        return physics(obj)

    loss = batched_loss(loss_fn, x_test[:, 0], batch, predict)
    model.train(was_training)
    amp_mae = amp_mae_twin = twin_fraction = math.nan
    if amps:
        pred = torch.cat(amps)
        centre = (slice(None), slice(border, n - border), slice(border, n - border))
        pred_c, truth_c = pred[centre], amp_test[centre]
        twin_c = amp_test.flip(-2, -1)[centre]
        scale = truth_c.mean() / pred_c.mean().clamp_min(1e-12)
        amp_mae = float((pred_c * scale - truth_c).abs().mean().item()) * norm_Y_I
        amp_mae_twin = float((pred_c * scale - twin_c).abs().mean().item()) * norm_Y_I
        # The same per-patch rule as the final evaluation (engine.scoring.twin), on the host: one copy
        # of the amplitudes per epoch, small next to the validation pass itself.
        branches = classify_branches(
            pred.cpu().numpy(),
            amp_test.cpu().numpy(),
            None if probe is None else probe.cpu().numpy(),
        )
        twin_fraction = branches.fraction
    return Validation(
        float(loss.item()),
        float(torch.cat(stds).mean().item()),
        amp_mae,
        amp_mae_twin,
        twin_fraction,
    )
