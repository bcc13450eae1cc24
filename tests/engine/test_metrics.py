import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from engine.scoring.metrics import (
    FRC50,
    FRC_ONE_SEVENTH,
    PHASE_PSNR_RANGE,
    align_amplitude,
    compute_metrics,
    frc_curve,
    frc_threshold_crossing,
    mae,
    ms_ssim,
    mse,
    psnr,
    remove_phase_plane,
    ssim,
    ssim_components,
)

PAIRED_KEYS = ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50", "frc1over7")
SIZE = 130  # 126 px after the 2-px trim: enough for 5 MS-SSIM levels (needs 112)


def lines_object(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A small complex object with structure in both amplitude and phase."""
    rng = np.random.default_rng(seed)
    amplitude = np.full((size, size), 0.2)
    for _ in range(12):
        if rng.random() < 0.5:
            amplitude[rng.integers(size), :] += 0.5
        else:
            amplitude[:, rng.integers(size)] += 0.5
    rows, cols = np.indices((size, size))
    phase = 0.8 * np.sin(cols / 9.0) * np.cos(rows / 13.0) + 0.3 * (amplitude > 0.5)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def test_perfect_reconstruction_scores_ssim_one_and_zero_error_for_amplitude_and_phase():
    gt = lines_object()
    metrics = compute_metrics(gt.copy(), gt)
    assert not metrics["phase_vacuous"]
    for channel in (0, 1):
        assert metrics["mae"][channel] == pytest.approx(0.0, abs=1e-12)
        assert metrics["mse"][channel] == pytest.approx(0.0, abs=1e-20)
        assert metrics["ssim"][channel] == pytest.approx(1.0, abs=1e-9)
        assert metrics["ms_ssim"][channel] == pytest.approx(1.0, abs=1e-9)
        assert metrics["psnr"][channel] > 200
        assert math.isnan(metrics["frc50"][channel])  # never drops below 0.5


def test_metrics_dict_has_amplitude_phase_pairs_of_plain_floats():
    gt = lines_object()
    metrics = compute_metrics(lines_object(seed=1), gt)
    for key in PAIRED_KEYS:
        assert len(metrics[key]) == 2
        assert all(type(value) is float for value in metrics[key])
    amp_curve, phase_curve = metrics["frc"]
    assert len(amp_curve) == len(phase_curve) == (SIZE - 4) // 2 + 1
    assert all(type(value) is float for value in amp_curve + phase_curve)
    assert metrics["psnr_data_range"][1] == PHASE_PSNR_RANGE
    assert metrics["image_size"] == [SIZE - 4, SIZE - 4]
    assert metrics["ssim_flavour"] == "skimage 7x7 uniform"


def test_constant_reconstruction_gives_low_amplitude_ssim():
    gt = lines_object()
    metrics = compute_metrics(np.full_like(gt, 3.0), gt)
    # Deceptively moderate, not ~0: SSIM's local windows on the flat background match a flat
    # image (docs/science.md, 'Reference levels'). Low next to 1, and the FRC exposes it plainly.
    assert metrics["ssim"][0] < 0.5
    assert metrics["frc50"][0] < 2  # a flat image recovers nothing beyond the mean


def test_global_amplitude_scale_does_not_change_amplitude_metrics():
    gt = lines_object()
    pred = lines_object(seed=1)
    plain = compute_metrics(pred, gt)
    scaled = compute_metrics(pred * np.float32(7.5), gt)
    for key in PAIRED_KEYS:
        assert scaled[key][0] == pytest.approx(plain[key][0], rel=1e-6, nan_ok=True)


def test_phase_offset_and_ramp_do_not_change_phase_metrics():
    gt = lines_object()
    rows, cols = np.indices(gt.shape)
    ramped = gt * np.exp(1j * (0.4 + 0.002 * cols - 0.003 * rows)).astype(np.complex64)
    metrics = compute_metrics(ramped, gt)
    assert metrics["mae"][1] == pytest.approx(0.0, abs=1e-5)
    assert metrics["ssim"][1] == pytest.approx(1.0, abs=1e-6)


def test_constant_gt_phase_marks_phase_metrics_vacuous_with_nan_frc():
    gt = np.abs(lines_object()).astype(np.complex64)
    metrics = compute_metrics(np.abs(lines_object(seed=1)).astype(np.complex64), gt)
    assert metrics["phase_vacuous"] is True
    assert math.isnan(metrics["frc50"][1]) and math.isnan(metrics["frc1over7"][1])
    assert all(math.isnan(value) for value in metrics["frc"][1])
    assert math.isfinite(metrics["ssim"][1])  # kept, but flagged


def test_phase_vacuous_flag_from_the_dataset_is_honoured():
    gt = lines_object()
    assert compute_metrics(gt, gt, phase_vacuous=True)["phase_vacuous"] is True


def test_non_finite_prediction_yields_nan_metrics_instead_of_raising():
    gt = lines_object()
    pred = gt.copy()
    pred[10, 10] = np.nan
    metrics = compute_metrics(pred, gt)
    assert math.isnan(metrics["mae"][0]) and math.isnan(metrics["ssim"][0])


def test_psnr_with_explicit_range_matches_the_formula():
    rng = np.random.default_rng(0)
    gt = rng.random((20, 20))
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    expected = 10 * np.log10(4.0**2 / np.mean((pred - gt) ** 2))
    assert psnr(pred, gt, data_range=4.0) == pytest.approx(expected, rel=1e-12)
    assert psnr(gt, gt, data_range=1.0) == math.inf
    with pytest.raises(ValueError):
        psnr(pred, gt, data_range=0.0)


def test_mae_and_mse_match_their_definitions():
    pred, gt = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 2.0], [5.0, 4.0]])
    assert mae(pred, gt) == pytest.approx(0.75)
    assert mse(pred, gt) == pytest.approx(1.25)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        mae(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_terms_match_scikit_image():
    rng = np.random.default_rng(1)
    gt = rng.random((40, 50))
    pred = gt + 0.2 * rng.standard_normal(gt.shape)
    reference = structural_similarity(gt, pred, data_range=2.0)
    assert ssim(pred, gt, data_range=2.0) == pytest.approx(reference, abs=1e-12)
    assert ssim_components(pred, gt, data_range=2.0)[0] == pytest.approx(reference, abs=1e-12)


def test_ms_ssim_is_one_for_identical_images_and_lower_for_noisy_ones():
    gt = np.abs(lines_object()).astype(np.float64)
    noisy = gt + 0.3 * np.random.default_rng(0).standard_normal(gt.shape)
    assert ms_ssim(gt, gt, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim(noisy, gt, data_range=1.0) < 0.9


def test_ms_ssim_refuses_images_too_small_for_five_levels():
    with pytest.raises(ValueError, match="112"):
        ms_ssim(np.ones((100, 100)), np.ones((100, 100)), data_range=1.0)


def test_frc_of_identical_images_is_one_everywhere_and_never_crosses():
    image = np.abs(lines_object()).astype(np.float64)
    curve = frc_curve(image, image)
    assert curve.shape == (SIZE // 2 + 1,)
    np.testing.assert_allclose(curve, 1.0, atol=1e-12)
    assert math.isnan(frc_threshold_crossing(curve, FRC50))
    assert math.isnan(frc_threshold_crossing(curve, FRC_ONE_SEVENTH))


def test_frc_of_independent_noise_crosses_early():
    rng = np.random.default_rng(3)
    a, b = rng.random((128, 128)), rng.random((128, 128))
    assert frc_threshold_crossing(frc_curve(a, b), FRC50) < 3
    assert frc_threshold_crossing(frc_curve(a, b), FRC_ONE_SEVENTH) < 3


def test_frc_of_constant_gt_is_nan_beyond_ring_zero_and_has_no_crossing():
    pred = np.random.default_rng(0).random((32, 32))
    curve = frc_curve(pred, np.ones((32, 32)))
    assert np.all(np.isnan(curve[1:]))
    assert math.isnan(frc_threshold_crossing(curve, FRC50))


def test_frc_centre_crops_non_square_images():
    rng = np.random.default_rng(4)
    wide = rng.random((32, 40))
    np.testing.assert_allclose(frc_curve(wide, wide), frc_curve(wide[:, 4:36], wide[:, 4:36]))
    assert frc_curve(wide, wide).shape == (17,)


def test_frc_crossing_is_linearly_interpolated():
    assert frc_threshold_crossing([1.0, 0.9, 0.7, 0.3, 0.1], 0.5) == pytest.approx(2.5)
    assert frc_threshold_crossing([1.0, 0.6, 0.1], 0.5) == pytest.approx(1.2)
    assert frc_threshold_crossing([0.2, 0.9], 0.5) == 0.0
    assert frc_threshold_crossing([np.nan, 0.2], 0.5) == 1.0


def test_remove_phase_plane_removes_an_exact_plane():
    rows, cols = np.indices((60, 80))
    plane = 0.7 + 0.013 * cols - 0.021 * rows
    assert np.max(np.abs(remove_phase_plane(plane))) < 1e-12
    bump = np.exp(-((rows - 30) ** 2 + (cols - 40) ** 2) / 50.0)
    residual = remove_phase_plane(bump + plane)
    np.testing.assert_allclose(residual, remove_phase_plane(bump), atol=1e-12)


def test_align_amplitude_matches_means_and_leaves_zero_prediction_alone():
    gt = np.array([[1.0, 3.0], [5.0, 7.0]])
    aligned = align_amplitude(gt * 0.25, gt)
    np.testing.assert_allclose(aligned, gt)
    np.testing.assert_array_equal(align_amplitude(np.zeros((2, 2)), gt), np.zeros((2, 2)))
