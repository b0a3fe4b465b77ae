"""The trainable spiking convolution of the STDP networks."""
from __future__ import annotations

import torch
from torch import nn

from cortexsnn.plasticity.spike_ops import (
    conv_fire,
    conv_fire_pool,
    conv_potentials,
    last_step_potentials,
    pad_latencies,
)
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule

__all__ = ["SpikeConv"]


class SpikeConv(nn.Module):
    """Stride-1 convolution of spike waves with non-negative weights, fired by a threshold.

    ``threshold=None`` makes it a decision layer: only the potentials of the last step count.
    Weights are a buffer (no autograd) drawn from ``N(weight_mean, weight_std)``.

    Args:
        in_channels, out_channels, kernel_size, padding: the convolution (zero padding = no spikes).
        threshold: firing threshold (``None``: decision layer).
        k_winners, inhibition_radius: k-WTA used for learning.
        stdp: the STDP rule when trained without reward.
        rstdp: the R-STDP rule when trained with reward.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        threshold: float | None = None,
        k_winners: int = 1,
        inhibition_radius: int = 0,
        stdp: STDPRule | None = None,
        rstdp: RSTDPRule | None = None,
        weight_mean: float = 0.8,
        weight_std: float = 0.05,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = kernel_size, padding
        self.threshold = threshold
        self.k_winners, self.inhibition_radius = k_winners, inhibition_radius
        self.stdp = stdp
        self.method = "auto"  # convolution backend: "auto", "event" (compiled kernel) or "dense"
        self.rstdp = rstdp
        self.register_buffer("weight", torch.empty(out_channels, in_channels, kernel_size, kernel_size).normal_(weight_mean, weight_std))
        # training samples seen by STDP (drives the rate schedule)
        self.register_buffer("samples_seen", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, padding={self.padding}, "
                f"threshold={self.threshold}, k={self.k_winners}, r={self.inhibition_radius}")

    def pad(self, latencies: torch.Tensor, time_steps: int) -> torch.Tensor:
        return pad_latencies(latencies, self.padding, time_steps)

    def potentials(self, latencies: torch.Tensor, time_steps: int, method: str | None = None) -> torch.Tensor:
        """Potentials ``[T, B, F, Ho, Wo]`` of unpadded input latencies."""
        return conv_potentials(self.pad(latencies, time_steps), self.weight, time_steps, method or self.method)

    def last_potentials(self, latencies: torch.Tensor, time_steps: int) -> torch.Tensor:
        """Last-step potentials ``[B, F, Ho, Wo]`` of unpadded input latencies."""
        return last_step_potentials(self.pad(latencies, time_steps), self.weight, time_steps, self.method)

    def forward(self, latencies: torch.Tensor, time_steps: int) -> torch.Tensor:
        """Output latencies of a thresholded layer (no inhibition: the inference path)."""
        if self.threshold is None:
            raise RuntimeError("a decision layer has no output spike times; use last_potentials")
        return conv_fire(self.pad(latencies, time_steps), self.weight, time_steps, self.threshold, self.method)

    def fire_pool(self, latencies: torch.Tensor, time_steps: int, pool: int) -> torch.Tensor:
        """``forward`` followed by spike pooling (window and stride ``pool``), in one pass."""
        if self.threshold is None:
            raise RuntimeError("a decision layer has no output spike times; use last_potentials")
        return conv_fire_pool(self.pad(latencies, time_steps), self.weight, time_steps, self.threshold, pool,
                              self.method)
