"""Multi-step building blocks for deep SNNs on time-major tensors ``[T, B, ...]``.

Stateless layers (convolution, normalisation, pooling) are applied to all time steps at once by
folding time into the batch: ``[T, B, C, H, W] -> [T*B, C, H, W] -> [T, B, C', H', W']``. They are
subclasses of the torch layers, so their state-dict keys are the familiar ones (``conv1.weight``,
``bn1.running_mean``, ...) and checkpoints of SpikingJelly / torchvision layouts map one to one.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from cortexsnn.neurons import IFNode, LIFNode, PLIFNode, reset
from cortexsnn.neurons.surrogate import ATan

__all__ = [
    "SeqConv2d",
    "SeqBatchNorm2d",
    "SeqMaxPool2d",
    "SeqAdaptiveAvgPool2d",
    "SeqGroupNorm",
    "SeqConvTranspose2d",
    "SeqReLU",
    "make_neuron",
    "NEURONS",
    "SpikingModel",
]


def _fold(module_forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    if x.dim() != 5:
        raise ValueError(f"expected a time-major feature map [T, B, C, H, W], got shape {tuple(x.shape)}")
    steps, batch = x.shape[:2]
    y = module_forward(x.flatten(0, 1))
    return y.view(steps, batch, *y.shape[1:])


class SeqConv2d(nn.Conv2d):
    """``nn.Conv2d`` over ``[T, B, C, H, W]``."""

    def forward(self, x: Tensor) -> Tensor:
        return _fold(super().forward, x)


class SeqConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` over ``[T, B, C, H, W]`` (single-step ``[B, C, H, W]`` accepted)."""

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if x.dim() == 4:
            return super().forward(x, output_size)
        return _fold(lambda z: super(SeqConvTranspose2d, self).forward(z, output_size), x)


class SeqBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over ``[T, B, C, H, W]``: statistics over time, batch and space."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return super().forward(x)
        return _fold(super().forward, x)


class SeqGroupNorm(nn.GroupNorm):
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return super().forward(x)
        return _fold(super().forward, x)


class SeqMaxPool2d(nn.MaxPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return _fold(super().forward, x)


class SeqAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return _fold(super().forward, x)


class SeqReLU(nn.ReLU):
    """ReLU (elementwise, any shape); the non-spiking stand-in of a neuron layer."""


NEURONS = {"if": IFNode, "lif": LIFNode, "plif": PLIFNode}


def make_neuron(kind: str = "if", **kwargs) -> nn.Module:
    """A neuron layer of ``kind`` (``"if"``, ``"lif"``, ``"plif"``) with the seeds' defaults:
    threshold 1, hard reset to 0, ATan surrogate (alpha 2), ``detach_reset=True``."""
    kind = kind.lower()
    if kind == "relu":
        return SeqReLU()
    if kind not in NEURONS:
        raise ValueError(f"unknown neuron type {kind!r}; choose one of {sorted(NEURONS) + ['relu']}")
    options = dict(v_threshold=1.0, v_reset=0.0, surrogate=ATan(2.0), detach_reset=True)
    options.update(kwargs)
    return NEURONS[kind](**options)


class SpikingModel(nn.Module):
    """Base class of the zoo: input checks, state reset per forward, scored layers.

    ``scoring_layers`` lists, in order, the module paths whose outputs the brain-similarity analysis
    scores. With ``stateful = False`` (default) every forward starts from the neurons' initial
    state; set it to ``True`` to carry state across calls (e.g. a movie fed chunk by chunk) and call
    :func:`cortexsnn.neurons.reset` yourself.
    """

    scoring_layers: list[str] = []
    in_channels: int = 3
    stateful: bool = False

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects a time-major batch [T, B, C, H, W], got shape {tuple(x.shape)}; "
                "repeat a static image over T first (cortexsnn.encoding.repeat)"
            )
        if x.shape[2] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels}-channel images, got {x.shape[2]} channels; "
                f"pass in_channels={x.shape[2]} when creating the model or convert the images"
            )
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ValueError(f"images of {tuple(x.shape[-2:])} pixels are too small for {type(self).__name__} (min 16x16)")

    def prepare(self, x: Tensor) -> None:
        self.check_input(x)
        if not self.stateful:
            reset(self)
