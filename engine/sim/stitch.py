"""Stitching predicted patches back into an image, and the crop arithmetic that lines it up with GT.

Convention (docs/science.md, 'Scan grid and patch counts' and 'Stitching'), for gridsize 1 and
"valid" patch extraction:

- patches are N x N windows whose origins sit at ``stride * k`` along each axis, so an object of
  side ``object_size`` yields ``(object_size - N) // stride + 1`` patches per axis;
- stitching keeps the central ``stride x stride`` pixels of every patch (a border of
  ``(N - stride) // 2`` px is dropped on each side) and tiles them, giving a
  ``patches_per_axis * stride`` square image;
- the matching ground-truth crop drops the ``(object_size - N) mod stride`` trailing pixels that no
  patch reaches, then removes the same ``(N - stride) // 2`` border from every side. For N = 64,
  stride 10 and a 392-px object: 392 -> 384 -> 330 = 33 * 10.

The two halves are tested against each other: patches cut from a known object and stitched equal
that object's ground-truth crop exactly. ``N - stride`` must be even, otherwise the kept centre of a
patch would sit half a pixel off the patch centre and the two crops could not line up.
"""

from __future__ import annotations

import numpy as np


def stitch_border(N: int, stride: int) -> int:
    """Pixels dropped from each side of a patch (27 for N = 64, stride 10)."""
    if not 0 < stride <= N:
        raise ValueError(f"stride must be in [1, N={N}], got {stride}")
    if (N - stride) % 2:
        raise ValueError(
            f"N - stride must be even so the kept centre lines up with the patch centre; "
            f"got N={N}, stride={stride}"
        )
    return (N - stride) // 2


def count_patches_per_axis(object_size: int, N: int, stride: int) -> int:
    """Patches per axis from valid extraction: floor((object_size - N) / stride) + 1."""
    if object_size < N:
        raise ValueError(f"object of {object_size} px is smaller than a patch of {N} px")
    return (object_size - N) // stride + 1


def stitched_size(patches_per_axis: int, stride: int) -> int:
    """Side of the stitched image: the kept stride x stride centres tile without overlap."""
    return patches_per_axis * stride


def gt_crop_bounds(object_size: int, N: int, stride: int) -> tuple[int, int]:
    """[start, stop) along each axis of the object that the stitched reconstruction covers.

    Drops the (object_size - N) mod stride trailing px that no patch origin reaches, then the
    (N - stride) // 2 border on every side. stop - start == stitched_size(...) by construction.
    """
    border = stitch_border(N, stride)
    P = count_patches_per_axis(object_size, N, stride)
    covered = N + (P - 1) * stride  # = object_size - (object_size - N) mod stride
    return border, covered - border


def stitch_patches(patches: np.ndarray, patches_per_axis: int, stride: int, N: int) -> np.ndarray:
    """Tile the central stride x stride of each patch of the FIRST image into a square image.

    ``patches`` is (n_images * P * P, N, N) or (P * P, N, N), in scan order (image-major, then
    row-major: patch ``i * P + j`` has its origin at row ``i * stride``, column ``j * stride``).
    Only the first image is stitched because only it is evaluated (docs/science.md, 'Stitching').
    ``N`` is the patch size the caller expects; it is checked against the array so a transposed or
    channel-last input fails here rather than producing a scrambled image.
    """
    patches = np.asarray(patches)
    P = patches_per_axis
    if patches.ndim != 3 or patches.shape[1:] != (N, N):
        raise ValueError(f"expected patches of shape (n, {N}, {N}), got {patches.shape}")
    if patches.shape[0] < P * P or patches.shape[0] % (P * P):
        raise ValueError(f"{patches.shape[0]} patches is not a whole number of {P}x{P} scan grids")
    border = stitch_border(N, stride)
    centres = patches[: P * P, border : border + stride, border : border + stride]
    # (P, P, s, s) -> (P, s, P, s): patch row, row in patch, patch column, column in patch.
    grid = centres.reshape(P, P, stride, stride).transpose(0, 2, 1, 3)
    return grid.reshape(P * stride, P * stride)


def check_scan_order(positions: np.ndarray, patches_per_axis: int, stride: int) -> None:
    """Raise ValueError unless the first image's (row, col) origins are row-major at ``stride``.

    Stitching trusts the order of the patches, not their positions; a transposed or shuffled split
    would otherwise stitch into a plausible-looking but scrambled image.
    """
    P = patches_per_axis
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 2 or len(positions) < P * P:
        raise ValueError(f"expected at least {P * P} (row, col) positions, got {positions.shape}")
    rows, cols = np.divmod(np.arange(P * P), P)
    expected = np.stack([rows, cols], axis=1) * stride
    if not np.array_equal(positions[: P * P] - positions[0], expected):
        raise ValueError(
            f"patch positions are not in row-major scan order at stride {stride}; "
            "stitching would scramble the image"
        )


def trim_border(image: np.ndarray, trim: int) -> np.ndarray:
    """Drop ``trim`` px from every side (the evaluation trims 2 px: 330 -> 326)."""
    if trim < 0 or 2 * trim >= min(image.shape[-2:]):
        raise ValueError(f"cannot trim {trim} px from every side of a {image.shape} image")
    if trim == 0:
        return image
    return image[..., trim:-trim, trim:-trim]
