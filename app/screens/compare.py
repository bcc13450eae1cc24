"""Compare: the curves of two or more arms overlaid, one marker and colour per arm."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header

from app.screens.detail import object_error
from app.screens.throttle import RedrawThrottle
from app.widgets.cells import short_names
from app.widgets.plot import (
    Curve,
    PlotView,
    maximize_next,
    panel_title,
    plot_sizes,
    render_plot,
)
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
        d = _renamed(d, names[d.name])
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


def _renamed(d: PlotData, name: str) -> PlotData:
    from dataclasses import replace

    return replace(d, name=name)


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Log y"),
        Binding("e", "toggle_ema", "EMA"),
        Binding("m", "maximize", "Max plot"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    log_y = reactive(False)
    smooth = reactive(False)

    def __init__(self, arms: list[str]):
        super().__init__()
        self.arms = list(arms)
        self._versions: tuple | None = None
        self._throttle = RedrawThrottle(self, self.redraw)
        self._maximized = -1

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="compare-plots"):
            for pid, title in PANELS:
                view = PlotView(id=f"cmp-{pid}")
                view.border_title = title
                yield view
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "compare " + ", ".join(self.arms)
        self.watch(self.app, "snapshots", self._on_snapshots)
        self.call_after_refresh(self.redraw)

    def _on_snapshots(self, snapshots) -> None:
        versions = tuple(s.version for s in snapshots if s.name in self.arms)
        if versions == self._versions:
            return
        self._throttle.request()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def watch_log_y(self) -> None:
        self._titles()
        self.redraw()

    def watch_smooth(self) -> None:
        self._titles()
        self.redraw()

    def _titles(self) -> None:
        for pid, title in PANELS:
            view = self.query_one(f"#cmp-{pid}", PlotView)
            view.border_title = panel_title(title, self.log_y, self.smooth)

    def action_maximize(self) -> None:
        self._maximized = maximize_next(
            self, "compare-plots", "cmp-", (pid for pid, _ in PANELS), self._maximized
        )
        self.set_timer(0.1, self.redraw)  # after the new grid layout

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y

    def action_toggle_ema(self) -> None:
        self.smooth = not self.smooth

    def redraw(self) -> None:
        self._throttle.starting()
        if not self.is_mounted:
            return
        sizes = plot_sizes(self, "cmp-", (pid for pid, _ in PANELS))
        self._throttle.drawn()
        self._draw_plots(sizes, self.log_y, self.smooth)

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

    def _put(self, texts: dict[str, Text], versions: tuple) -> None:
        if not self.is_mounted:
            return
        self._versions = versions
        for pid, text in texts.items():
            self.query_one(f"#cmp-{pid}", PlotView).update(text)
