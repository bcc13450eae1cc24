"""What one training process is given and what it builds before the first step: the ``Job``
(engine/training/train.py fills it), the ``Setup`` (engine/training/loop.py's ``prepare``), the
stop request a signal sets, and the ``RunResult`` the loop returns.

Kept apart so that the loop and the records it writes (engine/training/records.py) share these
types without importing each other.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.config import ArmConfig
from engine.runs.rundir import RunDir
from engine.runs.status import StatusFile
from engine.runs.telemetry import TelemetryWriter
from engine.scoring.detectors import EpochDetectors, StepDetectors
from engine.sim.data import GridLinesDataset
from engine.sim.physics import ForwardModel
from engine.training.checkpoint import LoopState
from engine.training.optim import GradClipper, LRSchedule


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


@dataclass
class Job:
    """What one training process is given (built by engine.training.train.train_arm)."""

    cfg: ArmConfig
    run: RunDir
    cache_dir: Path
    device: str  # one concrete device, the one whose queue slot the process holds
    log: Callable[[str], None]
    stop: StopRequest
    status: StatusFile
    telemetry: TelemetryWriter
    resume: bool
    queue_info: dict | None = None  # the header's ``queue`` record (None when not queued)


@dataclass
class Setup:
    """Everything ``prepare`` builds and the epochs use."""

    dev: torch.device
    seeding: dict
    autocast: Callable  # () -> the context of the training forward (train.precision)
    precision: dict  # the header's record of it
    dataset: GridLinesDataset
    model: torch.nn.Module
    # What the training step calls the generator through: the model itself, or a wrapper of it
    # (loop.prepare's one hook for a compiled forward); checkpoints, validation and the header
    # always use ``model``.
    forward: Callable[[torch.Tensor], torch.Tensor]
    physics: ForwardModel
    loss_fn: Callable
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    clipper: GradClipper
    x_train: torch.Tensor
    x_test: torch.Tensor
    amp_test: torch.Tensor
    border: int  # pixels per side that stitching drops
    target_amp_std: float
    shuffle: torch.Generator
    step_rules: StepDetectors
    epoch_rules: EpochDetectors
    loop: LoopState
    t_start: float
    epoch_times: list[float] = field(default_factory=list)  # this process's epochs, for the ETA

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]
