"""train.compile through the real CLI: refused where it cannot work before anything is written,
and a compiled engine run that trains the same curve as an eager one and says so in its header."""

from __future__ import annotations

import json
import re

import pytest

from engine.runs.telemetry import load_records
from tests.cli import fnotui, sets
from tests.tiny import tiny_study

REPO_ARGS = ("--device", "cpu")


def study(tmp_path):
    return tiny_study(tmp_path, "compile", {"a": {}}, architecture="hybrid", epochs=2, fno_width=8)


def test_graphs_on_the_cpu_exit_2_and_nothing_written(tmp_path):
    folder = study(tmp_path)
    out = fnotui("--run", "a", *sets("compile=graphs"), *REPO_ARGS, cwd=folder)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "train.compile = 'graphs' on cpu" in out.stderr
    assert not (folder / "runs").exists()


@pytest.mark.slow
def test_a_compiled_run_trains_the_eager_curve(tmp_path):
    folder = study(tmp_path)
    curves = {}
    for mode in ("off", "default"):
        out = fnotui(
            "--run", "a", *sets(f"compile={mode}"), *REPO_ARGS, "--out", f"runs-{mode}",
            cwd=folder, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        records = load_records(folder / f"runs-{mode}" / "a" / "telemetry.jsonl")
        header = records[0]
        assert header["compile"]["mode"] == mode
        assert header["compile"]["cuda_graphs"] is False
        log = (folder / f"runs-{mode}" / "a" / "run.log").read_text()
        if mode == "default":  # dynamo's own count, logged after the first epoch: it compiled
            graphs = re.search(r"torch\.compile: (\d+) graph\(s\) captured", log)
            assert graphs and int(graphs.group(1)) >= 1, log[-2000:]
        else:
            assert "torch.compile:" not in log
        curves[mode] = [r["loss"] for r in records if r["type"] == "step"]
        history = json.loads((folder / f"runs-{mode}" / "a" / "history.json").read_text())
        curves[f"{mode} val"] = history["val_loss"]
    assert len(curves["default"]) == len(curves["off"]) > 0
    # Inductor reorders fp32 sums: equal to reassociation error, not bit for bit.
    assert curves["default"] == pytest.approx(curves["off"], rel=1e-4)
    assert curves["default val"] == pytest.approx(curves["off val"], rel=1e-4)
