"""Read arms.toml: merge defaults, profile and per-arm overrides, reject anything unknown.

Layout of the file (README.md and docs/arms.md have the full reference)::

    [study]              name, output_dir
    [study.slurm]        partition, gpus, cpus, mem, time, extra (fnotui sweep --executor slurm)
    [data]               data recipe shared by every arm (engine.config.DATA_KNOBS)
    [defaults]           model and training knobs shared by every arm
    [detect]             collapse-detector thresholds shared by every arm (DETECT_KNOBS)
    [arms.<name>]        overrides for one arm; [arms.<name>.data] overrides the recipe,
                         [arms.<name>.detect] the detector thresholds
    [profiles.<name>]    overrides applied to every arm with --profile; [profiles.<name>.data];
                         [profiles.<name>.arms.<arm>] (and .data) for one arm of the profile

Precedence, lowest first: knob default < [data]/[defaults] < [arms.X] < [profiles.P] < --set.
Every error names the file, the arm, the key, the bad value and what is allowed, and is raised
before anything is written (ConfigError -> exit code 2 at the CLI).
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import (
    DATA_KNOBS,
    DETECT_KNOBS,
    MODEL_KNOBS,
    RETIRED,
    TRAIN_KNOBS,
    ArmConfig,
    DataConfig,
    DetectConfig,
    ModelConfig,
    TrainConfig,
)
from engine.errors import ConfigError
from engine.runs.rundir import RUN_NAME_RE
from engine.sim.probe import BUILT_IN_PROBES
from engine.study.checks import check_cross_field, study_warnings, warn_once
from engine.study.slurm import SlurmOptions, check_slurm_table
from engine.study.sweeps import SweepPoint, parse_sweeps

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

ARM_NAME_RE = RUN_NAME_RE  # arm names become directory names
STUDY_KEYS = ("name", "output_dir")
TOP_LEVEL_TABLES = ("study", "data", "defaults", "detect", "arms", "profiles", "sweeps")

_DATA = {k.name: k for k in DATA_KNOBS}
_MODEL = {k.name: k for k in MODEL_KNOBS}
_TRAIN = {k.name: k for k in TRAIN_KNOBS}
_DETECT = {k.name: k for k in DETECT_KNOBS}
_SECTIONS = {"data": _DATA, "detect": _DETECT}  # sub-tables of an arm, and --set prefixes
_ARM_LEVEL = {**_MODEL, **_TRAIN}  # flat keys of [defaults], [arms.X], [profiles.P]


@dataclass(frozen=True)
class Study:
    """A parsed arms.toml: study identity and every arm, fully resolved."""

    path: Path
    name: str
    output_dir: Path  # resolved relative to the arms file's directory
    arms: dict[str, ArmConfig]
    profile: str | None = None
    # Legal but probably unintended set-ups (a twin-ambiguous probe, a schedule that never
    # leaves its warmup): printed to stderr when loaded, kept here for reports.
    warnings: tuple[str, ...] = ()
    # Runs that are sweep points (engine/study/sweeps.py), by name; they are in ``arms`` too.
    points: dict[str, SweepPoint] = field(default_factory=dict)
    # [study.slurm]: the resources of jobs submitted with fnotui sweep --executor slurm.
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    def sweep(self, name: str) -> list[str]:
        """The run names of one sweep, in expansion order."""
        names = [p for p, point in self.points.items() if point.sweep == name]
        if not names:
            known = sorted({point.sweep for point in self.points.values()})
            raise ConfigError(
                f"{self.path}: no sweep named {name!r}; sweeps in this file: "
                f"{', '.join(known) or 'none'}"
            )
        return names

    def arm(self, name: str) -> ArmConfig:
        if name not in self.arms:
            raise ConfigError(
                f"{self.path}: no arm named {name!r}; arms in this file: {', '.join(self.arms)}"
            )
        return self.arms[name]

    def run_dir(self, arm: str) -> Path:
        return self.output_dir / arm


def _where(path: Path, arm: str | None, table: str) -> str:
    return f"{path}: [{table}]" if arm is None else f"{path}: arm {arm!r} ([{table}])"


def _suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(where: str, key: str, allowed) -> ConfigError:
    return ConfigError(
        f"{where}: unknown key {key!r}{_suggest(key, allowed)}; allowed keys: "
        + ", ".join(sorted(allowed))
    )


def _check_value(where: str, knob, key: str, value: Any) -> Any:
    try:
        return knob.check(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: key {key!r} has bad value {value!r}: {exc}") from None


def _check_table(where: str, table: Any, knobs: dict, sub_tables: tuple[str, ...] = ()) -> dict:
    """Validate a flat table of knobs; returns {key: coerced value}. Sub-tables are skipped."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__} {table!r}")
    out = {}
    for key, value in table.items():
        if key in sub_tables:
            continue
        if key not in knobs:
            retired = RETIRED["data"] if knobs is _DATA else {}
            if key in retired:
                # Old files keep loading; a value the knob never had is refused as before.
                if value == retired[key]:
                    continue
                raise ConfigError(
                    f"{where}: key {key!r} has bad value {value!r}: {key} is retired; only "
                    f"{retired[key]!r} was ever implemented (remove the key)"
                )
            raise _unknown_key(where, key, list(knobs) + list(sub_tables))
        out[key] = _check_value(where, knobs[key], key, value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--set KEY=VALUE``: dotted key path and a TOML-typed value.

    The value is read as a TOML value (``2``, ``5e-4``, ``true``, ``"adam"``); a bare word that is
    not valid TOML (``adam``, ``WarmupCosine``) is taken as a string, so quoting is optional.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set epochs=2")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {text!r}: empty key; expected KEY=VALUE, e.g. data.N=128")
    if raw == "":
        raise ConfigError(f"--set {text!r}: empty value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return parts, value


def _apply_overrides(
    arm: str, overrides: list[str], arm_table: dict, sections: dict[str, dict]
) -> None:
    """Apply ``--set`` overrides in place, validating each against its knob."""
    for text in overrides:
        parts, value = parse_override(text)
        where = f"--set {text!r} for arm {arm!r}"
        if len(parts) == 2 and parts[0] in _SECTIONS:
            knobs = _SECTIONS[parts[0]]
            if parts[1] not in knobs:
                raise _unknown_key(where, parts[1], knobs)
            sections[parts[0]][parts[1]] = _check_value(where, knobs[parts[1]], parts[1], value)
        elif len(parts) == 1:
            knob = _ARM_LEVEL.get(parts[0])
            if knob is None:
                raise _unknown_key(
                    where, parts[0], list(_ARM_LEVEL) + [f"{s}.<key>" for s in _SECTIONS]
                )
            arm_table[parts[0]] = _check_value(where, knob, parts[0], value)
        else:
            raise ConfigError(
                f"{where}: key {'.'.join(parts)!r} is not a knob; use KEY, data.KEY or detect.KEY"
            )


def _anchor_probe(data: dict, base: Path) -> dict:
    """A relative probe file is relative to the arms file (or, from --set, to the current
    directory): made absolute here, so a detached engine with another cwd finds the same file
    and config.json records which file it was."""
    probe = data.get("probe")
    if probe is None or probe in BUILT_IN_PROBES or Path(probe).expanduser().is_absolute():
        return data
    return {**data, "probe": str((base / probe).resolve())}


def _split_arm_level(values: dict) -> tuple[dict, dict]:
    model = {k: v for k, v in values.items() if k in _MODEL}
    train = {k: v for k, v in values.items() if k in _TRAIN}
    return model, train


def load_study(
    path: str | Path,
    *,
    profile: str | None = None,
    overrides: list[str] | None = None,
    output_dir: str | Path | None = None,
    validate_models: bool = True,
) -> Study:
    """Parse and validate an arms file; ``overrides`` are ``--set`` strings applied to every arm."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: arms file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read arms file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None

    for key in raw:
        if key not in TOP_LEVEL_TABLES:
            raise _unknown_key(f"{path}: top level", key, TOP_LEVEL_TABLES)

    study = raw.get("study", {})
    if not isinstance(study, dict):
        raise ConfigError(f"{path}: [study] must be a table")
    for key, value in study.items():
        if key == "slurm":  # a table of its own, checked below
            continue
        if key not in STUDY_KEYS:
            raise _unknown_key(f"{path}: [study]", key, (*STUDY_KEYS, "slurm"))
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{path}: [study] key {key!r} has bad value {value!r}: expected a non-empty string"
            )
    slurm = check_slurm_table(f"{path}: [study.slurm]", study.get("slurm"))
    study_name = study.get("name", path.stem)
    out = Path(output_dir) if output_dir is not None else Path(study.get("output_dir", "runs"))
    if not out.is_absolute() and output_dir is None:
        out = Path(os.path.normpath(path.parent / out))  # no 'docs/x/../../runs' in titles

    base_data = _check_table(f"{path}: [data]", raw.get("data", {}), _DATA)
    base_arm = _check_table(f"{path}: [defaults]", raw.get("defaults", {}), _ARM_LEVEL)
    base_detect = _check_table(f"{path}: [detect]", raw.get("detect", {}), _DETECT)

    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: [profiles] must be a table of [profiles.<name>] tables")
    arms_raw = raw.get("arms", {})
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise ConfigError(f"{path}: no arms defined; add at least one [arms.<name>] table")

    parsed_profiles = {}  # every profile is validated, not only the selected one
    for pname, ptable in profiles.items():
        parsed_profiles[pname] = _parse_profile(path, pname, ptable, arms_raw)
    prof_arm: dict = {}
    prof_data: dict = {}
    prof_per_arm: dict[str, tuple[dict, dict]] = {}
    if profile is not None:
        if profile not in parsed_profiles:
            known = ", ".join(parsed_profiles) or "none defined"
            raise ConfigError(f"{path}: no profile named {profile!r}; profiles: {known}")
        prof_arm, prof_data, prof_per_arm = parsed_profiles[profile]
        if output_dir is None:
            # A profile changes the experiment, so its runs never share directories with the
            # faithful study's runs (docs/science.md, 'Smaller traps'). An explicit --out wins.
            out = out.parent / f"{out.name}_{profile}"

    tables: dict[str, tuple[dict, dict, dict]] = {}
    for arm_name, table in arms_raw.items():
        if not ARM_NAME_RE.match(arm_name):
            raise ConfigError(
                f"{path}: arm name {arm_name!r} is not allowed: arm names become directory "
                f"names and may use only letters, digits, '_', '.' and '-'"
            )
        if arm_name in (".", ".."):
            raise ConfigError(f"{path}: arm name {arm_name!r} is not allowed")
        where = _where(path, arm_name, f"arms.{arm_name}")
        arm_vals = _check_table(where, table, _ARM_LEVEL, sub_tables=tuple(_SECTIONS))
        data_vals = _check_table(
            _where(path, arm_name, f"arms.{arm_name}.data"), table.get("data", {}), _DATA
        )
        detect_vals = _check_table(
            _where(path, arm_name, f"arms.{arm_name}.detect"), table.get("detect", {}), _DETECT
        )
        tables[arm_name] = (arm_vals, data_vals, detect_vals)
    points = parse_sweeps(path, raw.get("sweeps", {}), list(tables), _check_grid_value)

    def resolve(run_name: str, arm_name: str, point: dict[str, Any]) -> ArmConfig:
        """One run's config: arm < profile < profile's arm table < sweep point < --set."""
        arm_vals, data_vals, detect_vals = tables[arm_name]
        one_arm, one_data = prof_per_arm.get(arm_name, ({}, {}))
        merged_arm = {**base_arm, **arm_vals, **prof_arm, **one_arm}
        sections = {
            "data": {**base_data, **data_vals, **prof_data, **one_data},
            "detect": {**base_detect, **detect_vals},
        }
        for key, value in point.items():
            section, _, knob = key.rpartition(".")
            (sections[section] if section else merged_arm)[knob] = value
        sections["data"] = _anchor_probe(sections["data"], path.parent)
        _apply_overrides(run_name, overrides or [], merged_arm, sections)
        sections["data"] = _anchor_probe(sections["data"], Path.cwd())
        model_vals, train_vals = _split_arm_level(merged_arm)
        cfg = ArmConfig(
            name=run_name,
            data=DataConfig(**sections["data"]),
            model=ModelConfig(**model_vals),
            train=TrainConfig(**train_vals),
            detect=DetectConfig(**sections["detect"]),
        )
        check_cross_field(path, cfg, validate_models)
        return cfg

    arms: dict[str, ArmConfig] = {name: resolve(name, name, {}) for name in tables}
    for point in points:
        try:
            arms[point.name] = resolve(point.name, point.arm, point.overrides())
        except ConfigError as exc:
            raise ConfigError(f"{exc} (sweep {point.sweep!r}, point {point.name!r})") from None

    # The probe check builds every probe (SciPy, scikit-image): skipped with the generator build
    # when the caller only reads the study (the dashboard's start-up), done wherever runs start.
    notes = study_warnings(path, arms, check_probes=validate_models)
    for note in notes:
        warn_once(note)
    return Study(
        path=path,
        name=study_name,
        output_dir=out,
        arms=arms,
        profile=profile,
        warnings=tuple(notes),
        points={p.name: p for p in points},
        slurm=slurm,
    )


def _check_grid_value(where: str, key: str, value: Any) -> Any:
    """Validate one sweep grid value: ``KNOB`` (model/training) or ``data.KNOB``/``detect.KNOB``."""
    section, _, knob = key.rpartition(".")
    knobs = _SECTIONS.get(section) if section else _ARM_LEVEL
    if knobs is None or knob not in knobs:
        allowed = list(_ARM_LEVEL) + [f"{s}.<key>" for s in _SECTIONS]
        raise _unknown_key(where, key, allowed)
    return _check_value(where, knobs[knob], key, value)


def _parse_profile(path: Path, name: str, table: Any, arms_raw: dict):
    """(arm-level knobs, data knobs, {arm: (arm-level knobs, data knobs)}) of one profile.

    ``[profiles.P.arms.A]`` (with its own ``data`` sub-table) sets values for one arm only, for
    profiles whose arms differ, e.g. the original's 50-epoch control beside 20-epoch arms.
    """
    where = f"{path}: [profiles.{name}]"
    p_arm = _check_table(where, table, _ARM_LEVEL, sub_tables=("data", "arms"))
    p_data = _check_table(f"{where[:-1]}.data]", table.get("data", {}), _DATA)
    per_arm_raw = table.get("arms", {})
    if not isinstance(per_arm_raw, dict):
        raise ConfigError(f"{where[:-1]}.arms] must be a table of [profiles.{name}.arms.<arm>]")
    per_arm = {}
    for arm, arm_table in per_arm_raw.items():
        arm_where = f"{path}: [profiles.{name}.arms.{arm}]"
        if arm not in arms_raw:
            raise ConfigError(
                f"{arm_where}: no arm named {arm!r}; arms in this file: {', '.join(arms_raw)}"
            )
        values = _check_table(arm_where, arm_table, _ARM_LEVEL, sub_tables=("data",))
        data = _check_table(f"{arm_where[:-1]}.data]", arm_table.get("data", {}), _DATA)
        per_arm[arm] = (values, data)
    return p_arm, p_data, per_arm
