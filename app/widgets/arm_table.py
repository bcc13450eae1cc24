"""The arm table: one row per arm, updated by difference from run-store snapshots.

Columns and rows have explicit keys (``add_columns`` would give random keys and
``update_cell`` would then raise), and only the cells whose text changed are written, all in one
``batch_update`` (docs/engineering.md, 'Dashboard'). The most useful columns come first, so an
80-column terminal shows arm, state, progress, losses and the loss sparkline; the rest scroll
horizontally (the mark and the arm name stay, frozen) and are repeated in the info panel
under the table.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from app.widgets.cells import (
    STATES,
    VERDICT_STYLES,
    fmt_duration,
    num_text,
    short_names,
    sparkline_text,
    state_key,
    state_text,
)
from engine.live.snapshot import SPARK_BUCKETS, ArmSnapshot

MARK = "●"
# The arm column grows with the study's longest name up to this width (sweep points are long:
# arm_stable_lowlr.seed-20260129); longer names lose their middle, not their distinguishing end.
NAME_WIDTH_MAX = 28

# key, label, width. Mark, arm, state (with the verdict), epoch, loss and ETA fit in 80
# columns with a 28-character arm name; the rest scroll under the frozen arm name.
COLUMNS = (
    ("mark", " ", 1),
    ("arm", "arm", 17),
    ("state", "state", 17),
    ("epoch", "epoch", 7),  # "120/400": a long study must not lose a digit
    ("loss", "loss", 7),
    ("eta", "ETA", 7),
    ("step", "step", 9),  # of the current epoch: "1234/8620"
    ("ssim", "SSIM a", 6),  # final amplitude SSIM
    ("val", "best val", 8),
    ("spark_loss", "loss ~", SPARK_BUCKETS),
    ("spark_grad", "|g| ~", SPARK_BUCKETS),
    ("grad", "|g|", 7),
    ("lr", "lr", 7),
    ("sps", "smp/s", 6),
    ("updated", "updated", 7),
    ("verdict", "verdict", 16),
)
FIXED_COLUMNS = 2  # mark and arm stay while the rest scroll horizontally
# Sort keys of the o key (s stops arms), in cycle order: (name, key of an ArmSnapshot, reversed).
SORTS = (
    ("study order", None, False),
    ("name", lambda s: s.name, False),
    ("state", lambda s: (s.state, s.name), False),
    ("loss", lambda s: _num_key(s.last_loss), False),
    ("best val", lambda s: _num_key(s.best_val), False),
    ("SSIM a", lambda s: _num_key(s.amp_ssim, high_first=True), False),
    ("ETA", lambda s: _num_key(s.eta_s), False),
)


def _num_key(x: float | None, high_first: bool = False) -> tuple:
    """Numbers ascending (or descending), NaN/inf and missing values last."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return (1, 0.0)
    return (0, -x if high_first else x)


def name_width(names) -> int:
    """Width of the arm column for these names: the default, up to NAME_WIDTH_MAX."""
    default = next(w for k, _, w in COLUMNS if k == "arm")
    return max(default, min(NAME_WIDTH_MAX, max((len(n) for n in names), default=0)))


def middle_ellipsis(name: str, width: int) -> str:
    """``name`` cut to ``width`` by dropping a middle part. A sweep point (arm.key-value...)
    keeps its values whole and loses the middle of its arm name, so arms that share a prefix
    stay apart: arm_st…_warmup.seed-20260129 and arm_st…stepped.seed-20260129."""
    if len(name) <= width:
        return name
    arm, dot, point = name.partition(".")
    if dot and len(point) + 1 <= width - 7:
        return _cut_middle(arm, width - len(point) - 1) + "." + point
    return _cut_middle(name, width)


def _cut_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def state_verdict_text(s: ArmSnapshot) -> Text:
    """The state column: the process state, with the verdict where it says more.

    A finished run shows its verdict (✔ healthy, ⇆ twin, … incomplete); a run whose verdict only
    restates its state (running, failed, stopped short) shows the state; an alarm or twin on
    a run that did not finish shows the state's glyph before the verdict (▶ ↗ diverged e5)."""
    key = state_key(s.state, s.collapsed)
    if not s.has_run and s.n_steps == 0 or s.verdict_label in ("running", "incomplete", "failed"):
        return state_text(s.state, s.collapsed)
    style = VERDICT_STYLES.get(s.verdict_label, "")
    if s.state == "finished" or key == "collapsed":
        return Text(s.verdict_text, style=style)
    glyph, _, state_style = STATES[key]
    t = Text(glyph + " ", style=state_style)
    t.append(s.verdict_text, style=style)
    return t


def step_text(s: ArmSnapshot) -> Text:
    """Steps done of the current epoch: k/n; "—" before a run, or a header without
    steps_per_epoch (telemetry older than that field)."""
    # an ended run between epochs has no current epoch to count in
    if s.steps_per_epoch is None or not s.has_run or (s.state != "running" and not s.epoch_step):
        return Text("—", style="dim", justify="right")
    return Text(f"{s.epoch_step}/{s.steps_per_epoch}", justify="right")


def age_text(age_s: int | None) -> str:
    """ "updated N s ago" in a few characters: 4s, 3m05s; "—" before any record."""
    return "—" if age_s is None else fmt_duration(age_s)


def row_cells(
    s: ArmSnapshot, marked: bool, width: int | None = None, shown_name: str | None = None
) -> dict[str, Text]:
    """The text of every cell of one arm's row (``width``: of the arm column;
    ``shown_name``: the arm's short name, see cells.short_names)."""
    # A queued or not-started arm without a run has no verdict yet ("… incomplete" would be
    # a judgement on a run that does not exist).
    started = s.has_run or s.n_steps > 0
    total = "?" if s.epochs_total is None else str(s.epochs_total)
    shown = shown_name or s.name
    shown = middle_ellipsis(shown, width) if width else shown
    name = Text(shown, no_wrap=True, overflow="ellipsis")
    if not s.in_study:
        name.append(" (not in arms.toml)", style="dim")
    verdict = Text(
        s.verdict_text if started else "—",
        style=VERDICT_STYLES.get(s.verdict_label, "") if started else "dim",
    )
    return {
        "mark": Text(MARK if marked else " ", style="bold"),
        "arm": name,
        "state": state_verdict_text(s),
        "epoch": Text(f"{s.epochs_done}/{total}", justify="right"),
        "loss": num_text(s.last_loss),
        "step": step_text(s),
        "ssim": num_text(s.amp_ssim, 3),
        "val": num_text(s.best_val),
        "spark_loss": sparkline_text(*s.spark_loss, SPARK_BUCKETS),
        "spark_grad": sparkline_text(*s.spark_grad, SPARK_BUCKETS),
        "grad": num_text(s.grad_norm, 3),
        "lr": num_text(s.lr, 2),
        "sps": num_text(s.samples_per_s, 3),
        "eta": Text(fmt_duration(s.eta_s) if s.state == "running" else "—", justify="right"),
        "updated": Text(age_text(s.updated_age_s), justify="right"),
        "verdict": verdict,
    }


def _signature(text: Text) -> tuple:
    return text.plain, str(text.style), tuple(text.spans)


class ArmTable(DataTable):
    """Rows keyed by arm name; ``marked`` is the set of arms selected with space."""

    # Enter is the table's own select (so it acts on the row the cursor is on after every
    # earlier key press, in order); shown in the footer as "Detail".
    BINDINGS = [Binding("enter", "select_cursor", "Detail")]
    # Rendered cells kept by content; cleared when it grows past this many entries.
    CELL_CACHE_SIZE = 4096

    def __init__(self, names=(), **kwargs):
        super().__init__(
            cursor_type="row", zebra_stripes=False, fixed_columns=FIXED_COLUMNS, **kwargs
        )
        self.short = short_names(names)
        self.name_width = name_width(self.short.values())
        self.filter_text = ""  # "/" filter: a case-insensitive part of the name
        self.sort_index = 0  # into SORTS
        self._rebuilding = False
        self.marked: set[str] = set()
        self._snapshots: dict[str, ArmSnapshot] = {}
        self._shown: dict[tuple[str, str], tuple] = {}
        self._cells_by_content: dict[tuple, object] = {}

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ):
        """DataTable keys its cell cache on a table-wide update counter, so one changed cell
        re-renders every cell (most of the dashboard's CPU while engines write). Key rendered
        cells on their content instead; only cells whose text changed are rendered again."""
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        key = (
            row_key,
            column_key,
            self._shown.get((row_key.value, column_key.value)),
            row_index,
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._cells_by_content.get(key)
        if lines is None:
            if len(self._cells_by_content) >= self.CELL_CACHE_SIZE:
                self._cells_by_content.clear()
            lines = self._cells_by_content[key] = super()._render_cell(
                row_index, column_index, base_style, width, cursor, hover
            )
        return lines

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=self.name_width if key == "arm" else width, key=key)

    def action_cursor_right(self) -> None:
        """Left and right move a whole column: at 80 columns the right-hand half of the table
        is off screen, and a cell at a time would take dozens of key presses."""
        self._scroll_by_column(+1)

    def action_cursor_left(self) -> None:
        self._scroll_by_column(-1)

    def _scroll_by_column(self, direction: int) -> None:
        edges, x = [], 0
        for column in self.ordered_columns[FIXED_COLUMNS:]:
            edges.append(x)
            x += column.get_render_width(self)
        now = round(self.scroll_x)
        if direction > 0:
            target = next((e for e in edges if e > now), now)
        else:
            target = max((e for e in edges if e < now), default=0)
        self.scroll_to(x=target, animate=False)

    @property
    def current_arm(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # no row under the cursor
            return None
        return row_key.value

    def arm_names(self) -> list[str]:
        return [row.key.value for row in self.ordered_rows]

    def visible(self, name: str) -> bool:
        return self.filter_text.lower() in name.lower()

    def show(self, snapshots: tuple[ArmSnapshot, ...]) -> None:
        """Add rows for new arms and rewrite only the cells whose text changed."""
        added = False
        with self.app.batch_update():
            for snap in snapshots:
                self._snapshots[snap.name] = snap
                if not self.visible(snap.name):
                    continue
                cells = row_cells(
                    snap, snap.name in self.marked, self.name_width, self.short.get(snap.name)
                )
                if snap.name not in self.rows:
                    self.add_row(*(cells[k] for k, _, _ in COLUMNS), key=snap.name)
                    for key, text in cells.items():
                        self._shown[(snap.name, key)] = _signature(text)
                    added = True
                    continue
                for key, text in cells.items():
                    sig = _signature(text)
                    if self._shown.get((snap.name, key)) != sig:
                        self._shown[(snap.name, key)] = sig
                        self.update_cell(snap.name, key, text)
            if added and self.sort_index and not self._rebuilding:
                self.rebuild()

    def rebuild(self) -> None:
        """Rows again from the snapshots, filtered and in the chosen order; the cursor stays
        on its arm."""
        current = self.current_arm
        snaps = list(self._snapshots.values())
        _, key, reverse = SORTS[self.sort_index]
        if key is not None:
            snaps.sort(key=key, reverse=reverse)
        self._rebuilding = True
        try:
            self.clear()
            self._shown.clear()
            self.show(tuple(snaps))
        finally:
            self._rebuilding = False
        if current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def set_filter(self, text: str) -> None:
        """Show only the arms whose name contains ``text``."""
        self.filter_text = text
        self.rebuild()

    def cycle_sort(self) -> str:
        """The next sort key of SORTS; returns its name."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.rebuild()
        return SORTS[self.sort_index][0]

    def toggle_mark(self, name: str) -> None:
        self.marked ^= {name}
        text = Text(MARK if name in self.marked else " ", style="bold")
        self._shown[(name, "mark")] = _signature(text)
        self.update_cell(name, "mark", text)

    def snapshot(self, name: str) -> ArmSnapshot | None:
        return self._snapshots.get(name)
