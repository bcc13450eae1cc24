"""Evidence of one arm's run directory, read without ever raising for bad input.

``read_run`` gathers what a run directory holds: a missing, partial, truncated or in-progress run
gives whatever evidence exists plus a list of ``problems`` saying what could not be used. The
telemetry is read with ``engine.runs.telemetry.load_records``, so a resumed run reads as one
uninterrupted run. ``norm_weights`` come from ``model.pt`` (the last epoch's weights): every
state-dict key whose module name contains "norm" and that ends in ``.weight``, the rule the
telemetry's epoch records use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from engine.runs.rundir import RunDir
from engine.runs.schema import HEADER
from engine.runs.status import read_status, run_state
from engine.runs.telemetry import ReadStats, load_records


@dataclass
class RunEvidence:
    """Everything read from one arm's run directory; absent pieces are None."""

    arm: str
    root: Path
    state: str  # engine.runs.status.run_state
    status: dict | None = None
    header: dict | None = None
    records: list[dict] = field(default_factory=list)
    read_stats: ReadStats | None = None
    history: dict | None = None
    metrics: dict | None = None
    config: dict | None = None
    model_state: dict | None = None  # name -> numpy array, normalisation weights only
    recon: dict | None = None  # recon.npz arrays (amplitude / phase images)
    problems: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.root.is_dir()


def _read_json(path: Path, what: str, problems: list[str]) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{what} ({path.name}) is unreadable, not used: {exc}")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{what} ({path.name}) is not a JSON object, not used")
        return None
    return obj


def is_norm_weight(key: str) -> bool:
    """A normalisation layer's affine weight, by state-dict key (see the module docstring)."""
    parts = key.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and "norm" in parts[-2]


def _read_norm_weights(path: Path, problems: list[str]) -> dict | None:
    """Normalisation weights of a checkpoint as numpy arrays; torch is imported only here."""
    if not path.is_file():
        return None
    import pickle
    import zipfile

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        problems.append(f"checkpoint {path.name} is unreadable, no norm-weight statistics: {exc}")
        return None
    if not isinstance(state, Mapping):
        problems.append(f"checkpoint {path.name} is not a state_dict, not used")
        return None
    return {
        k: v.detach().float().numpy()
        for k, v in state.items()
        if is_norm_weight(k) and hasattr(v, "detach")
    }


def _read_recon(path: Path, problems: list[str]) -> dict | None:
    if not path.is_file():
        return None
    import zipfile

    keys = ("recon_amplitude", "recon_phase", "gt_amplitude", "gt_phase")
    optional = ("twin_gt", "trim")  # written since the twin evaluation
    try:
        with np.load(path) as npz:
            return {
                k: np.asarray(npz[k]) for k in keys + tuple(o for o in optional if o in npz.files)
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        problems.append(
            f"reconstruction {path.name} is unreadable, no reconstruction figure: {exc}"
        )
        return None


def read_run(arm: str, run_dir: Path, now: float | None = None) -> RunEvidence:
    """Read one arm's run directory, tolerating anything missing or damaged."""
    run = RunDir(Path(run_dir))
    ev = RunEvidence(arm=arm, root=run.root, state="not started")
    if not run.root.is_dir():
        ev.problems.append(f"no run directory {run.root}: not started")
        return ev
    p = ev.problems
    ev.state = run_state(run.root, now=now)
    ev.status = read_status(run.root)
    if run.telemetry.is_file():
        ev.read_stats = ReadStats()
        try:
            # A resumed run reads as one uninterrupted run (superseded records dropped).
            ev.records = load_records(run.telemetry, ev.read_stats)
        except OSError as exc:
            p.append(f"telemetry is unreadable: {exc}")
        rs = ev.read_stats
        if rs.bad_lines:
            p.append(f"telemetry: {rs.bad_lines} unparseable line(s) skipped")
        if rs.partial_tail and ev.state != "running":
            p.append("telemetry: unterminated last line ignored (truncated file or crash)")
        if rs.unknown_types:
            p.append(f"telemetry: {rs.unknown_types} record(s) of unknown type skipped")
        headers = [r for r in ev.records if r.get("type") == HEADER.name]
        if headers:
            ev.header = headers[0]
        elif ev.records or ev.read_stats.partial_tail:
            p.append("telemetry has no header record: no run id, verdict from events only")
    else:
        p.append("no telemetry.jsonl: no step trace, no detector events, no run id")
    ev.history = _read_json(run.history, "history", p)
    ev.metrics = _read_json(run.metrics, "final metrics", p)
    ev.config = _read_json(run.config, "config", p)
    if ev.config is None and ev.header is not None:
        ev.config = ev.header.get("config")
    if ev.metrics is None and run.root.is_dir():
        why = {
            "running": "still running",
            "failed": "the run failed",
            "oom": "the run ran out of memory",
            "killed": "the run was killed",
            "crashed": "the run crashed",
        }.get(ev.state, "not written")
        p.append(f"no final metrics (metrics.json): {why}")
    ev.model_state = _read_norm_weights(run.model, p)
    if ev.model_state is None and not run.model.is_file():
        p.append("no checkpoint (model.pt)")
    ev.recon = _read_recon(run.recon, p)
    if ev.state == "running":
        p.append("still running: statistics are a snapshot")
    elif ev.state in ("crashed", "stale"):
        p.append(f"run state is {ev.state}: no final status, statistics cover what was written")
    return ev


def run_id(arm: str, header: dict | None) -> str | None:
    """Stable identity of one run of an arm: arm, UTC start time and pid from the header."""
    if not header or header.get("start_time") is None:
        return None
    start = datetime.fromtimestamp(float(header["start_time"]), timezone.utc)
    return f"{arm}-{start.strftime('%Y%m%dT%H%M%S')}Z-{header.get('pid', 0)}"
