"""`fnotui export` of a real tiny sweep: two seeds x two learning rates, trained by `fnotui sweep
--foreground`, grouped per point without the seed in summary.md and stats.json's "@sweeps"."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine.reporting.outcomes import COLLAPSE_LABELS, fraction_text
from tests.test_cli_e2e import fnotui
from tests.tiny import tiny_study_toml

REPO = Path(__file__).resolve().parents[2]

# lr 0.05 collapses this generator to a constant output at once (tests/engine/test_export.py),
# and its detector stops the run; lr 1e-3 trains. A third arm is never run.
STUDY = tiny_study_toml(
    "tiny_sweep_export",
    {"base": {}, "other": {}},
    data={"set_phi": False},
    sweeps={"crash": {"arms": ["base"], "grid": {"seed": [11, 12], "lr": [1e-3, 0.05]}}},
    architecture="cnn",
    infer_batch_size=7,
    seed=3,
    epochs=4,
    on_collapse="stop",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep_export")
    arms = root / "arms.toml"
    arms.write_text(STUDY)
    trained = fnotui("sweep", "crash", "--foreground", "--arms", str(arms), cwd=REPO, timeout=600)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    out = fnotui("export", "--arms", str(arms), cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "runs" / "report"


@pytest.mark.slow
def test_summary_has_one_row_per_point_without_the_seed(exported):
    text = (exported / "summary.md").read_text()
    section = text.split("## Outcomes per sweep point")[1].split("\n## ")[0]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == {"`base.lr-0.001`", "`base.lr-0.05`"}
    header = next(line for line in section.splitlines() if line.startswith("| set-up |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    collapsing = dict(zip(columns, rows["`base.lr-0.05`"]))
    assert collapsing["sweep"] == "crash" and collapsing["runs"] == "2"
    assert collapsing["states"] == "2 finished"
    assert collapsing["verdicts"] == "✖ 2"
    assert collapsing["collapsed"] == "2/2 (95 % CI 34–100 %)"
    # lr 1e-3 may collapse under one seed and not the other (a seed is a coin flip): the cell
    # must agree with the runs' own verdicts, whichever they are.
    stats = json.loads((exported / "stats.json").read_text())
    labels = [stats[f"base.lr-0.001.seed-{s}"]["verdict"]["label"] for s in (11, 12)]
    training = dict(zip(columns, rows["`base.lr-0.001`"]))
    assert training["collapsed"] == fraction_text(sum(x in COLLAPSE_LABELS for x in labels), 2)
    assert training["states"] == "2 finished"
    assert "(" in training["best val loss: median (min–max)"]  # two values: a range
    assert "Wilson" in section and "Not counted" in section


@pytest.mark.slow
def test_stats_json_has_the_sweep_section_and_rows_carry_the_point(exported):
    stats = json.loads((exported / "stats.json").read_text())
    groups = {g["group"]: g for g in stats["@sweeps"]}
    assert set(groups) == {"base.lr-0.001", "base.lr-0.05"}
    g = groups["base.lr-0.05"]
    assert g["runs"] == ["base.lr-0.05.seed-11", "base.lr-0.05.seed-12"]
    assert g["seeds"] == [11, 12] and g["sweeps"] == ["crash"]
    assert (g["collapsed"], g["counted"], g["collapse_fraction"]) == (2, 2, 1.0)
    assert g["collapse_ci95"] == pytest.approx([0.3424, 1.0], abs=1e-4)
    ok = groups["base.lr-0.001"]
    labels = [stats[run]["verdict"]["label"] for run in ok["runs"]]
    assert ok["verdicts"] == {label: labels.count(label) for label in labels}
    assert ok["counted"] == 2 and ok["collapsed"] == sum(x in COLLAPSE_LABELS for x in labels)
    best = [stats[run]["val_loss_best"] for run in ok["runs"]]
    assert ok["val_loss_best"]["min"] == min(best) and ok["val_loss_best"]["max"] == max(best)
    assert ok["amp_ssim"]["n"] == 2
    for run in ("base", "other"):  # the plain arms are still there, not started
        assert stats[run]["state"] == "not started"

    rows = pl.read_ndjson(exported / "study_metrics.jsonl", infer_schema_length=None)
    assert rows.height == 4  # the four points; the never-run arms have no row
    point = rows.filter(pl.col("arm") == "base.lr-0.05.seed-12").row(0, named=True)
    assert (point["sweep"], point["point"], point["sweep_group"]) == (
        "crash",
        "lr-0.05.seed-12",
        "base.lr-0.05",
    )
