"""CUDA correctness on a lent GPU: the engine must compute the same function there as on the CPU.

1. Every generator, forward and one backward, on the CPU (fp32) and on CUDA with the same
   weights and input: relative L2 error of the output and of the flattened gradients, with TF32
   off (strict fp32) and with torch's defaults (cuDNN convolutions may use TF32; the spectral
   matmuls do not unless float32_matmul_precision says so).
2. The physics forward model, CPU against CUDA.
3. Run-to-run determinism on CUDA: 20 training steps twice with deterministic algorithms;
   identical losses, bit for bit?
4. kill -9 mid-epoch and ``--resume`` with the real CLI on CUDA: do history.json and
   metrics.json equal an uninterrupted CUDA run's exactly (as tests/test_resume.py asserts on
   the CPU)?
5. The speed modes against eager fp32 on the same device (``check_modes``): bf16 autocast, TF32
   (CUDA only), gradient checkpointing, ``train.compile = "default"`` and ``"graphs"`` (CUDA
   only), each for every generator: output and gradient relative error after one step, and the
   relative gap of a 20-step loss trajectory. ``--modes-only-on cpu`` runs it on the CPU (bf16,
   checkpointing and compile; TF32 and CUDA graphs have no CPU form).

    python bench/gpu_check.py --out gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import ARCHITECTURES, ModelConfig  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.models.layers import SpectralConv2d  # noqa: E402
from engine.sim.physics import ForwardModel, get_loss  # noqa: E402
from engine.training.compiling import compiled_forward  # noqa: E402
from tests.tiny import TINY_DATA, TINY_GENERATOR  # noqa: E402

N = 64


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    # Complex tensors compare as (real, imag) pairs: .double() alone would drop the imaginary part.
    a, b = (torch.view_as_real(t.detach()) if t.is_complex() else t.detach() for t in (a, b))
    a, b = a.double().cpu(), b.double().cpu()
    if not torch.isfinite(a).all() or not torch.isfinite(b).all():
        return float("nan")
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def disk_probe(n: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n) - n / 2, torch.arange(n) - n / 2, indexing="ij")
    return ((yy**2 + xx**2) <= (n / 4) ** 2).to(torch.complex64)


def set_tf32(enabled_cudnn: bool, enabled_matmul: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled_cudnn
    torch.backends.cuda.matmul.allow_tf32 = enabled_matmul


def forward_backward(model, physics, x, autocast=contextlib.nullcontext, forward=None):
    """One forward (the generator under ``autocast``, through ``forward`` if given, e.g. a
    compiled wrapper; physics and loss in fp32) and backward."""
    model.zero_grad(set_to_none=True)
    with autocast():
        obj = (forward or model)(x)
    loss = get_loss("mae")(physics(obj), x[:, 0])
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return obj, loss, grads


def errors(arch: str, mode: str, got: tuple, want: tuple) -> dict:
    """Relative L2 errors of (output, loss, gradients) against the reference's."""
    out, loss, grads = got
    ref_obj, ref_loss, ref_grads = want
    return {
        "arch": arch,
        "mode": mode,
        "output_rel": rel(out, ref_obj),
        "loss_rel": rel(loss, ref_loss),
        "grad_rel": rel(grads, ref_grads),
    }


def check_generators(batch: int = 8) -> list[dict]:
    rows = []
    physics_cpu = ForwardModel(disk_probe(N))
    physics_gpu = copy.deepcopy(physics_cpu).cuda()
    for arch in ARCHITECTURES:
        torch.manual_seed(0)
        model_cpu = build_model(ModelConfig(architecture=arch), N).train()
        model_gpu = copy.deepcopy(model_cpu).cuda()
        obj = torch.polar(torch.rand(batch, N, N), torch.rand(batch, N, N) * 6.28 - 3.14)
        with torch.no_grad():
            x = physics_cpu(obj).unsqueeze(1)
        ref_obj, ref_loss, ref_grads = forward_backward(model_cpu, physics_cpu, x)
        for mode, (cudnn_tf32, matmul_tf32) in {
            "strict fp32": (False, False),
            "torch defaults": (True, False),
        }.items():
            set_tf32(cudnn_tf32, matmul_tf32)
            out, loss, grads = forward_backward(model_gpu, physics_gpu, x.cuda())
            rows.append(errors(arch, mode, (out, loss, grads), (ref_obj, ref_loss, ref_grads)))
    set_tf32(True, False)  # torch's defaults again
    return rows


def check_physics() -> dict:
    torch.manual_seed(1)
    obj = torch.polar(torch.rand(16, N, N), torch.rand(16, N, N) * 6.28 - 3.14)
    phys = ForwardModel(disk_probe(N))
    return {"physics_rel": rel(phys.cuda()(obj.cuda()), ForwardModel(disk_probe(N))(obj))}


def check_spectral_impls(device: str = "cuda") -> list[dict]:
    """The spectral layer through its two routes, on the CPU and on ``device``, from one weight.

    ``dft`` (truncated DFT as matmuls) should agree everywhere to rounding. ``fft`` (rfft2 ->
    zero-filled half-spectrum -> irfft2, the original's route) agrees with it on the CPU, whose
    C2R uses only the real part of the kx = 0 and Nyquist columns; cuFFT's C2R treats those
    non-Hermitian columns otherwise, which is what the original's GPU runs computed. One corner
    makes the kx = 0 column non-Hermitian by construction, so that is where a gap shows.
    """
    rows = []
    for corners, size, modes in ((1, 64, 12), (1, 8, 6), (2, 64, 12), (2, 8, 6)):
        torch.manual_seed(corners * 100 + size)
        layers = {
            impl: SpectralConv2d(16, 16, modes, (size, size), corners, impl)
            for impl in ("dft", "fft")
        }
        layers["fft"].load_state_dict(layers["dft"].state_dict())
        x = torch.randn(4, 16, size, size)
        with torch.no_grad():
            ref = layers["dft"](x)
            row = {
                "corners": corners,
                "size": size,
                "modes": modes,
                "cpu_fft_vs_dft": rel(layers["fft"](x), ref),
            }
            if device != "cpu":
                for impl, layer in layers.items():
                    row[f"{device}_{impl}_vs_cpu_dft"] = rel(
                        copy.deepcopy(layer).to(device)(x.to(device)), ref
                    )
        rows.append(row)
    return rows


def check_determinism(steps: int = 20) -> dict:
    from engine.config import TrainConfig
    from engine.training.optim import build_optimizer

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    result = {}
    for arch in ("hybrid", "stable_hybrid"):
        runs = []
        for _ in range(2):
            torch.manual_seed(3)
            model = build_model(ModelConfig(architecture=arch), N).cuda().train()
            physics = ForwardModel(disk_probe(N)).cuda()
            opt = build_optimizer(model.parameters(), TrainConfig())
            gen = torch.Generator().manual_seed(5)
            losses = []
            for _ in range(steps):
                obj = torch.polar(
                    torch.rand(16, N, N, generator=gen), torch.rand(16, N, N, generator=gen)
                ).cuda()
                with torch.no_grad():
                    x = physics(obj).unsqueeze(1)
                loss = get_loss("mae")(physics(model(x)), x[:, 0])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            runs.append(losses)
        result[arch] = {
            "identical": runs[0] == runs[1],
            "max_abs_diff": max(abs(a - b) for a, b in zip(*runs)),
            "final_loss": runs[0][-1],
        }
    torch.use_deterministic_algorithms(False)
    return result


RESUME_ARMS = f"""
[study]
name = "gpu_resume"
output_dir = "runs"

[data]
{TINY_DATA}
train_stride = 4
test_stride = 8
set_phi = true

[defaults]
fno_width = 8
{TINY_GENERATOR}
epochs = 8
batch_size = 8
infer_batch_size = 16
seed = 11

[arms.warm]
architecture = "stable_hybrid"
scheduler = "WarmupCosine"
lr = 2e-3
warmup_epochs = 2
grad_clip = 1.0
"""


def check_resume(device: str = "cuda", timeout: float = 150) -> dict:
    root = Path(tempfile.mkdtemp(prefix="gpu_resume_"))
    (root / "arms.toml").write_text(textwrap.dedent(RESUME_ARMS))
    cli = [
        sys.executable,
        "-m",
        "app.cli",
        "--arms",
        str(root / "arms.toml"),
        "--run",
        "warm",
        "--device",
        device,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            cli + list(args), cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env
        )

    t0 = time.time()
    ref = run("--out", str(root / "ref"))
    if ref.returncode != 0:
        return {"ok": False, "error": ref.stderr[-2000:]}
    ref_s = time.time() - t0
    run_dir = root / "killed" / "warm"
    proc = subprocess.Popen(
        cli + ["--out", str(root / "killed")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    steps_per_epoch = 11
    target = random.Random().randint(2 * steps_per_epoch + 1, 6 * steps_per_epoch - 1)
    deadline = time.time() + timeout
    tel = run_dir / "telemetry.jsonl"
    while time.time() < deadline:
        if tel.exists() and tel.read_bytes().count(b'"type":"step"') >= target:
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = run("--out", str(root / "killed"), "--resume")
    if resumed.returncode != 0:
        return {"ok": False, "error": resumed.stderr[-2000:]}
    equal = {
        name: json.loads((run_dir / name).read_text())
        == json.loads((root / "ref" / "warm" / name).read_text())
        for name in ("history.json", "metrics.json")
    }
    header = json.loads(tel.read_text().splitlines()[0])
    return {
        "ok": all(equal.values()),
        "equal": equal,
        "killed_at_step": target,
        "reference_run_s": round(ref_s, 1),
        "device": header["device"],
    }


def _trajectory(model, physics, x, steps: int, autocast, compile: str = "off") -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = compiled_forward(model, compile, x.device)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with autocast():
            obj = forward(x)
        loss = get_loss("mae")(physics(obj), x[:, 0])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def check_modes(device: str = "cuda", batch: int = 8, steps: int = 20) -> list[dict]:
    """Every speed mode against eager fp32 on ``device``: one forward/backward, then 20 steps."""
    import dataclasses

    dev = torch.device(device)
    # mode -> (train.precision, model.grad_checkpointing, train.compile)
    modes = {
        "bf16": ("bf16", "off", "off"),
        "checkpointing": ("fp32", "blocks", "off"),
        "compile": ("fp32", "off", "default"),
    } | (
        {"tf32": ("tf32", "off", "off"), "graphs": ("fp32", "off", "graphs")}
        if dev.type == "cuda"
        else {}
    )
    physics = ForwardModel(disk_probe(N)).to(dev)
    rows = []
    for arch in ARCHITECTURES:
        base = ModelConfig(architecture=arch)
        torch.manual_seed(0)
        reference = build_model(base, N).to(dev).train()
        obj = torch.polar(torch.rand(batch, N, N), torch.rand(batch, N, N) * 6.28 - 3.14)
        with torch.no_grad():
            x = physics(obj.to(dev)).unsqueeze(1)
        set_tf32(False, False)
        ref_obj, ref_loss, ref_grads = forward_backward(reference, physics, x)
        ref_traj = _trajectory(copy.deepcopy(reference), physics, x, steps, contextlib.nullcontext)
        for mode, (precision, checkpointing, compile) in modes.items():
            cfg = dataclasses.replace(base, grad_checkpointing=checkpointing)
            torch.manual_seed(0)
            model = build_model(cfg, N).to(dev).train()
            model.load_state_dict(reference.state_dict())
            set_tf32(precision == "tf32", precision == "tf32")
            if precision == "bf16":

                def autocast():
                    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
            else:
                autocast = contextlib.nullcontext
            forward = compiled_forward(model, compile, dev)
            out, loss, grads = forward_backward(model, physics, x, autocast, forward)
            traj = _trajectory(copy.deepcopy(model), physics, x, steps, autocast, compile)
            rows.append(
                {
                    **errors(arch, mode, (out, loss, grads), (ref_obj, ref_loss, ref_grads)),
                    "trajectory_max_rel": max(abs(a - b) / abs(b) for a, b in zip(traj, ref_traj)),
                    "final_loss": traj[-1],
                    "final_loss_fp32": ref_traj[-1],
                }
            )
    set_tf32(False, False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument(
        "--resume-only-on",
        metavar="DEVICE",
        help="only the kill -9 / resume check, on DEVICE (a CPU smoke test)",
    )
    parser.add_argument(
        "--spectral-only-on",
        metavar="DEVICE",
        help="only the spectral dft/fft comparison, on DEVICE (cpu: CPU alone)",
    )
    parser.add_argument(
        "--modes-only-on",
        metavar="DEVICE",
        help="only the speed modes against eager fp32, on DEVICE (cpu: bf16, checkpointing, compile)",
    )
    args = parser.parse_args()
    if args.modes_only_on:
        print(json.dumps(check_modes(args.modes_only_on), indent=2))
        return
    if args.resume_only_on:
        print(json.dumps(check_resume(args.resume_only_on), indent=2))
        return
    if args.spectral_only_on:
        print(json.dumps(check_spectral_impls(args.spectral_only_on), indent=2))
        return
    if not torch.cuda.is_available():
        sys.exit("gpu_check: CUDA is not available here")
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    report["generators"] = check_generators()
    report.update(check_physics())
    report["spectral_impls"] = check_spectral_impls()
    report["modes"] = check_modes()
    report["determinism"] = check_determinism()
    if not args.skip_resume:
        report["resume"] = check_resume()
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{report['gpu']}, torch {report['torch']}, CUDA {report['cuda']}")
    print(f"{'arch':14s} {'mode':15s} {'output rel':>11s} {'loss rel':>10s} {'grad rel':>10s}")
    for r in report["generators"]:
        print(
            f"{r['arch']:14s} {r['mode']:15s} {r['output_rel']:11.2e} {r['loss_rel']:10.2e} "
            f"{r['grad_rel']:10.2e}"
        )
    print(f"physics forward rel {report['physics_rel']:.2e}")
    for r in report["spectral_impls"]:
        print(
            "spectral "
            + ", ".join(
                f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
            )
        )
    for r in report["modes"]:
        print(
            f"mode {r['arch']:14s} {r['mode']:14s} output {r['output_rel']:.2e} grad "
            f"{r['grad_rel']:.2e} 20-step max rel {r['trajectory_max_rel']:.2e}"
        )
    for arch, d in report["determinism"].items():
        print(f"determinism {arch}: identical={d['identical']} max|diff|={d['max_abs_diff']:.2e}")
    if "resume" in report:
        print(f"resume on CUDA: {report['resume']}")


if __name__ == "__main__":
    main()
