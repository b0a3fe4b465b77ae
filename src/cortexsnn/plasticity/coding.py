"""Spike coding of the STDP networks: intensity-to-latency and cumulative spike waves.

Internally a spike map is held as **first-spike latencies**: an integer tensor ``[B, C, H, W]``
whose entry is the time step ``0 <= t < T`` of the neuron's only spike, or ``T`` for "never".
SpykeTorch's cumulative waves ``[T, B, C, H, W]`` (1 from the spike on) are exactly
``latency <= t``; :func:`latencies_to_waves` and :func:`waves_to_latencies` convert. Latencies
take one byte per neuron (4.7 KB per MNIST image for 6 x 28 x 28 maps, instead of 70 KB of waves).
"""
from __future__ import annotations

import torch

from cortexsnn.plasticity.filters import FilterBank, local_normalization, mnist_dog_bank

__all__ = [
    "intensity_to_latency",
    "latencies_to_waves",
    "waves_to_latencies",
    "S1C1",
    "LATENCY_DTYPE",
]

LATENCY_DTYPE = torch.uint8


def intensity_to_latency(intensities: torch.Tensor, time_steps: int) -> torch.Tensor:
    """Rank-order latency coding of SpykeTorch's ``Intensity2Latency``, batched over images.

    For each image the non-zero intensities (over all channels and positions) are sorted in
    descending order and cut into ``T`` bins of ``n_nonzero // T`` values: bin ``t`` spikes at
    step ``t``. Zeros never spike, and (as in the seed) the last ``n_nonzero % T`` non-zero values
    fall beyond the last bin and never spike either. Ties are broken by position (stable sort;
    the seed's unstable sort leaves them unspecified). With fewer than ``T`` non-zero values the
    seed fails; here each non-zero value then gets its own step.

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


def latencies_to_waves(latencies: torch.Tensor, time_steps: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Cumulative spike waves ``[T, *latencies.shape]``: ``wave[t] = latency <= t``."""
    steps = torch.arange(time_steps, device=latencies.device).view(-1, *([1] * latencies.dim()))
    return (latencies.unsqueeze(0).long() <= steps).to(dtype)


def waves_to_latencies(waves: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`latencies_to_waves`: ``T - (number of steps with a spike)``.

    ``waves``: ``[T, ...]`` cumulative (once 1, stays 1).
    """
    time_steps = waves.shape[0]
    return (time_steps - (waves != 0).sum(dim=0)).to(LATENCY_DTYPE)


class S1C1:
    """Preprocessing of the seed: image x 255, filter bank, local normalisation, latency coding.

    ``__call__`` maps images ``[B, 1, H, W]`` in ``[0, 1]`` to latencies ``[B, K, H, W]`` (uint8).

    Args:
        bank: the filter bank (default: the six DoG kernels of the spec, threshold 50).
        time_steps: ``T`` (15 in the spec).
        norm_radius: radius of the local normalisation (8: a 17 x 17 window); ``None`` to skip it.
        image_size: expected ``(H, W)``; other sizes are refused with a clear message.
    """

    def __init__(
        self,
        bank: FilterBank | None = None,
        time_steps: int = 15,
        norm_radius: int | None = 8,
        image_size: tuple[int, int] | None = (28, 28),
    ) -> None:
        self.bank = bank if bank is not None else mnist_dog_bank()
        self.time_steps = time_steps
        self.norm_radius = norm_radius
        self.image_size = image_size

    @property
    def out_channels(self) -> int:
        return self.bank.out_channels

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(
                f"expected grey images [B, 1, H, W] (or [B, H, W]), got shape {tuple(images.shape)}: "
                f"the filter bank has one input channel"
            )
        if self.image_size is not None and tuple(images.shape[-2:]) != tuple(self.image_size):
            raise ValueError(
                f"expected images of size {self.image_size[0]}x{self.image_size[1]}, got "
                f"{images.shape[-2]}x{images.shape[-1]}; resize them or build the model for this size"
            )
        responses = self.bank(images * 255.0)
        if self.norm_radius is not None:
            responses = local_normalization(responses, self.norm_radius)
        return intensity_to_latency(responses, self.time_steps)
