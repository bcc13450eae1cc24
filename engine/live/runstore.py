"""The dashboard's run store: every arm of a study, found on disk and polled together.

The dashboard's reader thread calls ``RunStore.poll()`` a few times a second. Each arm
(``ArmRun``) has a ``Tailer`` that returns only new complete lines, which its ``ArmSeries``
folds into columns (engine/live/series.py). The UI never touches these mutable structures: it
receives immutable ``ArmSnapshot``s, and plot screens ask for ``PlotData`` copies, both built
under the arm's lock (engine/live/snapshot.py). Run directories that arms.toml does not name
are discovered beside the study's arms.

Parsing speed matters (a study of a million step records must open in under two seconds): see
engine/live/parse.py for the bulk path.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

from engine.live.series import ArmSeries
from engine.live.snapshot import (
    SPARK_BUCKETS,
    ArmSnapshot,
    PlotData,
    SparkCache,
    effective_state,
    make_plot_data,
    make_snapshot,
)
from engine.live.tail import Tailer
from engine.runs.rundir import RunDir
from engine.runs.status import read_status, run_state

__all__ = ["SPARK_BUCKETS", "ArmRun", "ArmSnapshot", "PlotData", "RunStore"]

DISCOVER_EVERY_S = 5.0


class ArmRun:
    """One arm: its run directory, tailer, series, and the lock the reader holds while
    changing them."""

    def __init__(self, name: str, run_dir: Path, in_study: bool, epochs_hint: int | None):
        self.name = name
        self.run = RunDir(Path(run_dir))
        self.in_study = in_study
        self.epochs_hint = epochs_hint
        self.tailer = Tailer(self.run.telemetry)
        self.series = ArmSeries()
        self.lock = threading.Lock()
        self._sparks = SparkCache()

    def poll(self) -> bool:
        changed = False
        while True:
            chunk = self.tailer.poll()
            with self.lock:
                if chunk.reset:
                    self.series.clear()
                    changed = True
                if chunk.data:
                    changed |= self.series.ingest(chunk.data, chunk.ends)
                self.series.stats.bad_lines += self.tailer.too_long
                self.tailer.too_long = 0
            if not chunk.more:
                return changed

    def snapshot(self, now: float) -> ArmSnapshot:
        state = run_state(self.run.root, now=now)
        with self.lock:
            state = effective_state(self.series, state)
            return make_snapshot(
                self.series,
                name=self.name,
                in_study=self.in_study,
                state=state,
                epochs_hint=self.epochs_hint,
                sparks=self._sparks,
                has_recon=self.run.recon.exists(),
                has_run=self.tailer.identity is not None,
                note=self._note(state),
                now=now,
            )

    def _note(self, state: str) -> str:
        if state not in ("queued", "failed", "killed"):
            return ""
        st = read_status(self.run.root) or {}
        return str(st.get("queue" if state == "queued" else "error") or "")

    def plot_data(self) -> PlotData:
        with self.lock:
            return make_plot_data(self.name, self.series)


class RunStore:
    """Every arm of a study (plus run directories found beside them), polled together."""

    def __init__(self, output_dir: Path, arms: dict[str, int | None], *, discover: bool = True):
        self.output_dir = Path(output_dir)
        self.discover = discover
        self.arms: dict[str, ArmRun] = {
            name: ArmRun(name, self.output_dir / name, True, epochs)
            for name, epochs in arms.items()
        }
        self._last_discover = -math.inf
        self._snapshots: dict[str, ArmSnapshot] = {}

    @classmethod
    def from_study(cls, study, **kwargs) -> RunStore:
        return cls(study.output_dir, {n: c.train.epochs for n, c in study.arms.items()}, **kwargs)

    def _discover(self) -> bool:
        """Run directories under output_dir that arms.toml does not (or no longer) name."""
        found = False
        try:
            entries = sorted(os.scandir(self.output_dir), key=lambda e: e.name)
        except OSError:
            return False
        for entry in entries:
            if entry.name.startswith(".") or entry.name in self.arms or not entry.is_dir():
                continue
            run = RunDir(Path(entry.path))
            if run.telemetry.exists() or run.status.exists():
                self.arms[entry.name] = ArmRun(entry.name, run.root, False, None)
                found = True
        return found

    def poll(self, now: float | None = None) -> bool:
        """Read what is new in every arm; True if any table row changed."""
        now = time.time() if now is None else now
        changed = False
        if self.discover and time.monotonic() - self._last_discover >= DISCOVER_EVERY_S:
            self._last_discover = time.monotonic()
            changed |= self._discover()
        arms = list(self.arms.values())
        for arm in arms:
            arm.poll()
        for arm in arms:
            snap = arm.snapshot(now)
            old = self._snapshots.get(arm.name)
            if old is None or old.change_key != snap.change_key:
                self._snapshots[arm.name] = snap
                changed = True
        return changed

    def snapshots(self) -> tuple[ArmSnapshot, ...]:
        return tuple(self._snapshots[n] for n in self.arms if n in self._snapshots)

    def plot_data(self, name: str) -> PlotData:
        return self.arms[name].plot_data()

    def run_dir(self, name: str) -> Path:
        return self.arms[name].run.root
