"""Training throughput of each generator: samples/s of a full step, and its share of matmul peak.

A step is what engine/training/train.py does per batch: generator forward, the physics forward model,
the MAE loss, backward, and the optimizer engine/training/optim.py builds for the default TrainConfig
(Adam, lr 1e-3), so an optimizer change there shows up here. The inputs are diffraction
amplitudes of random objects under a disk probe: throughput depends on shapes, not data.

Each figure is the median of ``--reps`` timed repetitions after ``--warmup`` untimed steps.
FLOPs per sample come from ``FlopCounterMode`` over one forward + backward (matmuls and
convolutions; the physics FFT and elementwise work are not counted), and the fraction is
against a large fp32 matmul timed in the same process. The 1-minute load average before and
after is recorded: on a shared 2-core machine another process halves every figure.
``--write`` replaces the "Training throughput" section of docs/benchmarks.md.

    python bench/train_throughput.py --write
    python bench/train_throughput.py --batch-sizes 16 256 --write      # on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import ARCHITECTURES, ModelConfig, TrainConfig  # noqa: E402
from engine.models import build_model, describe_model  # noqa: E402
from engine.sim.physics import ForwardModel, get_loss  # noqa: E402
from engine.training.compiling import COMPILE_MODES, compiled_forward  # noqa: E402
from engine.training.optim import build_optimizer  # noqa: E402

SECTION = "## Training throughput"
DOC = REPO / "docs" / "benchmarks.md"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, reps: int = 10) -> float:
    """Best fp32 GFLOP/s of one large square matmul over ``reps`` tries: the "peak" the
    fractions refer to (a peak is what the machine can do, so the best try, not the median)."""
    n = 4096 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = []
    for i in range(reps + 2):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def load_average() -> float | None:
    """1-minute load average, or None where the OS does not report one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def fmt_load(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def disk_probe(n: int, device: torch.device) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n) - n / 2, torch.arange(n) - n / 2, indexing="ij")
    return ((yy**2 + xx**2) <= (n / 4) ** 2).to(torch.complex64).to(device)


class Step:
    """One training step on a fixed batch, as engine/training/train.py runs it."""

    def __init__(self, arch: str, n: int, batch: int, device: torch.device, compile: str = "off"):
        torch.manual_seed(0)
        self.model = build_model(ModelConfig(architecture=arch), n).to(device).train()
        self.forward = compiled_forward(self.model, compile, device)
        self.physics = ForwardModel(disk_probe(n, device)).to(device)
        self.loss_fn = get_loss("mae")
        self.optimizer = build_optimizer(self.model.parameters(), TrainConfig())
        obj = torch.polar(
            torch.rand(batch, n, n, device=device), torch.rand(batch, n, n, device=device)
        )
        with torch.no_grad():
            self.x = self.physics(obj).unsqueeze(1)

    def loss(self) -> torch.Tensor:
        return self.loss_fn(self.physics(self.forward(self.x)), self.x[:, 0])

    def __call__(self) -> None:
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def train_flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            self.loss().backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def measure(
    arch: str,
    n: int,
    batch: int,
    device: torch.device,
    warmup: int,
    reps: int,
    steps: int,
    compile: str = "off",
) -> dict:
    step = Step(arch, n, batch, device, compile)
    flops = Step(arch, n, batch, device).train_flops() / batch  # counted on the eager graph
    t = time.perf_counter()
    step()  # a compiled step compiles here
    first_step_s = time.perf_counter() - t
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        rates.append(batch * steps / (time.perf_counter() - t))
    return {
        "arch": arch,
        "batch": batch,
        "params": describe_model(step.model)["parameters"],
        "samples_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "gflop_per_sample": flops / 1e9,
        "compile": compile,
        "first_step_s": first_step_s,
    }


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{name} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            model = found.group(1).strip()
    return (
        f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )


def render(
    rows: list[dict],
    args,
    device: torch.device,
    peak: float,
    load: tuple[float | None, float | None],
) -> str:
    cfg = ModelConfig()
    lines = [
        SECTION,
        "",
        f"Generated by `python bench/train_throughput.py --write` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine(device)}.",
        f"Best fp32 matmul: {peak:.0f} GFLOP/s. 1-minute load average {fmt_load(load[0])} before, "
        f"{fmt_load(load[1])} after.",
        "",
        "A step is generator forward, physics forward model, MAE loss, backward and the optimizer",
        f"of engine/training/optim.py for the default TrainConfig; N = {args.N}, default ModelConfig per",
        f"architecture (width {cfg.fno_width}, modes {cfg.fno_modes}, {cfg.fno_blocks} blocks, "
        f"{cfg.spectral_corners} corners), fp32. samples/s is the median",
        f"of {args.reps} repetitions of {args.steps} steps after {args.warmup} warm-up steps",
        "(min-max in brackets). Train GFLOP per sample counts the matmuls and convolutions of one",
        "forward + backward (FlopCounterMode); the last column is the FLOP rate this gives as a",
        "fraction of the best matmul. On a shared 2-core machine every figure drops by a third or",
        "more while another job runs: compare runs made at similar load only.",
        "",
        "| architecture | batch | parameters | samples/s | train GFLOP/sample | % of matmul peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        achieved = r["samples_per_s"] * r["gflop_per_sample"]
        lines.append(
            f"| {r['arch']} | {r['batch']} | {r['params']:,} | {r['samples_per_s']:.1f} "
            f"({r['min']:.1f}-{r['max']:.1f}) | {r['gflop_per_sample']:.2f} "
            f"| {100 * achieved / peak:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    """Replace our section of docs/benchmarks.md, keeping any other section as it is."""
    old = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = old.rstrip("\n") + "\n\n" + text
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(new)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16])
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed repetition")
    parser.add_argument(
        "--compile",
        nargs="+",
        default=["off"],
        choices=COMPILE_MODES,
        help="train.compile modes to measure, each architecture in each (default: off)",
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.write and args.compile != ["off"]:
        parser.error("--write renders the eager table only; drop --compile or --write")
    if args.reps < 5:
        parser.error("--reps must be at least 5: the figure is a median")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load_before = load_average()
    if device.type == "cpu" and load_before is not None and load_before > 0.5:
        print(
            f"warning: load average {load_before:.2f} before starting; figures will be low",
            flush=True,
        )
    peak = matmul_peak_gflops(device)
    print(f"{machine(device)}; fp32 matmul peak {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for batch in args.batch_sizes:
        for arch in args.archs:
            for mode in args.compile:
                r = measure(arch, args.N, batch, device, args.warmup, args.reps, args.steps, mode)
                rows.append(r)
                print(
                    f"{arch:14s} batch {batch:4d} compile {mode:7s}: "
                    f"{r['samples_per_s']:8.1f} samples/s ({r['min']:.1f}-{r['max']:.1f}), "
                    f"{r['gflop_per_sample']:.2f} GFLOP/sample, "
                    f"{100 * r['samples_per_s'] * r['gflop_per_sample'] / peak:.0f} % of peak, "
                    f"first step {r['first_step_s']:.1f} s",
                    flush=True,
                )
    text = render(rows, args, device, peak, (load_before, load_average()))
    if args.write:
        write_section(text)
        print(f"wrote {DOC.relative_to(REPO)}")
    else:
        print()
        print(text)


if __name__ == "__main__":
    main()
