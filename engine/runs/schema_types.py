"""The building blocks of the telemetry schema: a record kind and its fields.

engine/runs/schema.py declares every record kind with these; they live apart so the header's
long declaration (engine/runs/header_schema.py) and the other kinds can share them without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA = "fnotui/1"


@dataclass(frozen=True)
class Field:
    """One field of a record (or of an object inside one)."""

    name: str
    type: str  # JSON type: string, integer, number, boolean, object, array; "|null" if nullable
    meaning: str
    unit: str = ""
    # When the field is left out ("" = in every record of its kind).
    optional: str = ""
    # The change that added it; files written before lack it ("" = since fnotui/1 began).
    since: str = ""
    series: bool = False  # a per-step or per-epoch number the dashboard plots
    history: bool = False  # also kept per epoch in history.json, one list per field


@dataclass(frozen=True)
class RecordKind:
    """A record type (or an object nested in one) and its fields, in documentation order."""

    name: str
    when: str
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        names = tuple(f.name for f in self.fields)
        object.__setattr__(self, "_names", frozenset(names))
        required = frozenset(f.name for f in self.fields if not f.optional and not f.since)
        object.__setattr__(self, "_required", required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.series)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def record(self, **values: Any) -> dict:
        """A record of this kind, fields in the order given (the order they are written in).

        Refuses an undeclared field or a missing one that every record carries, so a writer
        cannot drift from the schema without a test noticing."""
        unknown = values.keys() - self._names
        missing = self._required - values.keys()
        if unknown or missing:
            raise ValueError(
                f"{self.name} record: undeclared {sorted(unknown)}, missing {sorted(missing)} "
                "(declare fields in engine/runs/schema.py)"
            )
        return {"type": self.name, **values}


T_FIELD = Field("t", "number", "wall-clock time the record was written", unit="Unix s")
