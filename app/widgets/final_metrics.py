"""A run's final evaluation as the arm detail shows it: SSIM, PSNR, MAE and FRC50 for
amplitude and phase, and how much of the object came out as its twin."""

from __future__ import annotations

import json

from rich.text import Text

from app.widgets.cells import fmt_num
from engine.runs.rundir import METRICS_FILE

# Final-metrics columns: (label, metrics.json pair name).
FINAL_COLUMNS = (("SSIM", "ssim"), ("PSNR", "psnr"), ("MAE", "mae"), ("FRC50", "frc50"))


def final_metrics_text(metrics: dict | None, record: dict | None, state: str | None = None) -> Text:
    """The final evaluation of a run: metrics.json when it was read (the full object, with the
    twin block), else the telemetry ``metrics`` record's headline (what a run directory without
    metrics.json, or a mirror still fetching it, has).

    Without either: "not recorded" for a run that finished without writing them (telemetry
    older than the final-metrics record), "no data yet" for one that has not finished."""
    t = Text()
    if isinstance(metrics, dict):
        source, pairs = METRICS_FILE, metrics
        twin = metrics.get("twin") if isinstance(metrics.get("twin"), dict) else {}
        fraction, undecidable = twin.get("fraction"), twin.get("undecidable_fraction")
        vs_twin = (twin.get("metrics") or {}).get("ssim")
        vacuous = bool(metrics.get("phase_vacuous"))
        reevaluated = bool(metrics.get("reevaluated_at"))
    elif isinstance(record, dict) and isinstance(record.get("metrics"), dict):
        source, pairs = "telemetry", record["metrics"]
        fraction = pairs.get("twin_fraction")
        undecidable = pairs.get("twin_undecidable_fraction")
        vs_twin = pairs.get("ssim_vs_twin")
        vacuous = False
        reevaluated = bool(record.get("reevaluated"))
    else:
        t.append("final metrics: ", style="bold")
        if state == "finished":
            t.append(
                "not recorded (this run's telemetry has no final metrics record; "
                "fnotui evaluate re-scores the run)",
                style="dim",
            )
        else:
            t.append("no data yet (written when the run finishes its evaluation)", style="dim")
        return t
    again = ", re-evaluated" if reevaluated else ""
    # A run stopped by the user and re-scored says where its weights come from.
    weights = (metrics if isinstance(metrics, dict) else record or {}).get("weights")
    which = f"weights {weights}" if weights and weights != "last epoch" else "last epoch's weights"
    t.append(f"final metrics, {which} ({source}{again})\n", style="bold")
    t.append(f"{'':7}" + "".join(f"{label:>10}" for label, _ in FINAL_COLUMNS) + "\n")
    for i, channel in enumerate(("amp", "phase")):
        t.append(f"  {channel:<5}")
        for _, name in FINAL_COLUMNS:
            pair = pairs.get(name)
            value = pair[i] if isinstance(pair, list) and len(pair) == 2 else None
            t.append(f"{fmt_num(value):>10}")
        if i == 1 and vacuous:
            t.append("  (vacuous: constant GT phase)", style="dim")
        t.append("\n")
    t.append("  twin   ")
    if fraction is None and undecidable is None:
        t.append(
            "not recorded (older evaluation code: fnotui evaluate re-scores the run)", style="dim"
        )
        return t
    t.append(f"fraction {fmt_num(fraction, 3)}", style="bold")
    t.append(" of decidable patches")
    if isinstance(undecidable, (int, float)):
        t.append(f" ({undecidable:.0%} undecidable)")
    if isinstance(vs_twin, list) and len(vs_twin) == 2:
        t.append(
            f"\n{'':9}SSIM vs twin {fmt_num(vs_twin[0])} / {fmt_num(vs_twin[1])} (amp / phase)"
        )
    else:
        t.append(f"\n{'':9}SSIM vs twin not recorded", style="dim")
    return t


def read_metrics_json(path) -> dict | None:
    """metrics.json as a dict, or None when it is absent, half-fetched or not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
