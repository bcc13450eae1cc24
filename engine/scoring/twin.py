"""The twin ambiguity: which reconstructed patches are the object's twin instead of the object.

For a real probe P that is centrosymmetric about the patch centre (N - 1) / 2 (the ideal disk is),
every object patch O has a twin, ``conj(O[::-1, ::-1])``, with the same far-field amplitude:
|FFT(twin(O) * P)| = |FFT(O * P)|. A diffraction-amplitude loss cannot tell the two apart, so a
generator may learn the twin for some or all patches. Stitching keeps each patch's central
stride x stride block, which sits on the patch centre, so a stitched image of twin patches is the
ground-truth crop with every stride x stride block flipped in both axes and conjugated.

Which branch a predicted patch took is decided on amplitude (the phase of the twin is the negated,
flipped phase, so amplitude alone already separates the branches wherever the object is not
centrosymmetric), with:

- weights w = |P|^2: the object is observed only where the probe illuminates it, and outside that
  region the generator's output is unconstrained by the loss, so it must not vote;
- ONE global amplitude scale s = sum(w |ref|) / sum(w |pred|) over all patches, as the evaluation
  rescales amplitude by one mean ratio: a per-patch scale would hide a wrong-contrast patch;
- d = sum(w |s |pred| - |ref||) / sum(w) per patch, against the truth (d_true) and its twin
  (d_twin); the patch is on the twin branch when d_twin < d_true.

A prediction must be *near* a branch to be on it. By the triangle inequality
|d_true - d_twin| <= d_sep, the weighted distance between the truth and its twin, and the two
ends are reached by a perfect reconstruction of either branch. A patch is *decidable* when it is
closer to one branch than to the other by at least BRANCH_MARGIN (one half) of d_sep, i.e. it
sits in the half of the segment between the branches nearest to one of them. So a prediction
close to neither (an undertrained or collapsed generator: a constant output gives d_true ==
d_twin exactly, because w is symmetric) is undecidable rather than a coin flip, and so is a
patch whose content is its own twin (d_sep below SELF_TWIN_RTOL of its mean weighted amplitude,
such as empty background), as is any patch with a non-finite distance. ``fraction`` counts twin
patches among the decidable ones only; ``undecidable_fraction`` says how many were left out, so a
fraction drawn from a handful of decidable patches is never mistaken for a finding.

``twin_block`` and ``twin_headline`` shape what the evaluation records: metrics.json's "twin" object
and the twin fields of the telemetry ``metrics`` record, which engine.scoring.verdict reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# A patch is on a branch when it is nearer to it than to the other by this fraction of the
# distance between the two branches (see the module docstring).
BRANCH_MARGIN = 0.5
# A patch whose truth and twin differ by less than this fraction of its mean weighted amplitude
# is its own twin: no prediction can say which branch it is on.
SELF_TWIN_RTOL = 0.01


def decision_rule(weighted: bool) -> str:
    """One line that says how branches were decided (metrics.json "twin" -> "decision")."""
    weights = "probe-weighted (|P|^2)" if weighted else "uniformly weighted (no probe given)"
    return (
        f"a patch is on the twin branch when its {weights} amplitude distance to the twin "
        f"conj(O[::-1, ::-1]) is below that to the truth by at least {BRANCH_MARGIN:g} of the "
        f"distance between truth and twin, after one global scale over all patches; "
        f"patches near neither branch, or their own twin, are undecidable and left out of "
        f"the fraction"
    )


def twin_patches(patches: np.ndarray) -> np.ndarray:
    """The twin of every (N, N) patch of a (..., N, N) stack: flipped through the centre, conj.

    Real input gives the flipped patch (its conjugate is itself). The twin of the twin is the
    patch again.
    """
    patches = np.asarray(patches)
    if patches.ndim < 2 or patches.shape[-1] != patches.shape[-2]:
        raise ValueError(f"expected square patches of shape (..., N, N), got {patches.shape}")
    return np.conj(patches[..., ::-1, ::-1])


def twin_image(image: np.ndarray, stride: int) -> np.ndarray:
    """The stitched image an all-twin reconstruction gives: each stride x stride block of
    ``image`` (an untrimmed, stitched-size image such as the GT crop) flipped and conjugated.

    The blocks must start at pixel 0, as engine.sim.stitch tiles them; a trimmed image does not line
    up and is refused (its side is no longer a multiple of the stride).
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square 2-D stitched image, got shape {image.shape}")
    side = image.shape[0]
    if stride < 1 or side % stride:
        raise ValueError(
            f"a {side}x{side} image is not a whole number of {stride}x{stride} stitched blocks; "
            "pass the untrimmed stitched-size image (engine.sim.stitch.gt_crop_bounds)"
        )
    P = side // stride
    # (P, s, P, s): block row, row in block, block column, column in block.
    blocks = image.reshape(P, stride, P, stride)
    return np.conj(blocks[:, ::-1, :, ::-1]).reshape(side, side)


@dataclass(frozen=True)
class TwinBranches:
    """Per-patch branch decision of one set of predicted patches (see the module docstring)."""

    d_true: np.ndarray  # (n,) float64 weighted amplitude distance to the truth (NaN if unknown)
    d_twin: np.ndarray  # (n,) float64 the same, to the twin
    decidable: np.ndarray  # (n,) bool
    twin: np.ndarray  # (n,) bool: decidable and closer to the twin
    scale: float  # the one amplitude scale applied to every prediction
    weighted: bool  # probe weights (True) or uniform ones

    @property
    def patches(self) -> int:
        return int(self.d_true.size)

    @property
    def decidable_patches(self) -> int:
        return int(self.decidable.sum())

    @property
    def fraction(self) -> float:
        """Twin-branch patches / decidable patches; NaN when no patch is decidable."""
        n = self.decidable_patches
        return float(self.twin.sum()) / n if n else math.nan

    @property
    def undecidable_fraction(self) -> float:
        return 1.0 - self.decidable_patches / self.patches if self.patches else math.nan

    @property
    def mean_d_true(self) -> float:
        return _finite_mean(self.d_true)

    @property
    def mean_d_twin(self) -> float:
        return _finite_mean(self.d_twin)

    def summary(self) -> dict:
        """The scalar part of the metrics.json "twin" block (the caller adds its metrics)."""
        return {
            "fraction": self.fraction,
            "undecidable_fraction": self.undecidable_fraction,
            "patches": self.patches,
            "decidable_patches": self.decidable_patches,
            "d_true": self.mean_d_true,
            "d_twin": self.mean_d_twin,
            "amplitude_scale": self.scale,
            "weights": "probe |P|^2" if self.weighted else "uniform (no probe given)",
            "decision": decision_rule(self.weighted),
        }


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def classify_branches(
    pred: np.ndarray, truth: np.ndarray, probe: np.ndarray | None = None
) -> TwinBranches:
    """Decide for every predicted patch whether it reconstructs the truth or its twin.

    ``pred`` and ``truth`` are (n, N, N) patches in the same order (truth: the test split's
    amplitude * exp(i phase), in the same normalised units as the prediction; a global factor
    does not matter, the scale absorbs it). ``probe`` is the (N, N) illumination; without it
    every pixel weighs the same, and the result says so.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.ndim != 3 or pred.shape != truth.shape or pred.shape[1] != pred.shape[2]:
        raise ValueError(
            f"expected predicted and true patches of one shape (n, N, N), got "
            f"{pred.shape} and {truth.shape}"
        )
    if probe is None:
        weights = np.ones(pred.shape[1:], dtype=np.float64)
    else:
        probe = np.asarray(probe)
        if probe.shape != pred.shape[1:]:
            raise ValueError(f"probe {probe.shape} does not match patches {pred.shape[1:]}")
        weights = np.abs(probe).astype(np.float64) ** 2
    if not weights.sum() > 0:
        raise ValueError("the probe is zero everywhere: no pixel is observed")
    pred_amp = np.abs(pred).astype(np.float64)
    true_amp = np.abs(truth).astype(np.float64)
    twin_amp = np.abs(twin_patches(true_amp))
    # One scale for all patches, as the evaluation aligns amplitude, taken over the patches
    # predicted without NaN or inf (those are undecidable, below, and must not poison the
    # others); an all-zero prediction keeps its own scale, and its distances say what they say.
    finite_patch = np.isfinite(pred_amp).all(axis=(1, 2))
    pred_mass = float((weights * pred_amp[finite_patch]).sum())
    true_mass = float((weights * true_amp[finite_patch]).sum())
    scale = true_mass / pred_mass if pred_mass > 0 and math.isfinite(pred_mass) else 1.0
    scaled = scale * pred_amp

    def distance(ref: np.ndarray) -> np.ndarray:
        return (weights * np.abs(scaled - ref)).sum(axis=(1, 2)) / weights.sum()

    d_true, d_twin = distance(true_amp), distance(twin_amp)
    d_sep = (weights * np.abs(true_amp - twin_amp)).sum(axis=(1, 2)) / weights.sum()
    level = (weights * true_amp).sum(axis=(1, 2)) / weights.sum()
    finite = np.isfinite(d_true) & np.isfinite(d_twin)
    with np.errstate(invalid="ignore"):
        separable = d_sep > SELF_TWIN_RTOL * level
        margin = np.abs(d_true - d_twin) >= BRANCH_MARGIN * d_sep
    decidable = finite & separable & margin
    return TwinBranches(
        d_true=d_true,
        d_twin=d_twin,
        decidable=decidable,
        twin=decidable & (d_twin < d_true),
        scale=scale,
        weighted=probe is not None,
    )


def twin_block(branches: TwinBranches, twin_metrics: dict) -> dict:
    """metrics.json's "twin" object: the branch decision and the metrics against the twin
    (without the FRC curves, which the main metrics carry; the crossings stay)."""
    return {**branches.summary(), "metrics": {k: v for k, v in twin_metrics.items() if k != "frc"}}


def twin_headline(metrics: dict) -> dict:
    """The twin numbers a telemetry ``metrics`` record carries next to the headline pairs:
    ``twin_fraction``, ``twin_undecidable_fraction`` and ``ssim_vs_twin`` (an [amplitude,
    phase] pair); empty for metrics without a "twin" block. engine.scoring.verdict reads the first two.
    """
    twin = metrics.get("twin")
    if not isinstance(twin, dict):
        return {}
    return {
        "twin_fraction": twin.get("fraction"),
        "twin_undecidable_fraction": twin.get("undecidable_fraction"),
        "ssim_vs_twin": (twin.get("metrics") or {}).get("ssim"),
    }
