"""Dashboard test fixtures: a frozen study on disk and an app over it with live polling off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.session import Session
from app.tui import FnotuiApp
from engine.study.arms import load_study
from tests.app.studyfix import make_study


@pytest.fixture(autouse=True)
def empty_estimate_cache(tmp_path, monkeypatch):
    """The dashboard shows cached memory estimates (engine/training/memory_check.py): each test
    starts without any, so what it sees does not depend on this machine's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def study_file(tmp_path) -> Path:
    return make_study(tmp_path / "study")


def make_app(arms_file: Path, **kwargs) -> FnotuiApp:
    """The real app on the real study file; ``live=False`` reads the run dirs once."""
    study = load_study(arms_file, validate_models=False)
    kwargs.setdefault("live", False)
    return FnotuiApp(Session.local(study, arms_file, **kwargs))


def drive(arms_file: Path, check, *, size=(80, 24), notes: list | None = None, **options):
    """The real app on the study (``make_app`` with ``options``) in a terminal of ``size``:
    ``await check(pilot)`` once the first read is shown. ``notes`` collects the app's messages
    (notifications among them). pytest-asyncio is not a dependency: this runs its own loop."""

    async def main():
        app = make_app(arms_file, **options)
        hook = notes.append if notes is not None else None
        async with app.run_test(size=size, message_hook=hook) as pilot:
            await settle(pilot)
            await check(pilot)

    asyncio.run(main())


async def settle(pilot, timeout: float = 10.0) -> None:
    """Wait until the first read is shown and every worker (plots, recon) is done."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    while not app.loaded.is_set() or not app.snapshots:
        assert time.monotonic() < deadline, "the run directories were never read"
        await asyncio.sleep(0.02)
    for _ in range(3):
        # Not the reader: with live polling it never completes. (An empty list would mean
        # "all workers" to wait_for_complete.)
        busy = [w for w in app.workers if w.group != "reader"]
        if busy:
            await app.workers.wait_for_complete(busy)
        await pilot.pause()


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)
