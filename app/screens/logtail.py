"""The run.log of one arm, followed like ``tail -f``: new lines appear as the engine writes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Log

from engine.runs.rundir import LOG_FILE, RunDir

POLL_S = 0.5
# The first read shows at most the file's tail (a long run.log must open at once).
FIRST_READ_BYTES = 256 * 1024
MAX_LINES = 5000


class LogTailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "Bottom", show=False),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, arm: str):
        super().__init__()
        self.arm = arm
        self.follow = True
        self._offset = 0
        self._identity: tuple | None = None
        self._partial = b""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(id="log-tail", max_lines=MAX_LINES, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self._path = RunDir(self.app.store.run_dir(self.arm)).log
        self._title()
        self.poll()
        self.set_interval(POLL_S, self.poll)

    def _title(self) -> None:
        self.sub_title = f"{self.arm}/{LOG_FILE} · {'following' if self.follow else 'paused'}"

    def poll(self) -> None:
        """Append what the engine wrote since the last poll; start over when the file was
        replaced or truncated (a new run of the arm)."""
        log = self.query_one(Log)
        try:
            stat = self._path.stat()
        except OSError:
            if self._identity is not False:
                self._identity = False
                log.clear()
                log.write_line(f"no {LOG_FILE} yet: it is written when the engine starts")
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._identity = identity
            log.clear()
            self._partial = b""
            self._offset = max(0, stat.st_size - FIRST_READ_BYTES)
        if stat.st_size == self._offset:
            return
        try:
            with open(self._path, "rb") as f:
                f.seek(self._offset)
                data = f.read(stat.st_size - self._offset)
        except OSError as exc:
            log.write_line(f"cannot read {LOG_FILE}: {exc}")
            return
        self._offset += len(data)
        data = self._partial + data
        head, newline, self._partial = data.rpartition(b"\n")
        if newline:
            log.write_lines(head.decode("utf-8", "replace").split("\n"), scroll_end=self.follow)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._title()

    def action_top(self) -> None:
        self.follow = False
        self.query_one(Log).auto_scroll = False
        self.query_one(Log).scroll_home(animate=False)
        self._title()

    def action_bottom(self) -> None:
        self.query_one(Log).scroll_end(animate=False)

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())
