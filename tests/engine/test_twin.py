"""The twin ambiguity (engine/scoring/twin.py): the twin itself, its stitched image, the exact far-field
equality under the ideal-disk probe, and the per-patch branch decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.config import DataConfig
from engine.scoring.twin import BRANCH_MARGIN, classify_branches, twin_image, twin_patches
from engine.sim.physics import far_field_amplitude
from engine.sim.probe import build_probe
from engine.sim.simulate import make_lines_object, object_phase
from engine.sim.stitch import count_patches_per_axis, gt_crop_bounds, stitch_patches
from tests.engine.test_stitch import cut_patches


def random_complex(shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * np.exp(1j * rng.uniform(-3, 3, shape))).astype(np.complex64)


def grid_lines_object(size: int, seed: int = 0) -> np.ndarray:
    """A simulated grid-lines object with its amplitude-derived phase (set_phi)."""
    amplitude = make_lines_object(size, 30, np.random.default_rng(seed))
    return (amplitude * np.exp(1j * object_phase(amplitude[None])[0])).astype(np.complex64)


def ideal_disk(N: int) -> np.ndarray:
    return build_probe(DataConfig(N=N, probe="ideal_disk")).array


# -- the twin ---------------------------------------------------------------------------------


def test_the_twin_of_the_twin_is_the_patch_itself():
    patches = random_complex((3, 5, 8, 8))
    twin = twin_patches(patches)
    assert not np.array_equal(twin, patches)
    np.testing.assert_array_equal(twin_patches(twin), patches)
    # flipped through the centre (N - 1) / 2 and conjugated: pixel (r, c) comes from (7-r, 7-c)
    assert twin[1, 2, 0, 3] == np.conj(patches[1, 2, 7, 4])


def test_twin_of_a_non_square_patch_is_refused():
    with pytest.raises(ValueError, match="square"):
        twin_patches(np.zeros((2, 8, 6)))


@pytest.mark.parametrize("size, N, stride", [(392, 64, 10), (50, 16, 4), (47, 16, 6), (40, 8, 2)])
def test_twin_image_is_the_stitched_image_of_twin_patches(size, N, stride):
    obj = random_complex((size, size), seed=size)
    P = count_patches_per_axis(size, N, stride)
    start, stop = gt_crop_bounds(size, N, stride)
    gt = obj[start:stop, start:stop]
    stitched_twins = stitch_patches(twin_patches(cut_patches(obj, N, stride)), P, stride, N)
    np.testing.assert_array_equal(twin_image(gt, stride), stitched_twins)
    assert not np.array_equal(stitched_twins, gt)


def test_twin_image_refuses_an_image_that_is_not_whole_blocks():
    with pytest.raises(ValueError, match="untrimmed"):
        twin_image(np.zeros((36, 36), np.complex64), 10)  # a trimmed 40 px image


def test_ideal_disk_probe_cannot_tell_a_grid_lines_patch_from_its_twin():
    N = 64
    probe = ideal_disk(N)
    assert np.allclose(probe.imag, 0) and np.array_equal(probe, probe[::-1, ::-1])
    patch = grid_lines_object(128)[20 : 20 + N, 30 : 30 + N]
    assert not np.allclose(np.abs(twin_patches(patch)), np.abs(patch))  # a different object

    def diffraction(obj: np.ndarray, illumination: np.ndarray) -> np.ndarray:
        return far_field_amplitude(torch.from_numpy(obj * illumination)).numpy()

    same = diffraction(patch, probe)
    np.testing.assert_allclose(
        diffraction(twin_patches(patch), probe), same, rtol=0, atol=1e-5 * same.max()
    )
    # The equality is the probe's symmetry, not the FFT's: an off-centre probe breaks it.
    shifted = np.roll(probe, 3, axis=1)
    other = diffraction(patch, shifted)
    assert np.abs(diffraction(twin_patches(patch), shifted) - other).max() > 1e-2 * other.max()


# -- branch decision ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """Grid-lines patches whose content is not its own twin (every one decidable)."""
    patches = cut_patches(grid_lines_object(96, seed=4), 32, 8)
    twin_distance = np.abs(np.abs(patches) - np.abs(twin_patches(patches))).mean(axis=(1, 2))
    return patches[twin_distance > 0.2 * twin_distance.max()][:16]


@pytest.mark.parametrize("weighted", [True, False])
def test_truth_is_fraction_0_and_the_twin_fraction_1(truth, weighted):
    probe = ideal_disk(32) if weighted else None
    assert len(truth) == 16
    on_truth = classify_branches(truth, truth, probe)
    assert on_truth.fraction == 0.0 and on_truth.undecidable_fraction == 0.0
    assert on_truth.mean_d_true == 0.0 and on_truth.mean_d_twin > 0
    on_twin = classify_branches(twin_patches(truth), truth, probe)
    assert on_twin.fraction == 1.0 and on_twin.twin.all()
    assert on_twin.mean_d_twin == pytest.approx(0.0, abs=1e-7)
    assert on_twin.weighted is weighted
    decision = on_twin.summary()["decision"]
    assert ("|P|^2" in decision, "uniformly weighted" in decision) == (weighted, not weighted)


def test_half_twin_half_truth_is_one_half_and_a_global_scale_changes_nothing(truth):
    pred = truth.copy()
    pred[::2] = twin_patches(truth[::2])
    branches = classify_branches(3.0 * pred, truth, ideal_disk(32))
    assert branches.fraction == 0.5
    np.testing.assert_array_equal(branches.twin, np.arange(16) % 2 == 0)
    assert branches.scale == pytest.approx(1 / 3)


def test_self_twin_patches_are_undecidable_and_left_out_of_the_fraction(truth):
    symmetric = (truth[0] + twin_patches(truth[0])) / 2  # its own twin
    patches = np.concatenate([truth[:3], symmetric[None]])
    pred = np.concatenate([twin_patches(truth[:3]), symmetric[None]])
    branches = classify_branches(pred, patches, ideal_disk(32))
    np.testing.assert_array_equal(branches.decidable, [True, True, True, False])
    assert branches.fraction == 1.0 and branches.undecidable_fraction == 0.25
    assert branches.summary()["decidable_patches"] == 3


def test_a_constant_output_decides_nothing(truth):
    branches = classify_branches(np.ones_like(truth), truth, ideal_disk(32))
    np.testing.assert_allclose(branches.d_true, branches.d_twin, rtol=1e-12)
    assert not branches.decidable.any()
    assert math.isnan(branches.fraction) and branches.undecidable_fraction == 1.0


def test_a_nan_patch_is_undecidable_and_does_not_spoil_the_others(truth):
    pred = 2.0 * twin_patches(truth)
    pred[0, 5, 5] = np.nan
    branches = classify_branches(pred, truth)
    assert branches.scale == pytest.approx(0.5)  # from the finite patches
    assert math.isnan(branches.d_true[0]) and not branches.decidable[0]
    assert branches.decidable[1:].all() and branches.fraction == 1.0
    assert branches.undecidable_fraction == 1 / 16
    assert all(math.isfinite(v) for v in (branches.mean_d_true, branches.mean_d_twin))
    everything_nan = classify_branches(np.full_like(truth, np.nan), truth)
    assert math.isnan(everything_nan.fraction) and everything_nan.undecidable_fraction == 1.0


def test_pixels_outside_the_probe_do_not_vote(truth):
    """Twin where the probe shines, the truth elsewhere (where the loss never looked): only the
    probe weights see the twin branch that the network actually took."""
    N = 32
    axis = np.arange(N) - (N - 1) / 2
    lit = np.hypot(axis[:, None], axis[None, :]) < 6
    probe = np.where(lit, 1.0, 0.0).astype(np.complex64)
    pred = np.where(lit, twin_patches(truth), truth)
    assert classify_branches(pred, truth, probe).fraction == 1.0
    assert classify_branches(pred, truth, None).fraction == 0.0


def test_a_patch_must_be_near_a_branch_to_be_on_it(truth):
    """On the segment from truth to twin, a prediction is decided only in the quarter nearest
    either end (closer by half the branches' distance); in between it is undecidable."""
    probe = ideal_disk(32)
    amp, twin_amp = np.abs(truth), np.abs(twin_patches(truth))
    assert BRANCH_MARGIN == 0.5
    for t, expected in (
        (0.0, 0.0),
        (0.2, 0.0),
        (0.3, None),
        (0.5, None),
        (0.7, None),
        (0.8, 1.0),
        (1.0, 1.0),
    ):
        branches = classify_branches((1 - t) * amp + t * twin_amp, truth, probe)
        if expected is None:
            assert not branches.decidable.any(), t
        else:
            assert branches.decidable.all() and branches.fraction == expected, t


def test_an_undertrained_prediction_is_not_a_coin_flip(truth):
    """Noise near neither branch must not be split into 'twin' and 'truth' patches: that would
    name an undertrained run a mixed twin."""
    rng = np.random.default_rng(5)
    noise = rng.random(truth.shape).astype(np.float32)
    branches = classify_branches(noise, truth, ideal_disk(32))
    assert branches.undecidable_fraction > 0.9


def test_mismatched_shapes_and_a_dark_probe_are_refused(truth):
    with pytest.raises(ValueError, match="one shape"):
        classify_branches(truth[:2], truth[:3])
    with pytest.raises(ValueError, match="probe"):
        classify_branches(truth, truth, np.ones((8, 8), np.complex64))
    with pytest.raises(ValueError, match="zero everywhere"):
        classify_branches(truth, truth, np.zeros((32, 32), np.complex64))
