"""[sweeps.<name>] in arms.toml: expansion, names, precedence, and errors that name the point."""

from __future__ import annotations

import textwrap

import pytest

from engine.errors import ConfigError
from engine.study.arms import load_study
from tests.tiny import sweep_toml, tiny_study

ARMS = {"a": {"architecture": "hybrid"}, "b": {"architecture": "stable_hybrid"}}


def study(tmp_path, sweeps: str, **kw):
    root = tiny_study(tmp_path, "s", ARMS, extra=textwrap.dedent(sweeps), fno_width=8, epochs=3)
    return load_study(root / "arms.toml", **kw)


GRID = """
[sweeps.s]
arms = ["a", "b"]

[sweeps.s.grid]
seed = [1, 2]
data.train_stride = [4, 8]
lr = [1e-3, 5e-4]
"""


def test_the_grid_is_the_cartesian_product_for_every_arm(tmp_path):
    st = study(tmp_path, GRID)
    points = st.sweep("s")
    assert len(points) == 2 * 2 * 2 * 2
    assert "a.data_train_stride-4.lr-0.0005.seed-2" in points
    cfg = st.arm("a.data_train_stride-4.lr-0.0005.seed-2")
    assert (cfg.train.seed, cfg.data.train_stride, cfg.train.lr) == (2, 4, 5e-4)
    assert (
        cfg.model.architecture == "hybrid" and cfg.name == "a.data_train_stride-4.lr-0.0005.seed-2"
    )
    assert st.points[cfg.name].arm == "a" and st.points[cfg.name].sweep == "s"
    assert {"a", "b"} <= set(st.arms)  # the arms themselves stay runs


def test_names_do_not_depend_on_the_order_of_the_grid(tmp_path):
    reordered = """
    [sweeps.s]
    arms = ["b", "a"]

    [sweeps.s.grid]
    lr = [5e-4, 1e-3]
    data.train_stride = [8, 4]
    seed = [2, 1]
    """
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    assert set(study(tmp_path / "one", GRID).points) == set(
        study(tmp_path / "two", reordered).points
    )


def test_a_training_seed_and_a_data_seed_never_share_a_name(tmp_path):
    st = study(
        tmp_path,
        sweep_toml("seed = [3]\ndata.seed = [3]"),
    )
    assert st.sweep("s") == ["a.data_seed-3.seed-3"]


def test_values_that_are_equal_after_validation_are_refused_as_one_point(tmp_path):
    with pytest.raises(ConfigError, match=r"\[sweeps\.s\.grid\]: key 'lr' lists 0\.001 twice"):
        study(
            tmp_path,
            sweep_toml("lr = [0.001, 1e-3]"),
        )


@pytest.mark.parametrize(
    "sweeps, message",
    [
        (
            sweep_toml("seed = [1]", arms=("nope",)),
            r"\[sweeps\.s\]: no arm named 'nope'; arms in this file: a, b",
        ),
        (
            sweep_toml("sed = [1]"),
            r"\[sweeps\.s\.grid\]: unknown key 'sed' \(did you mean 'seed'\?\)",
        ),
        (
            sweep_toml('optimizer = ["adam", "rmsprop"]'),
            r"\[sweeps\.s\.grid\]: key 'optimizer' has bad value 'rmsprop': expected one of",
        ),
        (
            sweep_toml("seed = []"),
            r"key 'seed' must be a non-empty list",
        ),
        (
            """
     [sweeps.s]
     arms = ["a"]
     grid = {seed = [1]}
     extra = 1
     """,
            r"\[sweeps\.s\]: unknown key 'extra'; allowed keys: arms, grid",
        ),
    ],
)
def test_bad_sweeps_are_refused_naming_the_sweep_and_the_key(tmp_path, sweeps, message):
    with pytest.raises(ConfigError, match=message):
        study(tmp_path, sweeps)
    assert not (tmp_path / "runs").exists()


def test_a_point_the_generator_cannot_build_is_refused_naming_the_point(tmp_path):
    with pytest.raises(ConfigError) as err:
        study(
            tmp_path,
            sweep_toml("fno_blocks = [2, 9]", name="deep"),
        )
    text = str(err.value)
    assert "fno_blocks=9" in text and "sweep 'deep'" in text and "point 'a.fno_blocks-9'" in text


def test_a_point_named_like_an_arm_is_refused(tmp_path):
    path_extra = """
    [arms."a.seed-1"]
    architecture = "cnn"

    [sweeps.s]
    arms = ["a"]
    [sweeps.s.grid]
    seed = [1]
    """
    with pytest.raises(ConfigError, match=r"point 'a\.seed-1' has the name of an arm"):
        study(tmp_path, path_extra)


def test_precedence_profile_then_point_then_set(tmp_path):
    sweeps = """
    [sweeps.s]
    arms = ["a"]
    [sweeps.s.grid]
    epochs = [7]
    lr = [0.01]

    [profiles.p]
    epochs = 2
    lr = 0.5
    """
    st = study(tmp_path, sweeps, profile="p", overrides=["lr=0.2"])
    point = st.arm("a.epochs-7.lr-0.01")
    assert point.train.epochs == 7  # the point beats the profile
    assert point.train.lr == 0.2  # --set beats everything, on every point
    assert st.arm("a").train.epochs == 2


def test_an_unknown_sweep_name_lists_the_sweeps(tmp_path):
    st = study(tmp_path, GRID)
    with pytest.raises(ConfigError, match=r"no sweep named 'x'; sweeps in this file: s"):
        st.sweep("x")


@pytest.mark.parametrize(
    "sweeps, message",
    [
        (
            sweep_toml('fno_blocks = ["four"]'),
            r"arms\.toml: \[sweeps\.s\.grid\]: key 'fno_blocks' has bad value 'four'",
        ),
        (
            sweep_toml("data.train_stride = [4.5]"),
            r"arms\.toml: \[sweeps\.s\.grid\]: key 'data\.train_stride' has bad value 4\.5",
        ),
        (
            sweep_toml(""),
            r"arms\.toml: \[sweeps\.s\.grid\]: expected a non-empty table",
        ),
        (
            sweep_toml("data = {}"),
            r"arms\.toml: \[sweeps\.s\.grid\]: expected at least one knob",
        ),
        (
            sweep_toml("data.no_such_knob = [1]"),
            r"\[sweeps\.s\.grid\]: unknown key 'data\.no_such_knob'",
        ),
        (
            """
     [sweeps.one]
     arms = ["a"]
     [sweeps.one.grid]
     seed = [1, 2]

     [sweeps.two]
     arms = ["a", "b"]
     [sweeps.two.grid]
     seed = [2, 3]
     """,
            r"arms\.toml: sweeps 'one' and 'two' both define the run 'a\.seed-2'",
        ),
    ],
)
def test_more_bad_sweeps_name_the_file_sweep_and_knob(tmp_path, sweeps, message):
    with pytest.raises(ConfigError, match=message):
        study(tmp_path, sweeps)
    assert not (tmp_path / "runs").exists()


def test_a_point_knows_its_seed_and_its_group_without_the_seed(tmp_path):
    st = study(tmp_path, GRID)
    point = st.points["a.data_train_stride-4.lr-0.0005.seed-2"]
    assert point.seed == 2 and point.label == "data_train_stride-4.lr-0.0005.seed-2"
    assert point.group == "a.data_train_stride-4.lr-0.0005"
    (tmp_path / "x").mkdir()
    seeds_only = study(
        tmp_path / "x",
        sweep_toml("seed = [1]\ndata.seed = [5]"),
    )
    point = seeds_only.points["a.data_seed-5.seed-1"]
    assert point.group == "a.data_seed-5"  # the data seed makes another data set: not a replicate


def test_each_distinct_generator_is_built_once_per_load(tmp_path, monkeypatch):
    import engine.models
    from engine.study import checks

    checks.model_problem.cache_clear()
    built = []
    real = engine.models.build_model
    monkeypatch.setattr(engine.models, "build_model", lambda *a: built.append(a) or real(*a))
    st = study(
        tmp_path,
        sweep_toml("seed = [1, 2, 3]\nlr = [1e-3, 2e-3]"),
    )
    assert len(st.sweep("s")) == 6
    assert len(built) == 2  # arm a's generator (shared by its six points) and arm b's
