"""Fixtures for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_device_queue(tmp_path_factory, monkeypatch):
    """Each test gets its own device-queue directory (engine/runs/queue.py), inherited by the engines
    it starts, so tests never wait for one another's slots or for a real study on this box."""
    monkeypatch.setenv("FNOTUI_QUEUE_DIR", str(tmp_path_factory.mktemp("queue")))


GUARD = str(Path(__file__).resolve().parent / "engine_guard")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test not marked slow may not start a training engine, in any process it starts: the
    fast subset (-m "not slow") must stay fast. Armed before the test's fixtures are set up, so
    a module fixture that trains counts against the first test that uses it."""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("FNOTUI_TEST_FORBID_ENGINE", "PYTHONPATH")}
    os.environ["FNOTUI_TEST_FORBID_ENGINE"] = item.nodeid
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [GUARD, saved["PYTHONPATH"]]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
