"""Score runs against the twin reference levels, from their saved config and metrics alone.

For each run directory (config.json and metrics.json, as fnotui writes them or as a study export
keeps them) this rebuilds the test ground truth from the recorded recipe and prints:

- the flat-image and all-twin levels (what a constant image and a perfect reconstruction of every
  patch's twin score against the truth);
- the amplitude SSIM of reconstructions that are exact except that a random fraction f of the
  patches is replaced by its twin (the median of several draws per f), and the fraction that
  best explains each run's SSIM, MAE and FRC50.

It needs no model and no reconstruction file, so it can check runs whose recon.npz was not kept;
the estimate assumes the run reconstructs each patch's branch well, which its SSIM against the
twin (when recon.npz exists, ``fnotui evaluate`` measures it directly) can confirm.

    python scripts/twin_levels.py docs/studies/stage_a_h100/arms/*
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import DataConfig  # noqa: E402
from engine.scoring.evaluate import reference_metrics, twin_reference_metrics  # noqa: E402
from engine.scoring.metrics import compute_metrics  # noqa: E402
from engine.scoring.twin import twin_image  # noqa: E402
from engine.sim.data import build_dataset  # noqa: E402

FRACTIONS = np.round(np.arange(0.0, 1.0001, 0.1), 2)
DRAWS = 5


def mixed_image(
    gt: np.ndarray, twin: np.ndarray, stride: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """The truth with a random ``fraction`` of its stride x stride blocks taken from the twin."""
    blocks = gt.shape[0] // stride
    chosen = rng.random((blocks, blocks)) < fraction
    mask = np.kron(chosen, np.ones((stride, stride), dtype=bool))
    return np.where(mask, twin, gt)


def headline(metrics: dict) -> dict:
    return {"ssim": metrics["ssim"][0], "mae": metrics["mae"][0], "frc50": metrics["frc50"][0]}


def levels(data: DataConfig) -> dict:
    dataset = build_dataset(data)
    gt, stride = dataset.ground_truth, data.test_stride
    vacuous = bool(dataset.meta.get("phase_vacuous", False))
    twin = twin_image(gt, stride)
    rng = np.random.default_rng(0)
    curve = {}
    for f in FRACTIONS:
        draws = [
            headline(
                compute_metrics(mixed_image(gt, twin, stride, f, rng), gt, phase_vacuous=vacuous)
            )
            for _ in range(DRAWS)
        ]
        curve[float(f)] = {k: float(np.median([d[k] for d in draws])) for k in draws[0]}
    return {
        "flat": headline(reference_metrics(gt, phase_vacuous=vacuous)),
        "all_twin": headline(twin_reference_metrics(gt, stride, phase_vacuous=vacuous)),
        "curve": curve,
    }


def explain(run_metrics: dict, curve: dict) -> float:
    """The twin fraction whose mixed reconstruction scores closest to the run, on SSIM."""
    fractions = sorted(curve)
    ssim = [curve[f]["ssim"] for f in fractions]  # falls monotonically from 1 toward all-twin
    return float(np.interp(run_metrics["ssim"], ssim[::-1], fractions[::-1]))


def main(paths: list[str]) -> None:
    runs = {}
    for p in map(Path, paths):
        config = json.loads((p / "config.json").read_text())
        runs[p.name] = (DataConfig(**config["data"]), json.loads((p / "metrics.json").read_text()))
    recipes = {data for data, _ in runs.values()}
    for data in recipes:
        lv = levels(data)
        print(
            f"recipe: probe {data.probe!r}, set_phi {data.set_phi}, {data.nimgs_test} test "
            f"image(s) at stride {data.test_stride}"
        )
        print(
            f"  flat image      : SSIM {lv['flat']['ssim']:.3f}  MAE {lv['flat']['mae']:.4f}  "
            f"FRC50 {lv['flat']['frc50']:.1f}"
        )
        print(
            f"  all-twin        : SSIM {lv['all_twin']['ssim']:.3f}  "
            f"MAE {lv['all_twin']['mae']:.4f}  FRC50 {lv['all_twin']['frc50']:.1f}"
        )
        print(
            "  twin fraction f -> SSIM / MAE / FRC50 of truth with a random f of patches "
            "twinned (median of 5 draws):"
        )
        for f, m in lv["curve"].items():
            print(f"    f = {f:.1f}: {m['ssim']:.3f} / {m['mae']:.4f} / {m['frc50']:.1f}")
        for name, (run_data, metrics) in runs.items():
            if run_data != data:
                continue
            h = headline(metrics)
            print(
                f"  {name}: SSIM {h['ssim']:.3f}  MAE {h['mae']:.4f}  FRC50 {h['frc50']:.1f}"
                f"  -> explained by a twin fraction of ~{explain(h, lv['curve']):.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
