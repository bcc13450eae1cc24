"""Start arm engines as detached background processes, and stop them gracefully.

The dashboard never trains in-process and never owns a run (docs/engineering.md, 'Dashboard'): an
arm is the ordinary headless ``fnotui --run ARM`` in its own session, so closing the terminal,
a dropped SSH link or quitting the TUI leaves it training. It is found again through its run
directory (status.json, telemetry.jsonl) like any other run.

The memory estimate (engine/training/memory_check.py) is checked by the command that launches
(``fnotui launch``, ``fnotui sweep``), against every device the arm may take, before any arm
starts; the engine is told so, and does not refuse on its own what its launcher was told to
force.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from engine.control.base import MODES, ControlError
from engine.control.grammar import engine_line
from engine.runs.rundir import RunDir
from engine.runs.status import ACTIVE_STATES, describe_owner, read_status, run_state


class LaunchError(ControlError):
    """An arm cannot be started or stopped from here; the message says why."""


# Engines started by this process: polled by ``reap`` so that a finished child never lingers
# as a zombie (a zombie's pid still answers kill(pid, 0), so its run would look alive).
_children: dict[int, subprocess.Popen] = {}


def engine_command(
    arms_file: Path,
    arm: str,
    output_dir: Path | None,
    profile: str | None,
    device: str,
    mode: str | None = None,
    overrides=(),
    max_parallel: int | None = None,
    force: bool = False,
) -> list[str]:
    """The command line of one arm's headless engine (``fnotui --run ARM``), built from the
    declarations the parser uses (engine/control/grammar.py). ``force`` starts it whatever
    its memory estimate: without it the engine (``fnotui --run``, app/commands/train.py) checks
    the estimate against its candidate devices as it starts, also on a batch node."""
    if mode not in MODES:
        raise ValueError(f"launch mode {mode!r}; expected one of {MODES}")
    return [
        sys.executable,
        "-m",
        "app.cli",
        *engine_line(
            arm,
            arms=Path(arms_file).resolve(),
            device=device,
            out=Path(output_dir).resolve() if output_dir is not None else None,
            profile=profile,
            overrides=list(overrides),
            resume=mode == "resume",
            restart=mode == "restart",
            max_parallel=max_parallel,
            force=force,
        ),
    ]


def launch_detached(
    arms_file: Path,
    arm: str,
    output_dir: Path | None,
    profile: str | None,
    device: str = "auto",
    *,
    run_dir: Path | None = None,
    mode: str | None = None,
    overrides=(),
    max_parallel: int | None = 1,
    force: bool = False,
) -> int:
    """Start ``fnotui --run ARM`` in a new session and return its pid at once.

    ``mode`` is None for an arm without a run, "resume" (continue from its last epoch-end
    checkpoint) or "restart" (the engine archives the earlier run first); the engine refuses
    to mix two runs in one directory otherwise. ``max_parallel`` puts the engine in the device
    queue (engine/runs/queue.py: it waits, status ``queued``, until one of ``device``'s devices has
    fewer busy slots than that); None starts training at once. ``overrides`` are ``--set`` strings, passed on
    so the engine trains the config the caller shows. ``run_dir`` is where the arm's engine will
    write (``Study.run_dir(arm)``; read from the arms file when not given). The process's
    stderr (tracebacks, argument errors) is appended to the arm's run.log; its stdout is
    discarded because the engine already writes every console line, time-stamped, to run.log.
    ``force`` starts the engine whatever its memory estimate.
    """
    if run_dir is None:
        from engine.study.arms import load_study

        study = load_study(
            arms_file,
            profile=profile,
            output_dir=output_dir,
            overrides=list(overrides),
            validate_models=False,
        )
        run_dir = study.run_dir(study.arm(arm).name)
    state = run_state(run_dir)
    if state in ("queued", "running"):
        raise LaunchError(f"arm {arm!r} is already {state} ({describe_owner(run_dir)})")
    run = RunDir(Path(run_dir))
    run.root.mkdir(parents=True, exist_ok=True)
    # The checkout's root (engine/control/launch.py is two levels down), so that
    # ``python -m app.cli`` finds this very fnotui even when it is not installed.
    repo = Path(__file__).resolve().parents[2]
    with open(run.log, "ab") as log:
        proc = subprocess.Popen(
            engine_command(
                arms_file, arm, output_dir, profile, device, mode, overrides, max_parallel, force
            ),
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            # The engine checks its memory estimate against its devices (unless ``force``) as it
            # starts and exits 2 before training, its reason in run.log (created just above);
            # the estimate is cached by the launcher's own check, so the engine's costs little.
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _children[proc.pid] = proc
    return proc.pid


def wait_started(pid: int, run_dir: Path, timeout: float = 30.0) -> tuple[str, int | None]:
    """Wait until the engine ``pid`` (started here) has taken its arm: (state, None) once its
    status.json is ours (queued or running), or (last state, exit code) if it exited first,
    e.g. refused by the arm lock or an argument error (its reason is the end of run.log)."""
    import time

    proc = _children.get(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_status(run_dir) or {}
        if st.get("pid") == pid:
            return run_state(run_dir), None
        if proc is not None and proc.poll() is not None:
            _children.pop(pid, None)
            return run_state(run_dir), proc.returncode
        time.sleep(0.1)
    return "starting", None


def last_log_line(path: Path) -> str:
    """The last line of an engine's run.log (its last words: an error, a refusal)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def reap() -> list[tuple[int, int]]:
    """(pid, exit code) of the engines started here that have exited since the last call."""
    done = []
    for pid, proc in list(_children.items()):
        code = proc.poll()
        if code is not None:
            del _children[pid]
            done.append((pid, code))
    return done


def stop_run(run_dir: Path) -> int:
    """Ask the arm's engine to stop (SIGTERM: it saves model, history and a ``killed`` status)
    and return its pid. Raises LaunchError if it is not running or not on this host."""
    st = read_status(run_dir)
    if st is None:
        raise LaunchError(f"{run_dir}: no status.json; this arm has not been started")
    state = run_state(run_dir)
    if state not in ACTIVE_STATES:
        raise LaunchError(f"{run_dir}: the arm is not running (state: {state})")
    host, pid = st.get("host"), st.get("pid")
    if host != socket.gethostname():
        raise LaunchError(
            f"{run_dir}: the arm runs on host {host!r}, not here "
            f"({socket.gethostname()}); stop it there (pid {pid})"
        )
    if not isinstance(pid, int) or pid <= 0:
        raise LaunchError(f"{run_dir}: status.json has no usable pid ({pid!r})")
    if not _is_engine(pid):
        raise LaunchError(
            f"{run_dir}: pid {pid} is not an fnotui engine any more (the run "
            f"ended and the pid was reused); not signalling it"
        )
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise LaunchError(f"{run_dir}: pid {pid} is gone; the run has ended or crashed") from None
    except PermissionError:
        raise LaunchError(f"{run_dir}: pid {pid} belongs to another user") from None
    return pid


def _is_engine(pid: int) -> bool:
    """Guard against a recycled pid: on Linux, the process must be an engine: ``--run ARM``
    (how launches spell it), ``run ARM``, or a foreground ``sweep``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs here: cannot tell, trust the pid
    except OSError:
        return True
    return bool({b"--run", b"run", b"sweep"} & set(cmdline))
