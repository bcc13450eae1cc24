"""Chart widgets and cell text never crash on NaN, inf, empty or degenerate data.

plotext 6.1 aborts the whole process on a NaN (C++ std::bad_alloc) and raises on inf, on log
scales of values <= 0, of a single point and of a nearly flat series; each case is fed here.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from textual.app import App

from app.widgets.cells import fmt_duration, fmt_num, sparkline_text, state_text
from app.widgets.image import HalfBlockImage, area_resample, describe, fit
from app.widgets.plot import Curve, render_plot

NAN, INF = math.nan, math.inf


def curve(y, x=None, **kw) -> Curve:
    y = np.asarray(y, dtype=float)
    x = np.arange(len(y), dtype=float) if x is None else np.asarray(x, dtype=float)
    return Curve("c", x, y, kw.pop("marker", "x"), "cyan", **kw)


@pytest.mark.parametrize("log_y", [False, True])
@pytest.mark.parametrize(
    "y",
    [
        [],
        [NAN],
        [NAN, NAN],
        [INF],
        [-INF],
        [1.0, NAN, 2.0],
        [1.0, INF, 2.0],
        [1.0, -INF],
        [3.0],
        [0.0, 0.0],
        [-1.0, 2.0],
        [1.0, 1.0 + 1e-15],
        [1e300, 1e-300],
        [0.0, 1e-320],
        [1.0, 2.0, 3.0],
    ],
)
def test_render_plot_survives_nonfinite_and_degenerate_series(y, log_y):
    text = render_plot([curve(y)], 40, 10, log_y=log_y)
    assert text.plain  # a legend line at least, and no crash


def test_render_plot_names_nonfinite_points_in_the_legend():
    text = render_plot([curve([1.0, NAN, NAN, INF, -INF, 2.0])], 50, 10).plain
    legend = text.splitlines()[0]
    assert "NaN×2" in legend and "+inf×1" in legend and "-inf×1" in legend


def test_render_plot_log_counts_nonpositive_values():
    legend = render_plot([curve([1.0, 0.0, -2.0, 10.0])], 50, 10, log_y=True).plain
    assert "≤0 (log)×2" in legend.splitlines()[0]


def test_render_plot_ema_over_nan_and_many_points():
    y = np.linspace(1, 0, 50_000)
    y[1000:2000] = NAN
    text = render_plot([curve(y, marker="braille")], 60, 12, smooth=True)
    assert "(EMA)" in text.plain and "NaN×1000" in text.plain


def test_render_plot_keeps_a_one_step_spike():
    y = np.ones(100_000)
    y[77_777] = 1000.0
    text = render_plot([curve(y)], 60, 12).plain
    assert "1.0e3" in text.splitlines()[2]  # the top of the y axis is the spike


def test_sparkline_text_marks_nonfinite_buckets():
    text = sparkline_text((1.0, NAN, 3.0, NAN), (False, True, False, False), 6)
    assert text.plain == "▁✖█    "[:6]
    assert sparkline_text((), (), 3).plain == "   "
    assert sparkline_text((INF, -INF), (True, True), 2).plain == "✖✖"
    assert sparkline_text((2.0, 2.0), (False, False), 2).plain == "▁▁"  # flat, no div by 0


def test_numbers_and_states_say_nonfinite_in_words():
    assert fmt_num(NAN) == "✖nan" and fmt_num(INF) == "✖inf" and fmt_num(-INF) == "✖-inf"
    assert fmt_num(0.0) == "0" and fmt_num(1234.5) == "1234" and fmt_num(2e-5) == "2.00e-5"
    assert fmt_num(None) == "—"
    assert fmt_duration(3725) == "1h02m" and fmt_duration(None) == "—"
    assert state_text("running", collapsed=True).plain == "✖ collapsed"
    assert state_text("failed", collapsed=True).plain == "✘ failed"
    assert state_text("weird", collapsed=False).plain == "? stale"


def test_area_resample_keeps_mean_and_nan():
    img = np.arange(16, dtype=float).reshape(4, 4)
    assert area_resample(img, 2, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    img[0, 0] = NAN
    assert math.isnan(area_resample(img, 2, 2)[0, 0])
    assert fit(300, 100, 20, 80) == (20, 6)
    assert describe(np.array([[NAN]])) == "all 1 pixels non-finite"


def test_half_block_image_renders_nan_and_empty_images():
    class One(App):
        def compose(self):
            yield HalfBlockImage(cmap="phase", id="img")

    async def main():
        app = One()
        async with app.run_test(size=(30, 10)) as pilot:
            widget = app.query_one(HalfBlockImage)
            image = np.random.default_rng(0).normal(size=(64, 64))
            image[10:20, 10:20] = NAN
            image[0, 0] = INF
            widget.set_image(image)
            await pilot.pause()
            assert widget.nonfinite == 101
            strips = [widget.render_line(y) for y in range(10)]
            assert strips[0].cell_length == 30
            widget.set_image(np.full((8, 8), NAN))
            await pilot.pause()
            widget.render_line(0)
            widget.set_image(None)
            await pilot.pause()
            assert widget.render_line(0).cell_length == 30

    asyncio.run(main())


def test_long_sweep_point_names_stay_distinguishable_in_the_arm_column():
    from app.widgets.arm_table import NAME_WIDTH_MAX, middle_ellipsis, name_width

    names = [
        f"{arm}.seed-{seed}"
        for arm in (
            "arm_stable_warmup",
            "arm_stable_warmup_unstepped",
            "arm_stable_lowlr",
            "arm_stable",
        )
        for seed in (20260129, 20260130)
    ]
    width = name_width(["arm_control", *names])
    assert width == NAME_WIDTH_MAX
    shown = [middle_ellipsis(n, width) for n in names]
    assert len(set(shown)) == len(names) and all(len(s) <= width for s in shown)
    assert all(s.endswith(n[-14:]) for s, n in zip(shown, names))  # the seed stays whole
    assert name_width(["arm_a", "arm_b"]) == 17  # short names keep the default width
    assert middle_ellipsis("arm_control", width) == "arm_control"


def test_a_run_ended_by_slurm_shows_the_slurm_state_not_stale():
    from app.widgets.cells import state_text

    assert state_text("slurm:TIMEOUT", False).plain == "□ slurm:TIMEOUT"
    assert state_text("somethingnew", False).plain == "? stale"


def test_every_run_of_the_default_study_is_told_apart_in_the_arm_column():
    # The plain arm_control, its seeds sweep and the nine crash-hunt points share an arm: the
    # parts dropped are those of one sweep only, so at 28 columns all 24 runs stay distinct.
    from pathlib import Path

    from app.widgets.arm_table import middle_ellipsis
    from app.widgets.cells import short_names
    from engine.study.arms import load_study

    arms = Path(__file__).resolve().parents[2] / "arms.toml"
    names = list(load_study(arms, validate_models=False).arms)
    short = short_names(names)
    crash = "arm_control.epochs-30.fno_blocks-4.max_hidden_channels-512.seed-20260128"
    assert short[crash] == "arm_control.fb-4.seed-20260128"
    assert short["arm_control.seed-20260129"] == "arm_control.seed-20260129"
    shown = [middle_ellipsis(short[n], 28) for n in names]
    assert len(set(shown)) == len(names)
