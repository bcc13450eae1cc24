"""The group table: one row per sweep group (app/sweep_groups.py), and its info panel text.

At 80 columns it shows the group, its collapse fraction with the 95 % Wilson interval, its
verdict counts and its runs' states; the best validation loss and amplitude SSIM (median and
range over the runs that count) scroll under the frozen group name and are repeated, with
every run of the group, in the info panel.
"""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.binding import Binding

from app.sweep_groups import GroupRow
from app.widgets.arm_table import state_verdict_text
from app.widgets.cells import READING, STATES, fmt_num, reading_text, short_names, state_key
from app.widgets.keyed_table import KeyedTable, middle_ellipsis, num_key
from engine.reporting.outcomes import fraction_text, states_text

COLUMNS = (
    ("group", "group", 17),
    ("collapse", "collapsed", 15),  # "10/20 (29–71 %)"
    ("verdicts", "verdicts", 16),
    ("runs", "runs", 12),
    ("val", "best val", 20),
    ("ssim", "SSIM a", 20),
)


def _median(row: GroupRow, metric: str) -> float | None:
    return row.outcome[metric]["median"] if row.outcome else None


def _fraction(row: GroupRow) -> float | None:
    return row.outcome["collapse_fraction"] if row.outcome else None


def read_text(row: GroupRow) -> str:
    """How far the first read is with the group's runs: '… 2 of 5 read'."""
    n = len(row.snapshots)
    return f"… {n - row.unread} of {n} read"


SORTS = (
    ("study order", None, False),
    ("name", lambda g: g.name, False),
    ("collapsed", lambda g: num_key(_fraction(g), high_first=True), False),
    ("best val", lambda g: num_key(_median(g, "val_loss_best")), False),
    ("SSIM a", lambda g: num_key(_median(g, "amp_ssim"), high_first=True), False),
)


def collapse_text(row: GroupRow, short: bool = True) -> Text:
    """'1/3 (6–79 %)', red when a counted run collapsed, dim while nothing counts yet (or
    while some runs are not read: '… 2 of 5 read')."""
    if row.outcome is None:
        return Text(read_text(row), style="dim italic")
    k, n = row.outcome["collapsed"], row.outcome["counted"]
    style = "dim" if not n else ("bold red" if k else "green")
    return Text(fraction_text(k, n, short=short), style=style)


def states_cells_text(row: GroupRow) -> Text:
    """The runs' states as glyph and count: '✔2 ▶1' (the words are in the info panel)."""
    counts = Counter(state_key(s.state, False) for s in row.snapshots)
    order = list(STATES)
    t = Text()
    # what is happening first, what has not begun last
    for key in sorted(counts, key=lambda k: (k == "not started", order.index(k))):
        glyph, _, style = STATES[key]
        t.append(" " if t else "")
        t.append(f"{glyph}{counts[key]}", style=style)
    return t


def spread_text(spread: dict, digits: int = 4) -> Text:
    """'0.2 (0.1–0.3)': the median and range of the counted runs; one run: its value."""
    if not spread["n"]:
        return Text("—", style="dim", justify="right")
    median = fmt_num(spread["median"], digits)
    if spread["min"] == spread["max"]:
        return Text(median, justify="right")
    lo, hi = fmt_num(spread["min"], 3), fmt_num(spread["max"], 3)
    return Text(f"{median} ({lo}–{hi})", justify="right")


def group_cells(row: GroupRow, width: int | None = None, shown: str | None = None) -> dict:
    name = shown or row.name
    name = middle_ellipsis(name, width) if width else name
    if row.outcome is None:  # runs not read yet: no statistics (see app/sweep_groups.py)
        widths = {k: w for k, _, w in COLUMNS}
        return {
            "group": Text(name, no_wrap=True, overflow="ellipsis"),
            "collapse": collapse_text(row),
            "verdicts": reading_text(widths["verdicts"], "left"),
            "runs": states_cells_text(row),
            "val": reading_text(widths["val"]),
            "ssim": reading_text(widths["ssim"]),
        }
    return {
        "group": Text(name, no_wrap=True, overflow="ellipsis"),
        "collapse": collapse_text(row),
        "verdicts": Text(row.outcome["verdicts_text"] or "—"),
        "runs": states_cells_text(row),
        "val": spread_text(row.outcome["val_loss_best"]),
        "ssim": spread_text(row.outcome["amp_ssim"], 3),
    }


def group_info_text(row: GroupRow | None) -> Text:
    """Everything the group row has, in words, and each run of the group with its state."""
    if row is None:
        return Text("no runs", style="dim")
    out = row.outcome
    t = Text()
    t.append(row.name, style="bold")
    count = f"{len(row.snapshots)} run{'s' if len(row.snapshots) != 1 else ''}"
    sweeps = f" · sweep {', '.join(row.sweeps)}" if row.sweeps else " · no sweep"
    if out is None:
        t.append(f"  {count}{sweeps}")
        t.append(
            f"\n{READING} {read_text(row)[2:]}: the collapse fraction, verdicts and values wait "
            "for every run of the group",
            style="dim",
        )
        t.append("\n")
        for i, (s, label) in enumerate(zip(row.snapshots, row.labels)):
            t.append(" · " if i else "")
            t.append(f"{label} ")
            t.append_text(state_verdict_text(s))
        return t
    t.append(f"  {count}{sweeps} · {states_text(out['states'])}")
    t.append("\ncollapsed ")
    t.append_text(collapse_text(row, short=False))
    t.append(f" · verdicts {out['verdicts_text'] or '—'}")
    val, ssim = out["val_loss_best"], out["amp_ssim"]
    t.append(f"\nbest val {spread_text(val).plain} · final amp SSIM {spread_text(ssim, 3).plain}")
    t.append("\n")
    for i, (s, label) in enumerate(zip(row.snapshots, row.labels)):
        t.append(" · " if i else "")
        t.append(f"{label} ")
        t.append_text(state_verdict_text(s))
    t.append(
        "\nvalues: median (min–max) of the counted runs, those that ended and trained (not "
        "queued, running, stale, failed or incomplete) · enter compares the runs, r runs "
        "them, s stops them",
        style="dim",
    )
    return t


class GroupTable(KeyedTable):
    """Rows keyed by group name; fed snapshots' groups (``sweep_groups.group_rows``)."""

    # Takes the run table's place: the height fnotui.tcss gives ArmTable.
    DEFAULT_CSS = "GroupTable { height: 1fr; }"
    COLUMNS = COLUMNS
    NAME_COLUMN = "group"
    FIXED_COLUMNS = 1
    SORTS = SORTS
    # Enter compares the group's runs (one run: its detail); shown in the footer.
    BINDINGS = [Binding("enter", "select_cursor", "Compare")]

    def __init__(self, names=(), **kwargs):
        super().__init__(short_names(names), **kwargs)

    def cells(self, row: GroupRow) -> dict[str, Text]:
        return group_cells(row, self.name_width, self.short.get(row.name))

    def group(self, name: str | None) -> GroupRow | None:
        return self.item(name) if name else None
