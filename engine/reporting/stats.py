"""Per-arm statistics from a run directory: the original stats dump, plus verdict and evidence.

``read_run`` gathers what a run directory holds and never raises for bad input: a missing, partial,
truncated or in-progress run gives whatever evidence exists plus a list of ``problems`` saying what
could not be used. ``arm_stats`` turns that evidence into the ``stats.json`` object. The verdict is
``engine.scoring.verdict.classify_run`` over the telemetry's own event records, the firings the detectors
wrote live, so the dashboard, the console and this export tell one story.

``stats.json`` keys are a superset of the original stats dump (docs/science.md, 'Artifacts and
the stats dump'): ``val_loss_best``, ``val_loss_final``, ``train_loss_final``, ``has_nan``,
``n_epochs``, ``grad_norm_mean``/``_max``/``_min``, ``amp_``/``phase_`` ``mae``/``ssim``/``psnr``,
``norm_weights`` and ``norm_weight_near_zero``. Conventions:

- Epoch numbers are 0-based, as in the telemetry (summary.md prints them 1-based, as the console).
- Grad norms are the pre-clip global norms of the step records (what clipping saw); without
  telemetry they fall back to history.json's per-epoch means, and ``grad_norm_source`` says which.
- ``norm_weights`` come from ``model.pt`` (the last epoch's weights): every state-dict key whose
  module name contains "norm" and that ends in ``.weight``, the rule the telemetry's epoch records
  use. ``norm_weight_near_zero`` is true when every such tensor has \\|mean\\| < 0.1, and null when
  the model has none (the original's ``all([])`` would have said true).
- Final metrics are of the last epoch's weights (metrics.json); phase metrics carry
  ``phase_vacuous`` (the GT phase is constant, so phase scores mean nothing).
- Twin (engine/scoring/twin.py): ``twin_fraction`` (decidable patches on the twin branch),
  ``twin_undecidable_fraction``, and ``amp_ssim_vs_twin`` / ``amp_mae_vs_twin``, the stitched
  prediction scored against the all-twin image, from metrics.json's "twin" block; the fractions
  fall back to the last telemetry ``metrics`` record. Null for runs evaluated before the twin
  block existed (``fnotui evaluate`` re-scores them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from engine.runs.rundir import RunDir
from engine.runs.status import read_status, run_state
from engine.runs.telemetry import ReadStats, iter_records, resolve_segments
from engine.scoring.detectors import FATAL_RULES
from engine.scoring.verdict import Verdict, classify_run, final_twin

STATS_FILE = "stats.json"
NEAR_ZERO_MEAN = 0.1  # the original stats script's |mean| bound for "norm weight near zero"
# Metrics copied from metrics.json as amp_<name> / phase_<name>.
PAIR_METRICS = ("mae", "mse", "psnr", "ssim", "ms_ssim", "frc50", "frc1over7")
# Verdict labels that mean the arm failed to train, and get a failure-curve paragraph.
FAILED_LABELS = ("collapsed", "diverged", "nan")


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
            ev.records = resolve_segments(iter_records(run.telemetry, ev.read_stats))
        except OSError as exc:
            p.append(f"telemetry is unreadable: {exc}")
        rs = ev.read_stats
        if rs.bad_lines:
            p.append(f"telemetry: {rs.bad_lines} unparseable line(s) skipped")
        if rs.partial_tail and ev.state != "running":
            p.append("telemetry: unterminated last line ignored (truncated file or crash)")
        if rs.unknown_types:
            p.append(f"telemetry: {rs.unknown_types} record(s) of unknown type skipped")
        headers = [r for r in ev.records if r.get("type") == "header"]
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


def _float(x) -> float:
    return math.nan if x is None else float(x)


def _finite_or_none(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def step_frame(records: Iterable[dict]) -> pl.DataFrame:
    """Step records as a frame: epoch, step, loss, grad_norm, grad_norm_clipped, lr, t
    (non-finite values kept as NaN, absent ones null)."""
    cols: dict[str, list] = {
        k: [] for k in ("epoch", "step", "loss", "grad_norm", "grad_norm_clipped", "lr", "t")
    }
    for r in records:
        if r.get("type") == "step":
            for k, v in cols.items():
                v.append(r.get(k))
    schema = {"epoch": pl.Int64, "step": pl.Int64, **{k: pl.Float64 for k in list(cols)[2:]}}
    return pl.DataFrame(cols, schema=schema, strict=False)


def epoch_frame(records: Iterable[dict], history: dict | None = None) -> pl.DataFrame:
    """Per-epoch series from the epoch records, or from history.json when it has more epochs
    (a telemetry file cut short); columns epoch, train_loss, val_loss, grad_norm, lr,
    pred_amp_std, val_amp_mae, t (null where a source lacks the field)."""
    names = ("train_loss", "val_loss", "grad_norm", "lr", "pred_amp_std", "val_amp_mae")
    schema = {"epoch": pl.Int64, **{k: pl.Float64 for k in names}, "t": pl.Float64}
    rows = {}
    for r in records:
        if r.get("type") == "epoch" and isinstance(r.get("epoch"), int):
            rows[r["epoch"]] = r  # a resumed run's repeated epoch: the later record wins
    from_telemetry = [rows[e] for e in sorted(rows)]
    hist_len = 0
    if history:
        # val_amp_mae is newer than the others: a run resumed from an older checkpoint has a
        # shorter list of it, which must not hide the other series.
        lengths = [
            len(history[k])
            for k in names
            if k != "val_amp_mae" and isinstance(history.get(k), list)
        ]
        hist_len = min(lengths) if lengths else 0
    if hist_len > len(from_telemetry):
        # history.json is strict JSON written by atomic_write_json: a null there was NaN or inf.
        cols = {
            "epoch": list(range(hist_len)),
            **{
                k: _padded([math.nan if v is None else v for v in history[k][:hist_len]], hist_len)
                if isinstance(history.get(k), list)
                else [None] * hist_len
                for k in names
            },
            "t": [None] * hist_len,
        }
        return pl.DataFrame(cols, schema=schema, strict=False)
    cols = {k: [r.get(k) for r in from_telemetry] for k in schema}
    return pl.DataFrame(cols, schema=schema, strict=False)


def _padded(values: list, n: int) -> list:
    """A newer history key of a resumed run starts late: pad its front with NaN."""
    return [math.nan] * (n - len(values)) + values


def norm_weight_summary(weights: Mapping[str, np.ndarray]) -> dict:
    """{key: {mean, std, abs_max}} of every normalisation weight (std over elements, ddof 0)."""
    out = {}
    for key in sorted(weights):
        w = np.asarray(weights[key], dtype=np.float64)
        out[key] = {
            "mean": float(w.mean()),
            "std": float(w.std()),
            "abs_max": float(np.abs(w).max()),
        }
    return out


def norm_weight_near_zero(summary: Mapping[str, Mapping[str, float]]) -> bool | None:
    if not summary:
        return None
    return all(abs(s["mean"]) < NEAR_ZERO_MEAN for s in summary.values())


def _nonfinite_in(*series: pl.Series) -> bool:
    return any(s.is_nan().any() or s.is_infinite().any() for s in series if len(s))


def _at(frame: pl.DataFrame, column: str, epoch: int | None) -> float | None:
    if epoch is None:
        return None
    row = frame.filter(pl.col("epoch") == epoch)
    if not row.height or row[column][0] is None:
        return None
    return float(row[column][0])  # NaN stays NaN here (the report says so; JSON gets null)


def failure_curve(epochs: pl.DataFrame, steps: pl.DataFrame, verdict: Verdict) -> dict | None:
    """The numbers of a failed arm's story: best epoch, onset, losses before and after, the grad
    norm at the collapse. None for arms that did not fail."""
    if verdict.label not in FAILED_LABELS or epochs.height == 0:
        return None
    onset = verdict.onset_epoch if verdict.onset_epoch is not None else verdict.epoch
    fired = verdict.epoch
    finite_val = epochs.filter(pl.col("val_loss").is_finite())
    before = finite_val.filter(pl.col("epoch") < (onset if onset is not None else 0))
    best_pool = before if before.height else finite_val
    best_epoch = int(best_pool.sort("val_loss")["epoch"][0]) if best_pool.height else None
    last_before = int(before["epoch"].max()) if before.height else None
    after = epochs.filter(pl.col("epoch") >= (onset or 0))
    curve = {
        "onset_epoch": onset,
        "fired_epoch": fired,
        "best_epoch_before_onset": best_epoch,
        "val_loss_best_before": _at(epochs, "val_loss", best_epoch),
        "val_loss_before": _at(epochs, "val_loss", last_before),
        "train_loss_before": _at(epochs, "train_loss", last_before),
        "pred_amp_std_before": _at(epochs, "pred_amp_std", last_before),
        "val_loss_at_onset": _at(epochs, "val_loss", onset),
        "train_loss_at_onset": _at(epochs, "train_loss", onset),
        "val_loss_after_mean": _finite_or_none(
            after["val_loss"].filter(after["val_loss"].is_finite()).mean()
        )
        if after.height
        else None,
        "val_loss_final": _at(epochs, "val_loss", int(epochs["epoch"][-1])),
        "pred_amp_std_after": _at(epochs, "pred_amp_std", fired),
        "grad_norm_at_onset": _at(epochs, "grad_norm", onset),
        "grad_norm_before": _at(epochs, "grad_norm", last_before),
    }
    if steps.height and onset is not None:
        lo = max(0, onset - 1)
        hi = fired if fired is not None else onset
        window = steps.filter(pl.col("epoch").is_between(lo, hi))
        earlier = steps.filter(pl.col("epoch") < lo)
        g = window["grad_norm"].drop_nulls()
        g = g.filter(g.is_finite())
        l_win = window["loss"].drop_nulls()
        l_win = l_win.filter(l_win.is_finite())
        l_ref = earlier["loss"].drop_nulls()
        l_ref = l_ref.filter(l_ref.is_finite())
        curve.update(
            {
                "window_epochs": [lo, hi],
                "grad_norm_max_window": _finite_or_none(g.max()) if len(g) else None,
                "step_loss_max_window": _finite_or_none(l_win.max()) if len(l_win) else None,
                "step_loss_median_before_window": _finite_or_none(l_ref.median())
                if len(l_ref)
                else None,
            }
        )
    return curve


def _pairs(metrics: dict | None) -> dict:
    out = {}
    for name in PAIR_METRICS:
        pair = (metrics or {}).get(name)
        ok = isinstance(pair, list) and len(pair) == 2
        out[f"amp_{name}"] = _finite_or_none(pair[0]) if ok and pair[0] is not None else None
        out[f"phase_{name}"] = _finite_or_none(pair[1]) if ok and pair[1] is not None else None
    return out


def _twin_stats(metrics: dict | None, records: list[dict]) -> dict:
    """The twin keys of stats.json (see the module docstring)."""
    twin = (metrics or {}).get("twin")
    final = next((r for r in reversed(records) if r.get("type") == "metrics"), None)
    fraction, undecidable = final_twin(final, metrics)
    out = {
        "twin_fraction": fraction,
        "twin_undecidable_fraction": undecidable,
        "amp_ssim_vs_twin": None,
        "amp_mae_vs_twin": None,
    }
    if isinstance(twin, dict):
        vs_twin = _pairs(twin.get("metrics"))
        out["amp_ssim_vs_twin"] = vs_twin["amp_ssim"]
        out["amp_mae_vs_twin"] = vs_twin["amp_mae"]
    return out


def _verdict_dict(v: Verdict) -> dict:
    return {
        "label": v.label,
        "text": v.text,
        "rule": v.rule,
        "epoch": v.epoch,
        "onset_epoch": v.onset_epoch,
        "t": v.t,
        "t_since_start": v.t_since_start,
        "detail": v.detail,
    }


def arm_stats(ev: RunEvidence) -> dict:
    """The stats.json object of one arm (see the module docstring for the conventions)."""
    verdict = classify_run(ev.records, ev.state, ev.metrics)
    if ev.header is None and verdict.label in ("healthy", "running"):
        # No telemetry, no detector evidence: "healthy" would be a claim nothing supports.
        verdict = Verdict("incomplete", detail=f"{ev.state}; no telemetry to judge training by")
    steps = step_frame(ev.records)
    epochs = epoch_frame(ev.records, ev.history)
    cfg = ev.config or {}
    train_cfg = cfg.get("train") or {}

    val = epochs["val_loss"].drop_nulls()
    train = epochs["train_loss"].drop_nulls()
    last_epoch = epochs.tail(1)
    finite_val = epochs.filter(pl.col("val_loss").is_finite())
    best_row = finite_val.sort("val_loss").head(1)

    grad = steps["grad_norm"].drop_nulls()
    source = "steps (pre-clip)"
    if not len(grad):
        grad = epochs["grad_norm"].drop_nulls()
        source = "epoch means (no step records)" if len(grad) else None
    finite_grad = grad.filter(grad.is_finite())

    events: dict[str, int] = {}
    for r in ev.records:
        if r.get("type") == "event" and r.get("rule"):
            events[r["rule"]] = events.get(r["rule"], 0) + 1
    has_nan = _nonfinite_in(val, train, grad, steps["loss"].drop_nulls()) or any(
        rule in events for rule in FATAL_RULES
    )

    norms = norm_weight_summary(ev.model_state) if ev.model_state is not None else None
    norm_source = "model.pt"
    if norms is None:
        last = [r for r in ev.records if r.get("type") == "epoch" and r.get("norm_weights")]
        norms = last[-1]["norm_weights"] if last else {}
        norm_source = "last epoch record" if last else None
    failed = verdict.label in FAILED_LABELS
    metrics = ev.metrics or {}
    header = ev.header or {}
    stats = {
        "arm": ev.arm,
        "run_id": run_id(ev.arm, ev.header),
        "state": ev.state,
        "verdict": _verdict_dict(verdict),
        "collapse_rule": verdict.rule if failed else None,
        "collapse_epoch": verdict.epoch if failed else None,
        "collapse_onset_epoch": verdict.onset_epoch if failed else None,
        "collapse_time_s": verdict.t_since_start if failed else None,
        # the original stats dump
        "val_loss_best": _finite_or_none(best_row["val_loss"][0]) if best_row.height else None,
        # The last epoch's values, even when non-finite (null then), never an earlier one's.
        "val_loss_final": _finite_or_none(last_epoch["val_loss"][0])
        if last_epoch.height and last_epoch["val_loss"][0] is not None
        else None,
        "train_loss_final": _finite_or_none(last_epoch["train_loss"][0])
        if last_epoch.height and last_epoch["train_loss"][0] is not None
        else None,
        "has_nan": bool(has_nan),
        "n_epochs": int(epochs.height),
        "grad_norm_mean": _finite_or_none(finite_grad.mean()) if len(finite_grad) else None,
        "grad_norm_max": _finite_or_none(finite_grad.max()) if len(finite_grad) else None,
        "grad_norm_min": _finite_or_none(finite_grad.min()) if len(finite_grad) else None,
        **_pairs(ev.metrics),
        "norm_weights": norms,
        "norm_weight_near_zero": norm_weight_near_zero(norms),
        # additions
        "best_epoch": int(best_row["epoch"][0]) if best_row.height else None,
        "epochs_planned": train_cfg.get("epochs"),
        "grad_norm_source": source,
        "grad_norm_nonfinite": int(len(grad) - len(finite_grad)),
        "norm_weights_source": norm_source,
        "phase_vacuous": metrics.get(
            "phase_vacuous", (header.get("dataset") or {}).get("phase_vacuous")
        ),
        "metrics_weights": "last epoch" if ev.metrics else None,
        **_twin_stats(ev.metrics, ev.records),
        "pred_amp_std_final": _finite_or_none(last_epoch["pred_amp_std"][0])
        if last_epoch.height and last_epoch["pred_amp_std"][0] is not None
        else None,
        "target_amp_std": _finite_or_none(header.get("target_amp_std"))
        if header.get("target_amp_std") is not None
        else None,
        "events": events,
        "failure_curve": failure_curve(epochs, steps, verdict),
        "parameters": header.get("parameters"),
        "recipe_hash": (header.get("dataset") or {}).get("recipe_hash"),
        "telemetry": None
        if ev.read_stats is None
        else {
            "records": len(ev.records),
            "bad_lines": ev.read_stats.bad_lines,
            "partial_tail": ev.read_stats.partial_tail,
            "unknown_types": ev.read_stats.unknown_types,
        },
        "problems": list(ev.problems),
    }
    return stats


def constant_output_val_loss(
    diffraction: np.ndarray,
    probe: np.ndarray,
    loss_mode: str,
    batch: int,
    gain: float = 1.0,
    gain_mode: str = "constant",
) -> tuple[float, float]:
    """(val loss, amplitude) of the best constant-amplitude output: the collapse level.

    A constant object c gives the diffraction c * A with A the probe's own far field, so the loss
    is a one-dimensional, unimodal function of c (convex for MAE; convex in c^2 for Poisson).
    It is minimised by golden-section search in log c, with the validation loop's batching and
    per-batch normalisation (engine.training.train.validate) and physics gain, so the number compares 1:1
    with val_loss. Under the batch-length gain a constant output still meets a different gain
    on a short last batch; the search finds the best single constant for that.
    """
    import torch

    from engine.sim.physics import ForwardModel, far_field_amplitude, get_loss

    loss_fn = get_loss(loss_mode)
    physics = ForwardModel(torch.from_numpy(np.asarray(probe)), gain, gain_mode)
    y = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
    with torch.no_grad():
        # The far field of a unit object (the probe's own) without any gain; each batch
        # applies its own gain below.
        unit = far_field_amplitude(physics.probe)

        def loss(log_c: float) -> float:
            values = []
            for s in range(0, len(y), batch):
                yb = y[s : s + batch]
                pred = unit * (math.exp(log_c) * physics.gain_for(len(yb)))
                values.append(loss_fn(pred.expand(len(yb), -1, -1), yb))
            return float(torch.stack(values).mean())

        centre = math.log(float(y.mean()) / max(float(unit.mean()), 1e-30))
        lo, hi = centre - 7.0, centre + 7.0  # a factor of ~1000 either way
        ratio = (math.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fa, fb = loss(a), loss(b)
        for _ in range(48):  # interval shrinks to ~1e-9 of its width
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - ratio * (hi - lo)
                fa = loss(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + ratio * (hi - lo)
                fb = loss(b)
        best = (a + b) / 2.0
        return loss(best), math.exp(best)


def true_object_val_loss(
    diffraction: np.ndarray,
    amplitude: np.ndarray,
    phase: np.ndarray,
    probe: np.ndarray,
    loss_mode: str,
    batch: int,
    gain: float = 1.0,
    gain_mode: str = "constant",
) -> float:
    """Val loss of the true object patches: the noise floor no generator can beat on average.
    Under a physics gain the generator must output object / gain to fit the data; a generator
    cannot see its batch, so under the batch-length gain the best it can do is object / (gain
    of a full batch), which the short last batch then sees through another gain. That is the
    floor computed here (for gain 1, the true object itself)."""
    import torch

    from engine.sim.physics import ForwardModel, get_loss

    loss_fn = get_loss(loss_mode)
    physics = ForwardModel(torch.from_numpy(np.asarray(probe)), gain, gain_mode)
    y = torch.from_numpy(np.ascontiguousarray(diffraction, dtype=np.float32))
    obj = torch.from_numpy(np.asarray(amplitude, dtype=np.float32)) * torch.exp(
        1j * torch.from_numpy(np.asarray(phase, dtype=np.float32))
    )
    obj = obj / physics.gain_for(batch)
    with torch.no_grad():
        values = [
            loss_fn(physics(obj[s : s + batch]), y[s : s + batch]) for s in range(0, len(y), batch)
        ]
        return float(torch.stack(values).mean())
