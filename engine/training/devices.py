"""Where an engine trains: device names resolved and checked, seeding, and the slot it holds in
the device queue (engine/runs/queue.py) while it trains.

Kept apart from the loop (engine/training/loop.py) so that the loop reads top to bottom as
training, and so that the CLI can check a --device value without building anything.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch

from engine.atomic import atomic_write_json
from engine.errors import ConfigError, Dequeued
from engine.runs.queue import DeviceQueue, Slot
from engine.runs.rundir import RunDir
from engine.runs.status import StatusFile, read_status


def resolve_device(requested: str) -> torch.device:
    """One device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda``, ``cuda:1``."""
    devices = resolve_devices(requested)
    if len(devices) > 1 and requested != "auto":
        raise ConfigError(
            f"--device {requested!r} names {len(devices)} devices; one engine "
            f"trains on one: give several devices to a queue (fnotui launch, "
            f"or --run with --max-parallel)"
        )
    return torch.device(devices[0])


def resolve_devices(requested: str) -> list[str]:
    """The devices a queue may place an arm on: ``auto`` is every visible GPU (else the CPU);
    ``cuda:0,cuda:1`` is a list. Each is checked to exist here."""
    if requested == "auto":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    devices = []
    for text in requested.split(","):
        try:
            dev = torch.device(text.strip())
        except RuntimeError as exc:
            raise ConfigError(
                f"--device {requested!r}: {text.strip()!r} is not a device "
                f"(expected auto, cpu, cuda, cuda:N; {exc})"
            ) from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(f"--device {requested!r}: CUDA is not available on this machine")
            if (dev.index or 0) >= torch.cuda.device_count():
                raise ConfigError(
                    f"--device {requested!r}: {dev} does not exist here "
                    f"({torch.cuda.device_count()} GPU(s) visible)"
                )
        elif dev.type != "cpu":
            raise ConfigError(f"--device {requested!r}: {dev.type} is not supported (cpu or cuda)")
        devices.append(str(dev))
    return devices


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> dict:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and device.type == "cuda":
        # cuBLAS needs this before its first call to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    return {
        "seed": seed,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def device_info(device: torch.device) -> dict:
    info = {"type": device.type, "name": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        # TF32 changes fp32 results at the 1e-4 level (docs/benchmarks.md, GPU): say which
        # kernels may use it.
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
        info["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    else:
        info["cpu"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    return info


def take_slot(
    arm: str,
    device: str,
    max_parallel: int | None,
    run: RunDir,
    status: StatusFile,
    stop,
    log,
) -> tuple[Slot, dict | None]:
    """The device slot this engine trains in, and the header's ``queue`` record. Queued: wait
    for it. Not queued: claim one at once anyway, so that queued engines count this one. A
    queue that fails (its directory unwritable, say) fails the run with that reason."""
    try:
        if max_parallel is None:
            own = concrete_device(resolve_device(device))
            return DeviceQueue([own], 1, arm, keys=slot_keys([own])).claim(), None
        devices = resolve_devices(device)
        slot = wait_for_slot(arm, devices, max_parallel, run, status, stop, log)
    except Dequeued:
        raise
    except BaseException as exc:
        message = f"device queue: {type(exc).__name__}: {exc}"
        log(f"[{arm}] failed: {message}")
        status.finish("failed", exit_code=1, error=message)
        raise
    return slot, {
        "device": slot.device,
        "slot": slot.index,
        "max_parallel": max_parallel,
        "devices": devices,
        "waited_s": round(slot.waited_s, 3),
    }


def concrete_device(dev: torch.device) -> str:
    """cuda -> cuda:N (the current device), so that its slot is that GPU's."""
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(dev)


def slot_keys(devices: list[str]) -> dict[str, str]:
    """GPU UUIDs as slot keys where torch reports them: the same GPU has the same slots
    whatever CUDA_VISIBLE_DEVICES renumbers it to."""
    keys = {}
    for name in devices:
        dev = torch.device(name)
        if dev.type == "cuda":
            uuid = getattr(torch.cuda.get_device_properties(dev.index or 0), "uuid", None)
            if uuid:
                keys[name] = f"gpu-{uuid}"
    return keys


def wait_for_slot(
    arm: str,
    devices: list[str],
    max_parallel: int,
    run: RunDir,
    status: StatusFile,
    stop,
    log,
) -> Slot:
    """Wait (status ``queued``, heartbeat kept) for a slot on one of ``devices``. Stopped while
    waiting: put back the status the arm had (an earlier run's ``--restart`` archive stays
    archived), raise Dequeued."""
    previous = read_status(run.root)
    queue = DeviceQueue(devices, max_parallel, arm, keys=slot_keys(devices))

    def waiting(message: str) -> None:
        log(f"[{arm}] {message}")
        status.write(state="queued", queue=message)

    def should_stop() -> bool:
        status.beat()
        return stop.requested

    status.write(state="queued", queue=f"queued for {','.join(devices)}")
    slot = queue.wait(should_stop=should_stop, on_wait=waiting)
    if slot is None:
        if previous is None:
            run.status.unlink(missing_ok=True)
        else:
            atomic_write_json(run.status, previous)
        log(f"[{arm}] left the queue ({stop.signal_name}); nothing was trained")
        raise Dequeued(f"arm {arm!r} was stopped while queued; nothing was trained")
    log(f"[{arm}] got slot {slot.index} of {slot.device} after {slot.waited_s:.1f} s in the queue")
    return slot


# What stays fp32 under precision = "bf16", and why (docs/benchmarks.md, 'Precision modes').
KEPT_FP32 = (
    "spectral transforms and mode mixing (SpectralConv2d leaves autocast: a truncated DFT "
    "summed in bf16 loses the small modes)",
    "output head cast to fp32, so the object patch stays complex64",
    "physics (probe multiply, FFT, far-field amplitude) and the loss",
    "optimizer state and master weights (autocast casts copies, the parameters stay fp32)",
    "validation and the final evaluation (always fp32, comparable across arms)",
)


def check_precision(mode: str, devices: list[str]) -> None:
    """Raise ConfigError unless at least one of ``devices`` can honour ``mode``."""
    if mode == "tf32" and all(torch.device(d).type == "cpu" for d in devices):
        precision_context(mode, torch.device("cpu"))  # raises, with the message in one place


def precision_context(
    mode: str, dev: torch.device
) -> tuple[Callable[[], AbstractContextManager], dict]:
    """Set the TF32 switches for ``mode`` and return (a context for the training forward, the
    header's ``precision`` record). A mode the device cannot honour raises ConfigError naming
    the knob: a precision that silently changed nothing would be a knob that lies."""
    if mode == "tf32":
        if dev.type != "cuda":
            raise ConfigError(
                f"train.precision = 'tf32' on {dev}: TF32 exists only on CUDA GPUs (compute "
                f"capability 8.0 or newer); on the CPU it would change nothing. Allowed here: "
                f"'fp32' or 'bf16'"
            )
        major, minor = torch.cuda.get_device_capability(dev)
        if major < 8:
            raise ConfigError(
                f"train.precision = 'tf32' on {torch.cuda.get_device_name(dev)} (compute "
                f"capability {major}.{minor}): TF32 needs 8.0 or newer; allowed here: 'fp32' or "
                f"'bf16' where supported"
            )
    if dev.type == "cuda":
        # Set in both directions: PyTorch's default lets cuDNN use TF32, which 'fp32' must not.
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
    if mode == "bf16":
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"train.precision = 'bf16' on {torch.cuda.get_device_name(dev)}: this GPU has no "
                f"bf16 support; allowed here: 'fp32' (or 'tf32' on compute capability >= 8.0)"
            )

        def autocast() -> AbstractContextManager:
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext
    info = {
        "mode": mode,
        "autocast": "bfloat16" if mode == "bf16" else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if dev.type == "cuda" else None,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32 if dev.type == "cuda" else None,
        "kept_fp32": list(KEPT_FP32) if mode == "bf16" else None,
    }
    return autocast, info
