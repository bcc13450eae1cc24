"""The per-epoch validation numbers of engine/training/train.py, on a stand-in generator that returns
chosen objects: the amplitude error sees what the loss cannot."""

from __future__ import annotations

import math

import torch

from engine.training.validation import validate

N, n = 16, 12


class Lookup(torch.nn.Module):
    """A 'generator' whose input patch i (its pixels all equal i) maps to ``objects[i]``."""

    def __init__(self, objects: torch.Tensor):
        super().__init__()
        self.objects = objects

    def forward(self, x):
        return self.objects[x[:, 0, 0, 0].long()]


def inputs() -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, N, N).clone()


def physics(obj):
    return obj.abs()


def loss_fn(pred, target):
    return (pred - target).abs().mean()


def truth() -> torch.Tensor:
    torch.manual_seed(0)
    return 1.0 + torch.rand(n, N, N)


def test_a_perfect_object_up_to_scale_has_no_amplitude_error():
    amp = truth()
    phase = torch.rand(n, N, N)
    model = Lookup(torch.polar(3.0 * amp, phase))  # scale is aligned away, phase is ignored
    v = validate(model, physics, loss_fn, inputs(), 5, amp, border=4)
    assert v.amp_mae < 1e-6 and v.amp_mae_twin > 0.2
    assert v.twin_fraction == 0.0


def test_a_flipped_object_with_the_same_diffraction_is_caught():
    amp = truth()
    flipped = torch.flip(amp, dims=(-2, -1))  # |FFT| of a real flipped image is unchanged
    v = validate(Lookup(flipped.to(torch.complex64)), physics, loss_fn, inputs(), 5, amp, border=4)
    assert v.amp_mae > 0.2
    # ... and named for what it is: the twin of every patch.
    assert v.amp_mae_twin < 1e-6 and v.twin_fraction == 1.0


def test_amplitude_errors_are_in_object_units():
    amp = truth()
    flipped = torch.flip(amp, dims=(-2, -1)).to(torch.complex64)
    base = validate(Lookup(flipped), physics, loss_fn, inputs(), 5, amp, border=4)
    scaled = validate(Lookup(flipped), physics, loss_fn, inputs(), 5, amp, border=4, norm_Y_I=4.3)
    assert math.isclose(scaled.amp_mae, 4.3 * base.amp_mae, rel_tol=1e-6)


def test_a_half_twin_reconstruction_has_twin_fraction_one_half():
    amp = truth()
    mixed = amp.clone()
    mixed[::2] = torch.flip(amp[::2], dims=(-2, -1))  # every other patch on the twin branch
    v = validate(Lookup(mixed.to(torch.complex64)), physics, loss_fn, inputs(), 5, amp, border=4)
    assert v.twin_fraction == 0.5


def test_only_the_region_stitching_keeps_counts():
    amp = truth()
    spoiled = amp.clone()
    spoiled[:, :4, :] = 0  # the dropped border
    v = validate(Lookup(spoiled.to(torch.complex64)), physics, loss_fn, inputs(), 5, amp, border=4)
    assert v.amp_mae < 1e-6


def test_without_ground_truth_the_error_is_nan_and_the_rest_is_unchanged():
    amp = truth()
    v = validate(Lookup(amp.to(torch.complex64)), physics, loss_fn, inputs(), 5)
    assert math.isnan(v.amp_mae) and math.isnan(v.twin_fraction)
    assert math.isfinite(v.loss) and v.pred_amp_std > 0
