"""The illumination: build, load, smooth, mask and normalise the probe (docs/science.md,
'The probe').

The probe is the one array shared by the simulator and the physics model, so this module decides its
conventions once:

- Real-space masks are centred on the array centre ``(N - 1) / 2`` (between the four middle pixels
  for even N), the same centre as the ideal disk, so a symmetric probe stays symmetric.
- Order of operations, whatever the source: smooth (amplitude and unwrapped phase separately), then
  the optional disk mask, then the simulation normalisation.
- The normalised probe is used for simulation *and* handed to the physics model. The original gave
  the network the smoothed, un-normalised probe divided by 4; the two differ by one global factor
  that the generator absorbs into the object amplitude. ``PHYSICS_PROBE_NOTE`` records this
  departure so the telemetry header can say it.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import DataConfig
from engine.errors import ConfigError

IDEAL_DISK = "ideal_disk"
DEFOCUSED_APERTURE = "defocused_aperture"
BUILT_IN_PROBES = (DEFOCUSED_APERTURE, IDEAL_DISK)
APERTURES = ("circle", "square")
PROBE_FILE_SUFFIXES = (".npy", ".npz")
# Array names accepted in a multi-array .npz; "probeGuess" is the key of the original's data files.
NPZ_PROBE_KEYS = ("probe", "probeGuess")

# Ideal disk (docs/science.md, 'Ideal disk'): a 1-D Gaussian low-pass profile of std
# N / (width * pi^2), with the original's `default_probe_scale` width 0.7, taken as an outer
# product (a separable radial Gaussian) and thresholded at half its peak: a disk of radius
# std * sqrt(2 ln 2), i.e. 10.9 px at N = 64.
DISK_WIDTH = 0.7
DISK_THRESHOLD = 0.5
DISK_EDGE_SIGMA = 1.0
# Added after the edge blur so the probe is never exactly zero: a zero probe pixel would make the
# object there unobservable and its phase undefined.
DISK_FLOOR = 1e-9

# Defocused aperture (docs/twin.md, 'The default probe'): the pupil's hard edge is softened by
# a Gaussian of this many frequency pixels, so the real-space probe has no sinc tails that wrap
# around the patch.
PUPIL_EDGE_SIGMA = 1.0
# A beam whose geometric spread (defocus plus aberrations, see ``beam_spread_px``) reaches past
# this fraction of N would wrap around the periodic N x N grid: refused at load.
MAX_SPREAD_FRACTION = 0.5
# Twin symmetry at or above this (1 = exact) makes every patch (nearly) ambiguous with its twin:
# warned at load. An in-focus aperture without aberrations scores ~0.985 (smoothing its phase
# jumps leaves it almost real); the default defocused probe 0.29.
TWIN_SYMMETRY_WARN = 0.95

PHYSICS_PROBE_NOTE = (
    "the physics model uses the normalised simulation probe; the original handed the network the "
    "smoothed un-normalised probe / 4 (a global factor the generator absorbs into the amplitude)"
)


@dataclass(frozen=True, eq=False)
class SimulationProbe:
    """The probe used by simulation and physics, with a JSON-serialisable record of its making."""

    array: np.ndarray  # complex64 (N, N)
    meta: dict


def centre_distance(n: int) -> np.ndarray:
    """Distance of every pixel of an n x n grid from the array centre (n - 1) / 2."""
    axis = np.arange(n) - (n - 1) / 2
    return np.hypot(axis[:, None], axis[None, :])


def ideal_disk_probe(n: int) -> np.ndarray:
    """Real n x n disk with a Gaussian-softened edge, strictly positive everywhere (float64)."""
    std = n / (DISK_WIDTH * math.pi**2)
    axis = np.arange(n) - (n - 1) / 2
    profile = np.exp(-0.5 * (axis / std) ** 2)
    profile /= profile.max()
    disk = (np.outer(profile, profile) > DISK_THRESHOLD).astype(np.float64)
    from scipy.ndimage import gaussian_filter  # lazy: recipe validation never needs SciPy

    return gaussian_filter(disk, DISK_EDGE_SIGMA) + DISK_FLOOR


def beam_spread_px(n: int, radius: float, defocus: float, astigmatism: float, coma: float) -> float:
    """Geometric radius (px) the pupil phase spreads the beam over, for the range check.

    A pupil phase 2 pi w(rho) moves the ray through pupil radius rho by N / (2 pi) times its
    gradient in frequency pixels: 2 N W / R at the edge for a defocus of W waves. Astigmatism
    adds at most the same per wave, coma (3 rho^3 - 2 rho) up to 7/2 as much (its gradient is 7 at
    the edge against defocus's 2). The sum is an upper bound: the default probe's rms radius is
    ~10 px where this says 29.
    """
    return 2 * n * (abs(defocus) + abs(astigmatism) + 3.5 * abs(coma)) / radius


def defocused_aperture_probe(
    n: int, aperture: str, radius: float, defocus: float, astigmatism: float, coma: float
) -> np.ndarray:
    """Complex n x n probe of a focusing optic seen out of focus (complex128).

    The optic's pupil, a circle or a square (the aperture of crossed Kirkpatrick-Baez mirrors) of
    ``radius`` frequency pixels with a softened edge, carries the phase
    2 pi [defocus rho^2 + astigmatism rho^2 cos 2theta + coma (3 rho^3 - 2 rho) cos theta]
    (rho = |k| / radius, each coefficient in waves at the pupil edge), and the probe is its
    inverse Fourier transform, centred on (n - 1) / 2 like the ideal disk. Defocus is Fresnel
    propagation: a quadratic phase in the pupil. Any defocus makes the probe complex, so
    conj(P) != P and the twin of a patch no longer explains its diffraction; coma also makes
    |P| asymmetric.
    """
    k = np.arange(n) - n // 2  # frequency pixels, zero frequency at index n // 2
    ky, kx = np.meshgrid(k, k, indexing="ij")
    rho = np.hypot(kx, ky) / radius
    theta = np.arctan2(ky, kx)
    if aperture == "square":
        inside = (np.abs(kx) <= radius) & (np.abs(ky) <= radius)
    else:
        inside = rho <= 1
    from scipy.ndimage import gaussian_filter  # lazy: recipe validation never needs SciPy

    pupil = gaussian_filter(inside.astype(np.float64), PUPIL_EDGE_SIGMA)
    waves = (
        defocus * rho**2
        + astigmatism * rho**2 * np.cos(2 * theta)
        + coma * (3 * rho**3 - 2 * rho) * np.cos(theta)
    )
    pupil = pupil * np.exp(2j * np.pi * waves)
    # Inverse DFT onto pixel coordinates centred on (n - 1) / 2, written as two small matrix
    # products so the centre can sit between pixels (an FFT would put it on pixel n // 2).
    x = np.arange(n) - (n - 1) / 2
    kernel = np.exp(2j * np.pi * np.outer(x, k) / n) / n
    return kernel @ pupil @ kernel.T


def twin_symmetry(probe: np.ndarray) -> float:
    """How far a probe allows the twin ambiguity: max_s |sum_r P(r) P(s - r)| / sum_r |P(r)|^2.

    The twin conj(O(s - r)) of an object patch O gives the same diffraction amplitude as O exactly
    when P(r) = c conj(P(s - r)) for a unit c and some shift s (a real, centrosymmetric probe is
    the common case); by Cauchy-Schwarz that is when this number is 1. Below 1 the probe breaks
    the ambiguity, the more the lower.
    """
    p = np.asarray(probe, dtype=np.complex128)
    folded = np.fft.ifft2(np.fft.fft2(p) ** 2) * p.size  # circular sum_r P(r) P(s - r)
    return float(np.abs(folded).max() / np.sum(np.abs(p) ** 2) / p.size)


def probe_path(spec: str) -> Path:
    """The probe file named by the ``probe`` knob, checked to exist and to have a known suffix."""
    path = Path(spec).expanduser()
    where = f"probe = {spec!r}"
    if path.suffix not in PROBE_FILE_SUFFIXES:
        raise ConfigError(
            f"{where}: unknown probe source; "
            f"allowed: {DEFOCUSED_APERTURE!r}, {IDEAL_DISK!r} or a path ending in .npy or .npz"
        )
    if not path.is_file():
        raise ConfigError(
            f"{where}: no such file; allowed: {DEFOCUSED_APERTURE!r}, {IDEAL_DISK!r} or an "
            f"existing .npy/.npz file"
        )
    return path


def probe_file_digest(path: Path) -> str:
    """sha256 of the probe file's bytes: the file's identity in the dataset cache key."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"probe = {str(path)!r}: cannot read the probe file ({exc})") from exc


def load_probe(path: Path, n: int) -> np.ndarray:
    """Read a complex n x n probe from .npy or .npz; refuse anything that needs guessing.

    A .npz must hold exactly one array, or one named ``probe`` or ``probeGuess``. Real arrays are
    refused rather than promoted: a real file is more likely the amplitude of a probe than a probe.
    """
    where = f"probe = {str(path)!r}"
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                array = _pick_npz_array(npz, where)
        else:
            array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{where}: unreadable probe file ({exc})") from exc
    if array.shape != (n, n):
        raise ConfigError(
            f"{where}: probe shape {array.shape}; allowed: a ({n}, {n}) array to match N = {n}"
        )
    if array.dtype not in (np.complex64, np.complex128):
        raise ConfigError(f"{where}: probe dtype {array.dtype}; allowed: complex64 or complex128")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{where}: probe holds NaN or infinite values; allowed: finite values")
    if not np.any(array):
        raise ConfigError(f"{where}: probe is zero everywhere; allowed: a non-zero illumination")
    return array.astype(np.complex64)


def _pick_npz_array(npz, where: str) -> np.ndarray:
    if len(npz.files) == 1:
        return npz[npz.files[0]]
    named = [key for key in NPZ_PROBE_KEYS if key in npz.files]
    if len(named) == 1:
        return npz[named[0]]
    raise ConfigError(
        f"{where}: .npz holds arrays {sorted(npz.files)}; allowed: a single array, or exactly one "
        f"named {' or '.join(NPZ_PROBE_KEYS)}"
    )


def smooth_probe(probe: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth amplitude and unwrapped phase separately; sigma 0 leaves the probe as is.

    Smoothing the complex field directly would average phasors and darken the probe wherever the
    phase winds; smoothing the wrapped phase would smear its 2 pi jumps into false ramps.
    """
    probe = probe.astype(np.complex128)
    if sigma == 0:
        return probe
    # Lazy: loading arms.toml (and the dashboard's start-up) validates probes without smoothing.
    from scipy.ndimage import gaussian_filter
    from skimage.restoration import unwrap_phase

    amplitude = gaussian_filter(np.abs(probe), sigma)
    phase = gaussian_filter(unwrap_phase(np.angle(probe), rng=0), sigma)
    return amplitude * np.exp(1j * phase)


def mask_probe(probe: np.ndarray, diameter: float) -> np.ndarray:
    """Zero the probe outside a centred disk of the given diameter (px); 0 disables the mask."""
    if diameter == 0:
        return probe
    return probe * (centre_distance(probe.shape[0]) < diameter / 2)


def normalise_probe(probe: np.ndarray, probe_scale: float) -> tuple[np.ndarray, float]:
    """Divide by probe_scale * mean(|mask * P|), mask radius N/4; return (probe, divisor).

    Afterwards the masked |probe| averages 1 / probe_scale over all N^2 pixels, whatever the source,
    so ``nphotons`` and the object scale mean the same thing for every probe.
    """
    n = probe.shape[0]
    mask = centre_distance(n) < n / 4
    divisor = probe_scale * float(np.mean(np.abs(probe * mask)))
    if not divisor > 0:
        raise ConfigError(
            f"probe: the probe is zero within radius N/4 = {n / 4:g} px of the centre, so it "
            f"cannot be normalised; allowed: a probe that illuminates the centre of the patch"
        )
    return probe / divisor, divisor


def build_probe(cfg: DataConfig) -> SimulationProbe:
    """The simulation (and physics) probe described by a DataConfig, with its provenance."""
    n = cfg.N
    if cfg.probe == IDEAL_DISK:
        raw = ideal_disk_probe(n).astype(np.complex128)
        source = {"kind": IDEAL_DISK, "disk_width": DISK_WIDTH, "edge_sigma": DISK_EDGE_SIGMA}
    elif cfg.probe == DEFOCUSED_APERTURE:
        raw = defocused_aperture_probe(
            n,
            cfg.probe_aperture,
            cfg.probe_aperture_radius,
            cfg.probe_defocus,
            cfg.probe_astigmatism,
            cfg.probe_coma,
        )
        source = {
            "kind": DEFOCUSED_APERTURE,
            "aperture": cfg.probe_aperture,
            "radius_freq_px": cfg.probe_aperture_radius,
            "pupil_edge_sigma": PUPIL_EDGE_SIGMA,
            "waves_at_pupil_edge": {
                "defocus": cfg.probe_defocus,
                "astigmatism": cfg.probe_astigmatism,
                "coma": cfg.probe_coma,
            },
            "beam_spread_px": beam_spread_px(
                n,
                cfg.probe_aperture_radius,
                cfg.probe_defocus,
                cfg.probe_astigmatism,
                cfg.probe_coma,
            ),
        }
    else:
        path = probe_path(cfg.probe)
        raw = load_probe(path, n)
        source = {"kind": "file", "path": str(path), "sha256": probe_file_digest(path)}
    shaped = mask_probe(smooth_probe(raw, cfg.probe_smoothing_sigma), cfg.probe_mask_diameter)
    probe, divisor = normalise_probe(shaped, cfg.probe_scale)
    meta = {
        "source": source,
        "smoothing_sigma": cfg.probe_smoothing_sigma,
        "mask_diameter": cfg.probe_mask_diameter,
        "normalisation": "P / (probe_scale * mean(|mask * P|)), mask radius N/4, mean over N^2 px",
        "probe_scale": cfg.probe_scale,
        "normalisation_divisor": divisor,
        "used_by_physics": PHYSICS_PROBE_NOTE,
        "twin_symmetry": twin_symmetry(probe),
    }
    return SimulationProbe(array=probe.astype(np.complex64), meta=meta)
