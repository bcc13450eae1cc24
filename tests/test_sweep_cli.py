"""`fnotui sweep` end to end on a tiny study: points listed, trained, and handled like arms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_e2e import fnotui
from tests.tiny import tiny_study_toml

REPO = Path(__file__).resolve().parents[1]

STUDY = tiny_study_toml(
    "tiny_sweep",
    {"base": {}},
    sweeps={"seeds": {"arms": ["base"], "grid": {"seed": [11, 12]}}},
    architecture="cnn",
    epochs=1,
    infer_batch_size=7,
    seed=3,
)

POINTS = ("base.seed-11", "base.seed-12")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "arms.toml").write_text(STUDY)
    return root


def sweep(study: Path, *args):
    return fnotui("sweep", *args, "--arms", str(study / "arms.toml"), cwd=REPO)


def test_list_shows_every_point_and_its_state(study):
    out = sweep(study, "seeds", "--list")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()[1:]]
    assert [line[0] for line in lines] == list(POINTS)
    assert all(line[1:3] == ["not", "started"] for line in lines)


def test_an_unknown_sweep_is_bad_input(study):
    out = sweep(study, "nope", "--list")
    assert out.returncode == 2 and "no sweep named 'nope'; sweeps in this file: seeds" in out.stderr


@pytest.mark.slow
def test_foreground_trains_every_point_with_its_own_seed_and_resume_refuses_finished(study):
    out = sweep(study, "seeds", "--foreground")
    assert out.returncode == 0, out.stdout + out.stderr
    for point, seed in zip(POINTS, (11, 12)):
        run = study / "runs" / point
        assert json.loads((run / "status.json").read_text())["state"] == "finished"
        config = json.loads((run / "config.json").read_text())
        assert config["name"] == point and config["train"]["seed"] == seed
    listed = sweep(study, "seeds", "--list").stdout
    assert listed.count("finished") == 2
    # The points are runs like arms: the usual commands take their names.
    again = fnotui("--arms", str(study / "arms.toml"), "--run", POINTS[0], cwd=REPO)
    assert again.returncode == 2 and "--resume" in again.stderr + again.stdout
    evaluated = fnotui("evaluate", POINTS[1], "--arms", str(study / "arms.toml"), cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr
