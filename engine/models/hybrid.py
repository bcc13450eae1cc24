"""``hybrid`` and ``stable_hybrid``: the U-shaped neural operator (docs/science.md, 'hybrid').

Encoder level i works at N / 2^i with one spectral block, then (except after the last level) a
2x2 stride-2 conv halves the resolution and doubles the channels, up to ``max_hidden_channels``.
A bottleneck block with half the modes runs at the coarsest level; the decoder is pure CNN and
mirrors the (capped) channel schedule. ``stable_hybrid`` swaps every encoder and bottleneck block
for ``StablePtychoBlock``; the decoder is the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.layers import (
    InputTransform,
    Lifter,
    OutputHead,
    PtychoBlock,
    StablePtychoBlock,
    channel_schedule,
    decoder_pairs,
    run_level,
)


def bottleneck_modes(modes: int) -> int:
    """Half the modes (6 for the default 12), but never zero."""
    return max(1, modes // 2)


class DecoderLevel(nn.Module):
    """Transposed 2x2 stride-2 conv (coarse -> skip channels), concatenate the skip,
    3x3 conv (2ch -> ch), GELU, 3x3 conv (ch -> ch)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv1 = nn.Conv2d(2 * out_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.up(x), skip], dim=1)
        return self.conv2(F.gelu(self.conv1(x)))


class HybridUNO(nn.Module):
    """``stable_variant`` None builds the plain hybrid; "layerscale" or "zero_gamma" the stable one."""

    def __init__(
        self,
        size: int,
        width: int,
        modes: int,
        blocks: int,
        max_hidden_channels: int,
        corners: int,
        output_mode: str,
        input_transform: str,
        stable_variant: str | None = None,
        layerscale_init: float = 0.0,
        spectral_impl: str = "dft",
    ):
        super().__init__()
        self.architecture = "hybrid" if stable_variant is None else "stable_hybrid"
        self.channels = channel_schedule(width, blocks, max_hidden_channels)

        def block(channels: int, level_modes: int, level: int) -> nn.Module:
            side = size >> level
            if stable_variant is None:
                return PtychoBlock(channels, level_modes, (side, side), corners, spectral_impl)
            return StablePtychoBlock(
                channels,
                level_modes,
                (side, side),
                corners,
                stable_variant,
                layerscale_init,
                spectral_impl,
            )

        self.input_transform = InputTransform(input_transform)
        self.lifter = Lifter(1, width)
        self.encoder = nn.ModuleList(block(c, modes, i) for i, c in enumerate(self.channels))
        self.down = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 2, stride=2)
            for c_in, c_out in zip(self.channels[:-1], self.channels[1:])
        )
        self.bottleneck = block(self.channels[-1], bottleneck_modes(modes), blocks - 1)
        self.decoder = nn.ModuleList(
            DecoderLevel(c_in, c_out) for c_in, c_out in decoder_pairs(self.channels)
        )
        self.head = OutputHead(width, output_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lifter(self.input_transform(x))
        skips = []
        for i, level in enumerate(self.encoder):
            x = run_level(self, level, x)
            if i < len(self.down):
                skips.append(x)
                x = self.down[i](x)
        x = run_level(self, self.bottleneck, x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = run_level(self, level, x, skip)
        return self.head(x)
