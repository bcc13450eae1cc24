"""How much device memory an arm will need, found before anything is allocated.

The generator is built on the meta device (its weights cost nothing), its parameters are swapped
for fake tensors (torch's FakeTensorMode: shapes, dtypes and strides, no storage), and one
training step is traced as the loop runs it (engine/training/loop.py, ``train_epoch``): the last
step's gradients alive through the forward, ``zero_grad(set_to_none=True)``, the backward. A
dispatch mode counts the bytes of every storage the trace creates and frees, so the peak is the
step's own high-water mark, gradient checkpointing and autocast included. The final evaluation's
forward at ``infer_batch_size`` (no gradients) is traced the same way, since for a small training
batch it can be the larger of the two.

Added up: parameters, gradients, optimizer state (Adam and AdamW keep two moments per parameter,
SGD one momentum buffer when momentum > 0), the step's activations, and the dataset the loop
keeps on the device. Not counted: the CUDA context and the caching allocator's slack on a GPU,
the interpreter and torch themselves on the CPU, and the optimizer kernel's temporaries;
docs/benchmarks.md, 'Memory estimate vs measured peak', measures what that leaves out.

This module imports torch; engine/training/memory_check.py is the torch-free side (cache,
capacity, refusal) that the CLI's read-only commands use.
"""

from __future__ import annotations

import json
import sys
import weakref

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from engine.config import ArmConfig
from engine.models import build_model, layers
from engine.sim.physics import ForwardModel, get_loss
from engine.sim.stitch import count_patches_per_axis
from engine.training.memory_check import MemoryEstimate, estimate_key, store

FLOAT32_BYTES = 4


class _StorageCounter(TorchDispatchMode):
    """Counts the bytes of the storages created under it while they live; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, weakref.finalize] = {}
        self.current = 0
        self.peak = 0

    def _freed(self, key: int, nbytes: int) -> None:
        self.live.pop(key, None)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage._cdata  # one per storage: views of it are not counted again
                if key not in self.live:
                    nbytes = storage.nbytes()
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    self.live[key] = weakref.finalize(storage, self._freed, key, nbytes)
        return out


def _fake_like(t: torch.Tensor, requires_grad: bool) -> torch.Tensor:
    # empty_strided keeps the layout: a channels_last weight stays channels_last.
    return torch.empty_strided(
        t.shape, t.stride(), dtype=t.dtype, device="cpu", requires_grad=requires_grad
    )


def _fake_module(module: torch.nn.Module) -> None:
    """Swap every parameter and buffer for a fake one in place (under an active FakeTensorMode).
    In place rather than through torch.func.functional_call, so that checkpointing's recompute
    in the backward still sees the fake weights."""
    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is not None:
                sub._parameters[name] = torch.nn.Parameter(
                    _fake_like(p, p.requires_grad), requires_grad=p.requires_grad
                )
        for name, b in list(sub._buffers.items()):
            if b is not None:
                sub._buffers[name] = _fake_like(b, False)


def optimizer_state_bytes(cfg: ArmConfig, parameter_bytes: int, n_tensors: int) -> int:
    """The optimizer's state once it has stepped: Adam/AdamW two moments (and a step count per
    tensor), SGD one momentum buffer when momentum > 0."""
    tc = cfg.train
    if tc.optimizer in ("adam", "adamw"):
        return 2 * parameter_bytes + FLOAT32_BYTES * n_tensors
    if tc.optimizer == "sgd":
        return parameter_bytes if tc.momentum > 0 else 0
    raise AssertionError(f"optimizer {tc.optimizer!r} has no memory model")


def data_bytes(cfg: ArmConfig) -> int:
    """The loop's device copies: training and test diffraction, test amplitude (float32)."""
    d = cfg.data
    per_image = count_patches_per_axis
    n_train = d.nimgs_train * per_image(d.object_size, d.N, d.train_stride) ** 2
    n_test = d.nimgs_test * per_image(d.object_size, d.N, d.test_stride) ** 2
    return FLOAT32_BYTES * d.N * d.N * (n_train + 2 * n_test)


def estimate_memory(cfg: ArmConfig) -> MemoryEstimate:
    """The memory ``cfg`` needs to train and be evaluated, traced without allocating it."""
    n, tc = cfg.data.N, cfg.train
    with torch.device("meta"):
        model = build_model(cfg.model, n)
    params = list(model.parameters())
    parameter_bytes = sum(t.numel() * t.element_size() for t in (*params, *model.buffers()))
    loss_fn = get_loss(tc.loss)
    # The spectral layers cache their DFT matrices per device: cleared on both sides of the
    # trace, so that no fake matrix outlives it (a later real step on the CPU would get one) and
    # no matrix of an earlier fake mode meets this one.
    layers._dft_matrices.cache_clear()
    try:
        return _trace(cfg, model, loss_fn, parameter_bytes)
    finally:
        layers._dft_matrices.cache_clear()


def _trace(cfg: ArmConfig, model, loss_fn, parameter_bytes: int) -> MemoryEstimate:
    n, tc = cfg.data.N, cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    gradient_bytes = sum(p.numel() * p.element_size() for p in params)
    with FakeTensorMode():
        _fake_module(model)
        physics = ForwardModel(
            torch.empty(n, n, dtype=torch.complex64), tc.physics_gain, tc.physics_gain_mode
        )
        model.train()
        step = _StorageCounter()
        with step:
            for p in model.parameters():
                if p.requires_grad:  # the previous step's gradients, alive until zero_grad
                    p.grad = torch.empty_like(p)
            x = torch.empty(tc.batch_size, 1, n, n)
            with _precision(tc.precision):
                obj = model(x)
            loss = loss_fn(physics(obj), x[:, 0])
            for p in model.parameters():
                p.grad = None
            loss.backward()
        model.eval()
        evaluation = _StorageCounter()
        with evaluation, torch.no_grad():
            model(torch.empty(max(tc.infer_batch_size, tc.val_batch_size), 1, n, n))
    # The step's counter saw the gradients it made; they are counted once, on their own line.
    return MemoryEstimate(
        parameters=parameter_bytes,
        gradients=gradient_bytes,
        optimizer_state=optimizer_state_bytes(cfg, gradient_bytes, len(params)),
        activations=max(step.peak - gradient_bytes, 0),
        evaluation=evaluation.peak,
        data=data_bytes(cfg),
        batch_size=tc.batch_size,
    )


def _precision(mode: str):
    """The training forward's autocast, as engine/training/devices.py sets it (the traced
    tensors are fake CPU tensors, so the CPU's autocast stands in for the GPU's)."""
    if mode == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def main() -> None:
    """The child process of memory_check.estimates: a JSON list of configs on stdin; one JSON
    line on stdout per config, its estimate or why it could not be traced. Each estimate is also
    stored in the cache (where the home is writable: the parent uses the line either way)."""
    for d in json.load(sys.stdin):
        cfg = ArmConfig.from_dict(d)
        try:
            estimate = estimate_memory(cfg)
        except Exception as exc:  # one bad config must not cost the others their estimate
            print(json.dumps({"key": estimate_key(cfg), "error": f"{type(exc).__name__}: {exc}"}))
            continue
        store(cfg, estimate)
        print(json.dumps({"key": estimate_key(cfg), "estimate": estimate.to_dict()}), flush=True)


if __name__ == "__main__":
    main()
