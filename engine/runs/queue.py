"""Device slots: at most N engines train on one device at a time, the rest wait in order.

There is no scheduler process to die or to restart. Every engine launched with a queue holds
its own arm lock, takes a ticket, and waits for a free *slot*: a file in the queue directory
locked with ``flock`` for as long as the engine lives. The kernel releases a slot (and a ticket)
when its process dies, however it dies, so a crashed run never blocks the queue and a queued
engine stopped with ``fnotui stop`` simply leaves it.

Order is first come, first served per device: a waiter takes a free slot only when no earlier
live waiter could use that device. With several devices (``--device cuda:0,cuda:1``) a waiter
takes the first device that frees up. ``max_parallel`` caps the number of busy slots of a device
as this waiter sees it: launches asking for different numbers share the slot files, so a launch
with ``--max-parallel 1`` waits while any slot of its device is busy.

The queue directory is per user and per host (``$FNOTUI_QUEUE_DIR``, else
``$XDG_STATE_HOME/fnotui/queue/<host>``, by default under ``~/.local/state``): two studies on one
GPU box share the GPU's slots, as they share the GPU. Not ``$XDG_RUNTIME_DIR`` (systemd removes
it when the user's last session ends, under running engines) and not a fixed name in ``/tmp``
(another user could create it first; cleaners delete old files there).

Engines started without a queue (a plain ``fnotui --run``) still *claim* a slot of their device,
without waiting, so that queued engines count them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from engine.locking import try_lock

POLL_S = 0.5


def queue_root() -> Path:
    if os.environ.get("FNOTUI_QUEUE_DIR"):
        return Path(os.environ["FNOTUI_QUEUE_DIR"])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    # Per host: a home directory shared over NFS must not merge two machines' GPUs.
    return Path(state) / "fnotui" / "queue" / socket.gethostname()


def device_key(device: str) -> str:
    """A file-name-safe key: cuda:1 -> cuda1, cuda -> cuda0, cpu -> cpu."""
    if device == "cuda":
        return "cuda0"
    return re.sub(r"[^A-Za-z0-9]", "", device)


def _write_over(fh: TextIO, info: dict) -> None:
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps(info))
    fh.flush()


@dataclass
class Slot:
    """A held device slot, freed by ``release`` or, whatever happens, when the process exits.
    Keep a reference: the file handle closes (and the slot frees) when the object is collected.
    An engine holds it for as long as it trains one arm."""

    device: str
    index: int
    waited_s: float
    _fh: TextIO | None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None


@dataclass(frozen=True)
class Waiter:
    ticket: str
    arm: str
    devices: tuple[str, ...]


class DeviceQueue:
    """``devices`` are names (cuda:0, cpu); ``keys`` maps a name to the slot directory's key
    when it should not be the name (e.g. a GPU's UUID: CUDA indices depend on
    CUDA_VISIBLE_DEVICES, the UUID does not)."""

    def __init__(
        self,
        devices: list[str],
        max_parallel: int,
        arm: str,
        root: Path | None = None,
        keys: dict[str, str] | None = None,
    ):
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        if not devices:
            raise ValueError("a queue needs at least one device")
        self.devices = tuple(devices)
        self.max_parallel = max_parallel
        self.arm = arm
        self.root = Path(root) if root is not None else queue_root()
        self.keys = dict(keys or {})
        self._ticket_fh: TextIO | None = None
        self._ticket: Path | None = None

    # -- public ------------------------------------------------------------------------------

    def wait(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        on_wait: Callable[[str], None] = lambda message: None,
        poll_s: float = POLL_S,
    ) -> Slot | None:
        """Block until a slot is free and it is our turn; None if ``should_stop`` said so.
        ``on_wait`` hears who we wait for, whenever that changes."""
        t0 = time.monotonic()
        self._take_ticket()
        last_message = None
        try:
            while not should_stop():
                slot = self._try_take()
                if slot is not None:
                    slot.waited_s = time.monotonic() - t0
                    return slot
                message = self.describe_wait()
                if message != last_message:
                    on_wait(message)
                    last_message = message
                time.sleep(poll_s)
            return None
        finally:
            self._drop_ticket()

    def describe_wait(self) -> str:
        """Who we are waiting for, in words (for status.json and the log)."""
        busy = [f"{h.get('arm', '?')} on {h.get('device', '?')}" for h in self.holders()]
        mine = self._ticket.name if self._ticket else "~"
        ahead = [
            w.arm
            for w in self._live_waiters()
            if w.ticket < mine and set(w.devices) & set(self.devices)
        ]
        parts = [f"busy: {', '.join(busy)}" if busy else "no slot busy"]
        if ahead:
            parts.append(f"ahead: {', '.join(ahead)}")
        return (
            f"queued for {','.join(self.devices)} (at most {self.max_parallel} per device); "
            + "; ".join(parts)
        )

    def holders(self) -> list[dict]:
        """What the held slots of our devices say about their engines (arm, pid, device)."""
        found = []
        for device in self.devices:
            for path in sorted(self._device_dir(device).glob("slot-*.lock")):
                fh = try_lock(path)
                if fh is not None:  # free
                    fh.close()
                    continue
                try:
                    found.append(json.loads(path.read_text() or "{}"))
                except (OSError, json.JSONDecodeError):
                    found.append({"device": device})
        return found

    # -- internals ---------------------------------------------------------------------------

    def _device_dir(self, device: str) -> Path:
        return self.root / device_key(self.keys.get(device, device))

    def claim(self) -> Slot:
        """Take a slot of the first device at once, busy or not (an engine started without
        the queue): waiters then see the device as busy as it is."""
        device = self.devices[0]
        while True:
            slot = self._lock_slot(device, limit=None, queued=False)
            if slot is not None:
                return slot

    def _take_ticket(self) -> None:
        tickets = self.root / "tickets"
        tickets.mkdir(parents=True, exist_ok=True)
        while True:
            # time_ns orders tickets; the pid keeps two tickets of one nanosecond apart.
            path = tickets / f"{time.time_ns():020d}-{os.getpid()}.json"
            fh = try_lock(path)  # None only if a reader locked it between open and flock
            if fh is not None:
                break
        _write_over(
            fh,
            {
                "arm": self.arm,
                "pid": os.getpid(),
                "devices": self.devices,
                "max_parallel": self.max_parallel,
            },
        )
        self._ticket_fh, self._ticket = fh, path

    def _drop_ticket(self) -> None:
        if self._ticket is not None:
            self._ticket.unlink(missing_ok=True)
            self._ticket_fh.close()
            self._ticket_fh = self._ticket = None

    def _live_waiters(self) -> list[Waiter]:
        """Tickets whose engine still lives (holds the ticket's lock); dead ones are removed."""
        waiters = []
        for path in sorted((self.root / "tickets").glob("*.json")):
            if path == self._ticket:
                waiters.append(Waiter(path.name, self.arm, self.devices))
                continue
            fh = try_lock(path)
            if fh is not None:
                try:
                    # An empty ticket is one being created (opened, not yet locked): leave it.
                    if path.stat().st_size:
                        path.unlink(missing_ok=True)  # its engine is gone
                finally:
                    fh.close()
                continue
            try:
                info = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                continue  # being written; it counts from the next poll
            waiters.append(
                Waiter(path.name, str(info.get("arm", "?")), tuple(info.get("devices", ())))
            )
        return waiters

    @staticmethod
    def _scan_slots(directory: Path) -> tuple[int, list[int]]:
        """(number of held slots, indices of free slot files) of one device."""
        held, free = 0, []
        for path in directory.glob("slot-*.lock"):
            fh = try_lock(path)
            if fh is None:
                held += 1
            else:
                fh.close()
                free.append(int(path.stem.split("-")[1]))
        return held, sorted(free)

    def _try_take(self) -> Slot | None:
        earlier = [w for w in self._live_waiters() if w.ticket < self._ticket.name]
        for device in self.devices:
            if any(device in w.devices for w in earlier):
                continue  # an earlier waiter wants this device: its turn first
            slot = self._lock_slot(device, limit=self.max_parallel, queued=True)
            if slot is not None:
                return slot
        return None

    def _lock_slot(self, device: str, limit: int | None, queued: bool) -> Slot | None:
        """Lock a free slot of ``device`` (a free slot file, else a new one) unless ``limit``
        slots are busy; None if there is none, or if each was taken since the scan."""
        directory = self._device_dir(device)
        directory.mkdir(parents=True, exist_ok=True)
        held, free = self._scan_slots(directory)
        if limit is not None and held >= limit:
            return None
        for index in free + [held + len(free)]:
            fh = try_lock(directory / f"slot-{index}.lock")
            if fh is None:
                continue  # taken since the scan
            _write_over(
                fh,
                {
                    "arm": self.arm,
                    "pid": os.getpid(),
                    "device": device,
                    "since": time.time(),
                    "queued": queued,
                },
            )
            return Slot(device, index, 0.0, fh)
        return None
