"""The spectral convolution against references that need no library: circular conv2d and FFTs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.models.layers import SpectralConv2d, spectral_mode_cap


def kept_rows(layer: SpectralConv2d) -> list[int]:
    h = layer.size[0]
    rows = list(range(layer.rows))
    return rows + list(range(h - layer.rows, h)) if layer.corners == 2 else rows


def complex_weight(layer: SpectralConv2d) -> torch.Tensor:
    """The weight as complex (rows kept, cols, in, out), in the documented layout."""
    w = layer.weight.detach()
    k, _, c_in, c_out = w.shape
    return torch.complex(w[:, 0], w[:, 1]).view(len(kept_rows(layer)), layer.cols, c_in, c_out)


def set_complex_weight(layer: SpectralConv2d, w: torch.Tensor) -> None:
    """Inverse of ``complex_weight``: w is complex (rows kept, cols, in, out)."""
    w = w.reshape(-1, *w.shape[2:])
    with torch.no_grad():
        layer.weight.copy_(torch.stack([w.real, w.imag], dim=1))


def fft_reference(layer: SpectralConv2d, x: torch.Tensor) -> torch.Tensor:
    """The textbook layer: rfft2, mix the kept block into a zero spectrum, CPU irfft2."""
    h, w = layer.size
    spectrum = torch.fft.rfft2(x)
    out = torch.zeros(x.shape[0], layer.out_channels, h, w // 2 + 1, dtype=torch.complex64)
    rows = kept_rows(layer)
    out[:, :, rows, : layer.cols] = torch.einsum(
        "bixy,xyio->boxy", spectrum[:, :, rows, : layer.cols], complex_weight(layer)
    )
    return torch.fft.irfft2(out, s=(h, w))


def test_mode_cap_keeps_at_most_half_the_rows_per_corner_and_the_whole_half_spectrum():
    assert spectral_mode_cap(12, 64, 64) == (12, 12)
    assert spectral_mode_cap(12, 16, 16) == (8, 9)
    assert spectral_mode_cap(12, 8, 8) == (4, 5)
    assert spectral_mode_cap(6, 8, 8) == (4, 5)
    assert spectral_mode_cap(12, 2, 2) == (1, 2)


def test_spectral_conv_equals_circular_conv2d_when_all_modes_are_kept():
    torch.manual_seed(0)
    h = w = 8
    c_in, c_out = 2, 3
    layer = SpectralConv2d(c_in, c_out, modes=h, size=(h, w), corners=2)
    assert (layer.rows, layer.cols) == (h // 2, w // 2 + 1)  # every frequency, exactly once
    kernel = torch.randn(c_out, c_in, 3, 3)
    # conv2d is a cross-correlation: y[p] = sum_d k[d] x[p + d - 1] = sum_q g[q] x[p - q]
    # with g[(1 - d) mod H] = k[d]; the layer multiplies by the DFT of g.
    g = torch.zeros(c_out, c_in, h, w)
    for dy in range(3):
        for dx in range(3):
            g[:, :, (1 - dy) % h, (1 - dx) % w] = kernel[:, :, dy, dx]
    g_hat = torch.fft.rfft2(g)  # (out, in, H, W//2 + 1)
    rows = kept_rows(layer)
    set_complex_weight(layer, g_hat[:, :, rows, : layer.cols].permute(2, 3, 1, 0))

    x = torch.randn(4, c_in, h, w)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), kernel)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("corners", [1, 2])
@pytest.mark.parametrize("size, modes", [((16, 16), 3), ((8, 8), 12), ((12, 10), 4)])
def test_spectral_conv_matches_rfft2_layer_with_arbitrary_weights(corners, size, modes):
    """Random weights make the k = 0 and Nyquist columns non-Hermitian; the layer must then
    agree with CPU irfft2, which uses only their real parts. (8, 8) with 12 modes caps to all
    rows and the Nyquist column."""
    torch.manual_seed(1)
    layer = SpectralConv2d(3, 2, modes, size, corners)
    x = torch.randn(5, 3, *size)
    torch.testing.assert_close(layer(x), fft_reference(layer, x), atol=1e-5, rtol=1e-4)


def test_output_is_the_real_part_of_a_complex_inverse_dft():
    """The device-independent statement of the k = 0 / Nyquist convention: the output is
    Re(ifft2) of the spectrum with every column except k = 0 and Nyquist doubled. Only complex
    (C2C) transforms are used, whose meaning does not depend on the FFT backend."""
    torch.manual_seed(2)
    h = w = 8
    layer = SpectralConv2d(2, 2, 12, (h, w), corners=2)
    x = torch.randn(3, 2, h, w)
    spectrum = torch.fft.fft2(x)[:, :, kept_rows(layer), : layer.cols]
    mixed = torch.einsum("bixy,xyio->boxy", spectrum, complex_weight(layer))
    full = torch.zeros(3, 2, h, w, dtype=torch.complex64)
    full[:, :, kept_rows(layer), : layer.cols] = mixed
    full[:, :, :, 1 : w // 2] *= 2
    torch.testing.assert_close(layer(x), torch.fft.ifft2(full).real, atol=1e-5, rtol=1e-4)


def test_one_corner_drops_the_negative_vertical_frequencies():
    torch.manual_seed(3)
    h = w = 16
    y = torch.arange(h, dtype=torch.float32).view(h, 1)
    x = torch.zeros(1, 1, h, w)
    x[0, 0] = torch.cos(2 * torch.pi * 3 * y / h).expand(h, w)  # energy at rows +3 and -3
    one = SpectralConv2d(1, 1, 4, (h, w), corners=1)
    two = SpectralConv2d(1, 1, 4, (h, w), corners=2)
    with torch.no_grad():
        two.weight.zero_()
        two.weight[:, 0] = 1.0  # identity multiplier on both corners
        one.weight.zero_()
        one.weight[:, 0] = 1.0
    torch.testing.assert_close(two(x), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one(x), x / 2, atol=1e-5, rtol=1e-5)  # half of a real cosine


def test_spectral_branch_stays_fp32_under_bf16_autocast():
    torch.manual_seed(4)
    layer = SpectralConv2d(4, 4, 4, (16, 16), corners=2)
    x = torch.randn(2, 4, 16, 16).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    expected = layer(x.float())  # the same input, computed in fp32 throughout
    torch.testing.assert_close(y.float(), expected, atol=1e-2, rtol=1e-2)
    assert torch.equal(y, expected.bfloat16())  # only the final cast rounds


def test_spectral_conv_accepts_either_memory_format_and_returns_channels_last():
    torch.manual_seed(5)
    layer = SpectralConv2d(4, 4, 4, (16, 16), corners=2)
    x = torch.randn(2, 4, 16, 16)
    y_nchw = layer(x)
    y_nhwc = layer(x.contiguous(memory_format=torch.channels_last))
    assert y_nchw.is_contiguous(memory_format=torch.channels_last)
    assert y_nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_nhwc, y_nchw)


def test_state_dict_holds_only_the_learned_weight():
    layer = SpectralConv2d(2, 2, 4, (16, 16), corners=2)
    assert list(layer.state_dict()) == ["weight"]


def test_first_call_under_inference_mode_does_not_break_later_training():
    """The DFT matrices are cached on first use; inference tensors in that cache would make
    every later backward fail."""
    layer = SpectralConv2d(2, 2, 3, (10, 10), corners=2)  # a size no other test uses
    with torch.inference_mode():
        layer(torch.randn(1, 2, 10, 10))
    layer(torch.randn(1, 2, 10, 10)).sum().backward()
    assert layer.weight.grad is not None


def test_layer_built_on_meta_and_materialised_matches_one_built_directly():
    torch.manual_seed(6)
    direct = SpectralConv2d(3, 3, 4, (16, 16), corners=2)
    with torch.device("meta"):
        lazy = SpectralConv2d(3, 3, 4, (16, 16), corners=2)
    lazy = lazy.to_empty(device="cpu")
    lazy.load_state_dict(direct.state_dict())
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(lazy(x), direct(x), rtol=0, atol=0)
