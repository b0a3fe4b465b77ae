"""The IIR-SNN MLP of Fang et al. (IJCAI 2020): 784 -> 500 -> 500 -> 10.

Each layer is a PSP filter on its input (dual-exponential or first-order, trainable
coefficients per input neuron), a linear map and a reset-trace neuron; dropout (p 0.3) on the
spikes of layers 1 and 2. Inputs are images; the network sees them for ``T`` steps as constant
currents (pixel intensity at every step) or as Bernoulli spikes with ``p = pixel * max_rate``.
The output is the spike count of the 10 output neurons over ``T`` (used as logits).

Registered as ``create_model("iir_mlp", ...)`` (family ``"iir"``). The native call takes images
``[B, ...]`` and encodes them itself (:func:`cortexsnn.encoding.encode_input`);
:meth:`IIRMLP.forward_time_major` takes the encoded sequence ``[T, B, ...]`` and returns the
output spikes ``[T, B, 10]`` (time-major, as the deep SNNs of the zoo).

Parameters: weights and biases 648,010 plus the PSP coefficients of each layer's inputs
(3 x 1,784 = 5,352 for dual-exp, 1,784 for first-order): 653,362 for the dual-exp MLP, the count
Fang et al.'s code reports.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from cortexsnn.encoding import INPUT_ENCODINGS, encode_input
from cortexsnn.models.registry import register_model
from cortexsnn.neurons.base import reset
from cortexsnn.neurons.iir import DualExpPSP, FirstOrderPSP, ResetTraceNeuron
from cortexsnn.neurons.surrogate import Gaussian

__all__ = ["IIRMLP", "iir_mlp", "make_psp", "check_finite", "spike_dropout"]

SYNAPSE_TYPES = ("dual_exp", "first_order")


def make_psp(
    synapse_type: str, shape: int | Sequence[int], tau_m: float, tau_s: float, trainable: bool
) -> DualExpPSP | FirstOrderPSP:
    """A PSP filter of the named type (``"dual_exp"`` or ``"first_order"``, tau = ``tau_m``)."""
    if synapse_type == "dual_exp":
        return DualExpPSP(shape, tau_m, tau_s, trainable=trainable)
    if synapse_type == "first_order":
        return FirstOrderPSP(shape, tau_m, trainable=trainable)
    raise ValueError(f"synapse_type must be one of {SYNAPSE_TYPES}, got {synapse_type!r}")


def check_finite(x: Tensor, what: str = "input") -> None:
    """Raise ``ValueError`` when ``x`` holds NaN or infinity."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} holds {bad} NaN/infinite values; clean the data (e.g. torch.nan_to_num) first")


def spike_dropout(spikes: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout, an independent mask per element and step (as ``nn.Dropout``).

    The mask comes from ``rand >= p``, about twice as fast on the CPU as ``nn.Dropout``'s
    Bernoulli sampling for these sizes.
    """
    if not training or p == 0.0:
        return spikes
    keep = torch.rand_like(spikes) >= p
    return spikes * keep * (1.0 / (1.0 - p))


class IIRMLP(nn.Module):
    """Fully connected IIR-SNN (SNN-IIR's ``snn_mlp_1`` / ``snn_mlp_2``).

    ``forward(images [B, 1, 28, 28] or [B, 784])`` returns spike counts ``[B, 10]``; the output
    spikes ``[T, B, 10]`` of the last call are kept in ``last_output_spikes``.
    :meth:`forward_time_major` is the time-major call on an encoded sequence.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (784, 500, 500, 10),
        steps: int = 25,
        synapse_type: str = "dual_exp",
        tau_m: float = 4.0,
        tau_s: float = 1.0,
        train_coefficients: bool = True,
        train_bias: bool = True,
        membrane_filter: bool = False,
        dropout: float = 0.3,
        input_encoding: str = "constant",
        max_rate: float = 1.0,
        threshold: float = 1.0,
        surrogate_sigma: float = 0.4,
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output size, got {list(sizes)}")
        if input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {input_encoding!r}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.sizes, self.steps = tuple(int(s) for s in sizes), int(steps)
        self.input_encoding, self.max_rate = input_encoding, float(max_rate)
        self.psps = nn.ModuleList(
            make_psp(synapse_type, n_in, tau_m, tau_s, train_coefficients) for n_in in self.sizes[:-1]
        )
        self.linears = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
        for linear in self.linears:
            linear.bias.requires_grad_(train_bias)
        surrogate = Gaussian(surrogate_sigma)
        self.neurons = nn.ModuleList(
            ResetTraceNeuron(tau_m, threshold, membrane_filter, surrogate) for _ in self.linears
        )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.last_output_spikes: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        x = images.reshape(images.shape[0], -1)
        if x.shape[1] != self.sizes[0]:
            raise ValueError(f"IIRMLP expects {self.sizes[0]} input features per sample, got {x.shape[1]}")
        check_finite(x)
        reset(self)
        if self.input_encoding == "constant":
            psp = self._constant_psp(x, self.steps)
        else:
            psp = self.psps[0](encode_input(x, self.steps, "poisson", self.max_rate))
        self.last_output_spikes = self._run(psp)
        return self.last_output_spikes.sum(0)

    def forward_time_major(self, inputs: Tensor) -> Tensor:
        """Time-major call: the input sequence ``[T, B, ...]`` -> output spikes ``[T, B, classes]``.

        ``inputs`` is what the network sees at each step, i.e. already encoded: for
        ``input_encoding="constant"`` the image repeated ``T`` times
        (:func:`cortexsnn.encoding.repeat`), for ``"poisson"`` its spike train
        (:func:`cortexsnn.encoding.encode_input`). A sequence constant over time takes the native
        step-response path, so ``forward_time_major(repeat(x, model.steps)).sum(0)`` equals
        ``model(x)`` bit for bit; any other sequence (a movie, a spike train) runs through the first
        PSP filter step by step. ``T`` may differ from ``model.steps``.
        """
        if inputs.dim() < 3:
            raise ValueError(f"forward_time_major expects a time-major sequence [T, B, ...], got {tuple(inputs.shape)}")
        x = inputs.reshape(inputs.shape[0], inputs.shape[1], -1)
        if x.shape[2] != self.sizes[0]:
            raise ValueError(f"IIRMLP expects {self.sizes[0]} input features per sample, got {x.shape[2]}")
        check_finite(x)
        reset(self)
        if self.input_encoding == "constant" and bool((x == x[:1]).all()):
            psp = self._constant_psp(x[0], x.shape[0])
        else:
            psp = self.psps[0](x)
        self.last_output_spikes = self._run(psp)
        return self.last_output_spikes

    def _constant_psp(self, x: Tensor, steps: int) -> Tensor:
        """A constant current's PSP ``[T, B, N]``: the current times the first filter's step response."""
        return x.unsqueeze(0) * self.psps[0].step_response(steps).unsqueeze(1).to(x.dtype)

    def _run(self, psp: Tensor) -> Tensor:
        """Output spikes ``[T, B, classes]`` of the layers for the first layer's PSP ``[T, B, N]``."""
        spikes = psp
        last = len(self.linears) - 1
        for index, (linear, neuron) in enumerate(zip(self.linears, self.neurons)):
            if index > 0:
                psp = self.psps[index](spikes)
            spikes = neuron(linear(psp))
            if index < last:
                spikes = spike_dropout(spikes, self.dropout, self.training)
        return spikes

    def project_(self) -> None:
        """Keep every PSP filter's stored coefficients stable (call after each optimiser step)."""
        for psp in self.psps:
            psp.project_()


@register_model(family="iir", input_layout="[B, 1, 28, 28] or [B, 784]", output_layout="spike counts [B, 10]")
def iir_mlp(**kwargs: Any) -> IIRMLP:
    """The IIR-SNN MLP of Fang et al. (IJCAI 2020); ``kwargs`` are :class:`IIRMLP`'s."""
    return IIRMLP(**kwargs)
