"""Arm detail: curves (log-y and EMA toggles), final metrics and events, resolved config,
reconstruction."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from app.screens.plot_screen import PlotScreen
from app.widgets.config_view import config_text
from app.widgets.events_table import EventsTable, events_summary
from app.widgets.filestat import file_key
from app.widgets.final_metrics import final_metrics_text, read_metrics_json
from app.widgets.plot import render_plot
from app.widgets.plot_grid import PlotGrid
from app.widgets.recon import ReconPanel, read_recon
from app.widgets.run_curves import detail_curves
from engine.live.snapshot import PlotData
from engine.runs.rundir import RECON_FILE, RunDir

PANELS = (
    ("loss", "loss"),
    ("grad", "grad norm"),
    ("lr", "learning rate"),
    ("amp", "object amplitude: output spread, error vs truth and vs twin"),
)


class ArmDetailScreen(PlotScreen):
    BINDINGS = [
        Binding("1", "tab('curves')", "Curves"),
        Binding("2", "tab('events')", "Metrics"),
        Binding("3", "tab('config')", "Config"),
        Binding("4", "tab('recon')", "Recon"),
        Binding("m", "maximize", "Max plot"),
        Binding("t", "tail", "Log", show=False),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, arm: str):
        super().__init__([arm])
        self.arm = arm
        self._header_shown: object = ()
        self._recon_key: object = ()  # never a stat key: the first look always shows a note
        self._metrics_key: object = None
        self._metrics: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="curves"):
            with TabPane("Curves", id="curves"):
                yield PlotGrid(PANELS, "plot-", id="plots")
            with TabPane("Metrics+events", id="events"):
                yield Static(id="final-metrics", markup=False)
                yield Static(id="events-summary", markup=False)
                yield EventsTable(id="events-table")
            with TabPane("Config", id="config"), VerticalScroll():
                yield Static(id="config-text")
            with TabPane("Recon", id="recon"):
                yield Static(id="recon-note", markup=False)
                yield ReconPanel(id="recon-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.arm

    def _snapshot(self):
        return next((s for s in self.app.snapshots if s.name == self.arm), None)

    def _on_snapshots(self, snapshots) -> None:
        super()._on_snapshots(snapshots)
        self._check_recon(self._snapshot())

    def on_tabbed_content_tab_activated(self, _event) -> None:
        self.call_after_refresh(self.redraw)
        self._check_recon(self._snapshot())

    def action_maximize(self) -> None:
        self.action_tab("curves")
        super().action_maximize()

    def action_tail(self) -> None:
        from app.screens.logtail import LogTailScreen

        self.app.push_screen(LogTailScreen(self.arm))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # -- drawing -----------------------------------------------------------------------------

    def plots_visible(self) -> bool:
        return self.query_one(TabbedContent).active == "curves"

    @work(
        thread=True,
        exclusive=True,
        group="detail-plots",
        description="draw the curves",
        exit_on_error=False,
    )
    def _draw_plots(self, sizes: dict[str, tuple[int, int]], log_y: bool, smooth: bool) -> None:
        data = self.app.store.plot_data(self.arm)
        texts = {
            pid: render_plot(detail_curves(pid, data), w, h, log_y=log_y, smooth=smooth)
            for pid, (w, h) in sizes.items()
        }
        snap = self._snapshot()
        final = final_metrics_text(self._metrics_json(), data.metrics, snap.state if snap else None)
        self.app.call_from_thread(self._put, texts, data, final)

    def _metrics_json(self) -> dict | None:
        """metrics.json, re-read only when the file changed (a re-evaluation rewrites it).
        Runs in the plot worker, which is exclusive, so the cache needs no lock."""
        path = RunDir(self.app.store.run_dir(self.arm)).metrics
        key = file_key(path)
        if key != self._metrics_key:
            self._metrics_key = key
            self._metrics = read_metrics_json(path) if key is not None else None
        return self._metrics

    def _put(self, texts: dict[str, Text], data: PlotData, final: Text) -> None:
        if not self.is_mounted:
            return
        self._put_plots(texts, (data.version,))
        self.query_one("#final-metrics", Static).update(final)
        self.query_one(EventsTable).show(data.events)
        self.query_one("#events-summary", Static).update(events_summary(data.events))
        if data.header is not self._header_shown:
            self._header_shown = data.header
            arm_cfg = self.app.study.arms.get(self.arm)
            self.query_one("#config-text", Static).update(
                config_text(data.header, arm_cfg.to_dict() if arm_cfg else None)
            )

    # -- reconstruction ----------------------------------------------------------------------

    def _check_recon(self, snap) -> None:
        if snap is None or self.query_one(TabbedContent).active != "recon":
            return
        self._load_recon(RunDir(self.app.store.run_dir(self.arm)).recon)

    @work(
        thread=True,
        exclusive=True,
        group="detail-recon",
        description=f"read {RECON_FILE}",
        exit_on_error=False,
    )
    def _load_recon(self, path) -> None:
        key = file_key(path)
        if key == self._recon_key:
            return
        arrays = read_recon(path) if key is not None else {}
        self.app.call_from_thread(self._put_recon, key, arrays)

    def _put_recon(self, key, arrays: dict) -> None:
        self._recon_key = key
        note = self.query_one("#recon-note", Static)
        panel = self.query_one(ReconPanel)
        if not arrays:
            note.update("no recon.npz yet: it is written after the final evaluation")
            panel.display = False
            return
        panel.display = True
        note.update(
            "left: recon (on the ground truth's scale) · right: ground truth · magenta: NaN"
        )
        panel.show(arrays)
