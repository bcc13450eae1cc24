"""Main screen: the arm table (or, after g, the sweep groups), and the full facts of the
highlighted row under it."""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from app.widgets.arm_table import ArmTable, age_text
from app.widgets.cells import (
    READING,
    VERDICT_STYLES,
    fmt_duration,
    fmt_num,
    state_text,
    unread_state_text,
)
from engine.live.snapshot import ArmSnapshot

# The info panel grows with its lines up to this many (fnotui.tcss max-height), so a long
# status.json reason is shown whole.
INFO_MAX_LINES = 10
# How often the memory estimates are read again while a run that has not started lacks one.
MEMORY_REREAD_S = 15.0


def info_text(s: ArmSnapshot | None, memory: str | None = None, memory_read: bool = True) -> Text:
    """Everything the table has for one arm, wrapped to the terminal: at 80 columns the
    right-hand table columns are off screen, so they are repeated here. ``memory`` is the arm's
    memory estimate as text, shown before the arm runs (None: no estimate cached, or, while
    ``memory_read`` is False, the cache not read yet)."""
    if s is None:
        return Text("no arms", style="dim")
    t = Text()
    t.append(s.name, style="bold")
    t.append("  ")
    if not s.loaded:
        t.append_text(unread_state_text(s.state))
        done = "…" if s.epochs_done < 0 else s.epochs_done
        total = "?" if s.epochs_total is None else s.epochs_total
        t.append(
            f"\nepoch {done}/{total} (status.json) · {READING} its telemetry: the values and "
            "the verdict follow",
            style="dim",
        )
        if s.note:
            t.append(f"\n{s.note}", style="dim")
        return t
    t.append_text(state_text(s.state, s.collapsed))
    # The estimate is traced by fnotui list, run, launch and sweep (engine/training/
    # memory_check.py); the dashboard only reads the cache, so it never loads torch.
    if memory:
        needs = f"memory {memory}"
    elif memory_read:
        needs = "memory not estimated yet (fnotui list does it)"
    else:
        needs = f"memory estimate {READING}"
    if s.state == "not started" and not s.has_run:
        t.append(
            f"\n{s.epochs_total} epochs configured · {needs}; r starts it as a background engine",
            style="dim",
        )
        return t
    if s.state == "queued" and not s.has_run:
        t.append(
            f"\n{s.note or 'waiting for a device slot'} · {needs}; s takes it out of the queue",
            style="dim",
        )
        return t
    t.append("  verdict ")
    t.append(s.verdict_text, style=VERDICT_STYLES.get(s.verdict_label, ""))
    total = "?" if s.epochs_total is None else s.epochs_total
    if s.steps_per_epoch is None:
        step = " · step k/n not recorded"  # a header older than steps_per_epoch
    elif s.state == "running" or s.epoch_step:
        step = f" · step {s.epoch_step}/{s.steps_per_epoch} of epoch {s.epochs_done + 1}"
    else:
        step = ""
    updated = f"updated {age_text(s.updated_age_s)} ago" if s.updated_age_s is not None else ""
    t.append(f"\nepoch {s.epochs_done}/{total}{step}" + (f" · {updated}" if updated else ""))
    if s.amp_ssim is not None:
        t.append(f" · final amp SSIM {fmt_num(s.amp_ssim, 3)}")
    t.append(
        f"\nloss {fmt_num(s.last_loss)} · best val "
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
    # Wrapped, not cut: the panel grows to fit (a status.json reason must be read whole).
    return t


class DashboardScreen(Screen):
    """The study at a glance; keys act on the marked arms, or on the highlighted one."""

    BINDINGS = [
        Binding("space", "toggle_mark", "Select"),
        Binding("c", "compare", "Compare"),
        Binding("r", "launch", "Run"),
        Binding("s", "stop", "Stop"),
        Binding("x", "app.export", "Export"),
        Binding("g", "groups", "Groups"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter", show=False),
        Binding("o", "sort", "Sort", show=False),
        Binding("t", "tail", "Log", show=False),
        Binding("j", "cursor('down')", "Down", show=False),
        Binding("k", "cursor('up')", "Up", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self):
        super().__init__()
        self._info_shown: tuple | None = None
        self.grouped = False  # g: one row per sweep group instead of one per run
        self.memory: dict[str, str] = {}  # run -> its cached memory estimate, as text
        self.memory_read = False  # the cache was read once (until then no estimate is known)
        self._memory_read_at = -math.inf

    def compose(self) -> ComposeResult:
        yield Header()
        yield ArmTable(names=list(self.app.store.arms), id="arms")
        yield Static(id="info")
        yield Input(placeholder="filter arms by name (Enter keeps it, Esc clears)", id="filter")
        # compact, palette hint off: at 80 columns every key fits (ctrl+p is in the ? help)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.watch(self.app, "snapshots", self._show)
        self.query_one("#filter", Input).display = False
        self.query_one(ArmTable).focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        # In the group view Enter compares and marks are per run: space and c are off (and out
        # of the footer, which then fits 80 columns).
        return not (self.grouped and action in ("toggle_mark", "compare"))

    @property
    def table(self) -> DataTable:
        """The table on screen: the runs' or the groups'."""
        return self.query_one("#groups" if self.grouped else "#arms", DataTable)

    def _show(self, snapshots) -> None:
        with self.app.batch_update():  # one repaint for the table and the info panel
            self.query_one(ArmTable).show(snapshots)
            if self.grouped:
                self._show_groups(snapshots)
            self._show_info()
        # The memory estimates (a hash of every config, a file per distinct one) wait until the
        # rows on screen are read rather than compete with that read.
        if any(not s.loaded for s in snapshots) and not self._read_visible_first(snapshots):
            return
        self._refresh_memory(snapshots)

    def _read_visible_first(self, snapshots) -> bool:
        """Ask the store's first read for the rows on screen (in the table's order, after a
        sort, a filter or a scroll too) before the rest; True if they are all read."""
        table = self.table
        top = int(table.scroll_y)
        shown = table.names()[top : top + max(table.size.height, 1)]
        if self.grouped:
            shown = [run for name in shown for run in self._group_runs(name)]
        self.app.store.prioritize(shown)
        loaded = {s.name for s in snapshots if s.loaded}
        return all(name in loaded for name in shown)

    def _show_groups(self, snapshots) -> None:
        from app.sweep_groups import group_rows

        table = self.table
        table.show(group_rows(snapshots, self.app.study.points, table.items_shown))

    async def action_groups(self) -> None:
        """g: one row per sweep group (a sweep point without its seed), and back."""
        from app.sweep_groups import group_names
        from app.widgets.group_table import GroupTable

        if not self.query("#groups"):
            names = group_names(self.app.store.arms, self.app.study.points)
            await self.mount(GroupTable(names=names, id="groups"), after=self.query_one(ArmTable))
        self.grouped = not self.grouped
        self.refresh_bindings()
        self.query_one(ArmTable).display = not self.grouped
        self.query_one("#groups").display = self.grouped
        if self.grouped:
            self._show_groups(self.app.snapshots)
        self.table.focus()
        self._show_title()
        self._show_info()

    def _show_info(self) -> None:
        table = self.table
        if self.grouped:
            from app.widgets.group_table import group_info_text

            text = group_info_text(table.group(table.current_name))
        else:
            name = table.current_arm
            snapshot = table.snapshot(name) if name else None
            text = info_text(snapshot, self.memory.get(name), self.memory_read)
        signature = (text.plain, tuple(text.spans))
        if signature != self._info_shown:
            # A layout only when the number of lines changes (the panel's height follows it);
            # otherwise a repaint, as most changes are numbers ticking.
            old_lines = None if self._info_shown is None else self._info_shown[0].count("\n")
            self._info_shown = signature
            layout = old_lines != text.plain.count("\n")
            self.query_one("#info", Static).update(text, layout=layout)

    def _refresh_memory(self, snapshots) -> None:
        """Read the cache again, at most every MEMORY_REREAD_S, while a run that has not started
        lacks its estimate: a launch, a list or another shell's run may have traced it since."""
        now = time.monotonic()
        if now - self._memory_read_at < MEMORY_REREAD_S:
            return
        waiting = ("not started", "queued")
        if any(s.name not in self.memory and s.state in waiting for s in snapshots or ()):
            self._memory_read_at = now
            self.run_worker(self._read_memory_estimates, thread=True, group="memory")

    def _read_memory_estimates(self) -> None:
        """The cached estimate of every run of the study (a file read per distinct config)."""
        from engine.training.memory_check import MemoryEstimate, estimates, fmt_bytes

        found = estimates(dict(self.app.study.arms), compute=False)
        texts = {
            name: f"~{fmt_bytes(e.total)} at batch {e.batch_size}"
            for name, e in found.items()
            if isinstance(e, MemoryEstimate)
        }
        self.app.call_from_thread(self._show_memory, texts)

    def _show_memory(self, texts: dict[str, str]) -> None:
        self.memory = texts
        self.memory_read = True
        self._show_info()

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_info()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.data_table.id == "groups":
            self._open_group(event.row_key.value)
        else:
            self.app.open_detail(event.row_key.value)

    def _group_runs(self, name: str | None = None) -> list[str]:
        """The runs of the group ``name`` (default: the highlighted one), in study order."""
        table = self.query_one("#groups", DataTable)
        row = table.group(name or table.current_name)
        return list(row.runs) if row else []

    def _open_group(self, name: str | None = None) -> None:
        """Enter on a group: its runs overlaid in compare (a group of one: the run's detail)."""
        runs = self._group_runs(name)
        if len(runs) == 1:
            self.app.open_detail(runs[0])
        elif runs:
            self.app.open_compare(runs)

    def selected_arms(self) -> list[str]:
        """The marked arms in table order, or the highlighted arm when none is marked; in the
        group view, the highlighted group's runs."""
        if self.grouped:
            return self._group_runs()
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

    # -- navigation --------------------------------------------------------------------------

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_cursor(self, direction: str) -> None:
        table = self.table
        (table.action_cursor_down if direction == "down" else table.action_cursor_up)()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.table.filter_text
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = False
            self.table.focus()

    def action_clear_filter(self) -> None:
        """Esc: close the filter box and show every arm again."""
        box = self.query_one("#filter", Input)
        box.display = False
        if self.table.filter_text:
            self._set_filter("")
        self.table.focus()

    def on_key(self, event) -> None:
        # Esc in the filter box closes it (the Input would otherwise keep the key).
        if event.key == "escape" and self.query_one("#filter", Input).has_focus:
            event.stop()
            self.action_clear_filter()

    def _set_filter(self, text: str) -> None:
        table = self.table
        table.set_filter(text)
        self._show_title()
        self._show_info()

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self._show_title()

    def _show_title(self) -> None:
        """Sort and filter, in the info panel's top border (the header is the link's)."""
        table = self.table
        parts = ["groups: a sweep point without its seed (g: runs)"] if self.grouped else []
        if table.sort_index:
            parts.append(f"sort: {table.SORTS[table.sort_index][0]} (o)")
        if table.filter_text:
            parts.append(f"filter: {table.filter_text!r} ({table.row_count} shown, Esc clears)")
        self.query_one("#info", Static).border_title = " · ".join(parts) or None

    def action_tail(self) -> None:
        runs = self._group_runs() if self.grouped else [self.query_one(ArmTable).current_arm]
        if self.grouped and len(runs) > 1:
            self.notify(
                "t follows one run's log: g shows one row per run again",
                severity="warning",
                markup=False,
            )
        elif runs and runs[0]:
            from app.screens.logtail import LogTailScreen

            self.app.push_screen(LogTailScreen(runs[0]))
