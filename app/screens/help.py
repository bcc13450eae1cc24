"""The ``?`` overlay: every key of every screen, in one place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

# (screen, ((keys, what), ...)); kept beside the screens' BINDINGS (a test checks that every
# binding of every screen is listed here).
KEYS = (
    (
        "dashboard",
        (
            ("↑ ↓  j k", "move between arms"),
            ("← →", "scroll the columns (the arm name stays)"),
            ("enter", "detail of the arm"),
            ("space", "select the arm (for compare, run, stop)"),
            ("c", "compare the selected arms"),
            ("r", "run (queue) the selected arms"),
            ("s", "stop the selected arms"),
            ("x", "export the study"),
            ("/", "filter arms by name (Enter keeps it, Esc clears)"),
            ("o", "sort: study order, name, state, loss, val, SSIM, ETA"),
            ("t", "follow the arm's run.log"),
            ("g", "one row per sweep group (seeds together); again: runs"),
            ("ctrl+r", "reconnect now (a --remote study; the title shows the link)"),
            ("q", "quit"),
        ),
    ),
    (
        "groups (g)",
        (
            ("enter", "compare the group's runs (one run: its detail)"),
            ("r s", "run, stop every run of the group"),
            ("/ o", "filter by group name; sort: collapsed, val, SSIM"),
        ),
    ),
    (
        "detail",
        (
            ("1 2 3 4", "curves, final metrics + events, config, recon"),
            ("l", "log y (shown in the plot titles)"),
            ("e", "EMA of step curves, raw faint (in the titles)"),
            ("m", "one plot alone; again: the next one, then all four"),
            ("t", "follow the arm's run.log"),
        ),
    ),
    ("compare", (("l e m", "as in detail"),)),
    ("run.log", (("f", "follow on/off"), ("g G", "top, bottom"))),
    (
        "everywhere",
        (
            ("?", "this help"),
            ("esc", "close the panel, overlay or screen"),
            ("ctrl+p", "command palette: every action, and any arm by name"),
        ),
    ),
)


def help_text() -> Text:
    t = Text()
    for screen, keys in KEYS:
        t.append(f"{screen}\n", style="bold")
        for key, what in keys:
            t.append(f"  {key:<10}", style="cyan")
            t.append(f"{what}\n")
    t.append("esc, q or ? closes this help", style="dim")
    return t


class HelpScreen(ModalScreen):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text(), markup=False)

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "keys"
