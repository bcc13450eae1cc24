"""Grid-lines simulation, dataset assembly and the recipe-keyed cache (docs/science.md, 'The
grid-lines dataset')."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from engine.config import DATA_KNOBS, DataConfig
from engine.errors import ConfigError, DatasetError
from engine.sim import simulate
from engine.sim.data import (
    build_dataset,
    load_or_build_dataset,
    recipe_identity,
    validate_data_config,
)
from engine.sim.datacache import read_cache, write_cache
from engine.sim.physics import ForwardModel
from engine.sim.stitch import (
    check_scan_order,
    count_patches_per_axis,
    gt_crop_bounds,
    stitch_patches,
)
from tests.tiny import tiny_data

SMALL = tiny_data(object_size=96, n_lines=40, nimgs_train=2, train_stride=4)


@pytest.fixture(scope="module")
def small():
    return build_dataset(SMALL)


@pytest.fixture(scope="module")
def small_with_phase():
    return build_dataset(dataclasses.replace(SMALL, set_phi=True))


class LogCapture(list):
    def __call__(self, message: str) -> None:
        self.append(message)

    def saw(self, word: str) -> bool:
        return any(word in message for message in self)


# ---------------------------------------------------------------------------- scan geometry


def test_default_recipe_gives_the_studys_pattern_counts():
    cfg = DataConfig()
    train = cfg.nimgs_train * count_patches_per_axis(392, 64, cfg.train_stride) ** 2
    test = cfg.nimgs_test * count_patches_per_axis(392, 64, cfg.test_stride) ** 2
    assert (train, test) == (13_778, 2_178)


@pytest.mark.parametrize("n, side", [(64, 330), (128, 270)])
def test_ground_truth_crop_of_the_study_geometry(n, side):
    start, stop = gt_crop_bounds(392, n, 10)
    assert stop - start == side


def test_scan_positions_are_row_major_patch_origins():
    positions = simulate.scan_positions(20, 8, 4)
    assert positions.tolist()[:5] == [[0, 0], [0, 4], [0, 8], [0, 12], [4, 0]]
    assert positions.shape == (16, 2)


def test_extracted_patches_are_the_windows_at_their_scan_positions():
    images = np.random.default_rng(0).random((2, 20, 20)).astype(np.float32)
    patches = simulate.extract_patches(images, 8, 4)
    positions = simulate.scan_positions(20, 8, 4)
    for index in (0, 5, 16, 31):
        image, (row, col) = divmod(index, 16)[0], positions[index % 16]
        np.testing.assert_array_equal(patches[index], images[image, row : row + 8, col : col + 8])


# ---------------------------------------------------------------------------- objects


def test_lines_object_is_reproducible_from_its_generator():
    first = simulate.make_lines_object(64, 20, np.random.default_rng(3))
    again = simulate.make_lines_object(64, 20, np.random.default_rng(3))
    other = simulate.make_lines_object(64, 20, np.random.default_rng(4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32 and first.shape == (64, 64) and first.min() >= 0


def test_lines_object_is_the_weighted_sum_of_three_blurs():
    # One long segment: the peak of G1 + 2 G5 + 5 G10 of a line is well above 1 and below 8.
    amplitude = simulate.make_lines_object(64, 1, np.random.default_rng(0))
    assert 0 < amplitude.max() < 8


def test_object_phase_uses_split_wide_max_and_mean():
    amplitudes = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).astype(np.float32)
    phase = simulate.object_phase(amplitudes)
    # max 3, mean 2: pi * tanh((A - 1.5) / 6)
    np.testing.assert_allclose(phase[0], np.pi * np.tanh(-0.5 / 6), rtol=1e-6)
    np.testing.assert_allclose(phase[1], np.pi * np.tanh(1.5 / 6), rtol=1e-6)
    assert np.abs(phase).max() < np.pi


# ---------------------------------------------------------------------------- noise


def test_shot_noise_variance_equals_the_mean_count():
    amplitude = np.full((200, 16, 16), np.sqrt(5.0), dtype=np.float32)
    noisy, expected, drawn = simulate.shot_noise(amplitude, 1.0, np.random.default_rng(0))
    counts = noisy.astype(np.float64) ** 2
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    assert counts.mean() == pytest.approx(5.0, rel=0.02)
    assert counts.var() == pytest.approx(5.0, rel=0.05)
    assert expected.mean() == pytest.approx(5.0 * 256)


def test_dataset_noise_is_poisson_at_low_dose():
    cfg = dataclasses.replace(SMALL, nphotons=1e3)
    ds = build_dataset(cfg)
    physics = ForwardModel(torch.from_numpy(ds.probe))
    objects = torch.from_numpy(ds.train.amplitude * np.exp(1j * ds.train.phase))
    rate = (ds.intensity_scale * physics(objects).double().numpy()) ** 2
    counts = (ds.intensity_scale * ds.train.diffraction.astype(np.float64)) ** 2
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-2)
    assert rate.sum(axis=(1, 2)).mean() == pytest.approx(1e3, rel=1e-4)
    assert ((counts - rate) ** 2).sum() / rate.sum() == pytest.approx(1.0, abs=0.1)


# ---------------------------------------------------------------------------- the dataset


def test_dataset_has_the_documented_shapes_and_dtypes(small):
    n_train = 2 * 17 * 17
    n_test = 1 * 9 * 9
    assert small.train.diffraction.shape == (n_train, 32, 32)
    assert small.test.diffraction.shape == (n_test, 32, 32)
    for split in (small.train, small.test):
        assert split.diffraction.dtype == np.float32
        assert split.amplitude.shape == split.diffraction.shape
        assert split.amplitude.dtype == split.phase.dtype == np.float32
        assert split.positions.shape == (split.diffraction.shape[0], 2)
    assert (small.train.patches_per_axis, small.test.patches_per_axis) == (17, 9)
    assert small.probe.dtype == np.complex64 and small.probe.shape == (32, 32)
    assert small.ground_truth.dtype == np.complex64 and small.ground_truth.shape == (72, 72)


def test_same_data_seed_gives_identical_arrays(small):
    again = build_dataset(SMALL)
    np.testing.assert_array_equal(small.train.diffraction, again.train.diffraction)
    np.testing.assert_array_equal(small.test.object_amplitude, again.test.object_amplitude)
    assert small.recipe_hash == again.recipe_hash


def test_different_data_seed_gives_different_objects(small):
    other = build_dataset(dataclasses.replace(SMALL, seed=SMALL.seed + 1))
    assert not np.array_equal(small.train.object_amplitude, other.train.object_amplitude)
    assert not np.array_equal(small.test.object_amplitude, other.test.object_amplitude)


def test_train_and_test_objects_differ(small):
    assert not np.array_equal(small.train.object_amplitude[0], small.test.object_amplitude[0])
    assert not np.array_equal(small.train.object_amplitude[0], small.train.object_amplitude[1])


def test_amplitude_patches_are_normalised_by_the_mean_patch_maximum(small):
    for split in (small.train, small.test):
        assert split.amplitude.max(axis=(1, 2)).mean() == pytest.approx(1.0, rel=1e-5)


def test_nphotons_is_the_mean_expected_count_of_a_training_pattern(small):
    photons = small.meta["photons_per_pattern"]
    assert photons["train_expected"] == pytest.approx(SMALL.nphotons, rel=1e-5)
    assert photons["train_drawn"] == pytest.approx(SMALL.nphotons, rel=1e-3)


def test_ground_truth_is_the_cropped_first_test_object(small):
    start, stop = gt_crop_bounds(96, 32, 8)
    expected = small.test.object_amplitude[0, start:stop, start:stop]
    np.testing.assert_allclose(small.ground_truth, expected, rtol=1e-6)


def test_stitched_ground_truth_patches_rebuild_the_ground_truth_crop(small_with_phase):
    test = small_with_phase.test
    check_scan_order(test.positions, test.patches_per_axis, test.stride)
    patches = test.amplitude * np.exp(1j * test.phase)
    stitched = stitch_patches(patches, test.patches_per_axis, test.stride, 32) * test.norm_Y_I
    np.testing.assert_allclose(stitched, small_with_phase.ground_truth, rtol=1e-5, atol=1e-6)


def test_phase_is_zero_and_flagged_vacuous_without_set_phi(small):
    assert not small.test.phase.any()
    assert small.meta["phase_vacuous"] is True
    assert small.meta["gt_phase_std"] == 0.0


def test_set_phi_gives_a_nonzero_phase_that_is_not_vacuous(small_with_phase):
    ds = small_with_phase
    assert ds.meta["phase_vacuous"] is False
    assert ds.meta["gt_phase_std"] > 0.1
    assert np.abs(ds.test.phase).max() < np.pi
    start, stop = gt_crop_bounds(96, 32, 8)
    expected = ds.test.object_phase[0, start:stop, start:stop]
    np.testing.assert_allclose(np.angle(ds.ground_truth), expected, atol=1e-6)


def test_meta_is_strict_json_and_names_the_recipe(small):
    text = json.dumps(small.meta, allow_nan=False)
    meta = json.loads(text)
    assert meta["recipe_hash"] == small.recipe_hash
    assert meta["recipe"]["set_phi"] is False
    assert meta["sizes"]["train"]["n_patterns"] == 578
    assert meta["norm_Y_I"]["test"] == small.test.norm_Y_I
    assert meta["intensity_scale"] == small.intensity_scale


def test_patch_size_128_builds():
    cfg = tiny_data(N=128, object_size=160, train_stride=16, test_stride=10)
    ds = build_dataset(cfg)
    assert ds.train.diffraction.shape == (9, 128, 128)
    assert ds.test.diffraction.shape == (16, 128, 128)
    assert ds.ground_truth.shape == (40, 40)
    assert np.isfinite(ds.test.diffraction).all()


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "change, knob",
    [
        ({"object_size": 24}, "object_size"),
        ({"test_stride": 7}, "test_stride"),
        ({"test_stride": 34}, "test_stride"),
        ({"train_stride": 40}, "train_stride"),
        ({"nphotons": 1e18}, "nphotons"),
        ({"probe": "nowhere.npy"}, "probe"),
    ],
)
def test_invalid_recipe_raises_config_error_naming_the_knob(change, knob):
    with pytest.raises(ConfigError, match=knob):
        build_dataset(dataclasses.replace(SMALL, **change))


def test_validation_opens_a_probe_file_before_anything_is_built(tmp_path):
    path = tmp_path / "probe.npy"
    np.save(path, np.ones((16, 16), dtype=np.complex64))
    with pytest.raises(ConfigError, match=r"^probe = .*\(16, 16\)"):
        validate_data_config(dataclasses.replace(SMALL, probe=str(path)))


def test_stride_equal_to_patch_size_is_allowed():
    validate_data_config(dataclasses.replace(SMALL, train_stride=32, test_stride=32))


# ---------------------------------------------------------------------------- cache


def test_second_call_reuses_the_cache_without_regenerating(tmp_path):
    first_log, second_log = LogCapture(), LogCapture()
    first = load_or_build_dataset(SMALL, tmp_path, log=first_log)
    (path,) = tmp_path.glob("*.npz")
    stamp = path.stat().st_mtime_ns
    second = load_or_build_dataset(SMALL, tmp_path, log=second_log)
    assert first_log.saw("miss") and first.meta["cache"]["status"] == "built"
    assert second_log.saw("hit") and not second_log.saw("building")
    assert second.meta["cache"]["status"] == "hit"
    assert path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.train.diffraction, second.train.diffraction)
    np.testing.assert_array_equal(first.test.amplitude, second.test.amplitude)
    assert first.meta["photons_per_pattern"] == second.meta["photons_per_pattern"]
    assert sorted(tmp_path.iterdir()) == [path, path.with_name(path.name + ".lock")]


def test_concurrent_builds_of_one_recipe_build_once(tmp_path):
    import threading

    logs = [LogCapture() for _ in range(3)]
    threads = [
        threading.Thread(target=load_or_build_dataset, args=(SMALL, tmp_path), kwargs={"log": log})
        for log in logs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(log.saw("cache miss") for log in logs) == 1
    assert sum(log.saw("hit") for log in logs) == 2
    assert sum(log.saw("waiting for another process") for log in logs) >= 1


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bytes_in_the_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes_in_the_middle, _empty])
def test_damaged_cache_file_is_logged_rebuilt_and_replaced(tmp_path, damage):
    clean = load_or_build_dataset(SMALL, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    damage(path)
    log = LogCapture()
    rebuilt = load_or_build_dataset(SMALL, tmp_path, log=log)
    assert log.saw("unusable")
    assert rebuilt.meta["cache"]["status"] == "rebuilt"
    np.testing.assert_array_equal(rebuilt.train.diffraction, clean.train.diffraction)
    after = LogCapture()
    load_or_build_dataset(SMALL, tmp_path, log=after)
    assert after.saw("hit")


def test_cache_file_of_another_recipe_is_not_used(tmp_path):
    zero_phase = load_or_build_dataset(SMALL, tmp_path)
    with_phase_cfg = dataclasses.replace(SMALL, set_phi=True)
    _, digest = recipe_identity(with_phase_cfg)
    (path,) = tmp_path.glob("*.npz")
    path.rename(tmp_path / f"gridlines-{digest[:16]}.npz")
    log = LogCapture()
    with_phase = load_or_build_dataset(with_phase_cfg, tmp_path, log=log)
    assert log.saw("recipe_hash")
    assert with_phase.test.phase.any() and not zero_phase.test.phase.any()


ALTERNATIVES = {
    "N": 40,
    "object_size": 100,
    "n_lines": 41,
    "nimgs_train": 3,
    "nimgs_test": 2,
    "nphotons": 1e6,
    "set_phi": True,
    "train_stride": 5,
    "test_stride": 6,
    "probe_smoothing_sigma": 1.0,
    "probe_mask_diameter": 20.0,
    "probe_scale": 2.0,
    "probe_aperture": "square",
    "probe_aperture_radius": 9.0,
    "probe_defocus": 0.5,
    "probe_astigmatism": 0.1,
    "probe_coma": 0.2,
    "seed": SMALL.seed + 1,
}


def test_every_changeable_recipe_knob_has_an_alternative_in_the_key_test():
    changeable = {k.name for k in DATA_KNOBS if k.choices is None or len(k.choices) > 1}
    assert changeable - {"probe"} == set(ALTERNATIVES)


@pytest.mark.parametrize("knob, value", sorted(ALTERNATIVES.items()))
def test_cache_key_changes_when_any_recipe_knob_changes(knob, value):
    _, base = recipe_identity(SMALL)
    _, changed = recipe_identity(dataclasses.replace(SMALL, **{knob: value}))
    assert changed != base


def test_cache_key_follows_probe_file_content_not_its_path(tmp_path):
    rng = np.random.default_rng(0)
    probe = (rng.normal(size=(32, 32)) + 1j).astype(np.complex64)
    first, second = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(first, probe)
    np.save(second, probe)
    _, key_a = recipe_identity(dataclasses.replace(SMALL, probe=str(first)))
    _, key_b = recipe_identity(dataclasses.replace(SMALL, probe=str(second)))
    _, key_disk = recipe_identity(SMALL)
    assert key_a == key_b != key_disk
    np.save(second, 2 * probe)
    _, key_changed = recipe_identity(dataclasses.replace(SMALL, probe=str(second)))
    assert key_changed != key_a


def test_integer_and_float_spellings_of_a_float_knob_share_a_key():
    _, as_float = recipe_identity(dataclasses.replace(SMALL, nphotons=1e9))
    _, as_int = recipe_identity(dataclasses.replace(SMALL, nphotons=10**9))
    assert as_float == as_int


def test_cache_array_rewritten_inside_a_valid_zip_fails_its_checksum(tmp_path):
    path = tmp_path / "c.npz"
    write_cache(path, {"a": np.arange(6, dtype=np.float32)}, {"version": 1})
    with np.load(path) as npz:
        header = npz["header"]
    np.savez(path, header=header, a=np.arange(6, dtype=np.float32)[::-1].copy())
    with pytest.raises(DatasetError, match="checksum"):
        read_cache(path, {"version": 1}, {"a": ((6,), np.float32)})


@pytest.mark.parametrize(
    "expect_header, expect_arrays, reason",
    [
        ({"version": 2}, {"a": ((6,), np.float32)}, "version"),
        ({"version": 1}, {"a": ((3, 2), np.float32)}, "expected float32"),
        ({"version": 1}, {"a": ((6,), np.float64)}, "expected float64"),
        ({"version": 1}, {"a": ((6,), np.float32), "b": ((), np.float64)}, "do not match"),
    ],
)
def test_cache_file_that_differs_from_expectations_is_refused(
    tmp_path, expect_header, expect_arrays, reason
):
    path = tmp_path / "c.npz"
    write_cache(path, {"a": np.arange(6, dtype=np.float32)}, {"version": 1})
    with pytest.raises(DatasetError, match=reason):
        read_cache(path, expect_header, expect_arrays)
