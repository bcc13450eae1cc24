"""`export_study` on real tiny runs: files, idempotent study metrics, bundle, damaged and live
runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from engine.reporting.export import METRICS_FILE, export_study
from engine.study.arms import load_study
from tests.cli import fnotui
from tests.engine.test_stats import ORIGINAL_KEYS
from tests.tiny import tiny_study_toml

REPO = Path(__file__).resolve().parents[2]

# Two real arms that finish in seconds: one healthy, one that collapses to a constant output at
# once (lr 0.05) and is stopped by its detector; a third arm is never run.
STUDY = tiny_study_toml(
    "tiny_export",
    {
        "healthy": {"epochs": 2},
        "collapsed": {"epochs": 6, "lr": 0.05, "on_collapse": "stop"},
        "never_ran": {"epochs": 2},
    },
    data={"set_phi": False},
    architecture="cnn",
    infer_batch_size=7,
    seed=3,
)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Path:
    """A study folder with two real finished arms (trained once per test session)."""
    root = tmp_path_factory.mktemp("export_study")
    (root / "arms.toml").write_text(STUDY)
    proc = fnotui("--arms", str(root / "arms.toml"), "--run", "healthy", "collapsed", cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


def copy_study(runs: Path, dest: Path) -> Path:
    shutil.copytree(runs, dest)
    return dest


@pytest.fixture(scope="session")
def exported(runs, tmp_path_factory):
    root = copy_study(runs, tmp_path_factory.mktemp("exported") / "study")
    study = load_study(root / "arms.toml")
    first = export_study(study)
    second = export_study(study)
    return study, first, second


def report_of(study) -> Path:
    return study.output_dir / "report"


@pytest.mark.slow  # starts a real engine
def test_export_writes_stats_metrics_summary_and_figures(exported):
    study, result, _ = exported
    report = report_of(study)
    for rel in (
        "summary.md",
        "stats.json",
        METRICS_FILE,
        "figures/loss.png",
        "figures/grad_norm.png",
        "figures/recon_healthy.png",
        "figures/recon_collapsed.png",
    ):
        assert (report / rel).is_file(), rel
        assert report / rel in result.files
    for arm in ("healthy", "collapsed"):
        assert (study.run_dir(arm) / "stats.json").is_file()
    assert not (study.run_dir("never_ran")).exists()  # no directory made for an unrun arm
    assert any("never_ran" in p and "not started" in p for p in result.problems)


@pytest.mark.slow  # starts a real engine
def test_stats_json_carries_the_original_keys_and_the_verdict(exported):
    study, _, _ = exported
    combined = json.loads((report_of(study) / "stats.json").read_text())
    assert list(combined) == ["healthy", "collapsed", "never_ran"]
    s = json.loads((study.run_dir("collapsed") / "stats.json").read_text())
    assert s == combined["collapsed"]
    for key in ORIGINAL_KEYS:
        assert key in s, key
    assert s["verdict"]["label"] == "collapsed" and s["collapse_epoch"] is not None
    assert s["collapse_time_s"] > 0 and s["phase_vacuous"] is True
    assert s["reference"]["constant_output_val_loss"] > 0
    assert combined["healthy"]["verdict"]["label"] == "healthy"
    for arm in ("healthy", "collapsed"):  # the twin evaluation of metrics.json, per arm
        twin = json.loads((study.run_dir(arm) / "metrics.json").read_text())["twin"]
        stats = combined[arm]
        assert stats["amp_ssim_vs_twin"] == twin["metrics"]["ssim"][0]
        assert stats["amp_mae_vs_twin"] == twin["metrics"]["mae"][0]
        assert stats["twin_undecidable_fraction"] == twin["undecidable_fraction"]
        assert stats["twin_fraction"] == twin["fraction"]  # null when no patch is decidable
    all_twin = s["reference"]["twin"]  # the all-twin level, beside the flat one
    assert 0 < all_twin["amp_ssim"] < 1 and all_twin["amp_mae"] > 0
    assert all_twin["amp_ssim"] != s["reference"]["flat"]["amp_ssim"]


@pytest.mark.slow  # starts a real engine
def test_exporting_twice_adds_no_duplicate_row(exported):
    study, _, _ = exported
    rows = pl.read_ndjson(report_of(study) / METRICS_FILE, infer_schema_length=None)
    assert rows.height == 2
    assert sorted(rows["arm"].to_list()) == ["collapsed", "healthy"]
    assert {
        "twin_fraction",
        "twin_undecidable_fraction",
        "amp_ssim_vs_twin",
        "all_twin_amp_ssim",
    } <= set(rows.columns)
    assert rows["amp_ssim_vs_twin"].null_count() == 0
    assert rows["run_id"].n_unique() == 2
    assert all(rid.startswith(arm + "-") for rid, arm in zip(rows["run_id"], rows["arm"]))


@pytest.mark.slow  # starts a real engine
def test_a_new_run_of_an_arm_adds_a_row_and_keeps_the_old(exported, tmp_path):
    study, _, _ = exported
    root = copy_study(study.output_dir.parent, tmp_path / "study")
    study2 = load_study(root / "arms.toml")
    tele = study2.run_dir("healthy") / "telemetry.jsonl"
    lines = tele.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["start_time"] += 3600.0  # the same arm trained again an hour later
    tele.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    export_study(study2)
    rows = pl.read_ndjson(report_of(study2) / METRICS_FILE, infer_schema_length=None)
    assert rows.height == 3 and rows.filter(pl.col("arm") == "healthy").height == 2


@pytest.mark.slow  # starts a real engine
def test_summary_compares_arms_and_tells_the_collapse_story(exported):
    study, _, _ = exported
    text = (report_of(study) / "summary.md").read_text()
    assert "| `healthy` |" in text and "| `collapsed` |" in text and "| `never_ran` |" in text
    assert "*flat reconstruction*" in text and "*best constant output*" in text
    assert "*all-twin reconstruction*" in text and "| twin fraction |" in text
    assert "| amp SSIM vs twin |" in text and "*twin fraction*: the share of test patches" in text
    assert "a perfect reconstruction of the twin of every patch scores amplitude SSIM" in text
    assert "## Failure curves" in text and "**`collapsed`: ✖ collapsed**" in text
    assert "(vacuous)" in text and "Phase metrics vacuous" in text
    flat_line = next(
        line
        for line in text.splitlines()
        if line.startswith("- **At the flat-reconstruction level:**")
    )
    assert "`collapsed`" in flat_line
    assert "`train.lr`" in text and "`train.epochs`" in text  # what differs between the arms
    for rel in ("figures/loss.png", "figures/grad_norm.png", "figures/recon_collapsed.png"):
        assert f"]({rel})" in text  # linked relative to summary.md


@pytest.mark.slow  # starts a real engine
def test_bundle_archives_report_and_every_arms_evidence(runs, tmp_path):
    root = copy_study(runs, tmp_path / "study")
    study = load_study(root / "arms.toml")
    bundle = tmp_path / "archive" / "2026-01-01"
    result = export_study(study, out_dir=tmp_path / "report", bundle=bundle)
    for name in (
        "config.json",
        "history.json",
        "metrics.json",
        "stats.json",
        "model.pt",
        "telemetry.jsonl",
        "run.log",
        "grad_norm.csv",
    ):
        for arm in ("healthy", "collapsed"):
            assert (bundle / "arms" / arm / name).is_file(), (arm, name)
    assert (bundle / "arms" / "collapsed" / "telemetry.jsonl").read_bytes() == (
        study.run_dir("collapsed") / "telemetry.jsonl"
    ).read_bytes()
    grad = pl.read_csv(bundle / "arms" / "healthy" / "grad_norm.csv")
    assert grad["grad_norm"].null_count() == 0 and grad.height > 0
    for rel in ("summary.md", "stats.json", METRICS_FILE, "figures/loss.png"):
        assert (bundle / rel).is_file(), rel
    assert "arms/collapsed/" in (bundle / "summary.md").read_text()
    assert (tmp_path / "report" / "summary.md").is_file()
    assert bundle / "arms" / "healthy" / "model.pt" in result.files


@pytest.mark.slow  # starts a real engine
def test_damaged_and_live_runs_still_export_and_are_named(runs, tmp_path):
    root = copy_study(runs, tmp_path / "study")
    study = load_study(root / "arms.toml")
    # collapsed: telemetry cut mid-record, final metrics and checkpoint gone
    tele = study.run_dir("collapsed") / "telemetry.jsonl"
    data = tele.read_bytes()
    tele.write_bytes(data[: int(len(data) * 0.6)])
    (study.run_dir("collapsed") / "metrics.json").unlink()
    (study.run_dir("collapsed") / "model.pt").unlink()
    (study.run_dir("collapsed") / "recon.npz").unlink()
    # healthy: still running, owned by this very process, heartbeat fresh
    status = study.run_dir("healthy") / "status.json"
    st = json.loads(status.read_text())
    st.update(
        state="running",
        pid=os.getpid(),
        host=socket.gethostname(),
        heartbeat=time.time(),
        exit_code=None,
        ended=None,
    )
    status.write_text(json.dumps(st))
    # never_ran: a directory with nothing usable in it
    (study.run_dir("never_ran")).mkdir()
    (study.run_dir("never_ran") / "history.json").write_text("{not json")

    result = export_study(study)
    text = (report_of(study) / "summary.md").read_text()
    problems = "\n".join(result.problems)
    assert "collapsed: telemetry: unterminated last line" in problems
    assert "collapsed: no final metrics" in problems and "collapsed: no checkpoint" in problems
    assert "healthy: still running" in problems
    assert "never_ran: history (history.json) is unreadable" in problems
    assert "## What the export could not use" in text and "still running" in text
    stats = json.loads((report_of(study) / "stats.json").read_text())
    assert stats["healthy"]["state"] == "running"
    assert stats["healthy"]["verdict"]["label"] == "running"
    assert stats["collapsed"]["n_epochs"] >= 1 and stats["collapsed"]["amp_ssim"] is None
    rows = pl.read_ndjson(report_of(study) / METRICS_FILE, infer_schema_length=None)
    assert set(rows["arm"]) == {"healthy", "collapsed"}


@pytest.mark.slow  # starts a real engine
def test_configs_that_differ_with_identical_histories_are_flagged(runs, tmp_path):
    root = copy_study(runs, tmp_path / "study")
    study = load_study(root / "arms.toml")
    # Pretend never_ran trained with other knobs but produced healthy's exact loss history.
    shutil.copytree(study.run_dir("healthy"), study.run_dir("never_ran"), dirs_exist_ok=True)
    cfg_path = study.run_dir("never_ran") / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["lr"] = 0.3
    cfg_path.write_text(json.dumps(cfg))
    export_study(study)
    text = (report_of(study) / "summary.md").read_text()
    assert "Identical loss histories, different configs:** `healthy`, `never_ran`" in text
    assert "Identical amplitude metrics:** `healthy`, `never_ran`" in text


@pytest.mark.slow  # starts a real engine
def test_without_the_dataset_cache_the_all_twin_level_comes_from_recon_npz(exported, tmp_path):
    study, _, _ = exported
    from_cache = json.loads((report_of(study) / "stats.json").read_text())
    root = copy_study(study.output_dir.parent, tmp_path / "study")
    shutil.rmtree(root / "runs" / ".cache")
    study2 = load_study(root / "arms.toml")
    result = export_study(study2)
    assert any("cache file" in p and "is gone" in p for p in result.problems)
    stats = json.loads((report_of(study2) / "stats.json").read_text())
    for arm in ("healthy", "collapsed"):
        level, expected = stats[arm]["reference"]["twin"], from_cache[arm]["reference"]["twin"]
        for key in ("amp_ssim", "amp_mae", "amp_psnr", "phase_ssim", "phase_mae"):
            assert level[key] == pytest.approx(expected[key], rel=1e-4), (arm, key)
    assert "*all-twin reconstruction*" in (report_of(study2) / "summary.md").read_text()


def test_importing_the_exporter_stays_light():
    code = (
        "import sys, engine.reporting.export\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
