"""`fnotui evaluate` on a tiny real run: re-scored with the current evaluation code, appended to
the telemetry, and refused (with nothing touched) while an engine may be alive."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError, RunLockedError
from engine.runs.rundir import RunDir, data_cache_dir
from engine.runs.status import RunLock
from engine.runs.telemetry import encode_record, iter_records
from engine.training.reevaluate import reevaluate_run
from tests.test_cli_e2e import fnotui
from tests.tiny import tiny_study_toml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

STUDY = tiny_study_toml(
    "tiny_reevaluate",
    {"tiny": {}, "never_ran": {}},
    data={"set_phi": True, "probe": "ideal_disk"},
    architecture="cnn",
    epochs=2,
    infer_batch_size=7,
    seed=3,
)
EVIDENCE = ("metrics.json", "recon.npz", "telemetry.jsonl", "status.json")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A study folder with one finished tiny arm, trained once for the module."""
    root = tmp_path_factory.mktemp("reevaluate")
    (root / "arms.toml").write_text(STUDY)
    out = fnotui("--arms", "arms.toml", "--run", "tiny", cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


@pytest.fixture
def study(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "study"))


def as_older_evaluation(run: Path) -> dict:
    """Make the run look evaluated by the code before the twin block: no "twin" in metrics.json,
    no twin arrays in recon.npz, no twin fields in the telemetry record. Returns the metrics."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("twin")
    (run / "metrics.json").write_text(json.dumps(metrics))
    with np.load(run / "recon.npz") as npz:
        kept = {k: npz[k] for k in npz.files if not k.startswith("twin")}
    np.savez_compressed(run / "recon.npz", **kept)
    lines = []
    for record in iter_records(run / "telemetry.jsonl"):
        if record["type"] == "metrics":
            record["metrics"] = {k: v for k, v in record["metrics"].items() if "twin" not in k}
        lines.append(encode_record(record))
    (run / "telemetry.jsonl").write_text("".join(lines))
    return metrics


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    return {name: ((run / name).read_bytes(), (run / name).stat().st_mtime_ns) for name in EVIDENCE}


def test_evaluate_rescores_an_old_run_and_appends_a_marked_record(study):
    run = study / "runs" / "tiny"
    old = as_older_evaluation(run)
    out = fnotui("evaluate", "tiny", cwd=study)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "re-evaluated tiny: amplitude ssim" in out.stdout and "twin fraction" in out.stdout

    new = json.loads((run / "metrics.json").read_text())
    for key in ("mae", "mse", "ssim", "psnr"):  # the same code on the same weights
        assert new[key] == pytest.approx(old[key], rel=1e-5), key
    twin = new["twin"]
    assert twin["patches"] == 25 and 0 <= twin["undecidable_fraction"] <= 1
    assert twin["weights"] == "probe |P|^2" and "ssim" in twin["metrics"]
    assert new["reevaluated_at"] > 0
    with np.load(run / "recon.npz") as npz:
        assert npz["twin_branch"].shape == npz["twin_decidable"].shape == (5, 5)
        assert npz["twin_gt"].shape == npz["stitched"].shape == (40, 40)

    records = list(iter_records(run / "telemetry.jsonl"))
    finals = [r for r in records if r["type"] == "metrics"]
    assert len(finals) == 2 and not finals[0].get("reevaluated")
    last = records[-1]
    assert last["type"] == "metrics" and last["reevaluated"] is True
    assert (last["epoch"], last["step"]) == (finals[0]["epoch"], finals[0]["step"])
    assert last["metrics"]["twin_undecidable_fraction"] == pytest.approx(
        twin["undecidable_fraction"]
    )
    assert last["metrics"]["ssim"] == pytest.approx(new["ssim"])
    assert not list(run.glob(".*.tmp"))  # atomic writes leave nothing behind

    stats = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "from engine.reporting.evidence import read_run; "
                "from engine.reporting.stats import arm_stats; import json, sys; "
                "s = arm_stats(read_run('tiny', sys.argv[1])); print(json.dumps(s))"
            ),
            str(run),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    s = json.loads(stats.stdout)
    assert s["amp_ssim_vs_twin"] == pytest.approx(twin["metrics"]["ssim"][0])
    assert s["twin_undecidable_fraction"] == pytest.approx(twin["undecidable_fraction"])


def test_a_live_engine_is_refused_and_nothing_is_touched(study):
    run = study / "runs" / "tiny"
    before = snapshot(run)
    with RunLock(RunDir(run)):  # an engine that has just taken the arm (status still finished)
        out = fnotui("evaluate", "tiny", cwd=study)
    assert out.returncode == 2 and "in use by another running engine" in out.stderr
    assert snapshot(run) == before

    status = json.loads((run / "status.json").read_text())
    status.update(
        state="running", pid=os.getpid(), host=socket.gethostname(), heartbeat=time.time()
    )
    (run / "status.json").write_text(json.dumps(status))
    before = snapshot(run)
    with pytest.raises(RunLockedError, match="is running"):
        reevaluate_run(run, data_cache_dir(study / "runs"))
    assert snapshot(run) == before


def test_unfinished_and_unknown_arms_are_refused(study):
    out = fnotui("evaluate", "never_ran", "nope", cwd=study)
    assert out.returncode == 2 and "no arm named 'nope'" in out.stderr
    out = fnotui("evaluate", "never_ran", cwd=study)
    assert out.returncode == 2 and "it never ran" in out.stderr
    assert not (study / "runs" / "never_ran").exists()

    run = study / "runs" / "tiny"
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "failed"}))
    before = snapshot(run)
    try:
        with pytest.raises(ConfigError, match="the run is failed; only a finished run"):
            reevaluate_run(run, data_cache_dir(study / "runs"))
        assert snapshot(run) == before
    finally:
        (run / "status.json").write_text(json.dumps(status))


def test_a_run_stopped_by_the_user_is_scored_at_its_stop_and_says_so(study):
    run = study / "runs" / "tiny"
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": "killed"}))
    try:
        result = reevaluate_run(run, data_cache_dir(study / "runs"), log=lambda _m: None)
    finally:
        (run / "status.json").write_text(json.dumps(status))
    assert result.metrics["weights"].startswith("at the stop (after step ")
    last = list(iter_records(run / "telemetry.jsonl"))[-1]
    assert last["type"] == "metrics" and last["weights"] == result.metrics["weights"]


def test_data_that_differs_from_what_the_run_trained_on_is_refused(study):
    run = study / "runs" / "tiny"
    records = list(iter_records(run / "telemetry.jsonl"))
    header = records[0]
    header["dataset"]["recipe_hash"] = "0" * 64  # as if a knob had been added since

    def write(records):
        (run / "telemetry.jsonl").write_text("".join(encode_record(r) for r in records))

    write(records)
    result = reevaluate_run(run, data_cache_dir(study / "runs"), log=lambda _m: None)
    assert any("fingerprint match" in note for note in result.notes)

    header["dataset"]["intensity_scale"] *= 1.001  # other data after all
    write(records)
    before = snapshot(run)
    with pytest.raises(ConfigError, match="fingerprint differs in: intensity_scale"):
        reevaluate_run(run, data_cache_dir(study / "runs"))
    assert snapshot(run) == before
