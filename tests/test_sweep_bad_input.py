"""Bad sweeps at the command line: a clear message naming the file, the sweep and the point or
knob, exit 2, and nothing written (no run directory, no output folder)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.test_cli_e2e import fnotui
from tests.tiny import sweep_toml, tiny_study_toml

REPO = Path(__file__).resolve().parents[1]

BASE = tiny_study_toml("bad_sweeps", {"a": {}}, architecture="hybrid", epochs=1)

CASES = {
    "empty list": (
        sweep_toml("seed = []"),
        ["[sweeps.s.grid]", "key 'seed' must be a non-empty list"],
    ),
    "not a knob": (
        sweep_toml("learning_rate = [1e-3]"),
        ["[sweeps.s.grid]", "unknown key 'learning_rate'"],
    ),
    "wrong type": (
        sweep_toml('seed = [1, "two"]'),
        ["[sweeps.s.grid]", "key 'seed' has bad value 'two'"],
    ),
    "same run twice": (
        sweep_toml("seed = [1, 2]") + sweep_toml("seed = [2]", name="t"),
        ["sweeps 's' and 't' both define the run 'a.seed-2'"],
    ),
    "unknown arm": (
        sweep_toml("seed = [1]", arms=("a", "b")),
        ["[sweeps.s]", "no arm named 'b'; arms in this file: a"],
    ),
    "unbuildable point": (
        sweep_toml("fno_blocks = [2, 9]"),
        ["fno_blocks=9", "sweep 's'", "point 'a.fno_blocks-9'"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["--foreground", "launch"])
def test_a_bad_sweep_exits_2_naming_it_and_writes_nothing(tmp_path, case, mode):
    sweeps, expected = CASES[case]
    arms = tmp_path / "arms.toml"
    arms.write_text(BASE + textwrap.dedent(sweeps))
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["sweep", "s", "--arms", str(arms)] + (["--foreground"] if mode != "launch" else [])
    out = fnotui(*args, cwd=REPO)
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(arms) in out.stderr
    for text in expected:
        assert text in out.stderr, (text, out.stderr)
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no report, nothing
