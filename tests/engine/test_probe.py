"""The probe: ideal disk, file loading, smoothing, mask and normalisation (docs/science.md,
'The probe')."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import DataConfig
from engine.errors import ConfigError
from engine.sim.probe import (
    build_probe,
    centre_distance,
    ideal_disk_probe,
    mask_probe,
    normalise_probe,
    smooth_probe,
)


def _masked_mean(probe: np.ndarray) -> float:
    n = probe.shape[0]
    return float(np.mean(np.abs(probe) * (centre_distance(n) < n / 4)))


def _random_probe(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64)


@pytest.mark.parametrize("n", [32, 64, 128])
def test_ideal_disk_is_real_and_never_exactly_zero(n):
    disk = ideal_disk_probe(n)
    assert disk.shape == (n, n)
    assert np.isrealobj(disk)
    assert disk.min() > 0
    assert disk.max() == pytest.approx(1.0, abs=1e-3)


def test_ideal_disk_is_symmetric_about_the_array_centre():
    disk = ideal_disk_probe(64)
    np.testing.assert_allclose(disk, disk[::-1, :], atol=1e-12)
    np.testing.assert_allclose(disk, disk.T, atol=1e-12)


def test_ideal_disk_radius_follows_the_half_max_of_the_lowpass_profile():
    # std = N / (0.7 pi^2) = 9.26 px at N = 64; half max at std * sqrt(2 ln 2) = 10.9 px.
    disk = ideal_disk_probe(64)
    radius = centre_distance(64)
    assert disk[radius < 9].min() > 0.9
    assert disk[radius > 13].max() < 0.1


def test_built_ideal_probe_is_real_complex64_and_never_zero():
    probe = build_probe(DataConfig(probe="ideal_disk")).array
    assert probe.dtype == np.complex64
    assert probe.shape == (64, 64)
    assert np.all(probe.imag == 0)
    assert np.abs(probe).min() > 0


@pytest.mark.parametrize("probe_scale", [4.0, 2.5])
def test_masked_probe_magnitude_averages_one_over_probe_scale(probe_scale):
    probe = build_probe(DataConfig(probe_scale=probe_scale)).array
    assert _masked_mean(probe) == pytest.approx(1 / probe_scale, rel=1e-5)


def test_normalisation_forgets_the_input_scale():
    probe = _random_probe(32)
    once, divisor = normalise_probe(probe, 4.0)
    tripled, tripled_divisor = normalise_probe(3 * probe, 4.0)
    np.testing.assert_allclose(once, tripled, rtol=1e-5)
    assert tripled_divisor == pytest.approx(3 * divisor)


def test_normalising_a_probe_dark_at_the_centre_raises_config_error():
    probe = np.zeros((32, 32), dtype=np.complex64)
    probe[0, 0] = 1
    with pytest.raises(ConfigError, match="probe"):
        normalise_probe(probe, 4.0)


def test_zero_smoothing_sigma_leaves_the_probe_unchanged():
    probe = _random_probe(16)
    np.testing.assert_allclose(smooth_probe(probe, 0.0), probe, rtol=1e-6)


def test_smoothing_keeps_a_phase_ramp_that_wraps_several_times():
    # Smoothing the wrapped phase would blur each 2 pi jump into a false feature; smoothing the
    # unwrapped phase leaves a linear ramp linear (away from the edges).
    n = 64
    cols = np.arange(n)
    probe = np.exp(1j * 0.9 * cols)[None, :].repeat(n, axis=0)
    smoothed = smooth_probe(probe, 1.0)
    interior = (slice(8, -8), slice(8, -8))
    residual = np.angle(smoothed[interior] * np.conj(probe[interior]))
    assert np.abs(residual).max() < 1e-6
    np.testing.assert_allclose(np.abs(smoothed[interior]), 1.0, rtol=1e-6)


def test_disk_mask_zeroes_the_probe_outside_its_diameter():
    probe = np.ones((32, 32), dtype=np.complex128)
    masked = mask_probe(probe, 10.0)
    radius = centre_distance(32)
    assert np.all(masked[radius >= 5] == 0)
    assert np.all(masked[radius < 5] == 1)
    assert mask_probe(probe, 0.0) is probe


def test_mask_diameter_knob_reaches_the_built_probe():
    probe = build_probe(DataConfig(probe_mask_diameter=16.0)).array
    assert np.all(probe[centre_distance(64) >= 8] == 0)


def test_npy_probe_file_is_loaded_smoothed_and_normalised(tmp_path):
    raw = _random_probe(32)
    path = tmp_path / "probe.npy"
    np.save(path, raw)
    cfg = DataConfig(N=32, probe=str(path), probe_smoothing_sigma=0.0)
    built = build_probe(cfg)
    expected, _ = normalise_probe(raw.astype(np.complex128), cfg.probe_scale)
    np.testing.assert_allclose(built.array, expected, rtol=1e-5)
    assert built.meta["source"]["kind"] == "file"
    assert len(built.meta["source"]["sha256"]) == 64


@pytest.mark.parametrize("key", ["probeGuess", "probe", "anything"])
def test_npz_with_one_obvious_array_is_accepted(tmp_path, key):
    path = tmp_path / "probe.npz"
    extra = {} if key == "anything" else {"objectGuess": np.ones((4, 4), np.complex64)}
    np.savez(path, **{key: _random_probe(32)}, **extra)
    assert build_probe(DataConfig(N=32, probe=str(path))).array.shape == (32, 32)


def test_npz_without_a_single_obvious_array_raises_config_error(tmp_path):
    path = tmp_path / "probe.npz"
    np.savez(path, a=_random_probe(32), b=_random_probe(32))
    with pytest.raises(ConfigError, match=r"probe = .*allowed: a single array"):
        build_probe(DataConfig(N=32, probe=str(path)))


@pytest.mark.parametrize(
    "array, reason",
    [
        (_random_probe(16), r"probe shape \(16, 16\).*\(32, 32\)"),
        (np.ones((32, 32), dtype=np.float32), r"probe dtype float32.*complex"),
        (np.ones((32, 32, 1), dtype=np.complex64), r"probe shape \(32, 32, 1\)"),
        (np.full((32, 32), np.nan, dtype=np.complex64), r"NaN"),
    ],
    ids=["wrong-shape", "real-dtype", "extra-axis", "nan"],
)
def test_bad_probe_file_raises_config_error_naming_the_probe_knob(tmp_path, array, reason):
    path = tmp_path / "probe.npy"
    np.save(path, array)
    with pytest.raises(ConfigError, match=r"^probe = ") as raised:
        build_probe(DataConfig(N=32, probe=str(path)))
    assert raised.match(reason)


@pytest.mark.parametrize("name", ["missing.npy", "probe.txt"])
def test_missing_or_unknown_probe_source_raises_config_error(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("not a probe")
    with pytest.raises(
        ConfigError, match=r"^probe = .*allowed: 'defocused_aperture', 'ideal_disk'"
    ):
        build_probe(DataConfig(N=32, probe=str(path)))


def test_probe_meta_records_which_probe_the_physics_uses():
    meta = build_probe(DataConfig(N=32)).meta
    assert "physics" in meta["used_by_physics"]
    assert meta["normalisation_divisor"] > 0
