"""Building blocks shared by the generators (docs/science.md, 'Spectral convolution', 'Blocks').

The spectral convolution is our own: the original silently ran a one-corner fallback and stored
unreachable weights at coarse levels, so every convention here is explicit and read back by
``describe_model``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

FFT_NORM = "backward"
SPECTRAL_INIT = "complex normal, E|w|^2 = 1/in_channels (each part N(0, 1/(2*in_channels)))"
SPECTRAL_MODE_CAP = (
    "two corners: rows per corner <= H//2; one corner: rows <= H; columns <= W//2 + 1"
)
SPECTRAL_IMPLS = ("dft", "fft")


def spectral_mode_cap(modes: int, height: int, width: int, corners: int = 2) -> tuple[int, int]:
    """Rows per corner and columns a level of size (height, width) can really hold.

    With two corners, rows stop at H//2 per corner so the corners never overlap. One corner is the
    original's accidental fallback, which kept min(modes, H) rows: at N = 64 with 12 modes that is
    12, 12, 12 and 8 rows at the 64/32/16/8 px levels and 6 in the 8 px bottleneck, against
    12, 12, 8, 4 and 4 under the two-corner cap; replicating the original needs its limit.
    Columns stop at W//2 + 1, the whole half-spectrum ``rfft`` returns. That column convention is
    the one under which keeping every mode makes the layer an exact circular convolution
    (tests/engine/test_spectral.py), and it gives the documented 20,462,818-parameter count of
    the capped two-corner hybrid (docs/param_counts.md).
    """
    row_cap = height if corners == 1 else height // 2
    return min(modes, row_cap), min(modes, width // 2 + 1)


@functools.cache
def _dft_matrices(
    height: int, width: int, rows: int, cols: int, corners: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Real fp32 matrices of the truncated 2-D DFT and of its inverse, built once per device.

    They are a cache, not buffers: a model built on the meta device (arms.py validates arms that
    way) then materialised with ``to_empty`` would otherwise hold uninitialised matrices, and
    the state dict stays the learned weight alone. Built in float64 on the CPU, outside any
    inference mode, so a first call under ``torch.inference_mode`` cannot poison the cache.

    Forward, rows first, on channels-last data: ``row_fwd @ x`` with row_fwd = [cos; sin] over
    the kept rows gives A = [A_c; A_s]. Then ``[A_c | A_s] @ col_fwd`` over the kept columns gives
    Re = A_c.cos - A_s.sin and Im = -(A_c.sin + A_s.cos) in the four blocks [Re, -Im, Im, Re]:
    exactly the operand layout of the real form of the complex product (see ``_mix``), so no
    elementwise recombination is needed. Inverse: ``[Yr | Yi] @ col_inv`` = [Vr | Vi] (columns),
    then ``row_inv @ [Vr; Vi]`` = Re(sum over kept modes) (rows), with ``backward``
    normalisation (1/(H*W) on the inverse).

    The column weights c = 1 for k = 0 and for the Nyquist column, 2 otherwise, make the output
    exactly what CPU ``irfft2`` computes from the zero-filled half-spectrum: it uses only the real
    part of the k = 0 and Nyquist columns, where a spectrum built from independent corner weights
    need not be Hermitian. Here sin(0) and sin(pi*x) vanish, so that convention holds by
    construction on every device; cuFFT's C2R may differ on such input (pytorch#154496).
    """
    cpu = dict(dtype=torch.float64, device="cpu")
    with torch.inference_mode(False):
        kept_rows = torch.arange(rows, **cpu)
        if corners == 2:
            kept_rows = torch.cat([kept_rows, torch.arange(height - rows, height, **cpu)])
        theta = 2 * math.pi * torch.outer(kept_rows, torch.arange(height, **cpu)) / height
        phi = (
            2 * math.pi * torch.outer(torch.arange(cols, **cpu), torch.arange(width, **cpu)) / width
        )
        row_fwd = torch.cat([theta.cos(), theta.sin()], dim=0)
        re = torch.cat([phi.cos().T, -phi.sin().T], dim=0)  # rows: the A_c part, then A_s
        im = torch.cat([-phi.sin().T, -phi.cos().T], dim=0)
        col_fwd = torch.cat([re, -im, im, re], dim=1)
        weight = torch.full((cols, 1), 2.0, **cpu)
        weight[0] = 1.0
        if width % 2 == 0 and cols == width // 2 + 1:
            weight[-1] = 1.0
        cos, sin = weight * phi.cos(), weight * phi.sin()
        col_inv = torch.cat([torch.cat([cos, sin], 1), torch.cat([-sin, cos], 1)], 0) / width
        row_inv = torch.cat([theta.cos().T, -theta.sin().T], dim=1) / height
        return tuple(m.to(device, torch.float32) for m in (row_fwd, col_fwd, col_inv, row_inv))


class SpectralConv2d(nn.Module):
    """Learned complex multiplier on the low frequencies of a fixed-size feature map.

    ``corners=2`` keeps rows [:m] and [-m:] (positive and negative vertical frequencies) and
    columns [:mc]; ``corners=1`` keeps rows [:m] only, the fallback the original ran by accident
    (docs/science.md, 'One-corner spectral fallback'). Modes are capped per level by
    ``spectral_mode_cap``.

    The weight is a real tensor of shape (corners * rows * cols, 2, in, out): modes in row-major
    order (top corner, then bottom corner), axis 1 the real and imaginary parts. Complex dtypes
    stay out of optimizer state, state dicts and ``torch.compile``, and the complex product is
    ONE real batched matmul that reads the weight in place (the 2 x 2 complex structure goes on
    the small data side). Complex ``bmm`` was the slowest part of a first version on CPU: its
    backward resolves conjugates one matrix at a time.

    The transforms are truncated DFTs written as real matmuls (``_dft_matrices``), not FFTs:
    with 12 of 64 frequencies kept they cost a few percent of a 3x3 conv, a 64-point FFT runs at
    ~17 GFLOP/s on the 2-core CPU against ~250 for a GEMM, and no C2R transform means no
    backend-dependent Hermitian handling. They run on channels-last data, the layout the models
    use for their convolutions, so the big operands fold into a few large GEMMs; the output is
    channels-last whatever the input. The branch runs in fp32 with autocast disabled (FFTs have
    no bf16 kernels, and CUDA autocast would not upcast them) and casts back to the incoming dtype.

    ``impl="fft"`` computes the same layer the way the original did, ``rfft2`` -> mix the kept
    modes -> ``irfft2`` of the zero-filled half-spectrum, from the same weight. On the CPU the two
    agree to float rounding (tested); on CUDA, cuFFT's C2R handles the non-Hermitian kx = 0 and
    Nyquist columns (always non-Hermitian with one corner) differently, so only "fft" reproduces
    the numerics the original ran on its GPU.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int,
        size: tuple[int, int],
        corners: int = 2,
        impl: str = "dft",
    ):
        super().__init__()
        height, width = size
        if impl not in SPECTRAL_IMPLS:
            raise ValueError(f"spectral impl {impl!r}; allowed: {', '.join(SPECTRAL_IMPLS)}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size = (height, width)
        self.corners = corners
        self.impl = impl
        self.rows, self.cols = spectral_mode_cap(modes, height, width, corners)
        self.weight = nn.Parameter(
            torch.empty(corners * self.rows * self.cols, 2, in_channels, out_channels)
        )
        nn.init.normal_(self.weight, std=(2 * in_channels) ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = self._mix_fft(x.float()) if self.impl == "fft" else self._mix(x.float())
        return y.to(dtype)

    def _kept_rows(self, height: int) -> list[int]:
        top = list(range(self.rows))
        return top + list(range(height - self.rows, height)) if self.corners == 2 else top

    def _mix_fft(self, x: torch.Tensor) -> torch.Tensor:
        """The original's route: rfft2, complex product on the kept modes, irfft2."""
        b, _, h, w = x.shape
        rows = torch.tensor(self._kept_rows(h), device=x.device)
        spectrum = torch.fft.rfft2(x, norm=FFT_NORM)
        kept = spectrum.index_select(-2, rows)[..., : self.cols]  # (B, I, kr, kc)
        kr = len(rows)
        weight = torch.complex(self.weight[:, 0], self.weight[:, 1])  # (kr*kc, I, O)
        weight = weight.view(kr, self.cols, self.in_channels, self.out_channels)
        mixed = torch.einsum("birc,rcio->borc", kept, weight)
        out = torch.zeros(b, self.out_channels, h, w // 2 + 1, dtype=mixed.dtype, device=x.device)
        out[..., : self.cols] = out[..., : self.cols].index_copy(-2, rows, mixed)
        return torch.fft.irfft2(out, s=(h, w), norm=FFT_NORM)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        b, c_in, h, w = x.shape
        c_out = self.out_channels
        kr, kc = self.corners * self.rows, self.cols
        k = kr * kc
        row_fwd, col_fwd, col_inv, row_inv = _dft_matrices(
            h, w, self.rows, self.cols, self.corners, x.device
        )
        # Rows: (2kr, H) @ (H, W*C) per sample, on the channels-last view of x.
        x = x.permute(0, 2, 3, 1).reshape(b, h, w * c_in)
        a = torch.bmm(row_fwd.expand(b, -1, -1), x).view(b, 2, kr, w, c_in)
        # Columns: [A_c | A_s] @ (2W, 4kc) -> blocks [Re, -Im, Im, Re], one GEMM.
        a = torch.matmul(a.permute(0, 2, 4, 1, 3).reshape(b * kr * c_in, 2 * w), col_fwd)
        # Complex product as one real bmm: row (b, re) = [Re, -Im], row (b, im) = [Im, Re],
        # against the weight's stacked [W_re; W_im] (K, 2I, O).
        block = a.view(b, kr, c_in, 4, kc).permute(1, 4, 0, 3, 2).reshape(k, 2 * b, 2 * c_in)
        y = torch.bmm(block, self.weight.view(k, 2 * c_in, c_out))
        # Inverse columns on [Yr | Yi], then inverse rows straight into channels-last output.
        y = y.view(kr, kc, b, 2, c_out).permute(2, 0, 4, 3, 1).reshape(b * kr * c_out, 2 * kc)
        v = torch.matmul(y, col_inv).view(b, kr, c_out, 2, w)
        v = v.permute(0, 3, 1, 4, 2).reshape(b, 2 * kr, w * c_out)
        out = torch.bmm(row_inv.expand(b, -1, -1), v)
        return out.view(b, h, w, c_out).permute(0, 3, 1, 2)

    def describe(self) -> dict:
        return {
            "size": list(self.size),
            "in": self.in_channels,
            "out": self.out_channels,
            "rows_per_corner": self.rows,
            "cols": self.cols,
            "corners": self.corners,
            "impl": self.impl,
        }


def channel_schedule(width: int, levels: int, cap: int = 0) -> list[int]:
    """Channels per level: doubling from ``width``, each step limited to ``cap`` (0 = no cap)."""
    channels = [width]
    for _ in range(levels - 1):
        doubled = 2 * channels[-1]
        channels.append(min(doubled, cap) if cap else doubled)
    return channels


def decoder_pairs(channels: list[int]) -> list[tuple[int, int]]:
    """(coarse, fine) channel pairs for the decoder levels, coarsest first, mirroring the
    encoder schedule (so a capped schedule is mirrored as capped)."""
    return list(zip(channels[:0:-1], channels[-2::-1]))


def use_channels_last(model: nn.Module) -> nn.Module:
    """Store every conv weight channels-last, so activations stay channels-last end to end.

    oneDNN (CPU) and cuDNN pick the channels-last kernels when a conv's weight is, whatever the
    input; the spectral layers return channels-last too. On the 2-core CPU the hybrid's training
    step was ~8 % faster than with NCHW convs, and the spectral layer ~6 % faster again when it
    worked on channels-last data instead of converting. Only conv weights are touched: the
    spectral weight is not an image and must stay contiguous for its ``view``.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.to(memory_format=torch.channels_last)
    return model


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
    documentation notwithstanding; docs/science.md, 'Blocks')."""

    def __init__(
        self, channels: int, modes: int, size: tuple[int, int], corners: int, impl: str = "dft"
    ):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes, size, corners, impl)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.spectral(x) + self.conv(x))


class StablePtychoBlock(nn.Module):
    """u = InstanceNorm(GELU(Spectral(x) + Conv3x3(x))); y = x + gamma * u.

    ``layerscale``: gamma is a per-channel parameter starting at ``layerscale_init`` and the
    norm's affine weight starts at 1, so the block starts near the identity but every parameter
    gets a gradient. ``zero_gamma`` (the older variant): no gamma, the norm's weight and bias start
    at 0, an exact identity at init; it was superseded because those weights could stay near zero
    and leave a constant output (docs/science.md, 'Blocks'). The parameter names ``norm.weight``
    and ``layerscale`` are what the training telemetry watches.
    """

    def __init__(
        self,
        channels: int,
        modes: int,
        size: tuple[int, int],
        corners: int,
        variant: str,
        layerscale_init: float,
        impl: str = "dft",
    ):
        super().__init__()
        self.spectral = SpectralConv2d(channels, channels, modes, size, corners, impl)
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
    """Fixed transform of the diffraction amplitude before the generator (docs/science.md,
    'Common contract').

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


# fno_blocks above this turn gradient checkpointing on under grad_checkpointing = "auto": the
# original ran out of memory at fno_blocks = 8 and planned checkpointing beyond 6.
AUTO_CHECKPOINT_ABOVE_BLOCKS = 6


def run_level(model: nn.Module, level: nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``level(*args)``, or the same under torch.utils.checkpoint when the model checkpoints.

    Non-reentrant checkpointing recomputes the level's forward in the backward pass from its
    inputs: the same kernels on the same values, so gradients are unchanged (the generators have
    no dropout or other randomness to replay). Outside autograd (validation, evaluation) it is a
    plain call.
    """
    if getattr(model, "grad_checkpointing", False) and torch.is_grad_enabled():
        return checkpoint(level, *args, use_reentrant=False)
    return level(*args)
