"""summary.md rendering: data in, markdown out. No I/O, no clock, no globals.

The exporter (engine/reporting/export.py) gathers per-arm stats (engine/reporting/stats.py),
reference levels, config differences, outcome statistics and figure paths into a
``ReportInput``; ``render_summary`` only assembles the sections, whose tables are
engine/reporting/tables.py and whose prose is engine/reporting/prose.py. Epochs are printed
1-based, as on the console; the JSON artifacts keep the telemetry's 0-based numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.reporting.prose import failure_paragraph, references_text, signatures
from engine.reporting.tables import (
    MISSING,
    arms_table,
    config_table,
    fmt,
    outcomes_table,
    reference_for,
    seeds_text,
)
from engine.scoring.verdict import SYMBOLS

# Names tests and other modules import from here, where they lived before the split.
__all__ = [
    "MISSING",
    "Reference",
    "ReportInput",
    "arms_table",
    "config_table",
    "failure_paragraph",
    "fmt",
    "references_text",
    "render_summary",
    "seeds_text",
    "signatures",
]


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
    # Replicates: arms equal but for the training seed, with their seeds (engine.reporting.compare).
    seed_groups: list[tuple[list[str], list[object]]] = field(default_factory=list)
    # Outcome statistics per sweep point without the seed (engine.reporting.outcomes).
    outcomes: list[dict] = field(default_factory=list)
    identical_histories: list[list[str]] = field(default_factory=list)
    identical_amp_metrics: list[list[str]] = field(default_factory=list)
    flat_level_arms: list[str] = field(default_factory=list)
    stale_configs: dict[str, list[str]] = field(default_factory=dict)  # arm -> "knob run (file)"
    figures: dict[str, str] = field(default_factory=dict)  # "loss", "grad_norm", "recon:<arm>"
    problems: list[str] = field(default_factory=list)


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
    outcome_lines = outcomes_table(inp.outcomes)
    if outcome_lines:
        lines += ["## Outcomes per sweep point", ""] + outcome_lines + [""]
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
            lines += [failure_paragraph(s, reference_for(s["arm"], inp.references)), ""]
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
