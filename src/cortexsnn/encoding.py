"""Input encoders: turn static inputs into time-major spike or current sequences ``[T, ...]``.

* :func:`repeat` (direct coding): the input itself at every step, as the deep SNNs of the seeds do.
* :func:`bernoulli_rate` (a.k.a. Poisson rate coding): a spike with probability
  ``x * max_rate`` at every step, independently.
* :func:`latency`: one spike per input, earlier for stronger inputs; inputs at or below
  ``threshold`` never spike.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["repeat", "bernoulli_rate", "poisson", "latency"]


def _check_steps(steps: int) -> int:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"the number of time steps must be a positive integer, got {steps!r}")
    return steps


def _check_finite(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"{name}: input must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: input contains NaN or infinite values; clean the data first")


def repeat(x: Tensor, steps: int) -> Tensor:
    """Direct coding: ``[T, *x.shape]`` with ``x`` at every step (a view, no copy)."""
    _check_steps(steps)
    return x.unsqueeze(0).expand(steps, *x.shape)


def bernoulli_rate(
    x: Tensor, steps: int, max_rate: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Rate coding: ``S[t] ~ Bernoulli(x * max_rate)`` independently per step; ``x`` in ``[0, 1]``."""
    _check_steps(steps)
    _check_finite(x, "bernoulli_rate")
    if not 0.0 < max_rate <= 1.0:
        raise ValueError(f"max_rate must lie in (0, 1], got {max_rate}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"bernoulli_rate: input must lie in [0, 1] (got [{float(x.min()):.3g}, {float(x.max()):.3g}]); "
            "scale it first, e.g. x / 255 for 8-bit images"
        )
    p = (x * max_rate).unsqueeze(0).expand(steps, *x.shape)
    return torch.bernoulli(p, generator=generator)


poisson = bernoulli_rate  # the name most libraries use for the same discrete-time process


def latency(x: Tensor, steps: int, threshold: float = 0.0, normalize: bool = False) -> Tensor:
    """Intensity-to-latency coding: one spike per input, at step ``round((1 - x) * (T - 1))``.

    The rule is linear in intensity; ``round`` is :func:`torch.round` (halves to even).

    ``x`` lies in ``[0, 1]`` (or any non-negative range with ``normalize=True``, which divides by the
    maximum of each sample). ``x = 1`` spikes at step 0, weaker inputs later; inputs ``<= threshold``
    never spike. Returns ``[T, *x.shape]`` of 0/1 in ``x``'s dtype.
    """
    _check_steps(steps)
    _check_finite(x, "latency")
    if normalize:
        if x.numel() and x.min() < 0:
            raise ValueError("latency: normalize=True needs non-negative input")
        # each sample (first dimension) by its maximum; an all-zero sample stays zero (no spikes)
        peak = x.flatten(1).amax(dim=1) if x.dim() > 1 else x.amax().reshape(1)
        x = x / peak.clamp_min(torch.finfo(x.dtype).tiny).view(-1, *([1] * (x.dim() - 1)))
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("latency: input must lie in [0, 1]; pass normalize=True to scale each sample")
    spike_step = torch.round((1 - x) * (steps - 1)).long()
    time = torch.arange(steps, device=x.device).view(-1, *([1] * x.dim()))
    fires = (x > threshold).unsqueeze(0)
    return ((time == spike_step.unsqueeze(0)) & fires).to(x.dtype)
