"""Main screen: the arm table, and the full facts of the highlighted arm under it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from app.widgets.arm_table import ArmTable
from app.widgets.cells import VERDICT_STYLES, fmt_duration, fmt_num, state_text
from engine.live.snapshot import ArmSnapshot


def info_text(s: ArmSnapshot | None) -> Text:
    """Everything the table has for one arm, wrapped to the terminal: at 80 columns the
    right-hand table columns are off screen, so they are repeated here."""
    if s is None:
        return Text("no arms", style="dim")
    t = Text()
    t.append(s.name, style="bold")
    t.append("  ")
    t.append_text(state_text(s.state, s.collapsed))
    if s.state == "not started" and not s.has_run:
        t.append(
            f"\n{s.epochs_total} epochs configured; r starts it as a background engine", style="dim"
        )
        return t
    if s.state == "queued" and not s.has_run:
        t.append(
            f"\n{s.note or 'waiting for a device slot'}; s takes it out of the queue", style="dim"
        )
        return t
    t.append("  verdict ")
    t.append(s.verdict_text, style=VERDICT_STYLES.get(s.verdict_label, ""))
    total = "?" if s.epochs_total is None else s.epochs_total
    t.append(
        f"\nepoch {s.epochs_done}/{total} · loss {fmt_num(s.last_loss)} · best val "
        f"{fmt_num(s.best_val)}"
        + (f" (epoch {s.best_val_epoch + 1})" if s.best_val_epoch is not None else "")
        + f" · |g| {fmt_num(s.grad_norm, 3)} · lr {fmt_num(s.lr, 2)}"
    )
    t.append(
        f"\n{fmt_num(s.samples_per_s, 3)} samples/s · ETA "
        f"{fmt_duration(s.eta_s) if s.state == 'running' else '—'} · {s.n_steps} steps · "
        f"{s.n_events} events · alarms: {', '.join(s.alarms) if s.alarms else 'none'}"
    )
    problems = []
    if s.nonfinite_steps:
        problems.append(f"✖ {s.nonfinite_steps} non-finite steps")
    if s.bad_lines:
        problems.append(f"{s.bad_lines} unreadable lines")
    if s.unknown_types:
        problems.append(f"{s.unknown_types} records of unknown type")
    if problems:
        t.append(" · ")
        t.append(" · ".join(problems), style="bold red")
    if s.verdict_detail:
        t.append(f"\n{s.verdict_detail}", style="dim")
    if s.note:
        t.append(f"\n{s.note}", style="dim")
    t.no_wrap = True  # one fact per line, cut with an ellipsis rather than wrapped
    t.overflow = "ellipsis"
    return t


class DashboardScreen(Screen):
    """The study at a glance; keys act on the marked arms, or on the highlighted one."""

    BINDINGS = [
        Binding("space", "toggle_mark", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("r", "launch", "Run"),
        Binding("s", "stop", "Stop"),
        Binding("x", "app.export", "Export"),
    ]

    def __init__(self):
        super().__init__()
        self._info_shown: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield ArmTable(names=list(self.app.store.arms), id="arms")
        yield Static(id="info")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "snapshots", self._show)
        self.query_one(ArmTable).focus()

    def _show(self, snapshots) -> None:
        with self.app.batch_update():  # one repaint for the table and the info panel
            self.query_one(ArmTable).show(snapshots)
            self._show_info()

    def _show_info(self) -> None:
        table = self.query_one(ArmTable)
        name = table.current_arm
        text = info_text(table.snapshot(name) if name else None)
        signature = (text.plain, tuple(text.spans))
        if signature != self._info_shown:
            self._info_shown = signature
            # fixed height (fnotui.tcss): a repaint, not a layout, on every change
            self.query_one("#info", Static).update(text, layout=False)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_info()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.open_detail(event.row_key.value)

    def selected_arms(self) -> list[str]:
        """The marked arms in table order, or the highlighted arm when none is marked."""
        table = self.query_one(ArmTable)
        marked = [n for n in table.arm_names() if n in table.marked]
        if marked:
            return marked
        return [table.current_arm] if table.current_arm else []

    def action_toggle_mark(self) -> None:
        table = self.query_one(ArmTable)
        if table.current_arm:
            table.toggle_mark(table.current_arm)
            table.action_cursor_down()

    def action_compare(self) -> None:
        table = self.query_one(ArmTable)
        self.app.open_compare([n for n in table.arm_names() if n in table.marked])

    def action_launch(self) -> None:
        self.app.launch_arms(self.selected_arms())

    def action_stop(self) -> None:
        self.app.stop_arms(self.selected_arms())
