"""The training loop of one arm, in plain PyTorch, readable top to bottom (docs/science.md,
'Training loop').

Seed -> dataset -> model -> physics -> optimizer, schedule, clipper -> header record -> per epoch:
set the epoch's LR, training steps (step records), validation, schedule update, epoch record,
history/status -> final evaluation on the last weights -> artifacts.

Everything the loop does to the optimisation is read back from the live objects and written to
the telemetry header, so a knob that did not arrive is visible (docs/science.md, 'Knobs not
passed through').
"""

from __future__ import annotations

import math
import os
import platform
import random
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_write_bytes, atomic_write_json
from engine.config import ArmConfig
from engine.errors import ConfigError, Dequeued
from engine.models import build_model, describe_model
from engine.runs.queue import DeviceQueue, Slot
from engine.runs.rundir import RunDir
from engine.runs.status import RunLock, StatusFile, read_status, run_state
from engine.runs.telemetry import SCHEMA, TelemetryWriter
from engine.scoring.detectors import EpochDetectors, Event, StepDetectors
from engine.scoring.evaluate import evaluate, headline_metrics
from engine.scoring.twin import classify_branches
from engine.sim.data import load_or_build_dataset
from engine.sim.physics import ForwardModel, get_loss
from engine.sim.stitch import stitch_border
from engine.training.checkpoint import LoopState, load_checkpoint, restore_rng, save_checkpoint
from engine.training.optim import (
    GradClipper,
    LRSchedule,
    build_optimizer,
    current_lr,
    describe_optimizer,
    set_lr,
)

# Step records are buffered on the device and copied to the host in one transfer every this many
# steps (or at the epoch end): a per-step .item() would stall a GPU (docs/engineering.md,
# 'Throughput on a GPU').
STEP_FLUSH_EVERY = 32
# Predicted-amplitude spread is measured on this many test patches (a fixed, scan-ordered batch).
PROBE_BATCH = 64


@dataclass
class EpochSummary:
    """What the console line and callers need after each epoch."""

    epoch: int  # 1-based, as printed
    epochs: int
    train_loss: float
    val_loss: float
    grad_norm: float
    lr: float
    samples_per_s: float
    epoch_time: float
    eta_s: float


@dataclass
class RunResult:
    state: str  # finished | killed
    run_dir: Path
    history: dict
    metrics: dict | None = None
    epochs_done: int = 0
    wall_time: float = 0.0
    stopped_early: str | None = None  # the detector rule that stopped training (on_collapse)


class StopRequest:
    """Set by SIGTERM/SIGINT: the loop finishes the current step, saves, and exits cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def __call__(self, signum, _frame) -> None:
        if self.requested:  # a second Ctrl-C means "now": no more waiting for the step to end
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def install(self):
        previous = {s: signal.signal(s, self) for s in (signal.SIGTERM, signal.SIGINT)}
        return lambda: [signal.signal(s, h) for s, h in previous.items()]


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


def tensor_summary(t: torch.Tensor) -> dict:
    t = t.detach().float()
    return {
        "mean": t.mean().item(),
        "std": t.std(unbiased=False).item(),
        "abs_max": t.abs().max().item(),
    }


def stable_block_summaries(model: torch.nn.Module) -> tuple[dict, dict]:
    """LayerScale gammas and normalisation weights, by state-dict name (docs/science.md,
    'Artifacts and the stats dump')."""
    layerscale, norms = {}, {}
    for name, p in model.named_parameters():
        if "layerscale" in name:
            layerscale[name] = tensor_summary(p)
        elif "norm" in name and name.endswith("weight"):
            norms[name] = tensor_summary(p)
    return layerscale, norms


def _device_info(device: torch.device) -> dict:
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


@dataclass(frozen=True)
class Validation:
    """One validation pass. Amplitude errors are in the units of the final amplitude MAE."""

    loss: float
    pred_amp_std: float
    amp_mae: float  # against the ground truth
    amp_mae_twin: float  # against its twin, patch by patch
    twin_fraction: float  # of the decidable patches, those closer to the twin


@torch.no_grad()
def validate(
    model,
    physics,
    loss_fn,
    x_test: torch.Tensor,
    batch: int,
    amp_test: torch.Tensor | None = None,
    border: int = 0,
    norm_Y_I: float = 1.0,
    probe: torch.Tensor | None = None,
) -> Validation:
    """Validation loss (mean over batches of ``batch`` patterns, each normalised by its own mean
    observation, as the original did); the mean per-patch std of the predicted amplitude over the
    first PROBE_BATCH test patches (fixed and scan-ordered, so epochs are comparable); and the
    amplitude error against the ground truth (``amp_test``, normalised patches), NaN without it.

    The amplitude error is the one the loss cannot see: a diffraction-amplitude loss is blind to
    the phase-retrieval ambiguities, and arms with equal validation loss can reconstruct very
    different objects. It is the MAE over the central region each patch contributes to the
    stitched image (``border`` pixels dropped per side), after one mean-ratio scale over the
    whole test set, times the test ``norm_Y_I``: the units of the final amplitude MAE. It is
    also measured against the twin of every patch (flipped through its centre; the amplitude of
    conj(O(-r)) is |O(-r)|), with the fraction of patches nearer the twin, because for a real,
    centrosymmetric probe the twin is an exact solution the loss cannot rule out. The branch of
    each patch is decided by engine.scoring.twin.classify_branches, weighted by |probe|^2 (uniform when
    ``probe`` is None); undecidable patches are left out of the fraction (NaN if none is)."""
    was_training = model.training
    model.eval()
    losses, stds, amps = [], [], []
    n = x_test.shape[-1]
    for start in range(0, x_test.shape[0], batch):
        xb = x_test[start : start + batch]
        obj = model(xb)
        losses.append(loss_fn(physics(obj), xb[:, 0]))
        if start < PROBE_BATCH:
            probe_amp = obj[: PROBE_BATCH - start].abs().flatten(1)
            stds.append(probe_amp.std(dim=1, unbiased=False))
        if amp_test is not None:
            amps.append(obj.abs())
    model.train(was_training)
    amp_mae = amp_mae_twin = twin_fraction = math.nan
    if amps:
        pred = torch.cat(amps)
        centre = (slice(None), slice(border, n - border), slice(border, n - border))
        pred_c, truth_c = pred[centre], amp_test[centre]
        twin_c = amp_test.flip(-2, -1)[centre]
        scale = truth_c.mean() / pred_c.mean().clamp_min(1e-12)
        amp_mae = float((pred_c * scale - truth_c).abs().mean().item()) * norm_Y_I
        amp_mae_twin = float((pred_c * scale - twin_c).abs().mean().item()) * norm_Y_I
        # The same per-patch rule as the final evaluation (engine.scoring.twin), on the host: one copy
        # of the amplitudes per epoch, small next to the validation pass itself.
        branches = classify_branches(
            pred.cpu().numpy(),
            amp_test.cpu().numpy(),
            None if probe is None else probe.cpu().numpy(),
        )
        twin_fraction = branches.fraction
    return Validation(
        float(torch.stack(losses).mean().item()),
        float(torch.cat(stds).mean().item()),
        amp_mae,
        amp_mae_twin,
        twin_fraction,
    )


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
    status = StatusFile(run, cfg.name, cfg.train.epochs)
    try:
        slot, queue_info = _take_slot(cfg.name, device, max_parallel, run, status, stop, log)
    except BaseException:
        restore_signals()
        lock.release()
        raise
    device = slot.device  # the slot is held (a local of this frame) until training ends
    telemetry = None
    try:
        status.write(state="running", device=device, queue=None)
        telemetry = TelemetryWriter(run.telemetry)
        result = _train(
            cfg, run, cache_dir, device, log, stop, status, telemetry, resume, queue_info
        )
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        state, code = ("killed", 130) if interrupted else ("failed", 1)
        message = (
            "interrupted twice: stopped at once" if interrupted else f"{type(exc).__name__}: {exc}"
        )
        log(f"[{cfg.name}] {state}: {message}")
        if telemetry is not None:
            try:
                telemetry.write(
                    {
                        "type": "status",
                        "state": state,
                        "exit_code": code,
                        "error": message,
                        "t": time.time(),
                    }
                )
            except Exception:  # the disk may be the failure; status.json still tries below
                pass
        try:
            status.finish(state, exit_code=code, error=message)
        except OSError:
            pass
        raise
    else:
        exit_code = 0 if result.state == "finished" else 130
        telemetry.write(
            {
                "type": "status",
                "state": result.state,
                "exit_code": exit_code,
                "epochs_done": result.epochs_done,
                "stopped_early": result.stopped_early,
                "t": time.time(),
            }
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


def _take_slot(
    arm: str,
    device: str,
    max_parallel: int | None,
    run: RunDir,
    status: StatusFile,
    stop: StopRequest,
    log,
) -> tuple[Slot, dict | None]:
    """The device slot this engine trains in, and the header's ``queue`` record. Queued: wait
    for it. Not queued: claim one at once anyway, so that queued engines count this one. A
    queue that fails (its directory unwritable, say) fails the run with that reason."""
    try:
        if max_parallel is None:
            own = _concrete(resolve_device(device))
            return DeviceQueue([own], 1, arm, keys=_slot_keys([own])).claim(), None
        devices = resolve_devices(device)
        slot = _wait_for_slot(arm, devices, max_parallel, run, status, stop, log)
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


def _concrete(dev: torch.device) -> str:
    """cuda -> cuda:N (the current device), so that its slot is that GPU's."""
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(dev)


def _slot_keys(devices: list[str]) -> dict[str, str]:
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


def _wait_for_slot(
    arm: str,
    devices: list[str],
    max_parallel: int,
    run: RunDir,
    status: StatusFile,
    stop: StopRequest,
    log,
) -> Slot:
    """Wait (status ``queued``, heartbeat kept) for a slot on one of ``devices``. Stopped while
    waiting: put back the status the arm had (an earlier run's ``--restart`` archive stays
    archived), raise Dequeued."""
    previous = read_status(run.root)
    queue = DeviceQueue(devices, max_parallel, arm, keys=_slot_keys(devices))

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


def _train(
    cfg: ArmConfig,
    run: RunDir,
    cache_dir: Path,
    device_name: str,
    log,
    stop: StopRequest,
    status: StatusFile,
    telemetry: TelemetryWriter,
    resume: bool,
    queue_info: dict | None = None,
) -> RunResult:
    t_start = time.time()
    tc = cfg.train
    dev = resolve_device(device_name)
    seeding = seed_everything(tc.seed, tc.deterministic, dev)
    atomic_write_json(run.config, cfg.to_dict())

    dataset = load_or_build_dataset(cfg.data, cache_dir, log=log)
    torch.manual_seed(tc.seed)  # weights depend on the training seed only, not on data timing
    model = build_model(cfg.model, cfg.data.N).to(dev)
    physics = ForwardModel(
        torch.from_numpy(dataset.probe), tc.physics_gain, tc.physics_gain_mode
    ).to(dev)
    loss_fn = get_loss(tc.loss)
    optimizer = build_optimizer(model.parameters(), tc)
    schedule = LRSchedule(tc)
    clipper = GradClipper(model.parameters(), tc)

    x_train = torch.from_numpy(dataset.train.diffraction).unsqueeze(1).to(dev)
    x_test = torch.from_numpy(dataset.test.diffraction).unsqueeze(1).to(dev)
    amp_test = torch.from_numpy(dataset.test.amplitude).to(dev)
    n_train = x_train.shape[0]
    steps_per_epoch = math.ceil(n_train / tc.batch_size)
    border = stitch_border(cfg.data.N, cfg.data.test_stride)  # what stitching keeps
    # The output spread a healthy generator reaches: the truth's, divided by the physics gain of
    # a full batch (under a gain g the generator must output object / g), so the collapse rule
    # keeps its margin whatever the gain.
    target_amp_std = float(
        amp_test[:PROBE_BATCH].flatten(1).std(dim=1, unbiased=False).mean()
        / physics.gain_for(tc.batch_size)
    )
    shuffle = torch.Generator().manual_seed(tc.seed)  # CPU generator: same order on any device
    step_rules = StepDetectors(cfg.detect)
    epoch_rules = EpochDetectors(cfg.detect, target_amp_std)
    loop = LoopState()
    if resume:
        ckpt = load_checkpoint(run.checkpoint, cfg.to_dict())
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        restore_rng(ckpt, shuffle)
        step_rules, epoch_rules = ckpt["detectors"]["step"], ckpt["detectors"]["epoch"]
        loop = ckpt["loop"]
        loop.segment += 1
    stop_reason: str | None = None

    model_info = describe_model(model)
    header = {
        "type": "header",
        "schema": SCHEMA,
        "arm": cfg.name,
        "config": cfg.to_dict(),
        "model": model_info,
        "parameters": model_info["parameters"],
        "channel_schedule": model_info.get("channels"),
        "optimizer": describe_optimizer(optimizer),
        "scheduler": schedule.describe(),
        "clip": clipper.describe(),
        # Not named "loss": a field keeps one type across record types so that
        # polars.read_ndjson can read the whole file into one frame.
        "physics": {
            "loss_mode": tc.loss,
            **physics.describe(),
            "loss_normalisation": "divided by the batch-mean observed amplitude (detached)",
            "val_batch_size": tc.val_batch_size,
            "probe_twin_symmetry": dataset.meta.get("probe", {}).get("twin_symmetry"),
        },
        "dataset": dataset.meta,
        "n_train": n_train,
        "n_test": int(x_test.shape[0]),
        "steps_per_epoch": steps_per_epoch,
        "target_amp_std": target_amp_std,
        "seeding": seeding,
        "device": _device_info(dev),
        "queue": queue_info,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start_time": t_start,
        "t": t_start,
    }
    if resume:
        # Records of the interrupted process from this epoch on are superseded by what follows
        # (engine.runs.telemetry.resolve_segments); the first header stays the run's header.
        telemetry.write(
            {
                "type": "segment",
                "segment": loop.segment,
                "resume_epoch": loop.epochs_done,
                "resume_step": loop.global_step,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "device": header["device"],
                "start_time": t_start,
                "t": t_start,
            }
        )
        log(
            f"[{cfg.name}] resuming after epoch {loop.epochs_done} (step {loop.global_step}), "
            f"segment {loop.segment}"
        )
    else:
        telemetry.write(header)
    telemetry.fsync()
    log(
        f"[{cfg.name}] {model_info['architecture']}: {model_info['parameters']:,} parameters, "
        f"channels {model_info.get('channels')}, optimizer {header['optimizer']['class']}, "
        f"scheduler {tc.scheduler}, clip {clipper.describe()['algorithm'] or 'off'}, "
        f"device {dev}, {n_train} train / {x_test.shape[0]} test patterns"
    )

    history = loop.history
    global_step = loop.global_step
    epochs_done = loop.epochs_done
    epoch_times: list[float] = []  # this process's epochs, for the ETA
    model.train()
    for epoch in range(epochs_done, tc.epochs):
        set_lr(optimizer, schedule.lr_for_epoch(epoch))
        lr = current_lr(optimizer)  # read back: this is what the optimizer will use
        t_epoch = time.time()
        perm = torch.randperm(n_train, generator=shuffle).to(dev)
        pending: list[tuple] = []  # (step, loss, pre, post, t) with device tensors
        loss_sum = torch.zeros((), device=dev)
        grad_sum = torch.zeros((), device=dev)
        grad_count = 0
        for i in range(steps_per_epoch):
            idx = perm[i * tc.batch_size : (i + 1) * tc.batch_size]
            xb = x_train[idx]
            pred = physics(model(xb))
            loss = loss_fn(pred, xb[:, 0])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            measure = global_step % tc.grad_norm_log_freq == 0
            pre, post = clipper(measure=measure)
            optimizer.step()
            loss_sum += loss.detach() * xb.shape[0]
            if pre is not None:
                grad_sum += pre
                grad_count += 1
            pending.append((global_step, loss.detach(), pre, post, time.time()))
            global_step += 1
            if len(pending) >= STEP_FLUSH_EVERY or i == steps_per_epoch - 1 or stop.requested:
                fired = _flush_steps(telemetry, pending, epoch, lr, step_rules)
                pending = []
                stop_reason = _react(cfg, fired, log) or stop_reason
            status.beat(epoch=epoch, step=global_step)
            if stop.requested or stop_reason:
                break
        if stop.requested:
            log(f"[{cfg.name}] {stop.signal_name} received: stopping after step {global_step}")
            break
        if stop_reason:  # a fatal step rule under on_collapse = "stop": no validation of NaNs
            break

        train_loss = float((loss_sum / n_train).item())
        grad_norm = float((grad_sum / max(grad_count, 1)).item()) if grad_count else math.nan
        val = validate(
            model,
            physics,
            loss_fn,
            x_test,
            tc.val_batch_size,
            amp_test,
            border,
            dataset.test.norm_Y_I,
            physics.probe,
        )
        val_loss, pred_std = val.loss, val.pred_amp_std
        schedule.observe(val_loss)
        epoch_time = time.time() - t_epoch
        layerscale, norms = stable_block_summaries(model)
        record = {
            "type": "epoch",
            "epoch": epoch,
            "step": global_step,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "grad_norm": grad_norm,
            "lr": lr,
            "next_lr": schedule.lr_for_epoch(epoch + 1) if epoch + 1 < tc.epochs else None,
            "pred_amp_std": pred_std,
            "target_amp_std": target_amp_std,
            "val_amp_mae": val.amp_mae,
            "val_amp_mae_twin": val.amp_mae_twin,
            "val_twin_fraction": val.twin_fraction,
            "epoch_time": epoch_time,
            "samples_per_s": n_train / epoch_time,
            "t": time.time(),
        }
        if layerscale:
            record["layerscale"] = layerscale
        if norms:
            record["norm_weights"] = norms
        telemetry.write(record)
        fired = epoch_rules.update(epoch, global_step, val_loss, pred_std)
        for event in fired:
            telemetry.write(event.to_record(time.time()))
        telemetry.fsync()
        stop_reason = _react(cfg, fired, log) or stop_reason
        for key, value in (
            ("train_loss", train_loss),
            ("val_loss", val_loss),
            ("grad_norm", grad_norm),
            ("lr", lr),
            ("pred_amp_std", pred_std),
            ("val_amp_mae", val.amp_mae),
            ("val_amp_mae_twin", val.amp_mae_twin),
            ("val_twin_fraction", val.twin_fraction),
        ):
            history.setdefault(key, []).append(value)  # setdefault: pre-existing checkpoints
        atomic_write_json(run.history, history)
        epochs_done = epoch + 1
        loop.epochs_done, loop.global_step = epochs_done, global_step
        save_checkpoint(
            run.checkpoint,
            config=cfg.to_dict(),
            model=model,
            optimizer=optimizer,
            schedule=schedule,
            shuffle=shuffle,
            detectors={"step": step_rules, "epoch": epoch_rules},
            loop=loop,
        )
        status.write(epoch=epochs_done, step=global_step)
        epoch_times.append(epoch_time)
        eta = (tc.epochs - epochs_done) * float(np.mean(epoch_times))
        log(
            format_epoch_line(
                cfg.name,
                EpochSummary(
                    epochs_done,
                    tc.epochs,
                    train_loss,
                    val_loss,
                    grad_norm,
                    lr,
                    n_train / epoch_time,
                    epoch_time,
                    eta,
                ),
            )
        )
        if stop_reason:
            break

    _save_model(run.model, model)
    atomic_write_json(run.history, history)
    if stop.requested:
        return RunResult(
            "killed", run.root, history, epochs_done=epochs_done, wall_time=time.time() - t_start
        )

    evaluation = evaluate(
        model,
        dataset.test,
        dataset.ground_truth,
        tc.infer_batch_size,
        dev,
        phase_vacuous=bool(dataset.meta.get("phase_vacuous", False)),
        probe=dataset.probe,
    )
    atomic_write_json(run.metrics, evaluation.metrics)
    evaluation.save_npz(run.recon)
    telemetry.write(
        {
            "type": "metrics",
            "epoch": epochs_done - 1,
            "step": global_step,
            "weights": "last epoch",
            "metrics": headline_metrics(evaluation.metrics),
            "t": time.time(),
        }
    )
    if stop_reason:
        log(
            f'[{cfg.name}] stopped early after epoch {epochs_done} (on_collapse = "stop", '
            f"rule {stop_reason}); final metrics are of the last weights"
        )
    log(
        f"[{cfg.name}] finished in {_fmt_duration(time.time() - t_start)}: amplitude ssim "
        f"{evaluation.metrics['ssim'][0]:.4f}, mae {evaluation.metrics['mae'][0]:.4g}; "
        f"artifacts in {run.root}"
    )
    return RunResult(
        "finished",
        run.root,
        history,
        metrics=evaluation.metrics,
        epochs_done=epochs_done,
        wall_time=time.time() - t_start,
        stopped_early=stop_reason,
    )


def _react(cfg: ArmConfig, events: list[Event], log) -> str | None:
    """Log detector firings; under on_collapse = "stop", return why training must stop."""
    reason = None
    for e in events:
        if e.severity in ("warning", "collapse", "fatal"):
            log(
                f"[{cfg.name}] {e.severity}: {e.rule} at epoch {e.epoch + 1}, step {e.step}: "
                f"{e.message}"
            )
        if e.severity in ("collapse", "fatal") and cfg.train.on_collapse == "stop":
            reason = reason or e.rule
    return reason


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_epoch_line(arm: str, e: EpochSummary) -> str:
    return (
        f"[{arm}] epoch {e.epoch:>{len(str(e.epochs))}}/{e.epochs}  loss {e.train_loss:.4g}  "
        f"val {e.val_loss:.4g}  |g| {e.grad_norm:.3g}  lr {e.lr:.3g}  "
        f"{e.samples_per_s:.0f} samples/s  {e.epoch_time:.1f}s/epoch  "
        f"ETA {_fmt_duration(e.eta_s)}"
    )


def _tee_to_run_log(path: Path, log: Callable[[str], None]) -> Callable[[str], None]:
    def emit(message: str) -> None:
        log(message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {message}\n")

    return emit


def _flush_steps(
    telemetry: TelemetryWriter,
    pending: list[tuple],
    epoch: int,
    lr: float,
    detectors: StepDetectors | None = None,
) -> list[Event]:
    """One host transfer for the buffered step values, then one record per step; the step
    detectors see each value and their firings are written right after the step they concern."""
    if not pending:
        return []
    nan = torch.full((), math.nan, device=pending[0][1].device)
    values = (
        torch.stack(
            [
                torch.stack(
                    [
                        loss.float(),
                        (nan if pre is None else pre).float(),
                        (nan if post is None else post).float(),
                    ]
                )
                for _, loss, pre, post, _ in pending
            ]
        )
        .cpu()
        .tolist()
    )
    events: list[Event] = []
    for (step, _, pre, post, t), (loss, pre_v, post_v) in zip(pending, values):
        record = {"type": "step", "epoch": epoch, "step": step, "loss": loss, "lr": lr, "t": t}
        if pre is not None:
            record["grad_norm"] = pre_v
        if post is not None:
            record["grad_norm_clipped"] = post_v
        telemetry.write(record)
        if detectors is not None:
            fired = detectors.update(epoch, step, loss, pre_v if pre is not None else None)
            for event in fired:
                telemetry.write(event.to_record(t))
            events += fired
    return events


def _save_model(path: Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, lambda fh: torch.save(state, fh))
