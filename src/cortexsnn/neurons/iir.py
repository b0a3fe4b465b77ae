"""IIR synapse-filter modules and the reset-trace neuron (Fang et al., IJCAI 2020).

The maths is in :mod:`cortexsnn.neurons.functional.iir`. Each module works multi-step
(``step_mode="m"``, input ``[T, B, *features]``) or single-step (``"s"``, input ``[B, *features]``,
state carried between calls until :meth:`~cortexsnn.neurons.base.MemoryModule.reset`).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from cortexsnn.neurons.base import MemoryModule
from cortexsnn.neurons.functional import iir as F
from cortexsnn.neurons.surrogate import Gaussian, Surrogate

__all__ = ["DualExpPSP", "FirstOrderPSP", "ResetTraceNeuron"]


def _coeff_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"coefficient shape must be positive sizes, got {shape}")
    return shape


class DualExpPSP(MemoryModule):
    """Dual-exponential PSP filter ``p[t] = a1 p[t-1] + a2 p[t-2] + b s[t]``, one per input neuron.

    Args:
        shape: shape of the coefficients: the number of input neurons (``500``) or, for
            convolutional inputs, ``(channels, 1, 1)`` for one filter per channel.
        tau_m, tau_s: initial time constants (``a1, a2, b`` from :func:`dual_exp_coefficients`).
        trainable: whether ``a1, a2, b`` are learnt.
        margin: stability guard (``None`` turns it off, as in Fang et al.'s code).
        method: ``"auto"``, ``"toeplitz"``, ``"scan"`` or ``"loop"`` (multi-step evaluation).
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        tau_m: float = 4.0,
        tau_s: float = 1.0,
        trainable: bool = True,
        margin: float | None = F.STABILITY_MARGIN,
        method: F.FilterMethod = "auto",
        step_mode: str = "m",
    ) -> None:
        super().__init__(step_mode)
        shape = _coeff_shape(shape)
        a1, a2, b = F.dual_exp_coefficients(tau_m, tau_s)
        self.a1 = nn.Parameter(torch.full(shape, a1), requires_grad=trainable)
        self.a2 = nn.Parameter(torch.full(shape, a2), requires_grad=trainable)
        self.b = nn.Parameter(torch.full(shape, b), requires_grad=trainable)
        self.tau_m, self.tau_s, self.margin, self.method = tau_m, tau_s, margin, method
        self.register_memory("p1", None)
        self.register_memory("p2", None)

    def _coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.margin is None:
            return self.a1, self.a2, self.b
        a1, a2 = F.stable_dual_exp_coefficients(self.a1, self.a2, self.margin)
        return a1, a2, self.b

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            return F.dual_exp_filter(x, self.a1, self.a2, self.b, method=self.method, margin=self.margin)
        a1, a2, b = self._coefficients()
        p1 = torch.zeros_like(x) if self.p1 is None else self.p1
        p2 = torch.zeros_like(x) if self.p2 is None else self.p2
        p = a1 * p1 + a2 * p2 + b * x
        self.p2, self.p1 = p1, p
        return p

    def step_response(self, steps: int) -> Tensor:
        """Response ``[steps, *shape]`` to a constant unit input (cumulative impulse response).

        The PSP of a constant current ``x`` is ``x * step_response`` (time-invariant input,
        e.g. MNIST pixels as constant currents), far cheaper than filtering ``T`` copies of ``x``.
        """
        a1, a2, b = self._coefficients()
        return F.dual_exp_impulse_response(a1, a2, b, steps).cumsum(0)

    @torch.no_grad()
    def project_(self) -> None:
        """Project the stored coefficients into the stable triangle (call after optimiser steps)."""
        if self.margin is not None:
            a1, a2 = F.stable_dual_exp_coefficients(self.a1, self.a2, self.margin)
            self.a1.copy_(a1)
            self.a2.copy_(a2)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.a1.shape)}, tau_m={self.tau_m}, tau_s={self.tau_s}, margin={self.margin}, {super().extra_repr()}"


class FirstOrderPSP(MemoryModule):
    """First-order low-pass PSP filter ``p[t] = alpha p[t-1] + s[t]``, ``alpha = e^(-1/tau)``."""

    def __init__(
        self,
        shape: int | Sequence[int],
        tau: float = 4.0,
        trainable: bool = True,
        margin: float | None = F.STABILITY_MARGIN,
        method: F.FilterMethod = "auto",
        step_mode: str = "m",
    ) -> None:
        super().__init__(step_mode)
        shape = _coeff_shape(shape)
        self.alpha = nn.Parameter(torch.full(shape, F.first_order_coefficient(tau)), requires_grad=trainable)
        self.tau, self.margin, self.method = tau, margin, method
        self.register_memory("p", None)

    def _alpha(self) -> Tensor:
        return self.alpha if self.margin is None else F.stable_first_order_coefficient(self.alpha, self.margin)

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            return F.first_order_filter(x, self.alpha, method=self.method, margin=self.margin)
        p = x if self.p is None else self._alpha() * self.p + x
        self.p = p
        return p

    def step_response(self, steps: int) -> Tensor:
        """Response ``[steps, *shape]`` to a constant unit input."""
        return F.first_order_impulse_response(self._alpha(), steps).cumsum(0)

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp the stored coefficient into ``[-1 + margin, 1 - margin]``."""
        if self.margin is not None:
            self.alpha.copy_(F.stable_first_order_coefficient(self.alpha, self.margin))

    def extra_repr(self) -> str:
        return f"shape={tuple(self.alpha.shape)}, tau={self.tau}, margin={self.margin}, {super().extra_repr()}"


class ResetTraceNeuron(MemoryModule):
    """Reset-trace neuron of Fang et al. (IJCAI 2020): ``v[t] = m v[t-1] + I[t] - r[t-1]``, spike ``v >= theta``,
    ``r[t] = e^(-1/tau_m) r[t-1] + s[t]``; ``m = e^(-1/tau_m)`` with ``membrane_filter`` else 0.

    The input is the synaptic current ``I = W p + bias`` of the whole sequence (multi-step) or
    of one step (single-step). Multi-step uses the fused kernel (adjoint-recurrence backward).
    """

    def __init__(
        self,
        tau_m: float = 4.0,
        threshold: float = 1.0,
        membrane_filter: bool = False,
        surrogate: Surrogate | None = None,
        step_mode: str = "m",
    ) -> None:
        super().__init__(step_mode)
        F.first_order_coefficient(tau_m)  # validates tau_m
        self.tau_m, self.threshold, self.membrane_filter = float(tau_m), float(threshold), bool(membrane_filter)
        self.surrogate = Gaussian(0.4) if surrogate is None else surrogate
        self.register_memory("v", None)
        self.r: Tensor | None
        self.register_memory("r", None)

    def forward(self, current: Tensor) -> Tensor:
        if self.step_mode == "m":
            spikes, self.v, self.r = F.reset_trace_neuron(
                current, self.tau_m, self.threshold, self.membrane_filter, self.surrogate, self.v, self.r
            )
            return spikes
        decay = F.first_order_coefficient(self.tau_m)
        v = torch.zeros_like(current) if self.v is None else self.v
        r = torch.zeros_like(current) if self.r is None else self.r
        s, self.v, self.r = F.reset_trace_neuron_step(
            current, v, r, decay, decay if self.membrane_filter else 0.0, self.threshold, self.surrogate
        )
        return s

    def extra_repr(self) -> str:
        return (
            f"tau_m={self.tau_m}, threshold={self.threshold}, membrane_filter={self.membrane_filter}, "
            f"surrogate={self.surrogate}, {super().extra_repr()}"
        )
