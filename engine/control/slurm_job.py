"""What a sweep point's Slurm job runs on its node: the engine, under Slurm's signals.

engine/control/slurm.py submits ``run_engine`` through submitit; it runs the very engine command
a detached launch runs, turns the time-limit signal into a graceful stop, and on a requeued
attempt (node failure, preemption) continues the run instead of being refused.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.runs.status import batch_job, read_status, record_slurm_state


def continued_if_requeued(command: list[str], run_dir: Path) -> list[str] | None:
    """The engine command for this attempt of the job. Slurm requeues a job whose node failed
    or which was preempted (``SLURM_RESTART_COUNT`` > 0) and runs the same batch script again:
    the run directory then holds the stopped engine's run, so this attempt continues it from
    its checkpoint (``--resume``), or starts it over when it stopped before its first epoch
    ended (``--restart``, the earlier telemetry archived), instead of being refused. None when
    the run finished before Slurm requeued the job: there is nothing left to train."""
    if int(os.environ.get("SLURM_RESTART_COUNT") or 0) == 0:
        return command
    if (read_status(run_dir) or {}).get("state") == "finished":
        return None
    if "--resume" in command or "--restart" in command:
        return command
    if (run_dir / "checkpoint.pt").exists():
        return [*command, "--resume"]
    if (run_dir / "telemetry.jsonl").exists():
        return [*command, "--restart"]
    return command


def run_engine(command: list[str], cwd: str, log: str) -> int:
    """The job: the engine command, its stderr appended to the run's run.log as a detached
    launch does (its stdout is in Slurm's output file and run.log). The engine's own exit code
    is the job's: a failed run fails its job.

    submitit asks Slurm for SIGUSR2 shortly before the time limit (``--signal``). It would end
    the engine at once (Python's default for SIGUSR2), and submitit's own handler would end
    this process and so the job step. Instead the engine ignores it, and this process turns
    it into a graceful stop (SIGTERM: the engine saves a checkpoint, then exits), and records
    the time limit in status.json: the run then shows as ``slurm:TIMEOUT``, ready for --resume.
    """
    continued = continued_if_requeued(command, Path(log).parent)
    if continued is None:
        return 0
    command = continued
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # inherited through exec
    try:
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
    finally:
        signal.signal(signal.SIGUSR2, previous)
    limit: list[float] = []

    def time_limit(signum, frame) -> None:
        limit.append(time.time())
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGUSR2, time_limit)
    code = proc.wait()
    if limit:
        job = batch_job().get("slurm_job_id")
        if job:
            record_slurm_state(
                Path(log).parent,
                job,
                "TIMEOUT",
                "the time limit was near: the engine saved a checkpoint and stopped",
            )
    if code != 0:
        sys.exit(code)
    return code
