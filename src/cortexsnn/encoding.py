"""Input encoders: the one module that turns inputs into spike or current sequences.

Spike trains and current sequences are time-major ``[T, ...]``:

* :func:`repeat` (direct coding): the input itself at every step, as the deep SNNs of Huang et al. do.
* :func:`bernoulli_rate` (a.k.a. Poisson rate coding): a spike with probability
  ``x * max_rate`` at every step, independently; inputs outside ``[0, 1]`` are refused.
* :func:`latency`: one spike per input, earlier for stronger inputs (linear in intensity); inputs
  at or below ``threshold`` never spike.
* :func:`encode_input`: the input encodings of the IIR networks of Fang et al. (IJCAI 2020) by
  name: ``"constant"`` (= :func:`repeat`) or ``"poisson"`` (``x * max_rate`` *clipped* to
  ``[0, 1]``, then Bernoulli; unlike :func:`bernoulli_rate` it clips instead of refusing).

The STDP networks of Mozafari et al. (2018, 2019) hold spike maps as **first-spike latencies**:
an integer tensor ``[B, ...]`` (dtype :data:`LATENCY_DTYPE`) whose entry is the step
``0 <= t < T`` of the neuron's only spike, or ``T`` for "never". SpykeTorch's cumulative waves
``[T, B, ...]`` (1 from the spike on) are exactly ``latency <= t``:

* :func:`intensity_to_latency`: rank-order latency coding (SpykeTorch's ``Intensity2Latency``),
  the coding step of the STDP networks' front end (:class:`cortexsnn.plasticity.filters.S1C1`).
* :func:`latencies_to_waves`, :func:`waves_to_latencies`: the two representations.
* :func:`first_spike_latencies`: latencies of any spike train ``[T, ...]`` (one spike per neuron
  or cumulative waves), the time-major entry of the STDP networks.

Latencies take one byte per neuron (4.7 KB per MNIST image for 6 x 28 x 28 maps, instead of
70 KB of waves).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "repeat", "bernoulli_rate", "poisson", "latency", "encode_input", "INPUT_ENCODINGS",
    "intensity_to_latency", "latencies_to_waves", "waves_to_latencies", "first_spike_latencies", "LATENCY_DTYPE",
]

INPUT_ENCODINGS = ("constant", "poisson")
LATENCY_DTYPE = torch.uint8


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


def encode_input(images: Tensor, steps: int, encoding: str, max_rate: float = 1.0) -> Tensor:
    """``[T, B, ...]`` input sequence of the IIR networks: constant currents or Bernoulli spikes.

    ``"constant"``: ``images`` at every step (a view, as :func:`repeat`). ``"poisson"``: a spike
    with probability ``clip(images * max_rate, 0, 1)`` at every step, drawn from the global torch RNG
    on a contiguous ``[T, B, ...]`` tensor (the draws of the published IIR runs).
    """
    if encoding == "constant":
        return images.unsqueeze(0).expand(steps, *images.shape)
    if encoding == "poisson":
        probs = (images * max_rate).clamp(0.0, 1.0)
        return torch.bernoulli(probs.unsqueeze(0).expand(steps, *images.shape).contiguous())
    raise ValueError(f"input encoding must be one of {INPUT_ENCODINGS}, got {encoding!r}")


def intensity_to_latency(intensities: Tensor, time_steps: int) -> Tensor:
    """Rank-order latency coding of SpykeTorch's ``Intensity2Latency``, batched over images.

    For each image the non-zero intensities (over all channels and positions) are sorted in
    descending order and cut into ``T`` bins of ``n_nonzero // T`` values: bin ``t`` spikes at
    step ``t``. Zeros never spike, and (as in Mozafari et al.'s code) the last ``n_nonzero % T`` non-zero values
    fall beyond the last bin and never spike either. Ties are broken by position (stable sort;
    its unstable sort leaves them unspecified). With fewer than ``T`` non-zero values the
    reference code fails; here each non-zero value then gets its own step.

    Unlike :func:`latency` (linear in intensity, a spike train) the step depends on the rank
    within the image and the result is latencies, not spikes.

    Args:
        intensities: ``[B, ...]`` non-negative.
        time_steps: ``T``.

    Returns:
        latencies ``[B, ...]`` of dtype uint8, ``T`` meaning "never".
    """
    if not 1 <= time_steps < 255:
        raise ValueError(f"time_steps must lie in [1, 254], got {time_steps}")
    if intensities.dim() < 2:
        raise ValueError(f"intensities must be batched [B, ...], got shape {tuple(intensities.shape)}")
    if (intensities < 0).any():
        raise ValueError("intensities must be non-negative (threshold the filter responses first)")
    batch = intensities.shape[0]
    flat = intensities.reshape(batch, -1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    n_nonzero = (flat > 0).sum(dim=1, keepdim=True)
    bin_size = (n_nonzero // time_steps).clamp_(min=1)
    ranks = torch.arange(flat.shape[1], device=flat.device).expand(batch, -1)
    sorted_latency = torch.div(ranks, bin_size, rounding_mode="floor")
    sorted_latency = torch.where(ranks < n_nonzero, sorted_latency, time_steps).clamp_(max=time_steps)
    latency = torch.empty_like(sorted_latency).scatter_(1, order, sorted_latency)
    return latency.to(LATENCY_DTYPE).reshape(intensities.shape)


def latencies_to_waves(latencies: Tensor, time_steps: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Cumulative spike waves ``[T, *latencies.shape]``: ``wave[t] = latency <= t``."""
    steps = torch.arange(time_steps, device=latencies.device).view(-1, *([1] * latencies.dim()))
    return (latencies.unsqueeze(0).long() <= steps).to(dtype)


def waves_to_latencies(waves: Tensor) -> Tensor:
    """Inverse of :func:`latencies_to_waves`: ``T - (number of steps with a spike)``.

    ``waves``: ``[T, ...]`` cumulative (once 1, stays 1).
    """
    time_steps = waves.shape[0]
    return (time_steps - (waves != 0).sum(dim=0)).to(LATENCY_DTYPE)


def first_spike_latencies(spikes: Tensor) -> Tensor:
    """Latencies ``[...]`` (uint8, ``T`` = never) of the first spike of a spike train ``[T, ...]``.

    Takes one-spike-per-neuron trains (:func:`latency`) and cumulative waves
    (:func:`latencies_to_waves`) alike; equals :func:`waves_to_latencies` on waves.
    """
    time_steps = spikes.shape[0]
    if not 1 <= time_steps < 255:
        raise ValueError(f"spike trains need 1..254 steps for uint8 latencies, got {time_steps}")
    fired = spikes != 0
    first = fired.to(torch.uint8).argmax(dim=0)  # the first maximum: the first spike where there is one
    return torch.where(fired.any(dim=0), first, time_steps).to(LATENCY_DTYPE)
