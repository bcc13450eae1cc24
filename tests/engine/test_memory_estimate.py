"""The memory estimate: a fake-tensor trace that matches the real step's allocations, the
optimizer's state per optimizer, checkpointing's saving, and no fake tensor left behind."""

from __future__ import annotations

import torch

from engine.config import ArmConfig, DataConfig, ModelConfig, TrainConfig
from engine.models import build_model
from engine.sim.physics import ForwardModel, get_loss
from engine.training.memory_check import MemoryEstimate, is_out_of_memory, oom_details
from engine.training.memory_estimate import _StorageCounter, estimate_memory

N = 32


def arm(architecture="fno", optimizer="adam", momentum=0.9, ckpt="off", batch=8) -> ArmConfig:
    return ArmConfig(
        "a",
        DataConfig(N=N, object_size=64, nimgs_train=1, nimgs_test=1, train_stride=8, test_stride=8),
        ModelConfig(
            architecture=architecture,
            fno_width=8,
            fno_modes=4,
            fno_blocks=3,
            grad_checkpointing=ckpt,
        ),
        TrainConfig(batch_size=batch, optimizer=optimizer, momentum=momentum),
    )


def real_step_peak(cfg: ArmConfig) -> int:
    """The same count over a real step on real tensors (the loop's order: the last step's
    gradients alive through the forward, then zero_grad, then the backward)."""
    torch.manual_seed(0)
    model = build_model(cfg.model, N)
    physics = ForwardModel(torch.ones(N, N, dtype=torch.complex64))
    loss_fn = get_loss(cfg.train.loss)
    counter = _StorageCounter()
    with counter:
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        x = torch.rand(cfg.train.batch_size, 1, N, N)
        loss = loss_fn(physics(model(x)), x[:, 0])
        model.zero_grad(set_to_none=True)
        loss.backward()
    return counter.peak


def test_the_fake_trace_counts_what_a_real_step_allocates():
    for architecture in ("cnn", "fno", "hybrid"):
        cfg = arm(architecture)
        e = estimate_memory(cfg)
        real = real_step_peak(cfg)
        traced = e.activations + e.gradients  # the step's peak, its input batch included
        assert abs(traced - real) <= 0.05 * real, (architecture, traced, real)


def test_optimizer_state_follows_the_optimizer():
    adam, sgd, plain = (
        estimate_memory(arm(optimizer="adam")),
        estimate_memory(arm(optimizer="sgd", momentum=0.9)),
        estimate_memory(arm(optimizer="sgd", momentum=0.0)),
    )
    assert adam.parameters == sgd.parameters == adam.gradients
    assert 2 * adam.parameters <= adam.optimizer_state < 2 * adam.parameters + 4096
    assert sgd.optimizer_state == sgd.parameters
    assert plain.optimizer_state == 0


def test_activations_grow_with_the_batch_and_checkpointing_saves_some():
    small, big = estimate_memory(arm(batch=4)), estimate_memory(arm(batch=16))
    assert big.activations > 3 * small.activations
    assert big.batch_size == 16
    ckpt = estimate_memory(arm(batch=16, ckpt="blocks"))
    assert ckpt.activations < big.activations
    assert ckpt.parameters == big.parameters
    assert MemoryEstimate.from_dict(big.to_dict()) == big
    assert big.to_dict()["total"] == big.total


def test_no_fake_tensor_outlives_the_trace():
    estimate_memory(arm("fno"))
    estimate_memory(arm("fno"))  # a second fake mode must not meet the first one's matrices
    model = build_model(arm("fno").model, N)
    out = model(torch.rand(2, 1, N, N))  # a real forward after the trace: real DFT matrices
    assert torch.isfinite(torch.view_as_real(out)).all()


def test_out_of_memory_errors_are_recognised_and_their_size_read():
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 150994944 bytes. Error code 12 (Cannot allocate memory)"
    )
    cuda = torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 79.19 GiB"
    )
    assert is_out_of_memory(cpu) and is_out_of_memory(cuda) and is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(
        ValueError("memory")
    )
    assert oom_details(cpu, "cpu")["oom_bytes_requested"] == 150994944
    assert oom_details(cpu, "cpu")["device_capacity_bytes"] > 0
    assert oom_details(cuda, "cpu")["oom_bytes_requested"] == int(2.5 * 2**30)
    assert oom_details(MemoryError(), "cpu")["oom_bytes_requested"] is None
