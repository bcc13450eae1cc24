"""The physics model agrees with the simulator, is batch-independent, and its losses behave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.sim import simulate
from engine.sim.data import build_dataset
from engine.sim.physics import ForwardModel, mae_loss, poisson_loss
from tests.tiny import tiny_data

RECIPE = tiny_data(object_size=96, n_lines=40, set_phi=True)


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(RECIPE)


def _objects(split, indices) -> torch.Tensor:
    return torch.from_numpy(split.amplitude[indices] * np.exp(1j * split.phase[indices]))


def test_forward_model_reproduces_the_simulators_noiseless_diffraction(dataset):
    indices = np.arange(0, 81, 7)
    split = dataset.test
    simulated = simulate.noiseless_diffraction(
        split.amplitude[indices], split.phase[indices], dataset.probe
    )
    predicted = ForwardModel(torch.from_numpy(dataset.probe))(_objects(split, indices)).numpy()
    np.testing.assert_allclose(predicted, simulated, rtol=1e-5, atol=1e-6 * simulated.max())


def test_simulator_matches_an_independent_numpy_far_field(dataset):
    # amplitude = fftshift(|FFT2(O * P)| / sqrt(H * W)), no padding (docs/science.md,
    # 'Forward model').
    split = dataset.train
    obj = split.amplitude[:5].astype(np.float64) * np.exp(1j * split.phase[:5])
    exit_wave = obj * dataset.probe.astype(np.complex128)
    reference = np.fft.fftshift(np.abs(np.fft.fft2(exit_wave)) / 32, axes=(-2, -1))
    simulated = simulate.noiseless_diffraction(split.amplitude[:5], split.phase[:5], dataset.probe)
    np.testing.assert_allclose(simulated, reference, rtol=1e-4, atol=1e-6 * reference.max())


def test_stored_diffraction_is_the_forward_model_of_the_stored_patches_at_high_dose():
    ds = build_dataset(dataclasses.replace(RECIPE, nphotons=1e15))
    predicted = ForwardModel(torch.from_numpy(ds.probe))(_objects(ds.test, slice(None))).numpy()
    error = np.linalg.norm(predicted - ds.test.diffraction) / np.linalg.norm(predicted)
    assert error < 1e-5


def test_prediction_does_not_depend_on_the_batch_it_sits_in(dataset):
    physics = ForwardModel(torch.from_numpy(dataset.probe))
    batch = _objects(dataset.train, slice(0, 16))
    alone = physics(batch[3:4])[0]
    torch.testing.assert_close(physics(batch[2:4])[1], alone, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(physics(batch)[3], alone, rtol=1e-6, atol=1e-7)


def test_mae_of_identical_patterns_is_zero(dataset):
    observed = torch.from_numpy(dataset.test.diffraction[:8])
    assert mae_loss(observed, observed).item() == 0.0


def test_mae_is_mean_absolute_error_over_the_mean_observation():
    observed = torch.full((2, 4, 4), 2.0)
    predicted = observed + 0.5
    assert mae_loss(predicted, observed).item() == pytest.approx(0.25, rel=1e-6)


def test_poisson_nll_is_minimised_when_prediction_equals_observation(dataset):
    observed = torch.from_numpy(dataset.test.diffraction[:8]).double() * dataset.intensity_scale
    at_truth = poisson_loss(observed, observed).item()
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert poisson_loss(observed * factor, observed).item() > at_truth


def test_poisson_nll_gradient_vanishes_at_the_observation():
    observed = torch.tensor([[[3.0, 5.0], [7.0, 10.0]]], dtype=torch.float64)
    predicted = observed.clone().requires_grad_(True)
    poisson_loss(predicted, observed).backward()
    assert predicted.grad.abs().max().item() < 1e-6
