"""Generator selection by name, geometry checks, and the read-back description for telemetry.

``build_model`` refuses geometry that cannot work with a ``ConfigError`` naming the knob, the
value and what is allowed, before any weight exists (arms.py runs it on the meta device).
``describe_model`` reads everything from the live modules, never from the config, because the
original study's worst bugs were settings that never reached the model (docs/science.md, 'Knobs
not passed through').
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.config import ModelConfig
from engine.errors import ConfigError
from engine.models.fno import CascadedFNO
from engine.models.hybrid import HybridUNO
from engine.models.layers import (
    AUTO_CHECKPOINT_ABOVE_BLOCKS,
    FFT_NORM,
    SPECTRAL_INIT,
    SPECTRAL_MODE_CAP,
    SpectralConv2d,
    StablePtychoBlock,
    use_channels_last,
)
from engine.models.unet import UNet


class _KnobReader:
    """Passes a ModelConfig through and records which knobs a builder read.

    ``knobs_used`` is derived from what the builder actually consumed, so it cannot drift from
    the code the way a hand-written list would.
    """

    def __init__(self, cfg: ModelConfig):
        self._cfg = cfg
        self._read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        self._read.add(name)
        return value

    def used(self) -> list[str]:
        return [
            f.name
            for f in dataclasses.fields(self._cfg)
            if f.name == "architecture" or f.name in self._read
        ]


def _max_depth(n: int, min_side: int) -> int:
    """Largest depth whose coarsest level is a whole number of pixels, at least ``min_side``."""
    depth = 1
    while n % 2**depth == 0 and n // 2**depth >= min_side:
        depth += 1
    return depth


def _check_depth(n: int, depth: int, min_side: int, why: str) -> None:
    if n % 2 ** (depth - 1) == 0 and n // 2 ** (depth - 1) >= min_side:
        return
    allowed = f"at most {_max_depth(n, min_side)} at N={n}"
    side = n / 2 ** (depth - 1)
    if side < min_side:
        raise ConfigError(
            f"fno_blocks={depth} at N={n} needs a bottleneck of N/2^{depth - 1} = {side:g} px, "
            f"smaller than {min_side} px ({why}); allowed: {allowed}"
        )
    raise ConfigError(
        f"fno_blocks={depth} needs N divisible by 2^{depth - 1} = {2 ** (depth - 1)}, "
        f"got N={n}; allowed: {allowed}"
    )


def _check_modes(modes: int, n: int) -> None:
    if modes > n // 2:
        raise ConfigError(
            f"fno_modes={modes} is too large for N={n}: the finest level keeps at most N//2 = "
            f"{n // 2} rows per frequency corner; allowed: 1 to {n // 2}"
        )


def _build_cnn(cfg, n: int) -> nn.Module:
    _check_depth(n, cfg.fno_blocks, 1, "max-pooling halves every level")
    return UNet(cfg.fno_width, cfg.fno_blocks, cfg.output_mode, cfg.input_transform)


def _build_fno(cfg, n: int) -> nn.Module:
    _check_modes(cfg.fno_modes, n)
    return CascadedFNO(
        n,
        cfg.fno_width,
        cfg.fno_modes,
        cfg.fno_blocks,
        cfg.fno_cnn_blocks,
        cfg.spectral_corners,
        cfg.output_mode,
        cfg.input_transform,
        cfg.spectral_impl,
    )


def _build_hybrid(cfg, n: int, stable: bool) -> nn.Module:
    _check_modes(cfg.fno_modes, n)
    # The coarsest level must keep at least one frequency row per corner: H//2 >= 1.
    _check_depth(n, cfg.fno_blocks, 2, "the spectral bottleneck needs 2 px to keep a frequency")
    cap = cfg.max_hidden_channels
    if 0 < cap < cfg.fno_width:
        raise ConfigError(
            f"max_hidden_channels={cap} is below fno_width={cfg.fno_width}; it caps channel "
            f"doubling, so allowed: 0 (no cap) or at least {cfg.fno_width}"
        )
    variant = cfg.stable_variant if stable else None
    layerscale_init = cfg.layerscale_init if variant == "layerscale" else 0.0
    return HybridUNO(
        n,
        cfg.fno_width,
        cfg.fno_modes,
        cfg.fno_blocks,
        cap,
        cfg.spectral_corners,
        cfg.output_mode,
        cfg.input_transform,
        variant,
        layerscale_init,
        cfg.spectral_impl,
    )


BUILDERS: dict[str, Callable[[Any, int], nn.Module]] = {
    "cnn": _build_cnn,
    "fno": _build_fno,
    "hybrid": lambda cfg, n: _build_hybrid(cfg, n, stable=False),
    "stable_hybrid": lambda cfg, n: _build_hybrid(cfg, n, stable=True),
}


def build_model(cfg: ModelConfig, N: int) -> nn.Module:
    """Generator for ``cfg`` at patch size N: (B, 1, N, N) float32 -> (B, N, N) complex64."""
    try:
        builder = BUILDERS[cfg.architecture]
    except KeyError:
        raise ConfigError(
            f"architecture={cfg.architecture!r} is unknown; allowed: {', '.join(BUILDERS)}"
        ) from None
    reader = _KnobReader(cfg)
    model = use_channels_last(builder(reader, N))
    setting = reader.grad_checkpointing
    model.grad_checkpointing = setting == "blocks" or (
        setting == "auto" and cfg.fno_blocks > AUTO_CHECKPOINT_ABOVE_BLOCKS
    )
    model.knobs_used = reader.used()
    return model


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe_model(model: nn.Module) -> dict:
    """JSON-serialisable description read back from the live model, for the telemetry header.

    ``parameters`` counts real numbers (a complex spectral weight counts twice);
    ``parameters_complex_as_one`` counts each complex weight once, the convention of the
    original's logs and of docs/science.md, 'Parameter counts'.
    """
    spectral = [(name, m) for name, m in model.named_modules() if isinstance(m, SpectralConv2d)]
    stable = [m for m in model.modules() if isinstance(m, StablePtychoBlock)]
    real = _count(model)
    bottleneck = getattr(model, "bottleneck", None)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))
    channels_last = conv.weight.is_contiguous(memory_format=torch.channels_last)
    return {
        "architecture": model.architecture,
        "parameters": real,
        "parameters_complex_as_one": real - sum(m.weight.numel() // 2 for _, m in spectral),
        "parameters_by_module": {name: _count(child) for name, child in model.named_children()},
        "channels": list(model.channels),
        # Read from the model, which is what run_level consults: True means every level's
        # activations are recomputed in the backward pass.
        "grad_checkpointing": bool(getattr(model, "grad_checkpointing", False)),
        "spectral_modes": [{"module": name, **m.describe()} for name, m in spectral],
        "bottleneck_modes": bottleneck.spectral.describe() if bottleneck is not None else None,
        "spectral_mode_cap": SPECTRAL_MODE_CAP if spectral else None,
        "spectral_init": SPECTRAL_INIT if spectral else None,
        "fft_norm": FFT_NORM if spectral else None,
        "stable_variant": stable[0].variant if stable else None,
        "layerscale_init": stable[0].layerscale_init if stable else None,
        "output_mode": model.head.mode,
        "input_transform": model.input_transform.kind,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "knobs_used": list(model.knobs_used),
    }
