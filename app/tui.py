"""The fnotui dashboard App: the reader thread, the actions, and the command palette.

The App owns no training: it acts through the session's control (engine/control/: detached
``fnotui --run`` engines here, or the same commands through ssh on a remote study's host), and
everything shown comes from the run directories. One thread worker polls them (engine.live.runstore)
every ``poll_interval`` seconds and posts a coalescing ``StoreUpdated`` with immutable
snapshots; screens watch ``App.snapshots``. File I/O and parsing never run on the event loop.
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

from app.session import Session
from engine.control.base import LinkState, Outcome
from engine.errors import FnotuiError
from engine.live.runstore import ArmSnapshot, RunStore
from engine.runs.status import ACTIVE_STATES

# At most this many alarm toasts per update; the events list is the authoritative record.
MAX_ALARM_TOASTS = 3
# A connected link that has been quiet this long says so in the title (the host ticks every 2 s).
QUIET_AFTER_S = 5.0

log = logging.getLogger("fnotui")


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

    def __init__(self, snapshots: tuple[ArmSnapshot, ...]):
        super().__init__()
        self.snapshots = snapshots

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreUpdated)


class FnotuiApp(App):
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
        self.store = session.store if session.store is not None else RunStore.from_study(self.study)
        self._preload = session.preload
        self.loaded = threading.Event()  # set after the first full read of every arm
        self._wake = threading.Event()
        self._alarms_seen: set[tuple[str, str]] | None = None
        self._io_error: str | None = None
        _log_to_state_dir()
        self.sub_title = self._title_for(self.control.link_state())

    def _title_for(self, link: LinkState | None, now: float | None = None) -> str:
        """The study and where it is; for a remote study the link's state comes first, with a
        live countdown to the next attempt."""
        if self.control.where is None:
            return f"{self.study.name} · {_display_path(self.study.output_dir, self.arms_file)}"
        return f"{link_text(link, now)} · {self.study.name} · {self.control.where}"

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
        if self._preload is not None:
            self._preload.join()
            if self.session.preload_error:
                self._say_reader_error(f"the first read failed: {self.session.preload_error}")
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
            self._wake.wait(max(0.0, self.poll_interval - (time.monotonic() - started)))
            self._wake.clear()

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
            log.error("worker %s failed", event.worker.name, exc_info=error)
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
        self.notify("exporting in a separate process…", markup=False, timeout=4)
        self._export()

    @work(thread=True, exclusive=True, group="export", description="export", exit_on_error=False)
    def _export(self) -> None:
        # The control runs the export in another process (here: python -m app.cli export;
        # remote: over ssh), so torch and matplotlib never load into the dashboard.
        self._act([("export", self.control.export)], timeout=15)

    def action_reconnect(self) -> None:
        if self.control.reconnect():
            self.notify(f"reconnecting to {self.control.where} now", markup=False, timeout=3)
            self.poll_now()
        else:
            self.notify("the study is on this machine: no link", markup=False, timeout=3)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # No link (a study here): keep the key out of the footer.
        return not (action == "reconnect" and self.control.where is None)

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
            return _files_summary([_display_path(p, self.arms_file) for p in outcome.files])
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


def link_text(link: LinkState | None, now: float | None = None) -> str:
    """The link state, short enough to lead an 80-column title."""
    if link is None:
        return "connecting"
    now = time.time() if now is None else now
    if link.state == "connected":
        quiet = now - link.last_heard if link.last_heard else 0.0
        return f"◌ silent {quiet:.0f} s" if quiet >= QUIET_AFTER_S else "● connected"
    if link.state == "reconnecting":
        if link.retry_at is None:
            return "⚠ link down · reconnecting"
        return f"⚠ link down · retry in {max(0.0, link.retry_at - now):.0f} s"
    if link.state == "connecting":
        return "… connecting"
    if link.state == "failed":
        return "✘ link failed"
    return link.state


def _files_summary(files: list[str], most: int = 5) -> str:
    """Written files in a few lines: a name written in several folders (each arm's stats.json)
    once with its count, the rest grouped by folder, at most ``most`` lines."""
    split = [f.rpartition("/") for f in files]
    by_name: dict[str, list[str]] = {}
    for folder, _, name in split:
        by_name.setdefault(name, []).append(folder or ".")
    repeated = {name for name, folders in by_name.items() if len(folders) > 1}
    parts = [f"{name} in {len(by_name[name])} folders" for name in sorted(repeated)]
    folders: dict[str, list[str]] = {}
    for folder, _, name in split:
        if name not in repeated:
            folders.setdefault(folder or ".", []).append(name)
    parts += [f"{folder}/: {', '.join(names)}" for folder, names in folders.items()]
    if len(parts) > most:
        parts = parts[: most - 1] + [f"and {len(parts) - most + 1} more folders"]
    return f"wrote {len(files)} files\n" + "\n".join(parts)


def _display_path(path: Path, arms_file: Path) -> str:
    """A path relative to the arms file's folder when it is inside it (short, stable)."""
    try:
        return str(Path(path).resolve().relative_to(arms_file.resolve().parent))
    except ValueError:
        return str(path)
