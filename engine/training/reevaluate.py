"""Re-score a finished run with the current evaluation code (``fnotui evaluate``).

Evaluation code evolves (the twin block of metrics.json is one example) while old runs stay on
disk; training them again to get comparable numbers would cost hours. Re-evaluation reproduces the
final evaluation of ``engine.training.train`` on the run's own last-epoch weights:

1. Refused, with nothing touched, unless the run finished (or was stopped by the user, whose
   weights at the stop are then scored and said to be) and no engine holds the arm. The arm's
   RunLock is held throughout, so no engine can start training into the directory meanwhile.
2. The generator is rebuilt from the run's config.json (knobs the file predates take the current
   defaults, and are named in the log) and model.pt is loaded into it, strictly.
3. The dataset comes from the study cache through ``engine.sim.data.load_or_build_dataset`` with the
   run's DataConfig. The run's telemetry header recorded which data it trained on; if the recipe
   hash differs (a knob added since changes every hash), the data is accepted only when the
   recorded recipe values and the dataset's fingerprint (scales, norms, sizes, GT phase spread)
   agree, so new code can never silently score the model on other data.
4. metrics.json and recon.npz are rewritten, each atomically, and a ``metrics`` telemetry record
   marked ``"reevaluated": true`` is appended: the telemetry stays append-only, the original
   record stays beside it, and every reader takes the last one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.errors import ConfigError, RunLockedError
from engine.runs.rundir import RunDir
from engine.runs.schema import EPOCH, HEADER, METRICS, STEP
from engine.runs.status import ACTIVE_STATES, RunLock, describe_owner, run_state
from engine.runs.telemetry import TelemetryWriter, load_records

# Relative tolerance at which a rebuilt dataset's fingerprint matches the recorded one: the same
# arithmetic gives the same float64 bits; anything beyond rounding is other data.
FINGERPRINT_RTOL = 1e-9


@dataclass(frozen=True)
class Reevaluation:
    arm: str
    run_dir: Path
    metrics: dict  # the new metrics.json object
    previous: dict | None  # the metrics.json object it replaced (None if there was none)
    notes: list[str]  # what the reader should know (defaults filled in, recipe drift)


def reevaluate_run(
    run_dir: Path, cache_dir: Path, device: str = "cpu", log: Callable[[str], None] = print
) -> Reevaluation:
    """Re-score the finished run in ``run_dir``; see the module docstring.

    Raises ConfigError (bad input: not finished, files missing, config or data no longer
    matching) or RunLockedError (an engine holds the arm) before anything is written.
    """
    run = RunDir(Path(run_dir))
    arm = run.root.name
    if not run.root.is_dir():
        raise ConfigError(f"arm {arm!r}: no run directory {run.root}: it never ran")
    _require_finished(run, arm)  # first, for the clearer message: a live engine holds the lock
    with RunLock(run):
        state = _require_finished(run, arm)  # it may have been restarted before we took the lock
        return _reevaluate(run, arm, Path(cache_dir), device, log, stopped=state == "killed")


# States whose model.pt holds the weights the run ended with: the last epoch's, or, for a run
# stopped by the user (``fnotui stop``, SIGINT/SIGTERM), the weights at the stop, which the engine
# saves before it exits. A crashed or failed run's model.pt may be missing or from elsewhere.
SCORABLE_STATES = ("finished", "killed")


def _require_finished(run: RunDir, arm: str) -> str:
    state = run_state(run.root)
    if state in ACTIVE_STATES:
        raise RunLockedError(
            f"arm {arm!r} is {state} ({describe_owner(run.root)}): its engine may be alive; "
            f"re-evaluate it once it has finished"
        )
    if state not in SCORABLE_STATES:
        raise ConfigError(
            f"arm {arm!r}: the run is {state}; only a finished run, or one stopped with "
            f"fnotui stop, has final weights to re-score (continue it with --resume first)"
        )
    return state


def _reevaluate(
    run: RunDir,
    arm: str,
    cache_dir: Path,
    device: str,
    log: Callable[[str], None],
    stopped: bool = False,
) -> Reevaluation:
    import torch

    from engine.models import build_model
    from engine.scoring.evaluate import evaluate, headline_metrics
    from engine.sim.data import load_or_build_dataset
    from engine.training.train import resolve_device

    for path in (run.model, run.config, run.telemetry):
        if not path.is_file():
            raise ConfigError(
                f"arm {arm!r}: {path.name} is missing from {run.root}; nothing to re-score"
            )
    records = load_records(run.telemetry)
    header = next((r for r in records if r.get("type") == HEADER.name), None)
    if header is None:
        raise ConfigError(
            f"arm {arm!r}: its telemetry has no header, so the data it trained "
            f"on is unknown; not re-scored"
        )
    cfg, notes = _load_config(run, arm)
    for note in notes:
        log(note)
    dev = resolve_device(device)
    dataset = load_or_build_dataset(cfg.data, cache_dir, log=log)
    for note in _check_same_data(header.get("dataset") or {}, dataset, arm):
        log(note)
        notes.append(note)
    model = build_model(cfg.model, cfg.data.N)
    try:
        state = torch.load(run.model, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"arm {arm!r}: model.pt is unreadable ({exc}); not re-scored") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"arm {arm!r}: model.pt does not fit the generator that config.json "
            f"builds with the current code: {exc}"
        ) from None
    model.to(dev)
    epoch, step = _final_position(records, stopped)
    weights = f"at the stop (after step {step}, during epoch {epoch})" if stopped else "last epoch"
    log(f"re-evaluating the weights {weights} on {dev}")
    evaluation = evaluate(
        model,
        dataset.test,
        dataset.ground_truth,
        cfg.train.infer_batch_size,
        dev,
        phase_vacuous=bool(dataset.meta.get("phase_vacuous", False)),
        probe=dataset.probe,
    )
    previous = _read_previous(run)
    now = time.time()
    metrics = {**evaluation.metrics, "reevaluated_at": now, "weights": weights}
    evaluation.save_npz(run.recon)
    atomic_write_json(run.metrics, metrics)
    with TelemetryWriter(run.telemetry) as telemetry:
        telemetry.write(
            METRICS.record(
                epoch=epoch,
                step=step,
                weights=weights,
                metrics=headline_metrics(metrics),
                reevaluated=True,
                t=now,
            )
        )
    return Reevaluation(arm, run.root, metrics, previous, notes)


def _load_config(run: RunDir, arm: str):
    """The run's ArmConfig, plus a note naming every knob the file predates."""
    from engine.config import ArmConfig

    try:
        raw = json.loads(run.config.read_text(encoding="utf-8"))
        cfg = ArmConfig.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"arm {arm!r}: its config.json no longer builds a config with the "
            f"current code ({type(exc).__name__}: {exc})"
        ) from None
    missing = []
    for section in ("data", "model", "train"):
        have = set(raw.get(section) or {})
        missing += [
            f"{section}.{f.name}"
            for f in dataclasses.fields(getattr(cfg, section))
            if f.name not in have
        ]
    notes = []
    if missing:
        notes.append(
            f"config.json predates {len(missing)} knob(s), current defaults used: "
            f"{', '.join(missing)}"
        )
    return cfg, notes


# Dataset meta values that identify the data (engine.sim.data._assemble): recorded in the header.
FINGERPRINT_KEYS = ("intensity_scale", "gt_phase_std", "phase_vacuous", "norm_Y_I", "sizes")


def _check_same_data(recorded: dict, dataset, arm: str) -> list[str]:
    """Raise ConfigError unless ``dataset`` is the data the run trained on (module doc, 3)."""
    if recorded.get("recipe_hash") == dataset.recipe_hash:
        return []
    if not recorded:
        raise ConfigError(
            f"arm {arm!r}: its telemetry header records no dataset, so the data "
            f"it trained on cannot be checked; not re-scored"
        )
    old, new = recorded.get("recipe") or {}, dataset.meta.get("recipe") or {}
    changed = [k for k in sorted(set(old) & set(new)) if old[k] != new[k]]
    differs = [k for k in FINGERPRINT_KEYS if not _same(recorded.get(k), dataset.meta.get(k))]
    if changed or differs:
        raise ConfigError(
            f"arm {arm!r}: the current code builds other data than the run trained on (recipe "
            f"hash {str(recorded.get('recipe_hash'))[:16]} -> {dataset.recipe_hash[:16]}; "
            f"recipe values changed: {', '.join(changed) or 'none'}; fingerprint differs in: "
            f"{', '.join(differs) or 'nothing'}); not re-scored"
        )
    added = sorted(set(new) - set(old))
    return [
        f"the recipe hash changed ({', '.join(added) or 'no new knob'} added since the "
        f"run), but the recorded recipe values and the data's fingerprint match"
    ]


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=FINGERPRINT_RTOL, abs_tol=0.0)
    return a == b


def _read_previous(run: RunDir) -> dict | None:
    try:
        obj = json.loads(run.metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _final_position(records: list[dict], stopped: bool = False) -> tuple[int | None, int | None]:
    """(epoch, step) of the final evaluation: those of the run's metrics record, else of its
    last epoch record; for a stopped run, of its last optimizer step."""
    for kind in (STEP.name,) if stopped else (METRICS.name, EPOCH.name):
        last = next((r for r in reversed(records) if r.get("type") == kind), None)
        if last is not None:
            return last.get("epoch"), last.get("step")
    return None, None
