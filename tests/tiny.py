"""The tiny recipe that tests, benchmarks and scripts train on, in one place.

N 32 patches of a 64 px grid-lines object, one image per split: a dataset builds in well under
a second and an epoch of a small generator takes a fraction of one on a CPU. Each study adds
its own scan strides, ``set_phi``, width, epochs and seeds; these lines are what they share.
Benchmarks and scripts import this too (they put the repository on sys.path).

``tiny_study`` writes a whole study of this recipe, so a test names only what it is about.
"""

from __future__ import annotations

import json
from pathlib import Path

# [data] lines: the simulated object and patch size.
TINY_DATA = """\
N = 32
object_size = 64
n_lines = 30
nimgs_train = 1
nimgs_test = 1"""

# [defaults] lines: a two-block generator with few Fourier modes (the width varies).
TINY_GENERATOR = """\
fno_blocks = 2
fno_modes = 4"""

# What every tiny study's [data] and [defaults] hold beyond the lines above.
TINY_STRIDES = {"train_stride": 8, "test_stride": 8}
TINY_BATCH = {"fno_width": 4, "batch_size": 8}


def toml_lines(table: dict) -> str:
    """``key = value`` lines of the table's plain keys (JSON writes TOML's scalars and arrays
    alike for str, int, float, bool and lists)."""
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items() if not isinstance(v, dict))


def toml_table(header: str, table: dict) -> str:
    """``[header]`` with its keys, then each sub-table as ``[header.key]``."""
    nested = (toml_table(f"{header}.{k}", v) for k, v in table.items() if isinstance(v, dict))
    return f"[{header}]\n{toml_lines(table)}\n" + "".join(nested)


def tiny_study_toml(
    name: str,
    arms: dict[str, dict],
    *,
    study: dict | None = None,
    data: dict | None = None,
    sweeps: dict[str, dict] | None = None,
    extra: str = "",
    **knobs,
) -> str:
    """A study of the tiny recipe named ``name`` (with ``study``'s sub-tables), [data] with ``data`` over the tiny strides, [defaults] with
    ``knobs`` over the tiny generator and batch, then ``arms`` (name -> its own knobs),
    ``sweeps`` (name -> {"arms": [...], "grid": {knob: [values]}}) and ``extra`` TOML."""
    return "".join(
        [
            toml_table("study", {"name": name, "output_dir": "runs", **(study or {})}),
            f"[data]\n{TINY_DATA}\n{toml_lines({**TINY_STRIDES, **(data or {})})}\n",
            f"[defaults]\n{TINY_GENERATOR}\n{toml_lines({**TINY_BATCH, **knobs})}\n",
            *(toml_table(f"arms.{arm}", own) for arm, own in arms.items()),
            *(toml_table(f"sweeps.{sweep}", sweep_) for sweep, sweep_ in (sweeps or {}).items()),
            extra,
        ]
    )


def tiny_study(folder: Path, name: str, arms: dict[str, dict], **options) -> Path:
    """Writes ``folder/arms.toml`` (``tiny_study_toml`` of the rest) and returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arms.toml").write_text(tiny_study_toml(name, arms, **options))
    return folder


# The stable hybrid with warmup and clipping that the CLI tests and the trace corpus train.
TINY_WARM_ARM = {
    "architecture": "stable_hybrid",
    "scheduler": "WarmupCosine",
    "lr": 2e-3,
    "warmup_epochs": 2,
    "min_lr_ratio": 0.05,
    "grad_clip": 1.0,
    "clip_algorithm": "norm",
}


def tiny_data(**changes):
    """The tiny recipe's DataConfig (TINY_DATA and the tiny strides) with ``changes``."""
    from engine.config import DataConfig

    recipe = {"N": 32, "object_size": 64, "n_lines": 30, "nimgs_train": 1, "nimgs_test": 1}
    return DataConfig(**{**recipe, **TINY_STRIDES, **changes})


def sweep_toml(grid: str, arms: tuple[str, ...] = ("a",), name: str = "s") -> str:
    """A [sweeps.<name>] table over ``arms`` whose grid is the TOML lines ``grid``."""
    return f"[sweeps.{name}]\narms = {json.dumps(list(arms))}\n[sweeps.{name}.grid]\n{grid}\n"
