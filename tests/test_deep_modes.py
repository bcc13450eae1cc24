"""Gradient checkpointing and precision modes: what they change, and what they must not.

Checkpointing recomputes each level's forward in the backward pass; on the CPU in deterministic
fp32 that is the same arithmetic, so gradients, and therefore whole runs, must be bit-identical to
the plain model, also across a kill and a resume. Precision modes change numerics on purpose:
bf16 must train and stay close to fp32, and a mode the device cannot honour is refused with the
knob named.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from engine.config import ArmConfig, DataConfig, ModelConfig, TrainConfig
from engine.errors import ConfigError
from engine.models import build_model, describe_model
from engine.models.layers import AUTO_CHECKPOINT_ABOVE_BLOCKS
from engine.runs.telemetry import iter_records
from engine.training.checkpoint import _config_diff, _current_form
from engine.training.devices import precision_context
from tests.cli import fnotui as run_fnotui
from tests.cli import fnotui_argv
from tests.tiny import tiny_study_toml

pytestmark = pytest.mark.slow  # the run tests start real engines

ARCHITECTURES = ("cnn", "fno", "hybrid", "stable_hybrid")


def _grads(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(cfg, 32)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    out = model(x)
    (out.real.square().mean() + out.imag.abs().mean()).backward()
    return out.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_checkpointing_leaves_outputs_and_gradients_bit_identical(architecture):
    base = ModelConfig(architecture=architecture, fno_width=8, fno_blocks=3, fno_modes=4)
    out_off, grad_off = _grads(base)
    out_on, grad_on = _grads(dataclasses.replace(base, grad_checkpointing="blocks"))
    assert torch.equal(out_off, out_on)
    assert torch.equal(grad_off, grad_on)  # exact: the recomputation is the same arithmetic


@pytest.mark.parametrize(
    "setting, blocks, active",
    [
        ("off", 8, False),
        ("blocks", 2, True),
        ("auto", AUTO_CHECKPOINT_ABOVE_BLOCKS, False),
        ("auto", AUTO_CHECKPOINT_ABOVE_BLOCKS + 1, True),
    ],
)
def test_the_model_reports_whether_it_checkpoints(setting, blocks, active):
    cfg = ModelConfig(architecture="fno", fno_width=4, fno_blocks=blocks, fno_modes=4)
    model = build_model(dataclasses.replace(cfg, grad_checkpointing=setting), 32)
    assert describe_model(model)["grad_checkpointing"] is active
    assert "grad_checkpointing" in model.knobs_used


def test_checkpointing_is_a_plain_call_without_autograd():
    cfg = ModelConfig(architecture="hybrid", fno_width=4, fno_blocks=2, fno_modes=4)
    model = build_model(dataclasses.replace(cfg, grad_checkpointing="blocks"), 32)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 32, 32))
    assert out.dtype == torch.complex64 and not out.requires_grad


def test_a_checkpoint_from_before_new_knobs_still_resumes():
    # A config.json written before grad_checkpointing and precision existed, with the retired
    # gridsize: the same arm, so resume must accept it; a real change must still be refused.
    cfg = ArmConfig("a", DataConfig(), ModelConfig(), TrainConfig())
    old = cfg.to_dict()
    del old["model"]["grad_checkpointing"], old["train"]["precision"]
    old["data"]["gridsize"] = 1
    assert _config_diff(_current_form(old), _current_form(cfg.to_dict())) == []
    changed = cfg.to_dict()
    changed["train"]["lr"] = 0.5
    assert _config_diff(_current_form(old), _current_form(changed)) == ["train.lr: 0.001 -> 0.5"]


def test_tf32_on_the_cpu_is_refused_naming_the_knob():
    with pytest.raises(ConfigError, match=r"train\.precision = 'tf32'.*only on CUDA"):
        precision_context("tf32", torch.device("cpu"))


def test_bf16_autocasts_the_body_but_keeps_the_output_complex64():
    autocast, info = precision_context("bf16", torch.device("cpu"))
    assert info["autocast"] == "bfloat16" and info["kept_fp32"]
    cfg = ModelConfig(architecture="hybrid", fno_width=8, fno_blocks=2, fno_modes=4)
    model = build_model(cfg, 32)
    seen = []
    model.lifter.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with autocast():
        out = model(torch.rand(2, 1, 32, 32))
    assert seen == [torch.bfloat16]  # the network body really ran in bf16
    assert out.dtype == torch.complex64


# ------------------------------------------------------------------------- real runs

REPO = Path(__file__).resolve().parents[1]

ARMS = tiny_study_toml(
    "deep",
    {"plain": {}, "bf16": {"precision": "bf16"}, "tf32": {"precision": "tf32"}},
    data={"train_stride": 4, "set_phi": True},
    epochs=5,
    infer_batch_size=16,
    seed=5,
    architecture="hybrid",
    lr=2e-3,
    grad_clip=1.0,
)


def fnotui(args, cwd, **kw) -> subprocess.CompletedProcess:
    return run_fnotui("--arms", "arms.toml", *args, cwd=cwd, **kw)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deep")
    (root / "arms.toml").write_text(ARMS)
    out = fnotui(["--run", "plain", "--out", "ref"], root)
    assert out.returncode == 0, out.stderr
    return root


def _steps(run: Path) -> list[float]:
    return [r["loss"] for r in iter_records(run / "telemetry.jsonl") if r["type"] == "step"]


def test_a_checkpointed_run_killed_and_resumed_equals_the_plain_uninterrupted_one(study):
    run = study / "ckpt" / "plain"
    proc = subprocess.Popen(
        fnotui_argv("--arms", "arms.toml", "--run", "plain")
        + ["--out", "ckpt", "--set", "grad_checkpointing=blocks"],
        cwd=study,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    # After the second epoch's checkpoint, mid third epoch (11 steps per epoch).
    while time.time() < deadline:
        tel = run / "telemetry.jsonl"
        if tel.exists() and tel.read_bytes().count(b'"type":"step"') >= 2 * 11 + 4:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = fnotui(
        ["--run", "plain", "--out", "ckpt", "--set", "grad_checkpointing=blocks", "--resume"],
        study,
    )
    assert out.returncode == 0, out.stderr
    ref = study / "ref" / "plain"
    for name in ("history.json", "metrics.json"):
        assert json.loads((run / name).read_text()) == json.loads((ref / name).read_text()), name
    header = next(iter_records(run / "telemetry.jsonl"))
    assert header["model"]["grad_checkpointing"] is True
    assert header["config"]["model"]["grad_checkpointing"] == "blocks"


def test_bf16_trains_close_to_fp32_and_says_so_in_the_header(study):
    out = fnotui(["--run", "bf16", "--out", "bf16"], study)
    assert out.returncode == 0, out.stderr
    run = study / "bf16" / "bf16"
    header = next(iter_records(run / "telemetry.jsonl"))
    assert header["precision"]["mode"] == "bf16"
    assert header["precision"]["autocast"] == "bfloat16"
    ref_losses, losses = _steps(study / "ref" / "plain"), _steps(run)
    assert len(losses) == len(ref_losses)
    assert losses != ref_losses  # bf16 really changed the arithmetic
    # ... but not the training: the last epoch's mean step loss within 10 % of fp32's.
    last = slice(-11, None)
    ref_mean = sum(ref_losses[last]) / 11
    assert abs(sum(losses[last]) / 11 - ref_mean) < 0.10 * ref_mean


def test_tf32_on_the_cpu_is_refused_before_anything_is_written(study):
    out = fnotui(["--run", "tf32", "--out", "tf32", "--device", "cpu"], study)
    assert out.returncode == 2
    assert "train.precision = 'tf32'" in out.stderr
    assert not (study / "tf32" / "tf32").exists()
