"""``cnn``: the PyTorch U-Net baseline (docs/science.md, 'cnn').

A deliberate departure from the study, which compared against PtychoPINN's older TensorFlow
encoder-decoder without skip connections: the U-Net is trained by the same loop as every other
arm, so comparisons are like for like. ``fno_width`` sets the first level's width and
``fno_blocks`` the number of levels (the last one is the bottleneck), so the depth knob means
the same thing as for the hybrids; the defaults (32, 4 levels: 32/64/128/256) give 1,925,058
parameters, the "about 1.9 M" of the spec.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.layers import (
    InputTransform,
    OutputHead,
    channel_schedule,
    decoder_pairs,
    run_level,
)


class DoubleConv(nn.Sequential):
    """Two 3x3 convs with ReLU, the classic U-Net level."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.ReLU(),
        )


class UpLevel(nn.Module):
    """2x2 stride-2 transposed conv (coarse -> skip channels), concatenate the skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """Max-pool down, transposed-conv up, skips at every level; channels double per level."""

    architecture = "cnn"

    def __init__(self, width: int, levels: int, output_mode: str, input_transform: str):
        super().__init__()
        self.channels = channel_schedule(width, levels)
        self.input_transform = InputTransform(input_transform)
        self.encoder = nn.ModuleList(
            DoubleConv(c_in, c_out) for c_in, c_out in zip([1] + self.channels[:-1], self.channels)
        )
        self.pool = nn.MaxPool2d(2)
        self.decoder = nn.ModuleList(
            UpLevel(c_in, c_out) for c_in, c_out in decoder_pairs(self.channels)
        )
        self.head = OutputHead(self.channels[0], output_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_transform(x)
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                skips.append(x)
                x = self.pool(x)
            x = run_level(self, level, x)
        for level, skip in zip(self.decoder, reversed(skips)):
            x = run_level(self, level, x, skip)
        return self.head(x)
