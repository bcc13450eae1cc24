"""Run status: the one place that writes status.json and decides whether a run is alive.

States written by the engine: [queued ->] running -> finished | failed | killed. States derived by
readers: crashed (no final state and the pid is gone on this host) and stale (heartbeat too old
and the pid cannot be checked from here). A dead run must never look alive (docs/engineering.md,
'Run states').
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.errors import RunLockedError
from engine.locking import try_lock
from engine.runs.rundir import RunDir

HEARTBEAT_INTERVAL_S = 10.0
STALE_AFTER_S = 120.0
FINAL_STATES = ("finished", "failed", "killed")
# Written beside status.json in a mirror of a remote study (engine/live/remote.py): the run state as
# seen on the engine's own host, where its pid can be checked. Trusted while fresh.
OBSERVED_STATE_FILE = ".observed_state.json"
OBSERVED_FRESH_S = 30.0
# States with a live (or possibly live) engine: launch refuses them, stop signals them.
ACTIVE_STATES = ("queued", "running", "stale")


class StatusFile:
    """Writes status.json for the run owned by this process (atomically, every time)."""

    def __init__(self, run: RunDir, arm: str, epochs: int):
        self.run = run
        self.state = {
            "arm": arm,
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "heartbeat": time.time(),
            "epoch": 0,
            "epochs": epochs,
            "step": 0,
            "exit_code": None,
            "error": None,
            "ended": None,
        }
        self._last_beat = 0.0

    def write(self, **fields) -> None:
        self.state.update(fields)
        self.state["heartbeat"] = time.time()
        atomic_write_json(self.run.status, self.state)
        self._last_beat = time.monotonic()

    def beat(self, **fields) -> None:
        """Cheap to call every step: writes only when the heartbeat interval has passed."""
        if time.monotonic() - self._last_beat >= HEARTBEAT_INTERVAL_S:
            self.write(**fields)
        else:
            self.state.update(fields)

    def finish(self, state: str, exit_code: int, error: str | None = None, **fields) -> None:
        assert state in FINAL_STATES
        self.write(state=state, exit_code=exit_code, error=error, ended=time.time(), **fields)


class RunLock:
    """An OS file lock on the arm directory: one live engine per arm, released by the kernel
    when the process dies, so a crash never leaves a lock behind."""

    def __init__(self, run: RunDir):
        self.path = run.lock
        self._fh = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = try_lock(self.path)
        if fh is None:
            raise RunLockedError(
                f"arm directory {self.path.parent} is in use by another running engine "
                f"({describe_owner(self.path.parent)}); stop it first"
            )
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_status(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / "status.json")


def _read_json(path: Path) -> dict | None:
    """A small JSON file written atomically, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None


def describe_owner(run_dir: Path) -> str:
    """Whose engine holds (or last held) the arm, as "pid N on HOST", for refusals."""
    st = read_status(run_dir)
    if not st:
        return "owner unknown"
    return f"pid {st.get('pid')} on {st.get('host')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(run_dir: Path, now: float | None = None) -> str:
    """not started | queued | running | finished | failed | killed | crashed | stale."""
    st = read_status(run_dir)
    if st is None:
        return "not started"
    state = st.get("state")
    if state in FINAL_STATES:
        return state
    now = time.time() if now is None else now
    observed = _read_json(Path(run_dir) / OBSERVED_STATE_FILE)
    if observed and now - float(observed.get("at") or 0) < OBSERVED_FRESH_S:
        return str(observed.get("state"))
    fresh = now - float(st.get("heartbeat") or 0) < STALE_AFTER_S
    if st.get("host") == socket.gethostname():
        pid = st.get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return "crashed"
    if not fresh:
        return "stale"
    return "queued" if state == "queued" else "running"


def archive_run(output_dir: Path, arm: str) -> Path | None:
    """Move an arm's earlier run out of the way (never delete it): <output_dir>/.archive/."""
    src = Path(output_dir) / arm
    if not src.exists():
        return None
    dest = Path(output_dir) / ".archive" / f"{arm}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name.split('~')[0]}~{n}")
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(RunDir(src)):  # refuses while an engine trains this arm
        src.rename(dest)
    return dest
