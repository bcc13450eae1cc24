"""Compare: the curves of two or more arms overlaid, one marker and colour per arm."""

from __future__ import annotations

from dataclasses import replace

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header

from app.screens.plot_screen import PlotScreen
from app.widgets.cells import short_names
from app.widgets.plot import Curve, render_plot
from app.widgets.plot_grid import PlotGrid
from app.widgets.run_curves import object_error
from engine.live.snapshot import PlotData

# Each arm gets its own marker character as well as a colour: nothing said by colour alone.
STYLES = (
    ("•", "cyan"),
    ("x", "yellow"),
    ("+", "magenta"),
    ("o", "green"),
    ("*", "red"),
    ("#", "blue"),
    ("%", "white"),
    ("@", "cyan"),
)
# Short names up to this length are shown whole in a legend.
LEGEND_NAME_MAX = 16
PANELS = (
    ("val", "val loss (per epoch)"),
    ("loss", "train loss (per step)"),
    ("grad", "grad norm, pre-clip (per step)"),
    ("amp", "object amplitude error vs ground truth (per epoch)"),
)


def legend_names(names: list[str]) -> dict[str, str]:
    """Names that tell the compared arms apart in a legend: the study's short names
    (cells.short_names), less a prefix every compared arm shares when that leaves each one
    something of its own (arm_stable_warmup, arm_stable_lowlr -> warmup, lowlr)."""
    short = short_names(names)
    shown = [short[n] for n in names]
    if max(map(len, shown)) <= LEGEND_NAME_MAX:
        return short
    prefix = _common_prefix(shown) if len(shown) > 1 else ""
    # cut at a word boundary, and never to nothing
    cut = max(prefix.rfind("_"), prefix.rfind("."), prefix.rfind("-")) + 1 if prefix else 0
    if cut and all(len(s) > cut for s in shown):
        return {n: "…" + short[n][cut:] for n in names}
    return short


def _common_prefix(names: list[str]) -> str:
    first, last = min(names), max(names)
    i = 0
    while i < len(first) and i < len(last) and first[i] == last[i]:
        i += 1
    return first[:i]


def compare_curves(panel: str, arms: list[PlotData]) -> list[Curve]:
    curves = []
    names = legend_names([d.name for d in arms])
    for i, d in enumerate(arms):
        marker, color = STYLES[i % len(STYLES)]
        d = replace(d, name=names[d.name])
        if panel == "val":
            curves.append(Curve(d.name, *d.epochs["val_loss"], marker, color, smoothable=False))
        elif panel == "loss":
            curves.append(Curve(d.name, *d.steps["loss"], marker, color))
        elif panel == "grad":
            curves.append(Curve(d.name, *d.steps["grad_norm"], marker, color))
        else:
            # What separates arms of equal loss (docs/studies/stage_a_h100): the object.
            curves.append(Curve(d.name, *object_error(d), marker, color, smoothable=False))
    return curves


class CompareScreen(PlotScreen):
    """The runs named in ``arms`` overlaid (any runs of the study: arms, sweep points)."""

    BINDINGS = [
        Binding("m", "maximize", "Max plot"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, arms: list[str]):
        super().__init__(arms)
        self.arms = self.runs

    def compose(self) -> ComposeResult:
        yield Header()
        yield PlotGrid(PANELS, "cmp-", id="compare-plots")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(self.arms)

    @work(
        thread=True,
        exclusive=True,
        group="compare-plots",
        description="draw the curves",
        exit_on_error=False,
    )
    def _draw_plots(self, sizes, log_y: bool, smooth: bool) -> None:
        data = [self.app.store.plot_data(name) for name in self.arms]
        texts = {
            pid: render_plot(compare_curves(pid, data), w, h, log_y=log_y, smooth=smooth)
            for pid, (w, h) in sizes.items()
        }
        self.app.call_from_thread(self._put, texts, tuple(d.version for d in data))

    def _put(self, texts: dict, versions: tuple) -> None:
        if self.is_mounted:
            self._put_plots(texts, versions)
