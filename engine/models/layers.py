"""Building blocks shared by the generators (domain.md section 5.3).

The spectral convolution is our own (engineering-notes section 1): the original silently ran a
one-corner fallback and stored unreachable weights at coarse levels, so every convention here is
explicit and read back by ``describe_model``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FFT_NORM = "backward"
SPECTRAL_INIT = "complex normal, E|w|^2 = 1/in_channels (each part N(0, 1/(2*in_channels)))"
SPECTRAL_MODE_CAP = "rows per corner <= H//2, columns <= W//2 + 1"


def spectral_mode_cap(modes: int, height: int, width: int) -> tuple[int, int]:
    """Rows per corner and columns a level of size (height, width) can really hold.

    Rows stop at H//2 per corner so the two corners never overlap; columns stop at W//2 + 1, the
    whole half-spectrum ``rfft`` returns. That column convention is the one under which keeping
    every mode makes the layer an exact circular convolution (tests/engine/test_spectral.py), and
    it reproduces the engineering notes' 20,462,818-parameter count for the capped hybrid.
    """
    return min(modes, height // 2), min(modes, width // 2 + 1)


def _dft_matrices(height: int, width: int, rows: int, cols: int, corners: int):
    """Real matrices of the truncated 2-D DFT and of its inverse, in float64 then cast.

    Forward, columns first (the input is real, so this halves the work):
      ``x @ col_fwd`` -> (..., H, 2*cols) = [P | Q], P = sum_x x cos, Q = -sum_x x sin;
      ``row_fwd @ [P | Q]`` -> (..., 2*K_r, 2*cols) with row_fwd = [cos; sin] over kept rows,
      from which Re = cos@P + sin@Q and Im = cos@Q - sin@P.
    Inverse, columns first again: ``[Yr | Yi] @ col_inv`` -> (..., K_r, 2W) = [Vr | Vi], then
    ``row_inv @ [Vr; Vi]`` -> (..., H, W) = Re(sum over kept modes). The column weights
    c = 1 for k = 0 and for the Nyquist column, 2 otherwise, make the output exactly what CPU
    ``irfft2`` computes: it uses only the real part of the k = 0 and Nyquist columns, where a
    spectrum built from independent corner weights need not be Hermitian. Here sin(0) and
    sin(pi*x) vanish, so that convention holds by construction on every device (cuFFT's C2R may
    differ on non-Hermitian input, pytorch#154496), with ``backward`` normalisation (1/(H*W) on
    the inverse).
    """
    d = torch.float64
    kept_rows = torch.arange(rows, dtype=d)
    if corners == 2:
        kept_rows = torch.cat([kept_rows, torch.arange(height - rows, height, dtype=d)])
    theta = 2 * math.pi * torch.outer(kept_rows, torch.arange(height, dtype=d)) / height
    phi = 2 * math.pi * torch.outer(torch.arange(cols, dtype=d), torch.arange(width, dtype=d)) / width
    col_fwd = torch.cat([phi.cos().T, -phi.sin().T], dim=1)
    row_fwd = torch.cat([theta.cos(), theta.sin()], dim=0)
    weight = torch.full((cols, 1), 2.0, dtype=d)
    weight[0] = 1.0
    if width % 2 == 0 and cols == width // 2 + 1:
        weight[-1] = 1.0
    cos, sin = weight * phi.cos(), weight * phi.sin()
    col_inv = torch.cat([torch.cat([cos, sin], dim=1), torch.cat([-sin, cos], dim=1)], dim=0) / width
    row_inv = torch.cat([theta.cos().T, -theta.sin().T], dim=1) / height
    return [m.float() for m in (col_fwd, row_fwd, col_inv, row_inv)]


class SpectralConv2d(nn.Module):
    """Learned complex multiplier on the low frequencies of a fixed-size feature map.

    ``corners=2`` keeps rows [:m] and [-m:] (positive and negative vertical frequencies) and
    columns [:mc]; ``corners=1`` keeps rows [:m] only, the fallback the original ran by accident
    (domain.md section 12, item 3). Modes are capped per level by ``spectral_mode_cap``.

    The weight is a real tensor of shape (corners * rows * cols, 2, in, out), with axis 1 holding
    the real and imaginary parts: complex dtypes stay out of optimizer state, state dicts and
    ``torch.compile``, and the complex product becomes ONE real batched matmul without copying
    the weight (the 2 x 2 complex structure is put on the small data side instead). Complex
    ``bmm`` on CPU was the slowest part of a first version: its backward resolves conjugates one
    matrix at a time.

    The transforms are truncated DFTs written as real matmuls (``_dft_matrices``), not FFTs: on
    the 2-core CPU a 64-point FFT runs at ~17 GFLOP/s while a GEMM runs at ~250, and only 12 of
    64 frequencies are kept. The branch runs in fp32 with autocast disabled, whatever the caller
    uses (engineering-notes section 2), and casts back to the incoming dtype.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int,
                 size: tuple[int, int], corners: int = 2):
        super().__init__()
        height, width = size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size = (height, width)
        self.corners = corners
        self.rows, self.cols = spectral_mode_cap(modes, height, width)
        self.weight = nn.Parameter(
            torch.empty(corners * self.rows * self.cols, 2, in_channels, out_channels))
        nn.init.normal_(self.weight, std=(2 * in_channels) ** -0.5)
        for name, matrix in zip(("col_fwd", "row_fwd", "col_inv", "row_inv"),
                                _dft_matrices(height, width, self.rows, self.cols, corners)):
            # Derived from the size: not part of the state dict, but they follow .to(device).
            self.register_buffer(name, matrix, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self._mix(x.float().contiguous())
        if channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        return y.to(dtype)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        b, c_in, h, w = x.shape
        kr, kc = self.corners * self.rows, self.cols
        k = kr * kc
        # Forward truncated DFT: (B, I, H, W) -> real and imaginary parts, each (K, B, I).
        pq = torch.matmul(x, self.col_fwd)                           # B I H 2kc
        a = torch.matmul(self.row_fwd, pq).view(b, c_in, 2, kr, 2, kc)
        cos_part, sin_part = a.unbind(2)
        cos_p, cos_q = cos_part.unbind(3)
        sin_p, sin_q = sin_part.unbind(3)
        re = (cos_p + sin_q).permute(2, 3, 0, 1).reshape(k, b, c_in)
        im = (cos_q - sin_p).permute(2, 3, 0, 1).reshape(k, b, c_in)
        # Complex product as one real bmm: rows (b, re) = [re, -im], rows (b, im) = [im, re]
        # against the weight's stacked [W_re; W_im] (K, 2I, O).
        block = torch.cat([re, -im, im, re], dim=-1).view(k, 2 * b, 2 * c_in)
        y = torch.bmm(block, self.weight.view(k, 2 * c_in, self.out_channels))  # K 2B O
        # Inverse truncated DFT, columns then rows, back to (B, O, H, W).
        y = y.view(kr, kc, b, 2, self.out_channels).permute(2, 4, 0, 3, 1)
        v = torch.matmul(y.reshape(b, self.out_channels, kr, 2 * kc), self.col_inv)  # B O kr 2W
        v = v.view(b, self.out_channels, kr, 2, w).transpose(2, 3)
        return torch.matmul(self.row_inv, v.reshape(b, self.out_channels, 2 * kr, w))

    def describe(self) -> dict:
        return {"size": list(self.size), "in": self.in_channels, "out": self.out_channels,
                "rows_per_corner": self.rows, "cols": self.cols, "corners": self.corners}


class Lifter(nn.Module):
    """3x3 conv (in -> width), GELU, 3x3 conv (width -> width), as in the original."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class PtychoBlock(nn.Module):
    """y = x + GELU(Spectral(x) + Conv3x3(x)), with no normalisation (the original's "pre-norm"
    documentation notwithstanding, domain.md section 5.3)."""

    def __init__(self, channels: int, modes: int, size: tuple[int, int], corners: int):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes, size, corners)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.spectral(x) + self.conv(x))


class StablePtychoBlock(nn.Module):
    """u = InstanceNorm(GELU(Spectral(x) + Conv3x3(x))); y = x + gamma * u.

    ``layerscale``: gamma is a per-channel parameter starting at ``layerscale_init`` and the
    norm's affine weight starts at 1, so the block starts near the identity but every parameter
    gets a gradient. ``zero_gamma`` (the older variant): no gamma, the norm's weight and bias start
    at 0, an exact identity at init; it was superseded because those weights could stay near zero
    and leave a constant output (domain.md section 5.3). The parameter names ``norm.weight`` and
    ``layerscale`` are what the training telemetry watches.
    """

    def __init__(self, channels: int, modes: int, size: tuple[int, int], corners: int,
                 variant: str, layerscale_init: float):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes, size, corners)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.InstanceNorm2d(channels, affine=True)
        self.variant = variant
        if variant == "layerscale":
            self.layerscale_init = layerscale_init
            self.layerscale = nn.Parameter(torch.full((channels,), float(layerscale_init)))
        else:
            self.layerscale_init = None
            self.register_parameter("layerscale", None)
            nn.init.zeros_(self.norm.weight)
            nn.init.zeros_(self.norm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm(F.gelu(self.spectral(x) + self.conv(x)))
        if self.layerscale is not None:
            u = u * self.layerscale.view(1, -1, 1, 1)
        return x + u


class InputTransform(nn.Module):
    """Fixed transform of the diffraction amplitude before the generator (domain.md 5.1).

    ``instancenorm`` is non-affine, so the transform never has parameters. No clamping: the
    amplitudes are non-negative by construction, and a negative input should show up as NaN
    rather than be silently repaired.
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.norm = nn.InstanceNorm2d(1, affine=False) if kind == "instancenorm" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "sqrt":
            return torch.sqrt(x)
        if self.kind == "log1p":
            return torch.log1p(x)
        if self.norm is not None:
            return self.norm(x)
        return x


class OutputHead(nn.Module):
    """1x1 conv to two channels, read as a complex64 object patch (B, H, W).

    ``real_imag`` reads them as the real and imaginary parts; ``amp_phase`` as amplitude
    sigmoid(a) in (0, 1) and phase pi*tanh(p). The channels are cast to fp32 first so a bf16
    autocast region still yields complex64.
    """

    def __init__(self, in_channels: int, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).float().unbind(1)
        if self.mode == "amp_phase":
            return torch.polar(torch.sigmoid(a), math.pi * torch.tanh(b))
        return torch.complex(a, b)
