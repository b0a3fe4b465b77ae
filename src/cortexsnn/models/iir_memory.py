"""Associative-memory IIR-SNN of Fang et al. (IJCAI 2020): 300 -> 500 -> 200 -> 500 -> 300, dual-exp PSP tm 8, ts 2.

Input and output are spike sequences ``[T, B, 300]``; the network learns to reproduce the clean
pattern at its output, delayed, from a noisy or partly erased version (see
:mod:`cortexsnn.data.glyph_patterns`). The objective compares output and target after the
normalised dual-exponential filter :func:`normalised_dual_exp`.

Registered as ``create_model("iir_memory", ...)`` (family ``"iir"``); time-major natively
(``forward_time_major`` is ``forward``).
"""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from cortexsnn.models.iir_mlp import check_finite, make_psp, spike_dropout
from cortexsnn.models.registry import register_model
from cortexsnn.neurons.base import reset
from cortexsnn.neurons.functional.iir import first_order_coefficient, first_order_filter
from cortexsnn.neurons.iir import ResetTraceNeuron
from cortexsnn.neurons.surrogate import Gaussian

__all__ = ["IIRMemoryNet", "iir_memory", "normalised_dual_exp"]


def normalised_dual_exp(x: Tensor, tau_m: float = 8.0, tau_s: float = 2.0) -> Tensor:
    """``v0 (m - s)`` with traces ``m[t] = e^(-1/tau_m) m[t-1] + x[t]``, ``s[t] = e^(-1/tau_s) s[t-1] + x[t]``
    and ``v0 = eta^(eta/(eta-1)) / (eta-1)``, ``eta = tau_m / tau_s`` (peak of the kernel = 1).

    ``x`` is ``[T, B, ...]``; differentiable with respect to ``x``.
    """
    if not tau_m > tau_s > 0:
        raise ValueError(f"need tau_m > tau_s > 0, got {tau_m}, {tau_s}")
    eta = tau_m / tau_s
    v0 = eta ** (eta / (eta - 1)) / (eta - 1)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    dm = flat.new_full((1,), first_order_coefficient(tau_m))
    ds = flat.new_full((1,), first_order_coefficient(tau_s))
    m = first_order_filter(flat, dm, method="scan", margin=None)
    s = first_order_filter(flat, ds, method="scan", margin=None)
    return (v0 * (m - s)).reshape(x.shape)


class IIRMemoryNet(nn.Module):
    """``forward(spikes [T, B, 300])`` -> output spikes ``[T, B, 300]``."""

    def __init__(
        self,
        sizes: Sequence[int] = (300, 500, 200, 500, 300),
        synapse_type: str = "dual_exp",
        tau_m: float = 8.0,
        tau_s: float = 2.0,
        train_coefficients: bool = True,
        train_bias: bool = True,
        membrane_filter: bool = False,
        dropout: float = 0.0,
        threshold: float = 1.0,
        surrogate_sigma: float = 0.4,
    ) -> None:
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.dropout = float(dropout)
        self.psps = nn.ModuleList(make_psp(synapse_type, n, tau_m, tau_s, train_coefficients) for n in self.sizes[:-1])
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in zip(self.sizes[:-1], self.sizes[1:]))
        for linear in self.linears:
            linear.bias.requires_grad_(train_bias)
        surrogate = Gaussian(surrogate_sigma)
        self.neurons = nn.ModuleList(ResetTraceNeuron(tau_m, threshold, membrane_filter, surrogate) for _ in self.linears)

    def forward(self, spikes: Tensor) -> Tensor:
        if spikes.dim() != 3 or spikes.shape[-1] != self.sizes[0]:
            raise ValueError(f"IIRMemoryNet expects [T, B, {self.sizes[0]}] spikes, got {tuple(spikes.shape)}")
        check_finite(spikes)
        reset(self)
        x = spikes
        last = len(self.linears) - 1
        for index, (psp, linear, neuron) in enumerate(zip(self.psps, self.linears, self.neurons)):
            x = neuron(linear(psp(x)))
            if index < last:
                x = spike_dropout(x, self.dropout, self.training)
        return x

    def forward_time_major(self, spikes: Tensor) -> Tensor:
        """The native call (already time-major): ``[T, B, 300]`` -> ``[T, B, 300]``."""
        return self.forward(spikes)

    def project_(self) -> None:
        """Keep every PSP filter's stored coefficients stable (call after each optimiser step)."""
        for psp in self.psps:
            psp.project_()


@register_model(family="iir", input_layout="spikes [T, B, 300]", output_layout="spikes [T, B, 300]")
def iir_memory(**kwargs: Any) -> IIRMemoryNet:
    """The associative-memory IIR-SNN of Fang et al. (IJCAI 2020); ``kwargs`` are :class:`IIRMemoryNet`'s."""
    return IIRMemoryNet(**kwargs)
