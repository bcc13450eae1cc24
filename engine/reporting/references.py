"""Reference levels of each dataset in a study: what trivial outputs score on the same data
(a flat image, the all-twin image, the best constant output, the true object), computed from the
verified dataset cache when it exists, else from a run's recon.npz ground truth.
"""

from __future__ import annotations

import numpy as np

from engine.reporting.evidence import RunEvidence
from engine.reporting.levels import constant_output_val_loss, true_object_val_loss
from engine.reporting.report import Reference
from engine.runs.rundir import data_cache_dir
from engine.study.arms import Study


def flat_summary(flat: dict | None) -> dict | None:
    if flat is None:
        return None
    keys = ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50")
    out = {f"amp_{k}": flat[k][0] for k in keys if k in flat}
    out.update({f"phase_{k}": flat[k][1] for k in keys if k in flat})
    out["phase_vacuous"] = flat.get("phase_vacuous")
    return out


def study_references(
    study: Study, evidence: dict[str, RunEvidence], stats: dict[str, dict], problems: list[str]
) -> list[Reference]:
    """One Reference per (dataset, loss mode, validation batch) among the arms with a header."""
    from engine.scoring.evaluate import reference_metrics, twin_reference_metrics
    from engine.scoring.metrics import compute_metrics
    from engine.sim.stitch import trim_border

    groups: dict[tuple, list[str]] = {}
    for arm, ev in evidence.items():
        header = ev.header or {}
        cfg = ev.config or header.get("config") or {}
        digest = (header.get("dataset") or {}).get("recipe_hash") or stats[arm]["recipe_hash"]
        if not digest or not cfg.get("data"):
            continue
        train = cfg.get("train") or {}
        # The loss levels mirror the run's validation: its batch (runs older than
        # val_batch_size validated at infer_batch_size) and its physics gain.
        batch = int(train.get("val_batch_size", train.get("infer_batch_size", 1)))
        gain = (
            float(train.get("physics_gain", 1.0)),
            str(train.get("physics_gain_mode", "constant")),
        )
        groups.setdefault((digest, train.get("loss", "mae"), batch, gain), []).append(arm)
    refs = []
    for (digest, loss_mode, batch, gain), arms in groups.items():
        ref = Reference(recipe_hash=digest, arms=arms)
        ev = evidence[arms[0]]
        dataset, why = _cached_dataset(study, ev)
        vacuous = bool((ev.header or {}).get("dataset", {}).get("phase_vacuous", False))
        try:
            if dataset is not None:
                ref.source = f"the cached dataset {why}"
                ref.flat = reference_metrics(dataset.ground_truth, phase_vacuous=vacuous)
                ref.twin = twin_reference_metrics(
                    dataset.ground_truth, dataset.test.stride, phase_vacuous=vacuous
                )
                test = dataset.test
                ref.constant_val_loss, ref.constant_amplitude = constant_output_val_loss(
                    test.diffraction, dataset.probe, loss_mode, batch, *gain
                )
                ref.true_object_val_loss = true_object_val_loss(
                    test.diffraction,
                    test.amplitude,
                    test.phase,
                    dataset.probe,
                    loss_mode,
                    batch,
                    *gain,
                )
            else:
                problems.append(
                    f"reference levels for dataset {digest[:16]} ({', '.join(arms)}): "
                    f"{why}; no constant-output or noise-floor loss"
                )
                recon = next((evidence[a].recon for a in arms if evidence[a].recon), None)
                if recon is not None:
                    # recon.npz holds the trimmed, plane-removed GT: trim 0 scores it alike.
                    gt = recon["gt_amplitude"] * np.exp(1j * recon["gt_phase"])
                    ref.flat = reference_metrics(gt, trim=0, phase_vacuous=vacuous)
                    if "twin_gt" in recon:  # recon.npz of the twin evaluation and later
                        twin = trim_border(recon["twin_gt"], int(recon["trim"]))
                        ref.twin = compute_metrics(twin, gt, trim=0, phase_vacuous=vacuous)
                    ref.source = "a run's recon.npz ground truth"
        except (ValueError, RuntimeError) as exc:
            problems.append(f"reference levels for dataset {digest[:16]}: {exc}")
        if ref.flat is not None or ref.constant_val_loss is not None:
            refs.append(ref)
    return refs


def _cached_dataset(study: Study, ev: RunEvidence):
    """The run's dataset, only if its verified cache file exists (an export never simulates)."""
    from engine.config import DataConfig
    from engine.errors import FnotuiError
    from engine.sim.data import cache_file, load_or_build_dataset

    digest = ((ev.header or {}).get("dataset") or {}).get("recipe_hash")
    cache_dir = data_cache_dir(study.output_dir)
    if digest is None:
        return None, "the run has no telemetry header"
    path = cache_file(cache_dir, digest)
    if not path.is_file():
        return None, f"its cache file {path} is gone"
    try:
        cfg = DataConfig(**(ev.config or ev.header["config"])["data"])
        return load_or_build_dataset(cfg, cache_dir), str(path.name)
    except (FnotuiError, TypeError, KeyError, ValueError, OSError) as exc:
        return None, f"its cache could not be used ({exc})"
