"""Sweep points as Slurm jobs, through submitit (``fnotui sweep NAME --executor slurm``).

Each job runs the very engine command a detached launch runs (engine/control/launch.py
``engine_command``), on a node, writing the run directory where it always lives: the study's
output directory is on a filesystem the login node and the nodes share. Slurm is the queue, so
the engine does not wait in fnotui's device queue. submitit writes the batch script; its own
files (the pickled call, Slurm's stdout/stderr) go to <output_dir>/.slurm/<run>/, outside the
run directory, so that ``--restart`` can archive a run without pulling files from under a job.

The job id is in status.json (written at submission, then by the engine, which reads
``SLURM_JOB_ID``) and in the telemetry header. How a job ended (TIMEOUT, PREEMPTED, NODE_FAIL,
CANCELLED ...) is asked from squeue/sacct by the CLI only (``refresh``: ``fnotui list``,
``sweep --list``, ``stop``, a resubmission) and written into status.json, where every reader
(the dashboard included) finds it without calling Slurm.

``submitit-local`` runs the same jobs with submitit's local executor: the stand-in for a cluster
on one machine (tests, and trying a sweep's Slurm path without one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.atomic import atomic_write_json
from engine.control.base import ControlError
from engine.control.slurm_job import run_engine
from engine.errors import ConfigError
from engine.runs.status import (
    ACTIVE_STATES,
    FINAL_STATES,
    SLURM_ENDED,
    SLURM_REQUEUED,
    archive_run,
    mark_submitted,
    read_status,
    record_slurm_state,
    run_state,
)
from engine.study.slurm import SlurmOptions

EXECUTORS = ("local", "slurm", "submitit-local")
# squeue's states of a job waiting to run again after Slurm stopped it (node failure, preemption).
REQUEUED_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")
SLURM_TIMEOUT_S = 20.0  # a Slurm client call; the controller answers in well under a second


class SlurmUnreachable(ControlError):
    """No Slurm controller answers from here (exit 1: the input may be fine, the cluster is not)."""


def require_submitit():
    """The submitit module, or bad input (exit 2) naming how to install it."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            "--executor slurm needs submitit, which is not installed: "
            "pip install 'fnotui[slurm]' (or pip install 'submitit>=1.5')"
        ) from None
    return submitit


def _client(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmUnreachable(f"no Slurm client here: {name} is not on PATH")
    return path


def check_controller() -> None:
    """Raise SlurmUnreachable unless the Slurm controller (of $SLURM_CONF, or the system's
    slurm.conf) answers ``scontrol ping`` as UP."""
    try:
        out = subprocess.run(
            [_client("scontrol"), "ping"],
            capture_output=True,
            text=True,
            timeout=SLURM_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(
            f"the Slurm controller did not answer scontrol ping within {SLURM_TIMEOUT_S:g} s"
        ) from None
    said = " ".join((out.stdout + out.stderr).split())
    if out.returncode != 0 or " is UP" not in out.stdout:
        raise SlurmUnreachable(
            f"the Slurm controller is not reachable (scontrol ping: {said or out.returncode}); "
            "nothing was submitted"
        )


def check_options(kind: str, options: SlurmOptions) -> None:
    if kind == "slurm" and options.time is None:
        # submitit's default (5 minutes) would end every run early, as a TIMEOUT.
        raise ConfigError(
            "--executor slurm needs a time limit: --slurm-time (minutes or D-HH:MM:SS) or "
            "time in [study.slurm]"
        )


def check_submittable(run_dir: Path, name: str, mode: str | None) -> None:
    """Refuse, before anything is submitted, what the job's engine would refuse on its node
    (after the job had waited in the queue, and after its status.json was marked queued)."""
    state = run_state(run_dir)
    if state in ACTIVE_STATES:
        st = read_status(run_dir) or {}
        job = f", Slurm job {st['slurm_job_id']}" if st.get("slurm_job_id") else ""
        raise ConfigError(f"{name} is already {state}{job}; stop it first")
    if mode is None and (Path(run_dir) / "telemetry.jsonl").exists():
        raise ConfigError(
            f"{run_dir} already holds a run (state: {state}); continue it with --resume, or "
            f"start it over with --restart"
        )
    if mode == "resume" and state == "finished":
        raise ConfigError(f"cannot resume {run_dir}: the run already finished")


@dataclass(frozen=True)
class Submitted:
    name: str
    job_id: str
    folder: Path


@contextlib.contextmanager
def _detached_stdio(active: bool):
    """submitit's local executor starts its job controller with this process's stdout and
    stderr: a caller reading them to their end (a pipe, ssh) would wait for the job. The
    controller gets /dev/null instead (its job's output goes to its folder and run.log)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _executor(submitit, kind: str, folder: Path, options: SlurmOptions, name: str):
    if kind == "slurm":
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
        params = {
            "job_name": f"fnotui-{name}",
            "time": options.time,
            "nodes": 1,
            "ntasks_per_node": 1,
            "partition": options.partition,
            "cpus_per_task": options.cpus,
            "gpus_per_task": options.gpus or None,
            "mem": options.mem,
            "additional_parameters": dict(options.extra) or None,
            # SIGUSR2 this long before the time limit: the engine saves and stops (run_engine).
            "signal_delay_s": min(90, options.time * 15),
        }
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return executor
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=options.time or 24 * 60)
    return executor


def submit(
    study,
    arms_file: Path,
    names: list[str],
    *,
    kind: str,
    options: SlurmOptions,
    mode: str | None,
    profile: str | None,
    out: Path | None,
    overrides=(),
    device: str = "auto",
    force: bool = False,
    log=print,
) -> list[Submitted]:
    """Submit one job per run (the checks are the caller's, done before). ``mode`` "restart"
    archives the earlier run here, on the login node, before its job is queued. The memory
    estimate is checked by the engine on its node, against the device it is given there
    (the login node cannot see it): a job that would not fit fails at once, saying so, unless
    ``force``."""
    from engine.control.launch import engine_command

    submitit = require_submitit()
    repo = Path(__file__).resolve().parents[2]
    done = []
    for name in names:
        run_dir = study.run_dir(name)
        if mode == "restart":
            archived = archive_run(study.output_dir, name)
            if archived:
                log(f"moved the earlier run of {name} to {archived}")
        command = engine_command(
            arms_file,
            name,
            out,
            profile,
            device,
            "resume" if mode == "resume" else None,
            overrides,
            max_parallel=None,
            force=force,
        )
        folder = study.output_dir / ".slurm" / name
        folder.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        with _detached_stdio(kind == "submitit-local"):
            job = _executor(submitit, kind, folder, options, name).submit(
                run_engine, command, str(repo), str(run_dir / "run.log")
            )
        job_id = str(job.job_id)
        # What a resume from the dashboard resubmits with (LocalControl.launch).
        atomic_write_json(folder / "options.json", {"executor": kind, **asdict(options)})
        mark_submitted(run_dir, name, study.arms[name].train.epochs, job_id, kind)
        done.append(Submitted(name, job_id, folder))
    return done


# -- how jobs ended: asked from Slurm by the CLI, recorded in status.json -------------------


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} as Slurm knows them: squeue first (it keeps a job a few
    minutes after its end, and needs no accounting), then sacct for the rest. A job neither
    knows is left out; a Slurm that does not answer gives {}."""
    if not job_ids:
        return {}
    found: dict[str, tuple[str, str]] = {}
    wanted = set(job_ids)
    try:
        out = subprocess.run(
            [_client("squeue"), "-h", "-t", "all", "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            timeout=SLURM_TIMEOUT_S,
        )
        for line in out.stdout.splitlines():
            job, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            if job in wanted:
                found[job] = (state, "" if reason in ("None", "") else reason)
        missing = sorted(wanted - set(found))
        if missing and shutil.which("sacct"):
            out = subprocess.run(
                ["sacct", "-n", "-X", "-P", "-j", ",".join(missing), "-o", "JobID,State,Reason"],
                capture_output=True,
                text=True,
                timeout=SLURM_TIMEOUT_S,
            )
            for line in out.stdout.splitlines():
                parts = line.split("|")
                if len(parts) >= 2 and parts[0] in wanted:
                    # "CANCELLED by 0": the state is the first word.
                    reason = parts[2] if len(parts) > 2 and parts[2] != "None" else ""
                    found[parts[0]] = (parts[1].split()[0], reason)
    except (SlurmUnreachable, subprocess.TimeoutExpired, OSError):
        return found
    return found


def refresh(run_dirs: list[Path]) -> dict[Path, str]:
    """Record in status.json how the Slurm jobs of these runs ended, or that Slurm requeued
    them, for the runs whose job may have changed unseen (not ended by the engine itself, no
    end recorded yet, or requeued and perhaps ended since): one squeue call for all of them.
    Returns {run dir: Slurm state} of what was recorded."""
    pending: dict[str, Path] = {}
    for run_dir in run_dirs:
        st = read_status(run_dir) or {}
        if (
            st.get("slurm_job_id")
            and st.get("executor", "slurm") == "slurm"
            and st.get("slurm_state") in (None, SLURM_REQUEUED)
            and st.get("state") not in ("finished", "failed", "oom")
        ):
            pending[str(st["slurm_job_id"])] = run_dir
    recorded = {}
    for job_id, (state, reason) in job_states(list(pending)).items():
        run_dir = pending[job_id]
        if state in SLURM_ENDED or state == "COMPLETED":
            if record_slurm_state(run_dir, job_id, state, reason):
                recorded[run_dir] = state
        elif state in REQUEUED_STATES and (read_status(run_dir) or {}).get("state") == "killed":
            # The engine stopped (SIGTERM) but the job is back in the queue: Slurm, not the
            # user, stopped it, and the job's next attempt continues the run by itself. (Read
            # again: the engine may have written its stop since the read above.)
            why = f"requeued by Slurm ({reason or state.lower()})"
            if record_slurm_state(run_dir, job_id, SLURM_REQUEUED, why):
                recorded[run_dir] = SLURM_REQUEUED
    return recorded


def cancel(run_dir: Path, name: str) -> str | None:
    """Cancel the Slurm job of a run submitted with --executor slurm (scancel: Slurm sends the
    engine SIGTERM, and it saves and stops as under fnotui stop). None for any other run."""
    st = read_status(run_dir) or {}
    if not st.get("slurm_job_id") or st.get("executor") != "slurm":
        return None
    job_id = str(st["slurm_job_id"])
    requeued = st.get("slurm_state") == SLURM_REQUEUED
    if not requeued and (st.get("state") in FINAL_STATES or st.get("slurm_state")):
        raise ControlError(
            f"{name}: its Slurm job {job_id} has ended (state: {run_state(run_dir)})"
        )
    try:
        out = subprocess.run(
            [_client("scancel"), job_id], capture_output=True, text=True, timeout=SLURM_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise SlurmUnreachable(f"{name}: scancel {job_id} did not return") from None
    if out.returncode != 0:
        raise ControlError(f"{name}: scancel {job_id} failed: {out.stderr.strip()}")
    if st.get("pid") is None or requeued:  # no engine running: none will write the end
        record_slurm_state(run_dir, job_id, "CANCELLED", "cancelled with fnotui stop while queued")
        how = "requeued, not running again yet" if requeued else "it had not started"
        return f"cancelled {name}'s Slurm job {job_id} ({how})"
    return (
        f"cancelled {name}'s Slurm job {job_id}; the engine saves and stops (resume with --resume)"
    )


def batch_executor(run_dir: Path) -> str | None:
    """ "slurm" or "submitit-local" for a run last submitted as a batch job, else None."""
    kind = (read_status(run_dir) or {}).get("executor")
    return kind if kind in ("slurm", "submitit-local") else None


def resubmit(control, arm: str) -> str:
    """Resume a batch run as a batch run (the dashboard's resume key, through LocalControl):
    resubmitted with the resources of its last submission, after the same checks as
    ``fnotui sweep --executor slurm --resume``."""
    import json

    study, run_dir = control.study, control.study.run_dir(arm)
    kind = batch_executor(run_dir)
    try:
        saved = json.loads((study.output_dir / ".slurm" / arm / "options.json").read_text())
    except (OSError, ValueError):
        saved = {}
    saved.pop("executor", None)
    options = study.slurm.merged(SlurmOptions(**saved)) if saved else study.slurm
    check_options(kind, options)
    if kind == "slurm":
        check_controller()
        refresh([run_dir])  # a job Slurm requeued reads as queued: refused below, not doubled
    check_submittable(run_dir, arm, "resume")
    (job,) = submit(
        study,
        control.arms_file,
        [arm],
        kind=kind,
        options=options,
        mode="resume",
        profile=control.profile,
        out=control.out,
        overrides=control.overrides,
        device=control.device,
        force=control.force,
    )
    return f"resubmitted {arm} (resume): {kind} job {job.job_id}, log {run_dir / 'run.log'}"
