import numpy as np
import pytest

from engine.sim.stitch import (
    check_scan_order,
    count_patches_per_axis,
    gt_crop_bounds,
    stitch_border,
    stitch_patches,
    stitched_size,
    trim_border,
)


def cut_patches(obj: np.ndarray, N: int, stride: int) -> np.ndarray:
    """Valid extraction in scan order (row-major), as the dataset does it."""
    P = count_patches_per_axis(obj.shape[-1], N, stride)
    return np.stack(
        [
            obj[i * stride : i * stride + N, j * stride : j * stride + N]
            for i in range(P)
            for j in range(P)
        ]
    )


def make_object(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) + 1j * rng.random((size, size))).astype(np.complex64)


def test_study_geometry_gives_330_px_for_n64_and_270_px_for_n128():
    assert count_patches_per_axis(392, 64, 10) == 33
    assert count_patches_per_axis(392, 64, 4) == 83
    assert gt_crop_bounds(392, 64, 10) == (27, 357)
    assert stitched_size(33, 10) == 330
    start, stop = gt_crop_bounds(392, 128, 10)
    assert stop - start == stitched_size(count_patches_per_axis(392, 128, 10), 10) == 270


@pytest.mark.parametrize("size, N, stride", [(392, 64, 10), (50, 16, 4), (47, 16, 6), (40, 8, 2)])
def test_stitched_patches_reproduce_the_gt_crop_exactly(size, N, stride):
    obj = make_object(size)
    P = count_patches_per_axis(size, N, stride)
    stitched = stitch_patches(cut_patches(obj, N, stride), P, stride, N)
    start, stop = gt_crop_bounds(size, N, stride)
    assert stitched.shape == (stitched_size(P, stride),) * 2
    np.testing.assert_array_equal(stitched, obj[start:stop, start:stop])


def test_only_the_first_image_is_stitched():
    first, second = make_object(50, seed=1), make_object(50, seed=2)
    patches = np.concatenate([cut_patches(first, 16, 4), cut_patches(second, 16, 4)])
    start, stop = gt_crop_bounds(50, 16, 4)
    P = count_patches_per_axis(50, 16, 4)
    np.testing.assert_array_equal(stitch_patches(patches, P, 4, 16), first[start:stop, start:stop])


def test_odd_border_is_rejected():
    with pytest.raises(ValueError, match="even"):
        stitch_border(64, 9)
    with pytest.raises(ValueError, match="even"):
        stitch_patches(np.zeros((4, 64, 64)), 2, 9, 64)


def test_patch_count_that_is_not_whole_grids_is_rejected():
    with pytest.raises(ValueError, match="scan grids"):
        stitch_patches(np.zeros((10, 16, 16)), 3, 4, 16)


def test_patch_size_disagreeing_with_the_array_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        stitch_patches(np.zeros((9, 16, 16, 1)), 3, 4, 16)


def test_object_smaller_than_a_patch_is_rejected():
    with pytest.raises(ValueError, match="smaller"):
        gt_crop_bounds(10, 16, 4)


def test_row_major_positions_pass_the_scan_order_check_and_transposed_ones_fail():
    rows, cols = np.divmod(np.arange(9), 3)
    positions = np.stack([rows, cols], axis=1) * 4 + 100  # any common origin
    check_scan_order(np.concatenate([positions, positions]), 3, 4)
    with pytest.raises(ValueError, match="scan order"):
        check_scan_order(positions[:, ::-1], 3, 4)
    with pytest.raises(ValueError, match="scan order"):
        check_scan_order(positions, 3, 5)


def test_trim_drops_the_same_margin_on_every_side():
    image = np.arange(100).reshape(10, 10)
    np.testing.assert_array_equal(trim_border(image, 2), image[2:8, 2:8])
    np.testing.assert_array_equal(trim_border(image, 0), image)
    with pytest.raises(ValueError):
        trim_border(image, 5)
