"""Sweeps: an arm (or several) times a grid of knob values, each point a run of its own.

In arms.toml::

    [sweeps.seeds]
    arms = ["arm_control", "arm_stable"]
    [sweeps.seeds.grid]
    seed = [20260129, 20260130]
    data.train_stride = [4, 8]        # data and detector knobs with their section prefix

The grid is expanded as the Cartesian product, for every listed arm. A point is an arm in every
other respect (``Study.arms`` holds it, ``fnotui launch``/``stop``/``--resume`` and the dashboard
treat it alike) whose knobs are the arm's with the point's values applied after any profile and
before ``--set``.

Point names are ``<arm>.<key>-<value>`` for every grid key in sorted order, e.g.
``arm_control.data_train_stride-8.seed-20260129``: readable, path-safe, and independent of the
order the grid was written in. A data or detector knob is prefixed with its section and ``_`` so
that ``seed`` (training) and ``data_seed`` (the data recipe) cannot meet. Values print as TOML
would (``0.001``, ``1e-05``, ``true``); two values that print alike after validation (an integer
1 and a float 1.0 for a float knob) are the same point and are refused as a duplicate.

Points that differ only in the training ``seed`` are replicates of one set-up: ``SweepPoint.group``
(the name without the seed) is what the export groups their outcomes by
(engine/reporting/outcomes.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.runs.rundir import RUN_NAME_RE

SECTIONS = ("data", "detect")
# The training seed: points that differ only in it are replicates of one set-up. The data
# recipe's ``data.seed`` makes another dataset, so it is not a replicate seed.
SEED_KEY = "seed"


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: which sweep, which arm, and the knob values it sets."""

    sweep: str
    arm: str
    values: tuple[tuple[str, Any], ...]  # (dotted key, validated value), keys sorted

    @property
    def name(self) -> str:
        return point_name(self.arm, dict(self.values))

    @property
    def label(self) -> str:
        """The point's values as its name spells them (``lr-0.001.seed-3``), without the arm."""
        return self.name[len(self.arm) + 1 :]

    @property
    def seed(self) -> Any:
        """The training seed the point sets, or None when the grid has no ``seed`` key."""
        return dict(self.values).get(SEED_KEY)

    @property
    def group(self) -> str:
        """The point's name without its training seed: the runs of one set-up share it, so the
        export reports their outcomes together (``arm`` alone for a seeds-only grid)."""
        return point_name(self.arm, {k: v for k, v in self.values if k != SEED_KEY})

    def overrides(self) -> dict[str, Any]:
        return dict(self.values)


def format_value(value: Any) -> str:
    """The value as it appears in a point name (TOML spelling, path-safe)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        text = repr(value).replace("e+", "e")
        return text
    return str(value)


def _key_label(key: str) -> str:
    return key.replace(".", "_")


def point_name(arm: str, values: dict[str, Any]) -> str:
    parts = [f"{_key_label(k)}-{format_value(values[k])}" for k in sorted(values)]
    return ".".join([arm, *parts])


def _flatten_grid(where: str, grid: Any) -> dict[str, list]:
    """{dotted key: list of values}; ``data`` and ``detect`` sub-tables become prefixed keys."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: expected a non-empty table of knob = [values, ...]")
    flat: dict[str, list] = {}
    for key, values in grid.items():
        if isinstance(values, dict) and key in SECTIONS:
            for sub, sub_values in values.items():
                flat[f"{key}.{sub}"] = sub_values
        else:
            flat[key] = values
    if not flat:
        raise ConfigError(f"{where}: expected at least one knob = [values, ...]; the grid is empty")
    for key, values in flat.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}: key {key!r} must be a non-empty list of values, got {values!r}"
            )
    return flat


def parse_sweeps(path: Path, raw: Any, arm_names: list[str], check_value) -> list[SweepPoint]:
    """Every point of every ``[sweeps.<name>]``, validated key by key.

    ``check_value(where, dotted_key, value)`` validates one value against its knob (the loader's
    own check, so a sweep accepts exactly what an arm does) and returns it coerced.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [sweeps] must be a table of [sweeps.<name>] tables")
    points: list[SweepPoint] = []
    for sweep, table in raw.items():
        where = f"{path}: [sweeps.{sweep}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table with 'arms' and [sweeps.{sweep}.grid]")
        unknown = set(table) - {"arms", "grid"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {sorted(unknown)[0]!r}; allowed keys: arms, grid"
            )
        arms = table.get("arms")
        if not isinstance(arms, list) or not arms or not all(isinstance(a, str) for a in arms):
            raise ConfigError(
                f"{where}: 'arms' must be a non-empty list of arm names; arms in "
                f"this file: {', '.join(arm_names)}"
            )
        for arm in arms:
            if arm not in arm_names:
                raise ConfigError(
                    f"{where}: no arm named {arm!r}; arms in this file: {', '.join(arm_names)}"
                )
        grid = _flatten_grid(f"{where[:-1]}.grid]", table.get("grid"))
        checked: dict[str, list] = {}
        for key in sorted(grid):
            checked[key] = []
            for value in grid[key]:
                v = check_value(f"{where[:-1]}.grid]", key, value)
                try:
                    text = format_value(v)
                except ValueError as exc:
                    raise ConfigError(f"{where[:-1]}.grid]: key {key!r}: {exc}") from None
                if not RUN_NAME_RE.match(text):
                    raise ConfigError(
                        f"{where[:-1]}.grid]: key {key!r} value {v!r} cannot be part of a run "
                        f"name; allowed: values spelled with letters, digits, '_', '.' and '-'"
                    )
                if any(format_value(w) == text for w in checked[key]):
                    raise ConfigError(
                        f"{where[:-1]}.grid]: key {key!r} lists {text} twice (after "
                        f"validation); each value must give a different run"
                    )
                checked[key].append(v)
        keys = sorted(checked)
        for arm in arms:
            for combo in itertools.product(*(checked[k] for k in keys)):
                points.append(SweepPoint(sweep, arm, tuple(zip(keys, combo))))
    seen: dict[str, SweepPoint] = {}
    for point in points:
        if point.name in arm_names:
            raise ConfigError(
                f"{path}: sweep {point.sweep!r} point {point.name!r} has the name "
                f"of an arm; rename the arm"
            )
        if point.name in seen:
            raise ConfigError(
                f"{path}: sweeps {seen[point.name].sweep!r} and {point.sweep!r} "
                f"both define the run {point.name!r}; a run must come from one "
                f"sweep"
            )
        seen[point.name] = point
    return points
