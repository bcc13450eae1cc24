"""The dashboard's run store: every arm of a study, found on disk and polled together.

The dashboard's reader thread calls ``RunStore.poll()`` a few times a second. Each arm
(``ArmRun``) has a ``Tailer`` that returns only new complete lines, which its ``ArmSeries``
folds into columns (engine/live/series.py). The UI never touches these mutable structures: it
receives immutable ``ArmSnapshot``s, and plot screens ask for ``PlotData`` copies, both built
under the arm's lock (engine/live/snapshot.py). Run directories that arms.toml does not name
are discovered beside the study's arms.

Parsing speed matters (a study of a million step records must open in under two seconds): see
engine/live/parse.py for the bulk path. Even so, the first read of a large study takes seconds,
so it is published run by run: every run first gets a placeholder row from its status.json
(``placeholder_snapshot``: ``loaded`` False, no telemetry value), then the runs are read in
the order the dashboard asks for (``prioritize``: the rows on screen first) and each row is
replaced by its true one as its run is read. The dashboard has that read done by a child
process (``prefetch``, engine/live/prefetch.py), which keeps it off the UI's core; the runs
the child does not deliver are read here, in threads.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.live.prefetch import Prefetch, RunState, move_to_front
from engine.live.series import ArmSeries
from engine.live.snapshot import (
    SPARK_BUCKETS,
    ArmSnapshot,
    PlotData,
    SparkCache,
    effective_state,
    make_plot_data,
    make_snapshot,
    placeholder_snapshot,
)
from engine.live.tail import Tailer
from engine.runs.rundir import RunDir
from engine.runs.status import read_status, run_state, silence

log = logging.getLogger("fnotui.reader")

__all__ = ["SPARK_BUCKETS", "ArmRun", "ArmSnapshot", "PlotData", "RunStore"]

DISCOVER_EVERY_S = 5.0
# Threads for the first read of a study (see RunStore._first_read).
FIRST_READ_THREADS = min(4, os.cpu_count() or 1)
# Silence from the first read's child process after which the store's own threads read the
# runs it has not taken (a huge run or a blocking file must not hold the others back).
PREFETCH_STALL_S = 3.0


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
        self.error = ""  # why the last poll could not read the telemetry ("" when it could)
        self.long_lines = 0  # lines over the tailer's limit, dropped
        self._seen = False  # the telemetry file existed once
        self._memo: tuple[tuple, ArmSnapshot] | None = None  # (what the row depends on, row)
        # Set once the store's first read of this run is done: until then its row is a
        # placeholder (a partly ingested series must never be shown as the run's values).
        self.read = False

    def poll(self) -> bool:
        """Read what is new; never raises: a run that cannot be read gets a reason (``error``,
        shown on the arm) and is polled again next time."""
        try:
            changed = self._poll()
        except Exception as exc:
            error = _read_error(self.run.telemetry, exc)
            if error != self.error:
                log.warning("%s: %s", self.name, error, exc_info=not isinstance(exc, OSError))
                self.error = error
                return True
            return False
        if self.error and not (self._seen and self.tailer.identity is None):
            self.error = ""
            changed = True
        return changed

    def _poll(self) -> bool:
        changed = False
        while True:
            chunk = self.tailer.poll()
            if chunk.missing and self._seen and not self.error:
                self.error = f"{self.run.telemetry.name} vanished (run directory moved or removed?)"
                log.warning("%s: %s", self.name, self.error)
                changed = True
            self._seen |= self.tailer.identity is not None
            with self.lock:
                if chunk.reset:
                    self.series.clear()
                    changed = True
                if chunk.data:
                    changed |= self.series.ingest(chunk.data, chunk.ends)
                self.series.stats.bad_lines += self.tailer.too_long
                self.long_lines += self.tailer.too_long
                self.tailer.too_long = 0
            if not chunk.more:
                return changed

    def adopt(self, state: RunState) -> None:
        """Go on from what another reader (the first read's child process) read of this run,
        as if this arm's own ``poll`` had read it."""
        with self.lock:
            # a version past the old series' so that nothing keyed on it mistakes the two
            state.series.version += self.series.version
            self.tailer, self.series = state.tailer, state.series
            self.error, self.long_lines, self._seen = state.error, state.long_lines, state.seen
            self._sparks = SparkCache()
            self._memo = None
        for level, message in state.logs:  # what the other reader logged, in our log
            log.log(level, "%s", message)
        self.read = True

    def snapshot(self, now: float) -> ArmSnapshot:
        """The arm's row; the previous row object while nothing it shows can have changed (a
        rebuild runs the verdict over every epoch: most of an idle poll of a large study)."""
        state = run_state(self.run.root, now=now)
        if not self.read:
            return self._placeholder(state, now)
        with self.lock:
            state = effective_state(self.series, state)
            note = self._note(state, now)
            has_recon = self.run.recon.exists()
            has_run = self.tailer.identity is not None
            # A running row's ETA and "updated N s ago" move with the clock: once a second.
            key = (
                self.series.version,
                state,
                note,
                has_recon,
                has_run,
                int(now) if state == "running" else None,
            )
            return self._memoized(
                key,
                lambda: make_snapshot(
                    self.series,
                    sparks=self._sparks,
                    now=now,
                    **self._row(state, note, has_recon, has_run),
                ),
            )

    def _placeholder(self, state: str, now: float) -> ArmSnapshot:
        """The row before the first read: what status.json and two stats say, nothing else."""
        with self.lock:
            note = self._note(state, now)
        has_recon, has_run = self.run.recon.exists(), self.run.telemetry.exists()
        key = ("placeholder", state, note, has_recon, has_run)
        return self._memoized(
            key,
            lambda: placeholder_snapshot(
                status=read_status(self.run.root), **self._row(state, note, has_recon, has_run)
            ),
        )

    def _row(self, state: str, note: str, has_recon: bool, has_run: bool) -> dict:
        """What every row of this run is built with, read or not."""
        return dict(
            name=self.name,
            in_study=self.in_study,
            state=state,
            epochs_hint=self.epochs_hint,
            has_recon=has_recon,
            has_run=has_run,
            note=note,
        )

    def _memoized(self, key: tuple, build) -> ArmSnapshot:
        """The previous row object while ``key`` (what the row shows) is unchanged."""
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, build())
        return self._memo[1]

    def _note(self, state: str, now: float) -> str:
        """One line: why the arm waits or failed, how long its host has been silent, and what
        the reader could not use (the caller holds the lock)."""
        parts = []
        if state in ("queued", "failed", "oom", "killed"):
            st = read_status(self.run.root) or {}
            key = "queue" if state == "queued" else "error"
            parts.append(str(st.get(key) or st.get("slurm_reason") or ""))
        elif state == "stale":
            age = silence(self.run.root, now)
            parts.append(
                "stale: no word from the engine's host"
                + (f" for {age:.0f} s" if age is not None else " yet")
            )
        parts.append(self.error or self._telemetry_note(state))
        return " · ".join(p for p in parts if p)

    def _telemetry_note(self, state: str) -> str:
        s, problems = self.series, []
        bad = s.stats.bad_lines - self.long_lines
        if bad:
            problems.append(f"{bad} unreadable lines (not JSON: truncated or binary?)")
        if self.long_lines:
            problems.append(
                f"{self.long_lines} lines over {self.tailer.max_line >> 20} MiB dropped"
            )
        if s.headers > 1:
            problems.append(f"{s.headers} header records: showing the run after the last")
        if s.crlf:
            problems.append("CRLF line ends (read as LF)")
        if self.tailer.carry and state not in ("running", "queued"):
            problems.append(f"last line incomplete ({len(self.tailer.carry)} bytes, no newline)")
        return ("telemetry: " + "; ".join(problems)) if problems else ""

    def plot_data(self) -> PlotData:
        with self.lock:
            return make_plot_data(self.name, self.series)


def _read_error(path: Path, exc: Exception) -> str:
    """A one-line reason a run's telemetry could not be read."""
    if isinstance(exc, IsADirectoryError):
        return f"cannot read {path.name}: it is a directory"
    if isinstance(exc, OSError):
        return f"cannot read {path.name}: {exc.strerror or exc}"
    return f"reader error on {path.name}: {type(exc).__name__}: {exc}"


class RunStore:
    """Every arm of a study (plus run directories found beside them), polled together."""

    def __init__(
        self,
        output_dir: Path,
        arms: dict[str, int | None],
        *,
        discover: bool = True,
        prefetch: Prefetch | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.discover = discover
        # The child process that does the first read (see _first_read); None once it is done.
        self._prefetch = prefetch
        self._child_has: set[str] = set()  # runs the child took and has not sent back yet
        self._child_heard = 0.0  # monotonic time of its last frame
        self.arms: dict[str, ArmRun] = {
            name: ArmRun(name, self.output_dir / name, True, epochs)
            for name, epochs in arms.items()
        }
        self._last_discover = -math.inf
        self._snapshots: dict[str, ArmSnapshot] = {}
        # The first read runs in its own threads while the dashboard's reader thread takes
        # snapshots (and the screen reorders what is left to read): arms, _snapshots and
        # _pending change under this lock.
        self._lock = threading.Lock()
        self._pending: list[str] = []  # runs the first read has still to start, in order
        self._first_started = False
        self._first_done = False
        self.progress = 0  # bumped whenever a row is replaced: "is there anything new to show"
        # Called with a run's name just before the first read reads it in this process (tests
        # hold the read there, to see the rows before and after; None in the dashboard). Runs
        # the prefetch child delivers do not pass here.
        self.before_read: Callable[[str], None] | None = None

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
                arm = ArmRun(entry.name, run.root, False, None)
                with self._lock:
                    self.arms[entry.name] = arm
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
        if not self._first_done:
            self._first_read(arms, now)
            return True
        for arm in arms:
            changed |= arm.poll()
            arm.read = True  # a run discovered after the first read is read here
        for arm in arms:
            changed |= self._publish(arm, now)
        return changed

    def _publish(self, arm: ArmRun, now: float) -> bool:
        """Make the arm's current row the one ``snapshots`` hands out; True if it changed."""
        try:
            snap = arm.snapshot(now)
        except Exception as exc:  # a bug on odd input: keep the last row, say why
            error = _read_error(arm.run.telemetry, exc)
            if error != arm.error:
                log.exception("%s: %s", arm.name, error)
                arm.error = error
            return False
        with self._lock:
            old = self._snapshots.get(arm.name)
            if old is not None and old.change_key == snap.change_key:
                return False
            self._snapshots[arm.name] = snap
            self.progress += 1
        return True

    def _first_read(self, arms: list[ArmRun], now: float) -> None:
        """Every run's placeholder row at once, then every backlog, in threads, each run's
        true row published as soon as it is read. Threads: polars releases the GIL while it
        parses one run, so another run's Python work (tailing, decoding its epoch records)
        proceeds on the other core. With a ``prefetch`` child process, the child reads them
        (it is given the runs before the placeholders are made) and the threads read what it
        did not deliver."""
        with self._lock:
            # runs that prioritize() named before the read began stay in front
            self._pending = move_to_front([a.name for a in arms], self._pending)
            order = [(n, self.arms[n].run.root) for n in self._pending]
        if self._prefetch is not None:  # not under the lock: a long list may wait for the pipe
            self._prefetch.read(order)
        for arm in arms:
            self._publish(arm, now)
        with self._lock:
            self._first_started = True
        if self._prefetch is not None:
            self._read_with_child(self._prefetch)
        self._read_in_threads()  # all of them without a child; what it did not deliver with one
        self._first_done = True

    def _read_in_threads(self) -> None:
        threads = min(FIRST_READ_THREADS, len(self._pending))
        if threads <= 1:
            self._read_pending()
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="fnotui-read") as pool:
                for future in [pool.submit(self._read_pending) for _ in range(threads)]:
                    future.result()

    def _read_with_child(self, prefetch: Prefetch) -> None:
        """The child's runs adopted as they come; if it goes silent for PREFETCH_STALL_S (a
        huge run, a file that blocks), it finishes the run in hand and our threads read the
        runs it has not taken meanwhile."""
        self._child_heard = time.monotonic()
        adopter = threading.Thread(
            target=self._adopt_prefetched, args=(prefetch,), name="fnotui-adopt", daemon=True
        )
        adopter.start()
        while adopter.is_alive():
            adopter.join(0.2)
            if adopter.is_alive() and time.monotonic() - self._child_heard > PREFETCH_STALL_S:
                log.warning(
                    "first read: nothing from the child process for %g s; the other runs "
                    "are read here",
                    PREFETCH_STALL_S,
                )
                prefetch.stop()
                self._read_in_threads()
                with self._lock:
                    in_hand = bool(self._child_has)
                if not in_hand:  # it never took a run (stuck starting?): nothing to wait for
                    prefetch.abandon()
                adopter.join()

    def _adopt_prefetched(self, prefetch: Prefetch) -> None:
        """What the child sends, until it is done: a run it takes is no longer ours to read,
        a run it has read is adopted and its row published."""
        try:
            for name, state in prefetch:
                self._child_heard = time.monotonic()
                with self._lock:
                    if state is None:  # taken by the child (unless a thread of ours has it)
                        if name in self._pending:
                            self._pending.remove(name)
                            self._child_has.add(name)
                        continue
                    if name not in self._child_has:
                        continue
                    self._child_has.discard(name)
                arm = self.arms[name]
                arm.adopt(state)
                self._publish(arm, time.time())
        except Exception:  # whatever went wrong, the runs not adopted are read here
            log.exception("first read: adopting the child's runs")
        finally:
            with self._lock:
                self._prefetch = None
                # taken and never sent back (the child died): ours again
                self._pending[:0] = sorted(self._child_has)
                self._child_has.clear()
                unread = len(self._pending)
            code = prefetch.close()
            if unread:
                log.warning(
                    "first read: the child process ended (exit %s) with %d runs unread; "
                    "reading them here",
                    code,
                    unread,
                )

    def _read_pending(self) -> None:
        """One thread of the first read: the next run in line, until none is left."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                arm = self.arms[self._pending.pop(0)]
            if self.before_read is not None:
                self.before_read(arm.name)
            arm.poll()
            arm.read = True
            self._publish(arm, time.time())

    def prioritize(self, names) -> None:
        """Read these runs (the rows on screen, in table order) before the others still
        waiting for the first read."""
        names = list(names)
        with self._lock:
            if not self._first_started:  # _first_read starts with these (if they are runs)
                self._pending = list(dict.fromkeys([*names, *self._pending]))
                return
            self._pending = move_to_front(self._pending, names)
            prefetch = self._prefetch
        if prefetch is not None:  # not under the lock: the UI must never wait on a pipe
            prefetch.prioritize(names)

    @property
    def unread(self) -> int:
        """Runs whose first read is not done (their rows are placeholders)."""
        with self._lock:
            return sum(not a.read for a in self.arms.values())

    def snapshots(self) -> tuple[ArmSnapshot, ...]:
        with self._lock:
            return tuple(self._snapshots[n] for n in self.arms if n in self._snapshots)

    def plot_data(self, name: str) -> PlotData:
        return self.arms[name].plot_data()

    def run_dir(self, name: str) -> Path:
        return self.arms[name].run.root
