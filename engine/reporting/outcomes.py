"""Outcome statistics of sweeps: a set-up's runs across seeds, with the collapse fraction's interval.

A stability study is a statement about probabilities ("collapsed in 1 of 3 seeds"), so the export
groups runs by set-up: a sweep point without its training seed (``SweepPoint.group``, the run name
with the ``seed-<n>`` part left out), i.e. the same arm and the same non-seed values. A plain arm's
group is its arm, so an arm and the points of a seeds-only sweep over it are one group. Only groups
holding at least one sweep point are reported; the arm table already shows every plain arm.

Per group: the runs' states and verdict counts, the collapse fraction with its 95 % Wilson score
interval, and the median and range (min–max: with a handful of seeds an interquartile range says
little) of the best validation loss and the final amplitude SSIM.

What counts (decided from engine/scoring/verdict.py):

- A run is *counted* once its training outcome is settled: its verdict judges training (healthy,
  twin, mixed twin, collapsed, diverged, nan) and its process is no longer queued, running or stale.
  Not counted, though listed in the states: runs not started, queued or still running (a running
  run that already collapsed included: counting early collapses before the slower healthy runs
  finish would bias the fraction upwards), and runs whose verdict is ``failed`` (the process failed,
  e.g. out of memory at model load: it never trained) or ``incomplete`` (killed or crashed before
  its last epoch, without an alarm).
- A counted run is *collapsed* when its verdict is collapsed, diverged or nan
  (``engine.scoring.verdict.FAILED_LABELS``, the runs that did not train and get a failure-curve
  paragraph). A twin reconstruction trained: it is not collapsed.
- Medians and ranges are over the counted runs that have the value.

The input rows are the study metrics rows (``engine.reporting.metrics_file.metrics_row``, the rows
of study_metrics.jsonl, one per run, not-started runs included); the output is JSON-ready, the
"@sweeps" section of the report's stats.json.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

import polars as pl

from engine.scoring.verdict import FAILED_LABELS, LABELS, SYMBOLS

# Verdicts that judge training (the rest say the process failed, is incomplete or still running).
OUTCOME_LABELS = ("healthy", "twin", "mixed twin", "collapsed", "diverged", "nan")
COLLAPSE_LABELS = FAILED_LABELS
# Process states whose run has no outcome yet, whatever its verdict says so far.
UNSETTLED_STATES = ("not started", "queued", "running", "stale")
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
METRICS = ("val_loss_best", "amp_ssim")
SEED_COLUMN = "train.seed"
SECTION = "@sweeps"  # key of the section in stats.json; '@' is never in an arm name


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials (95 % by default).

    Unlike the normal approximation p ± z·sqrt(p(1-p)/n), it stays inside [0, 1] and does not
    collapse to a point at 0/n or n/n, which is what a three-seed sweep mostly produces.
    """
    if n <= 0:
        raise ValueError("no trials")
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes in {n} trials")
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At k = 0 or k = n one bound is exactly 0 or 1; rounding must not move it off.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def fraction_text(k: int, n: int, *, short: bool = False) -> str:
    """'1/3 (95 % CI 6–79 %)'; '0/0 (no settled runs)' when nothing can be counted yet.
    ``short`` (a table cell): '1/3 (6–79 %)' and '0/0'."""
    if n == 0:
        return "0/0" if short else "0/0 (no settled runs)"
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} ({'' if short else '95 % CI '}{lo * 100:.0f}–{hi * 100:.0f} %)"


def verdict_counts_text(counts: dict[str, int]) -> str:
    """'✔ 2 ✖ 1' in the verdicts' order; a symbol two labels share (collapsed and failed both
    print ✖) is followed by the label whenever both are present, so no count is ambiguous."""
    present = [label for label in LABELS if counts.get(label)]
    symbols = Counter(SYMBOLS[label] for label in present)
    parts = []
    for label in present:
        text = f"{SYMBOLS[label]} {counts[label]}"
        parts.append(f"{text} {label}" if symbols[SYMBOLS[label]] > 1 else text)
    return " ".join(parts)


def states_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def is_counted(state: str, verdict: str) -> bool:
    """Whether a run's training outcome is settled, so that it counts (see the module doc)."""
    return verdict in OUTCOME_LABELS and state not in UNSETTLED_STATES


def spread(values) -> dict:
    """n, median, min and max of the finite values (None and NaN are not values)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return {
        "n": len(finite),
        "median": statistics.median(finite) if finite else None,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
    }


def group_outcome(runs: list[dict]) -> dict:
    """The outcome statistics of one group's runs, JSON-ready: each run a mapping with its
    ``state``, ``verdict`` and the METRICS values (missing or None: not recorded). The export
    calls it per group of study metrics rows; the dashboard on its live snapshots."""
    counted = [r for r in runs if is_counted(r["state"], r["verdict"])]
    k, n = sum(r["verdict"] in COLLAPSE_LABELS for r in counted), len(counted)
    verdicts = dict(Counter(r["verdict"] for r in runs))
    return {
        "states": dict(Counter(r["state"] for r in runs)),
        "verdicts": verdicts,
        "verdicts_text": verdict_counts_text(verdicts),
        "counted": n,
        "collapsed": k,
        "collapse_fraction": k / n if n else None,
        "collapse_ci95": list(wilson_interval(k, n)) if n else None,
        "collapse_text": fraction_text(k, n),
        **{m: spread(r.get(m) for r in counted) for m in METRICS},
    }


def outcome_groups(rows: list[dict]) -> list[dict]:
    """One JSON-ready object per group of runs that holds a sweep point (see the module doc),
    in the order the rows first name each group."""
    if not rows:
        return []
    frame = pl.DataFrame(
        {
            "run": [r["arm"] for r in rows],
            "sweep": [r.get("sweep") or "" for r in rows],
            "group": [r.get("sweep_group") or r["arm"] for r in rows],
            "state": [r.get("state") or "not started" for r in rows],
            "verdict": [r.get("verdict") or "incomplete" for r in rows],
            "seed": [r.get(SEED_COLUMN) for r in rows],
            **{m: [r.get(m) for r in rows] for m in METRICS},
        },
        schema_overrides={"seed": pl.Int64, **{m: pl.Float64 for m in METRICS}},
        strict=False,
    )
    grouped = (
        frame.group_by("group", maintain_order=True)
        .agg(
            pl.col("run"),
            pl.col("seed"),
            pl.col("sweep").filter(pl.col("sweep") != "").unique(maintain_order=True),
            pl.struct("state", "verdict", *METRICS).alias("outcomes"),
        )
        .filter(pl.col("sweep").list.len() > 0)
    )
    return [
        {
            "group": g["group"],
            "sweeps": g["sweep"],
            "runs": g["run"],
            "seeds": g["seed"],
            **group_outcome(g["outcomes"]),
        }
        for g in grouped.iter_rows(named=True)
    ]
