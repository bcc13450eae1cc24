"""What the arm detail and compare screens share: a ``PlotGrid``, log-y and EMA toggles that the
plot titles show, m for one plot at a time, and redraws throttled while engines write and
rendered off the event loop."""

from __future__ import annotations

from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from app.screens.throttle import RedrawThrottle
from app.widgets.plot_grid import PlotGrid


class PlotScreen(Screen):
    """A subclass composes one ``PlotGrid``, names the runs it plots in ``runs`` and renders
    in ``_draw_plots`` (a thread worker) what ``_put_plots`` then shows."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Log y"),
        Binding("e", "toggle_ema", "EMA"),
    ]

    log_y = reactive(False)
    smooth = reactive(False)

    def __init__(self, runs: list[str]):
        super().__init__()
        self.runs = list(runs)
        self._drawn_versions: tuple | None = None
        self._throttle = RedrawThrottle(self, self.redraw)

    @property
    def plots(self) -> PlotGrid:
        return self.query_one(PlotGrid)

    def on_mount(self) -> None:
        self.watch(self.app, "snapshots", self._on_snapshots)
        self.call_after_refresh(self.redraw)

    def _on_snapshots(self, snapshots) -> None:
        versions = tuple(s.version for s in snapshots if s.name in self.runs)
        if versions and versions != self._drawn_versions:
            self._throttle.request()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def watch_log_y(self) -> None:
        self._modes_changed()

    def watch_smooth(self) -> None:
        self._modes_changed()

    def _modes_changed(self) -> None:
        self.plots.set_titles(self.log_y, self.smooth)
        self.redraw()

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.notify(f"log y {'on' if self.log_y else 'off'}", timeout=1.5)

    def action_toggle_ema(self) -> None:
        self.smooth = not self.smooth
        self.notify(f"EMA smoothing {'on' if self.smooth else 'off'}", timeout=1.5)

    def action_maximize(self) -> None:
        self.plots.maximize_next()
        self.set_timer(0.1, self.redraw)  # after the new grid layout

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def plots_visible(self) -> bool:
        """Whether the grid is on screen (plots hidden behind a tab are not rendered)."""
        return True

    def redraw(self) -> None:
        self._throttle.starting()
        if not self.is_mounted:
            return
        sizes = self.plots.sizes() if self.plots_visible() else {}
        self._throttle.drawn()
        self._draw_plots(sizes, self.log_y, self.smooth)

    def _draw_plots(self, sizes: dict[str, tuple[int, int]], log_y: bool, smooth: bool) -> None:
        raise NotImplementedError

    def _put_plots(self, texts: dict, versions: tuple) -> None:
        """On the UI thread: the rendered plots of the runs at these telemetry versions."""
        self._drawn_versions = versions
        self.plots.show(texts)
