"""Reference loss levels of a study's data: the best constant output (the collapse level) and
the true object (the noise floor), in the units of the validation loss.

Both are computed with ``engine.sim.physics.batched_loss``, the helper the per-epoch validation
uses, so the levels compare 1:1 with ``val_loss``.
"""

from __future__ import annotations

import math

import numpy as np


def constant_output_val_loss(
    diffraction: np.ndarray,
    probe: np.ndarray,
    loss_mode: str,
    batch: int,
    gain: float = 1.0,
    gain_mode: str = "constant",
) -> tuple[float, float]:
    """(val loss, amplitude) of the best constant-amplitude output: the collapse level.

    A constant object c gives the diffraction c * A with A the probe's own far field, so the loss
    is a one-dimensional, unimodal function of c (convex for MAE; convex in c^2 for Poisson).
    It is minimised by golden-section search in log c, with the validation loop's batching and
    per-batch normalisation (``engine.sim.physics.batched_loss``) and physics gain, so the number
    compares 1:1 with val_loss. Under the batch-length gain a constant output still meets a different gain
    on a short last batch; the search finds the best single constant for that.
    """
    import torch

    from engine.sim.physics import ForwardModel, batched_loss, far_field_amplitude, get_loss

    loss_fn = get_loss(loss_mode)
    physics = ForwardModel(torch.from_numpy(np.asarray(probe)), gain, gain_mode)
    y = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
    with torch.no_grad():
        # The far field of a unit object (the probe's own) without any gain; each batch
        # applies its own gain below.
        unit = far_field_amplitude(physics.probe)

        def loss(log_c: float) -> float:
            def predict(rows: slice):
                n = len(y[rows])
                return (unit * (math.exp(log_c) * physics.gain_for(n))).expand(n, -1, -1)

            return float(batched_loss(loss_fn, y, batch, predict))

        centre = math.log(float(y.mean()) / max(float(unit.mean()), 1e-30))
        lo, hi = centre - 7.0, centre + 7.0  # a factor of ~1000 either way
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fa, fb = loss(a), loss(b)
        for _ in range(48):  # interval shrinks to ~1e-9 of its width
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - ratio * (hi - lo)
                fa = loss(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + ratio * (hi - lo)
                fb = loss(b)
        best = (a + b) / 2.0
        return loss(best), math.exp(best)


def true_object_val_loss(
    diffraction: np.ndarray,
    amplitude: np.ndarray,
    phase: np.ndarray,
    probe: np.ndarray,
    loss_mode: str,
    batch: int,
    gain: float = 1.0,
    gain_mode: str = "constant",
) -> float:
    """Val loss of the true object patches: the noise floor no generator can beat on average.
    Under a physics gain the generator must output object / gain to fit the data; a generator
    cannot see its batch, so under the batch-length gain the best it can do is object / (gain
    of a full batch), which the short last batch then sees through another gain. That is the
    floor computed here (for gain 1, the true object itself)."""
    import torch

    from engine.sim.physics import ForwardModel, batched_loss, get_loss

    loss_fn = get_loss(loss_mode)
    physics = ForwardModel(torch.from_numpy(np.asarray(probe)), gain, gain_mode)
    y = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
    obj = torch.from_numpy(np.asarray(amplitude, dtype=np.float32)) * torch.exp(
        1j * torch.from_numpy(np.asarray(phase, dtype=np.float32))
    )
    obj = obj / physics.gain_for(batch)
    with torch.no_grad():
        return float(batched_loss(loss_fn, y, batch, lambda rows: physics(obj[rows])))
