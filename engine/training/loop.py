"""The training loop of one arm, in plain PyTorch, readable top to bottom (docs/science.md,
'Training loop').

``run_training(job)``: seed -> dataset -> model -> physics -> optimizer, schedule, clipper
(``prepare``) -> header record (engine/training/records.py) -> per epoch: set the epoch's LR,
training steps (``train_epoch``: step records), validation, schedule update, epoch record,
history, checkpoint, status (``end_epoch``) -> final evaluation on the last weights -> artifacts
(``finish``).

Everything the loop does to the optimisation is read back from the live objects and written to
the telemetry header, so a knob that did not arrive is visible (docs/science.md, 'Knobs not
passed through'). The process around the loop (run lock, signals, device slot, status.json, the
final status record) is engine/training/train.py; what the loop is given and builds (``Job``,
``Setup``) is engine/training/job.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_write_bytes, atomic_write_json
from engine.fmt import fmt_duration
from engine.models import build_model
from engine.runs.schema import EPOCH, HISTORY_FIELDS, METRICS
from engine.scoring.detectors import EpochDetectors, StepDetectors
from engine.scoring.evaluate import evaluate, headline_metrics
from engine.sim.data import load_or_build_dataset
from engine.sim.physics import ForwardModel, get_loss
from engine.sim.stitch import stitch_border
from engine.training.checkpoint import LoopState, load_checkpoint, restore_rng, save_checkpoint
from engine.training.compiling import compile_report, compiled_forward
from engine.training.devices import (
    precision_context,
    resolve_device,
    seed_everything,
)
from engine.training.job import Job, RunResult, Setup, StopRequest
from engine.training.optim import (
    GradClipper,
    LRSchedule,
    build_optimizer,
    current_lr,
    set_lr,
)
from engine.training.progress import (
    EpochSummary,
    flush_due,
    flush_steps,
    format_epoch_line,
    react,
)
from engine.training.records import stable_block_summaries, start_telemetry
from engine.training.validation import PROBE_BATCH, validate

__all__ = ["EpochSummary", "Job", "RunResult", "StopRequest", "format_epoch_line", "run_training"]


def run_training(job: Job) -> RunResult:
    """Train ``job.cfg`` to the end, a stop request or a stopping detector; return the result."""
    s = prepare(job)
    start_telemetry(job, s)
    stop_reason: str | None = None
    s.model.train()
    first = s.loop.epochs_done
    for epoch in range(s.loop.epochs_done, job.cfg.train.epochs):
        done = train_epoch(job, s, epoch)
        if epoch == first and job.cfg.train.compile != "off":
            job.log(f"[{job.cfg.name}] {compile_report()}")  # what compiling actually did
        if job.stop.requested:
            job.log(
                f"[{job.cfg.name}] {job.stop.signal_name} received: stopping after step "
                f"{s.loop.global_step}"
            )
            break
        if done.stop_reason:  # a fatal step rule under on_collapse = "stop": no validation of NaNs
            stop_reason = done.stop_reason
            break
        stop_reason = end_epoch(job, s, epoch, done)
        if stop_reason:
            break
    return finish(job, s, stop_reason)


def prepare(job: Job) -> Setup:
    """Seed, data, model, physics and optimisation, restored from the checkpoint on resume."""
    cfg, tc = job.cfg, job.cfg.train
    t_start = time.time()
    dev = resolve_device(job.device)
    seeding = seed_everything(tc.seed, tc.deterministic, dev)
    autocast, precision = precision_context(tc.precision, dev)
    atomic_write_json(job.run.config, cfg.to_dict())

    dataset = load_or_build_dataset(cfg.data, job.cache_dir, log=job.log)
    torch.manual_seed(tc.seed)  # weights depend on the training seed only, not on data timing
    model = build_model(cfg.model, cfg.data.N).to(dev)
    # The one place the training step's generator call is wrapped (train.compile): the step
    # calls ``s.forward``, everything else (validation, checkpoints, the header) the plain model.
    forward = compiled_forward(model, tc.compile, dev)
    physics = ForwardModel(
        torch.from_numpy(dataset.probe), tc.physics_gain, tc.physics_gain_mode
    ).to(dev)
    amp_test = torch.from_numpy(dataset.test.amplitude).to(dev)
    # The output spread a healthy generator reaches: the truth's, divided by the physics gain of
    # a full batch (under a gain g the generator must output object / g), so the collapse rule
    # keeps its margin whatever the gain.
    target_amp_std = float(
        amp_test[:PROBE_BATCH].flatten(1).std(dim=1, unbiased=False).mean()
        / physics.gain_for(tc.batch_size)
    )
    s = Setup(
        dev=dev,
        seeding=seeding,
        autocast=autocast,
        precision=precision,
        dataset=dataset,
        model=model,
        forward=forward,
        physics=physics,
        loss_fn=get_loss(tc.loss),
        optimizer=build_optimizer(model.parameters(), tc),
        schedule=LRSchedule(tc),
        clipper=GradClipper(model.parameters(), tc),
        x_train=torch.from_numpy(dataset.train.diffraction).unsqueeze(1).to(dev),
        x_test=torch.from_numpy(dataset.test.diffraction).unsqueeze(1).to(dev),
        amp_test=amp_test,
        border=stitch_border(cfg.data.N, cfg.data.test_stride),
        target_amp_std=target_amp_std,
        # A CPU generator: the same order on any device.
        shuffle=torch.Generator().manual_seed(tc.seed),
        step_rules=StepDetectors(cfg.detect),
        epoch_rules=EpochDetectors(cfg.detect, target_amp_std),
        loop=LoopState(),
        t_start=t_start,
    )
    if job.resume:
        ckpt = load_checkpoint(job.run.checkpoint, cfg.to_dict())
        s.model.load_state_dict(ckpt["model"])
        s.optimizer.load_state_dict(ckpt["optimizer"])
        s.schedule.load_state_dict(ckpt["schedule"])
        restore_rng(ckpt, s.shuffle)
        s.step_rules, s.epoch_rules = ckpt["detectors"]["step"], ckpt["detectors"]["epoch"]
        s.loop = ckpt["loop"]
        s.loop.segment += 1
    return s


@dataclass
class EpochSteps:
    """What the training steps of one epoch leave for its end."""

    lr: float
    train_loss: float
    grad_norm: float
    t_start: float
    stop_reason: str | None  # a step rule that stops training (on_collapse = "stop")


def train_epoch(job: Job, s: Setup, epoch: int) -> EpochSteps:
    """The epoch's optimisation steps, streamed as step records (and step-rule events)."""
    cfg, tc = job.cfg, job.cfg.train
    set_lr(s.optimizer, s.schedule.lr_for_epoch(epoch))
    lr = current_lr(s.optimizer)  # read back: this is what the optimizer will use
    t_epoch = time.time()
    steps_per_epoch = math.ceil(s.n_train / tc.batch_size)
    perm = torch.randperm(s.n_train, generator=s.shuffle).to(s.dev)
    pending: list[tuple] = []  # (step, loss, pre, post, t) with device tensors
    loss_sum = torch.zeros((), device=s.dev)
    grad_sum = torch.zeros((), device=s.dev)
    grad_count = 0
    stop_reason = None
    for i in range(steps_per_epoch):
        idx = perm[i * tc.batch_size : (i + 1) * tc.batch_size]
        xb = s.x_train[idx]
        with s.autocast():
            obj = s.forward(xb)  # complex64 whatever the precision (the head casts to fp32)
        loss = s.loss_fn(s.physics(obj), xb[:, 0])
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        measure = s.loop.global_step % tc.grad_norm_log_freq == 0
        pre, post = s.clipper(measure=measure)
        s.optimizer.step()
        loss_sum += loss.detach() * xb.shape[0]
        if pre is not None:
            grad_sum += pre
            grad_count += 1
        pending.append((s.loop.global_step, loss.detach(), pre, post, time.time()))
        s.loop.global_step += 1
        last = i == steps_per_epoch - 1
        if flush_due(pending, time.time()) or last or job.stop.requested:
            fired = flush_steps(job.telemetry, pending, epoch, lr, s.step_rules)
            pending = []
            stop_reason = react(cfg, fired, job.log) or stop_reason
        job.status.beat(epoch=epoch, step=s.loop.global_step)
        if job.stop.requested or stop_reason:
            break
    train_loss = float((loss_sum / s.n_train).item())
    grad_norm = float((grad_sum / max(grad_count, 1)).item()) if grad_count else math.nan
    return EpochSteps(lr, train_loss, grad_norm, t_epoch, stop_reason)


def end_epoch(job: Job, s: Setup, epoch: int, done: EpochSteps) -> str | None:
    """Validation, the schedule's update, the epoch record and events, history, checkpoint and
    status, then the console line. Returns the rule that stops training, if one fired."""
    cfg, tc = job.cfg, job.cfg.train
    val = validate(
        s.model,
        s.physics,
        s.loss_fn,
        s.x_test,
        tc.val_batch_size,
        s.amp_test,
        s.border,
        s.dataset.test.norm_Y_I,
        s.physics.probe,
    )
    s.schedule.observe(val.loss)
    epoch_time = time.time() - done.t_start
    layerscale, norms = stable_block_summaries(s.model)
    global_step = s.loop.global_step
    record = EPOCH.record(
        epoch=epoch,
        step=global_step,
        train_loss=done.train_loss,
        val_loss=val.loss,
        grad_norm=done.grad_norm,
        lr=done.lr,
        next_lr=s.schedule.lr_for_epoch(epoch + 1) if epoch + 1 < tc.epochs else None,
        pred_amp_std=val.pred_amp_std,
        target_amp_std=s.target_amp_std,
        val_amp_mae=val.amp_mae,
        val_amp_mae_twin=val.amp_mae_twin,
        val_twin_fraction=val.twin_fraction,
        epoch_time=epoch_time,
        samples_per_s=s.n_train / epoch_time,
        t=time.time(),
    )
    if layerscale:
        record["layerscale"] = layerscale
    if norms:
        record["norm_weights"] = norms
    job.telemetry.write(record)
    fired = s.epoch_rules.update(epoch, global_step, val.loss, val.pred_amp_std)
    for event in fired:
        job.telemetry.write(event.to_record(time.time()))
    job.telemetry.fsync()
    stop_reason = react(cfg, fired, job.log)
    history = s.loop.history
    for key in HISTORY_FIELDS:  # the epoch record's fields the schema keeps per epoch
        history.setdefault(key, []).append(record[key])  # setdefault: pre-existing checkpoints
    atomic_write_json(job.run.history, history)
    s.loop.epochs_done = epochs_done = epoch + 1
    save_checkpoint(
        job.run.checkpoint,
        config=cfg.to_dict(),
        model=s.model,
        optimizer=s.optimizer,
        schedule=s.schedule,
        shuffle=s.shuffle,
        detectors={"step": s.step_rules, "epoch": s.epoch_rules},
        loop=s.loop,
    )
    job.status.write(epoch=epochs_done, step=global_step)
    s.epoch_times.append(epoch_time)
    eta = (tc.epochs - epochs_done) * float(np.mean(s.epoch_times))
    summary = EpochSummary(
        epochs_done,
        tc.epochs,
        done.train_loss,
        val.loss,
        done.grad_norm,
        done.lr,
        s.n_train / epoch_time,
        epoch_time,
        eta,
    )
    job.log(format_epoch_line(cfg.name, summary))
    return stop_reason


def finish(job: Job, s: Setup, stop_reason: str | None) -> RunResult:
    """Save the last weights; unless stopped by a signal, evaluate them and write the metrics."""
    cfg, run = job.cfg, job.run
    history, epochs_done = s.loop.history, s.loop.epochs_done
    _save_model(run.model, s.model)
    atomic_write_json(run.history, history)
    if job.stop.requested:
        return RunResult(
            "killed", run.root, history, epochs_done=epochs_done, wall_time=time.time() - s.t_start
        )

    evaluation = evaluate(
        s.model,
        s.dataset.test,
        s.dataset.ground_truth,
        cfg.train.infer_batch_size,
        s.dev,
        phase_vacuous=bool(s.dataset.meta.get("phase_vacuous", False)),
        probe=s.dataset.probe,
    )
    atomic_write_json(run.metrics, evaluation.metrics)
    evaluation.save_npz(run.recon)
    job.telemetry.write(
        METRICS.record(
            epoch=epochs_done - 1,
            step=s.loop.global_step,
            weights="last epoch",
            metrics=headline_metrics(evaluation.metrics),
            t=time.time(),
        )
    )
    if stop_reason:
        job.log(
            f'[{cfg.name}] stopped early after epoch {epochs_done} (on_collapse = "stop", '
            f"rule {stop_reason}); final metrics are of the last weights"
        )
    job.log(
        f"[{cfg.name}] finished in {fmt_duration(time.time() - s.t_start)}: amplitude ssim "
        f"{evaluation.metrics['ssim'][0]:.4f}, mae {evaluation.metrics['mae'][0]:.4g}; "
        f"artifacts in {run.root}"
    )
    return RunResult(
        "finished",
        run.root,
        history,
        metrics=evaluation.metrics,
        epochs_done=epochs_done,
        wall_time=time.time() - s.t_start,
        stopped_early=stop_reason,
    )


def _save_model(path: Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, lambda fh: torch.save(state, fh))
