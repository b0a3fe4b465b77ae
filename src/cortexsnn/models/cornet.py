"""CORnet-RT (Kubilius et al. 2018) and its spiking version, the movie paper's baselines.

Four areas V1 (7x7, stride 4), V2, V4, IT (3x3, stride 2), 64/128/256/512 channels. Each area:
``inp = ReLU(GN(conv_input(x)))``, ``skip = inp + state``, ``out = ReLU(GN(conv1(skip)))``,
``state = out`` (GroupNorm with 32 groups). Areas talk with a one-step delay: area ``k`` at
step ``t`` receives area ``k-1``'s output of step ``t-1`` (zeros, without ``conv_input``, at
``t = 0``); V1 receives the frame of step ``t``. The readout averages IT spatially and applies a
linear layer at every step. ``s_cornet`` replaces every ReLU with a LIF neuron (tau 2).

Because of the delay, each area can run over the whole sequence before the next one starts, so
every area is one module call on ``[T, B, C, H, W]`` (hooks see the whole sequence). Huang et al.'s
readout is ``decoder.{avgpool, flatten, linear}``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from cortexsnn.models.layers import SeqAdaptiveAvgPool2d, SpikingModel, init_weights_, make_neuron
from cortexsnn.neurons import MemoryModule
from cortexsnn.models.registry import register_model

__all__ = ["CORnetRT", "CORblockRT"]


class CORblockRT(MemoryModule):
    """One CORnet-RT area over a whole sequence.

    State (a :class:`~cortexsnn.neurons.MemoryModule`): ``state``, the area's last output, and
    ``last_input``, the input area's last output (what this area receives at the next step
    because of the one-step delay). Both carry over to the next call of a stateful model, so a
    movie fed in chunks is one continuous sequence; :func:`cortexsnn.neurons.reset` clears them.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, neuron: str, neuron_kwargs: dict,
                 delayed: bool) -> None:
        super().__init__()
        self.conv_input = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.nonlin_input = make_neuron(neuron, **neuron_kwargs)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, cout)
        self.nonlin1 = make_neuron(neuron, **neuron_kwargs)
        self.output = nn.Identity()  # Huang et al.'s hook point, kept for its layer names
        self.stride, self.cout, self.delayed = stride, cout, delayed
        self.register_memory("state", None)
        self.register_memory("last_input", None)

    def _drive(self, x_t: Tensor) -> Tensor:
        return self.nonlin_input(self.norm_input(self.conv_input(x_t)).unsqueeze(0))[0]

    def _out_size(self, size: int) -> int:
        return (size + 2 * self.conv_input.padding[0] - self.conv_input.kernel_size[0]) // self.stride + 1

    def forward(self, x: Tensor) -> Tensor:
        """``x [T, B, C, H, W]``: the previous area's outputs (or the frames, for V1)."""
        steps, batch, _, height, width = x.shape
        state = 0.0 if self.state is None else self.state
        if isinstance(state, Tensor) and state.shape[0] != batch:
            raise ValueError(f"{type(self).__name__} holds the state of a batch of {state.shape[0]}, got {batch}; "
                             "call cortexsnn.neurons.reset(model) between batches")
        outputs = []
        for t in range(steps):
            if not self.delayed:
                drive = self._drive(x[t])
            elif t > 0:
                drive = self._drive(x[t - 1])
            elif self.last_input is not None:  # the input area's last output of the previous chunk
                drive = self._drive(self.last_input)
            else:  # nothing has arrived yet: zeros, without the input convolution
                drive = x.new_zeros(batch, self.cout, self._out_size(height), self._out_size(width))
            state = self.nonlin1(self.norm1(self.conv1(drive + state)).unsqueeze(0))[0]
            outputs.append(state)
        self.state = state
        self.last_input = x[-1] if self.delayed else None
        return self.output(torch.stack(outputs))


class CORnetRT(SpikingModel):
    """CORnet-RT over ``[T, B, C, H, W]`` (one frame per step), output ``[T, B, num_classes]``.

    ``neuron="relu"`` is CORnet-RT, ``"lif"`` the spiking CORnet (tau 2). State-dict keys follow
    Huang et al.'s code (``V1.conv_input``, ``V1.norm_input``, ``V1.conv1``, ``V1.norm1``, ...,
    ``decoder.linear``). Every ``forward`` starts from the initial state unless ``stateful`` is
    set (movies in chunks: reset once before the first chunk).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, neuron: str = "relu",
                 neuron_kwargs: dict | None = None) -> None:
        super().__init__()
        kwargs = dict(neuron_kwargs or ({"tau": 2.0} if neuron == "lif" else {}))
        self.in_channels = in_channels
        self.V1 = CORblockRT(in_channels, 64, 7, 4, neuron, kwargs, delayed=False)
        self.V2 = CORblockRT(64, 128, 3, 2, neuron, kwargs, delayed=True)
        self.V4 = CORblockRT(128, 256, 3, 2, neuron, kwargs, delayed=True)
        self.IT = CORblockRT(256, 512, 3, 2, neuron, kwargs, delayed=True)
        self.decoder = nn.Sequential(OrderedDict([
            ("avgpool", SeqAdaptiveAvgPool2d((1, 1))), ("flatten", nn.Flatten(2)), ("linear", nn.Linear(512, num_classes)),
        ]))
        self.scoring_layers = ["V1", "V2", "V4", "IT", "decoder.avgpool"]
        init_weights_(self, norms=())

    def forward(self, x: Tensor) -> Tensor:
        self.prepare(x)
        for area in (self.V1, self.V2, self.V4, self.IT):
            x = area(x)
        return self.decoder(x)


@register_model
def cornet_rt(**kwargs) -> CORnetRT:
    """CORnet-RT (ReLU), the movie paper's re-implementation."""
    return CORnetRT(**kwargs)


@register_model
def s_cornet(**kwargs) -> CORnetRT:
    """Spiking CORnet-RT: LIF neurons (tau 2) instead of ReLU."""
    kwargs.setdefault("neuron", "lif")
    return CORnetRT(**kwargs)
