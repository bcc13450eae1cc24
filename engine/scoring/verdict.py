"""One verdict per arm, derived from its telemetry events and run state.

Training health and process state are separate axes (docs/engineering.md, 'Run states'): a run
can be running and already collapsed. The verdict answers the study's question, "did it train?".

Labels, by precedence: nan (a non-finite rule fired) > collapsed (constant output) > diverged
(val loss far above its best) > failed (the process failed or ran out of memory) > running > incomplete (killed,
crashed, stale or short of its epochs) > twin / mixed twin > healthy.

A run that finished cleanly can still have learned the object's *twin* (engine/scoring/twin.py), which a
diffraction-amplitude loss cannot tell from the object when the probe is centrosymmetric. It is
named for what it is, never "healthy" and never a plain bad reconstruction: "twin" when at least
TWIN_FULL of the decidable patches are on the twin branch, "mixed twin" when more than
TWIN_PARTIAL (and less than TWIN_FULL) are. The fraction comes from metrics.json's "twin" block
when the caller has it, else from the last telemetry ``metrics`` record (``twin_fraction`` and
``twin_undecidable_fraction`` in its ``metrics``; a re-evaluation appends a newer one). When fewer
than TWIN_MIN_DECIDABLE of the patches could be decided, the fraction rests on too few patches to
name a branch, and the detail says so instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from engine.scoring.detectors import FATAL_RULES

# Every verdict label, with the glyph its text starts with; LABELS is their order.
SYMBOLS = {
    "healthy": "✔",
    "twin": "⇆",
    "mixed twin": "◐",
    "collapsed": "✖",
    "diverged": "↗",
    "nan": "‼",
    "failed": "✖",
    "incomplete": "…",
    "running": "▶",
}
# Verdict labels that mean the arm failed to train: a collapse fraction counts these, and the
# report gives each a failure-curve paragraph.
FAILED_LABELS = ("collapsed", "diverged", "nan")
LABELS = tuple(SYMBOLS)
TWIN_FULL = 0.9  # twin fraction at or above which the run reconstructs the twin
TWIN_PARTIAL = 0.1  # above this (and below TWIN_FULL), part of the image is the twin
TWIN_MIN_DECIDABLE = 0.5  # fraction of patches that must be decidable to name a branch


@dataclass(frozen=True)
class Verdict:
    label: str
    rule: str | None = None
    epoch: int | None = None  # epoch of the firing (0-based)
    onset_epoch: int | None = None  # first epoch of the condition
    t: float | None = None  # wall time of the firing
    t_since_start: float | None = None  # seconds from run start to the firing
    detail: str = ""

    @property
    def text(self) -> str:
        """The label with a symbol, so no display says it by colour alone."""
        return f"{SYMBOLS[self.label]} {self.label}"


def _from_event(label: str, event: dict, start: float | None) -> Verdict:
    t = event.get("t")
    return Verdict(
        label,
        rule=event.get("rule"),
        epoch=event.get("epoch"),
        onset_epoch=event.get("onset_epoch", event.get("epoch")),
        t=t,
        t_since_start=(t - start) if (t is not None and start is not None) else None,
        detail=event.get("message", ""),
    )


def classify_run(records: Iterable[dict], state: str, metrics: dict | None = None) -> Verdict:
    """Verdict from decoded telemetry records and the run state of engine.runs.status.run_state;
    ``metrics`` is the run's metrics.json object when the caller has read it."""
    start = None
    final: dict | None = None  # the last telemetry metrics record
    seen_header = False
    epochs_total = None
    epochs_done = 0
    first: dict[str, dict] = {}
    for r in records:
        kind = r.get("type")
        if kind == "header":
            seen_header = True
            start = r.get("start_time")
            epochs_total = (r.get("config") or {}).get("train", {}).get("epochs")
        elif kind == "epoch":
            epochs_done = max(epochs_done, int(r.get("epoch", -1)) + 1)
        elif kind == "event":
            rule = r.get("rule")
            key = "nan" if rule in FATAL_RULES else rule
            first.setdefault(key, r)
        elif kind == "metrics":
            final = r
    if "nan" in first:
        return _from_event("nan", first["nan"], start)
    if "output_collapse" in first:
        return _from_event("collapsed", first["output_collapse"], start)
    if "divergence" in first:
        return _from_event("diverged", first["divergence"], start)
    if state == "failed":
        return Verdict("failed", detail="the engine process failed; see status.json / run.log")
    if state == "oom":  # the device ran out of memory: the run did not train to its end
        return Verdict("failed", detail="out of memory; see status.json for the bytes asked")
    if state == "running":
        return Verdict("running")
    if state == "not started":
        return Verdict("incomplete", detail="not started")
    if state == "queued":
        # here a free device, on a cluster the scheduler: the row's note says which
        return Verdict("incomplete", detail="queued, waiting for its turn to start")
    # "killed" is the engine's state name for a stop (the user's s, or a signal)
    said = "stopped" if state == "killed" else state
    if not seen_header:
        return Verdict("incomplete", detail=f"{said}, but no readable telemetry")
    if state != "finished" or (epochs_total is not None and epochs_done < epochs_total):
        return Verdict("incomplete", detail=f"{said}, {epochs_done}/{epochs_total} epochs")
    return twin_verdict(*final_twin(final, metrics))


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def final_twin(
    record: dict | None, metrics: dict | None = None
) -> tuple[float | None, float | None]:
    """(twin fraction, undecidable fraction) of the final evaluation: metrics.json's "twin" block
    if given, else the telemetry metrics record's ``twin_fraction`` and
    ``twin_undecidable_fraction``; None where absent or not finite."""
    twin = (metrics or {}).get("twin")
    if isinstance(twin, dict):
        return _number(twin.get("fraction")), _number(twin.get("undecidable_fraction"))
    headline = (record or {}).get("metrics")
    if isinstance(headline, dict):
        return (
            _number(headline.get("twin_fraction")),
            _number(headline.get("twin_undecidable_fraction")),
        )
    return None, None


def twin_verdict(fraction: float | None, undecidable: float | None) -> Verdict:
    """The verdict of a run that trained to the end without an alarm (see the module doc)."""
    if fraction is None:
        return Verdict("healthy")
    if undecidable is not None and 1.0 - undecidable < TWIN_MIN_DECIDABLE:
        return Verdict(
            "healthy",
            detail=f"twin branch not judged: {undecidable:.0%} of the patches are undecidable",
        )
    share = f"{fraction:.0%} of the decidable patches reconstruct the twin conj(O(-r))"
    if fraction >= TWIN_FULL:
        return Verdict("twin", rule="twin_fraction", detail=share + ", not the object")
    if fraction > TWIN_PARTIAL:
        return Verdict("mixed twin", rule="twin_fraction", detail=share + ", the rest the object")
    return Verdict("healthy", detail=share if fraction > 0 else "")
