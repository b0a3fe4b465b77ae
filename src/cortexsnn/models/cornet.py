"""CORnet-RT (Kubilius et al. 2018) and its spiking version, the movie paper's baselines.

Four areas V1 (7x7, stride 4), V2, V4, IT (3x3, stride 2), 64/128/256/512 channels. Each area:
``inp = ReLU(GN(conv_input(x)))``, ``skip = inp + state``, ``out = ReLU(GN(conv1(skip)))``,
``state = out`` (GroupNorm with 32 groups). Areas talk with a one-step delay: area ``k`` at
step ``t`` receives area ``k-1``'s output of step ``t-1`` (zeros, without ``conv_input``, at
``t = 0``); V1 receives the frame of step ``t``. The readout averages IT spatially and applies a
linear layer at every step. ``s_cornet`` replaces every ReLU with a LIF neuron (tau 2).

Because of the delay, each area can run over the whole sequence before the next one starts, so
every area is one module call on ``[T, B, C, H, W]`` (hooks see the whole sequence).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from cortexsnn.models.layers import SeqAdaptiveAvgPool2d, SeqConv2d, SeqGroupNorm, SpikingModel, make_neuron
from cortexsnn.models.registry import register_model

__all__ = ["CORnetRT", "CORblockRT"]


class CORblockRT(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, neuron: str, neuron_kwargs: dict,
                 delayed: bool) -> None:
        super().__init__()
        self.conv_input = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.nonlin_input = make_neuron(neuron, **neuron_kwargs)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, cout)
        self.nonlin1 = make_neuron(neuron, **neuron_kwargs)
        self.stride, self.cout, self.delayed = stride, cout, delayed

    def _drive(self, x_t: Tensor) -> Tensor:
        return self.nonlin_input(self.norm_input(self.conv_input(x_t)).unsqueeze(0))[0]

    def forward(self, x: Tensor) -> Tensor:
        """``x [T, B, C, H, W]``: the previous area's outputs (or the frames, for V1)."""
        steps, batch, _, height, width = x.shape
        out_h = (height + 2 * (self.conv_input.padding[0]) - self.conv_input.kernel_size[0]) // self.stride + 1
        out_w = (width + 2 * (self.conv_input.padding[1]) - self.conv_input.kernel_size[1]) // self.stride + 1
        state: Tensor | float = 0.0
        outputs = []
        for t in range(steps):
            if self.delayed:
                drive = x.new_zeros(batch, self.cout, out_h, out_w) if t == 0 else self._drive(x[t - 1])
            else:
                drive = self._drive(x[t])
            state = self.nonlin1(self.norm1(self.conv1(drive + state)).unsqueeze(0))[0]
            outputs.append(state)
        return torch.stack(outputs)


class CORnetRT(SpikingModel):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, neuron: str = "relu",
                 neuron_kwargs: dict | None = None) -> None:
        super().__init__()
        kwargs = dict(neuron_kwargs or ({"tau": 2.0} if neuron == "lif" else {}))
        self.in_channels = in_channels
        self.V1 = CORblockRT(in_channels, 64, 7, 4, neuron, kwargs, delayed=False)
        self.V2 = CORblockRT(64, 128, 3, 2, neuron, kwargs, delayed=True)
        self.V4 = CORblockRT(128, 256, 3, 2, neuron, kwargs, delayed=True)
        self.IT = CORblockRT(256, 512, 3, 2, neuron, kwargs, delayed=True)
        self.avgpool = SeqAdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        self.scoring_layers = ["V1", "V2", "V4", "IT", "avgpool"]

    def forward(self, x: Tensor) -> Tensor:
        self.prepare(x)
        for area in (self.V1, self.V2, self.V4, self.IT):
            x = area(x)
        return self.fc(self.avgpool(x).flatten(2))


@register_model
def cornet_rt(**kwargs) -> CORnetRT:
    """CORnet-RT (ReLU)."""
    return CORnetRT(**kwargs)


@register_model
def s_cornet(**kwargs) -> CORnetRT:
    """Spiking CORnet-RT: LIF neurons (tau 2) instead of ReLU."""
    kwargs.setdefault("neuron", "lif")
    return CORnetRT(**kwargs)
