"""A knob: one configuration key declared once, with its type, default, allowed values and meaning.

engine/config.py declares every knob as a field of a frozen dataclass through ``knob(...)``;
``Knob.check`` is the one validator (engine.study.arms calls it too, to name the file, arm and key
in its message), and docs/arms.md is generated from the declarations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError


@dataclass(frozen=True)
class Knob:
    """Declaration of one configuration key: what it is and what values it accepts."""

    name: str
    kind: type  # int, float, bool or str; ints are accepted where floats are expected
    default: Any
    help: str
    choices: tuple | None = None
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    exclusive_minimum: bool = False
    allow_none: bool = False  # TOML has no null: None is only ever the default

    def allowed(self) -> str:
        """Human description of the accepted values, used verbatim in error messages."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[
            self.kind
        ]

        def num(x: float) -> str:
            return str(int(x)) if self.kind is int else f"{x:g}"

        if self.minimum is not None and self.maximum is not None:
            lo = "(" if self.exclusive_minimum else "["
            return f"{kind} in {lo}{num(self.minimum)}, {num(self.maximum)}]"
        if self.minimum is not None:
            op = ">" if self.exclusive_minimum else ">="
            return f"{kind} {op} {num(self.minimum)}"
        return kind

    def check(self, value: Any) -> Any:
        """Return the value coerced to the knob's type, or raise ValueError with the reason."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"expected a finite number, got {value}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"expected {self.allowed()}, got {type(value).__name__}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected {self.allowed()}")
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                raise ValueError(f"expected {self.allowed()}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"expected {self.allowed()}")
        return value


KNOB = "knob"  # the key of a field's metadata that holds its Knob
_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def knob(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
):
    """A dataclass field that is a knob; its name and kind come from the annotation."""
    spec = dict(
        default=default,
        help=help,
        choices=choices,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_minimum,
    )
    return field(default=default, metadata={KNOB: spec})


def knobs_of(cls) -> tuple[Knob, ...]:
    """The Knob of every field of a config dataclass, in declaration order."""
    return tuple(
        Knob(name=f.name, kind=_KINDS[f.type], **f.metadata[KNOB]) for f in dataclasses.fields(cls)
    )


class Validated:
    """Validates and coerces every knob field on construction (and on ``dataclasses.replace``)."""

    SECTION = ""

    def __post_init__(self) -> None:
        for k in type(self).KNOBS:
            value = getattr(self, k.name)
            try:
                checked = k.check(value)
            except ValueError as exc:
                raise ConfigError(f"{self.SECTION}.{k.name} = {value!r}: {exc}") from None
            if checked is not value:
                object.__setattr__(self, k.name, checked)  # an int where a float belongs
