"""Run states a reader derives: ``crashed`` only on evidence from the engine's own host, ``stale``
(with its age) whenever that host has been silent for SILENT_AFTER_S."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.runs.status import (
    MIRROR_MARK,
    OBSERVED_STATE_FILE,
    SILENT_AFTER_S,
    machine_id,
    run_state,
    silence,
)


def write_status(run: Path, **fields) -> None:
    run.mkdir(parents=True, exist_ok=True)
    status = {"arm": run.name, "state": "running", "host": socket.gethostname(), **fields}
    status.setdefault("heartbeat", time.time())
    (run / "status.json").write_text(json.dumps(status))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_pid_on_this_machine_is_crashed(tmp_path):
    run = tmp_path / "a"
    write_status(run, pid=dead_pid(), machine=machine_id())
    assert run_state(run) == "crashed"
    write_status(run, pid=os.getpid(), machine=machine_id())
    assert run_state(run) == "running"


def test_same_host_name_on_another_machine_is_never_crashed(tmp_path):
    run = tmp_path / "a"
    write_status(run, pid=dead_pid(), machine="another-machine-id")
    if machine_id():
        assert run_state(run) == "running"  # fresh heartbeat, pid not checkable from here
        now = time.time() + SILENT_AFTER_S + 12
        assert run_state(run, now=now) == "stale"
        assert round(silence(run, now)) == round(SILENT_AFTER_S + 12)


def test_another_host_is_stale_after_the_silence_not_after_120_s(tmp_path):
    run = tmp_path / "a"
    write_status(run, pid=dead_pid(), host="elsewhere", heartbeat=time.time())
    assert run_state(run) == "running"
    assert silence(run) is None
    later = time.time() + SILENT_AFTER_S + 1
    assert run_state(run, now=later) == "stale"


def test_a_mirror_trusts_the_fresh_observed_state_and_never_checks_a_pid(tmp_path):
    """A mirror over loopback: status.json carries this very host name and a dead pid."""
    (tmp_path / MIRROR_MARK).touch()
    run = tmp_path / "runs" / "a"
    write_status(run, pid=dead_pid(), machine=machine_id())
    assert run_state(run) == "stale"  # nothing observed yet: not crashed
    observed = run / OBSERVED_STATE_FILE
    observed.write_text(json.dumps({"state": "running", "at": time.time()}))
    assert run_state(run) == "running"
    later = time.time() + SILENT_AFTER_S + 42
    assert run_state(run, now=later) == "stale"
    assert round(silence(run, later)) == round(SILENT_AFTER_S + 42)
    observed.write_text(json.dumps({"state": "crashed", "at": time.time()}))
    assert run_state(run) == "crashed"  # the engine's host said so


def test_a_finished_run_stays_finished_however_old(tmp_path):
    (tmp_path / MIRROR_MARK).touch()
    run = tmp_path / "runs" / "a"
    write_status(run, state="finished", pid=dead_pid(), heartbeat=0)
    assert run_state(run, now=time.time() + 3600) == "finished"
    assert silence(run) is None


def test_an_engine_out_of_memory_stays_oom_after_its_pid_is_gone(tmp_path):
    run = tmp_path / "a"
    write_status(run, state="oom", pid=dead_pid(), machine=machine_id(), exit_code=1)
    assert run_state(run) == "oom"  # a final state: never "crashed", never stale
    assert silence(run, now=time.time() + 10 * SILENT_AFTER_S) is None
    # Its Slurm job then ends FAILED: the engine's own word, oom, is the more precise one.
    write_status(run, state="oom", pid=None, slurm_job_id="7", slurm_state="FAILED")
    assert run_state(run) == "oom"


def test_a_resumed_engine_says_where_it_resumes_from_its_first_status_write(tmp_path):
    from engine.runs.rundir import RunDir
    from engine.runs.status import StatusFile, read_status

    run = RunDir(tmp_path / "a")
    run.root.mkdir()
    first = StatusFile(run, "a", 20)
    first.write(epoch=7, step=90)
    first.finish("killed", exit_code=130)
    resumed = StatusFile(run, "a", 20, resume=True)
    resumed.write(state="running")
    assert (read_status(run.root)["epoch"], read_status(run.root)["step"]) == (7, 90)
    fresh = StatusFile(run, "a", 20)  # a new run starts at 0 whatever the directory held
    assert (fresh.state["epoch"], fresh.state["step"]) == (0, 0)
