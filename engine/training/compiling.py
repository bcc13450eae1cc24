"""The ``train.compile`` knob: the training forward eager, compiled, or compiled into CUDA graphs.

- ``off`` (the default): the generator runs eagerly, as every committed figure was measured.
- ``default``: ``torch.compile(model)``: TorchInductor fuses the generator's elementwise work
  into fewer kernels, forward and backward (through AOTAutograd). It pays a compile at the first
  step (tens of seconds on a CPU) and once more for the epoch's shorter last batch.
- ``graphs``: ``torch.compile(model, mode="reduce-overhead")``, which additionally records the
  compiled kernels as CUDA graphs and replays them: the fix for a launch-bound step (a hybrid
  step at batch 16 keeps an H100 7-17 % busy). CUDA graphs exist only on CUDA devices, so it is
  refused elsewhere.

Only the training forward is compiled. The physics (a complex FFT) and the loss stay eager, as do
validation and the final evaluation (so their numbers compare 1:1 with eager arms), and the
checkpoint always holds the plain module's state dict: a compiled run resumes into an eager one
and back. docs/benchmarks.md ('torch.compile') has the measured numerics and speed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.config import COMPILE_MODES
from engine.errors import ConfigError

# torch.compile's mode for each knob value ("off" compiles nothing).
_TORCH_MODE = {"default": "default", "graphs": "reduce-overhead"}


def check_compile(mode: str, devices: list[str]) -> None:
    """Raise ConfigError unless one of the candidate ``devices`` can honour ``mode``."""
    if mode == "graphs" and all(torch.device(d).type != "cuda" for d in devices):
        compiled_forward(torch.nn.Identity(), mode, torch.device(devices[0]))  # raises


def compiled_forward(
    model: torch.nn.Module, mode: str, dev: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The callable the training step runs the generator through, for ``train.compile = mode``.

    The module itself is left as it is (its state dict keeps its names), so checkpoints, the
    validation pass and the header's read-back see the same object whatever the mode."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile = {mode!r}: expected one of {', '.join(COMPILE_MODES)}")
    if mode == "off":
        return model
    if mode == "graphs" and dev.type != "cuda":
        raise ConfigError(
            f"train.compile = 'graphs' on {dev}: CUDA graphs exist only on CUDA devices; "
            f"allowed here: 'off' or 'default'"
        )
    # dynamic=False: the batch size is fixed but for the epoch's last batch, which costs one
    # recompile; dynamic shapes would make every kernel generic for that one batch.
    return torch.compile(model, mode=_TORCH_MODE[mode], dynamic=False)


def compile_report() -> str:
    """What TorchDynamo did in this process, from its own counters: the graphs it captured and
    the graph breaks (each break runs a piece eagerly). The engine logs it after the first
    epoch, so a compile that captured nothing is visible rather than assumed."""
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    breaks = sum(counters["graph_break"].values())
    return f"torch.compile: {graphs} graph(s) captured, {breaks} graph break(s)"


def describe_compile(mode: str) -> dict:
    """The header's ``compile`` record: what the knob asks of torch (written before the first
    step; what dynamo then captured is logged after the first epoch, ``compile_report``)."""
    return {
        "mode": mode,
        "torch_mode": _TORCH_MODE.get(mode),
        "backend": "inductor" if mode != "off" else None,
        "cuda_graphs": mode == "graphs",
        "compiled": "the generator's training forward and its backward" if mode != "off" else None,
        "eager": "physics, loss, optimizer, clipping, validation, final evaluation",
    }
