"""The arm table: one row per arm, updated by difference from run-store snapshots.

The most useful columns come first, so an 80-column terminal shows arm, state, progress, losses
and the loss sparkline; the rest scroll horizontally (the mark and the arm name stay, frozen)
and are repeated in the info panel under the table. Difference updates, the cell cache, filter
and sort: app/widgets/keyed_table.py.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from app.widgets.cells import (
    STATES,
    VERDICT_STYLES,
    fmt_duration,
    num_text,
    reading_text,
    short_names,
    sparkline_text,
    state_key,
    state_text,
    unread_state_text,
)
from app.widgets.keyed_table import (
    NAME_WIDTH_MAX,  # noqa: F401 (re-exported: the run table's limit)
    KeyedTable,
    middle_ellipsis,
    num_key,
)
from app.widgets.keyed_table import name_width as _name_width
from engine.live.snapshot import SPARK_BUCKETS, ArmSnapshot

MARK = "●"

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
    ("loss", lambda s: num_key(s.last_loss), False),
    ("best val", lambda s: num_key(s.best_val), False),
    ("SSIM a", lambda s: num_key(s.amp_ssim, high_first=True), False),
    ("ETA", lambda s: num_key(s.eta_s), False),
)


def name_width(names) -> int:
    """Width of the arm column for these names: the default, up to NAME_WIDTH_MAX."""
    return _name_width(names, next(w for k, _, w in COLUMNS if k == "arm"))


def state_verdict_text(s: ArmSnapshot) -> Text:
    """The state column: the process state, with the verdict where it says more.

    A finished run shows its verdict (✔ healthy, ⇆ twin, … incomplete); a run whose verdict only
    restates its state (running, failed, stopped short) shows the state; an alarm or twin on
    a run that did not finish shows the state's glyph before the verdict (▶ ↗ diverged e5)."""
    if not s.loaded:
        return unread_state_text(s.state)
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
    if not s.loaded:
        return unread_cells(s, marked, name, total)
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


# Cells that need the run's telemetry: a placeholder until the run is read.
TELEMETRY_COLUMNS = (
    "loss",
    "step",
    "ssim",
    "val",
    "spark_loss",
    "spark_grad",
    "grad",
    "lr",
    "sps",
    "updated",
    "verdict",
)


def unread_cells(s: ArmSnapshot, marked: bool, name: Text, total: str) -> dict[str, Text]:
    """The row of a run whose telemetry is not read yet: its name, and state and epoch as
    status.json has them; every telemetry value says "reading" (engine.live.snapshot
    ``placeholder_snapshot``)."""
    widths = {k: w for k, _, w in COLUMNS}
    done = "…" if s.epochs_done < 0 else str(s.epochs_done)
    cells = {
        "mark": Text(MARK if marked else " ", style="bold"),
        "arm": name,
        "state": state_verdict_text(s),
        "epoch": Text(f"{done}/{total}", justify="right", style="dim"),
        # only a running run has an ETA: "—" for the others is already true
        "eta": reading_text(widths["eta"]) if s.state == "running" else Text("—", justify="right"),
    }
    for key in TELEMETRY_COLUMNS:
        justify = "left" if key in ("verdict", "spark_loss", "spark_grad") else "right"
        cells[key] = reading_text(widths[key], justify)
    return cells


class ArmTable(KeyedTable):
    """Rows keyed by arm name; ``marked`` is the set of arms selected with space."""

    COLUMNS = COLUMNS
    NAME_COLUMN = "arm"
    FIXED_COLUMNS = FIXED_COLUMNS
    SORTS = SORTS
    # Enter is the table's own select (so it acts on the row the cursor is on after every
    # earlier key press, in order); shown in the footer as "Detail".
    BINDINGS = [Binding("enter", "select_cursor", "Detail")]

    def __init__(self, names=(), **kwargs):
        super().__init__(short_names(names), **kwargs)
        self.marked: set[str] = set()

    def cells(self, snap: ArmSnapshot) -> dict[str, Text]:
        return row_cells(snap, snap.name in self.marked, self.name_width, self.short.get(snap.name))

    @property
    def current_arm(self) -> str | None:
        return self.current_name

    def arm_names(self) -> list[str]:
        return self.names()

    def toggle_mark(self, name: str) -> None:
        self.marked ^= {name}
        self.set_cell(name, "mark", Text(MARK if name in self.marked else " ", style="bold"))

    def snapshot(self, name: str) -> ArmSnapshot | None:
        return self.item(name)
