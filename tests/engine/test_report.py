"""summary.md rendering of twin runs: the twin column, the all-twin level, the signature."""

from __future__ import annotations

from engine.reporting.report import Reference, ReportInput, render_summary
from engine.scoring.verdict import Verdict, twin_verdict


def arm(name: str, verdict: Verdict, fraction, undecidable, ssim_vs_twin) -> dict:
    return {
        "arm": name,
        "state": "finished",
        "n_epochs": 2,
        "epochs_planned": 2,
        "verdict": {"label": verdict.label, "text": verdict.text},
        "amp_ssim": 0.15,
        "amp_mae": 0.355,
        "amp_frc50": 13.6,
        "twin_fraction": fraction,
        "twin_undecidable_fraction": undecidable,
        "amp_ssim_vs_twin": ssim_vs_twin,
    }


def summary(stats: list[dict], **report) -> str:
    """The summary of a study "s" with these arms' stats (and ``report``'s other inputs)."""
    base = dict(study="s", generated="now", arms_file="arms.toml", output_dir="runs", profile=None)
    return render_summary(ReportInput(**base, stats=stats, **report))


def level(ssim: float, mae: float) -> dict:
    return {
        "ssim": [ssim, 0.5],
        "mae": [mae, 0.2],
        "psnr": [12.0, 10.0],
        "frc50": [13.6, 3.0],
        "phase_vacuous": False,
    }


def test_twin_runs_get_their_column_signature_and_reference_level():
    stats = [
        arm("a_twin", twin_verdict(0.97, 0.02), 0.97, 0.02, 0.96),
        arm("a_plain", twin_verdict(None, 1.0), None, 1.0, 0.05),
    ]
    ref = Reference(
        recipe_hash="abc",
        arms=["a_twin", "a_plain"],
        flat=level(0.1, 0.44),
        twin=level(0.150, 0.355),
        source="test",
    )
    text = summary(stats, references=[ref])
    header = next(line for line in text.splitlines() if line.startswith("| arm |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in text.splitlines() if line.startswith("| `a_twin` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[columns.index("verdict")] == "⇆ twin"
    assert cells[columns.index("twin fraction")] == "0.97 (2% undecidable)"
    assert cells[columns.index("amp SSIM vs twin")] == "0.96"
    plain = next(line for line in text.splitlines() if line.startswith("| `a_plain` |"))
    assert "— (100% undecidable)" in plain and "✔ healthy" in plain
    all_twin = next(
        line for line in text.splitlines() if line.startswith("| *all-twin reconstruction*")
    )
    cells = [c.strip() for c in all_twin.strip("|").split("|")]
    assert len(cells) == len(columns)
    assert cells[columns.index("amp SSIM")] == "0.15" and cells[columns.index("amp MAE")] == "0.355"
    assert cells[columns.index("twin fraction")] == "1"
    assert all(
        len(line.strip("|").split("|")) == len(columns)
        for line in text.splitlines()
        if line.startswith("| *")
    )
    assert "**Twin reconstructions:** `a_twin` (0.97 of patches" in text
    assert "`a_plain`" not in text.split("**Twin reconstructions:**")[1].split("\n")[0]
    assert "a perfect reconstruction of the twin of every patch scores amplitude SSIM 0.15" in text
    assert "*twin fraction*:" in text and "⇆ twin, ◐ mixed twin" in text


def test_replicates_that_differ_only_in_seed_are_reported_per_seed():
    from engine.reporting.export import seed_groups
    from engine.scoring.verdict import Verdict

    base = {"train.lr": 1e-3, "train.seed": 1, "model.architecture": "hybrid"}
    configs = {
        "a": base,
        "a.seed-2": {**base, "train.seed": 2},
        "a.seed-3": {**base, "train.seed": 3},
        "b": {**base, "train.lr": 5e-4},
    }
    groups = seed_groups(configs)
    assert groups == [(["a", "a.seed-2", "a.seed-3"], [1, 2, 3])]  # b differs in lr: alone

    stats = [
        arm("a", twin_verdict(0.97, 0.02), 0.97, 0.02, 0.96),
        arm("a.seed-2", Verdict("healthy"), 0.02, 0.05, 0.2),
        arm("a.seed-3", twin_verdict(0.5, 0.1), 0.5, 0.1, 0.5),
    ]
    text = summary(stats, seed_groups=groups)
    section = text.split("## Outcomes per seed")[1].split("\n## ")[0]
    assert "**3 seeds of one set-up** (1 twin, 1 healthy, 1 mixed twin" in section
    assert "| `a.seed-2` | 2 | ✔ healthy |" in section


def test_groups_sharing_a_dataset_show_its_image_levels_once_and_name_their_loss_levels():
    stats = [
        arm("g1", twin_verdict(None, 1.0), None, 1.0, 0.1),
        arm("g16", twin_verdict(None, 1.0), None, 1.0, 0.1),
    ]
    refs = [
        Reference(
            recipe_hash="abc",
            arms=[name],
            flat=level(0.28, 0.56),
            twin=level(0.10, 0.50),
            constant_val_loss=c,
            true_object_val_loss=f,
            source="test",
        )
        for name, c, f in (("g1", 0.25, 0.003), ("g16", 0.26, 0.05))
    ]
    text = summary(stats, references=refs)
    rows = [line for line in text.splitlines() if line.startswith("| *")]
    assert sum(r.startswith("| *flat reconstruction*") for r in rows) == 1
    assert sum(r.startswith("| *all-twin reconstruction*") for r in rows) == 1
    assert any(r.startswith("| *best constant output* (`g1`)") for r in rows)
    assert any(r.startswith("| *true object (noise floor)* (`g16`)") for r in rows)
