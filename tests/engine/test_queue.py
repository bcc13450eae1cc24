"""The device queue: slots, first-come-first-served order, dead waiters, stopping while queued.

Real flock-ed files; several DeviceQueue objects in one process conflict exactly as separate
processes do (flock belongs to the open file description), and a test with a real child
process covers a waiter that dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.runs.queue import DeviceQueue, device_key

REPO = Path(__file__).resolve().parents[2]


def take(root, arm, devices=("cpu",), max_parallel=1, **kw):
    return DeviceQueue(list(devices), max_parallel, arm, root=root).wait(poll_s=0.02, **kw)


class Background:
    """A waiter in a thread; ``slot`` is set once it got one."""

    def __init__(self, root, arm, devices=("cpu",), max_parallel=1):
        self.slot = None
        self.stop = False
        self.messages: list[str] = []
        self.queue = DeviceQueue(list(devices), max_parallel, arm, root=root)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.slot = self.queue.wait(
            should_stop=lambda: self.stop, on_wait=self.messages.append, poll_s=0.02
        )

    def wait_queued(self, timeout=5.0):
        deadline = time.time() + timeout
        while not self.messages and time.time() < deadline:
            time.sleep(0.01)
        assert self.messages, "never reported waiting"


def eventually(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_device_keys_are_file_name_safe():
    assert device_key("cuda:1") == "cuda1"
    assert device_key("cuda") == "cuda0"
    assert device_key("cpu") == "cpu"


def test_at_most_max_parallel_slots_then_the_next_waits(tmp_path):
    a = take(tmp_path, "a", max_parallel=2)
    b = take(tmp_path, "b", max_parallel=2)
    assert {a.index, b.index} == {0, 1}
    c = Background(tmp_path, "c", max_parallel=2)
    c.wait_queued()
    assert c.slot is None and "busy: a on cpu, b on cpu" in c.messages[-1]
    b.release()
    assert eventually(lambda: c.slot is not None)
    assert c.slot.index == b.index and c.slot.waited_s > 0


def test_first_come_first_served(tmp_path):
    first = take(tmp_path, "first")
    second = Background(tmp_path, "second")
    second.wait_queued()
    third = Background(tmp_path, "third")
    third.wait_queued()
    assert "ahead: second" in third.messages[-1]
    first.release()
    assert eventually(lambda: second.slot is not None)
    time.sleep(0.2)  # third must still wait: second holds the only slot
    assert third.slot is None
    second.slot.release()
    assert eventually(lambda: third.slot is not None)


def test_a_smaller_max_parallel_counts_every_busy_slot(tmp_path):
    # Two engines launched with --max-parallel 2 hold slots 0 and 1; slot 0 frees up. A launch
    # with --max-parallel 1 must still wait: one engine already uses the device.
    a = take(tmp_path, "a", max_parallel=2)
    b = take(tmp_path, "b", max_parallel=2)
    a.release()
    solo = Background(tmp_path, "solo", max_parallel=1)
    solo.wait_queued()
    time.sleep(0.2)
    assert solo.slot is None
    b.release()
    assert eventually(lambda: solo.slot is not None)


def test_several_devices_take_the_first_free_one(tmp_path):
    devices = ("cuda:0", "cuda:1")
    a = take(tmp_path, "a", devices)
    b = take(tmp_path, "b", devices)
    assert (a.device, b.device) == ("cuda:0", "cuda:1")
    c = Background(tmp_path, "c", devices)
    c.wait_queued()
    b.release()
    assert eventually(lambda: c.slot is not None) and c.slot.device == "cuda:1"
    # A waiter for another device is not held up by waiters of these two.
    assert take(tmp_path, "other", ("cuda:2",)).device == "cuda:2"


def test_stopping_a_waiter_returns_none_and_leaves_the_queue(tmp_path):
    holder = take(tmp_path, "holder")
    w = Background(tmp_path, "quitter")
    w.wait_queued()
    w.stop = True
    w.thread.join(5)
    assert w.slot is None and not list((tmp_path / "tickets").glob("*.json"))
    holder.release()
    assert take(tmp_path, "next").index == 0


def test_a_killed_waiter_never_blocks_the_queue(tmp_path):
    holder = take(tmp_path, "holder")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from engine.runs.queue import DeviceQueue; "
            "DeviceQueue(['cpu'], 1, 'doomed', root=Path(sys.argv[1])).wait(poll_s=0.02)",
            str(tmp_path),
        ],
        cwd=REPO,
    )
    assert eventually(lambda: any(p.stat().st_size for p in (tmp_path / "tickets").glob("*")))
    later = Background(tmp_path, "later")
    later.wait_queued()
    assert "ahead: doomed" in later.messages[-1]
    child.send_signal(signal.SIGKILL)  # no cleanup: its ticket file stays, its lock does not
    child.wait(5)
    holder.release()
    assert eventually(lambda: later.slot is not None)


def test_a_dead_slot_holder_frees_its_slot(tmp_path):
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from engine.runs.queue import DeviceQueue; "
            "s = DeviceQueue(['cpu'], 1, 'crasher', root=Path(sys.argv[1])).wait(); "
            "print('slot', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "slot"
    w = Background(tmp_path, "next")
    w.wait_queued()
    holder = json.loads((tmp_path / "cpu" / "slot-0.lock").read_text())
    assert holder["arm"] == "crasher" and holder["pid"] == child.pid
    child.kill()
    child.wait(5)
    assert eventually(lambda: w.slot is not None)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        DeviceQueue(["cpu"], 0, "a", root=tmp_path)
    with pytest.raises(ValueError):
        DeviceQueue([], 1, "a", root=tmp_path)


def test_an_engine_outside_the_queue_claims_a_slot_that_waiters_count(tmp_path):
    queued = take(tmp_path, "queued", max_parallel=2)
    foreground = DeviceQueue(["cpu"], 1, "foreground", root=tmp_path).claim()  # never waits
    assert foreground.index != queued.index
    w = Background(tmp_path, "next", max_parallel=2)
    w.wait_queued()
    assert "foreground on cpu" in w.messages[-1]
    foreground.release()
    assert eventually(lambda: w.slot is not None)


def test_slot_keys_name_the_directory(tmp_path):
    a = DeviceQueue(["cuda:0"], 1, "a", root=tmp_path, keys={"cuda:0": "gpu-1234-abcd"})
    slot = a.wait(poll_s=0.02)
    assert slot.device == "cuda:0" and (tmp_path / "gpu1234abcd" / "slot-0.lock").exists()
