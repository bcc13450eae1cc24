"""The fnotui dashboard App: the reader thread, the actions, and the command palette.

The App owns no training: it acts through the session's control (engine/control/: detached
``fnotui --run`` engines here, or the same commands through ssh on a remote study's host), and
everything shown comes from the run directories. One thread worker polls them (engine.live.runstore)
every ``poll_interval`` seconds and posts a coalescing ``StoreUpdated`` with immutable
snapshots; screens watch ``App.snapshots``. File I/O and parsing never run on the event loop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from app.session import Session
from engine.control.base import Outcome
from engine.errors import FnotuiError
from engine.live.runstore import ArmSnapshot, RunStore
from engine.runs.status import ACTIVE_STATES

# At most this many alarm toasts per update; the events list is the authoritative record.
MAX_ALARM_TOASTS = 3


class StoreUpdated(Message):
    """New snapshots from the reader; a newer one replaces an unprocessed older one."""

    def __init__(self, snapshots: tuple[ArmSnapshot, ...]):
        super().__init__()
        self.snapshots = snapshots

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreUpdated)


class FnotuiApp(App):
    """Watch, compare, launch and stop the arms of one study."""

    CSS_PATH = "fnotui.tcss"
    TITLE = "fnotui"
    BINDINGS = [Binding("q", "quit", "Quit", priority=False)]

    # A var, not a reactive: a reactive on the App repaints the whole screen when it changes.
    snapshots: var[tuple[ArmSnapshot, ...]] = var((), always_update=True)

    def __init__(self, session: Session):
        super().__init__()
        self.session = session
        self.study = session.study
        self.arms_file = Path(session.arms_file)
        # Launch, stop and export go through the control, whether the study is here or on
        # another host (--remote: the store then reads a local mirror of it).
        self.control = session.control
        self._link: str | None = None
        self.live = session.live
        self.poll_interval = session.poll_interval
        self.store = session.store if session.store is not None else RunStore.from_study(self.study)
        self._preload = session.preload
        self.loaded = threading.Event()  # set after the first full read of every arm
        self._wake = threading.Event()
        self._alarms_seen: set[tuple[str, str]] | None = None
        self._io_error: str | None = None
        self.sub_title = self._title_for(None)

    def _title_for(self, link: str | None) -> str:
        if self.control.where is None:
            return f"{self.study.name} · {_display_path(self.study.output_dir, self.arms_file)}"
        return f"{self.study.name} · {self.control.where} · {link or 'connecting'}"

    def _watch_link(self) -> None:
        """Say in the title (and once in a toast) when the ssh link drops or comes back."""
        link = self.control.link()
        if link is None or link == self._link:
            return
        was, self._link = self._link, link
        self.call_from_thread(setattr, self, "sub_title", self._title_for(link.split(":")[0]))
        if was == "connected" and link != "connected":
            self.call_from_thread(
                self.notify,
                f"link to {self.control.where} lost: {link}",
                title="remote",
                severity="warning",
                markup=False,
            )
        elif was is not None and link == "connected":
            self.call_from_thread(
                self.notify, "link restored; caught up", title="remote", markup=False
            )

    # -- lifecycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        from app.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen())
        self._read_runs()
        try:  # a closed SSH session sends SIGHUP: leave cleanly (engines keep running)
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.exit)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def on_unmount(self) -> None:
        self._wake.set()
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    @work(
        thread=True,
        exclusive=True,
        group="reader",
        name="telemetry reader",
        description="poll the run directories",
        exit_on_error=False,
    )
    def _read_runs(self) -> None:
        worker = get_current_worker()
        if self._preload is not None:
            self._preload.join()
        while not worker.is_cancelled:
            started = time.monotonic()
            try:
                changed = self.store.poll()
            except OSError as exc:  # a flaky network filesystem: say so once, keep polling
                message = f"cannot read the run directories: {exc}"
                if message != self._io_error:
                    self._io_error = message
                    self.call_from_thread(self.notify, message, severity="warning", markup=False)
                changed = False
            else:
                self._io_error = None
            self._report_exits()
            self._watch_link()
            if changed or not self.loaded.is_set():
                self.post_message(StoreUpdated(self.store.snapshots()))
            self.loaded.set()
            if not self.live:
                return
            self._wake.wait(max(0.0, self.poll_interval - (time.monotonic() - started)))
            self._wake.clear()

    def poll_now(self) -> None:
        """Read the run directories at once (after a launch or a stop)."""
        self._wake.set()

    def on_store_updated(self, message: StoreUpdated) -> None:
        self.snapshots = message.snapshots
        self._announce_alarms(message.snapshots)

    def _announce_alarms(self, snapshots: tuple[ArmSnapshot, ...]) -> None:
        """Toast collapse alarms that appear while we watch (not those found at start-up),
        each once, a few per update."""
        current = {(s.name, a) for s in snapshots for a in s.alarms}
        if self._alarms_seen is None:
            self._alarms_seen = current
            return
        new = sorted(current - self._alarms_seen)
        self._alarms_seen |= current
        for name, alarm in new[:MAX_ALARM_TOASTS]:
            rule, _, epoch = alarm.partition("@")
            self.notify(
                f"{name}: {rule} at epoch {epoch}",
                title="✖ collapse alarm",
                severity="error",
                timeout=10,
                markup=False,
            )
        if len(new) > MAX_ALARM_TOASTS:
            self.notify(
                f"and {len(new) - MAX_ALARM_TOASTS} more alarms: see each arm's events",
                severity="error",
                markup=False,
            )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker becomes a message."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(
                f"{event.worker.description or event.worker.name} failed: "
                f"{type(error).__name__}: {error}",
                severity="error",
                timeout=15,
                markup=False,
            )

    # -- actions -----------------------------------------------------------------------------

    def launch_arms(self, names: list[str]) -> None:
        """Start arms as detached engines; an arm that already has a run is resumed or
        restarted (its earlier run archived) only after asking."""
        from app.screens.choice import ChoiceScreen

        snaps = {s.name: s for s in self.snapshots}
        fresh, earlier = [], []
        for name in names:
            snap = snaps.get(name)
            if name not in self.study.arms:
                self.notify(
                    f"{name} is not in {self.arms_file.name}: cannot launch it",
                    severity="warning",
                    markup=False,
                )
            elif snap is not None and snap.state in ACTIVE_STATES:
                self.notify(f"{name} is already {snap.state}", severity="warning", markup=False)
            elif snap is not None and snap.has_run:
                earlier.append(name)
            else:
                fresh.append(name)
        if fresh:
            self._launch([(name, None) for name in fresh])
        if not earlier:
            return
        resumable = [n for n in earlier if snaps[n].state != "finished"]

        def chosen(mode: str | None) -> None:
            if mode == "resume":
                skipped = [n for n in earlier if n not in resumable]
                if skipped:
                    self.notify(
                        f"not resumed (already finished): {', '.join(skipped)}",
                        severity="warning",
                        markup=False,
                    )
                self._launch([(name, "resume") for name in resumable])
            elif mode == "restart":
                self._launch([(name, "restart") for name in earlier])

        listing = ", ".join(f"{n} ({snaps[n].state})" for n in earlier)
        choices = [("a", "Restart", "restart", "warning"), ("n", "Cancel", None, "primary")]
        if resumable:
            choices.insert(0, ("r", "Resume", "resume", "success"))
        self.push_screen(
            ChoiceScreen(
                f"Already run: {listing}",
                "Resume continues an unfinished run from its last epoch-end checkpoint. Restart "
                "moves the earlier run to <output_dir>/.archive/ and trains from scratch.",
                choices,
            ),
            chosen,
        )

    @work(thread=True, group="actions", description="launch", exit_on_error=False)
    def _launch(self, arms: list[tuple[str, str | None]]) -> None:
        # One at a time: each returns once its engine holds its arm (and its queue ticket),
        # so arms launched together queue in the order given.
        self._act(
            [
                (f"▶ launch {name}", lambda n=name, m=mode: self.control.launch(n, m))
                for name, mode in arms
            ]
        )

    def _report_exits(self) -> None:
        """Say how each engine started from here ended (reader thread)."""
        for name, code, tail in self.control.reap():
            if code == 0:
                self.call_from_thread(self.notify, f"{name} finished", markup=False)
                continue
            self.call_from_thread(
                self.notify,
                f"{name} exited with code {code}. {tail}",
                title="engine stopped",
                severity="warning",
                timeout=15,
                markup=False,
            )

    def stop_arms(self, names: list[str]) -> None:
        from app.screens.choice import ChoiceScreen

        running = [n for n in names if self._state(n) in ACTIVE_STATES]
        if not running:
            self.notify("no running arm selected", severity="warning", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._stop(running)

        self.push_screen(
            ChoiceScreen(
                f"Stop {', '.join(running)}?",
                "The engine finishes its current step, saves the model, history and a 'killed' "
                "status, then exits; it can be resumed later.",
                [("y", "Stop", True, "error"), ("n", "Cancel", None, "primary")],
            ),
            confirmed,
        )

    @work(thread=True, group="actions", description="stop", exit_on_error=False)
    def _stop(self, names: list[str]) -> None:
        self._act([(f"■ stop {name}", lambda n=name: self.control.stop(n)) for name in names])

    def action_export(self) -> None:
        self.notify("exporting…", markup=False, timeout=2)
        self._export()

    @work(thread=True, exclusive=True, group="export", description="export", exit_on_error=False)
    def _export(self) -> None:
        self._act([("export", self.control.export)], timeout=15)

    def _act(self, calls, timeout: float = 10) -> None:
        """Run control actions, (title, call) pairs, one by one (worker thread) and report
        each one's outcome under its title."""
        where = f" on {self.control.where}" if self.control.where else ""
        for title, call in calls:
            try:
                outcome = call()
            except (FnotuiError, OSError) as exc:  # refused (a ControlError) or bad input
                self.call_from_thread(
                    self.notify,
                    str(exc),
                    title=title + where,
                    severity="error",
                    timeout=15,
                    markup=False,
                )
                continue
            self.call_from_thread(
                self.notify,
                self._describe(outcome),
                title=title + where,
                timeout=timeout,
                markup=False,
            )
            if outcome.problems:
                shown = outcome.problems[:3]
                more = len(outcome.problems) - len(shown)
                self.call_from_thread(
                    self.notify,
                    "; ".join(shown) + (f"; and {more} more (see the summary)" if more else ""),
                    title=f"{title}: {len(outcome.problems)} problems",
                    severity="warning",
                    timeout=15,
                    markup=False,
                )
        self.poll_now()

    def _describe(self, outcome: Outcome) -> str:
        if outcome.files:
            files = [_display_path(p, self.arms_file) for p in outcome.files]
            return f"wrote {len(files)} files: " + ", ".join(files)
        return outcome.message or "done"

    def open_detail(self, name: str) -> None:
        from app.screens.detail import ArmDetailScreen

        self.push_screen(ArmDetailScreen(name))

    def open_compare(self, names: list[str]) -> None:
        from app.screens.compare import CompareScreen

        if len(names) < 2:
            self.notify(
                "select two or more arms with space first", severity="warning", markup=False
            )
            return
        self.push_screen(CompareScreen(names))

    def _state(self, name: str) -> str:
        for s in self.snapshots:
            if s.name == name:
                return s.state
        return "not started"

    # -- command palette ---------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        table_names = getattr(screen, "selected_arms", None)
        if callable(table_names):
            yield SystemCommand(
                "Launch selected arms",
                "start the marked arms (or the highlighted one) as background engines",
                lambda: self.launch_arms(table_names()),
            )
            yield SystemCommand(
                "Stop selected arms",
                "SIGTERM: save and exit gracefully",
                lambda: self.stop_arms(table_names()),
            )
            yield SystemCommand(
                "Compare selected arms",
                "overlay the curves of the marked arms",
                lambda: self.open_compare(table_names()),
            )
        yield SystemCommand(
            "Export study", "stats.json per arm and the study summary", self.action_export
        )
        for s in self.snapshots:
            yield SystemCommand(
                f"Open arm {s.name}",
                "curves, events, config, reconstruction",
                lambda name=s.name: self.open_detail(name),
                discover=False,
            )
            if s.name in self.study.arms:
                yield SystemCommand(
                    f"Launch arm {s.name}",
                    "start it as a background engine",
                    lambda name=s.name: self.launch_arms([name]),
                    discover=False,
                )
            if s.state in ACTIVE_STATES:
                yield SystemCommand(
                    f"Stop arm {s.name}",
                    "SIGTERM: save and exit gracefully",
                    lambda name=s.name: self.stop_arms([name]),
                    discover=False,
                )


def _display_path(path: Path, arms_file: Path) -> str:
    """A path relative to the arms file's folder when it is inside it (short, stable)."""
    try:
        return str(Path(path).resolve().relative_to(arms_file.resolve().parent))
    except ValueError:
        return str(path)
