"""Convolutional IIR-SNNs of Fang et al. (IJCAI 2020); default 32c3-32c3-64c3-pool-64c3-pool-FC512-10 (Fang et al.'s).

``channels``, ``kernel_size``, ``pool_after`` (indices of the conv layers followed by a 2x2 pool)
and ``hidden`` choose other widths: ``configs/iir/snn_conv_small.yaml`` trains
16c5-pool-32c5-pool-FC256-10, about a tenth of Fang et al.'s network's compute per sample.

Every layer is a PSP filter on its input (one trainable filter per input channel for the
convolutions, per input neuron for the fully connected layers), a convolution or linear map and a
reset-trace neuron; pooling is a spike max-pool (2x2). Convolutions keep the map size
(padding ``kernel_size // 2``), so with two pools 28x28 -> 14x14 -> 7x7 and the default classifier
sees 64 x 7 x 7 = 3,136 inputs. Dropout (``dropout``) acts on
the spikes entering the two fully connected layers.

With constant-current input the first layer's input is time-invariant: the PSP of a constant
image ``x`` is ``x g[t]`` (``g`` the filter's step response, one channel), so the first
convolution is computed once, ``conv(x g[t]) = g[t] conv(x)``, instead of ``T`` times.

Registered as ``create_model("iir_conv", ...)`` (family ``"iir"``); :meth:`IIRConvNet.forward_time_major`
is the time-major call (encoded sequence ``[T, B, 1, H, W]`` -> output spikes ``[T, B, classes]``).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from cortexsnn.encoding import INPUT_ENCODINGS, encode_input
from cortexsnn.models.iir_mlp import check_finite, make_psp, spike_dropout
from cortexsnn.models.registry import register_model
from cortexsnn.neurons.base import reset
from cortexsnn.neurons.iir import ResetTraceNeuron
from cortexsnn.neurons.surrogate import Gaussian

__all__ = ["IIRConvNet", "iir_conv"]


def _seq(fn, x: Tensor) -> Tensor:
    """Apply a per-sample op to a ``[T, B, ...]`` sequence by merging time and batch."""
    steps, batch = x.shape[:2]
    y = fn(x.reshape(steps * batch, *x.shape[2:]))
    return y.reshape(steps, batch, *y.shape[1:])


class IIRConvNet(nn.Module):
    """``forward(images [B, 1, 28, 28])`` -> spike counts ``[B, 10]``; the output spikes ``[T, B, 10]``
    of the last call are kept in ``last_output_spikes``. :meth:`forward_time_major` is the
    time-major call on an encoded sequence."""

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 32, 64, 64),
        pool_after: tuple[int, ...] = (2, 3),
        hidden: int = 512,
        classes: int = 10,
        image_size: int = 28,
        kernel_size: int = 3,
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
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that padding keeps the map size, got {kernel_size}")
        bad_pools = [i for i in pool_after if not 0 <= i < len(channels)]
        if bad_pools:
            raise ValueError(f"pool_after indexes conv layers 0..{len(channels) - 1}, got {list(pool_after)}")
        if input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"input_encoding must be one of {INPUT_ENCODINGS}, got {input_encoding!r}")
        self.steps, self.input_encoding, self.max_rate = int(steps), input_encoding, float(max_rate)
        self.dropout, self.pool_after, self.image_size = float(dropout), tuple(pool_after), int(image_size)
        surrogate = Gaussian(surrogate_sigma)
        ins = (1, *channels[:-1])
        self.conv_psps = nn.ModuleList(make_psp(synapse_type, (c, 1, 1), tau_m, tau_s, train_coefficients) for c in ins)
        self.convs = nn.ModuleList(nn.Conv2d(i, o, kernel_size, padding=kernel_size // 2) for i, o in zip(ins, channels))
        side = image_size // (2 ** len(pool_after))
        flat = channels[-1] * side * side
        self.fc_psps = nn.ModuleList(make_psp(synapse_type, n, tau_m, tau_s, train_coefficients) for n in (flat, hidden))
        self.fcs = nn.ModuleList([nn.Linear(flat, hidden), nn.Linear(hidden, classes)])
        for layer in [*self.convs, *self.fcs]:
            layer.bias.requires_grad_(train_bias)
        self.neurons = nn.ModuleList(
            ResetTraceNeuron(tau_m, threshold, membrane_filter, surrogate) for _ in range(len(channels) + 2)
        )
        self.last_output_spikes: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 1 or images.shape[-1] != self.image_size:
            raise ValueError(f"IIRConvNet expects images [B, 1, {self.image_size}, {self.image_size}], got {tuple(images.shape)}")
        check_finite(images)
        reset(self)
        if self.input_encoding == "constant":
            current = self._constant_current(images, self.steps)
        else:
            x = encode_input(images, self.steps, "poisson", self.max_rate)
            current = _seq(self.convs[0], self.conv_psps[0](x))
        self.last_output_spikes = self._run(current)
        return self.last_output_spikes.sum(0)

    def forward_time_major(self, inputs: Tensor) -> Tensor:
        """Time-major call: the input sequence ``[T, B, 1, H, W]`` -> output spikes ``[T, B, classes]``.

        ``inputs`` is already encoded (the image repeated ``T`` times for
        ``input_encoding="constant"``, its spike train for ``"poisson"``). A sequence constant over
        time takes the native path (first convolution once), so
        ``forward_time_major(repeat(x, model.steps)).sum(0)`` equals ``model(x)`` bit for bit; any
        other sequence runs through the first PSP filter step by step. ``T`` may differ from
        ``model.steps``.
        """
        size = self.image_size
        if inputs.dim() != 5 or inputs.shape[2] != 1 or inputs.shape[-1] != size:
            raise ValueError(f"IIRConvNet.forward_time_major expects [T, B, 1, {size}, {size}], got {tuple(inputs.shape)}")
        check_finite(inputs)
        reset(self)
        if self.input_encoding == "constant" and bool((inputs == inputs[:1]).all()):
            current = self._constant_current(inputs[0], inputs.shape[0])
        else:
            current = _seq(self.convs[0], self.conv_psps[0](inputs))
        self.last_output_spikes = self._run(current)
        return self.last_output_spikes

    def _constant_current(self, images: Tensor, steps: int) -> Tensor:
        """First convolution's output ``[T, B, C, H, W]`` for a constant image: ``g[t] conv(x) + bias``."""
        gain = self.conv_psps[0].step_response(steps).reshape(steps, 1, 1, 1, 1)
        current = gain * F.conv2d(images, self.convs[0].weight, padding=self.convs[0].padding).unsqueeze(0)
        return current + self.convs[0].bias.view(1, 1, -1, 1, 1)

    def _run(self, current: Tensor) -> Tensor:
        """Output spikes ``[T, B, classes]`` for the first convolution's output ``[T, B, C, H, W]``."""
        spikes = self._maybe_pool(0, self.neurons[0](current))
        for index in range(1, len(self.convs)):
            spikes = self.neurons[index](_seq(self.convs[index], self.conv_psps[index](spikes)))
            spikes = self._maybe_pool(index, spikes)
        spikes = spikes.flatten(2)
        for j, (psp, fc) in enumerate(zip(self.fc_psps, self.fcs)):
            spikes = spike_dropout(spikes, self.dropout, self.training)
            spikes = self.neurons[len(self.convs) + j](fc(psp(spikes)))
        return spikes

    def _maybe_pool(self, index: int, spikes: Tensor) -> Tensor:
        """Spike max-pool (2x2) after conv layer ``index`` when the architecture asks for it."""
        if index not in self.pool_after:
            return spikes
        return _seq(lambda z: F.max_pool2d(z, 2), spikes)

    def project_(self) -> None:
        """Keep every PSP filter's stored coefficients stable (call after each optimiser step)."""
        for psp in [*self.conv_psps, *self.fc_psps]:
            psp.project_()


@register_model(family="iir", input_layout="[B, 1, 28, 28]", output_layout="spike counts [B, 10]")
def iir_conv(**kwargs: Any) -> IIRConvNet:
    """The convolutional IIR-SNN of Fang et al. (IJCAI 2020); ``kwargs`` are :class:`IIRConvNet`'s."""
    return IIRConvNet(**kwargs)
