"""The memory estimate (engine/training/memory_estimate.py) against the measured peak of a
training step, per generator, depth and gradient checkpointing, at batch 16.

Each configuration is measured in a fresh process by bench/deep_memory.py (build, one warm-up
step, ``--steps`` more with Adam, the real physics and loss). On the CPU the process's peak RSS
also holds the interpreter, torch and the engine's modules: their share is the peak RSS before the
generator is built (``rss_baseline_mib``), subtracted from the peak. What remains is compared
with the estimate's training part: parameters + gradients + Adam state + the step's activations
(the dataset and the evaluation forward, which deep_memory does not run, are left out of both).
On CUDA the comparison is with ``max_memory_allocated``.

    python bench/memory_estimate.py                 # markdown table on stdout
    python bench/memory_estimate.py --device cuda
    python bench/memory_estimate.py --archs hybrid stable_hybrid --depths 4 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ARCHITECTURES = ("cnn", "fno", "hybrid", "stable_hybrid")
DEPTHS = (4, 6, 8)
N = 64
BATCH = 16


def cap_for(arch: str, blocks: int) -> int:
    # The U-NO doubles its channels per level: capped at 512 beyond depth 4, as the study does.
    return 512 if arch in ("hybrid", "stable_hybrid") and blocks > 4 else 0


def estimate(arch: str, blocks: int, ckpt: str) -> dict:
    from engine.config import ArmConfig, DataConfig, ModelConfig, TrainConfig
    from engine.training.memory_estimate import estimate_memory

    cfg = ArmConfig(
        "bench",
        DataConfig(N=N),
        ModelConfig(
            architecture=arch,
            fno_width=32,
            fno_modes=12,
            fno_blocks=blocks,
            max_hidden_channels=cap_for(arch, blocks),
            grad_checkpointing=ckpt,
        ),
        TrainConfig(batch_size=BATCH, optimizer="adam"),
    )
    e = estimate_memory(cfg)
    return {
        "train_mib": (e.total - e.data - max(e.activations, e.evaluation) + e.activations) / 2**20
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    ap.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS))
    ap.add_argument("--estimate", help=argparse.SUPPRESS)  # internal: one estimate, as JSON
    args = ap.parse_args()
    if args.estimate:
        print(json.dumps(estimate(*json.loads(args.estimate))))
        return
    print(
        "| generator | fno_blocks | cap | checkpointing | estimate MiB | measured MiB | "
        "estimate / measured |"
    )
    print("|---|---|---|---|---|---|---|")
    for arch in args.archs:
        for blocks in args.depths:
            for ckpt in ("off", "blocks"):
                one = json.dumps([arch, blocks, cap_for(arch, blocks), N, ckpt])
                peak = subprocess.run(
                    [
                        sys.executable,
                        str(REPO / "bench" / "deep_memory.py"),
                        "--one",
                        one,
                        "--device",
                        args.device,
                        "--steps",
                        str(args.steps),
                    ],
                    capture_output=True,
                    text=True,
                )
                est = subprocess.run(
                    [sys.executable, __file__, "--estimate", json.dumps([arch, blocks, ckpt])],
                    capture_output=True,
                    text=True,
                )
                row = f"| {arch} | {blocks} | {cap_for(arch, blocks) or 'none'} | {ckpt} "
                if peak.returncode or est.returncode:
                    why = (peak.stderr or est.stderr).strip().splitlines()[-1][:90]
                    print(row + f"| – | – | not buildable: {why} |", flush=True)
                    continue
                m, e = json.loads(peak.stdout), json.loads(est.stdout)["train_mib"]
                measured = (
                    m["cuda_max_allocated_mib"]
                    if m["cuda_max_allocated_mib"] is not None
                    else m["peak_rss_mib"] - m["rss_baseline_mib"]
                )
                print(row + f"| {e:.0f} | {measured:.0f} | {e / measured:.2f} |", flush=True)


if __name__ == "__main__":
    main()
