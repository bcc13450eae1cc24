"""Epoch-end training checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the model, optimizer and schedule states, every random-number state that the
loop consumes (the shuffle generator, torch's CPU and CUDA generators, NumPy's and Python's), the
detector states, the loop counters and the history so far, and the resolved config it belongs to.
Resuming from it and finishing gives the same history.json and metrics.json as a run that was
never interrupted (tested with kill -9 on CPU, where kernels are deterministic).

Written atomically at every epoch end, so a crash at any point leaves the previous complete
checkpoint in place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_write_bytes
from engine.config import ArmConfig
from engine.errors import ConfigError
from engine.runs.schema import HISTORY_FIELDS

CHECKPOINT_FORMAT = 1


@dataclass
class LoopState:
    """Mutable counters of the training loop, carried across a resume."""

    epochs_done: int = 0
    global_step: int = 0
    segment: int = 0  # 0 for the first process, +1 for every resume
    # One list per history field of the telemetry schema, in the order history.json has them.
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_FIELDS})


def save_checkpoint(
    path: Path,
    *,
    config: dict,
    model,
    optimizer,
    schedule,
    shuffle,
    detectors: dict,
    loop: LoopState,
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": config,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": {
            "shuffle": shuffle.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
        "detectors": detectors,  # plain Python objects: the rules' windows and latches
        "loop": loop,
    }
    atomic_write_bytes(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path, config: dict) -> dict:
    """Load a checkpoint written by this engine for exactly this config."""
    if not path.is_file():
        raise ConfigError(f"cannot resume: no checkpoint at {path} (no epoch completed yet?)")
    # Our own file, holding our own plain objects (detector states, LoopState): not weights-only.
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"cannot resume: {path} has checkpoint format {state.get('format')}, "
            f"this engine writes {CHECKPOINT_FORMAT}"
        )
    diff = _config_diff(_current_form(state["config"]), _current_form(config))
    if diff:
        raise ConfigError(
            f"cannot resume: the arm's config changed since {path} was written "
            f"({'; '.join(diff)}); resume with the original settings"
        )
    return state


def restore_rng(state: dict, shuffle: torch.Generator) -> None:
    rng = state["rng"]
    shuffle.set_state(rng["shuffle"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def _current_form(config: dict) -> dict:
    """A config as this engine writes it: knobs added since the checkpoint at their defaults (a
    new knob's default keeps the old behaviour), retired knobs at their only value dropped.
    A config that no longer builds is compared as written, so the diff names what changed."""
    try:
        return ArmConfig.from_dict(config).to_dict()
    except (ConfigError, TypeError, KeyError):
        return config


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, name + ".")
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out
