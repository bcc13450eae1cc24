"""summary.md's prose: reference levels in words, the signatures of failed or suspicious runs,
and the story of each failed arm in one paragraph of plain numbers. Data in, markdown lines out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.reporting.tables import epoch_text, fmt

if TYPE_CHECKING:
    from engine.reporting.report import Reference, ReportInput


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
    groups = (
        (
            inp.identical_histories,
            "- **Identical loss histories, different configs:** {arms}. Arms meant to differ "
            "trained identically: a knob probably never reached training (docs/science.md, "
            "'Identical results across optimizers').",
        ),
        (
            inp.identical_amp_metrics,
            "- **Identical amplitude metrics:** {arms}. Different runs scoring exactly alike is "
            "the signature of a constant (collapsed) output (docs/science.md, 'Collapse').",
        ),
    )
    for found, line in groups:
        for group in found:
            out.append(line.format(arms=", ".join(f"`{a}`" for a in group)))
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
    flags = (
        (
            "phase_vacuous",
            "- **Phase metrics vacuous** for {arms}: the ground-truth phase is constant (set_phi "
            "off), so phase SSIM/MAE/PSNR mean nothing and a flat output scores perfectly.",
        ),
        (
            "norm_weight_near_zero",
            "- **Normalisation weights near zero** (every |mean| < 0.1) in {arms}.",
        ),
    )
    for key, line in flags:  # one line per flag that any arm's stats raise
        flagged = [s["arm"] for s in inp.stats if s.get(key)]
        if flagged:
            out.append(line.format(arms=", ".join(f"`{a}`" for a in flagged)))
    return out


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
            f"Validation loss was best at epoch {epoch_text(best)} "
            f"({fmt(c.get('val_loss_best_before'))})."
        )
    parts.append(
        f"The condition began at epoch {epoch_text(onset)} and the rule fired at epoch "
        f"{epoch_text(fired)}{when}."
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
