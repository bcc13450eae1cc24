"""The records of a run that are not per step or per epoch: the header (every knob read back from
the live objects, so a knob that did not arrive is visible: docs/science.md, 'Knobs not passed
through'), the segment record of a resume, and the per-parameter summaries (LayerScale gammas,
normalisation weights) an epoch record carries.
"""

from __future__ import annotations

import math
import os
import platform
import socket

import numpy as np
import torch

from engine.models import describe_model
from engine.runs.schema import HEADER, SCHEMA, SEGMENT
from engine.runs.status import batch_job
from engine.training.compiling import describe_compile
from engine.training.devices import device_info
from engine.training.job import Job, Setup
from engine.training.optim import describe_optimizer


def header_record(job: Job, s: Setup) -> dict:
    """The run's first record: the config, and every knob read back from the live objects."""
    cfg, tc = job.cfg, job.cfg.train
    model_info = describe_model(s.model)
    return HEADER.record(
        schema=SCHEMA,
        arm=cfg.name,
        config=cfg.to_dict(),
        model=model_info,
        parameters=model_info["parameters"],
        channel_schedule=model_info.get("channels"),
        optimizer=describe_optimizer(s.optimizer),
        scheduler=s.schedule.describe(),
        clip=s.clipper.describe(),
        # Not named "loss": a field keeps one type across record types so that
        # polars.read_ndjson can read the whole file into one frame.
        physics={
            "loss_mode": tc.loss,
            **s.physics.describe(),
            "loss_normalisation": "divided by the batch-mean observed amplitude (detached)",
            "val_batch_size": tc.val_batch_size,
            "probe_twin_symmetry": s.dataset.meta.get("probe", {}).get("twin_symmetry"),
        },
        dataset=s.dataset.meta,
        n_train=s.n_train,
        n_test=int(s.x_test.shape[0]),
        steps_per_epoch=math.ceil(s.n_train / tc.batch_size),
        target_amp_std=s.target_amp_std,
        seeding=s.seeding,
        precision=s.precision,
        compile=describe_compile(tc.compile),
        device=device_info(s.dev),
        queue=job.queue_info,
        torch=torch.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
        host=socket.gethostname(),
        pid=os.getpid(),
        slurm_job_id=batch_job().get("slurm_job_id"),
        start_time=s.t_start,
        t=s.t_start,
    )


def start_telemetry(job: Job, s: Setup) -> None:
    """Write the header (a new run) or a segment record (a resume), and say what trains."""
    cfg, loop = job.cfg, s.loop
    header = header_record(job, s)
    if job.resume:
        # Records of the interrupted process from this epoch on are superseded by what follows
        # (engine.runs.telemetry.resolve_segments); the first header stays the run's header.
        job.telemetry.write(
            SEGMENT.record(
                segment=loop.segment,
                resume_epoch=loop.epochs_done,
                resume_step=loop.global_step,
                pid=os.getpid(),
                host=socket.gethostname(),
                device=header["device"],
                start_time=s.t_start,
                t=s.t_start,
            )
        )
        job.log(
            f"[{cfg.name}] resuming after epoch {loop.epochs_done} (step {loop.global_step}), "
            f"segment {loop.segment}"
        )
    else:
        job.telemetry.write(header)
    job.telemetry.fsync()
    model_info = header["model"]
    job.log(
        f"[{cfg.name}] {model_info['architecture']}: {model_info['parameters']:,} parameters, "
        f"channels {model_info.get('channels')}, optimizer {header['optimizer']['class']}, "
        f"scheduler {cfg.train.scheduler}, clip {header['clip']['algorithm'] or 'off'}, "
        f"device {s.dev}, {s.n_train} train / {s.x_test.shape[0]} test patterns"
    )


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
