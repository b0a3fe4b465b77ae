"""Learning-rate schedules of Huang et al.'s code: ``cosa`` (linear warm-up, then cosine), ``step``, ``exp``.

Schedules are stepped once per epoch, or once per iteration when ``per_iteration`` is set (the
lengths are then counted in iterations).
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ExponentialLR, LinearLR, LRScheduler, SequentialLR, StepLR

__all__ = ["build_scheduler", "SCHEDULES"]

SCHEDULES = ("cosa", "step", "exp", "constant")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int, steps_per_epoch: int = 1,
                    per_iteration: bool = False, warmup_epochs: int = 0, warmup_factor: float = 0.01,
                    step_size: int = 30, gamma: float = 0.1) -> LRScheduler:
    """The scheduler ``name`` for ``epochs`` epochs (see the module docstring)."""
    unit = steps_per_epoch if per_iteration else 1
    total, warmup = epochs * unit, warmup_epochs * unit
    if name == "cosa":
        cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
        if warmup <= 0:
            return cosine
        ramp = LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup)
        return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
    if name == "step":
        return StepLR(optimizer, step_size=step_size * unit, gamma=gamma)
    if name == "exp":
        return ExponentialLR(optimizer, gamma=gamma ** (1.0 / unit))
    if name == "constant":
        return LinearLR(optimizer, start_factor=1.0, total_iters=0)
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
