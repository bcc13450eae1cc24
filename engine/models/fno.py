"""``fno``: the cascaded FNO (docs/science.md, 'fno').

Lifter -> ``blocks`` plain blocks at full resolution -> 1x1 conv -> ``cnn_blocks`` x (3x3 conv +
GELU) -> output head. About 0.66 M parameters at the defaults when counted the original way (one
corner, complex weights as one element); our two-corner layer counted in real numbers gives
2.43 M (docs/param_counts.md).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.layers import InputTransform, Lifter, OutputHead, PtychoBlock, run_level


class CascadedFNO(nn.Module):
    architecture = "fno"

    def __init__(
        self,
        size: int,
        width: int,
        modes: int,
        blocks: int,
        cnn_blocks: int,
        corners: int,
        output_mode: str,
        input_transform: str,
        spectral_impl: str = "dft",
    ):
        super().__init__()
        self.channels = [width]
        self.input_transform = InputTransform(input_transform)
        self.lifter = Lifter(1, width)
        self.blocks = nn.Sequential(
            *(
                PtychoBlock(width, modes, (size, size), corners, spectral_impl)
                for _ in range(blocks)
            )
        )
        self.project = nn.Conv2d(width, width, 1)
        refiner = []
        for _ in range(cnn_blocks):
            refiner += [nn.Conv2d(width, width, 3, padding=1), nn.GELU()]
        self.refiner = nn.Sequential(*refiner)
        self.head = OutputHead(width, output_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lifter(self.input_transform(x))
        for block in self.blocks:
            x = run_level(self, block, x)
        return self.head(self.refiner(self.project(x)))
