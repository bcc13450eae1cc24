"""A table of named rows updated by difference: the base of the run table and the group table.

Columns and rows have explicit keys (``add_columns`` would give random keys and
``update_cell`` would then raise), and only the cells whose text changed are written, all in one
``batch_update`` (docs/engineering.md, 'Dashboard'). The first ``FIXED_COLUMNS`` stay while the
rest scroll horizontally a whole column per key press; a "/" filter on the name and an "o" sort
(``SORTS``) rebuild the rows from the items last shown, keeping the cursor on its row.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

# The name column grows with the longest (short) name up to this width (sweep points are long:
# arm_stable_lowlr.seed-20260129); longer names lose their middle, not their distinguishing end.
NAME_WIDTH_MAX = 28


def name_width(names, default: int) -> int:
    """Width of the name column for these names: ``default``, up to NAME_WIDTH_MAX."""
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


def num_key(x: float | None, high_first: bool = False) -> tuple:
    """Numbers ascending (or descending), NaN/inf and missing values last."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return (1, 0.0)
    return (0, -x if high_first else x)


def _signature(text: Text) -> tuple:
    return text.plain, str(text.style), tuple(text.spans)


class KeyedTable(DataTable):
    """Rows keyed by the ``name`` of the items shown; subclasses say the columns and cells."""

    # key, label, width; the column keyed NAME_COLUMN takes ``name_width``.
    COLUMNS: tuple[tuple[str, str, int], ...] = ()
    NAME_COLUMN = "name"
    FIXED_COLUMNS = 1
    # (name, key of an item or None for the order given, reversed), in the o key's cycle order.
    SORTS: tuple = (("study order", None, False),)
    # Rendered cells kept by content; cleared when it grows past this many entries.
    CELL_CACHE_SIZE = 4096

    def __init__(self, short: dict[str, str], **kwargs):
        super().__init__(
            cursor_type="row", zebra_stripes=False, fixed_columns=self.FIXED_COLUMNS, **kwargs
        )
        self.short = short  # display names (cells.short_names)
        default = next(w for k, _, w in self.COLUMNS if k == self.NAME_COLUMN)
        self.name_width = name_width(short.values(), default)
        self.filter_text = ""  # "/" filter: a case-insensitive part of the name
        self.sort_index = 0  # into SORTS
        self._rebuilding = False
        self._items: dict[str, object] = {}
        self._shown: dict[tuple[str, str], tuple] = {}
        self._cells_by_content: dict[tuple, object] = {}

    def cells(self, item) -> dict[str, Text]:
        """The text of every cell of the item's row."""
        raise NotImplementedError

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
        for key, label, width in self.COLUMNS:
            self.add_column(
                label, width=self.name_width if key == self.NAME_COLUMN else width, key=key
            )

    def action_cursor_right(self) -> None:
        """Left and right move a whole column: at 80 columns the right-hand half of the table
        is off screen, and a cell at a time would take dozens of key presses."""
        self._scroll_by_column(+1)

    def action_cursor_left(self) -> None:
        self._scroll_by_column(-1)

    def _scroll_by_column(self, direction: int) -> None:
        edges, x = [], 0
        for column in self.ordered_columns[self.FIXED_COLUMNS :]:
            edges.append(x)
            x += column.get_render_width(self)
        now = round(self.scroll_x)
        if direction > 0:
            target = next((e for e in edges if e > now), now)
        else:
            target = max((e for e in edges if e < now), default=0)
        self.scroll_to(x=target, animate=False)

    @property
    def current_name(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except Exception:  # no row under the cursor
            return None
        return row_key.value

    def names(self) -> list[str]:
        """The names of the rows shown, in table order."""
        return [row.key.value for row in self.ordered_rows]

    def item(self, name: str):
        return self._items.get(name)

    @property
    def items_shown(self) -> dict:
        """The items last given to ``show``, by name (filtered-out ones included)."""
        return self._items

    def visible(self, name: str) -> bool:
        return self.filter_text.lower() in name.lower()

    def show(self, items) -> None:
        """Add rows for new items and rewrite only the cells whose text changed; an item that
        is the very object shown last time is taken as unchanged."""
        added = False
        with self.app.batch_update():
            for item in items:
                name = item.name
                # The store hands out the same snapshot object until its row changes: with
                # hundreds of runs, most rows are skipped here without building their cells.
                same = self._items.get(name) is item
                self._items[name] = item
                if not self.visible(name) or (same and name in self.rows):
                    continue
                cells = self.cells(item)
                if name not in self.rows:
                    self.add_row(*(cells[k] for k, _, _ in self.COLUMNS), key=name)
                    for key, text in cells.items():
                        self._shown[(name, key)] = _signature(text)
                    added = True
                    continue
                for key, text in cells.items():
                    self.set_cell(name, key, text)
            if added and self.sort_index and not self._rebuilding:
                self.rebuild()

    def set_cell(self, name: str, key: str, text: Text) -> None:
        """Write one cell, unless it already shows this text."""
        sig = _signature(text)
        if self._shown.get((name, key)) != sig:
            self._shown[(name, key)] = sig
            self.update_cell(name, key, text)

    def rebuild(self) -> None:
        """Rows again from the items, filtered and in the chosen order; the cursor stays on
        its row."""
        current = self.current_name
        items = list(self._items.values())
        _, key, reverse = self.SORTS[self.sort_index]
        if key is not None:
            items.sort(key=key, reverse=reverse)
        self._rebuilding = True
        try:
            self.clear()
            self._shown.clear()
            self.show(items)
        finally:
            self._rebuilding = False
        if current in self.rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    def set_filter(self, text: str) -> None:
        """Show only the rows whose name contains ``text``."""
        self.filter_text = text
        self.rebuild()

    def cycle_sort(self) -> str:
        """The next sort key of SORTS; returns its name."""
        self.sort_index = (self.sort_index + 1) % len(self.SORTS)
        self.rebuild()
        return self.SORTS[self.sort_index][0]
