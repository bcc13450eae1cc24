"""Checks of a loaded study beyond one key's type: constraints between knobs, and warnings.

``check_cross_field`` asks the modules that own a constraint (the data recipe, the generator
built on the meta device) whether an arm's knobs fit together, before anything is written;
``study_warnings`` names set-ups that are legal but very likely not what the user meant.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from engine.config import ArmConfig, DataConfig, ModelConfig
from engine.errors import ConfigError
from engine.sim.probe import BUILT_IN_PROBES

_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"fnotui: warning: {message}", file=sys.stderr)


@functools.lru_cache(maxsize=32)
def probe_twin_symmetry(data: DataConfig) -> float:
    from engine.sim.probe import build_probe, twin_symmetry

    return twin_symmetry(build_probe(data).array)


def _arm_list(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:4])
    more = f" and {len(names) - 4} more" if len(names) > 4 else ""
    return f"arm {shown}" if len(names) == 1 else f"arms {shown}{more}"


def study_warnings(path: Path, arms: dict[str, ArmConfig], check_probes: bool = True) -> list[str]:
    """Set-ups that are legal but very likely not what the user meant, one line each.

    A probe whose twin symmetry is ~1 (real and centrosymmetric, like ``ideal_disk``) gives every
    patch an exact twin with the same diffraction: someone may study that on purpose, so it is a
    warning. A WarmupCosine arm whose warmup lasts the whole run never reaches its base rate.
    """
    from engine.sim.probe import TWIN_SYMMETRY_WARN

    notes = []
    by_probe: dict[DataConfig, list[str]] = {}
    endless_warmup: dict[tuple[int, int], list[str]] = {}
    for name, cfg in arms.items():
        by_probe.setdefault(cfg.data, []).append(name)
        tc = cfg.train
        if tc.scheduler == "WarmupCosine" and tc.warmup_epochs >= tc.epochs:
            endless_warmup.setdefault((tc.warmup_epochs, tc.epochs), []).append(name)
    for (warmup, epochs), names in endless_warmup.items():
        notes.append(
            f"{path}: {_arm_list(names)}: warmup_epochs = {warmup} >= epochs = {epochs}: the "
            f"WarmupCosine schedule never leaves its warmup (the rate only climbs from "
            f"0.1 x lr); lower warmup_epochs or raise epochs"
        )
    for data, names in by_probe.items() if check_probes else ():
        symmetry = probe_twin_symmetry(data)
        if symmetry >= TWIN_SYMMETRY_WARN:
            notes.append(
                f"{path}: probe = {data.probe!r} ({_arm_list(names)}) is twin-symmetric "
                f"(twin symmetry {symmetry:.4f}; 1 = exact): every patch and its twin "
                f"conj(O(-r)) give the same diffraction, so no loss can tell them apart and "
                f"reconstructions may be twins; set data.probe = 'defocused_aperture' (or a "
                f"complex probe file) unless you study the ambiguity on purpose"
            )
    return notes


def check_cross_field(path: Path, cfg: ArmConfig, validate_models: bool) -> None:
    """Constraints between knobs, checked with the modules that own them, before any write."""
    prefix = f"{path}: arm {cfg.name!r}"
    # A probe file is read by the check and may change between loads: never cached.
    built_in = cfg.data.probe is None or cfg.data.probe in BUILT_IN_PROBES
    problem = (data_problem if built_in else data_problem.__wrapped__)(cfg.data)
    if problem is None and validate_models:
        problem = model_problem(cfg.model, cfg.data.N)
    if problem is not None:
        raise ConfigError(f"{prefix}: {problem}")


# A sweep's points mostly share their data recipe and generator (a 1,000-point grid of seeds and
# optimizer knobs has one of each), so each distinct config is checked once per process: the
# meta-device build costs ~20 ms, which made a 1,000-point sweep take 19 s to load.
@functools.lru_cache(maxsize=256)
def data_problem(data: DataConfig) -> str | None:
    from engine.sim.data import validate_data_config

    try:
        validate_data_config(data)
    except ConfigError as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=256)
def model_problem(model: ModelConfig, n: int) -> str | None:
    import torch

    from engine.models import build_model

    # Building on the meta device runs every shape check of the generator without
    # allocating its weights, so a 4-billion-parameter arm is refused in milliseconds.
    try:
        with torch.device("meta"):
            build_model(model, n)
    except ConfigError as exc:
        return str(exc)
    return None
