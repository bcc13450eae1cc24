"""When buffered step records go out: by count on a fast device, by age on a slow one."""

from __future__ import annotations

from engine.training.progress import STEP_FLUSH_EVERY, STEP_FLUSH_SECONDS, flush_due


def pending(times: list[float]) -> list[tuple]:
    # (step, loss, pre, post, t), as the loop buffers them; only the count and t matter here.
    return [(i, None, None, None, t) for i, t in enumerate(times)]


def test_nothing_buffered_is_never_due():
    assert not flush_due([], now=1e9)


def test_fast_steps_go_out_by_count():
    fast = pending([100.0 + 0.001 * i for i in range(STEP_FLUSH_EVERY)])
    assert flush_due(fast, now=100.1)
    assert not flush_due(fast[:-1], now=100.1)


def test_slow_steps_go_out_by_age_so_a_reader_is_at_most_seconds_behind():
    slow = pending([100.0])  # one step of a CPU run that takes seconds per step
    assert not flush_due(slow, now=100.0 + STEP_FLUSH_SECONDS / 2)
    assert flush_due(slow, now=100.0 + STEP_FLUSH_SECONDS)
