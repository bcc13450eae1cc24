"""Final evaluation of a trained generator on the test split (docs/science.md, 'Evaluation').

predict -> stitch the first test image -> multiply by the test norm_Y_I -> trim, align -> metrics.
The arithmetic lives in ``engine/sim/stitch.py``, ``engine/scoring/metrics.py`` and ``engine/scoring/twin.py``; this
module only runs the model and wires the pure pieces together, so the only torch code is
:func:`predict`.

Besides the metrics against the ground truth, every evaluation says how much of the
reconstruction is the object's *twin* (engine/scoring/twin.py): a diffraction-amplitude loss cannot tell
the two apart when the probe is centrosymmetric, and a twin reconstruction otherwise reads as a
poor one. metrics.json then holds a ``"twin"`` block: the per-patch branch decision (fraction of
decidable patches on the twin branch, the undecidable fraction, mean distances, the rule) and the
same metrics as the main ones, of the stitched prediction against the stitched all-twin image.

Only the first test image's patches are predicted: it is the only one evaluated, and in eval mode a
sample's prediction does not depend on the rest of its batch (tested), so predicting the others
would change nothing but the run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from engine.atomic import atomic_write_bytes
from engine.scoring.metrics import TRIM, align_for_metrics, compute_metrics, metrics_from_aligned
from engine.scoring.twin import classify_branches, twin_block, twin_headline, twin_image
from engine.sim.stitch import check_scan_order, stitch_patches, stitched_size, trim_border


class EvalSplit(Protocol):
    """What evaluation needs from a dataset split (``engine.sim.data.Split`` satisfies it)."""

    diffraction: np.ndarray  # (n, N, N) float32, scan order: image-major, then row-major
    positions: np.ndarray  # (n, 2) int patch origins (row, col), checked against that order
    norm_Y_I: float
    stride: int
    patches_per_axis: int
    amplitude: np.ndarray  # (n, N, N) true object amplitude / norm_Y_I, scan order
    phase: np.ndarray  # (n, N, N) true object phase


@dataclass(frozen=True)
class Evaluation:
    """Metrics plus the images they were computed from, for recon.npz and the report."""

    metrics: dict  # the metrics.json object, see engine.scoring.metrics.metrics_from_aligned
    stitched: np.ndarray  # complex64 (G, G): stitched prediction x norm_Y_I, untrimmed
    recon: np.ndarray  # complex64 (G - 2 trim)^2: ``stitched`` trimmed, before any alignment
    recon_amplitude: np.ndarray  # float64, trimmed, rescaled by mean(GT) / mean(pred)
    recon_phase: np.ndarray  # float64, trimmed, own least-squares plane removed
    gt_amplitude: np.ndarray  # float64, trimmed
    gt_phase: np.ndarray  # float64, trimmed, own least-squares plane removed
    trim: int
    twin_gt: np.ndarray | None = None  # complex64 (G, G): the all-twin image, untrimmed
    twin_branch: np.ndarray | None = None  # bool (P, P): patch on the twin branch
    twin_decidable: np.ndarray | None = None  # bool (P, P): its branch could be decided

    def save_npz(self, path: str | Path) -> None:
        """Write every image (not the metrics, which go to metrics.json) to ``path``, atomically:
        a re-evaluation replaces the file of a finished run, and a reader (the dashboard, an
        export) must see the old file or the new one, never half of either."""
        arrays = {
            "stitched": self.stitched,
            "recon": self.recon,
            "recon_amplitude": self.recon_amplitude,
            "recon_phase": self.recon_phase,
            "gt_amplitude": self.gt_amplitude,
            "gt_phase": self.gt_phase,
            "trim": np.int64(self.trim),
        }
        for key in ("twin_gt", "twin_branch", "twin_decidable"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        atomic_write_bytes(Path(path), lambda fh: np.savez_compressed(fh, **arrays))


def predict(
    model: torch.nn.Module,
    diffraction: np.ndarray,
    infer_batch_size: int,
    device: str | torch.device,
) -> np.ndarray:
    """Run the generator over (n, N, N) float32 diffraction in batches; returns complex64 (n, N, N).

    Runs in eval mode under no_grad, so dropout is off and batch norm uses its running statistics:
    a pattern's prediction cannot depend on the batch it lands in. Every submodule's training flag
    is restored afterwards, so calling this between training epochs is safe. The model must already
    be on ``device``; inputs are moved there batch by batch and outputs back to the host.
    """
    diffraction = np.asarray(diffraction)
    if diffraction.ndim != 3:
        raise ValueError(f"expected diffraction of shape (n, N, N), got {diffraction.shape}")
    if infer_batch_size < 1:
        raise ValueError(f"infer_batch_size must be at least 1, got {infer_batch_size}")
    n, height, width = diffraction.shape
    out = np.empty((n, height, width), dtype=np.complex64)
    flags = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, infer_batch_size):
                batch = diffraction[start : start + infer_batch_size]
                x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
                y = model(x.unsqueeze(1).to(device))
                if y.shape != (len(batch), height, width) or not y.is_complex():
                    raise ValueError(
                        f"model must map (B, 1, {height}, {width}) to complex (B, {height}, "
                        f"{width}), got {y.dtype} {tuple(y.shape)}"
                    )
                out[start : start + len(batch)] = y.to(torch.complex64).cpu().numpy()
    finally:
        for module, training in flags.items():
            module.training = training
    return out


def evaluate(
    model: torch.nn.Module,
    test_split: EvalSplit,
    ground_truth: np.ndarray,
    infer_batch_size: int,
    device: str | torch.device,
    phase_vacuous: bool,
    trim: int = TRIM,
    *,
    probe: np.ndarray | None = None,
) -> Evaluation:
    """Predict, stitch and score the first test image against ``ground_truth`` (the GT crop).

    ``ground_truth`` must already be cut with ``engine.sim.stitch.gt_crop_bounds`` so it has the
    stitched image's shape; a mismatch raises rather than being silently cropped. ``probe`` (the
    dataset's) weights the twin-branch decision by illumination; without it every pixel of a
    patch weighs the same, and the "twin" block's "decision" says so.
    """
    P, stride = test_split.patches_per_axis, test_split.stride
    side = stitched_size(P, stride)
    # Checked before prediction, the slow part, so a mis-cut dataset fails at once.
    if np.shape(ground_truth) != (side, side):
        raise ValueError(
            f"ground truth {np.shape(ground_truth)} does not match the {side}x{side} stitched "
            "reconstruction; crop it with engine.sim.stitch.gt_crop_bounds"
        )
    check_scan_order(test_split.positions, P, stride)
    diffraction = np.asarray(test_split.diffraction)
    patches = predict(model, diffraction[: P * P], infer_batch_size, device)
    N = diffraction.shape[-1]
    stitched = (stitch_patches(patches, P, stride, N) * test_split.norm_Y_I).astype(np.complex64)
    aligned = align_for_metrics(stitched, ground_truth, trim)
    metrics = metrics_from_aligned(aligned, phase_vacuous)
    branches = classify_branches(patches, true_patches(test_split, P * P), probe)
    twin_gt = twin_image(ground_truth, stride).astype(np.complex64)
    twin_metrics = compute_metrics(stitched, twin_gt, trim=trim, phase_vacuous=phase_vacuous)
    metrics["twin"] = twin_block(branches, twin_metrics)
    return Evaluation(
        metrics=metrics,
        stitched=stitched,
        recon=trim_border(stitched, trim),
        recon_amplitude=aligned.pred_amplitude,
        recon_phase=aligned.pred_phase,
        gt_amplitude=aligned.gt_amplitude,
        gt_phase=aligned.gt_phase,
        trim=trim,
        twin_gt=twin_gt,
        twin_branch=branches.twin.reshape(P, P),
        twin_decidable=branches.decidable.reshape(P, P),
    )


def true_patches(split: EvalSplit, n: int) -> np.ndarray:
    """The first ``n`` true object patches, amplitude * exp(i phase), complex64 (n, N, N)."""
    amplitude = np.asarray(split.amplitude[:n], dtype=np.float32)
    phase = np.asarray(split.phase[:n], dtype=np.float32)
    if amplitude.shape != phase.shape or len(amplitude) != n:
        raise ValueError(
            f"the split holds {amplitude.shape} amplitude and {phase.shape} phase "
            f"patches; evaluation needs {n} of each"
        )
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def headline_metrics(metrics: dict) -> dict:
    """What a telemetry ``metrics`` record carries of a metrics.json object: the main [amplitude,
    phase] pairs and the twin summary (engine.scoring.verdict reads the twin fraction from here)."""
    out = {k: metrics[k] for k in ("mae", "mse", "psnr", "ssim", "frc50") if k in metrics}
    return {**out, **twin_headline(metrics)}


def reference_metrics(
    ground_truth: np.ndarray, trim: int = TRIM, phase_vacuous: bool = False
) -> dict:
    """Metrics of a flat reconstruction (constant amplitude, zero phase): the collapse level.

    A collapsed generator outputs a constant image, so these are the numbers a collapsed arm reports
    (docs/science.md, 'Reference levels'); the report puts them beside every arm. The constant's
    value does not matter: amplitude alignment rescales it to mean(GT).
    """
    flat = np.ones(np.shape(ground_truth), dtype=np.complex64)
    return compute_metrics(flat, ground_truth, trim=trim, phase_vacuous=phase_vacuous)


def twin_reference_metrics(
    ground_truth: np.ndarray, stride: int, trim: int = TRIM, phase_vacuous: bool = False
) -> dict:
    """Metrics of the all-twin reconstruction against the GT crop: the level an arm reaches that
    reconstructs the twin of every patch perfectly (engine/scoring/twin.py). The report puts it beside
    the flat level, so such an arm reads as "twin", not as "wrong object".

    ``ground_truth`` is the untrimmed GT crop (stitched size), ``stride`` the test stride.
    """
    twin = twin_image(ground_truth, stride)
    return compute_metrics(twin, ground_truth, trim=trim, phase_vacuous=phase_vacuous)
