"""Generators: shapes, knobs that must change the model, geometry errors, parameter counts."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from engine.config import ARCHITECTURES, ModelConfig
from engine.errors import ConfigError
from engine.models import BUILDERS, build_model, describe_model
from engine.models.layers import SpectralConv2d, StablePtychoBlock

SMALL = dict(fno_width=4, fno_modes=4, fno_blocks=3, fno_cnn_blocks=1)


def small(arch: str, **overrides) -> ModelConfig:
    return ModelConfig(architecture=arch, **{**SMALL, **overrides})


def on_meta(cfg: ModelConfig, n: int = 64) -> torch.nn.Module:
    """Build without allocating weights, as arms.py does to validate an arm."""
    with torch.device("meta"):
        return build_model(cfg, n)


def seeded(cfg: ModelConfig, n: int = 64, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg, n).eval()


def amplitudes(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, n, n, generator=torch.Generator().manual_seed(seed))


def test_registry_offers_exactly_the_configured_architectures():
    assert tuple(BUILDERS) == ARCHITECTURES


@pytest.mark.parametrize("n", [64, 128])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_maps_amplitude_to_a_complex_patch(arch, n):
    model = seeded(small(arch), n)
    with torch.no_grad():
        out = model(amplitudes(2, n))
    assert out.shape == (2, n, n)
    assert out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_prediction_does_not_depend_on_the_batch_it_sits_in(arch):
    model = seeded(small(arch, input_transform="instancenorm"))
    x = amplitudes(4, 64)
    with torch.no_grad():
        alone = model(x[2:3])
        in_batch = model(x)[2:3]
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)


def test_amp_phase_head_bounds_amplitude_and_phase():
    model = seeded(small("hybrid", output_mode="amp_phase"))
    with torch.no_grad():
        out = model(amplitudes(2, 64))
    assert ((out.abs() > 0) & (out.abs() < 1)).all()
    assert (out.angle().abs() <= math.pi).all()


# --- every knob the builder reads must change the model; the others must not -------------------

ALTERNATIVE = {
    "fno_width": 6,
    "fno_modes": 3,
    "fno_blocks": 2,
    "fno_cnn_blocks": 2,
    "max_hidden_channels": 8,
    "output_mode": "amp_phase",
    "input_transform": "sqrt",
    "stable_variant": "zero_gamma",
    "layerscale_init": 0.5,
    "spectral_corners": 1,
    "spectral_impl": "fft",
    "grad_checkpointing": "blocks",
}

# Knobs that choose how the same function is computed, not which function: on the CPU the
# output agrees to rounding (tests/engine/test_spectral.py), so they are checked through what the
# live modules report instead.
IMPLEMENTATION_KNOBS = {
    "spectral_impl": lambda d: {m["impl"] for m in d["spectral_modes"]},
    # Same outputs and gradients by design (tests/test_deep_modes.py); the model reports it.
    "grad_checkpointing": lambda d: d["grad_checkpointing"],
}


def test_alternatives_cover_every_model_knob():
    assert set(ALTERNATIVE) | {"architecture"} == {f.name for f in dataclasses.fields(ModelConfig)}


def fingerprint(cfg: ModelConfig) -> tuple:
    """State-dict shapes and the output for a fixed input, weights from a fixed seed."""
    model = seeded(cfg)
    with torch.no_grad():
        out = model(amplitudes(2, 64))
    shapes = tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return shapes, out


def same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and torch.equal(a[1], b[1])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_knob_listed_as_used_changes_the_model(arch):
    base = small(arch)
    used = describe_model(on_meta(base))["knobs_used"]
    reference = fingerprint(base)
    for knob in used:
        if knob == "architecture":
            continue
        changed = dataclasses.replace(base, **{knob: ALTERNATIVE[knob]})
        if knob in IMPLEMENTATION_KNOBS:
            read = IMPLEMENTATION_KNOBS[knob]
            assert read(describe_model(on_meta(changed))) != read(describe_model(on_meta(base)))
            continue
        assert not same(fingerprint(changed), reference), f"{arch}: {knob} changed nothing"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_knobs_not_listed_as_used_leave_the_model_unchanged(arch):
    base = small(arch)
    used = describe_model(on_meta(base))["knobs_used"]
    reference = fingerprint(base)
    for knob in set(ALTERNATIVE) - set(used):
        changed = dataclasses.replace(base, **{knob: ALTERNATIVE[knob]})
        assert same(fingerprint(changed), reference), f"{arch}: unlisted {knob} changed the model"


def test_knobs_used_per_architecture():
    used = {a: describe_model(on_meta(small(a)))["knobs_used"] for a in ARCHITECTURES}
    assert used["cnn"] == [
        "architecture",
        "fno_width",
        "fno_blocks",
        "output_mode",
        "input_transform",
        "grad_checkpointing",
    ]
    assert "fno_cnn_blocks" in used["fno"] and "max_hidden_channels" not in used["fno"]
    assert "max_hidden_channels" in used["hybrid"] and "stable_variant" not in used["hybrid"]
    assert {"stable_variant", "layerscale_init"} <= set(used["stable_hybrid"])
    zero_gamma = on_meta(small("stable_hybrid", stable_variant="zero_gamma"))
    assert "layerscale_init" not in describe_model(zero_gamma)["knobs_used"]


# --- channel cap and corners --------------------------------------------------------------------


def test_max_hidden_channels_caps_the_schedule_and_the_parameter_count():
    uncapped = describe_model(on_meta(ModelConfig(fno_blocks=6)))
    capped = describe_model(on_meta(ModelConfig(fno_blocks=6, max_hidden_channels=512)))
    assert uncapped["channels"] == [32, 64, 128, 256, 512, 1024]
    assert capped["channels"] == [32, 64, 128, 256, 512, 512]
    assert capped["parameters"] < uncapped["parameters"]
    assert capped["bottleneck_modes"]["in"] == 512


def test_capped_decoder_mirrors_the_capped_schedule():
    model = seeded(small("hybrid", fno_blocks=4, max_hidden_channels=8))
    assert model.channels == [4, 8, 8, 8]
    with torch.no_grad():
        assert model(amplitudes(1, 64)).shape == (1, 64, 64)


def test_spectral_corners_changes_the_parameter_count():
    two = describe_model(on_meta(ModelConfig(spectral_corners=2)))
    one = describe_model(on_meta(ModelConfig(spectral_corners=1)))
    assert {m["corners"] for m in one["spectral_modes"]} == {1}
    # Each spectral weight holds corners x rows x cols complex modes of (in x out), 2 reals each.
    for d in (one, two):
        spectral = sum(
            m["corners"] * m["rows_per_corner"] * m["cols"] * m["in"] * m["out"]
            for m in d["spectral_modes"]
        )
        assert d["parameters"] - d["parameters_complex_as_one"] == spectral


def test_one_corner_keeps_the_original_rows_per_level():
    """The original's one-corner fallback kept min(modes, H) rows: 12, 12, 12, 8 at the 64, 32,
    16 and 8 px levels and 6 in the 8 px bottleneck (two corners: 12, 12, 8, 4 and 4)."""
    for corners, rows in ((1, [12, 12, 12, 8, 6]), (2, [12, 12, 8, 4, 4])):
        d = describe_model(on_meta(ModelConfig(spectral_corners=corners)))
        assert [m["rows_per_corner"] for m in d["spectral_modes"]] == rows
        assert [m["cols"] for m in d["spectral_modes"]] == [12, 12, 9, 5, 5]


# --- stable blocks ------------------------------------------------------------------------------


def stable_block(variant: str, layerscale_init: float = 1e-3) -> StablePtychoBlock:
    torch.manual_seed(0)
    return StablePtychoBlock(8, 4, (16, 16), 2, variant, layerscale_init)


def test_layerscale_block_is_near_identity_at_init_and_keeps_the_shape():
    block = stable_block("layerscale")
    x = torch.randn(2, 8, 16, 16)
    y = block(x)
    assert y.shape == x.shape
    # u is instance-normalised (unit scale), so the update is about layerscale_init in size.
    assert (y - x).abs().max() < 10 * 1e-3
    assert (y - x).abs().max() > 0


def test_zero_gamma_block_is_exactly_identity_at_init():
    block = stable_block("zero_gamma")
    x = torch.randn(2, 8, 16, 16)
    assert torch.equal(block(x), x)
    assert block.layerscale is None


def test_layerscale_grad_flow():
    model = seeded(small("stable_hybrid")).train()
    loss = model(amplitudes(2, 64)).abs().mean()
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if name.endswith("layerscale")}
    assert len(grads) == SMALL["fno_blocks"] + 1  # every encoder level and the bottleneck
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name


def test_stable_state_dict_exposes_norm_weight_and_layerscale():
    keys = list(on_meta(small("stable_hybrid")).state_dict())
    assert any(k.endswith("norm.weight") for k in keys)
    assert any(k.endswith("layerscale") for k in keys)
    zero_gamma = list(on_meta(small("stable_hybrid", stable_variant="zero_gamma")).state_dict())
    assert any(k.endswith("norm.weight") for k in zero_gamma)
    assert not any("layerscale" in k for k in zero_gamma)


# --- geometry errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, n, words",
    [
        (
            dict(architecture="unet"),
            64,
            ["architecture", "'unet'", "'cnn', 'fno', 'hybrid', 'stable_hybrid'"],
        ),
        (dict(architecture="hybrid", fno_modes=33), 64, ["fno_modes=33", "N=64", "1 to 32"]),
        (dict(architecture="fno", fno_modes=17), 32, ["fno_modes=17", "N=32", "1 to 16"]),
        (
            dict(architecture="hybrid", fno_blocks=6),
            80,
            ["fno_blocks=6", "divisible by 2^5 = 32", "N=80", "at most 5"],
        ),
        (dict(architecture="hybrid", fno_blocks=6), 48, ["fno_blocks=6", "1.5 px", "at most 5"]),
        (dict(architecture="hybrid", fno_blocks=7), 64, ["fno_blocks=7", "1 px", "at most 6"]),
        (
            dict(architecture="stable_hybrid", fno_blocks=8),
            64,
            ["fno_blocks=8", "0.5 px", "at most 6"],
        ),
        (dict(architecture="cnn", fno_blocks=8), 64, ["fno_blocks=8", "0.5 px", "at most 7"]),
        (
            dict(architecture="hybrid", max_hidden_channels=16),
            64,
            ["max_hidden_channels=16", "fno_width=32", "0 (no cap)"],
        ),
    ],
)
def test_impossible_geometry_raises_config_error_naming_the_knob(overrides, n, words):
    with pytest.raises(ConfigError) as err:
        on_meta(ModelConfig(**overrides), n)
    for word in words:
        assert word in str(err.value)


def test_cnn_accepts_a_one_pixel_bottleneck():
    assert (
        describe_model(on_meta(ModelConfig(architecture="cnn", fno_blocks=7)))["channels"][-1]
        == 32 * 2**6
    )


# --- parameter counts ---------------------------------------------------------------------------


def original_layout_count(model: torch.nn.Module) -> int:
    """Complex-as-one count the original would report: one corner, full 12 x 12 weights at every
    level and 6 x 6 in the bottleneck (docs/science.md, 'Parameter counts'), with our
    non-spectral layers."""
    d = describe_model(model)
    spectral = sum(m.weight.numel() // 2 for m in model.modules() if isinstance(m, SpectralConv2d))
    non_spectral = d["parameters_complex_as_one"] - spectral
    return non_spectral + sum(c * c * 144 for c in d["channels"]) + d["channels"][-1] ** 2 * 36


def test_capped_two_corner_hybrid_matches_the_engineering_notes():
    d = describe_model(on_meta(ModelConfig()))
    assert d["parameters"] == 20_462_818  # real numbers, columns <= W/2 + 1
    assert d["parameters_complex_as_one"] == 11_386_082
    assert [(m["rows_per_corner"], m["cols"]) for m in d["spectral_modes"]] == [
        (12, 12),
        (12, 12),
        (8, 9),
        (4, 5),
        (4, 5),
    ]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (dict(), 17_202_402),
        (dict(architecture="stable_hybrid"), 17_204_610),
        (dict(fno_blocks=6), 276_075_746),
        (dict(fno_blocks=6, max_hidden_channels=512), 118_263_522),
    ],
)
def test_non_spectral_layers_cross_check_domain_table(overrides, expected):
    assert original_layout_count(on_meta(ModelConfig(**overrides))) == expected


def test_unet_baseline_has_about_1_9_million_parameters():
    assert describe_model(on_meta(ModelConfig(architecture="cnn")))["parameters"] == 1_925_058


def test_cascaded_fno_matches_0_66_million_in_the_original_convention():
    model = on_meta(ModelConfig(architecture="fno", spectral_corners=1))
    assert describe_model(model)["parameters_complex_as_one"] == 656_002


# --- description --------------------------------------------------------------------------------


def test_describe_model_reads_back_the_live_modules_as_json():
    d = describe_model(
        on_meta(
            ModelConfig(
                architecture="stable_hybrid",
                fno_blocks=3,
                max_hidden_channels=64,
                output_mode="amp_phase",
                input_transform="log1p",
            )
        )
    )
    json.dumps(d)
    assert d["architecture"] == "stable_hybrid"
    assert d["channels"] == [32, 64, 64]
    assert d["bottleneck_modes"] == {
        "size": [16, 16],
        "in": 64,
        "out": 64,
        "rows_per_corner": 6,
        "cols": 6,
        "corners": 2,
        "impl": "dft",
    }
    assert d["stable_variant"] == "layerscale" and d["layerscale_init"] == 1e-3
    assert d["output_mode"] == "amp_phase" and d["input_transform"] == "log1p"
    assert d["fft_norm"] == "backward" and "1/in_channels" in d["spectral_init"]
    assert sum(d["parameters_by_module"].values()) == d["parameters"]


def test_describe_cnn_has_no_spectral_fields():
    d = describe_model(on_meta(ModelConfig(architecture="cnn")))
    assert d["spectral_modes"] == [] and d["bottleneck_modes"] is None
    assert d["fft_norm"] is None and d["stable_variant"] is None
    assert d["parameters"] == d["parameters_complex_as_one"]


def test_param_counts_doc_is_current():
    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "param_counts", repo / "scripts" / "param_counts.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (repo / "docs" / "param_counts.md").read_text() == script.render(), (
        "docs/param_counts.md is stale: run python scripts/param_counts.py"
    )
