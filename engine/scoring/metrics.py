"""Reconstruction metrics of the study (docs/science.md, 'Metrics'), as pure NumPy functions.

Every function takes arrays and explicit parameters and returns plain Python floats (or lists of
them); nothing here knows about torch, files or the dataset. Arrays are promoted to float64.

Conventions, chosen once and reported with every result (docs/science.md, 'Metrics'):

- Ranges are always explicit. Amplitude PSNR and SSIM use the GT's max - min; phase PSNR uses 2*pi
  (the span of a wrapped phase); phase SSIM runs on (phi + pi) / (2*pi) with range 1. The original's
  OpenCV PSNR with a fixed peak of 255 is deliberately not reproduced.
- SSIM is scikit-image's default flavour: 7x7 uniform window, sample covariance, K1 = 0.01,
  K2 = 0.03 (not Wang et al.'s 11x11 Gaussian).
- MS-SSIM: 5 levels, weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333, 2x2-mean decimation between
  levels, the same SSIM flavour at every level; contrast-structure terms at the first four levels,
  full SSIM at the last (Wang, Simoncelli & Bovik 2003). Negative terms are clipped to 0 before the
  fractional power, as common implementations do. A 326-px image has 20 px at the fifth level,
  enough for the 7-px window, so all five levels are kept.
- FRC uses the real part of the ring-summed cross-spectrum, not its modulus (the modulus biases
  uncorrelated rings upward by ~1/sqrt(n)). Rings by rounded radius around the fftshift centre,
  r = 0 .. n // 2, no apodisation and no smoothing. A crossing is the first ring below the
  threshold, linearly interpolated from the ring before it; **NaN means the curve never drops
  below it** (for instance a perfect reconstruction) or that the GT is constant. Empty rings are
  handled explicitly (see :func:`frc_curve`) so a flat prediction crosses at once.
- Alignment before metrics (the original's recipe): amplitude rescaled by mean(GT) / mean(pred);
  phase of prediction and GT each minus its own least-squares plane a*x + b*y + c. The phase
  difference is not re-wrapped, so a prediction that wraps where the GT does not is penalised by up
  to 2*pi, as in the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter
from skimage.metrics import structural_similarity

from engine.sim.stitch import trim_border

TRIM = 2  # px dropped from every side of reconstruction and GT before any metric (330 -> 326)

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_FLAVOUR = "skimage 7x7 uniform"

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
AMPLITUDE_PRESMOOTH_SIGMA = 1.0  # Gaussian applied to both amplitudes before MS-SSIM only
MS_SSIM_FLAVOUR = (
    "5 levels, 2x2-mean decimation, skimage 7x7 uniform SSIM terms, "
    "amplitude pre-smoothed with Gaussian sigma 1, phase not smoothed"
)

PHASE_PSNR_RANGE = 2.0 * math.pi
PHASE_SSIM_RANGE = 1.0  # after mapping phi -> (phi + pi) / (2 pi)

FRC50 = 0.5
FRC_ONE_SEVENTH = 1.0 / 7.0
# A ring whose energy is below this fraction of the image's total energy is FFT rounding noise, not
# signal: rounding leaves ~1e-32 relative energy per bin, real structure is many orders above 1e-20.
FRC_EMPTY_RING_RTOL = 1e-20
FRC_CONVENTION = (
    "real part of ring cross-spectrum, rounded-radius rings 0..n/2 on the centre-cropped square, "
    "crossing linearly interpolated, NaN = no crossing or constant GT"
)

# A GT phase whose residual after plane removal spans less than this is treated as constant: every
# phase metric against it is vacuous (docs/science.md, 'Phase-free cache').
PHASE_CONSTANT_TOL = 1e-6


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f"expected two 2-D images of one shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def _check_range(data_range: float) -> float:
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return float(data_range)


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = _pair(pred, gt)
    return float(np.mean(np.abs(pred - gt)))


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = _pair(pred, gt)
    return float(np.mean((pred - gt) ** 2))


def psnr(pred: np.ndarray, gt: np.ndarray, data_range: float) -> float:
    """10 log10(data_range^2 / MSE) in dB; +inf for an exact match.

    The range is required, never guessed from dtype or values: scikit-image guesses from dtype and
    OpenCV assumes 255, and both make numbers incomparable across quantities.
    """
    data_range = _check_range(data_range)
    error = mse(pred, gt)
    if error == 0.0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / error))


def ssim(pred: np.ndarray, gt: np.ndarray, data_range: float) -> float:
    """Mean SSIM, scikit-image's default flavour (see SSIM_FLAVOUR) with an explicit range."""
    pred, gt = _pair(pred, gt)
    return float(structural_similarity(gt, pred, data_range=_check_range(data_range)))


def ssim_components(pred: np.ndarray, gt: np.ndarray, data_range: float) -> tuple[float, float]:
    """(mean SSIM, mean contrast-structure term) in the same flavour as :func:`ssim`.

    MS-SSIM needs the contrast-structure term on its own, which scikit-image does not return, so
    this re-derives scikit-image's computation (uniform filter, sample covariance, border of
    (window - 1) / 2 excluded from the mean); a test pins the first value to scikit-image's.
    """
    x, y = _pair(pred, gt)
    data_range = _check_range(data_range)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} px, got {x.shape}")
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    n = SSIM_WINDOW**2
    cov_norm = n / (n - 1)

    def local_mean(a: np.ndarray) -> np.ndarray:
        return uniform_filter(a, size=SSIM_WINDOW)

    ux, uy = local_mean(x), local_mean(y)
    vx = cov_norm * (local_mean(x * x) - ux * ux)
    vy = cov_norm * (local_mean(y * y) - uy * uy)
    vxy = cov_norm * (local_mean(x * y) - ux * uy)
    luminance = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    contrast_structure = (2 * vxy + c2) / (vx + vy + c2)
    pad = (SSIM_WINDOW - 1) // 2
    inner = (slice(pad, -pad), slice(pad, -pad))
    full = float(np.mean((luminance * contrast_structure)[inner]))
    return full, float(np.mean(contrast_structure[inner]))


def _halve(a: np.ndarray) -> np.ndarray:
    """2x2 mean pooling (low-pass, then decimate); an odd last row or column is dropped."""
    h, w = a.shape[0] // 2, a.shape[1] // 2
    return a[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))


def ms_ssim_min_size() -> int:
    """Smallest side for which all MS-SSIM levels keep at least one SSIM window."""
    return SSIM_WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


def ms_ssim(pred: np.ndarray, gt: np.ndarray, data_range: float) -> float:
    """Five-level multi-scale SSIM (see the module docstring for the exact flavour).

    Raises ValueError when the coarsest level would be smaller than the SSIM window rather than
    silently using fewer levels: 5 levels need at least 7 * 2^4 = 112 px.
    """
    x, y = _pair(pred, gt)
    levels = len(MS_SSIM_WEIGHTS)
    smallest = min(x.shape) // 2 ** (levels - 1)
    if smallest < SSIM_WINDOW:
        raise ValueError(
            f"MS-SSIM with {levels} levels needs at least {SSIM_WINDOW * 2 ** (levels - 1)} px, "
            f"got {x.shape}"
        )
    result = 1.0
    for weight in MS_SSIM_WEIGHTS[:-1]:
        _, contrast_structure = ssim_components(x, y, data_range)
        result *= float(np.maximum(contrast_structure, 0.0)) ** weight
        x, y = _halve(x), _halve(y)
    full, _ = ssim_components(x, y, data_range)
    return result * float(np.maximum(full, 0.0)) ** MS_SSIM_WEIGHTS[-1]


def _centre_square(a: np.ndarray, n: int) -> np.ndarray:
    top, left = (a.shape[0] - n) // 2, (a.shape[1] - n) // 2
    return a[top : top + n, left : left + n]


def frc_curve(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Fourier ring correlation, rings r = 0 .. n // 2 of the centre-cropped n x n square.

    FRC(r) = Re sum_ring F1 F2* / sqrt(sum_ring |F1|^2 * sum_ring |F2|^2), F1 of ``pred``, F2 of
    ``gt``. Empty rings (energy at rounding level, see FRC_EMPTY_RING_RTOL) are not left as 0/0: an
    empty GT ring is NaN, since there is nothing to correlate with (a constant GT gives NaN beyond
    ring 0, a plane-removed phase NaN at ring 0); an empty prediction ring facing a non-empty GT
    ring is 0, since nothing of the GT was recovered there (a flat reconstruction must cross early,
    not look perfect).
    """
    x, y = _pair(pred, gt)
    n = min(x.shape)
    fx = np.fft.fftshift(np.fft.fft2(_centre_square(x, n)))
    fy = np.fft.fftshift(np.fft.fft2(_centre_square(y, n)))
    offsets = np.arange(n) - n // 2
    radius = np.rint(np.hypot(offsets[:, None], offsets[None, :])).astype(np.int64)
    inside = radius <= n // 2
    rings = radius[inside]

    def ring_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(rings, weights=values[inside], minlength=n // 2 + 1)

    cross = ring_sum((fx * np.conj(fy)).real)
    energy_pred = ring_sum(np.abs(fx) ** 2)
    energy_gt = ring_sum(np.abs(fy) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = cross / np.sqrt(energy_pred * energy_gt)
    curve = np.where(_empty(energy_pred, np.abs(fx) ** 2), 0.0, curve)
    return np.where(_empty(energy_gt, np.abs(fy) ** 2), np.nan, curve)


def _empty(ring_energy: np.ndarray, power: np.ndarray) -> np.ndarray:
    """Rings holding nothing but FFT rounding noise, relative to the image's total energy."""
    return ring_energy <= FRC_EMPTY_RING_RTOL * power.sum()


def frc_threshold_crossing(curve: np.ndarray, threshold: float) -> float:
    """Fractional ring index where the curve first drops below ``threshold``; NaN if it never does.

    Linear interpolation between the last ring at or above the threshold and the first ring below
    it. NaN rings never count as a crossing. A curve already below at ring 0 crosses at 0.
    """
    curve = np.asarray(curve, dtype=np.float64)
    below = np.flatnonzero(curve < threshold)
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0 or not np.isfinite(curve[k - 1]):
        return float(k)
    before, after = curve[k - 1], curve[k]
    return float(k - 1 + (before - threshold) / (before - after))


def remove_phase_plane(phase: np.ndarray) -> np.ndarray:
    """Phase minus its least-squares plane a*x + b*y + c over all pixels.

    Removes the global offset and linear ramp that a far-field measurement cannot determine. The
    fit is unweighted (the original's choice): low-amplitude pixels count as much as bright ones.
    """
    phase = np.asarray(phase, dtype=np.float64)
    if phase.ndim != 2:
        raise ValueError(f"expected a 2-D phase image, got shape {phase.shape}")
    rows, cols = np.indices(phase.shape, dtype=np.float64)
    # Centred coordinates keep the normal equations well conditioned.
    design = np.stack(
        [cols.ravel() - cols.mean(), rows.ravel() - rows.mean(), np.ones(phase.size)], axis=1
    )
    coefficients, *_ = np.linalg.lstsq(design, phase.ravel(), rcond=None)
    return phase - (design @ coefficients).reshape(phase.shape)


def align_amplitude(pred_amplitude: np.ndarray, gt_amplitude: np.ndarray) -> np.ndarray:
    """Prediction scaled by mean(GT) / mean(pred), removing the global scale ambiguity.

    An all-zero prediction has no scale to fix and is returned unchanged (its metrics are then
    those of a black image, which is the honest answer).
    """
    pred, gt = _pair(pred_amplitude, gt_amplitude)
    pred_mean = pred.mean()
    if pred_mean == 0:
        return pred
    return pred * (gt.mean() / pred_mean)


def phase_is_constant(aligned_gt_phase: np.ndarray) -> bool:
    """True when a plane-removed GT phase is flat, so phase metrics against it mean nothing."""
    return bool(np.ptp(aligned_gt_phase) < PHASE_CONSTANT_TOL)


@dataclass(frozen=True)
class AlignedImages:
    """Trimmed, aligned real images exactly as the metrics see them (all float64, same shape)."""

    pred_amplitude: np.ndarray  # rescaled by mean(GT) / mean(pred)
    gt_amplitude: np.ndarray
    pred_phase: np.ndarray  # own plane removed
    gt_phase: np.ndarray  # own plane removed


def align_for_metrics(pred: np.ndarray, gt: np.ndarray, trim: int = TRIM) -> AlignedImages:
    """Trim both complex images by ``trim`` px per side, then align amplitude and phase."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(
            f"expected two 2-D complex images of one shape, got {pred.shape} and {gt.shape}"
        )
    pred = trim_border(pred, trim)
    gt = trim_border(gt, trim)
    gt_amplitude = np.abs(gt).astype(np.float64)
    return AlignedImages(
        pred_amplitude=align_amplitude(np.abs(pred), gt_amplitude),
        gt_amplitude=gt_amplitude,
        pred_phase=remove_phase_plane(np.angle(pred)),
        gt_phase=remove_phase_plane(np.angle(gt)),
    )


def _phase_for_ssim(phase: np.ndarray) -> np.ndarray:
    return (phase + math.pi) / (2.0 * math.pi)


def metrics_from_aligned(aligned: AlignedImages, phase_vacuous: bool = False) -> dict:
    """The metrics.json object: each metric an [amplitude, phase] pair of plain floats, plus extras.

    ``phase_vacuous`` from the dataset is OR-ed with a check on the GT itself: a flat GT phase makes
    phase SSIM look perfect on any flat prediction. Vacuous phase numbers are still computed (so
    tables keep their shape) but flagged, and the phase FRC curve and crossings are NaN.
    """
    a = aligned
    vacuous = bool(phase_vacuous) or phase_is_constant(a.gt_phase)
    amp_range = float(np.max(a.gt_amplitude) - np.min(a.gt_amplitude))
    amp_smooth = gaussian_filter(a.pred_amplitude, AMPLITUDE_PRESMOOTH_SIGMA)
    gt_smooth = gaussian_filter(a.gt_amplitude, AMPLITUDE_PRESMOOTH_SIGMA)
    pred_phase01, gt_phase01 = _phase_for_ssim(a.pred_phase), _phase_for_ssim(a.gt_phase)

    amp_frc = frc_curve(a.pred_amplitude, a.gt_amplitude)
    phase_frc = frc_curve(a.pred_phase, a.gt_phase)
    if vacuous:
        phase_frc = np.full_like(phase_frc, np.nan)

    ms_ok = min(a.gt_amplitude.shape) >= ms_ssim_min_size()

    def floats(values) -> list[float]:
        return [float(v) for v in values]

    return {
        "mae": [mae(a.pred_amplitude, a.gt_amplitude), mae(a.pred_phase, a.gt_phase)],
        "mse": [mse(a.pred_amplitude, a.gt_amplitude), mse(a.pred_phase, a.gt_phase)],
        "psnr": [
            psnr(a.pred_amplitude, a.gt_amplitude, data_range=amp_range),
            psnr(a.pred_phase, a.gt_phase, data_range=PHASE_PSNR_RANGE),
        ],
        "ssim": [
            ssim(a.pred_amplitude, a.gt_amplitude, data_range=amp_range),
            ssim(pred_phase01, gt_phase01, data_range=PHASE_SSIM_RANGE),
        ],
        # Small test images (tiny CI or quick recipes) cannot carry 5 levels: NaN, and said so
        # in ms_ssim_flavour, rather than a failed run after all the training.
        "ms_ssim": [
            ms_ssim(amp_smooth, gt_smooth, data_range=amp_range) if ms_ok else math.nan,
            ms_ssim(pred_phase01, gt_phase01, data_range=PHASE_SSIM_RANGE) if ms_ok else math.nan,
        ],
        "frc50": [frc_threshold_crossing(amp_frc, FRC50), frc_threshold_crossing(phase_frc, FRC50)],
        "frc1over7": [
            frc_threshold_crossing(amp_frc, FRC_ONE_SEVENTH),
            frc_threshold_crossing(phase_frc, FRC_ONE_SEVENTH),
        ],
        "frc": [floats(amp_frc), floats(phase_frc)],
        "psnr_data_range": [amp_range, PHASE_PSNR_RANGE],
        "ssim_data_range": [amp_range, PHASE_SSIM_RANGE],
        "phase_vacuous": vacuous,
        "image_size": list(a.gt_amplitude.shape),
        "ssim_flavour": SSIM_FLAVOUR,
        "ms_ssim_flavour": MS_SSIM_FLAVOUR
        if ms_ok
        else f"not computed: image smaller than {ms_ssim_min_size()} px",
        "frc_convention": FRC_CONVENTION,
    }


def compute_metrics(
    pred: np.ndarray, gt: np.ndarray, trim: int = TRIM, phase_vacuous: bool = False
) -> dict:
    """Metrics of a stitched complex reconstruction against the complex GT crop (same shape).

    Both are trimmed by ``trim`` px per side first (docs/science.md, 'Trim and alignment'), then
    aligned; see :func:`metrics_from_aligned` for the returned keys.
    """
    return metrics_from_aligned(align_for_metrics(pred, gt, trim), phase_vacuous)
