"""The study metrics file (study_metrics.jsonl): one flat row per arm *run*, keyed by run_id.

Re-exporting replaces a run's row instead of appending a duplicate (rows of older runs stay). A
row carries the run's verdict, state, headline stats, reference levels, a summary of its knobs,
and, for a sweep point, its sweep, its point (the values, spelled as in the run name) and its
group (the run name without the training seed); these three are empty strings for a plain arm.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import polars as pl

from engine.atomic import atomic_write_bytes
from engine.locking import hold
from engine.reporting.evidence import RunEvidence
from engine.reporting.writing import ExportResult
from engine.study.arms import Study

METRICS_FILE = "study_metrics.jsonl"
# Knobs summarised in each study-metrics row (the full config is in the arm's config.json).
ROW_KNOBS = (
    ("model", "architecture"),
    ("model", "fno_blocks"),
    ("model", "stable_variant"),
    ("model", "max_hidden_channels"),
    ("train", "optimizer"),
    ("train", "lr"),
    ("train", "scheduler"),
    ("train", "warmup_epochs"),
    ("train", "grad_clip"),
    ("train", "clip_algorithm"),
    ("train", "seed"),
    ("train", "epochs"),
    ("data", "set_phi"),
)
ROW_STATS = (
    "state",
    "collapse_rule",
    "collapse_epoch",
    "collapse_onset_epoch",
    "collapse_time_s",
    "n_epochs",
    "epochs_planned",
    "best_epoch",
    "val_loss_best",
    "val_loss_final",
    "train_loss_final",
    "has_nan",
    "grad_norm_mean",
    "grad_norm_max",
    "grad_norm_min",
    "amp_mae",
    "phase_mae",
    "amp_ssim",
    "phase_ssim",
    "amp_psnr",
    "phase_psnr",
    "amp_ms_ssim",
    "phase_ms_ssim",
    "amp_frc50",
    "phase_frc50",
    "twin_fraction",
    "twin_undecidable_fraction",
    "amp_ssim_vs_twin",
    "amp_mae_vs_twin",
    "phase_vacuous",
    "norm_weight_near_zero",
    "pred_amp_std_final",
    "target_amp_std",
    "parameters",
    "recipe_hash",
)


def metrics_row(study: Study, stats: dict, config: dict | None, exported_at: float) -> dict:
    """One flat row of the study metrics file (scalars only; non-finite as null)."""
    row = {
        "run_id": stats["run_id"],
        "arm": stats["arm"],
        "study": study.name,
        "profile": study.profile,
        "verdict": stats["verdict"]["label"],
        "exported_at": exported_at,
    }
    point = study.points.get(stats["arm"])
    row["sweep"] = point.sweep if point else ""
    row["point"] = point.label if point else ""
    row["sweep_group"] = point.group if point else ""
    row.update({k: stats.get(k) for k in ROW_STATS})
    ref = stats.get("reference") or {}
    row["constant_output_val_loss"] = ref.get("constant_output_val_loss")
    row["all_twin_amp_ssim"] = (ref.get("twin") or {}).get("amp_ssim")
    for section, key in ROW_KNOBS:
        row[f"{section}.{key}"] = ((config or {}).get(section) or {}).get(key)
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def study_rows(
    study: Study, stats: dict[str, dict], evidence: dict[str, RunEvidence], now: float
) -> dict[str, dict]:
    """Every run's row, not-started runs included (their knobs from the arms file): the input of
    the outcome statistics (engine/reporting/outcomes.py). Only rows with a run id are filed."""
    rows = {}
    for arm, s in stats.items():
        config = evidence[arm].config
        if config is None and s["run_id"] is None and arm in study.arms:
            config = study.arms[arm].to_dict()
        rows[arm] = metrics_row(study, s, config, now)
    return rows


def upsert_metrics(path: Path, rows: dict[str, dict], now: float, result: ExportResult) -> None:
    """Append each run's row, replacing an earlier row with the same run_id (idempotent).

    The read-merge-replace runs under an exclusive lock, so a dashboard export and a command-line
    export at the same moment cannot lose each other's rows.
    """
    filed = []
    for arm, row in rows.items():  # a run without a header has no run id to key its row by
        if row["run_id"] is None:
            if row["state"] != "not started":
                result.problems.append(
                    f"{arm}: no run id (no telemetry header), no row in {METRICS_FILE}"
                )
            continue
        filed.append(row)
    if not filed:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with hold(path.parent / f".{path.name}.lock"):
            new = pl.DataFrame(filed, infer_schema_length=None)
            merged = new
            if path.is_file() and path.stat().st_size:
                try:
                    old = pl.read_ndjson(path, infer_schema_length=None)
                except pl.exceptions.PolarsError as exc:
                    aside = path.with_name(f"{path.name}.unreadable-{int(now)}")
                    os.replace(path, aside)
                    result.problems.append(
                        f"{path} was unreadable ({exc}); moved aside to "
                        f"{aside.name} and started afresh"
                    )
                else:
                    kept = old.filter(~pl.col("run_id").is_in(new["run_id"].implode()))
                    merged = pl.concat([kept, new], how="diagonal_relaxed")
            buf = io.BytesIO()
            merged.write_ndjson(buf)
            atomic_write_bytes(path, lambda fh: fh.write(buf.getvalue()))
    except OSError as exc:
        result.problems.append(f"could not update {path}: {exc}")
        return
    result.files.append(path)
