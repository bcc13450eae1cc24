"""summary.md's tables: the arm table with its reference rows, replicates per seed, outcomes per
sweep point, and the config differences; plus the cell formatting the whole summary shares.
Data in, markdown lines out (engine/reporting/report.py assembles them).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from engine.reporting.outcomes import states_text

if TYPE_CHECKING:
    from engine.reporting.report import Reference, ReportInput

MISSING = "—"


def fmt(x, digits: int = 4) -> str:
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{digits}g}"
    return str(x)


def epoch_text(e) -> str:
    return MISSING if e is None else str(int(e) + 1)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def reference_for(arm: str, refs: list[Reference]) -> Reference | None:
    return next((r for r in refs if arm in r.arms), None)


def _phase(s: dict, key: str) -> str:
    value = fmt(s.get(key))
    return f"{value} (vacuous)" if s.get("phase_vacuous") and value != MISSING else value


def _final_val(s: dict) -> str:
    """stats.json keeps non-finite values as null; a run with epochs but no final value had a
    non-finite one."""
    if s.get("val_loss_final") is None and s.get("n_epochs"):
        return "non-finite"
    return fmt(s.get("val_loss_final"))


def _ratio(a, b) -> str:
    if a is None or b is None or not b:
        return MISSING
    return f"{a / b:.3g}×"


def _twin_cell(s: dict) -> str:
    """Twin fraction, with the share of patches that could not be decided when there are any."""
    fraction, undecidable = s.get("twin_fraction"), s.get("twin_undecidable_fraction")
    if fraction is None:
        return MISSING if undecidable is None else f"— ({undecidable:.0%} undecidable)"
    return fmt(fraction, 2) + (f" ({undecidable:.0%} undecidable)" if undecidable else "")


def _level_cells(level: dict) -> list[str]:
    """amp SSIM .. phase FRC50 cells of a reference level (a metrics.json-style object)."""

    def pair(name: str, i: int) -> str:
        v = (level.get(name) or [None, None])[i]
        if i == 1 and level.get("phase_vacuous") and v is not None:
            return f"{fmt(v)} (vacuous)"
        return fmt(v)

    return [
        pair("ssim", 0),
        "",
        pair("ssim", 1),
        pair("mae", 0),
        pair("mae", 1),
        pair("psnr", 0),
        pair("psnr", 1),
        pair("frc50", 0),
        pair("frc50", 1),
    ]


ARMS_HEADER = [
    "arm",
    "state",
    "verdict",
    "epochs",
    "best val (epoch)",
    "final val",
    "final ÷ constant",
    "spread ÷ GT",
    "collapse epoch",
    "twin fraction",
    "amp SSIM",
    "amp SSIM vs twin",
    "phase SSIM",
    "amp MAE",
    "phase MAE",
    "amp PSNR",
    "phase PSNR",
    "amp FRC50",
    "phase FRC50",
]
METRIC_COLUMNS = 9  # amp SSIM .. phase FRC50


def arms_table(inp: ReportInput) -> list[str]:
    rows = []
    for s in inp.stats:
        ref = reference_for(s["arm"], inp.references)
        planned = s.get("epochs_planned")
        epochs = f"{s.get('n_epochs', 0)}/{planned}" if planned else str(s.get("n_epochs", 0))
        onset, fired = s.get("collapse_onset_epoch"), s.get("collapse_epoch")
        collapse = (
            MISSING
            if fired is None
            else (
                epoch_text(fired)
                if onset in (None, fired)
                else f"{epoch_text(onset)}→{epoch_text(fired)}"
            )
        )
        rows.append(
            [
                f"`{s['arm']}`",
                s.get("state", MISSING),
                s["verdict"]["text"],
                epochs,
                f"{fmt(s.get('val_loss_best'))} ({epoch_text(s.get('best_epoch'))})",
                _final_val(s),
                _ratio(s.get("val_loss_final"), ref.constant_val_loss if ref else None),
                _ratio(s.get("pred_amp_std_final"), s.get("target_amp_std")),
                collapse,
                _twin_cell(s),
                fmt(s.get("amp_ssim")),
                fmt(s.get("amp_ssim_vs_twin")),
                _phase(s, "phase_ssim"),
                fmt(s.get("amp_mae")),
                _phase(s, "phase_mae"),
                fmt(s.get("amp_psnr")),
                _phase(s, "phase_psnr"),
                fmt(s.get("amp_frc50")),
                _phase(s, "phase_frc50"),
            ]
        )
    # Image levels belong to a dataset, loss levels to a dataset *and* a validation set-up
    # (batch, physics gain): several groups can share one dataset, whose image levels are then
    # shown once, and loss rows name their arms when the dataset alone does not tell them apart.
    datasets = [r.recipe_hash for r in inp.references]
    shown_images: set = set()
    for ref in inp.references:
        tag = "" if len(set(datasets)) == 1 else f" [{(ref.recipe_hash or '?')[:8]}]"
        loss_tag = tag
        if datasets.count(ref.recipe_hash) > 1:
            loss_tag = f"{tag} ({', '.join(f'`{a}`' for a in ref.arms)})"
        image_levels = ref.recipe_hash not in shown_images
        shown_images.add(ref.recipe_hash)
        if ref.flat is not None and image_levels:
            rows.append(
                [f"*flat reconstruction*{tag}", "reference", "—", "", "", "", "", "0×", "", ""]
                + _level_cells(ref.flat)
            )
        if ref.twin is not None and image_levels:
            cells = _level_cells(ref.twin)
            cells[1] = "1"  # it is the twin
            rows.append(
                [f"*all-twin reconstruction*{tag}", "reference", "—", "", "", "", "", "1×", "", "1"]
                + cells
            )
        if ref.constant_val_loss is not None:
            rows.append(
                [
                    f"*best constant output*{loss_tag}",
                    "reference",
                    "—",
                    "",
                    "",
                    fmt(ref.constant_val_loss),
                    "1×",
                    "0×",
                ]
                + [""] * (METRIC_COLUMNS + 2)
            )
        if ref.true_object_val_loss is not None:
            rows.append(
                [
                    f"*true object (noise floor)*{loss_tag}",
                    "reference",
                    "—",
                    "",
                    "",
                    fmt(ref.true_object_val_loss),
                    _ratio(ref.true_object_val_loss, ref.constant_val_loss),
                    "1×",
                ]
                + [""] * (METRIC_COLUMNS + 2)
            )
    return table(ARMS_HEADER, rows)


def seeds_text(inp: ReportInput) -> list[str]:
    """Per group of replicates: one row per seed, then the tally of outcomes."""
    by_arm = {s["arm"]: s for s in inp.stats}
    out = []
    for arms, seeds in inp.seed_groups:
        rows, labels, ssims = [], [], []
        for arm, seed in zip(arms, seeds):
            s = by_arm.get(arm, {})
            verdict = s.get("verdict") or {}
            labels.append(verdict.get("label", "incomplete"))
            if s.get("amp_ssim") is not None:
                ssims.append(s["amp_ssim"])
            rows.append(
                [
                    f"`{arm}`",
                    str(seed),
                    verdict.get("text", MISSING),
                    _final_val(s) if s else MISSING,
                    fmt(s.get("amp_ssim")),
                    _twin_cell(s),
                    fmt(s.get("amp_ssim_vs_twin")),
                ]
            )
        tally = ", ".join(f"{labels.count(label)} {label}" for label in dict.fromkeys(labels))
        spread = (
            f"; amp SSIM {fmt(min(ssims), 3)} to {fmt(max(ssims), 3)}" if len(ssims) > 1 else ""
        )
        out += [f"**{len(arms)} seeds of one set-up** ({tally}{spread}):", ""]
        out += table(
            [
                "arm",
                "seed",
                "verdict",
                "final val",
                "amp SSIM",
                "twin fraction",
                "amp SSIM vs twin",
            ],
            rows,
        ) + [""]
    return out


def config_table(inp: ReportInput) -> list[str]:
    if not inp.config_diff:
        return []
    arms = [s["arm"] for s in inp.stats]
    rows = [[f"`{key}`"] + [fmt(values.get(a)) for a in arms] for key, values in inp.config_diff]
    return table(["knob"] + [f"`{a}`" for a in arms], rows)


OUTCOMES_HEADER = [
    "set-up",
    "sweep",
    "runs",
    "states",
    "verdicts",
    "collapsed",
    "best val loss: median (min–max)",
    "amp SSIM: median (min–max)",
]


def _median_range(spread: dict, digits: int = 3) -> str:
    if not spread.get("n"):
        return MISSING
    if spread["n"] == 1:
        return fmt(spread["median"], digits)
    return (
        f"{fmt(spread['median'], digits)} ({fmt(spread['min'], digits)}–"
        f"{fmt(spread['max'], digits)})"
    )


def outcomes_table(groups: list[dict]) -> list[str]:
    """One row per sweep point without the seed (engine/reporting/outcomes.py), with the rule of
    what is counted under it; no lines when the study has no sweep."""
    if not groups:
        return []
    rows = [
        [
            f"`{g['group']}`",
            ", ".join(g["sweeps"]),
            str(len(g["runs"])),
            states_text(g["states"]),
            g["verdicts_text"],
            g["collapse_text"],
            _median_range(g["val_loss_best"]),
            _median_range(g["amp_ssim"]),
        ]
        for g in groups
    ]
    return [
        "Runs grouped by set-up: a sweep point without its training seed (the same arm and the "
        "same other values; an arm itself joins the group of a seeds-only sweep over it).",
        "",
        *table(OUTCOMES_HEADER, rows),
        "",
        "*collapsed*: runs whose verdict is ✖ collapsed, ↗ diverged or ‼ nan, over the runs "
        "whose outcome is settled (verdict healthy, twin, mixed twin, collapsed, diverged or nan, "
        "and the process no longer queued or running), with the 95 % Wilson score interval. Not "
        "counted: runs not started, queued or still running, and runs that failed (the process "
        "failed, e.g. out of memory at load) or are incomplete (killed or crashed early). "
        "Median and range (min–max) are over the counted runs.",
    ]
