"""A 2x2 grid of plots with the view state the arm detail and compare screens share: which
panels there are, their titles (saying log-y and EMA when on), the m key's one plot at a time,
and the size each plot is to be rendered at."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid

from app.widgets.plot import PlotView


def panel_title(title: str, log_y: bool, smooth: bool) -> str:
    """A plot's border title with the view's state, so a log or smoothed plot says so."""
    modes = [m for m, on in (("log y", log_y), ("EMA", smooth)) if on]
    return f"{title} [{', '.join(modes)}]" if modes else title


class PlotGrid(Grid):
    """One ``PlotView`` per ``(panel id, title)``, with the id ``<id_prefix><panel id>``."""

    def __init__(self, panels: tuple[tuple[str, str], ...], id_prefix: str, *, id: str):
        super().__init__(id=id)
        self.panels = panels
        self.id_prefix = id_prefix
        self._maximized = -1  # index into panels of the one plot shown, -1: all of them

    def compose(self) -> ComposeResult:
        for pid, title in self.panels:
            view = PlotView(id=f"{self.id_prefix}{pid}")
            view.border_title = title
            yield view

    def view(self, pid: str) -> PlotView:
        return self.query_one(f"#{self.id_prefix}{pid}", PlotView)

    def set_titles(self, log_y: bool, smooth: bool) -> None:
        for pid, title in self.panels:
            self.view(pid).border_title = panel_title(title, log_y, smooth)

    def maximize_next(self) -> None:
        """Show only the next plot, and after the last all of them again."""
        n = len(self.panels)
        self._maximized = self._maximized + 1 if self._maximized + 1 < n else -1
        for i, (pid, _) in enumerate(self.panels):
            self.view(pid).display = self._maximized in (-1, i)
        one = self._maximized >= 0
        self.styles.grid_size_columns = 1 if one else 2
        self.styles.grid_size_rows = 1 if one else 2

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Drawable (width, height) of each plot that has room."""
        sizes = {}
        for pid, _ in self.panels:
            w, h = self.view(pid).plot_size()
            if w > 0 and h > 0:
                sizes[pid] = (w, h)
        return sizes

    def show(self, texts: dict[str, Text]) -> None:
        for pid, text in texts.items():
            self.view(pid).update(text)
