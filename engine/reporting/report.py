"""summary.md rendering: data in, markdown out. No I/O, no clock, no globals.

The exporter (engine/reporting/export.py) gathers per-arm stats (engine/reporting/stats.py), reference levels, config
differences and figure paths into a ``ReportInput``; ``render_summary`` only formats them. Epochs
are printed 1-based, as on the console; the JSON artifacts keep the telemetry's 0-based numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.scoring.verdict import SYMBOLS

MISSING = "—"


@dataclass
class Reference:
    """Reference levels of one dataset (docs/science.md, 'Reference levels'): what trivial
    outputs score."""

    recipe_hash: str | None
    arms: list[str]
    flat: dict | None = None  # metrics.json-style object of a flat reconstruction
    twin: dict | None = None  # the same, of the all-twin reconstruction (engine/scoring/twin.py)
    constant_val_loss: float | None = None  # best constant-amplitude output
    constant_amplitude: float | None = None
    true_object_val_loss: float | None = None  # noise floor
    source: str = ""  # where the levels were computed from


@dataclass
class ReportInput:
    study: str
    generated: str
    arms_file: str
    output_dir: str
    profile: str | None
    stats: list[dict]  # engine.reporting.stats.arm_stats objects, in study order
    references: list[Reference] = field(default_factory=list)
    config_diff: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    # Replicates: arms equal but for the training seed, with their seeds (engine.reporting.export).
    seed_groups: list[tuple[list[str], list[object]]] = field(default_factory=list)
    identical_histories: list[list[str]] = field(default_factory=list)
    identical_amp_metrics: list[list[str]] = field(default_factory=list)
    flat_level_arms: list[str] = field(default_factory=list)
    stale_configs: dict[str, list[str]] = field(default_factory=dict)  # arm -> "knob run (file)"
    figures: dict[str, str] = field(default_factory=dict)  # "loss", "grad_norm", "recon:<arm>"
    problems: list[str] = field(default_factory=list)


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


def _epoch(e) -> str:
    return MISSING if e is None else str(int(e) + 1)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def _reference_for(arm: str, refs: list[Reference]) -> Reference | None:
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
        ref = _reference_for(s["arm"], inp.references)
        planned = s.get("epochs_planned")
        epochs = f"{s.get('n_epochs', 0)}/{planned}" if planned else str(s.get("n_epochs", 0))
        onset, fired = s.get("collapse_onset_epoch"), s.get("collapse_epoch")
        collapse = (
            MISSING
            if fired is None
            else (_epoch(fired) if onset in (None, fired) else f"{_epoch(onset)}→{_epoch(fired)}")
        )
        rows.append(
            [
                f"`{s['arm']}`",
                s.get("state", MISSING),
                s["verdict"]["text"],
                epochs,
                f"{fmt(s.get('val_loss_best'))} ({_epoch(s.get('best_epoch'))})",
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
    return _table(ARMS_HEADER, rows)


def references_text(inp: ReportInput) -> list[str]:
    out = []
    for ref in inp.references:
        arms = ", ".join(f"`{a}`" for a in ref.arms)
        bits = []
        if ref.flat is not None:
            bits.append(
                f"a flat reconstruction scores amplitude SSIM {fmt(ref.flat['ssim'][0])}, "
                f"MAE {fmt(ref.flat['mae'][0])}, PSNR {fmt(ref.flat['psnr'][0])}"
            )
        if ref.twin is not None:
            bits.append(
                f"a perfect reconstruction of the twin of every patch scores amplitude "
                f"SSIM {fmt(ref.twin['ssim'][0])}, MAE {fmt(ref.twin['mae'][0])}, "
                f"FRC50 {fmt(ref.twin['frc50'][0])}"
            )
        if ref.constant_val_loss is not None:
            bits.append(
                f"the best constant amplitude ({fmt(ref.constant_amplitude)}) reaches "
                f"validation loss {fmt(ref.constant_val_loss)}"
            )
        if ref.true_object_val_loss is not None:
            bits.append(f"the true object reaches {fmt(ref.true_object_val_loss)} (noise floor)")
        if not bits:
            continue
        head = f"Dataset `{(ref.recipe_hash or 'unknown')[:16]}` ({arms})"
        out.append(f"- {head}: " + "; ".join(bits) + f". Computed from {ref.source}.")
    return out


def signatures(inp: ReportInput) -> list[str]:
    out = []
    for group in inp.identical_histories:
        out.append(
            "- **Identical loss histories, different configs:** "
            + ", ".join(f"`{a}`" for a in group)
            + ". Arms meant to differ trained identically: a knob probably never reached "
            "training (docs/science.md, 'Identical results across optimizers')."
        )
    for group in inp.identical_amp_metrics:
        out.append(
            "- **Identical amplitude metrics:** "
            + ", ".join(f"`{a}`" for a in group)
            + ". Different runs scoring exactly alike is the signature of a constant "
            "(collapsed) output (docs/science.md, 'Collapse')."
        )
    if inp.flat_level_arms:
        out.append(
            "- **At the flat-reconstruction level:** "
            + ", ".join(f"`{a}`" for a in inp.flat_level_arms)
            + ": amplitude MAE, SSIM and PSNR equal a flat image's (within 0.1 %), which "
            "is what a constant output scores."
        )
    twins = [s for s in inp.stats if s["verdict"]["label"] in ("twin", "mixed twin")]
    if twins:
        out.append(
            "- **Twin reconstructions:** "
            + ", ".join(
                f"`{s['arm']}` ({fmt(s.get('twin_fraction'), 2)} of patches, "
                f"amplitude SSIM vs twin {fmt(s.get('amp_ssim_vs_twin'))})"
                for s in twins
            )
            + ". They reconstruct the object's twin, which the diffraction data cannot "
            "tell from the object: judge them by their SSIM against the twin, not as "
            "wrong objects."
        )
    vacuous = [s["arm"] for s in inp.stats if s.get("phase_vacuous")]
    if vacuous:
        out.append(
            "- **Phase metrics vacuous** for "
            + ", ".join(f"`{a}`" for a in vacuous)
            + ": the ground-truth phase is constant (set_phi off), so phase SSIM/MAE/PSNR "
            "mean nothing and a flat output scores perfectly."
        )
    near_zero = [s["arm"] for s in inp.stats if s.get("norm_weight_near_zero")]
    if near_zero:
        out.append(
            "- **Normalisation weights near zero** (every |mean| < 0.1) in "
            + ", ".join(f"`{a}`" for a in near_zero)
            + "."
        )
    return out


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
        out += _table(
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
    return _table(["knob"] + [f"`{a}`" for a in arms], rows)


def failure_paragraph(s: dict, ref: Reference | None) -> str:
    """A collapsed, diverged or NaN arm's story, in one paragraph of plain numbers."""
    v = s["verdict"]
    c = s.get("failure_curve") or {}
    parts = [f"**`{s['arm']}`: {v['text']}** (rule `{v['rule']}`)."]
    onset, fired = c.get("onset_epoch"), c.get("fired_epoch")
    when = f", {fmt(s['collapse_time_s'], 3)} s into the run" if s.get("collapse_time_s") else ""
    best = c.get("best_epoch_before_onset")
    if best is not None:
        parts.append(
            f"Validation loss was best at epoch {_epoch(best)} "
            f"({fmt(c.get('val_loss_best_before'))})."
        )
    parts.append(
        f"The condition began at epoch {_epoch(onset)} and the rule fired at epoch "
        f"{_epoch(fired)}{when}."
    )
    if c.get("val_loss_before") is not None:
        parts.append(
            f"Just before, val loss was {fmt(c['val_loss_before'])} and training loss "
            f"{fmt(c.get('train_loss_before'))}; at onset they were "
            f"{fmt(c.get('val_loss_at_onset'))} and {fmt(c.get('train_loss_at_onset'))}."
        )
    else:
        parts.append(
            f"It held from the first evaluated epoch (val loss "
            f"{fmt(c.get('val_loss_at_onset'))}, training loss "
            f"{fmt(c.get('train_loss_at_onset'))}): there is no healthy 'before'."
        )
    if c.get("val_loss_after_mean") is None:
        after = f"From onset on val loss was never finite (final {fmt(c.get('val_loss_final'))}"
    else:
        after = (
            f"After onset val loss averaged {fmt(c['val_loss_after_mean'])} "
            f"(final {fmt(c.get('val_loss_final'))}"
        )
    if ref is not None and ref.constant_val_loss:
        after += f"; the best constant output scores {fmt(ref.constant_val_loss)}"
    parts.append(after + ").")
    if c.get("pred_amp_std_after") is not None:
        parts.append(
            f"Predicted-amplitude spread went from {fmt(c.get('pred_amp_std_before'))} "
            f"to {fmt(c['pred_amp_std_after'])} (ground truth "
            f"{fmt(s.get('target_amp_std'))})."
        )
    grad = (
        f"Grad norm (epoch mean) {fmt(c.get('grad_norm_before'))} before, "
        f"{fmt(c.get('grad_norm_at_onset'))} at onset"
    )
    if c.get("window_epochs"):
        lo, hi = c["window_epochs"]
        grad += (
            f"; largest step grad norm {fmt(c.get('grad_norm_max_window'))} and largest "
            f"step loss {fmt(c.get('step_loss_max_window'))} in epochs {lo + 1}–{hi + 1}"
        )
        if c.get("step_loss_median_before_window") is not None:
            grad += f" (median step loss before: {fmt(c['step_loss_median_before_window'])})"
    parts.append(grad + ".")
    spikes = {k: n for k, n in (s.get("events") or {}).items() if k in ("loss_spike", "grad_spike")}
    if spikes:
        parts.append(
            "Spikes flagged over the run: "
            + ", ".join(f"`{k}` ×{n}" for k, n in sorted(spikes.items()))
            + "."
        )
    if s.get("has_nan"):
        parts.append("Non-finite values appear in its losses or grad norms.")
    return " ".join(parts)


def render_summary(inp: ReportInput) -> str:
    lines = [f"# Study `{inp.study}`: export summary", ""]
    profile = f", profile `{inp.profile}`" if inp.profile else ""
    lines += [
        f"Generated {inp.generated} from `{inp.arms_file}`{profile}; runs in "
        f"`{inp.output_dir}`. Epochs are counted from 1, as on the console (the JSON files "
        f"count from 0, like the telemetry). Final metrics are of each run's last-epoch "
        f"weights (a run stopped with fnotui stop and re-scored: its weights at the stop). "
        f"Verdicts: " + ", ".join(f"{sym} {label}" for label, sym in SYMBOLS.items()) + ".",
        "",
    ]
    lines += ["## Arms", ""] + arms_table(inp) + [""]
    refs = references_text(inp)
    lines += [
        "*final ÷ constant*: final val loss over the best constant output's; *spread ÷ GT*: "
        "the last epoch's predicted-amplitude spread over the ground truth's "
        "(pred_amp_std / target_amp_std).",
        "",
    ]
    lines += [
        "*twin fraction*: the share of test patches whose reconstruction is closer to the "
        "object's twin (flipped through the patch centre and conjugated, which gives the "
        "same diffraction amplitude under a centrosymmetric probe) than to the object, "
        "among the patches where the two can be told apart; *amp SSIM vs twin* scores the "
        "reconstruction against the all-twin image, so a twin reconstruction scores high "
        "there and low against the ground truth.",
        "",
    ]
    if refs:
        lines += (
            [
                "**Reference levels** (what trivial outputs score on the same data; an arm "
                "whose loss sits at the constant-output level with near-zero prediction spread "
                "has collapsed, while SSIM alone barely separates collapsed from undertrained):",
                "",
            ]
            + refs
            + [""]
        )
    sig = signatures(inp)
    if sig:
        lines += ["## Signatures", ""] + sig + [""]
    seeds = seeds_text(inp)
    if seeds:
        lines += [
            "## Outcomes per seed",
            "",
            "Arms that differ only in the training seed are replicates of one set-up; "
            "under any ambiguity of the physics a single seed can land on either branch, "
            "so read a set-up's outcome across its seeds.",
            "",
        ] + seeds
    cfg = config_table(inp)
    lines += ["## What differs between the arms", ""]
    lines += (
        cfg
        if cfg
        else [
            "The arms' resolved configs are identical (apart from names)."
            if len(inp.stats) > 1
            else "Only one arm."
        ]
    ) + [""]
    if inp.stale_configs:
        lines += [
            "Runs whose config differs from the arms file as loaded for this export (the "
            "run's own config is what trained, and what this report uses):",
            "",
        ]
        lines += [f"- `{arm}`: " + "; ".join(diffs) for arm, diffs in inp.stale_configs.items()]
        lines += [""]
    failed = [s for s in inp.stats if s.get("failure_curve")]
    if failed:
        lines += ["## Failure curves", ""]
        for s in failed:
            lines += [failure_paragraph(s, _reference_for(s["arm"], inp.references)), ""]
    figs = inp.figures
    if figs:
        lines += ["## Figures", ""]
        if "loss" in figs:
            lines += [f"![Training and validation loss per epoch]({figs['loss']})", ""]
        if "grad_norm" in figs:
            lines += [f"![Pre-clip grad norm per step]({figs['grad_norm']})", ""]
        recons = [(k.split(":", 1)[1], p) for k, p in figs.items() if k.startswith("recon:")]
        if recons:
            lines += ["Reconstructions beside ground truth:", ""]
            lines += [f"- [`{arm}`]({path})" for arm, path in recons] + [""]
            for arm, path in recons:
                lines += [f"![{arm}: reconstruction and ground truth]({path})", ""]
    lines += ["## What the export could not use", ""]
    lines += (
        [f"- {p}" for p in inp.problems]
        if inp.problems
        else ["Nothing: every run was complete and readable."]
    )
    return "\n".join(lines).rstrip() + "\n"
