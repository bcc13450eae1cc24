"""The arm table: one row per arm, updated by difference from run-store snapshots.

Columns and rows have explicit keys (``add_columns`` would give random keys and
``update_cell`` would then raise), and only the cells whose text changed are written, all in one
``batch_update`` (docs/engineering.md, 'Dashboard'). The most useful columns come first, so an
80-column terminal shows arm, state, progress, losses and the loss sparkline; the rest scroll
horizontally and are repeated in the info panel under the table.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from app.widgets.cells import (
    VERDICT_STYLES,
    fmt_duration,
    num_text,
    sparkline_text,
    state_text,
)
from engine.live.snapshot import SPARK_BUCKETS, ArmSnapshot

MARK = "●"
# The arm column grows with the study's longest name up to this width (sweep points are long:
# arm_stable_lowlr.seed-20260129); longer names lose their middle, not their distinguishing end.
NAME_WIDTH_MAX = 28

# key, label, width
COLUMNS = (
    ("mark", " ", 1),
    ("arm", "arm", 17),
    ("state", "state", 13),
    ("epoch", "epoch", 7),  # "120/400": a long study must not lose a digit
    ("loss", "loss", 7),
    ("val", "best val", 8),
    ("spark_loss", "loss ~", SPARK_BUCKETS),
    ("spark_grad", "|g| ~", SPARK_BUCKETS),
    ("grad", "|g|", 7),
    ("lr", "lr", 7),
    ("sps", "smp/s", 6),
    ("eta", "ETA", 7),
    ("verdict", "verdict", 16),
)


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


def row_cells(s: ArmSnapshot, marked: bool, width: int | None = None) -> dict[str, Text]:
    """The text of every cell of one arm's row (``width``: of the arm column)."""
    started = s.state != "not started" or s.n_steps > 0
    total = "?" if s.epochs_total is None else str(s.epochs_total)
    shown = middle_ellipsis(s.name, width) if width else s.name
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
        "state": state_text(s.state, s.collapsed),
        "epoch": Text(f"{s.epochs_done}/{total}", justify="right"),
        "loss": num_text(s.last_loss),
        "val": num_text(s.best_val),
        "spark_loss": sparkline_text(*s.spark_loss, SPARK_BUCKETS),
        "spark_grad": sparkline_text(*s.spark_grad, SPARK_BUCKETS),
        "grad": num_text(s.grad_norm, 3),
        "lr": num_text(s.lr, 2),
        "sps": num_text(s.samples_per_s, 3),
        "eta": Text(fmt_duration(s.eta_s) if s.state == "running" else "—", justify="right"),
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
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.name_width = name_width(names)
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
        for column in self.ordered_columns:
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

    def show(self, snapshots: tuple[ArmSnapshot, ...]) -> None:
        """Add rows for new arms and rewrite only the cells whose text changed."""
        with self.app.batch_update():
            for snap in snapshots:
                self._snapshots[snap.name] = snap
                cells = row_cells(snap, snap.name in self.marked, self.name_width)
                if snap.name not in self.rows:
                    self.add_row(*(cells[k] for k, _, _ in COLUMNS), key=snap.name)
                    for key, text in cells.items():
                        self._shown[(snap.name, key)] = _signature(text)
                    continue
                for key, text in cells.items():
                    sig = _signature(text)
                    if self._shown.get((snap.name, key)) != sig:
                        self._shown[(snap.name, key)] = sig
                        self.update_cell(snap.name, key, text)

    def toggle_mark(self, name: str) -> None:
        self.marked ^= {name}
        text = Text(MARK if name in self.marked else " ", style="bold")
        self._shown[(name, "mark")] = _signature(text)
        self.update_cell(name, "mark", text)

    def snapshot(self, name: str) -> ArmSnapshot | None:
        return self._snapshots.get(name)
