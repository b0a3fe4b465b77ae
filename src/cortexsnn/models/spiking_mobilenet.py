"""Spiking MobileNet (MobileNetV2 layout with spiking neurons; Huang et al., AAAI 2023).

Stem: 3x3 stride-2 convolution to 32 channels -> BN -> neuron. Then the MobileNetV2 table
(output channels, first stride, expansion, blocks); every block is [1x1 expansion ->] depthwise
3x3 -> 1x1 projection, **a neuron after every convolution + batch norm** (the projection
included), and the SEW residual ``g(out, x)`` only where the block keeps its width and stride 1.
Last: 1x1 convolution to 1280 channels -> BN -> neuron, global average pool, linear.

Multi-step on ``[T, B, C, H, W]``; state-dict keys follow Huang et al.'s code (``conv1``, ``bn1``,
``layers.{stage}.{block}.layers.{k}``, ``layers.7`` / ``layers.8`` for the last convolution and
its batch norm, ``fc``), so its checkpoints load one to one. The parameter count equals
torchvision's ``mobilenet_v2``.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from cortexsnn.models.layers import (
    init_weights_,
    SeqAdaptiveAvgPool2d,
    SeqBatchNorm2d,
    SeqConv2d,
    SpikingModel,
    make_neuron,
    mark_spike_inputs,
)
from cortexsnn.models.registry import register_model
from cortexsnn.models.sew_resnet import CONNECT_FUNCTIONS, connect

__all__ = ["SpikingMobileNet", "InvertedResidual", "MOBILENET_V2_SETTINGS"]

# (output channels, stride of the first block, expansion t, blocks n) as in the spec's table
MOBILENET_V2_SETTINGS = [(16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 4), (96, 1, 6, 3),
                         (160, 2, 6, 3), (320, 1, 6, 1)]


def _conv_bn_neuron(cin: int, cout: int, kernel: int, stride: int, groups: int,
                    neuron: Callable[[], nn.Module]) -> list[nn.Module]:
    return [SeqConv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), SeqBatchNorm2d(cout), neuron()]


class InvertedResidual(nn.Module):
    """MobileNetV2 block with a neuron after every conv + BN and a SEW residual where shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, neuron: Callable[[], nn.Module],
                 cnf: str = "ADD") -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else _conv_bn_neuron(cin, hidden, 1, 1, 1, neuron)
        layers += _conv_bn_neuron(hidden, hidden, 3, stride, hidden, neuron)
        layers += _conv_bn_neuron(hidden, cout, 1, 1, 1, neuron)
        self.layers = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.cnf = cnf

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        return connect(out, x, self.cnf) if self.residual else out


class SpikingMobileNet(SpikingModel):
    """Spiking MobileNetV2; ``neuron`` ``"if"`` (default), ``"lif"``, ``"plif"``; ``cnf`` of the residuals."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, neuron: str = "if",
                 neuron_kwargs: dict | None = None, cnf: str = "ADD", last_channels: int = 1280,
                 settings: list[tuple[int, int, int, int]] | None = None) -> None:
        super().__init__()
        if cnf not in CONNECT_FUNCTIONS:
            raise ValueError(f"unknown connect function {cnf!r}; choose one of {CONNECT_FUNCTIONS}")
        kwargs = dict(neuron_kwargs or {})
        make = lambda: make_neuron(neuron, **kwargs)  # noqa: E731
        self.in_channels = in_channels
        self.conv1 = SeqConv2d(in_channels, 32, 3, 2, 1, bias=False)
        self.bn1 = SeqBatchNorm2d(32)
        self.sn1 = make()
        stages: list[nn.Module] = []
        cin = 32
        for cout, stride, expand, blocks in settings or MOBILENET_V2_SETTINGS:
            stage = []
            for i in range(blocks):
                stage.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand, make, cnf))
                cin = cout
            stages.append(nn.Sequential(*stage))
        stages += _conv_bn_neuron(cin, last_channels, 1, 1, 1, make)
        self.layers = nn.Sequential(*stages)
        self.avgpool = SeqAdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(last_channels, num_classes)
        n_stages = len(settings or MOBILENET_V2_SETTINGS)
        self.scoring_layers = ["sn1"] + [
            f"layers.{s}.{b}" for s in range(n_stages) for b in range(len(self.layers[s]))
        ] + [f"layers.{n_stages + 2}", "avgpool"]
        init_weights_(self)
        if neuron != "relu":  # every convolution after the stem sees spike counts
            mark_spike_inputs(self, exclude=("conv1",))

    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> logits ``[T, B, num_classes]``."""
        self.prepare(x)
        x = self.layers(self.sn1(self.bn1(self.conv1(x))))
        return self.fc(self.avgpool(x).flatten(2))


@register_model
def spiking_mobilenet(**kwargs) -> SpikingMobileNet:
    """Spiking MobileNetV2 (IF neurons, SEW ADD residuals)."""
    return SpikingMobileNet(**kwargs)


@register_model
def spikingmobilenet(**kwargs) -> SpikingMobileNet:
    """Huang et al.'s name of :func:`spiking_mobilenet`."""
    return SpikingMobileNet(**kwargs)
