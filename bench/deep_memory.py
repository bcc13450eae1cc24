"""Peak memory and step time of deep generators, with and without gradient checkpointing.

Each configuration runs in a fresh process (peak RSS is per process): build the generator, one
warm-up step, then ``--steps`` timed training steps (Adam, the real physics and loss at batch
16). Reported: parameters, the process's peak RSS and its growth over the RSS before the first
step (activations, gradients and optimizer state), and on CUDA ``max_memory_allocated``; the
median step time.

    python bench/deep_memory.py                 # CPU table (markdown) on stdout
    python bench/deep_memory.py --device cuda   # the same on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (architecture, fno_blocks, max_hidden_channels, N): the hybrid's U-NO halves the side per
# level and needs a 2 px bottleneck, so depth 6 is its limit at N = 64 (depth 8 needs N = 256);
# the cascaded FNO keeps every block at full resolution and takes any depth.
CONFIGS = [
    ("hybrid", 4, 0, 64),
    ("hybrid", 6, 512, 64),
    ("fno", 4, 0, 64),
    ("fno", 6, 0, 64),
    ("fno", 8, 0, 64),
]


def measure(arch: str, blocks: int, cap: int, n: int, ckpt: str, device: str, steps: int) -> dict:
    import torch

    from engine.config import ModelConfig
    from engine.models import build_model, describe_model
    from engine.sim.physics import ForwardModel, get_loss

    dev = torch.device(device)
    # The interpreter, torch and the engine's modules, before the generator exists: what the
    # process's peak RSS holds that is not the training step's (bench/memory_estimate.py).
    rss_baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)
    cfg = ModelConfig(
        architecture=arch,
        fno_width=32,
        fno_modes=12,
        fno_blocks=blocks,
        max_hidden_channels=cap,
        grad_checkpointing=ckpt,
    )
    model = build_model(cfg, n).to(dev)
    probe = torch.ones(n, n, dtype=torch.complex64)
    physics = ForwardModel(probe, 1.0, "constant").to(dev)
    loss_fn = get_loss("mae")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(16, 1, n, n, device=dev)

    def step() -> None:
        loss = loss_fn(physics(model(x)), x[:, 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step()
    times = []
    for _ in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "architecture": arch,
        "fno_blocks": blocks,
        "cap": cap,
        "N": n,
        "checkpointing": describe_model(model)["grad_checkpointing"],
        "parameters": describe_model(model)["parameters"],
        "peak_rss_mib": round(peak),
        "rss_growth_mib": round(peak - rss_before),
        "rss_baseline_mib": round(rss_baseline),
        "cuda_max_allocated_mib": (
            round(torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else None
        ),
        "step_s": statistics.median(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, as JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one), args.device, args.steps)))
        return
    rows = []
    for arch, blocks, cap, n in CONFIGS:
        for ckpt in ("off", "blocks"):
            one = json.dumps([arch, blocks, cap, n, ckpt])
            out = subprocess.run(
                [sys.executable, __file__, "--one", one, "--device", args.device]
                + ["--steps", str(args.steps)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"{one}: failed: {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(
        "| generator | fno_blocks | cap | params | checkpointing | peak RSS MiB | growth MiB "
        "| CUDA peak MiB | step s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cuda = r["cuda_max_allocated_mib"] if r["cuda_max_allocated_mib"] is not None else "–"
        print(
            f"| {r['architecture']} N={r['N']} | {r['fno_blocks']} | {r['cap'] or 'none'} "
            f"| {r['parameters']:,} | {'on' if r['checkpointing'] else 'off'} "
            f"| {r['peak_rss_mib']} | {r['rss_growth_mib']} | {cuda} | {r['step_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
