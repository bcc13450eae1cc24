"""Study export: per-arm stats.json, the study metrics file, summary.md with figures, a bundle.

``export_study`` never prints and never raises for bad input (the dashboard runs it in a worker
thread): missing or partial run directories, truncated telemetry, runs still in progress and
unreadable artifacts become lines in ``ExportResult.problems`` and in summary.md, and the export
completes with whatever evidence exists.

Layout of an export (``out_dir``, default ``<study output_dir>/report``)::

    summary.md            arm table with reference levels, signatures, outcomes per sweep point,
                          config differences, failure-curve paragraphs, figures, what could not
                          be used
    stats.json            {arm: stats}: the original study-level stats dump, one object per arm;
                          with sweeps, also "@sweeps": the outcome statistics per set-up
                          (engine/reporting/outcomes.py; '@' never starts an arm name)
    study_metrics.jsonl   one flat row per arm *run*, keyed by run_id (engine/reporting/
                          metrics_file.py); re-exporting replaces a run's row
    figures/loss.png, figures/grad_norm.png, figures/recon_<arm>.png

Each arm's ``stats.json`` is also written into its own run directory, beside metrics.json, as the
original tools kept their per-arm artifacts; the report's stats.json gathers them. Both are
written atomically. With ``bundle``, the report and every arm's evidence are copied into
``bundle/`` (engine/reporting/bundle.py).

This module orchestrates; each job has its module: evidence and stats (evidence.py, stats.py),
reference levels (references.py), comparisons between arms (compare.py), the metrics file
(metrics_file.py), outcome statistics (outcomes.py), figures (export_figures.py), the bundle
(bundle.py), rendering (report.py) and the atomic writes (writing.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.reporting.bundle import BUNDLE_ARMS_DIR, BUNDLE_EVIDENCE, GRAD_NORM_FILE, write_bundle
from engine.reporting.compare import (
    FLAT_LEVEL_RTOL,
    IDENTICAL_DIGITS,
    arm_configs,
    at_flat_level,
    config_differences,
    identical_amp_metrics,
    identical_histories,
    seed_groups,
    stale_configs,
)
from engine.reporting.evidence import read_run
from engine.reporting.export_figures import FIGURES_DIR, draw_figures
from engine.reporting.metrics_file import (
    METRICS_FILE,
    ROW_KNOBS,
    ROW_STATS,
    metrics_row,
    study_rows,
    upsert_metrics,
)
from engine.reporting.outcomes import SECTION as OUTCOMES_SECTION
from engine.reporting.outcomes import outcome_groups
from engine.reporting.references import flat_summary, study_references
from engine.reporting.report import ReportInput, render_summary
from engine.reporting.stats import STATS_FILE, arm_stats
from engine.reporting.writing import (
    REPORT_DIR,
    SUMMARY_FILE,
    ExportResult,
    write_file,
    write_text,
)
from engine.runs.rundir import RunDir
from engine.study.arms import Study

# Names other modules and tests import from here, where they lived before the split.
__all__ = [
    "BUNDLE_ARMS_DIR",
    "BUNDLE_EVIDENCE",
    "FIGURES_DIR",
    "FLAT_LEVEL_RTOL",
    "GRAD_NORM_FILE",
    "IDENTICAL_DIGITS",
    "METRICS_FILE",
    "REPORT_DIR",
    "ROW_KNOBS",
    "ROW_STATS",
    "SUMMARY_FILE",
    "ExportResult",
    "at_flat_level",
    "config_differences",
    "export_study",
    "identical_amp_metrics",
    "identical_histories",
    "metrics_row",
    "seed_groups",
    "stale_configs",
]


def export_study(
    study: Study, out_dir: Path | None = None, bundle: Path | None = None
) -> ExportResult:
    """Export every arm of ``study``; see the module docstring for what is written where."""
    out = Path(out_dir) if out_dir is not None else Path(study.output_dir) / REPORT_DIR
    result = ExportResult()
    evidence = {arm: read_run(arm, study.run_dir(arm)) for arm in study.arms}
    stats = {arm: arm_stats(ev) for arm, ev in evidence.items()}
    for arm, ev in evidence.items():
        result.problems += [f"{arm}: {p}" for p in ev.problems]

    references = study_references(study, evidence, stats, result.problems)
    for ref in references:
        level = {
            "flat": flat_summary(ref.flat),
            "twin": flat_summary(ref.twin),
            "constant_output_val_loss": ref.constant_val_loss,
            "true_object_val_loss": ref.true_object_val_loss,
        }
        for arm in ref.arms:
            stats[arm]["reference"] = level

    for arm, ev in evidence.items():
        if ev.exists:
            write_file(
                result,
                RunDir(ev.root).root / STATS_FILE,
                lambda p, s=stats[arm]: atomic_write_json(p, s),
            )
    now = time.time()
    rows = study_rows(study, stats, evidence, now)
    outcomes = outcome_groups(list(rows.values()))
    combined = {**stats, OUTCOMES_SECTION: outcomes} if outcomes else stats
    write_file(result, out / STATS_FILE, lambda p: atomic_write_json(p, combined))
    upsert_metrics(out / METRICS_FILE, rows, now, result)

    figures = draw_figures(out, evidence, stats, references, result)
    configs = arm_configs(evidence, study)
    report = ReportInput(
        study=study.name,
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
        arms_file=str(study.path),
        output_dir=str(study.output_dir),
        profile=study.profile,
        stats=list(stats.values()),
        references=references,
        config_diff=config_differences(configs),
        seed_groups=seed_groups(configs),
        outcomes=outcomes,
        identical_histories=identical_histories(evidence),
        identical_amp_metrics=identical_amp_metrics(list(stats.values())),
        flat_level_arms=at_flat_level(list(stats.values()), references),
        stale_configs=stale_configs(study, evidence),
        figures=figures,
        problems=result.problems,
    )
    write_file(result, out / SUMMARY_FILE, lambda p: write_text(p, render_summary(report)))
    if bundle is not None:
        write_bundle(Path(bundle), out, evidence, report, result)
    return result
