"""The Slurm resources of a study: ``[study.slurm]`` in arms.toml and the ``--slurm-*`` flags.

Declared here (not in engine/control/slurm.py, which submits) so that the arms file is checked
at load like every other knob, by the study layer, without importing submitit.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import ConfigError

# Slurm's --time spellings: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    gpus: int | None = None  # GPUs per task
    cpus: int | None = None  # CPUs per task
    mem: str | None = None  # Slurm's --mem spelling: 4000 (MB), 16G
    time: int | None = None  # the time limit, in minutes
    extra: dict[str, str] = field(default_factory=dict)  # further sbatch parameters

    def merged(self, other: SlurmOptions) -> SlurmOptions:
        """``other``'s values where it has one (the flags over the file)."""
        given = {k: v for k, v in vars(other).items() if v not in (None, {})}
        extra = {**self.extra, **other.extra}
        return replace(self, **{**given, "extra": extra})


def parse_time(value: Any, where: str) -> int:
    """A time limit in whole minutes (at least 1) from an int or Slurm's --time string."""
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    elif isinstance(value, str) and (m := _TIME.match(value.strip())):
        days, a, b, c = (int(g) if g else None for g in m.groups())
        if days is not None:  # D-HH[:MM[:SS]]
            seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
        elif c is not None:  # HH:MM:SS
            seconds = a * 3600 + b * 60 + c
        elif b is not None:  # MM:SS
            seconds = a * 60 + b
        else:  # minutes
            seconds = a * 60
        minutes = -(-seconds // 60)
    else:
        raise ConfigError(
            f"{where}: bad time limit {value!r}: expected minutes or Slurm's D-HH:MM:SS"
        )
    if minutes < 1:
        raise ConfigError(f"{where}: the time limit must be at least one minute, got {value!r}")
    return minutes


def _count(value: Any, where: str, key: str, least: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(
            f"{where} key {key!r} has bad value {value!r}: expected a whole number >= {least}"
        )
    return value


def _mem(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _MEM.match(text):
        raise ConfigError(
            f"{where} key 'mem' has bad value {value!r}: expected Slurm's --mem, e.g. 16G or 4000"
        )
    return text


def _extra(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where} key 'extra' must be a table of sbatch parameters, e.g. "
            f'extra = {{ account = "proj", qos = "short" }}'
        )
    out = {}
    for k, v in value.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool) or not k:
            raise ConfigError(
                f"{where}: extra parameter {k!r} = {v!r}: expected a string or number"
            )
        out[k] = str(v)
    return out


SLURM_KEYS = ("partition", "gpus", "cpus", "mem", "time", "extra")


def check_slurm_table(where: str, table: Any) -> SlurmOptions:
    """Validate ``[study.slurm]``: an unknown key is named with the allowed ones."""
    if table is None:
        return SlurmOptions()
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in SLURM_KEYS:
            close = difflib.get_close_matches(key, SLURM_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown key {key!r}{hint}; allowed keys: " + ", ".join(SLURM_KEYS)
            )
    partition = table.get("partition")
    if partition is not None and (not isinstance(partition, str) or not partition):
        raise ConfigError(f"{where} key 'partition' has bad value {partition!r}: expected a name")
    return SlurmOptions(
        partition=partition,
        gpus=_count(table["gpus"], where, "gpus", 0) if "gpus" in table else None,
        cpus=_count(table["cpus"], where, "cpus", 1) if "cpus" in table else None,
        mem=_mem(table["mem"], where) if "mem" in table else None,
        time=parse_time(table["time"], f"{where} key 'time'") if "time" in table else None,
        extra=_extra(table.get("extra", {}), where),
    )


def options_from_flags(args) -> SlurmOptions:
    """The ``--slurm-*`` flags of ``fnotui sweep`` (None where not given); exit-2 errors."""
    where = "--slurm-*"
    extra = {}
    for item in getattr(args, "slurm_extra", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--slurm-extra {item!r}: expected KEY=VALUE, e.g. account=proj")
        extra[key.strip().lstrip("-")] = value
    table = {
        k: v
        for k, v in (
            ("partition", args.slurm_partition),
            ("gpus", args.slurm_gpus),
            ("cpus", args.slurm_cpus),
            ("mem", args.slurm_mem),
            ("time", args.slurm_time),
        )
        if v is not None
    }
    options = check_slurm_table(where, table)
    return replace(options, extra=extra)
