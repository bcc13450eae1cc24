"""Schedules against their closed forms, clipping algorithms, optimizer read-back."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import TrainConfig
from engine.training.optim import (
    GradClipper,
    LRSchedule,
    build_optimizer,
    describe_optimizer,
    global_grad_norm,
    warmup_cosine_lr,
)


def closed_form_warmup_cosine(e, lr, w, total, r):
    if e < w:
        return lr * (0.1 + 0.9 * e / w)
    t = max(1, total - w)
    return r * lr + (lr - r * lr) * (1 + math.cos(math.pi * (e - w) / t)) / 2


def test_warmup_cosine_matches_domain_formula_every_epoch():
    cfg = TrainConfig(
        scheduler="WarmupCosine", lr=5e-4, warmup_epochs=5, min_lr_ratio=0.05, epochs=20
    )
    sched = LRSchedule(cfg)
    lrs = [sched.lr_for_epoch(e) for e in range(20)]
    expected = [closed_form_warmup_cosine(e, 5e-4, 5, 20, 0.05) for e in range(20)]
    assert lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[0] == pytest.approx(5e-5)  # warmup starts at 0.1 x lr, not at lr
    assert lrs[5] == pytest.approx(5e-4)  # peak right after warmup
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6]))  # rising during warmup
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))  # falling afterwards


def test_warmup_cosine_reaches_floor_after_last_epoch():
    assert warmup_cosine_lr(20, 1.0, 5, 20, 0.05) == pytest.approx(0.05)
    assert warmup_cosine_lr(10, 1.0, 0, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine_lr(0, 1.0, 0, 10, 0.1) == pytest.approx(1.0)


def test_warmup_longer_than_run_does_not_divide_by_zero():
    assert warmup_cosine_lr(3, 1.0, 5, 4, 0.1) == pytest.approx(0.1 + 0.9 * 3 / 5)
    assert warmup_cosine_lr(5, 1.0, 5, 5, 0.1) == pytest.approx(1.0)


def test_exponential_and_default():
    exp = LRSchedule(TrainConfig(scheduler="Exponential", lr=1e-3, exp_gamma=0.95))
    assert [exp.lr_for_epoch(e) for e in range(4)] == pytest.approx(
        [1e-3 * 0.95**e for e in range(4)]
    )
    const = LRSchedule(TrainConfig(scheduler="Default", lr=2.5e-4))
    assert {const.lr_for_epoch(e) for e in range(10)} == {2.5e-4}


def test_plateau_halves_after_patience_and_respects_floor():
    sched = LRSchedule(
        TrainConfig(
            scheduler="ReduceLROnPlateau",
            lr=1e-3,
            plateau_factor=0.5,
            plateau_patience=2,
            plateau_min_lr=3e-4,
        )
    )
    seen = []
    for val in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        sched.observe(val)
        seen.append(sched.lr_for_epoch(0))
    # improvements at 1.0, 0.9; three bad epochs -> cut; three more -> cut to floor
    assert seen == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 3e-4, 3e-4, 3e-4])


def test_plateau_treats_nan_as_no_improvement():
    sched = LRSchedule(
        TrainConfig(scheduler="ReduceLROnPlateau", lr=1.0, plateau_patience=0, plateau_min_lr=0.0)
    )
    sched.observe(1.0)
    sched.observe(math.nan)
    assert sched.lr_for_epoch(0) == 0.5


def test_plateau_state_round_trips():
    cfg = TrainConfig(scheduler="ReduceLROnPlateau", lr=1.0, plateau_patience=0)
    a = LRSchedule(cfg)
    for v in (1.0, 2.0, 3.0):
        a.observe(v)
    b = LRSchedule(cfg)
    b.load_state_dict(a.state_dict())
    assert b.lr_for_epoch(0) == a.lr_for_epoch(0) and b.state_dict() == a.state_dict()


def test_sgd_uses_nesterov_when_momentum_is_set_and_read_back_shows_it():
    p = [torch.nn.Parameter(torch.ones(3))]
    opt = build_optimizer(p, TrainConfig(optimizer="sgd", momentum=0.9, lr=0.1))
    d = describe_optimizer(opt)
    assert d["class"] == "SGD" and d["nesterov"] is True and d["momentum"] == 0.9
    opt = build_optimizer(p, TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1))
    assert describe_optimizer(opt)["nesterov"] is False


def test_adamw_weight_decay_and_betas_reach_the_optimizer():
    p = [torch.nn.Parameter(torch.ones(3))]
    opt = build_optimizer(
        p, TrainConfig(optimizer="adamw", weight_decay=0.01, beta1=0.8, beta2=0.99, lr=3e-4)
    )
    d = describe_optimizer(opt)
    assert (d["class"], d["weight_decay"], d["betas"], d["lr"]) == (
        "AdamW",
        0.01,
        [0.8, 0.99],
        3e-4,
    )


def params_with_grads(grads):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.ones_like(g))
        p.grad = g.clone()
        params.append(p)
    return params


def test_norm_clipping_rescales_to_the_bound_and_reports_pre_and_post():
    params = params_with_grads([torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])])
    pre, post = GradClipper(params, TrainConfig(grad_clip=1.0, clip_algorithm="norm"))()
    assert pre.item() == pytest.approx(5.0)
    assert post.item() == pytest.approx(1.0, rel=1e-5)
    assert params[0].grad.tolist() == pytest.approx([0.6, 0.0], rel=1e-5)


def test_norm_clipping_leaves_small_gradients_alone():
    params = params_with_grads([torch.tensor([0.3, 0.4])])
    pre, post = GradClipper(params, TrainConfig(grad_clip=1.0, clip_algorithm="norm"))()
    assert pre.item() == pytest.approx(0.5) and post.item() == pytest.approx(0.5)


def test_value_clipping_clamps_each_element():
    params = params_with_grads([torch.tensor([3.0, -0.2, -7.0])])
    GradClipper(params, TrainConfig(grad_clip=0.5, clip_algorithm="value"))()
    assert params[0].grad.tolist() == pytest.approx([0.5, -0.2, -0.5])


def test_agc_bounds_each_tensor_relative_to_its_weight_norm():
    big = torch.nn.Parameter(torch.full((4,), 10.0))  # |w| = 20
    big.grad = torch.full((4,), 1.0)  # |g| = 2 > 0.01 * 20 = 0.2 -> rescaled to 0.2
    tiny = torch.nn.Parameter(torch.zeros(4))  # |w| floored at 1e-3
    tiny.grad = torch.full((4,), 1e-6)  # |g| = 2e-6 < 1e-5 -> untouched
    GradClipper([big, tiny], TrainConfig(grad_clip=0.01, clip_algorithm="agc"))()
    assert torch.linalg.vector_norm(big.grad).item() == pytest.approx(0.2, rel=1e-5)
    assert tiny.grad.tolist() == pytest.approx([1e-6] * 4)


def test_clip_zero_disables_clipping_but_still_measures():
    params = params_with_grads([torch.tensor([30.0, 40.0])])
    pre, post = GradClipper(params, TrainConfig(grad_clip=0.0, clip_algorithm="norm"))()
    assert pre.item() == pytest.approx(50.0) and post is None
    assert params[0].grad.tolist() == [30.0, 40.0]


def test_clipper_skips_measuring_between_log_steps_but_still_clips():
    params = params_with_grads([torch.tensor([30.0, 40.0])])
    pre, post = GradClipper(params, TrainConfig(grad_clip=5.0))(measure=False)
    assert pre is None and post is None
    assert global_grad_norm(params).item() == pytest.approx(5.0, rel=1e-5)


def test_adam_uses_the_fused_kernel_and_matches_the_per_tensor_loop():
    import copy

    from engine.config import ModelConfig
    from engine.models import build_model

    torch.manual_seed(0)
    fused_model = build_model(
        ModelConfig(architecture="stable_hybrid", fno_width=8, fno_blocks=3, fno_modes=4), 32
    )
    loop_model = copy.deepcopy(fused_model)
    fused = build_optimizer(fused_model.parameters(), TrainConfig(weight_decay=1e-4))
    loop = torch.optim.Adam(loop_model.parameters(), lr=1e-3, weight_decay=1e-4, foreach=False)
    assert describe_optimizer(fused)["implementation"] == "fused"
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    for model, opt in ((fused_model, fused), (loop_model, loop)):
        opt.zero_grad()
        model(x).abs().mean().backward()
        opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        # One update: the same arithmetic in another order, so equal to fp32 rounding.
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
