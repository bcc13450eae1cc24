"""Run status: the one place that writes status.json and decides whether a run is alive.

States written by the engine: [queued ->] running -> finished | failed | oom | killed (oom: the
process ran out of device or host memory, a failure of its own kind). States derived by
readers: crashed (no final state and the pid is gone, checked on the engine's own host) and stale
(no word from the engine's host for ``SILENT_AFTER_S``). A dead run must never look alive, and a
run we cannot see must never look dead (docs/engineering.md, 'Run states').
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
# A run whose host has said nothing for this long is "stale": its heartbeat (a run of another
# machine on a shared filesystem) or the observed state of a mirror (a silent ssh link). Tests
# shorten it through FNOTUI_SILENT_AFTER_S, read once at import.
SILENT_AFTER_S = float(os.environ.get("FNOTUI_SILENT_AFTER_S") or 30.0)
# A live pid on this machine whose heartbeat is this old: alive, but perhaps hung.
STALE_AFTER_S = 120.0
FINAL_STATES = ("finished", "failed", "oom", "killed")
# Written beside status.json in a mirror of a remote study (engine/live/remote.py): the run state as
# seen on the engine's own host, where its pid can be checked. Trusted while fresh.
OBSERVED_STATE_FILE = ".observed_state.json"
OBSERVED_FRESH_S = SILENT_AFTER_S
# Written at the root of a mirror (engine/live/remote.py): pids in its status.json files belong
# to another machine, whatever host name they carry (loopback, or two hosts named alike).
MIRROR_MARK = ".fnotui-mirror"
# States with a live (or possibly live) engine: launch refuses them, stop signals them.
ACTIVE_STATES = ("queued", "running", "stale")


class StatusFile:
    """Writes status.json for the run owned by this process (atomically, every time)."""

    def __init__(self, run: RunDir, arm: str, epochs: int, resume: bool = False):
        self.run = run
        # A resumed run starts where the interrupted one stopped: its status says so from the
        # first write, not "epoch 0" until the loop's first heartbeat.
        earlier = (read_status(run.root) or {}) if resume else {}
        self.state = {
            "arm": arm,
            "state": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "machine": machine_id(),
            "started": time.time(),
            "heartbeat": time.time(),
            "epoch": int(earlier.get("epoch") or 0),
            "epochs": epochs,
            "step": int(earlier.get("step") or 0),
            "exit_code": None,
            "error": None,
            "ended": None,
            **batch_job(),
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


def machine_id() -> str:
    """This machine's identity beyond its host name (two hosts may share a name): the systemd
    machine id, or "" where there is none (then the host name alone decides)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def _is_mirror(run_dir: Path) -> bool:
    """Whether ``run_dir`` lies in a mirror of a remote study (<mirror>/runs/<arm>)."""
    return (Path(run_dir).parent.parent / MIRROR_MARK).exists()


def pid_checkable(run_dir: Path, st: dict) -> bool:
    """Whether the engine's pid in ``st`` can be checked from this process: same host name,
    same machine (when both sides know theirs), and not a mirror of another machine's runs."""
    if st.get("host") != socket.gethostname():
        return False
    theirs, ours = st.get("machine"), machine_id()
    if theirs and ours and theirs != ours:
        return False
    return not _is_mirror(run_dir)


def silence(run_dir: Path, now: float | None = None) -> float | None:
    """Seconds since the engine's host last said anything about a run that is stale (None when
    it is not stale): the age of the mirror's observed state, or of the heartbeat."""
    st = read_status(run_dir)
    if st is None or st.get("state") in FINAL_STATES:
        return None
    now = time.time() if now is None else now
    observed = _read_json(Path(run_dir) / OBSERVED_STATE_FILE)
    if observed is not None or _is_mirror(run_dir):
        at = float((observed or {}).get("at") or 0)
        age = now - at if at else None
    else:
        age = now - float(st.get("heartbeat") or 0)
        if pid_checkable(run_dir, st):
            return age if age >= STALE_AFTER_S else None
    return age if age is None or age >= SILENT_AFTER_S else None


def run_state(run_dir: Path, now: float | None = None) -> str:
    """not started | queued | running | finished | failed | oom | killed | crashed | stale.

    ``crashed`` needs positive evidence from the engine's host: our own pid check there, or the
    state a mirror's remote side observed. From anywhere else a silent run is ``stale``."""
    st = read_status(run_dir)
    if st is None:
        return "not started"
    state = st.get("state")
    ended = slurm_ended(st)
    if ended:
        return ended
    if state == "killed" and st.get("slurm_state") == SLURM_REQUEUED:
        return "queued"  # Slurm requeued the job; it continues from its checkpoint by itself
    if state in FINAL_STATES:
        return state
    now = time.time() if now is None else now
    if state == "queued" and st.get("slurm_job_id") and st.get("pid") is None:
        return "queued"  # submitted, waiting in Slurm's queue (which may take hours)
    observed = _read_json(Path(run_dir) / OBSERVED_STATE_FILE)
    if observed is not None or _is_mirror(run_dir):
        # A mirror: only the remote side can tell; its word holds while fresh.
        if observed and now - float(observed.get("at") or 0) < OBSERVED_FRESH_S:
            return str(observed.get("state"))
        return "stale"
    beat_age = now - float(st.get("heartbeat") or 0)
    if pid_checkable(run_dir, st):
        pid = st.get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return "crashed"
        if beat_age >= STALE_AFTER_S:
            return "stale"
    elif beat_age >= SILENT_AFTER_S:
        return "stale"
    return "queued" if state == "queued" else "running"


# Slurm job states that end a job, as squeue and sacct spell them. A run whose job ended so and
# whose engine did not finish or fail by itself shows as "slurm:<STATE>" (engine/control/slurm.py
# records the state in status.json from the CLI; readers here never call Slurm).
SLURM_ENDED = (
    "BOOT_FAIL",
    "CANCELLED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
)
# A graceful stop that Slurm, not fnotui stop, asked for: SIGTERM at the time limit, preemption.
_SLURM_STOPPED = ("DEADLINE", "NODE_FAIL", "PREEMPTED", "TIMEOUT")
# Recorded (by the CLI, from squeue) for a job Slurm put back in its queue after stopping its
# engine (a node failure or a preemption of a requeueable job): the run reads as queued, and the
# job's engine resumes from the checkpoint when it runs again (engine/control/slurm.py).
SLURM_REQUEUED = "REQUEUED"


def batch_job() -> dict:
    """The batch job this engine runs in, from its environment: Slurm's job id, or the job id
    of submitit's local executor (its stand-in for Slurm on one machine)."""
    if os.environ.get("SLURM_JOB_ID"):
        return {"slurm_job_id": os.environ["SLURM_JOB_ID"], "executor": "slurm"}
    if os.environ.get("SUBMITIT_LOCAL_JOB_ID"):
        return {"slurm_job_id": os.environ["SUBMITIT_LOCAL_JOB_ID"], "executor": "submitit-local"}
    return {}


def slurm_ended(st: dict) -> str | None:
    """The state "slurm:TIMEOUT" etc. of a run whose Slurm job ended without the engine finishing or
    failing by itself (a stop asked with fnotui stop stays "killed"); else None."""
    job_state = st.get("slurm_state")
    if not st.get("slurm_job_id") or job_state not in SLURM_ENDED:
        return None
    state = st.get("state")
    if state in ("finished", "failed", "oom") or (
        state == "killed" and job_state not in _SLURM_STOPPED
    ):
        return None
    return f"slurm:{job_state}"


def record_slurm_state(run_dir: Path, job_id: str, job_state: str, reason: str = "") -> bool:
    """Write the end of a run's Slurm job into its status.json (called once the job has ended,
    so no engine writes the file any more); False when status.json names another job."""
    st = read_status(run_dir)
    if not st or str(st.get("slurm_job_id")) != str(job_id):
        return False
    st.update(slurm_state=job_state, slurm_reason=reason or None)
    atomic_write_json(Path(run_dir) / "status.json", st)
    return True


def mark_submitted(run_dir: Path, arm: str, epochs: int, job_id: str, executor: str) -> None:
    """status.json of a run just submitted as a batch job: queued, no engine yet. Left alone
    when the job's engine has already written its own (submitit's local executor starts at
    once); the rest of an earlier run's status (its epoch) is kept for a resume."""
    st = read_status(run_dir) or {}
    if str(st.get("slurm_job_id")) == str(job_id):
        return
    for key in ("slurm_state", "slurm_reason", "exit_code", "error", "ended"):
        st.pop(key, None)
    st.update(
        arm=arm,
        state="queued",
        pid=None,
        host=None,
        heartbeat=time.time(),
        submitted=time.time(),
        epochs=epochs,
        slurm_job_id=str(job_id),
        executor=executor,
    )
    st.setdefault("epoch", 0)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(run_dir) / "status.json", st)


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
