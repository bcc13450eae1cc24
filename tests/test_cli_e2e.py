"""`fnotui --run` end to end, in a real subprocess, on a tiny arm: every artifact checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch

from engine.training.optim import warmup_cosine_lr
from tests.cli import fnotui, sets
from tests.tiny import TINY_WARM_ARM, tiny_study_toml

REPO = Path(__file__).resolve().parents[1]

TINY = tiny_study_toml(
    "tiny",
    {"tiny_warm": TINY_WARM_ARM, "tiny_cnn": {"architecture": "cnn"}},
    data={"set_phi": True},
    epochs=4,
    infer_batch_size=7,
    seed=3,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    (root / "arms.toml").write_text(TINY)
    return root


def run_ok(study: Path, *args) -> subprocess.CompletedProcess:
    out = fnotui("--arms", str(study / "arms.toml"), *args, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def warm_run(study):
    out = run_ok(study, "--run", "tiny_warm")
    return out, study / "runs" / "tiny_warm"


@pytest.mark.slow  # starts a real engine
def test_run_prints_a_readable_line_per_epoch(warm_run):
    out, _ = warm_run
    lines = [line for line in out.stdout.splitlines() if "] epoch " in line]
    assert len(lines) == 4
    for field in ("loss", "val", "|g|", "lr", "samples/s", "ETA"):
        assert field in lines[0]
    assert "finished" in out.stdout


@pytest.mark.slow  # starts a real engine
def test_every_artifact_is_written(warm_run):
    _, run = warm_run
    for name in (
        "config.json",
        "history.json",
        "metrics.json",
        "model.pt",
        "recon.npz",
        "status.json",
        "telemetry.jsonl",
        "run.log",
    ):
        assert (run / name).is_file(), name
    assert not list(run.glob(".*.tmp"))  # atomic writes leave no temp files


@pytest.mark.slow  # starts a real engine
def test_config_json_is_the_resolved_config(warm_run):
    _, run = warm_run
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["name"] == "tiny_warm"
    assert cfg["train"]["scheduler"] == "WarmupCosine" and cfg["train"]["epochs"] == 4
    assert cfg["model"]["architecture"] == "stable_hybrid" and cfg["data"]["N"] == 32


@pytest.mark.slow  # starts a real engine
def test_history_aligns_one_to_one_with_epochs(warm_run):
    _, run = warm_run
    history = json.loads((run / "history.json").read_text())
    for key in ("train_loss", "val_loss", "grad_norm", "lr"):
        assert len(history[key]) == 4, key
        assert all(isinstance(v, float) and math.isfinite(v) for v in history[key])


@pytest.mark.slow  # starts a real engine
def test_lr_of_every_epoch_equals_the_warmup_cosine_closed_form(warm_run):
    _, run = warm_run
    history = json.loads((run / "history.json").read_text())
    expected = [warmup_cosine_lr(e, 2e-3, 2, 4, 0.05) for e in range(4)]
    assert history["lr"] == pytest.approx(expected, rel=1e-12)
    steps = pl.read_ndjson(run / "telemetry.jsonl", infer_schema_length=None).filter(
        pl.col("type") == "step"
    )
    per_epoch = steps.group_by("epoch").agg(pl.col("lr").unique()).sort("epoch")
    assert [v.to_list() for v in per_epoch["lr"]] == [[x] for x in history["lr"]]


@pytest.mark.slow  # starts a real engine
def test_metrics_are_amplitude_phase_pairs(warm_run):
    _, run = warm_run
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("mae", "mse", "psnr", "ssim", "frc50"):
        assert len(metrics[key]) == 2, key
    assert metrics["mae"][0] >= 0.0


@pytest.mark.slow  # starts a real engine
def test_status_is_finished(warm_run):
    _, run = warm_run
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0
    assert status["epoch"] == 4 and status["pid"] > 0 and status["host"]


@pytest.mark.slow  # starts a real engine
def test_stable_checkpoint_has_norm_and_layerscale_keys(warm_run):
    _, run = warm_run
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    assert any("norm.weight" in k for k in state)
    assert any("layerscale" in k for k in state)


@pytest.mark.slow  # starts a real engine
def test_telemetry_reads_with_polars_and_tells_the_whole_story(warm_run):
    _, run = warm_run
    df = pl.read_ndjson(run / "telemetry.jsonl", infer_schema_length=None)
    types = df["type"].to_list()
    assert types[0] == "header" and types[-1] == "status"
    header = json.loads((run / "telemetry.jsonl").read_text().splitlines()[0])
    assert header["schema"] == "fnotui/1"
    assert header["optimizer"]["class"] == "Adam"
    assert header["clip"] == {
        "enabled": True,
        "algorithm": "norm",
        "value": 1.0,
        "norm_measured": header["clip"]["norm_measured"],
    }
    assert header["scheduler"]["name"] == "WarmupCosine"
    assert header["parameters"] > 0 and header["channel_schedule"]
    steps = df.filter(pl.col("type") == "step")
    assert steps.height == 4 * header["steps_per_epoch"]
    assert steps["step"].to_list() == list(range(steps.height))
    assert steps["grad_norm"].null_count() == 0 and steps["grad_norm_clipped"].null_count() == 0
    assert (steps["grad_norm_clipped"] <= 1.0 + 1e-4).all()
    epochs = df.filter(pl.col("type") == "epoch")
    assert epochs["epoch"].to_list() == [0, 1, 2, 3]
    assert epochs["pred_amp_std"].null_count() == 0
    assert epochs["layerscale"].null_count() == 0 and epochs["norm_weights"].null_count() == 0


@pytest.mark.slow  # starts a real engine
def test_list_shows_finished_and_not_started(study, warm_run):
    out = run_ok(study, "--list")
    assert "tiny_warm" in out.stdout and "finished" in out.stdout
    assert "not started" in out.stdout


@pytest.mark.slow  # starts a real engine
def test_set_overrides_reach_the_run(study):
    out = run_ok(
        study,
        "--run",
        "tiny_cnn",
        *sets("epochs=1", "data.train_stride=16"),
        "--out",
        str(study / "other"),
    )
    cfg = json.loads((study / "other" / "tiny_cnn" / "config.json").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["data"]["train_stride"] == 16
    assert out.stdout.count("] epoch ") == 1


def test_bad_arms_file_exits_2_and_writes_nothing(tmp_path):
    arms = tmp_path / "arms.toml"
    arms.write_text(TINY.replace("grad_clip = 1.0", "grad_clipp = 1.0"))
    out = fnotui("--arms", str(arms), "--run", "tiny_warm", cwd=tmp_path)
    assert out.returncode == 2
    assert str(arms) in out.stderr and "grad_clipp" in out.stderr and "tiny_warm" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arms.toml"]


def test_unknown_arm_exits_2_and_writes_nothing(tmp_path):
    arms = tmp_path / "arms.toml"
    arms.write_text(TINY)
    out = fnotui("--arms", str(arms), "--run", "tiny_warm", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "no arm named 'nope'" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arms.toml"]


def test_help_documents_exit_codes():
    out = fnotui("--help", cwd=REPO)
    assert out.returncode == 0
    for code in ("0 ", "1 ", "2 ", "130"):
        assert f"\n  {code}" in out.stdout


@pytest.mark.slow  # starts a real engine
def test_collapse_is_detected_live_and_stops_the_arm_on_request(study):
    # A real collapse: the tiny U-Net at lr 0.05 goes to a constant output within 3 epochs.
    out = run_ok(
        study,
        "--run",
        "tiny_cnn",
        *sets("lr=0.05", "epochs=8", "on_collapse=stop"),
        "--out",
        str(study / "collapse"),
    )
    run = study / "collapse" / "tiny_cnn"
    assert "output_collapse" in out.stdout and "stopped early" in out.stdout
    df = pl.read_ndjson(run / "telemetry.jsonl", infer_schema_length=None)
    events = df.filter(pl.col("type") == "event")
    assert events["rule"].to_list() == ["output_collapse"]
    assert events["severity"].to_list() == ["collapse"]
    epochs_run = df.filter(pl.col("type") == "epoch").height
    assert epochs_run < 8 and events["epoch"][0] == epochs_run - 1
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["stopped_early"] == "output_collapse"
    assert (run / "metrics.json").is_file()  # the collapsed weights are still evaluated


@pytest.mark.slow  # starts a real engine
def test_sigterm_saves_and_exits_130(study):
    import signal
    import time

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "--arms",
            str(study / "arms.toml"),
            "--run",
            "tiny_cnn",
            "--set",
            "epochs=500",
            "--out",
            str(study / "term"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = study / "term" / "tiny_cnn"
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until a few epochs are on disk
        if (run / "history.json").exists() and len(
            json.loads((run / "history.json").read_text())["val_loss"]
        ) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "killed" and status["exit_code"] == 130
    assert "SIGTERM" in status["error"]
    assert (run / "model.pt").is_file()
    records = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    assert records[-1]["type"] == "status" and records[-1]["state"] == "killed"


@pytest.mark.slow  # starts a real engine
def test_export_reads_the_study_dir_of_out_and_writes_the_report_to_report(
    study, warm_run, tmp_path
):
    # `--out` is the study's output directory in every command, export included.
    report = tmp_path / "report"
    out = run_ok(study, "export", "--out", str(study / "runs"), "--report", str(report))
    assert (report / "summary.md").is_file() and f"wrote {report / 'summary.md'}" in out.stdout
    assert "tiny_warm" in (report / "summary.md").read_text()
    # --runs, its older name, still reads the same directory (report in <study>/report).
    run_ok(study, "export", "--runs", str(study / "runs"))
    assert (study / "runs" / "report" / "summary.md").is_file()
