"""Comparisons between a study's arms: config differences, seed replicates, stale configs and
the signatures of runs that should differ but do not (identical histories or metrics, outputs at
the flat-image level). Pure functions over run evidence, stats and configs.
"""

from __future__ import annotations

import hashlib
import json
import math

import polars as pl

from engine.reporting.evidence import RunEvidence
from engine.reporting.report import Reference
from engine.reporting.stats import epoch_frame
from engine.study.arms import Study

# Significant digits at which two arms' amplitude metrics count as "identical".
IDENTICAL_DIGITS = 6
# Relative tolerance at which an arm's amplitude metrics count as "at the flat-image level".
FLAT_LEVEL_RTOL = 1e-3


def flatten_config(cfg: dict) -> dict[str, object]:
    out = {}
    for section in ("data", "model", "train", "detect"):
        for key, value in (cfg.get(section) or {}).items():
            out[f"{section}.{key}"] = value
    return out


def arm_configs(evidence: dict[str, RunEvidence], study: Study) -> dict[str, dict]:
    """Each arm's config as trained (its run's config.json) or, for an arm without a run, as
    the arms file defines it: the comparison is of the study's arms, not only of finished runs."""
    configs = {}
    for arm, ev in evidence.items():
        if ev.config:
            configs[arm] = flatten_config(ev.config)
        elif arm in study.arms:
            configs[arm] = flatten_config(study.arms[arm].to_dict())
    return configs


def config_differences(configs: dict[str, dict]) -> list[tuple[str, dict[str, object]]]:
    """Knobs whose values differ between arms (a knob an arm lacks counts as different)."""
    if len(configs) < 2:
        return []
    keys = sorted({k for c in configs.values() for k in c})
    frame = pl.DataFrame({k: [json.dumps(c.get(k)) for c in configs.values()] for k in keys})
    differing = [
        k for k, n in zip(frame.columns, frame.select(pl.all().n_unique()).row(0)) if n > 1
    ]
    return [(k, {arm: c.get(k) for arm, c in configs.items()}) for k in differing]


def seed_groups(configs: dict[str, dict]) -> list[tuple[list[str], list[object]]]:
    """Arms whose configs are equal but for the training seed, two or more per group:
    ([arm, ...], [seed, ...]) in study order. These are replicates of one set-up, reported
    together so one seed's outcome is never read as the set-up's."""
    groups: dict[str, list[str]] = {}
    for arm, cfg in configs.items():
        key = json.dumps(
            {k: v for k, v in cfg.items() if k != "train.seed"}, sort_keys=True, default=str
        )
        groups.setdefault(key, []).append(arm)
    return [
        (arms, [configs[a].get("train.seed") for a in arms])
        for arms in groups.values()
        if len(arms) > 1
    ]


def stale_configs(study: Study, evidence: dict[str, RunEvidence]) -> dict[str, list[str]]:
    """Per arm, the knobs where the run's own config differs from the arms file as loaded now
    (an edited arms.toml, or a run started with --set): the run's config is what trained."""
    out = {}
    for arm, ev in evidence.items():
        if not ev.config:
            continue
        ran, now = flatten_config(ev.config), flatten_config(study.arms[arm].to_dict())
        diff = [
            f"{k} {json.dumps(ran.get(k))} (file: {json.dumps(now.get(k))})"
            for k in sorted(set(ran) | set(now))
            if ran.get(k) != now.get(k)
        ]
        if diff:
            out[arm] = diff
    return out


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def identical_histories(evidence: dict[str, RunEvidence]) -> list[list[str]]:
    """Groups of arms whose configs differ but whose train and val loss histories are identical
    (the knobs that should have made them differ never reached training: docs/science.md,
    'Identical results across optimizers')."""
    rows = []
    for arm, ev in evidence.items():
        epochs = epoch_frame(ev.records, ev.history)
        if epochs.height == 0:
            continue
        rows.append(
            {
                "arm": arm,
                "history": _digest([epochs["train_loss"].to_list(), epochs["val_loss"].to_list()]),
                "config": _digest({k: v for k, v in flatten_config(ev.config or {}).items()}),
            }
        )
    return _groups(rows, "history", distinct="config")


def identical_amp_metrics(stats: list[dict]) -> list[list[str]]:
    """Groups of arms reporting the same amplitude MAE, SSIM and PSNR (to 6 digits)."""
    rows = []
    for s in stats:
        values = [s.get(k) for k in ("amp_mae", "amp_ssim", "amp_psnr")]
        if any(v is None for v in values):
            continue
        rows.append(
            {"arm": s["arm"], "key": json.dumps([f"{v:.{IDENTICAL_DIGITS}g}" for v in values])}
        )
    return _groups(rows, "key")


def at_flat_level(
    stats: list[dict], references: list[Reference], rtol: float = FLAT_LEVEL_RTOL
) -> list[str]:
    """Arms whose amplitude MAE, SSIM and PSNR all equal a flat reconstruction's (within rtol):
    what a constant output scores after the amplitude alignment."""
    out = []
    for s in stats:
        ref = next((r for r in references if s["arm"] in r.arms and r.flat), None)
        values = [s.get(f"amp_{k}") for k in ("mae", "ssim", "psnr")]
        if ref is None or any(v is None for v in values):
            continue
        flat = [ref.flat[k][0] for k in ("mae", "ssim", "psnr")]
        if all(math.isclose(v, f, rel_tol=rtol, abs_tol=1e-12) for v, f in zip(values, flat)):
            out.append(s["arm"])
    return out


def _groups(rows: list[dict], key: str, distinct: str | None = None) -> list[list[str]]:
    if not rows:
        return []
    frame = pl.DataFrame(rows)
    aggs = [pl.col("arm")]
    if distinct:
        aggs.append(pl.col(distinct).n_unique().alias("n_distinct"))
    grouped = frame.group_by(key, maintain_order=True).agg(aggs)
    grouped = grouped.filter(pl.col("arm").list.len() > 1)
    if distinct:
        grouped = grouped.filter(pl.col("n_distinct") > 1)
    return [list(arms) for arms in grouped["arm"].to_list()]
