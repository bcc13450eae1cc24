"""Fixtures for every test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_device_queue(tmp_path_factory, monkeypatch):
    """Each test gets its own device-queue directory (engine/runs/queue.py), inherited by the engines
    it starts, so tests never wait for one another's slots or for a real study on this box."""
    monkeypatch.setenv("FNOTUI_QUEUE_DIR", str(tmp_path_factory.mktemp("queue")))
