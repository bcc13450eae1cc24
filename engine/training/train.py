"""One training process: ``train_arm`` runs an arm into its run directory.

Around the loop (engine/training/loop.py) it holds what a process owns: the run lock, SIGTERM and
SIGINT turned into a clean stop, the device slot (engine/training/devices.py), status.json from
queued to finished, the run.log tee, and the final ``status`` record, written whatever happens, so
a reader never has to guess how a run ended. Running out of memory, at model load or in a step,
ends the run as ``oom`` with the failed allocation's size and the device's capacity, not as a
plain failure: the cure (a smaller batch or generator) is another one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.config import ArmConfig
from engine.errors import ConfigError, FnotuiError
from engine.runs.rundir import RunDir
from engine.runs.schema import STATUS
from engine.runs.status import RunLock, StatusFile, run_state
from engine.runs.telemetry import TelemetryWriter

# Re-exported: the CLI resolves --device before it starts anything.
from engine.training.compiling import check_compile
from engine.training.devices import check_precision, resolve_device, resolve_devices, take_slot
from engine.training.loop import (
    EpochSummary,
    Job,
    RunResult,
    StopRequest,
    format_epoch_line,
    run_training,
)
from engine.training.memory_check import is_out_of_memory, oom_details

__all__ = [
    "EpochSummary",
    "RunResult",
    "format_epoch_line",
    "resolve_device",
    "resolve_devices",
    "train_arm",
]


def train_arm(
    cfg: ArmConfig,
    run_dir: Path,
    *,
    cache_dir: Path,
    device: str = "auto",
    log: Callable[[str], None] = print,
    resume: bool = False,
    max_parallel: int | None = None,
) -> RunResult:
    """Train one arm into ``run_dir``. Raises on failure after recording it in status/telemetry.

    With ``resume``, continue from the last epoch-end checkpoint and append to the same
    telemetry after a ``segment`` record. Without it, a directory that already holds a run is
    refused (ConfigError) rather than mixing two runs in one telemetry file.

    Every line given to ``log`` is also appended, time-stamped, to the arm's run.log, so the
    console story survives a detached or headless run.

    With ``max_parallel``, the arm first waits in the device queue (engine/runs/queue.py) for a slot
    on one of ``device``'s devices, with status ``queued``; stopped while queued, it leaves the
    run directory as it found it and raises Dequeued.
    """
    # A precision or compile mode none of the candidate devices can honour is bad input: refused
    # before the run directory is touched. (The slot's own device is checked again once it is
    # known.)
    check_modes(cfg, resolve_devices(device))
    run = RunDir(Path(run_dir))
    lock = RunLock(run)
    lock.acquire()
    try:
        _check_run_dir(run, resume)
    except ConfigError:
        lock.release()
        raise
    log = _tee_to_run_log(run.log, log)
    stop = StopRequest()
    restore_signals = stop.install()
    status = StatusFile(run, cfg.name, cfg.train.epochs, resume=resume)
    try:
        slot, queue_info = take_slot(cfg.name, device, max_parallel, run, status, stop, log)
    except BaseException:
        restore_signals()
        lock.release()
        raise
    device = slot.device  # the slot is held (a local of this frame) until training ends
    telemetry = None
    try:
        _check_slot_device(cfg, device)
        status.write(state="running", device=device, queue=None)
        telemetry = TelemetryWriter(run.telemetry)
        job = Job(cfg, run, cache_dir, device, log, stop, status, telemetry, resume, queue_info)
        result = run_training(job)
    except BaseException as exc:
        state, code, message, extra = _ending(exc, device)
        log(f"[{cfg.name}] {state}: {message}")
        if telemetry is not None:
            try:
                telemetry.write(
                    STATUS.record(
                        state=state, exit_code=code, error=message, **extra, t=time.time()
                    )
                )
            except Exception:  # the disk may be the failure; status.json still tries below
                pass
        try:
            status.finish(state, exit_code=code, error=message, **extra)
        except OSError:
            pass
        raise
    else:
        exit_code = 0 if result.state == "finished" else 130
        telemetry.write(
            STATUS.record(
                state=result.state,
                exit_code=exit_code,
                epochs_done=result.epochs_done,
                stopped_early=result.stopped_early,
                t=time.time(),
            )
        )
        status.finish(
            result.state,
            exit_code=exit_code,
            error=f"stopped by {stop.signal_name}" if stop.requested else None,
            stopped_early=result.stopped_early,
        )
        return result
    finally:
        if telemetry is not None:
            telemetry.close()
        restore_signals()
        lock.release()


def _ending(exc: BaseException, device: str) -> tuple[str, int, str, dict]:
    """(state, exit code, error, extra status fields) of a run ended by ``exc``: a second
    Ctrl-C is a stop, running out of memory is ``oom`` with the numbers, the rest ``failed``."""
    if isinstance(exc, KeyboardInterrupt):
        return "killed", 130, "interrupted twice: stopped at once", {}
    message = f"{type(exc).__name__}: {exc}"
    if is_out_of_memory(exc):
        return "oom", 1, message, oom_details(exc, device)
    return "failed", 1, message, {}


class DeviceCannotTrain(FnotuiError):
    """The slot's device cannot honour the arm's precision or compile mode, although another
    candidate could: a failed run (exit 1, recorded in status.json), not bad input, because the
    run directory already holds the queued run's status."""


def check_modes(cfg: ArmConfig, devices: list[str]) -> None:
    """Raise ConfigError unless one of ``devices`` can honour the arm's precision and compile
    mode (the CLI calls it before anything is written; train_arm again per slot)."""
    check_precision(cfg.train.precision, devices)
    check_compile(cfg.train.compile, devices)


def _check_slot_device(cfg: ArmConfig, device: str) -> None:
    try:
        check_modes(cfg, [device])
    except ConfigError as exc:
        raise DeviceCannotTrain(f"the slot's device {device}: {exc}") from None


def _check_run_dir(run: RunDir, resume: bool) -> None:
    state = run_state(run.root)
    if resume:
        if not run.checkpoint.is_file():
            raise ConfigError(f"cannot resume {run.root}: no checkpoint there (state: {state})")
        if state == "finished":
            raise ConfigError(f"cannot resume {run.root}: the run already finished")
    elif run.telemetry.exists():
        raise ConfigError(
            f"{run.root} already holds a run (state: {state}); continue it with --resume, or "
            f"train into another directory with --out"
        )


def _tee_to_run_log(path: Path, log: Callable[[str], None]) -> Callable[[str], None]:
    def emit(message: str) -> None:
        log(message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")

    return emit
