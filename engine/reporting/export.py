"""Study export: per-arm stats.json, the study metrics file, summary.md with figures, a bundle.

``export_study`` never prints and never raises for bad input (the dashboard runs it in a worker
thread): missing or partial run directories, truncated telemetry, runs still in progress and
unreadable artifacts become lines in ``ExportResult.problems`` and in summary.md, and the export
completes with whatever evidence exists.

Layout of an export (``out_dir``, default ``<study output_dir>/report``)::

    summary.md            arm table with reference levels, signatures, config differences,
                          failure-curve paragraphs, figures, what could not be used
    stats.json            {arm: stats}: the original study-level stats dump, one object per arm
    study_metrics.jsonl   one flat row per arm *run*, keyed by run_id; re-exporting replaces a
                          run's row instead of appending a duplicate (rows of older runs stay)
    figures/loss.png, figures/grad_norm.png, figures/recon_<arm>.png

Each arm's ``stats.json`` is also written into its own run directory, beside metrics.json, as the
original tools kept their per-arm artifacts; the report's stats.json gathers them. Both are
written atomically. With ``bundle``, the report and every arm's evidence (config.json,
history.json, metrics.json, stats.json, model.pt (last epoch's weights), checkpoint.pt (the
resumable epoch-end checkpoint, when the engine wrote one), telemetry.jsonl, run.log, status.json,
recon.npz, plus grad_norm.csv extracted from the telemetry) are copied into ``bundle/`` and
``bundle/arms/<arm>/``, and the bundle's summary.md links them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from engine.atomic import atomic_write_bytes, atomic_write_json
from engine.locking import hold
from engine.reporting.evidence import RunEvidence, read_run
from engine.reporting.levels import constant_output_val_loss, true_object_val_loss
from engine.reporting.report import Reference, ReportInput, render_summary
from engine.reporting.stats import STATS_FILE, arm_stats, epoch_frame, step_frame
from engine.runs import rundir
from engine.runs.rundir import RunDir, data_cache_dir
from engine.runs.telemetry import TELEMETRY_FILE
from engine.study.arms import Study

REPORT_DIR = "report"
SUMMARY_FILE = "summary.md"
METRICS_FILE = "study_metrics.jsonl"
FIGURES_DIR = "figures"
BUNDLE_ARMS_DIR = "arms"
GRAD_NORM_FILE = "grad_norm.csv"
# Significant digits at which two arms' amplitude metrics count as "identical".
IDENTICAL_DIGITS = 6
# Relative tolerance at which an arm's amplitude metrics count as "at the flat-image level".
FLAT_LEVEL_RTOL = 1e-3
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


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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

    references = _references(study, evidence, stats, result.problems)
    for ref in references:
        level = {
            "flat": _flat_summary(ref.flat),
            "twin": _flat_summary(ref.twin),
            "constant_output_val_loss": ref.constant_val_loss,
            "true_object_val_loss": ref.true_object_val_loss,
        }
        for arm in ref.arms:
            stats[arm]["reference"] = level

    for arm, ev in evidence.items():
        if ev.exists:
            _write(
                result,
                RunDir(ev.root).root / STATS_FILE,
                lambda p, s=stats[arm]: atomic_write_json(p, s),
            )
    _write(result, out / STATS_FILE, lambda p: atomic_write_json(p, stats))
    _upsert_metrics(out / METRICS_FILE, study, stats, evidence, result)

    figures = _figures(out, evidence, stats, references, result)
    configs = _configs(evidence, study)
    report = ReportInput(
        study=study.name,
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        arms_file=str(study.path),
        output_dir=str(study.output_dir),
        profile=study.profile,
        stats=list(stats.values()),
        references=references,
        config_diff=config_differences(configs),
        seed_groups=seed_groups(configs),
        identical_histories=identical_histories(evidence),
        identical_amp_metrics=identical_amp_metrics(list(stats.values())),
        flat_level_arms=at_flat_level(list(stats.values()), references),
        stale_configs=stale_configs(study, evidence),
        figures=figures,
        problems=result.problems,
    )
    _write(result, out / SUMMARY_FILE, lambda p: _write_text(p, render_summary(report)))
    if bundle is not None:
        _bundle(Path(bundle), out, evidence, report, result)
    return result


# ------------------------------------------------------------------------------------------
# writing


def _write(result: ExportResult, path: Path, write) -> bool:
    """Run one write; a failure becomes a problem line instead of aborting the export."""
    try:
        write(path)
    except OSError as exc:
        result.problems.append(f"could not write {path}: {exc}")
        return False
    result.files.append(path)
    return True


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def _copy(src: Path, dst: Path) -> None:
    """Copy through a temp file in the destination folder, so a reader never sees half a file."""
    with open(src, "rb") as fh_in:
        atomic_write_bytes(dst, lambda fh: shutil.copyfileobj(fh_in, fh))
    shutil.copystat(src, dst)


# ------------------------------------------------------------------------------------------
# reference levels


def _flat_summary(flat: dict | None) -> dict | None:
    if flat is None:
        return None
    keys = ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50")
    out = {f"amp_{k}": flat[k][0] for k in keys if k in flat}
    out.update({f"phase_{k}": flat[k][1] for k in keys if k in flat})
    out["phase_vacuous"] = flat.get("phase_vacuous")
    return out


def _references(
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


# ------------------------------------------------------------------------------------------
# aggregation


def _flatten(cfg: dict) -> dict[str, object]:
    out = {}
    for section in ("data", "model", "train", "detect"):
        for key, value in (cfg.get(section) or {}).items():
            out[f"{section}.{key}"] = value
    return out


def _configs(evidence: dict[str, RunEvidence], study: Study) -> dict[str, dict]:
    """Each arm's config as trained (its run's config.json) or, for an arm without a run, as
    the arms file defines it: the comparison is of the study's arms, not only of finished runs."""
    configs = {}
    for arm, ev in evidence.items():
        if ev.config:
            configs[arm] = _flatten(ev.config)
        elif arm in study.arms:
            configs[arm] = _flatten(study.arms[arm].to_dict())
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
        ran, now = _flatten(ev.config), _flatten(study.arms[arm].to_dict())
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
                "config": _digest({k: v for k, v in _flatten(ev.config or {}).items()}),
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
    row.update({k: stats.get(k) for k in ROW_STATS})
    ref = stats.get("reference") or {}
    row["constant_output_val_loss"] = ref.get("constant_output_val_loss")
    row["all_twin_amp_ssim"] = (ref.get("twin") or {}).get("amp_ssim")
    for section, key in ROW_KNOBS:
        row[f"{section}.{key}"] = ((config or {}).get(section) or {}).get(key)
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def _upsert_metrics(
    path: Path,
    study: Study,
    stats: dict[str, dict],
    evidence: dict[str, RunEvidence],
    result: ExportResult,
) -> None:
    """Append each run's row, replacing an earlier row with the same run_id (idempotent).

    The read-merge-replace runs under an exclusive lock, so a dashboard export and a command-line
    export at the same moment cannot lose each other's rows.
    """
    now = time.time()
    rows = []
    for arm, s in stats.items():
        if s["run_id"] is None:
            if s["state"] != "not started":
                result.problems.append(
                    f"{arm}: no run id (no telemetry header), no row in {METRICS_FILE}"
                )
            continue
        rows.append(metrics_row(study, s, evidence[arm].config, now))
    if not rows:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with hold(path.parent / f".{path.name}.lock"):
            new = pl.DataFrame(rows, infer_schema_length=None)
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


# ------------------------------------------------------------------------------------------
# figures


def _curves(evidence: dict[str, RunEvidence], stats: dict[str, dict]):
    from engine.reporting.figures import ArmCurves

    curves = []
    for arm, ev in evidence.items():
        epochs = epoch_frame(ev.records, ev.history)
        if epochs.height == 0:
            continue
        steps = step_frame(ev.records).filter(pl.col("grad_norm").is_not_null())
        per_epoch = int((ev.header or {}).get("steps_per_epoch") or 0)
        step = steps["step"].to_numpy().astype(np.float64)
        if per_epoch:
            frac = step / per_epoch
        else:
            frac = steps["epoch"].to_numpy().astype(np.float64) + 0.5
        s = stats[arm]
        curves.append(
            ArmCurves(
                arm=arm,
                epoch=epochs["epoch"].to_numpy(),
                train_loss=epochs["train_loss"].fill_null(np.nan).to_numpy(),
                val_loss=epochs["val_loss"].fill_null(np.nan).to_numpy(),
                step=step,
                step_epoch=frac,
                grad_norm=steps["grad_norm"].to_numpy(),
                val_amp_mae=epochs["val_amp_mae"].fill_null(np.nan).to_numpy(),
                collapse_epoch=s["collapse_epoch"],
                label=s["verdict"]["label"],
            )
        )
    return curves


def _figures(
    out: Path,
    evidence: dict[str, RunEvidence],
    stats: dict[str, dict],
    references: list[Reference],
    result: ExportResult,
) -> dict[str, str]:
    """Draw the figures; returns {name: path relative to ``out``} of those written."""
    try:
        from engine.reporting import figures as fig
    except ImportError as exc:
        result.problems.append(f"no figures: {exc}")
        return {}
    links: dict[str, str] = {}
    curves = _curves(evidence, stats)
    levels = [r.constant_val_loss for r in references if r.constant_val_loss is not None]
    jobs = []
    if curves:
        jobs.append(
            (
                "loss",
                "loss.png",
                lambda p: fig.loss_figure(curves, p, levels[0] if len(levels) == 1 else None),
            )
        )
        jobs.append(("grad_norm", "grad_norm.png", lambda p: fig.grad_norm_figure(curves, p)))
    for arm, ev in evidence.items():
        if ev.recon is not None:
            vacuous = bool(stats[arm].get("phase_vacuous"))
            jobs.append(
                (
                    f"recon:{arm}",
                    f"recon_{arm}.png",
                    lambda p, r=ev.recon, a=arm, v=vacuous: fig.reconstruction_figure(a, r, p, v),
                )
            )
    for name, filename, draw in jobs:
        path = out / FIGURES_DIR / filename
        try:
            draw(path)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            result.problems.append(f"figure {filename} failed: {exc}")
            continue
        result.files.append(path)
        links[name] = f"{FIGURES_DIR}/{filename}"
    return links


# ------------------------------------------------------------------------------------------
# bundle

BUNDLE_EVIDENCE = (
    rundir.CONFIG_FILE,
    rundir.HISTORY_FILE,
    rundir.METRICS_FILE,
    STATS_FILE,
    rundir.MODEL_FILE,
    rundir.CHECKPOINT_FILE,
    TELEMETRY_FILE,
    rundir.LOG_FILE,
    rundir.STATUS_FILE,
    rundir.RECON_FILE,
)


def _bundle(
    dest: Path,
    out: Path,
    evidence: dict[str, RunEvidence],
    report: ReportInput,
    result: ExportResult,
) -> None:
    """Copy the report and every arm's evidence into ``dest`` (an archive of the study)."""
    same = dest.resolve() == out.resolve()
    if not same:
        for rel in [STATS_FILE, METRICS_FILE] + [v for v in report.figures.values()]:
            src = out / rel
            if src.is_file():
                _write(result, dest / rel, lambda p, s=src: _copy(s, p))
    evidence_links = {}
    for arm, ev in evidence.items():
        if not ev.exists:
            continue
        arm_dir = dest / BUNDLE_ARMS_DIR / arm
        copied = []
        for name in BUNDLE_EVIDENCE:
            src = ev.root / name
            if src.is_file() and _write(result, arm_dir / name, lambda p, s=src: _copy(s, p)):
                copied.append(name)
        if ev.records:
            steps = step_frame(ev.records).select(
                "epoch", "step", "loss", "grad_norm", "grad_norm_clipped", "lr"
            )
            buf = io.BytesIO()
            steps.write_csv(buf)
            if _write(
                result,
                arm_dir / GRAD_NORM_FILE,
                lambda p, buf=buf: atomic_write_bytes(p, lambda fh: fh.write(buf.getvalue())),
            ):
                copied.append(GRAD_NORM_FILE)
        missing = [n for n in BUNDLE_EVIDENCE if n not in copied]
        if missing and ev.state != "not started":
            result.problems.append(
                f"{arm}: bundle lacks {', '.join(missing)} (not in the run directory)"
            )
        evidence_links[arm] = f"{BUNDLE_ARMS_DIR}/{arm}/"
    text = render_summary(report)
    if evidence_links:
        text += (
            "\n## Evidence in this bundle\n\n"
            + "\n".join(
                f"- [`{arm}`]({link}): config, history, metrics, stats, checkpoint, telemetry "
                f"(with {GRAD_NORM_FILE}), {rundir.LOG_FILE}"
                for arm, link in evidence_links.items()
            )
            + "\n"
        )
    _write(result, dest / SUMMARY_FILE, lambda p: _write_text(p, text))
