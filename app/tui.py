"""The fnotui dashboard App: the reader thread, the screens it opens, and the command palette.

The App owns no training: it acts through the session's control (engine/control/: detached
``fnotui --run`` engines here, or the same commands through ssh on a remote study's host), and
everything shown comes from the run directories. One thread worker polls them (engine.live.runstore)
every ``poll_interval`` seconds and posts a coalescing ``StoreUpdated`` with immutable
snapshots; screens watch ``App.snapshots``. File I/O and parsing never run on the event loop.
Launch, stop, export and reconnect: app/control_actions.py; the title: app/link_title.py; toast
texts: app/toasts.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
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

from app.control_actions import ControlActions
from app.link_title import study_title
from app.session import Session
from app.toasts import AlarmToasts
from engine.control.base import LinkState
from engine.live.runstore import ArmSnapshot, RunStore
from engine.runs.status import ACTIVE_STATES

log = logging.getLogger("fnotui")
# The reader waits at least this many times the CPU time of its last poll (next_poll_in).
READER_IDLE_RATIO = 19.0
# While the first read runs, the rows read so far are posted at most this often: a table
# update per run would cost the UI more than the reading (200 runs in ~4 s), and a longer
# batch keeps the rows on screen waiting (0.3 s cost the 200-run study 0.3 s of its first
# full frame, docs/benchmarks.md).
FIRST_READ_BATCH_S = 0.1


def next_poll_in(poll_interval: float, took_s: float, cpu_s: float) -> float:
    """Seconds until the next poll: the rest of ``poll_interval``, but at least
    READER_IDLE_RATIO times the CPU time (of the reader thread) the last poll took, so that the
    reader stays under 1/(1 + READER_IDLE_RATIO) of a core however many runs the study has: a
    study of hundreds of long runs then updates every second or few instead of pinning a core
    (docs/benchmarks.md, 'Dashboard')."""
    return max(poll_interval - took_s, READER_IDLE_RATIO * cpu_s, 0.0)


def _log_to_state_dir() -> None:
    """Reader and worker failures go to <state dir>/fnotui/dashboard.log as well as to a
    notification: the terminal belongs to the dashboard, so stderr is no place for them."""
    if log.handlers:
        return
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    try:
        path = Path(state) / "fnotui" / "dashboard.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, delay=True)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.propagate = False


class StoreUpdated(Message):
    """New snapshots from the reader; a newer one replaces an unprocessed older one."""

    def __init__(self, snapshots: tuple[ArmSnapshot, ...], complete: bool = True):
        super().__init__()
        self.snapshots = snapshots
        # False while the first read runs: some rows are placeholders (``loaded`` False).
        self.complete = complete

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreUpdated)


class FnotuiApp(ControlActions, App):
    """Watch, compare, launch and stop the arms of one study."""

    CSS_PATH = "fnotui.tcss"
    TITLE = "fnotui"
    BINDINGS = [
        Binding("q", "quit", "Quit", priority=False),
        Binding("ctrl+r", "reconnect", "Reconnect"),
    ]

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
        self._reader_error: str | None = None
        self.live = session.live
        self.poll_interval = session.poll_interval
        if session.store is None:
            session.store = RunStore.from_study(self.study)
        self.store = session.store
        self.loaded = threading.Event()  # set after the first full read of every arm
        self._wake = threading.Event()
        self._alarms = AlarmToasts()
        self._io_error: str | None = None
        _log_to_state_dir()
        self.sub_title = self._title_for(self.control.link_state())

    def _title_for(self, link: LinkState | None) -> str:
        return study_title(self.study, self.control.where, self.arms_file, link)

    def _watch_link(self) -> None:
        """Keep the title's link state and countdown current (reader thread), and say once in
        a toast when the ssh link drops or comes back."""
        link = self.control.link_state()
        if link is None:
            return
        title = self._title_for(link)
        if title != self.sub_title:
            self.call_from_thread(setattr, self, "sub_title", title)
        if link.state == self._link:
            return
        was, self._link = self._link, link.state
        if was == "connected" and link.state != "connected":
            self.call_from_thread(
                self.notify,
                f"link to {self.control.where} lost: {link.error or link.state}; "
                "ctrl+r reconnects now",
                title="remote",
                severity="warning",
                markup=False,
            )
        elif was is not None and link.state == "connected":
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
        self._follow_first_read(worker)
        while not worker.is_cancelled:
            started, cpu = time.monotonic(), time.thread_time()
            try:
                changed = self.store.poll()
            except OSError as exc:  # a flaky network filesystem: say so once, keep polling
                message = f"cannot read the run directories: {exc}"
                if message != self._io_error:
                    self._io_error = message
                    self.call_from_thread(self.notify, message, severity="warning", markup=False)
                changed = False
            except Exception as exc:  # a bug on odd input: never let the reader die silently
                log.exception("reader")
                self._say_reader_error(f"{type(exc).__name__}: {exc}")
                changed = False
            else:
                self._io_error = None
            try:
                self._report_exits()
                self._watch_link()
            except Exception as exc:
                log.exception("reader")
                self._say_reader_error(f"{type(exc).__name__}: {exc}")
            if changed or not self.loaded.is_set():
                self.post_message(StoreUpdated(self.store.snapshots()))
            self.loaded.set()
            if not self.live:
                return
            took = time.monotonic() - started
            self._wake.wait(next_poll_in(self.poll_interval, took, time.thread_time() - cpu))
            self._wake.clear()

    def _follow_first_read(self, worker: Worker) -> None:
        """Post the rows as the first read publishes them (started by the CLI before Textual
        was imported, or here), in batches of FIRST_READ_BATCH_S: placeholders first, then each
        run's true row once it is read."""
        preload = self.session.preload or self.session.start_first_read()
        posted = 0
        while not worker.is_cancelled:
            # the first batch (the placeholders) as soon as there is one, then every batch
            preload.join(FIRST_READ_BATCH_S if posted else 0.02)
            if not preload.is_alive():
                break
            if self.store.progress != posted:
                posted = self.store.progress
                self.post_message(StoreUpdated(self.store.snapshots(), complete=False))
        if self.session.preload_error:
            self._say_reader_error(f"the first read failed: {self.session.preload_error}")

    def _say_reader_error(self, message: str) -> None:
        """Once per distinct error (the reader retries every poll); the log has the traceback."""
        if message == self._reader_error:
            return
        self._reader_error = message
        self.call_from_thread(
            self.notify,
            f"{message} (logged; still polling)",
            title="reader error",
            severity="error",
            timeout=15,
            markup=False,
        )

    def poll_now(self) -> None:
        """Read the run directories at once (after a launch or a stop)."""
        self._wake.set()

    def on_store_updated(self, message: StoreUpdated) -> None:
        self.snapshots = message.snapshots
        # Alarms are news only against a complete set: a run read late in the first read
        # would otherwise toast every alarm it had before the dashboard started.
        if message.complete:
            for toast in self._alarms.new(message.snapshots):
                self.notify(**toast, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker becomes a message."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            log.error("worker %s failed", event.worker.name, exc_info=error)
            self.notify(
                f"{event.worker.description or event.worker.name} failed: "
                f"{type(error).__name__}: {error}",
                severity="error",
                timeout=15,
                markup=False,
            )

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # No link (a study here): keep the key out of the footer.
        return not (action == "reconnect" and self.control.where is None)

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
