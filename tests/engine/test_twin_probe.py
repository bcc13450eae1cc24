"""The twin ambiguity and the probe that breaks it.

For a real, centrosymmetric probe P every object patch O has a twin conj(O(-r)) with exactly the
same diffraction amplitude; the default probe (a defocused, aberrated aperture) must make the
two measurably different, or a study cannot tell an object from its twin.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from engine.config import DataConfig
from engine.errors import ConfigError
from engine.sim.physics import ForwardModel, far_field_amplitude
from engine.sim.probe import TWIN_SYMMETRY_WARN, build_probe, twin_symmetry
from engine.sim.simulate import extract_patches, make_lines_object, object_phase
from engine.study.arms import load_study
from tests.tiny import tiny_study

N = 64


def twin(patches: np.ndarray) -> np.ndarray:
    """conj(O(-r)): flipped through the patch centre (N - 1) / 2 and conjugated."""
    return np.conj(patches[..., ::-1, ::-1])


@pytest.fixture(scope="module")
def gridlines_patches() -> dict[str, np.ndarray]:
    """The 1,089 test-grid patches of one full-size grid-lines object, with and without the
    amplitude-derived phase."""
    amplitude = make_lines_object(392, 400, np.random.default_rng(7))[None]
    amp = extract_patches(amplitude, N, 10)
    phase = extract_patches(object_phase(amplitude), N, 10)
    return {
        "no phase": amp.astype(np.complex64),
        "phase": (amp * np.exp(1j * phase)).astype(np.complex64),
    }


def diffraction(objects: np.ndarray, probe: np.ndarray) -> np.ndarray:
    exit_wave = torch.from_numpy(np.ascontiguousarray(objects)) * torch.from_numpy(probe)
    return far_field_amplitude(exit_wave).numpy().astype(np.float64)


def relative_l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pattern: sum |a - b| / sum |a|."""
    return np.abs(a - b).sum(axis=(-2, -1)) / np.abs(a).sum(axis=(-2, -1))


@pytest.mark.parametrize("kind", ["no phase", "phase"])
def test_the_ideal_disk_cannot_tell_a_patch_from_its_twin(gridlines_patches, kind):
    probe = build_probe(DataConfig(probe="ideal_disk")).array
    objects = gridlines_patches[kind]
    diff = relative_l1(diffraction(objects, probe), diffraction(twin(objects), probe))
    assert diff.max() < 1e-5  # float32 FFT rounding: the documented exact ambiguity


def test_the_default_probe_tells_every_patch_from_its_twin(gridlines_patches):
    """Measured: with the object phase every patch's twin differs by >= 11.6 % (median 21 %).
    Without it, a few patches whose content is nearly its own twin (a smooth blob centred in
    the patch) come closer, down to 7.1 %; 95 % of them differ by >= 10 % (median 17.5 %)."""
    probe = build_probe(DataConfig()).array
    with_phase = gridlines_patches["phase"]
    diff = relative_l1(diffraction(with_phase, probe), diffraction(twin(with_phase), probe))
    assert diff.min() >= 0.10, f"closest twin differs by only {diff.min():.3f}"
    no_phase = gridlines_patches["no phase"]
    diff = relative_l1(diffraction(no_phase, probe), diffraction(twin(no_phase), probe))
    assert np.percentile(diff, 5) >= 0.10 and np.median(diff) >= 0.15
    assert diff.min() >= 0.05


def test_the_default_probe_is_complex_and_not_centrosymmetric():
    probe = build_probe(DataConfig()).array
    amplitude = np.abs(probe)
    assert np.ptp(np.angle(probe[amplitude > 0.1 * amplitude.max()])) > 1.0  # radians
    flipped = amplitude[::-1, ::-1]
    assert np.abs(amplitude - flipped).sum() / amplitude.sum() > 0.1  # coma: |P(-r)| != |P(r)|


def test_twin_symmetry_is_one_exactly_for_twin_ambiguous_probes():
    disk = build_probe(DataConfig(probe="ideal_disk")).array
    default = build_probe(DataConfig()).array
    assert twin_symmetry(disk) == pytest.approx(1.0, abs=1e-6)
    assert twin_symmetry(default) < 0.5
    # A shifted real probe is still twin-ambiguous (the twin is shifted too) ...
    assert twin_symmetry(np.roll(disk, 5, axis=0)) == pytest.approx(1.0, abs=1e-6)
    # ... and an aperture in focus without aberrations nearly is: its probe is real up to the
    # smoothing of the phase jumps between its rings.
    flat = DataConfig(probe_defocus=0.0, probe_astigmatism=0.0, probe_coma=0.0)
    assert twin_symmetry(build_probe(flat).array) > TWIN_SYMMETRY_WARN


def test_probe_meta_records_the_recipe_and_its_twin_symmetry():
    meta = build_probe(DataConfig(probe_aperture="square")).meta
    assert meta["source"]["kind"] == "defocused_aperture"
    assert meta["source"]["aperture"] == "square"
    assert meta["source"]["waves_at_pupil_edge"] == {
        "defocus": 1.0,
        "astigmatism": 0.2,
        "coma": 0.3,
    }
    assert 0 < meta["twin_symmetry"] < 1


def test_every_probe_knob_changes_the_probe():
    base = build_probe(DataConfig()).array
    for change in (
        {"probe_aperture": "square"},
        {"probe_aperture_radius": 9.0},
        {"probe_defocus": -1.0},
        {"probe_astigmatism": 0.0},
        {"probe_coma": 0.0},
    ):
        other = build_probe(DataConfig(**change)).array
        assert not np.allclose(other, base), change


# --- arms.toml: bad probe knobs are refused, an ambiguous probe is a warning ------------------


def write_study(tmp_path, extra: str = ""):
    arms = {"a": {"architecture": "hybrid"}}
    study = tiny_study(tmp_path, "probe", arms, extra=textwrap.dedent(extra), fno_width=8, epochs=3)
    return study / "arms.toml"


@pytest.mark.parametrize(
    "override, knob",
    [
        ("data.probe_aperture_radius=15", "probe_aperture_radius"),  # pupil larger than the grid
        ("data.probe_defocus=4", "probe_defocus"),  # beam wraps around the 32 px patch
        (
            "data.probe_coma=1.5",
            "probe_defocus",
        ),  # the spread check names the defocus with the rest
        ("data.probe_astigmatism=50", "probe_astigmatism"),  # absurd: outside the knob's range
        ("data.probe_aperture=hexagon", "probe_aperture"),
    ],
)
def test_out_of_range_probe_knobs_are_refused_naming_the_knob(tmp_path, override, knob):
    with pytest.raises(ConfigError, match=knob) as err:
        load_study(write_study(tmp_path), overrides=[override])
    assert "allowed" in str(err.value) or "expected" in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_a_twin_ambiguous_probe_loads_with_a_warning_naming_the_knob(tmp_path, capsys):
    study = load_study(write_study(tmp_path), overrides=["data.probe=ideal_disk"])
    (warning,) = study.warnings
    assert "data.probe" in warning and "twin" in warning and "(arm 'a')" in warning
    assert "fnotui: warning:" in capsys.readouterr().err
    assert load_study(write_study(tmp_path)).warnings == ()


def test_a_warmup_as_long_as_the_run_is_a_warning(tmp_path):
    study = load_study(
        write_study(
            tmp_path,
            """
        [arms.w]
        architecture = "hybrid"
        scheduler = "WarmupCosine"
        warmup_epochs = 3
        """,
        )
    )
    (warning,) = study.warnings
    assert "'w'" in warning and "warmup_epochs = 3 >= epochs = 3" in warning


def test_profiles_can_set_values_for_one_arm(tmp_path):
    path = write_study(
        tmp_path,
        """
        [arms.b]
        architecture = "stable_hybrid"

        [profiles.original]
        epochs = 20

        [profiles.original.arms.a]
        epochs = 50

        [profiles.original.arms.a.data]
        set_phi = true
        """,
    )
    study = load_study(path, profile="original")
    assert study.arms["a"].train.epochs == 50 and study.arms["b"].train.epochs == 20
    assert study.arms["a"].data.set_phi and not study.arms["b"].data.set_phi
    assert load_study(path).arms["a"].train.epochs == 3


def test_a_profile_for_an_unknown_arm_is_refused(tmp_path):
    path = write_study(
        tmp_path,
        """
        [profiles.p.arms.nope]
        epochs = 2
        """,
    )
    with pytest.raises(ConfigError, match=r"\[profiles\.p\.arms\.nope\]: no arm named 'nope'"):
        load_study(path)


# --- the original's accidental x batch-length gain, as a knob --------------------------------


def test_batch_length_gain_multiplies_each_sample_by_its_batch_length():
    torch.manual_seed(0)
    probe = torch.from_numpy(build_probe(DataConfig(N=32)).array)
    obj = torch.randn(16, 32, 32, dtype=torch.complex64)
    plain = ForwardModel(probe)
    batch = ForwardModel(probe, gain=1.0, gain_mode="batch_length")
    constant = ForwardModel(probe, gain=17.45)
    torch.testing.assert_close(batch(obj), 16 * plain(obj))
    torch.testing.assert_close(batch(obj[:2]), 2 * plain(obj[:2]))  # the short last batch
    torch.testing.assert_close(constant(obj[:2]), 17.45 * plain(obj[:2]))
    # By default a sample's prediction does not depend on its batch.
    torch.testing.assert_close(plain(obj)[:2], plain(obj[:2]))


def test_an_unknown_gain_mode_is_refused_with_the_allowed_list(tmp_path):
    with pytest.raises(ConfigError, match=r"physics_gain_mode.*'constant', 'batch_length'"):
        load_study(write_study(tmp_path), overrides=["physics_gain_mode=per_sample"])


def test_loss_reference_levels_follow_the_physics_gain():
    """The best constant and the true object scaled by 1/gain reach the same loss under a gain
    as without one; under the batch-length gain only the short last batch costs extra."""
    import dataclasses

    from engine.reporting.levels import constant_output_val_loss, true_object_val_loss
    from engine.sim.data import build_dataset

    cfg = DataConfig(
        N=32, object_size=96, n_lines=40, nimgs_train=1, nimgs_test=1, train_stride=8, test_stride=8
    )
    ds = build_dataset(dataclasses.replace(cfg))
    t = ds.test
    args = (t.diffraction, ds.probe, "mae", 16)
    floor = true_object_val_loss(t.diffraction, t.amplitude, t.phase, ds.probe, "mae", 16)
    const, _ = constant_output_val_loss(*args)
    assert true_object_val_loss(
        t.diffraction, t.amplitude, t.phase, ds.probe, "mae", 16, 17.45
    ) == pytest.approx(floor, rel=1e-4)
    assert constant_output_val_loss(*args, 17.45)[0] == pytest.approx(const, rel=1e-4)
    n = len(t.diffraction)
    assert n % 16  # a short last batch exists
    batch_floor = true_object_val_loss(
        t.diffraction, t.amplitude, t.phase, ds.probe, "mae", 16, 1.0, "batch_length"
    )
    assert batch_floor > floor  # the last batch sees gain n % 16 instead of 16
