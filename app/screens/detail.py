"""Arm detail: curves (log-y and EMA toggles), final metrics and events, resolved config,
reconstruction."""

from __future__ import annotations

import json

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from app.screens.throttle import RedrawThrottle
from app.widgets.cells import fmt_num, severity_text
from app.widgets.image import HalfBlockImage, describe, display_range
from app.widgets.plot import (
    Curve,
    PlotView,
    maximize_next,
    panel_title,
    plot_sizes,
    render_plot,
)
from engine.live.snapshot import PlotData
from engine.runs.rundir import METRICS_FILE, RECON_FILE, RunDir

# Plots are rebuilt at most this often while an engine writes (plotext is not free).
RECON_KEYS = ("recon_amplitude", "gt_amplitude", "recon_phase", "gt_phase")
# Final-metrics columns: (label, metrics.json pair name).
FINAL_COLUMNS = (("SSIM", "ssim"), ("PSNR", "psnr"), ("MAE", "mae"), ("FRC50", "frc50"))


def detail_curves(panel: str, d: PlotData) -> list[Curve]:
    s, e = d.steps, d.epochs
    if panel == "loss":
        return [
            Curve("step loss", *s["loss"], "braille", "cyan"),
            Curve("train", *e["train_loss"], "•", "yellow", smoothable=False),
            Curve("val", *e["val_loss"], "x", "magenta", smoothable=False),
        ]
    if panel == "grad":
        curves = [Curve("pre-clip", *s["grad_norm"], "braille", "cyan")]
        if len(s["grad_norm_clipped"][0]):
            curves.append(Curve("post-clip", *s["grad_norm_clipped"], "+", "green"))
        return curves
    if panel == "lr":
        if len(s["lr"][0]):
            return [Curve("lr (per step)", *s["lr"], "braille", "cyan", smoothable=False)]
        return [Curve("lr", *e["lr"], "•", "cyan", smoothable=False)]
    # Spread (near zero = constant-output collapse) and the error against the ground truth and
    # against its twin, which the loss cannot see (phase-retrieval ambiguities): all in object
    # amplitude units, the units of the final amplitude MAE.
    norm = object_scale(d)
    curves = [
        Curve("spread", *_scaled(e["pred_amp_std"], norm), "•", "cyan", smoothable=False),
        Curve("GT spread", *_scaled(e["target_amp_std"], norm), "-", "green", smoothable=False),
        Curve("error vs GT", *object_error(d), "x", "magenta", smoothable=False),
    ]
    if len(e.get("val_amp_mae_twin", ((), ()))[0]):
        curves.append(
            Curve("error vs twin", *e["val_amp_mae_twin"], "+", "yellow", smoothable=False)
        )
    return curves


def object_scale(d: PlotData) -> float:
    """The test split's norm_Y_I: normalised patch amplitude -> object amplitude (1 if the
    header does not say)."""
    norms = ((d.header or {}).get("dataset") or {}).get("norm_Y_I") or {}
    value = norms.get("test") if isinstance(norms, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def object_error(d: PlotData) -> tuple[np.ndarray, np.ndarray]:
    """val_amp_mae in object amplitude units. Runs written before the twin-aware validation
    (no val_amp_mae_twin) logged it in normalised patch units: converted here."""
    x, y = d.epochs["val_amp_mae"]
    if len(d.epochs.get("val_amp_mae_twin", ((), ()))[0]):
        return x, y
    return x, y * object_scale(d)


def _scaled(series: tuple[np.ndarray, np.ndarray], factor: float):
    x, y = series
    return x, y * factor


PANELS = (
    ("loss", "loss"),
    ("grad", "grad norm"),
    ("lr", "learning rate"),
    ("amp", "object amplitude: output spread, error vs truth and vs twin"),
)


def config_text(header: dict | None, fallback: dict | None) -> Text:
    """The resolved config as the engine logged it (read back from the live objects);
    before a run exists, the config arms.toml resolves to."""
    t = Text()
    if header is None:
        t.append("not started: the config arms.toml resolves to\n\n", style="dim")
        _tree(t, fallback or {}, 0)
        return t
    for key in (
        "parameters",
        "channel_schedule",
        "device",
        "torch",
        "host",
        "pid",
        "n_train",
        "n_test",
        "steps_per_epoch",
        "target_amp_std",
    ):
        if key in header:
            _tree(t, {key: header[key]}, 0)
    for key in ("config", "optimizer", "scheduler", "clip", "physics", "seeding", "dataset"):
        if key in header:
            t.append(f"\n[{key}]\n", style="bold")
            value = header[key]
            _tree(t, value if isinstance(value, dict) else {key: value}, 0)
    return t


def _tree(t: Text, d: dict, depth: int) -> None:
    pad = "  " * depth
    for key, value in d.items():
        if isinstance(value, dict):
            t.append(f"{pad}{key}:\n", style="bold" if depth == 0 else "")
            _tree(t, value, depth + 1)
        else:
            shown = json.dumps(value) if not isinstance(value, float) else fmt_num(value, 6)
            t.append(f"{pad}{key} = ")
            t.append(shown + "\n", style="cyan")


def final_metrics_text(metrics: dict | None, record: dict | None, state: str | None = None) -> Text:
    """The final evaluation of a run: metrics.json when it was read (the full object, with the
    twin block), else the telemetry ``metrics`` record's headline (what a run directory without
    metrics.json, or a mirror still fetching it, has).

    Without either: "not recorded" for a run that finished without writing them (telemetry
    older than the final-metrics record), "no data yet" for one that has not finished."""
    t = Text()
    if isinstance(metrics, dict):
        source, pairs = METRICS_FILE, metrics
        twin = metrics.get("twin") if isinstance(metrics.get("twin"), dict) else {}
        fraction, undecidable = twin.get("fraction"), twin.get("undecidable_fraction")
        vs_twin = (twin.get("metrics") or {}).get("ssim")
        vacuous = bool(metrics.get("phase_vacuous"))
        reevaluated = bool(metrics.get("reevaluated_at"))
    elif isinstance(record, dict) and isinstance(record.get("metrics"), dict):
        source, pairs = "telemetry", record["metrics"]
        fraction = pairs.get("twin_fraction")
        undecidable = pairs.get("twin_undecidable_fraction")
        vs_twin = pairs.get("ssim_vs_twin")
        vacuous = False
        reevaluated = bool(record.get("reevaluated"))
    else:
        t.append("final metrics: ", style="bold")
        if state == "finished":
            t.append(
                "not recorded (this run's telemetry has no final metrics record; "
                "fnotui evaluate re-scores the run)",
                style="dim",
            )
        else:
            t.append("no data yet (written when the run finishes its evaluation)", style="dim")
        return t
    again = ", re-evaluated" if reevaluated else ""
    # A run stopped by the user and re-scored says where its weights come from.
    weights = (metrics if isinstance(metrics, dict) else record or {}).get("weights")
    which = f"weights {weights}" if weights and weights != "last epoch" else "last epoch's weights"
    t.append(f"final metrics, {which} ({source}{again})\n", style="bold")
    t.append(f"{'':7}" + "".join(f"{label:>10}" for label, _ in FINAL_COLUMNS) + "\n")
    for i, channel in enumerate(("amp", "phase")):
        t.append(f"  {channel:<5}")
        for _, name in FINAL_COLUMNS:
            pair = pairs.get(name)
            value = pair[i] if isinstance(pair, list) and len(pair) == 2 else None
            t.append(f"{fmt_num(value):>10}")
        if i == 1 and vacuous:
            t.append("  (vacuous: constant GT phase)", style="dim")
        t.append("\n")
    t.append("  twin   ")
    if fraction is None and undecidable is None:
        t.append(
            "not recorded (older evaluation code: fnotui evaluate re-scores the run)", style="dim"
        )
        return t
    t.append(f"fraction {fmt_num(fraction, 3)}", style="bold")
    t.append(" of decidable patches")
    if isinstance(undecidable, (int, float)):
        t.append(f" ({undecidable:.0%} undecidable)")
    if isinstance(vs_twin, list) and len(vs_twin) == 2:
        t.append(
            f"\n{'':9}SSIM vs twin {fmt_num(vs_twin[0])} / {fmt_num(vs_twin[1])} (amp / phase)"
        )
    else:
        t.append(f"\n{'':9}SSIM vs twin not recorded", style="dim")
    return t


def read_metrics_json(path) -> dict | None:
    """metrics.json as a dict, or None when it is absent, half-fetched or not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class ReconPanel(Grid):
    """Reconstruction beside ground truth, amplitude above phase."""

    def compose(self) -> ComposeResult:
        for key in RECON_KEYS:
            with Vertical(classes="recon-cell"):
                yield Static(
                    key.replace("_", " "), id=f"cap-{key}", classes="caption", markup=False
                )
                yield HalfBlockImage(cmap="phase" if "phase" in key else "grey", id=f"img-{key}")

    def show(self, arrays: dict[str, np.ndarray]) -> None:
        """Each reconstruction on its ground truth's scale, so a collapse looks flat."""
        for key in RECON_KEYS:
            image = arrays.get(key)
            truth = arrays.get(key.replace("recon_", "gt_"))
            vrange = display_range(truth) if truth is not None else None
            self.query_one(f"#img-{key}", HalfBlockImage).set_image(image, vrange)
            caption = key.replace("_", " ")
            if image is not None:
                caption += f"  {describe(image)}"
            self.query_one(f"#cap-{key}", Static).update(caption)


class ArmDetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Log y"),
        Binding("e", "toggle_ema", "EMA"),
        Binding("1", "tab('curves')", "Curves"),
        Binding("2", "tab('events')", "Metrics"),
        Binding("3", "tab('config')", "Config"),
        Binding("4", "tab('recon')", "Recon"),
        Binding("m", "maximize", "Max plot"),
        Binding("t", "tail", "Log", show=False),
        Binding("question_mark", "help", "Help", show=False),
    ]

    log_y = reactive(False)
    smooth = reactive(False)

    def __init__(self, arm: str):
        super().__init__()
        self.arm = arm
        self._drawn_version: int | None = None
        self._throttle = RedrawThrottle(self, self.redraw)
        self._events_shown = 0
        self._header_shown: object = ()
        self._recon_key: object = ()  # never a stat key: the first look always shows a note
        self._metrics_key: object = None
        self._metrics: dict | None = None
        self._maximized = -1  # index into PANELS of the one plot shown, -1: all four

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="curves"):
            with TabPane("Curves", id="curves"), Grid(id="plots"):
                for pid, title in PANELS:
                    view = PlotView(id=f"plot-{pid}")
                    view.border_title = title
                    yield view
            with TabPane("Metrics+events", id="events"):
                yield Static(id="final-metrics", markup=False)
                yield Static(id="events-summary", markup=False)
                yield DataTable(id="events-table", cursor_type="row")
            with TabPane("Config", id="config"), VerticalScroll():
                yield Static(id="config-text")
            with TabPane("Recon", id="recon"):
                yield Static(id="recon-note", markup=False)
                yield ReconPanel(id="recon-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.arm
        table = self.query_one("#events-table", DataTable)
        for key, label, width in (
            ("epoch", "epoch", 5),
            ("severity", "severity", 10),
            ("rule", "rule", 15),
            ("message", "message", 60),
            ("value", "value", 9),
            ("threshold", "threshold", 9),
            ("step", "step", 7),
        ):
            table.add_column(label, key=key, width=width)
        self.watch(self.app, "snapshots", self._on_snapshots)
        self.call_after_refresh(self.redraw)

    def _snapshot(self):
        return next((s for s in self.app.snapshots if s.name == self.arm), None)

    def _on_snapshots(self, _snapshots) -> None:
        snap = self._snapshot()
        if snap is None or snap.version == self._drawn_version:
            self._check_recon(snap)
            return
        self._throttle.request()
        self._check_recon(snap)

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def on_tabbed_content_tab_activated(self, _event) -> None:
        self.call_after_refresh(self.redraw)
        self._check_recon(self._snapshot())

    def watch_log_y(self) -> None:
        self._titles()
        self.redraw()

    def watch_smooth(self) -> None:
        self._titles()
        self.redraw()

    def _titles(self) -> None:
        for pid, title in PANELS:
            view = self.query_one(f"#plot-{pid}", PlotView)
            view.border_title = panel_title(title, self.log_y, self.smooth)

    def action_toggle_log(self) -> None:
        self.log_y = not self.log_y
        self.notify(f"log y {'on' if self.log_y else 'off'}", timeout=1.5)

    def action_toggle_ema(self) -> None:
        self.smooth = not self.smooth
        self.notify(f"EMA smoothing {'on' if self.smooth else 'off'}", timeout=1.5)

    def action_maximize(self) -> None:
        self.action_tab("curves")
        self._maximized = maximize_next(
            self, "plots", "plot-", (pid for pid, _ in PANELS), self._maximized
        )
        self.set_timer(0.1, self.redraw)  # after the new grid layout

    def action_tail(self) -> None:
        from app.screens.logtail import LogTailScreen

        self.app.push_screen(LogTailScreen(self.arm))

    def action_help(self) -> None:
        from app.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # -- drawing -----------------------------------------------------------------------------

    def redraw(self) -> None:
        self._throttle.starting()
        if not self.is_mounted:
            return
        sizes = {}
        if self.query_one(TabbedContent).active == "curves":
            sizes = plot_sizes(self, "plot-", (pid for pid, _ in PANELS))
        self._throttle.drawn()
        self._draw_plots(sizes, self.log_y, self.smooth)

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
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        if key != self._metrics_key:
            self._metrics_key = key
            self._metrics = read_metrics_json(path) if key is not None else None
        return self._metrics

    def _put(self, texts: dict[str, Text], data: PlotData, final: Text | None = None) -> None:
        if not self.is_mounted:
            return
        self._drawn_version = data.version
        for pid, text in texts.items():
            self.query_one(f"#plot-{pid}", PlotView).update(text)
        if final is not None:
            self.query_one("#final-metrics", Static).update(final)
        self._put_events(data)
        if data.header is not self._header_shown:
            self._header_shown = data.header
            arm_cfg = self.app.study.arms.get(self.arm)
            self.query_one("#config-text", Static).update(
                config_text(data.header, arm_cfg.to_dict() if arm_cfg else None)
            )

    def _put_events(self, data: PlotData) -> None:
        table = self.query_one("#events-table", DataTable)
        events = data.events
        if len(events) < self._events_shown:  # the run restarted
            table.clear()
            self._events_shown = 0
        for i, ev in enumerate(events[self._events_shown :], start=self._events_shown):
            value = ev.get("value")
            threshold = ev.get("threshold")
            message = ev.get("message") or ""
            table.add_row(
                Text(str(ev.get("epoch", "")), justify="right"),
                severity_text(ev.get("severity")),
                Text(str(ev.get("rule", "?"))),
                Text(message),
                Text(fmt_num(value) if isinstance(value, (int, float)) else "—", justify="right"),
                Text(
                    fmt_num(threshold) if isinstance(threshold, (int, float)) else "—",
                    justify="right",
                ),
                Text(str(ev.get("step", "")), justify="right"),
                key=str(i),
            )
        self._events_shown = len(events)
        alarms = sum(1 for e in events if e.get("severity") in ("collapse", "fatal"))
        self.query_one("#events-summary", Static).update(
            f"{len(events)} detector events, {alarms} collapse/fatal"
            if events
            else "no detector events (firings of the collapse and instability rules appear here)"
        )

    # -- reconstruction ----------------------------------------------------------------------

    def _check_recon(self, snap) -> None:
        if snap is None or self.query_one(TabbedContent).active != "recon":
            return
        path = RunDir(self.app.store.run_dir(self.arm)).recon
        self._load_recon(path, snap.has_recon)

    @work(
        thread=True,
        exclusive=True,
        group="detail-recon",
        description=f"read {RECON_FILE}",
        exit_on_error=False,
    )
    def _load_recon(self, path, exists: bool) -> None:
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        if key == self._recon_key:
            return
        arrays = {}
        if key is not None:
            with np.load(path) as npz:
                arrays = {k: np.asarray(npz[k]) for k in RECON_KEYS if k in npz.files}
        self.app.call_from_thread(self._put_recon, key, arrays, path)

    def _put_recon(self, key, arrays: dict, path) -> None:
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
