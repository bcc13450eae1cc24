"""Grid-lines simulation as pure functions: objects, scan geometry, diffraction (docs/science.md,
'The grid-lines dataset').

Every function takes arrays, sizes and an explicit ``numpy.random.Generator`` and returns arrays, so
each step is testable on its own and the whole simulation is reproducible from the data seed.

Conventions:
- Scan order is row-major: within an image the patch at grid row i, column j has index i * P + j and
  origin (i * stride, j * stride); images follow each other. Stitching relies on this order, and
  the scan arithmetic (patch counts, stitching border, GT crop) is ``engine.sim.stitch``'s.
- The far field is computed by ``engine.sim.physics.far_field_amplitude``, the function the physics
  model uses, so simulator and network cannot drift apart (|FFT2| / N, fftshift, no padding).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter
from skimage.draw import line

from engine.errors import DatasetError
from engine.sim.physics import far_field_amplitude
from engine.sim.stitch import count_patches_per_axis

# (sigma, weight) of the three blurs that turn drawn segments into a smooth multi-scale amplitude.
LINE_BLURS = ((1.0, 1.0), (5.0, 2.0), (10.0, 5.0))
# Patches simulated per FFT batch: about 50 MB of complex and float64 temporaries at N = 64.
SIMULATION_CHUNK = 1024


def make_lines_object(size: int, n_lines: int, rng: np.random.Generator) -> np.ndarray:
    """Amplitude of one grid-lines object: blurred random segments, float32 (size, size), >= 0.

    Segments are drawn on a canvas twice the final size and blurred before the central crop, so
    segments enter and leave the crop and the blur has no edge effects inside it.
    """
    canvas_size = 2 * size
    ends = rng.integers(0, canvas_size, size=(n_lines, 4))
    canvas = np.zeros((canvas_size, canvas_size), dtype=np.float64)
    for r0, c0, r1, c1 in ends:
        rows, cols = line(r0, c0, r1, c1)
        canvas[rows, cols] = 1.0
    blurred = sum(weight * gaussian_filter(canvas, sigma) for sigma, weight in LINE_BLURS)
    start = (canvas_size - size) // 2
    return blurred[start : start + size, start : start + size].astype(np.float32)


def object_phase(amplitudes: np.ndarray) -> np.ndarray:
    """phi = pi * tanh((A - max(A) / 2) / (3 * mean(A))), max and mean over the whole split's stack.

    Taking max and mean over all objects of the split (not per image) is the original recipe: the
    images of one split share a single amplitude-to-phase map.
    """
    peak = float(amplitudes.max())
    mean = float(amplitudes.mean())
    if mean == 0:
        raise DatasetError("object amplitude is zero everywhere, so its phase is undefined")
    return (np.pi * np.tanh((amplitudes - peak / 2) / (3 * mean))).astype(np.float32)


def scan_positions(size: int, n: int, stride: int) -> np.ndarray:
    """Patch origins (row, col) of one image in scan order, int64 (P * P, 2)."""
    p = count_patches_per_axis(size, n, stride)
    rows, cols = np.divmod(np.arange(p * p), p)
    return np.stack([rows, cols], axis=1).astype(np.int64) * stride


def _patch_view(images: np.ndarray, n: int, stride: int) -> np.ndarray:
    """Read-only strided view (images, P, P, n, n) of every scan window: no copy."""
    return sliding_window_view(images, (n, n), axis=(1, 2))[:, ::stride, ::stride]


def extract_patches(
    images: np.ndarray, n: int, stride: int, indices: np.ndarray | None = None
) -> np.ndarray:
    """Copy the scan-order patches ``indices`` (all when None) of an image stack, (k, n, n)."""
    view = _patch_view(images, n, stride)
    if indices is None:
        indices = np.arange(view.shape[0] * view.shape[1] * view.shape[2])
    image, row, col = np.unravel_index(indices, view.shape[:3])
    return view[image, row, col]


def _chunks(total: int, chunk: int) -> Iterator[np.ndarray]:
    for start in range(0, total, chunk):
        yield np.arange(start, min(start + chunk, total))


def patch_norm(amplitudes: np.ndarray, n: int, stride: int) -> float:
    """norm_Y_I: mean over the split's patches of each patch's maximum amplitude (docs/science.md,
    'Normalisation')."""
    norm = float(_patch_view(amplitudes, n, stride).max(axis=(-2, -1)).mean())
    if not norm > 0:
        raise DatasetError(
            "every patch of a split has zero amplitude; raise n_lines so segments reach the object"
        )
    return norm


def intensity_scale(
    amplitudes: np.ndarray, probe: np.ndarray, stride: int, nphotons: float
) -> float:
    """s = sqrt(nphotons / mean over patches of sum |Y_I * |P||^2) (docs/science.md,
    'Diffraction and shot noise').

    ``amplitudes`` are the training objects already divided by the training norm_Y_I. By Parseval
    the far field carries the same energy as the exit wave, so nphotons is the mean expected count
    total per training pattern. The test split reuses this scale unchanged.
    """
    n = probe.shape[0]
    weight = np.abs(probe).astype(np.float64) ** 2
    total = count_patches_per_axis(amplitudes.shape[1], n, stride) ** 2 * amplitudes.shape[0]
    energy = 0.0
    for indices in _chunks(total, SIMULATION_CHUNK):
        patches = extract_patches(amplitudes, n, stride, indices).astype(np.float64)
        energy += float(np.einsum("kij,ij->", patches**2, weight))
    return float(np.sqrt(nphotons / (energy / total)))


def noiseless_diffraction(
    amplitude: np.ndarray, phase: np.ndarray, probe: np.ndarray
) -> np.ndarray:
    """Far-field amplitude of (amplitude * exp(i phase)) * probe for a stack of patches, float32."""
    # torch.polar rather than numpy's complex exp: about 4x faster on the CPU, same float32 result.
    obj = torch.polar(
        torch.from_numpy(np.asarray(amplitude, dtype=np.float32)),
        torch.from_numpy(np.asarray(phase, dtype=np.float32)),
    )
    return far_field_amplitude(obj * torch.from_numpy(probe.astype(np.complex64))).numpy()


def shot_noise(
    amplitude: np.ndarray, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson counts of rate (scale * amplitude)^2, returned as sqrt(counts) / scale.

    Returns (noisy normalised amplitude float32, expected and drawn counts per pattern); the two
    totals let the header report the dose that was actually simulated.
    """
    rate = (scale * amplitude.astype(np.float64)) ** 2
    counts = rng.poisson(rate)
    noisy = (np.sqrt(counts) / scale).astype(np.float32)
    return noisy, rate.sum(axis=(-2, -1)), counts.sum(axis=(-2, -1)).astype(np.float64)


def simulate_diffraction(
    amplitudes: np.ndarray,
    phases: np.ndarray,
    probe: np.ndarray,
    stride: int,
    scale: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict]:
    """Noisy normalised diffraction amplitudes of every scan patch, float32 (k, N, N), scan order.

    ``amplitudes`` are the split's objects divided by its norm_Y_I. Returns the patterns and the
    mean expected and drawn photon totals per pattern. Patches are simulated in chunks so the
    complex exit waves of a whole split never sit in memory at once.
    """
    n = probe.shape[0]
    total = count_patches_per_axis(amplitudes.shape[1], n, stride) ** 2 * amplitudes.shape[0]
    diffraction = np.empty((total, n, n), dtype=np.float32)
    expected = drawn = 0.0
    for indices in _chunks(total, SIMULATION_CHUNK):
        clean = noiseless_diffraction(
            extract_patches(amplitudes, n, stride, indices),
            extract_patches(phases, n, stride, indices),
            probe,
        )
        diffraction[indices], chunk_expected, chunk_drawn = shot_noise(clean, scale, rng)
        expected += float(chunk_expected.sum())
        drawn += float(chunk_drawn.sum())
    photons = {"expected": expected / total, "drawn": drawn / total}
    return diffraction, photons
