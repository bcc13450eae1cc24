"""The export's bundle: the report and every arm's evidence copied into one folder.

``bundle/`` gets summary.md (linking the evidence), stats.json, the study metrics file and the
figures; ``bundle/arms/<arm>/`` gets config.json, history.json, metrics.json, stats.json, model.pt
(last epoch's weights), checkpoint.pt (the resumable epoch-end checkpoint, when the engine wrote
one), telemetry.jsonl, run.log, status.json, recon.npz, plus grad_norm.csv extracted from the
telemetry. Every copy is atomic: a reader never sees half a file.
"""

from __future__ import annotations

import io
from pathlib import Path

from engine.atomic import atomic_write_bytes
from engine.reporting.evidence import RunEvidence
from engine.reporting.metrics_file import METRICS_FILE
from engine.reporting.report import ReportInput, render_summary
from engine.reporting.stats import STATS_FILE, step_frame
from engine.reporting.writing import (
    SUMMARY_FILE,
    ExportResult,
    copy_file,
    write_file,
    write_text,
)
from engine.runs import rundir
from engine.runs.telemetry import TELEMETRY_FILE

BUNDLE_ARMS_DIR = "arms"
GRAD_NORM_FILE = "grad_norm.csv"
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


def write_bundle(
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
                write_file(result, dest / rel, lambda p, s=src: copy_file(s, p))
    evidence_links = {}
    for arm, ev in evidence.items():
        if not ev.exists:
            continue
        arm_dir = dest / BUNDLE_ARMS_DIR / arm
        copied = []
        for name in BUNDLE_EVIDENCE:
            src = ev.root / name
            if src.is_file() and write_file(
                result, arm_dir / name, lambda p, s=src: copy_file(s, p)
            ):
                copied.append(name)
        if ev.records:
            steps = step_frame(ev.records).select(
                "epoch", "step", "loss", "grad_norm", "grad_norm_clipped", "lr"
            )
            buf = io.BytesIO()
            steps.write_csv(buf)
            if write_file(
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
    write_file(result, dest / SUMMARY_FILE, lambda p: write_text(p, text))
