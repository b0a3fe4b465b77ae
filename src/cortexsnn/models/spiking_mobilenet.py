"""Spiking MobileNet (MobileNetV2 layout with spiking neurons; Huang et al., AAAI 2023).

A neuron follows every convolution + batch norm (the projection included); the SEW residual
(ADD) is used where a block keeps its channels and resolution. Multi-step on ``[T, B, C, H, W]``.
"""
from __future__ import annotations

from torch import Tensor, nn

from cortexsnn.models.layers import SeqAdaptiveAvgPool2d, SeqBatchNorm2d, SeqConv2d, SpikingModel, make_neuron
from cortexsnn.models.registry import register_model
from cortexsnn.models.sew_resnet import connect

__all__ = ["SpikingMobileNet", "MOBILENET_V2_SETTINGS"]

# (output channels, stride of the first block, expansion t, blocks n) as in the spec's table
MOBILENET_V2_SETTINGS = [(16, 1, 1, 1), (24, 2, 6, 2), (32, 2, 6, 3), (64, 2, 6, 4), (96, 1, 6, 3),
                         (160, 2, 6, 3), (320, 1, 6, 1)]


class ConvBNNeuron(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, neuron) -> None:
        super().__init__(SeqConv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         SeqBatchNorm2d(cout), neuron())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, neuron, cnf: str = "ADD") -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [ConvBNNeuron(cin, hidden, 1, 1, 1, neuron)]
        layers += [ConvBNNeuron(hidden, hidden, 3, stride, hidden, neuron), ConvBNNeuron(hidden, cout, 1, 1, 1, neuron)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout
        self.cnf = cnf

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return connect(out, x, self.cnf) if self.use_residual else out


class SpikingMobileNet(SpikingModel):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, neuron: str = "if",
                 neuron_kwargs: dict | None = None, cnf: str = "ADD", last_channels: int = 1280) -> None:
        super().__init__()
        kwargs = dict(neuron_kwargs or {})
        make = lambda: make_neuron(neuron, **kwargs)  # noqa: E731
        self.in_channels = in_channels
        features: list[nn.Module] = [ConvBNNeuron(in_channels, 32, 3, 2, 1, make)]
        cin = 32
        for cout, stride, expand, blocks in MOBILENET_V2_SETTINGS:
            for i in range(blocks):
                features.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand, make, cnf))
                cin = cout
        features.append(ConvBNNeuron(cin, last_channels, 1, 1, 1, make))
        self.features = nn.Sequential(*features)
        self.avgpool = SeqAdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(last_channels, num_classes)
        self.scoring_layers = [f"features.{i}" for i in range(len(features))] + ["avgpool"]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.prepare(x)
        return self.classifier(self.avgpool(self.features(x)).flatten(2))


@register_model
def spiking_mobilenet(**kwargs) -> SpikingMobileNet:
    """Spiking MobileNetV2 (IF neurons, SEW ADD residuals)."""
    return SpikingMobileNet(**kwargs)
