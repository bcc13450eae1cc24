"""bf16 (and, on a GPU, tf32) against fp32: the loss trajectory of 200 steps and the final metrics.

Trains the same small hybrid arm (same data, seed and weights) once per precision through the
engine's own ``train_arm``, then compares the step losses one by one and the final metrics.

    python bench/precision_numerics.py                  # CPU: fp32 vs bf16
    python bench/precision_numerics.py --device cuda    # adds tf32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.runs.telemetry import load_records  # noqa: E402
from engine.study.arms import load_study  # noqa: E402
from engine.training.train import train_arm  # noqa: E402
from tests.tiny import toml_table  # noqa: E402

# 625 training patterns at batch 16: 40 steps per epoch, 200 steps in 5 epochs.
ARMS = "".join(
    [
        toml_table("study", {"name": "precision", "output_dir": "runs"}),
        toml_table(
            "data",
            {
                "N": 32,
                "object_size": 128,
                "n_lines": 120,
                "nimgs_train": 1,
                "nimgs_test": 1,
                "train_stride": 4,
                "test_stride": 8,
                "set_phi": True,
            },
        ),
        toml_table(
            "defaults",
            {
                "architecture": "hybrid",
                "fno_width": 16,
                "fno_blocks": 3,
                "fno_modes": 8,
                "epochs": 5,
                "batch_size": 16,
                "lr": 1e-3,
                "seed": 3,
            },
        ),
        *(toml_table(f"arms.{mode}", {"precision": mode}) for mode in ("fp32", "bf16", "tf32")),
    ]
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    modes = ["fp32", "bf16"] + (["tf32"] if args.device.startswith("cuda") else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "arms.toml").write_text(ARMS)
        study = load_study(root / "arms.toml")
        results = {}
        for mode in modes:
            result = train_arm(
                study.arm(mode),
                study.run_dir(mode),
                cache_dir=root / "cache",
                device=args.device,
                log=lambda _: None,
            )
            steps = [
                r["loss"]
                for r in load_records(study.run_dir(mode) / "telemetry.jsonl")
                if r["type"] == "step"
            ]
            results[mode] = (steps, result.metrics, result.wall_time)
    ref_steps, ref_metrics, _ = results["fp32"]
    print(
        "| precision | steps | median rel. step-loss diff | max | last-40-step mean loss "
        "| amp SSIM | amp MAE | phase SSIM | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, (steps, metrics, wall) in results.items():
        rel = [abs(a - b) / abs(b) for a, b in zip(steps, ref_steps)]
        print(
            f"| {mode} | {len(steps)} | {statistics.median(rel):.2e} | {max(rel):.2e} "
            f"| {statistics.fmean(steps[-40:]):.5f} | {metrics['ssim'][0]:.4f} "
            f"| {metrics['mae'][0]:.4g} | {metrics['ssim'][1]:.4f} | {wall:.1f} |"
        )


if __name__ == "__main__":
    main()
