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
from app.widgets.plot import Curve, PlotView, plot_sizes, render_plot
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
PANELS = (
    ("val", "val loss (per epoch)"),
    ("loss", "train loss (per step)"),
    ("grad", "grad norm, pre-clip (per step)"),
    ("amp", "object amplitude error vs ground truth (per epoch)"),
)


def compare_curves(panel: str, arms: list[PlotData]) -> list[Curve]:
    curves = []
    for i, d in enumerate(arms):
        marker, color = STYLES[i % len(STYLES)]
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


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Log y"),
        Binding("e", "toggle_ema", "EMA"),
    ]

    log_y = reactive(False)
    smooth = reactive(False)

    def __init__(self, arms: list[str]):
        super().__init__()
        self.arms = list(arms)
        self._versions: tuple | None = None
        self._throttle = RedrawThrottle(self, self.redraw)

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
        self.redraw()

    def watch_smooth(self) -> None:
        self.redraw()

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
