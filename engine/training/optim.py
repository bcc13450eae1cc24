"""Optimizers, per-epoch learning-rate schedules and gradient clipping (docs/science.md,
'Training loop').

Schedules are pure functions of the epoch (plus, for ReduceLROnPlateau, a tiny explicit state)
and the training loop writes the rate into the optimizer itself before every epoch. The original
study's schedulers very likely never stepped (docs/science.md, 'Unstepped schedulers'); doing it
by hand, and logging the rate read back from the optimizer, makes that failure impossible to miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.config import TrainConfig

# AGC never lets a tiny weight norm forbid all movement (Brock et al. 2021 use the same floor).
AGC_WEIGHT_FLOOR = 1e-3
# WarmupCosine starts at 0.1 x lr (docs/science.md, 'Learning-rate schedules').
WARMUP_START_FRACTION = 0.1


def _fusable(params: list) -> bool:
    """Adam's fused kernel takes fp32 parameters on the CPU or CUDA, all on one device."""
    devices = {p.device.type for p in params}
    return (
        len(devices) == 1
        and devices <= {"cpu", "cuda"}
        and all(p.dtype == torch.float32 for p in params)
    )


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam and AdamW use the fused kernel where it applies: the same update as the per-tensor
    loop to fp32 rounding, 3-9x faster on the CPU (docs/benchmarks.md, 'Fused Adam')."""
    params = list(params)
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            weight_decay=cfg.weight_decay,
            fused=_fusable(params) or None,
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    raise AssertionError(f"optimizer {cfg.optimizer!r} passed validation but has no builder")


def describe_optimizer(opt: torch.optim.Optimizer) -> dict:
    """The hyper-parameters read back from the live optimizer (not from the config)."""
    group = opt.param_groups[0]
    keep = ("lr", "betas", "momentum", "nesterov", "weight_decay", "eps", "dampening")
    return {
        "class": type(opt).__name__,
        **{
            k: (list(group[k]) if isinstance(group[k], tuple) else group[k])
            for k in keep
            if k in group
        },
        # Which kernel applies the update: a knob-free choice, but one that changes the last
        # bits of every step, so it is recorded.
        "implementation": (
            "fused" if group.get("fused") else "foreach" if group.get("foreach") else "for-loop"
        ),
        "param_groups": len(opt.param_groups),
    }


def warmup_cosine_lr(epoch: int, lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """LR used during ``epoch`` (0-based). Linear 0.1*lr -> lr over ``warmup`` epochs, then a
    cosine from lr to ``min_ratio * lr`` over max(1, total - warmup) epochs; the floor is reached
    at epoch ``total``, i.e. after the last epoch's step, exactly as in the original formula."""
    if epoch < warmup:
        return lr * (WARMUP_START_FRACTION + (1 - WARMUP_START_FRACTION) * epoch / warmup)
    span = max(1, total - warmup)
    floor = min_ratio * lr
    return floor + (lr - floor) * (1 + math.cos(math.pi * (epoch - warmup) / span)) / 2


@dataclass
class PlateauState:
    """ReduceLROnPlateau bookkeeping: explicit so it can be checkpointed and tested."""

    lr: float
    best: float = math.inf
    bad_epochs: int = 0


class LRSchedule:
    """Per-epoch learning rate. ``lr_for_epoch(e)`` gives the rate to use during epoch e;
    ``observe(val_loss)`` feeds ReduceLROnPlateau after each validation."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.plateau = PlateauState(lr=cfg.lr)

    def lr_for_epoch(self, epoch: int) -> float:
        c = self.cfg
        if c.scheduler == "Default":
            return c.lr
        if c.scheduler == "Exponential":
            return c.lr * c.exp_gamma**epoch
        if c.scheduler == "WarmupCosine":
            return warmup_cosine_lr(epoch, c.lr, c.warmup_epochs, c.epochs, c.min_lr_ratio)
        if c.scheduler == "ReduceLROnPlateau":
            return self.plateau.lr
        raise AssertionError(f"scheduler {c.scheduler!r} passed validation but has no rule")

    def observe(self, val_loss: float) -> None:
        if self.cfg.scheduler != "ReduceLROnPlateau":
            return
        p, c = self.plateau, self.cfg
        # Relative threshold as in torch's default "rel" mode; threshold 0 = any decrease counts.
        # A NaN validation loss is never an improvement.
        if val_loss < p.best * (1 - c.plateau_threshold):
            p.best = val_loss
            p.bad_epochs = 0
            return
        p.bad_epochs += 1
        if p.bad_epochs > c.plateau_patience:
            p.lr = max(p.lr * c.plateau_factor, c.plateau_min_lr)
            p.bad_epochs = 0

    def describe(self) -> dict:
        c = self.cfg
        d = {"name": c.scheduler, "stepped": "per epoch, after validation", "base_lr": c.lr}
        if c.scheduler == "Exponential":
            d["gamma"] = c.exp_gamma
        elif c.scheduler == "WarmupCosine":
            d.update(
                warmup_epochs=c.warmup_epochs, min_lr_ratio=c.min_lr_ratio, total_epochs=c.epochs
            )
        elif c.scheduler == "ReduceLROnPlateau":
            d.update(
                factor=c.plateau_factor,
                patience=c.plateau_patience,
                min_lr=c.plateau_min_lr,
                threshold=c.plateau_threshold,
                mode="min",
            )
        return d

    def state_dict(self) -> dict:
        return {
            "lr": self.plateau.lr,
            "best": self.plateau.best,
            "bad_epochs": self.plateau.bad_epochs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau = PlateauState(**state)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def current_lr(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


def global_grad_norm(params) -> torch.Tensor:
    """Global L2 norm of all gradients as a 0-d tensor (no host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g.detach(), 2) for g in grads]), 2
    )


class GradClipper:
    """Measures the global grad norm before clipping and, when clipping is on, after it.

    ``grad_clip`` <= 0 disables clipping; the algorithms are those of docs/science.md, 'Gradient
    clipping and grad-norm logging'. AGC is per parameter tensor (not per unit), with
    lambda = grad_clip.
    """

    def __init__(self, params, cfg: TrainConfig):
        self.params = [p for p in params if p.requires_grad]
        self.algorithm = cfg.clip_algorithm
        self.value = cfg.grad_clip
        self.enabled = cfg.grad_clip > 0

    def describe(self) -> dict:
        return {
            "enabled": self.enabled,
            "algorithm": self.algorithm if self.enabled else None,
            "value": self.value if self.enabled else 0.0,
            "norm_measured": "global L2 over all gradients, before clipping"
            + ("; also after clipping" if self.enabled else ""),
        }

    @torch.no_grad()
    def __call__(self, measure: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Clip in place; returns (pre-clip norm, post-clip norm) as tensors, or None when not
        measured / not clipping. Clipping itself always happens when enabled."""
        pre = global_grad_norm(self.params) if (measure or self.algorithm == "norm") else None
        if not self.enabled:
            return (pre if measure else None), None
        if self.algorithm == "norm":
            scale = torch.clamp(self.value / (pre + 1e-6), max=1.0)
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(scale.to(p.grad.device))
        elif self.algorithm == "value":
            for p in self.params:
                if p.grad is not None:
                    p.grad.clamp_(-self.value, self.value)
        elif self.algorithm == "agc":
            for p in self.params:
                if p.grad is None:
                    continue
                w_norm = torch.linalg.vector_norm(p.detach(), 2).clamp(min=AGC_WEIGHT_FLOOR)
                g_norm = torch.linalg.vector_norm(p.grad, 2)
                bound = self.value * w_norm
                p.grad.mul_(torch.where(g_norm > bound, bound / (g_norm + 1e-12), 1.0))
        if not measure:
            return None, None
        return pre, global_grad_norm(self.params)
