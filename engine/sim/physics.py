"""Differentiable far-field forward model and the physics losses (docs/science.md, 'Forward
model' and 'Losses').

Convention, shared with the simulator in ``engine/sim/data.py`` and tested by a round trip:
amplitude = gain * fftshift( sqrt( |FFT2(object * probe)|^2 / (H * W) ) ), no padding, one probe
mode. The probe is a fixed (H, W) complex tensor with no batch or mode axis, so by default a
sample's prediction never depends on the batch it sits in.

The gain is 1 by default. ``gain_mode = "batch_length"`` reproduces on purpose what the original
study's code did by accident: its probe lacked the mode axis, broadcast across the batch, and the
coherent "mode" sum multiplied every predicted amplitude by the number of samples in the batch
(16 for full batches, 2 for the last one of its 13,778-pattern epochs). The network then had to
output ~1/16 of the true object amplitude, and the gain jumped at every epoch's last batch. It is
a knob so that hypothesis can be tested (docs/original_conditions.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import ConfigError

PHYSICS_GAIN = 1.0
GAIN_MODES = ("constant", "batch_length")
# Added to the Poisson rate inside the log: a predicted amplitude of exactly zero would give
# log(0) = -inf wherever a count was observed. Small next to one photon, large next to fp32 eps.
POISSON_RATE_EPS = 1e-8
# Added to the batch-mean observed amplitude that normalises both losses (docs/science.md,
# 'Losses').
LOSS_NORM_EPS = 1e-8


def far_field_amplitude(exit_wave: torch.Tensor) -> torch.Tensor:
    """|FFT2| / sqrt(H*W), centred with fftshift; (..., H, W) complex -> (..., H, W) real."""
    h, w = exit_wave.shape[-2:]
    spectrum = torch.fft.fft2(exit_wave.to(torch.complex64))
    amplitude = spectrum.abs() / (h * w) ** 0.5
    return torch.fft.fftshift(amplitude, dim=(-2, -1))


class ForwardModel(torch.nn.Module):
    """Object patch (B, N, N) complex -> predicted diffraction amplitude (B, N, N) float32."""

    def __init__(
        self, probe: torch.Tensor, gain: float = PHYSICS_GAIN, gain_mode: str = "constant"
    ):
        super().__init__()
        if probe.ndim != 2 or not probe.is_complex():
            raise ConfigError(
                f"probe must be a 2-D complex array, got shape {tuple(probe.shape)} "
                f"and dtype {probe.dtype}"
            )
        # A buffer, not a parameter: the probe is known, and it moves with .to(device).
        self.register_buffer("probe", probe.to(torch.complex64))
        if gain_mode not in GAIN_MODES:
            raise ConfigError(
                f"physics_gain_mode: unknown mode {gain_mode!r}; allowed: {', '.join(GAIN_MODES)}"
            )
        self.gain = float(gain)
        self.gain_mode = gain_mode

    def gain_for(self, batch_length: int) -> float:
        """The factor applied to a batch of ``batch_length`` samples."""
        if self.gain_mode == "batch_length":
            return self.gain * batch_length
        return self.gain

    def describe(self) -> dict:
        return {
            "gain": self.gain,
            "gain_mode": self.gain_mode,
            # A string in both modes: one field, one type, whatever the run.
            "effective_gain": (
                "physics_gain x samples in the batch"
                if self.gain_mode == "batch_length"
                else f"{self.gain:g}"
            ),
        }

    def forward(self, obj: torch.Tensor) -> torch.Tensor:
        if obj.shape[-2:] != self.probe.shape:
            raise ValueError(
                f"object patch {tuple(obj.shape[-2:])} does not match probe {tuple(self.probe.shape)}"
            )
        # The FFT stays in fp32 whatever autocast says (docs/engineering.md, 'Precision').
        gain = self.gain_for(obj.shape[0]) if obj.ndim > 2 else self.gain
        with torch.autocast(device_type=obj.device.type, enabled=False):
            return gain * far_field_amplitude(obj.to(torch.complex64) * self.probe)


def mae_loss(pred_amp: torch.Tensor, obs_amp: torch.Tensor) -> torch.Tensor:
    """Mean |pred - obs| over batch and pixels, divided by the (detached) batch-mean observation."""
    norm = obs_amp.mean().detach() + LOSS_NORM_EPS
    return (pred_amp - obs_amp).abs().mean() / norm


def poisson_loss(pred_amp: torch.Tensor, obs_amp: torch.Tensor) -> torch.Tensor:
    """Full Poisson NLL of counts obs^2 under rate pred^2, summed per pattern, batch-averaged."""
    rate = pred_amp.square()
    counts = obs_amp.square()
    nll = rate - counts * torch.log(rate + POISSON_RATE_EPS) + torch.lgamma(counts + 1.0)
    per_sample = nll.flatten(1).sum(dim=1)
    norm = obs_amp.mean().detach() + LOSS_NORM_EPS
    return per_sample.mean() / norm


LOSSES = {"mae": mae_loss, "poisson": poisson_loss}


def batched_loss(
    loss_fn,
    observed: torch.Tensor,
    batch: int,
    predict: Callable[[slice], torch.Tensor],
) -> torch.Tensor:
    """The validation loss: the mean over consecutive batches of ``batch`` patterns of
    ``loss_fn(predict(rows), observed[rows])``.

    Each batch is normalised by its own mean observation (the losses above), and a short last
    batch weighs as much as a full one, as the original's validation did. Validation and every
    reference level (engine/reporting/levels.py) go through here, so they compare 1:1.
    ``predict`` returns the predicted amplitudes of the rows it is given.
    """
    values = [
        loss_fn(predict(rows), observed[rows])
        for rows in (slice(s, s + batch) for s in range(0, len(observed), batch))
    ]
    return torch.stack(values).mean()


def get_loss(mode: str):
    try:
        return LOSSES[mode]
    except KeyError:
        raise ConfigError(
            f"loss: unknown mode {mode!r}; allowed: {', '.join(sorted(LOSSES))}"
        ) from None
