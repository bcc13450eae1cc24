"""The command grammar: parser and command builder agree, old spellings keep working, and bad
input (a resume without a run, an unusable --out, an export of nothing) exits 2 having written
nothing. Real processes for the exit codes; none of these tests trains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.cli import parse
from engine.control.grammar import COMMANDS, command_line, engine_line
from tests.slowstudy import write_slow_study
from tests.test_cli_e2e import fnotui

SAMPLES = {
    "arms": "a b.toml",
    "profile": "quick",
    "out": "/data/study",
    "overrides": ["epochs=2", "lr=-1"],
    "device": "cuda:0,cuda:1",
    "max_parallel": 3,
    "resume": True,
    "runs": "/data/old",
    "report": "/data/report",
    "bundle": "/data/bundle",
    "known": "e30=",
    "from_stdin": True,
    "poll": 0.25,
    "max_seconds": 9.0,
    "foreground": True,
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_line_the_engine_builds_parses_back_to_its_values(name):
    spec = COMMANDS[name]
    dests = {o.dest for o in spec.flat_options()}
    values = {k: v for k, v in SAMPLES.items() if k in dests}
    names = ["a", "b"] if spec.names and spec.names[0] == "names" else ["seeds"] * bool(spec.names)
    args = parse(command_line(name, names, **values))
    assert args.command == name
    for dest, value in values.items():
        assert getattr(args, dest) == value, dest
    if spec.names:
        got = getattr(args, spec.names[0])
        assert got == (names if spec.names[0] == "names" else names[0])


def test_the_engine_line_is_the_run_command_in_its_flag_spelling():
    argv = engine_line("a", arms="x.toml", device="cpu", resume=True, max_parallel=1)
    assert argv[:2] == ["--run", "a"]
    args = parse(argv)
    assert (args.command, args.names, args.arms, args.device) == ("run", ["a"], "x.toml", "cpu")
    assert args.resume and args.max_parallel == 1 and not args.restart


def test_old_and_new_spellings_mean_the_same():
    old = parse(["--arms", "s.toml", "--run", "a", "b", "--set", "epochs=1", "--out", "o"])
    new = parse(["run", "a", "b", "--arms", "s.toml", "--set", "epochs=1", "--out", "o"])
    assert vars(old) | {"legacy_run": None} == vars(new) | {"legacy_run": None}
    assert parse(["--list"]).command == "list" == parse(["list"]).command
    assert parse([]).command is None and parse([]).arms == "arms.toml"
    # Study options may come before the command word too.
    before = parse(["--arms", "s.toml", "--out", "o", "launch", "a"])
    assert (before.arms, before.out, before.max_parallel) == ("s.toml", "o", 1)
    # export: --runs is the older name of --out, the study directory; --report is new.
    export = parse(["export", "--runs", "r"])
    assert (export.runs, export.out, export.report) == ("r", None, None)


def test_an_option_the_command_does_not_take_is_refused():
    with pytest.raises(SystemExit) as exc:
        parse(["--set", "epochs=1", "stop", "a"])
    assert exc.value.code == 2


# -- bad input exits 2 and writes nothing --------------------------------------------------------


@pytest.fixture()
def study(tmp_path) -> Path:
    folder = write_slow_study(tmp_path / "study", "grammar")
    arms = folder / "arms.toml"
    arms.write_text(arms.read_text() + "\n[profiles.quick]\nepochs = 2\n")
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("command", (["--run", "slow"], ["launch", "slow"]))
def test_resume_without_an_earlier_run_exits_2_and_writes_nothing(study, command):
    out = fnotui(*command, "--resume", cwd=study)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot resume" in out.stderr and "no checkpoint" in out.stderr
    assert files_in(study) == ["arms.toml"]


def test_an_out_that_is_a_file_is_bad_input(study):
    (study / "afile").write_text("")
    for out_dir in ("afile", "afile/inside"):
        out = fnotui("run", "slow", "--out", out_dir, cwd=study)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"--out {out_dir}: not a directory" in out.stderr
        assert files_in(study) == ["afile", "arms.toml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_bad_input(study):
    locked = study / "locked"
    locked.mkdir(mode=0o500)
    out = fnotui("launch", "slow", "--out", "locked/runs", cwd=study)
    assert out.returncode == 2 and "is not writable" in out.stderr


def test_export_of_a_directory_without_runs_says_so_and_writes_nothing(study):
    out = fnotui("export", "--out", "nowhere", cwd=study)
    assert out.returncode == 2
    assert "no usable run in nowhere" in out.stderr
    assert files_in(study) == ["arms.toml"]
    both = fnotui("export", "--runs", "runs", "--out", "report", cwd=study)
    assert both.returncode == 2 and "--report DIR" in both.stderr


def test_list_names_the_profiles_that_have_runs(study):
    # What the README's first command leaves: a run under the quick profile only.
    run = study / "runs_quick" / "slow"
    run.mkdir(parents=True)
    status = {"arm": "slow", "state": "finished", "epoch": 2, "epochs": 2, "pid": 1}
    (run / "status.json").write_text(json.dumps(status))
    plain = fnotui("--list", cwd=study)
    assert plain.returncode == 0, plain.stderr
    assert "not started" in plain.stdout
    assert "profile quick has 1 run: fnotui list --profile quick" in plain.stdout
    quick = fnotui("list", "--profile", "quick", cwd=study)
    assert "finished" in quick.stdout and "epoch 2/2" in quick.stdout
    assert "(no profile" not in quick.stdout
    # Exporting the empty default study points to the profile that has runs.
    out = fnotui("export", cwd=study)
    assert out.returncode == 2 and "--profile quick" in out.stderr
