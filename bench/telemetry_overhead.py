"""Telemetry cost relative to a training step (target: < 2 % of step time).

Measures, on this machine, the median cost of what the training loop adds per optimizer step for
telemetry (the batched host copy, encoding and appending one step record, the live step
detectors, amortised per-epoch fsync) and divides it by the median time of a real training step of the study's generator
(hybrid, width 32, 4 blocks, batch 16, physics loss, Adam).

Run: python bench/telemetry_overhead.py [--steps 20] [--device cpu] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import DetectConfig, ModelConfig, TrainConfig  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.runs.telemetry import TelemetryWriter  # noqa: E402
from engine.scoring.detectors import StepDetectors  # noqa: E402
from engine.sim.physics import ForwardModel, get_loss  # noqa: E402
from engine.training.optim import GradClipper, build_optimizer  # noqa: E402
from engine.training.progress import STEP_FLUSH_EVERY  # noqa: E402
from engine.training.progress import flush_steps as _flush_steps  # noqa: E402

STEPS_PER_EPOCH = 862  # the faithful recipe (13,778 patterns at batch 16), for the fsync share


def step_time(device: torch.device, steps: int, n: int = 64) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(architecture="hybrid"), n).to(device)
    physics = ForwardModel(torch.ones(n, n, dtype=torch.complex64)).to(device)
    loss_fn = get_loss("mae")
    cfg = TrainConfig()
    opt = build_optimizer(model.parameters(), cfg)
    clip = GradClipper(model.parameters(), cfg)
    x = torch.rand(16, 1, n, n, device=device)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        loss = loss_fn(physics(model(x)), x[:, 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def telemetry_cost_per_step(device: torch.device, repeats: int = 30) -> tuple[float, float]:
    """(median seconds per step for step records and the live step detectors, median seconds
    per fsync)."""
    detectors = StepDetectors(DetectConfig())
    with tempfile.TemporaryDirectory() as tmp:
        writer = TelemetryWriter(Path(tmp) / "telemetry.jsonl")
        per_step, fsyncs = [], []
        for r in range(repeats):
            pending = [
                (
                    r * STEP_FLUSH_EVERY + i,
                    torch.rand((), device=device),
                    torch.rand((), device=device),
                    None,
                    time.time(),
                )
                for i in range(STEP_FLUSH_EVERY)
            ]
            t0 = time.perf_counter()
            _flush_steps(writer, pending, epoch=0, lr=1e-3, detectors=detectors)
            per_step.append((time.perf_counter() - t0) / STEP_FLUSH_EVERY)
            t0 = time.perf_counter()
            writer.fsync()
            fsyncs.append(time.perf_counter() - t0)
        writer.close()
    return statistics.median(per_step), statistics.median(fsyncs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    t_step = step_time(device, args.steps)
    t_rec, t_fsync = telemetry_cost_per_step(device)
    per_step = t_rec + t_fsync / STEPS_PER_EPOCH
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(f"training step (hybrid w32, batch 16): median {t_step * 1e3:.1f} ms")
    print(
        f"step record (batched host copy, encode, write, live step detectors): "
        f"median {t_rec * 1e6:.1f} us"
    )
    print(
        f"fsync: median {t_fsync * 1e3:.2f} ms, once per epoch "
        f"({STEPS_PER_EPOCH} steps) -> {t_fsync / STEPS_PER_EPOCH * 1e6:.2f} us per step"
    )
    print(f"telemetry overhead: {per_step / t_step * 100:.3f} % of step time (target < 2 %)")


if __name__ == "__main__":
    main()
