"""arms.toml loading: merging, overrides, and one clear message for every kind of bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.study.arms import load_study, parse_override

REPO = Path(__file__).resolve().parents[2]

GOOD = """
[study]
name = "t"
output_dir = "out"

[data]
N = 32
object_size = 64
train_stride = 8
test_stride = 8
n_lines = 20

[defaults]
fno_width = 8
fno_blocks = 2
epochs = 3

[arms.a]
architecture = "hybrid"
grad_clip = 1.0

[arms.b]
architecture = "stable_hybrid"
scheduler = "WarmupCosine"
warmup_epochs = 1

[arms.b.data]
set_phi = true

[profiles.quick]
epochs = 1

[profiles.quick.data]
train_stride = 16
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "arms.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_and_arm_overrides_merge(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    a, b = study.arm("a"), study.arm("b")
    assert a.model.architecture == "hybrid" and a.train.grad_clip == 1.0
    assert a.train.epochs == 3 and a.model.fno_width == 8 and a.data.N == 32
    assert b.data.set_phi is True and a.data.set_phi is False
    assert b.train.scheduler == "WarmupCosine" and b.train.warmup_epochs == 1
    assert study.output_dir == tmp_path / "out"
    assert study.run_dir("a") == tmp_path / "out" / "a"


def test_profile_overrides_arms_and_moves_output_dir(tmp_path):
    study = load_study(write(tmp_path, GOOD), profile="quick")
    assert study.arm("a").train.epochs == 1
    assert study.arm("b").data.train_stride == 16
    assert study.output_dir == tmp_path / "out_quick"


def test_set_overrides_win_over_everything(tmp_path):
    study = load_study(
        write(tmp_path, GOOD),
        profile="quick",
        overrides=["epochs=7", "data.train_stride=32", "optimizer=sgd", "lr=5e-4"],
    )
    b = study.arm("b")
    assert (b.train.epochs, b.data.train_stride, b.train.optimizer, b.train.lr) == (
        7,
        32,
        "sgd",
        5e-4,
    )


def test_explicit_out_is_used_as_given(tmp_path):
    study = load_study(write(tmp_path, GOOD), profile="quick", output_dir=tmp_path / "x")
    assert study.output_dir == tmp_path / "x"


def test_int_is_accepted_where_a_float_is_expected(tmp_path):
    study = load_study(write(tmp_path, GOOD), overrides=["lr=1"])
    assert study.arm("a").train.lr == 1.0 and isinstance(study.arm("a").train.lr, float)


def test_repository_arms_toml_is_valid_and_faithful():
    study = load_study(REPO / "arms.toml")
    base = {
        "arm_control",
        "arm_stable",
        "arm_stable_warmup",
        "arm_stable_lowlr",
        "arm_stable_warmup_unstepped",
    }
    seeds = {f"{arm}.seed-{seed}" for arm in base for seed in (20260129, 20260130)}
    assert set(study.sweep("seeds")) == seeds
    crash = set(study.sweep("crash_hunt"))  # 3 seeds x fno_blocks 4/5/6 of the control
    assert set(study.arms) == base | seeds | crash and len(crash) == 9
    for name in crash:
        cfg = study.arm(name)
        assert (cfg.model.architecture, cfg.model.max_hidden_channels) == ("hybrid", 512)
        assert (cfg.train.grad_clip, cfg.train.clip_algorithm, cfg.train.epochs) == (
            1.0,
            "norm",
            30,
        )
    assert {study.arm(n).model.fno_blocks for n in crash} == {4, 5, 6}
    assert study.arm("arm_stable.seed-20260130").train.seed == 20260130
    assert study.arm("arm_stable.seed-20260130").train.lr == 1e-3
    assert study.warnings == ()  # the default probe is not twin-ambiguous
    w = study.arm("arm_stable_warmup")
    assert (
        w.model.architecture,
        w.train.scheduler,
        w.train.lr,
        w.train.warmup_epochs,
        w.train.min_lr_ratio,
        w.train.grad_clip,
        w.model.fno_blocks,
        w.train.epochs,
        w.train.loss,
        w.train.infer_batch_size,
        w.train.seed,
    ) == ("stable_hybrid", "WarmupCosine", 5e-4, 5, 0.05, 0.0, 4, 20, "mae", 8, 20260128)
    assert (
        w.data.N,
        w.data.nimgs_train,
        w.data.nimgs_test,
        w.data.nphotons,
        w.data.set_phi,
    ) == (64, 1, 1, 1e9, True)
    c = study.arm("arm_control")
    assert (c.model.architecture, c.train.clip_algorithm, c.train.grad_clip) == (
        "hybrid",
        "norm",
        1.0,
    )
    assert study.arm("arm_stable_lowlr").train.lr == 2.5e-4
    assert study.arm("arm_stable_lowlr").train.scheduler == "Default"
    unstepped = study.arm("arm_stable_warmup_unstepped").train
    assert (unstepped.lr, unstepped.scheduler) == (0.1 * 5e-4, "Default")
    assert w.data.probe == "defocused_aperture"


def test_repository_original_profile_sets_the_recorded_conditions():
    study = load_study(REPO / "arms.toml", profile="original")
    for name, cfg in study.arms.items():
        assert (cfg.model.spectral_corners, cfg.model.spectral_impl) == (1, "fft")
        assert (
            cfg.train.physics_gain_mode,
            cfg.train.val_batch_size,
            cfg.train.infer_batch_size,
        ) == ("batch_length", 16, 8)
        assert (cfg.data.nimgs_train, cfg.data.nimgs_test, cfg.data.set_phi) == (2, 2, False)
        expected = 50 if name.split(".")[0] == "arm_control" else 20
        if name in study.points and study.points[name].sweep == "crash_hunt":
            expected = 30  # the point's epochs beat the profile's
        assert cfg.train.epochs == expected, name


def test_repository_quick_profile_leaves_the_warmup_a_fraction_of_the_run():
    study = load_study(REPO / "arms.toml", profile="quick")
    w = study.arm("arm_stable_warmup").train
    assert w.warmup_epochs < w.epochs and study.warnings == ()


@pytest.mark.parametrize("text", ["epochs=2", " epochs = 2 "])
def test_parse_override_reads_toml_values(text):
    assert parse_override(text) == (["epochs"], 2)


def test_parse_override_types():
    assert parse_override("lr=5e-4") == (["lr"], 5e-4)
    assert parse_override("set_phi=true") == (["set_phi"], True)
    assert parse_override("optimizer=adamw") == (["optimizer"], "adamw")
    assert parse_override('optimizer="sgd"') == (["optimizer"], "sgd")
    assert parse_override("data.train_stride=32") == (["data", "train_stride"], 32)
    assert parse_override("probe=/tmp/p=1.npy") == (["probe"], "/tmp/p=1.npy")


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs", "expected KEY=VALUE"),
        ("=3", "empty key"),
        ("epochs=", "empty value"),
        ("data..N=3", "empty key"),
    ],
)
def test_parse_override_rejects_malformed(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_override(text)


# Each malformed variant: (description, file text or a (old, new) edit of GOOD, expected
# fragments of the message). Every message must name the file, the place and what is allowed.
MALFORMED = [
    (
        "unknown arm key with suggestion",
        ("grad_clip = 1.0", "grad_clipp = 1.0"),
        ["arm 'a'", "'grad_clipp'", "did you mean 'grad_clip'", "allowed keys"],
    ),
    (
        "unknown defaults key",
        ("epochs = 3", "epoch = 3"),
        ["[defaults]", "'epoch'", "did you mean 'epochs'"],
    ),
    (
        "unknown data key",
        ("n_lines = 20", "nlines = 20"),
        ["[data]", "'nlines'", "did you mean 'n_lines'"],
    ),
    (
        "unknown arm data key",
        ("set_phi = true", "setphi = true"),
        ["arm 'b'", "arms.b.data", "'setphi'"],
    ),
    (
        "unknown top-level table",
        ("[study]", "[stduy]\nname='x'\n[study]"),
        ["top level", "'stduy'", "allowed keys"],
    ),
    ("unknown study key", ('name = "t"', 'nam = "t"'), ["[study]", "'nam'"]),
    (
        "wrong type: string for int",
        ("epochs = 3", 'epochs = "3"'),
        ["'epochs'", "bad value '3'", "an integer", "got str"],
    ),
    (
        "wrong type: float for int",
        ("epochs = 3", "epochs = 3.5"),
        ["'epochs'", "3.5", "an integer"],
    ),
    ("wrong type: int for bool", ("set_phi = true", "set_phi = 1"), ["'set_phi'", "true or false"]),
    (
        "out of range: negative lr",
        ("grad_clip = 1.0", "lr = -1.0"),
        ["arm 'a'", "'lr'", "-1.0", "a number in (0, 10]"],
    ),
    (
        "out of range: zero epochs",
        ("epochs = 3", "epochs = 0"),
        ["'epochs'", "an integer in [1, 100000]"],
    ),
    (
        "bad choice: architecture",
        ('architecture = "hybrid"', 'architecture = "unet"'),
        ["arm 'a'", "'unet'", "'cnn', 'fno', 'hybrid', 'stable_hybrid'"],
    ),
    (
        "bad choice: scheduler",
        ('scheduler = "WarmupCosine"', 'scheduler = "cosine"'),
        ["arm 'b'", "'cosine'", "'WarmupCosine'"],
    ),
    (
        "bad choice: clip algorithm",
        ("grad_clip = 1.0", 'clip_algorithm = "l2"'),
        ["'clip_algorithm'", "'norm', 'value', 'agc'"],
    ),
    (
        "arm name with a slash",
        ("[arms.a]", '[arms."a/../b"]'),
        ["arm name 'a/../b'", "letters, digits"],
    ),
    ("arm name with a space", ("[arms.a]", '[arms."my arm"]'), ["arm name 'my arm'"]),
    ("not TOML", ("[arms.a]", "[arms.a"), ["not valid TOML"]),
    (
        "retired gridsize other than 1",
        ("N = 32", "N = 32\ngridsize = 2"),
        ["'gridsize'", "retired"],
    ),
    ("non-finite value", ("grad_clip = 1.0", "lr = nan"), ["'lr'", "finite"]),
    (
        "unknown profile key",
        ("epochs = 1\n\n[profiles.quick.data]", "epoks = 1\n\n[profiles.quick.data]"),
        ["[profiles.quick]", "'epoks'"],
    ),
    (
        "geometry: N not divisible for the hybrid depth",
        ("fno_blocks = 2", "fno_blocks = 7"),
        ["arm 'a'", "fno_blocks"],
    ),
    (
        "geometry: modes too large for N",
        ("fno_blocks = 2", "fno_blocks = 2\nfno_modes = 40"),
        ["arm 'a'", "fno_modes"],
    ),
]


@pytest.mark.parametrize("desc, edit, fragments", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_arms_file_gives_one_clear_message(tmp_path, desc, edit, fragments):
    old, new = edit
    assert old in GOOD, desc
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_study(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{desc}: {fragment!r} not in {message!r}"
    assert not (tmp_path / "out").exists()  # nothing written


def test_file_without_arms_is_refused(tmp_path):
    path = write(tmp_path, "[study]\nname = 'x'\n")
    with pytest.raises(ConfigError, match="no arms defined"):
        load_study(path)


def test_arm_that_is_not_a_table_is_refused(tmp_path):
    path = write(tmp_path, "[arms]\na = 3\n")
    with pytest.raises(ConfigError, match="expected a table"):
        load_study(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_study(tmp_path / "nope.toml")


def test_unknown_arm_lists_the_arms(tmp_path):
    study = load_study(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no arm named 'c'.*a, b"):
        study.arm("c")


def test_unknown_profile_lists_the_profiles(tmp_path):
    with pytest.raises(ConfigError, match="no profile named 'slow'.*quick"):
        load_study(write(tmp_path, GOOD), profile="slow")


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("epochz=3", ["--set 'epochz=3'", "did you mean 'epochs'"]),
        ("data.NN=3", ["'NN'"]),
        ("optimizer=adamax", ["'optimizer'", "'adam', 'adamw', 'sgd'"]),
        ("model.fno_width=3", ["not a knob"]),
        ("lr=fast", ["'lr'", "a number", "got str"]),
    ],
)
def test_bad_set_override_names_key_and_allowed(tmp_path, override, fragments):
    with pytest.raises(ConfigError) as info:
        load_study(write(tmp_path, GOOD), overrides=[override])
    for fragment in fragments:
        assert fragment in str(info.value)


def test_relative_probe_file_is_relative_to_the_arms_file(tmp_path, monkeypatch):
    import numpy as np

    sub = tmp_path / "study"
    sub.mkdir()
    np.save(sub / "probe.npy", np.ones((32, 32), dtype=np.complex64))
    path = sub / "arms.toml"
    path.write_text(GOOD.replace("n_lines = 20", 'n_lines = 20\nprobe = "probe.npy"'))
    monkeypatch.chdir(tmp_path)  # elsewhere: the file must still be found
    study = load_study(path)
    assert study.arm("a").data.probe == str((sub / "probe.npy").resolve())


# ------------------------------------------------------------------ config dataclasses


def test_a_config_validates_itself_however_it_is_made():
    import dataclasses

    from engine.config import DataConfig, TrainConfig

    with pytest.raises(ConfigError, match=r"^data\.N = 3: expected an integer in \[8, 512\]"):
        DataConfig(N=3)
    with pytest.raises(ConfigError, match=r"^train\.optimizer = 'lion'"):
        dataclasses.replace(TrainConfig(), optimizer="lion")
    # An int where a float belongs is coerced once, at construction.
    assert isinstance(TrainConfig(lr=1).lr, float)


def test_knob_metadata_lives_on_the_fields():
    import dataclasses

    from engine.config import TRAIN_KNOBS, TrainConfig
    from engine.knobs import KNOB

    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f in fields] == [k.name for k in TRAIN_KNOBS]
    lr = next(f for f in fields if f.name == "lr")
    assert lr.default == 1e-3 and lr.metadata[KNOB]["help"] == "base learning rate"


def test_a_retired_knob_at_its_only_value_still_loads(tmp_path):
    from engine.config import ArmConfig

    p = write(tmp_path, GOOD.replace("N = 32", "N = 32\ngridsize = 1"))
    assert "gridsize" not in load_study(p).arms["a"].data.__dataclass_fields__
    old = load_study(write(tmp_path, GOOD)).arms["a"].to_dict()
    old["data"]["gridsize"] = 1  # a config.json written before the knob was retired
    assert ArmConfig.from_dict(old) == ArmConfig.from_dict(load_study(p).arms["a"].to_dict())
