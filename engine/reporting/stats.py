"""Per-arm statistics from a run directory: the original stats dump, plus verdict and evidence.

``engine.reporting.evidence.read_run`` gathers what a run directory holds (never raising for bad
input); ``arm_stats`` turns that evidence into the ``stats.json`` object. The verdict is
``engine.scoring.verdict.classify_run`` over the telemetry's own event records, the firings the detectors
wrote live, so the dashboard, the console and this export tell one story.

``stats.json`` keys are a superset of the original stats dump (docs/science.md, 'Artifacts and
the stats dump'): ``val_loss_best``, ``val_loss_final``, ``train_loss_final``, ``has_nan``,
``n_epochs``, ``grad_norm_mean``/``_max``/``_min``, ``amp_``/``phase_`` ``mae``/``ssim``/``psnr``,
``norm_weights`` and ``norm_weight_near_zero``. Conventions:

- Epoch numbers are 0-based, as in the telemetry (summary.md prints them 1-based, as the console).
- Grad norms are the pre-clip global norms of the step records (what clipping saw); without
  telemetry they fall back to history.json's per-epoch means, and ``grad_norm_source`` says which.
- ``norm_weights`` come from ``model.pt`` (the last epoch's weights): every state-dict key whose
  module name contains "norm" and that ends in ``.weight``, the rule the telemetry's epoch records
  use. ``norm_weight_near_zero`` is true when every such tensor has \\|mean\\| < 0.1, and null when
  the model has none (the original's ``all([])`` would have said true).
- Final metrics are of the last epoch's weights (metrics.json); phase metrics carry
  ``phase_vacuous`` (the GT phase is constant, so phase scores mean nothing).
- Twin (engine/scoring/twin.py): ``twin_fraction`` (decidable patches on the twin branch),
  ``twin_undecidable_fraction``, and ``amp_ssim_vs_twin`` / ``amp_mae_vs_twin``, the stitched
  prediction scored against the all-twin image, from metrics.json's "twin" block; the fractions
  fall back to the last telemetry ``metrics`` record. Null for runs evaluated before the twin
  block existed (``fnotui evaluate`` re-scores them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import polars as pl

from engine.reporting.evidence import RunEvidence, run_id
from engine.runs.rundir import MODEL_FILE
from engine.runs.schema import EPOCH, EVENT, HISTORY_FIELDS, METRICS, STEP
from engine.runs.telemetry import records_frame
from engine.scoring.detectors import FATAL_RULES
from engine.scoring.verdict import FAILED_LABELS, Verdict, classify_run, final_twin

STATS_FILE = "stats.json"
NEAR_ZERO_MEAN = 0.1  # the original stats script's |mean| bound for "norm weight near zero"
# Metrics copied from metrics.json as amp_<name> / phase_<name>.
PAIR_METRICS = ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50", "frc1over7")


def _finite_or_none(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def step_frame(records: Iterable[dict]) -> pl.DataFrame:
    """Step records as a frame, one column per step field of the telemetry schema: epoch, step,
    loss, grad_norm, grad_norm_clipped, lr, t (non-finite values kept as NaN, absent ones null)."""
    return records_frame(records, STEP)


def epoch_frame(records: Iterable[dict], history: dict | None = None) -> pl.DataFrame:
    """Per-epoch series from the epoch records, or from history.json when it has more epochs
    (a telemetry file cut short); columns epoch, the history fields of the telemetry schema
    (train_loss, val_loss, grad_norm, lr, pred_amp_std, val_amp_mae, val_amp_mae_twin,
    val_twin_fraction) and t (null where a source lacks the field)."""
    names = HISTORY_FIELDS
    schema = {"epoch": pl.Int64, **{k: pl.Float64 for k in names}, "t": pl.Float64}
    rows = {}
    for r in records:
        if r.get("type") == EPOCH.name and isinstance(r.get("epoch"), int):
            rows[r["epoch"]] = r  # a resumed run's repeated epoch: the later record wins
    from_telemetry = [rows[e] for e in sorted(rows)]
    hist_len = 0
    if history:
        # Fields added later (val_amp_mae, the twin fields) have shorter lists in a run
        # resumed from an older checkpoint, which must not hide the other series.
        lengths = [
            len(history[k])
            for k in names
            if not EPOCH.field(k).since and isinstance(history.get(k), list)
        ]
        hist_len = min(lengths) if lengths else 0
    if hist_len > len(from_telemetry):
        # history.json is strict JSON written by atomic_write_json: a null there was NaN or inf.
        cols = {
            "epoch": list(range(hist_len)),
            **{
                k: _padded([math.nan if v is None else v for v in history[k][:hist_len]], hist_len)
                if isinstance(history.get(k), list)
                else [None] * hist_len
                for k in names
            },
            "t": [None] * hist_len,
        }
        return pl.DataFrame(cols, schema=schema, strict=False)
    cols = {k: [r.get(k) for r in from_telemetry] for k in schema}
    return pl.DataFrame(cols, schema=schema, strict=False)


def _padded(values: list, n: int) -> list:
    """A newer history key of a resumed run starts late: pad its front with NaN."""
    return [math.nan] * (n - len(values)) + values


def norm_weight_summary(weights: Mapping[str, np.ndarray]) -> dict:
    """{key: {mean, std, abs_max}} of every normalisation weight (std over elements, ddof 0)."""
    out = {}
    for key in sorted(weights):
        w = np.asarray(weights[key], dtype=np.float64)
        out[key] = {
            "mean": float(w.mean()),
            "std": float(w.std()),
            "abs_max": float(np.abs(w).max()),
        }
    return out


def norm_weight_near_zero(summary: Mapping[str, Mapping[str, float]]) -> bool | None:
    if not summary:
        return None
    return all(abs(s["mean"]) < NEAR_ZERO_MEAN for s in summary.values())


def _nonfinite_in(*series: pl.Series) -> bool:
    return any(s.is_nan().any() or s.is_infinite().any() for s in series if len(s))


def _at(frame: pl.DataFrame, column: str, epoch: int | None) -> float | None:
    if epoch is None:
        return None
    row = frame.filter(pl.col("epoch") == epoch)
    if not row.height or row[column][0] is None:
        return None
    return float(row[column][0])  # NaN stays NaN here (the report says so; JSON gets null)


def failure_curve(epochs: pl.DataFrame, steps: pl.DataFrame, verdict: Verdict) -> dict | None:
    """The numbers of a failed arm's story: best epoch, onset, losses before and after, the grad
    norm at the collapse. None for arms that did not fail."""
    if verdict.label not in FAILED_LABELS or epochs.height == 0:
        return None
    onset = verdict.onset_epoch if verdict.onset_epoch is not None else verdict.epoch
    fired = verdict.epoch
    finite_val = epochs.filter(pl.col("val_loss").is_finite())
    before = finite_val.filter(pl.col("epoch") < (onset if onset is not None else 0))
    best_pool = before if before.height else finite_val
    best_epoch = int(best_pool.sort("val_loss")["epoch"][0]) if best_pool.height else None
    last_before = int(before["epoch"].max()) if before.height else None
    after = epochs.filter(pl.col("epoch") >= (onset or 0))
    curve = {
        "onset_epoch": onset,
        "fired_epoch": fired,
        "best_epoch_before_onset": best_epoch,
        "val_loss_best_before": _at(epochs, "val_loss", best_epoch),
        "val_loss_before": _at(epochs, "val_loss", last_before),
        "train_loss_before": _at(epochs, "train_loss", last_before),
        "pred_amp_std_before": _at(epochs, "pred_amp_std", last_before),
        "val_loss_at_onset": _at(epochs, "val_loss", onset),
        "train_loss_at_onset": _at(epochs, "train_loss", onset),
        "val_loss_after_mean": _finite_or_none(
            after["val_loss"].filter(after["val_loss"].is_finite()).mean()
        )
        if after.height
        else None,
        "val_loss_final": _at(epochs, "val_loss", int(epochs["epoch"][-1])),
        "pred_amp_std_after": _at(epochs, "pred_amp_std", fired),
        "grad_norm_at_onset": _at(epochs, "grad_norm", onset),
        "grad_norm_before": _at(epochs, "grad_norm", last_before),
    }
    if steps.height and onset is not None:
        lo = max(0, onset - 1)
        hi = fired if fired is not None else onset
        window = steps.filter(pl.col("epoch").is_between(lo, hi))
        earlier = steps.filter(pl.col("epoch") < lo)
        g = window["grad_norm"].drop_nulls()
        g = g.filter(g.is_finite())
        l_win = window["loss"].drop_nulls()
        l_win = l_win.filter(l_win.is_finite())
        l_ref = earlier["loss"].drop_nulls()
        l_ref = l_ref.filter(l_ref.is_finite())
        curve.update(
            {
                "window_epochs": [lo, hi],
                "grad_norm_max_window": _finite_or_none(g.max()) if len(g) else None,
                "step_loss_max_window": _finite_or_none(l_win.max()) if len(l_win) else None,
                "step_loss_median_before_window": _finite_or_none(l_ref.median())
                if len(l_ref)
                else None,
            }
        )
    return curve


def _pairs(metrics: dict | None) -> dict:
    out = {}
    for name in PAIR_METRICS:
        pair = (metrics or {}).get(name)
        ok = isinstance(pair, list) and len(pair) == 2
        out[f"amp_{name}"] = _finite_or_none(pair[0]) if ok and pair[0] is not None else None
        out[f"phase_{name}"] = _finite_or_none(pair[1]) if ok and pair[1] is not None else None
    return out


def _twin_stats(metrics: dict | None, records: list[dict]) -> dict:
    """The twin keys of stats.json (see the module docstring)."""
    twin = (metrics or {}).get("twin")
    final = next((r for r in reversed(records) if r.get("type") == METRICS.name), None)
    fraction, undecidable = final_twin(final, metrics)
    out = {
        "twin_fraction": fraction,
        "twin_undecidable_fraction": undecidable,
        "amp_ssim_vs_twin": None,
        "amp_mae_vs_twin": None,
    }
    if isinstance(twin, dict):
        vs_twin = _pairs(twin.get("metrics"))
        out["amp_ssim_vs_twin"] = vs_twin["amp_ssim"]
        out["amp_mae_vs_twin"] = vs_twin["amp_mae"]
    return out


def _verdict_dict(v: Verdict) -> dict:
    return {
        "label": v.label,
        "text": v.text,
        "rule": v.rule,
        "epoch": v.epoch,
        "onset_epoch": v.onset_epoch,
        "t": v.t,
        "t_since_start": v.t_since_start,
        "detail": v.detail,
    }


def arm_stats(ev: RunEvidence) -> dict:
    """The stats.json object of one arm (see the module docstring for the conventions)."""
    verdict = classify_run(ev.records, ev.state, ev.metrics)
    if ev.header is None and verdict.label in ("healthy", "running"):
        # No telemetry, no detector evidence: "healthy" would be a claim nothing supports.
        verdict = Verdict("incomplete", detail=f"{ev.state}; no telemetry to judge training by")
    steps = step_frame(ev.records)
    epochs = epoch_frame(ev.records, ev.history)
    cfg = ev.config or {}
    train_cfg = cfg.get("train") or {}

    val = epochs["val_loss"].drop_nulls()
    train = epochs["train_loss"].drop_nulls()
    last_epoch = epochs.tail(1)
    finite_val = epochs.filter(pl.col("val_loss").is_finite())
    best_row = finite_val.sort("val_loss").head(1)

    grad = steps["grad_norm"].drop_nulls()
    source = "steps (pre-clip)"
    if not len(grad):
        grad = epochs["grad_norm"].drop_nulls()
        source = "epoch means (no step records)" if len(grad) else None
    finite_grad = grad.filter(grad.is_finite())

    events: dict[str, int] = {}
    for r in ev.records:
        if r.get("type") == EVENT.name and r.get("rule"):
            events[r["rule"]] = events.get(r["rule"], 0) + 1
    has_nan = _nonfinite_in(val, train, grad, steps["loss"].drop_nulls()) or any(
        rule in events for rule in FATAL_RULES
    )

    norms = norm_weight_summary(ev.model_state) if ev.model_state is not None else None
    norm_source = MODEL_FILE
    if norms is None:
        last = [r for r in ev.records if r.get("type") == EPOCH.name and r.get("norm_weights")]
        norms = last[-1]["norm_weights"] if last else {}
        norm_source = "last epoch record" if last else None
    failed = verdict.label in FAILED_LABELS
    metrics = ev.metrics or {}
    header = ev.header or {}
    stats = {
        "arm": ev.arm,
        "run_id": run_id(ev.arm, ev.header),
        "state": ev.state,
        "verdict": _verdict_dict(verdict),
        "collapse_rule": verdict.rule if failed else None,
        "collapse_epoch": verdict.epoch if failed else None,
        "collapse_onset_epoch": verdict.onset_epoch if failed else None,
        "collapse_time_s": verdict.t_since_start if failed else None,
        # the original stats dump
        "val_loss_best": _finite_or_none(best_row["val_loss"][0]) if best_row.height else None,
        # The last epoch's values, even when non-finite (null then), never an earlier one's.
        "val_loss_final": _finite_or_none(last_epoch["val_loss"][0])
        if last_epoch.height and last_epoch["val_loss"][0] is not None
        else None,
        "train_loss_final": _finite_or_none(last_epoch["train_loss"][0])
        if last_epoch.height and last_epoch["train_loss"][0] is not None
        else None,
        "has_nan": bool(has_nan),
        "n_epochs": int(epochs.height),
        "grad_norm_mean": _finite_or_none(finite_grad.mean()) if len(finite_grad) else None,
        "grad_norm_max": _finite_or_none(finite_grad.max()) if len(finite_grad) else None,
        "grad_norm_min": _finite_or_none(finite_grad.min()) if len(finite_grad) else None,
        **_pairs(ev.metrics),
        "norm_weights": norms,
        "norm_weight_near_zero": norm_weight_near_zero(norms),
        # additions
        "best_epoch": int(best_row["epoch"][0]) if best_row.height else None,
        "epochs_planned": train_cfg.get("epochs"),
        "grad_norm_source": source,
        "grad_norm_nonfinite": int(len(grad) - len(finite_grad)),
        "norm_weights_source": norm_source,
        "phase_vacuous": metrics.get(
            "phase_vacuous", (header.get("dataset") or {}).get("phase_vacuous")
        ),
        "metrics_weights": "last epoch" if ev.metrics else None,
        **_twin_stats(ev.metrics, ev.records),
        "pred_amp_std_final": _finite_or_none(last_epoch["pred_amp_std"][0])
        if last_epoch.height and last_epoch["pred_amp_std"][0] is not None
        else None,
        "target_amp_std": _finite_or_none(header.get("target_amp_std"))
        if header.get("target_amp_std") is not None
        else None,
        "events": events,
        "failure_curve": failure_curve(epochs, steps, verdict),
        "parameters": header.get("parameters"),
        "recipe_hash": (header.get("dataset") or {}).get("recipe_hash"),
        "telemetry": None
        if ev.read_stats is None
        else {
            "records": len(ev.records),
            "bad_lines": ev.read_stats.bad_lines,
            "partial_tail": ev.read_stats.partial_tail,
            "unknown_types": ev.read_stats.unknown_types,
        },
        "problems": list(ev.problems),
    }
    return stats
