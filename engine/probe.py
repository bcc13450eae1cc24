"""The illumination: build, load, smooth, mask and normalise the probe (domain.md section 2.4).

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
PROBE_FILE_SUFFIXES = (".npy", ".npz")
# Array names accepted in a multi-array .npz; "probeGuess" is the key of the original's data files.
NPZ_PROBE_KEYS = ("probe", "probeGuess")

# Ideal disk (domain.md 2.4): a 1-D Gaussian low-pass profile of std N / (width * pi^2), with the
# original's `default_probe_scale` width 0.7, taken as an outer product (a separable radial
# Gaussian) and thresholded at half its peak: a disk of radius std * sqrt(2 ln 2), i.e. 10.9 px
# at N = 64.
DISK_WIDTH = 0.7
DISK_THRESHOLD = 0.5
DISK_EDGE_SIGMA = 1.0
# Added after the edge blur so the probe is never exactly zero: a zero probe pixel would make the
# object there unobservable and its phase undefined.
DISK_FLOOR = 1e-9

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


def probe_path(spec: str) -> Path:
    """The probe file named by the ``probe`` knob, checked to exist and to have a known suffix."""
    path = Path(spec).expanduser()
    where = f"probe = {spec!r}"
    if path.suffix not in PROBE_FILE_SUFFIXES:
        raise ConfigError(
            f"{where}: unknown probe source; "
            f"allowed: {IDEAL_DISK!r} or a path ending in .npy or .npz"
        )
    if not path.is_file():
        raise ConfigError(
            f"{where}: no such file; allowed: {IDEAL_DISK!r} or an existing .npy/.npz file"
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
        raise ConfigError(
            f"{where}: probe dtype {array.dtype}; allowed: complex64 or complex128"
        )
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
    }
    return SimulationProbe(array=probe.astype(np.complex64), meta=meta)
