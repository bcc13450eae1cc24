"""One verdict per arm, derived from its telemetry events and run state.

Training health and process state are separate axes (engineering-notes section 10): a run can be
running and already collapsed. The verdict answers the study's question, "did it train?".

Labels, by precedence: nan (a non-finite rule fired) > collapsed (constant output) > diverged
(val loss far above its best) > failed (the process failed) > running > incomplete (killed,
crashed, stale or short of its epochs) > healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from engine.detectors import FATAL_RULES

LABELS = ("healthy", "collapsed", "diverged", "nan", "failed", "incomplete", "running")
SYMBOLS = {"healthy": "✔", "collapsed": "✖", "diverged": "↗", "nan": "‼", "failed": "✖",
           "incomplete": "…", "running": "▶"}


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
    return Verdict(label, rule=event.get("rule"), epoch=event.get("epoch"),
                   onset_epoch=event.get("onset_epoch", event.get("epoch")), t=t,
                   t_since_start=(t - start) if (t is not None and start is not None) else None,
                   detail=event.get("message", ""))


def classify_run(records: Iterable[dict], state: str) -> Verdict:
    """Verdict from decoded telemetry records and the run state of engine.status.run_state."""
    start = None
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
    if "nan" in first:
        return _from_event("nan", first["nan"], start)
    if "output_collapse" in first:
        return _from_event("collapsed", first["output_collapse"], start)
    if "divergence" in first:
        return _from_event("diverged", first["divergence"], start)
    if state == "failed":
        return Verdict("failed", detail="the engine process failed; see status.json / run.log")
    if state == "running":
        return Verdict("running")
    if state == "not started":
        return Verdict("incomplete", detail="not started")
    if state == "queued":
        return Verdict("incomplete", detail="queued for a device")
    if not seen_header:
        return Verdict("incomplete", detail=f"{state}, but no readable telemetry")
    if state != "finished" or (epochs_total is not None and epochs_done < epochs_total):
        return Verdict("incomplete", detail=f"{state}, {epochs_done}/{epochs_total} epochs")
    return Verdict("healthy")
