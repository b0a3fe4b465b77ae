"""LoRaFB-SNet: SEW-ResNet with long-range feedback (Huang et al., NeurIPS 2024).

Each stage ``l`` is wrapped in a recurrent container; the feedback runs from the stage's output
at ``t - 1`` back to the same stage's input at ``t`` (``O[-1] = 0``):

* feedback, stages 2-4: ``R[t] = LIF(BN(DWT(O[t-1])))``, DWT a depthwise transposed 3x3
  convolution with stride 2 (x2 upsampling back to the stage's input resolution);
* feedback, stage 1 (stride 1): ``R[t] = O[t-1]``;
* fusion: ``A[t] = LIF(BN(conv1x1([x[t], R[t]])))`` mapping ``C_in + C_out -> C_in``;
* ``O[t] = Stage(A[t])`` (the SEW blocks, stepped inside the time loop).

Neurons are LIF with tau 2 (``decay_input``, hard reset, ATan, ``detach_reset``).
``lorafb_cnet18`` has the same wiring with ReLU instead of every neuron (the no-spike ablation).
State-dict keys follow Huang et al.'s code: ``recurrent_layerK.sub_module.*``, ``recurrent_layerK.pwconv``,
``recurrent_layerK.bn``, and for K > 1 ``recurrent_layerK.dwconv`` / ``recurrent_layerK.bn1``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cortexsnn.models.layers import (
    init_weights_,
    SeqAdaptiveAvgPool2d,
    SeqBatchNorm2d,
    SeqConv2d,
    SpikingModel,
    conv_bn_static,
    fire_and_pool,
    make_neuron,
    repeated_over_time,
    run_stage,
)
from cortexsnn.neurons import MemoryModule
from cortexsnn.models.registry import register_model
from cortexsnn.models.sew_resnet import _DEPTHS, BasicBlock, SEWResNet

__all__ = ["RecurrentStage", "LoRaFBSNet"]


class RecurrentStage(MemoryModule):
    """One stage with its long-range feedback loop (see the module docstring).

    The stage's last output is state (``y``): with a stateful model it carries over to the next
    call, so a movie fed in chunks is one continuous sequence; :func:`cortexsnn.neurons.reset`
    clears it (``O[-1] = 0``).
    """

    def __init__(self, sub_module: nn.Sequential, c_in: int, c_out: int, stride: int,
                 neuron: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.sub_module = sub_module
        self.stride = stride
        self.c_out = c_out
        self.pwconv = SeqConv2d(c_in + c_out, c_in, 1, bias=False)
        self.bn = SeqBatchNorm2d(c_in)
        self.sn = neuron()
        if stride > 1:
            self.dwconv = nn.ConvTranspose2d(c_out, c_out, 3, stride=stride, padding=1, output_padding=stride - 1,
                                             groups=c_out, bias=False)
            self.bn1 = SeqBatchNorm2d(c_out)
            self.sn1 = neuron()
        self.register_memory("y", None)

    def _feedback(self, previous: Tensor, size: tuple[int, int]) -> Tensor:
        if self.stride == 1:
            return previous
        # output_size crops the x2 upsampling to odd input sizes (Huang et al.'s code supports even sizes only)
        up = self.dwconv(previous, output_size=list(size))
        return self.sn1(self.bn1(up.unsqueeze(0)))[0]

    def _step(self, x_t: Tensor, previous: Tensor) -> Tensor:
        feedback = self._feedback(previous, tuple(x_t.shape[-2:]))
        # conv1x1(concat[x, R]) as the sum of two 1x1 convolutions over the weight's two halves:
        # the same result, without a concatenated copy kept for the backward pass at every step
        weight = self.pwconv.weight
        c_in = x_t.shape[1]
        mixed = F.conv2d(x_t, weight[:, :c_in]) + F.conv2d(feedback, weight[:, c_in:])
        fused = self.sn(self.bn(mixed.unsqueeze(0)))
        return self.sub_module(fused)[0]

    def forward(self, x: Tensor) -> Tensor:
        """``x [T, B, C_in, H, W]`` (the previous stage's outputs) -> ``[T, B, C_out, H', W']``."""
        steps, batch, _, height, width = x.shape
        previous = self.y
        if previous is None:
            previous = x.new_zeros(batch, self.c_out, math.ceil(height / self.stride), math.ceil(width / self.stride))
        elif previous.shape[0] != batch:
            raise ValueError(f"the stage holds the state of a batch of {previous.shape[0]}, got {batch}; "
                             "call cortexsnn.neurons.reset(model) between batches")
        outputs = []
        for t in range(steps):
            previous = self._step(x[t], previous)
            outputs.append(previous)
        self.y = previous
        return torch.stack(outputs)


class LoRaFBSNet(SpikingModel):
    """SEW-ResNet backbone (LIF, tau 2) with a long-range feedback loop around every stage.

    Args:
        depth: 18, 34, 50, 101 or 152.
        cnf: connect function of the SEW blocks; ``None`` gives plain residual blocks with the
            neuron after the addition (LoRaFB-CNet: ``neuron="relu"``, ``cnf=None``).
        neuron, neuron_kwargs: the neuron of every layer (``"lif"`` with tau 2 by default).
        checkpoint_stages: recompute each stage's activations in the backward pass (for long
            clips, e.g. T = 16 at 224 px), with the state restored around the recomputation.

    Input ``[T, B, C, H, W]`` (an image repeated over T, or T video frames), output
    ``[T, B, num_classes]``. Every ``forward`` starts from the initial state unless ``stateful``
    is set; for a movie fed in chunks set ``model.stateful = True`` and call
    :func:`cortexsnn.neurons.reset` once before the first chunk. In training, batch norm takes
    its statistics per time step, as Huang et al.'s single-step network does.
    """

    def __init__(self, depth: int = 18, cnf: str | None = "ADD", neuron: str = "lif", neuron_kwargs: dict | None = None,
                 num_classes: int = 1000, in_channels: int = 3, checkpoint_stages: bool = False) -> None:
        super().__init__()
        if depth not in _DEPTHS:
            raise ValueError(f"LoRaFB-SNet depth must be one of {sorted(_DEPTHS)}, got {depth}")
        kwargs = {"tau": 2.0} if neuron == "lif" else {}
        kwargs.update(neuron_kwargs or {})
        block, layers = _DEPTHS[depth]
        backbone = SEWResNet(block, layers, cnf=cnf, neuron=neuron, neuron_kwargs=kwargs,
                             num_classes=num_classes, in_channels=in_channels)
        make = lambda: make_neuron(neuron, **kwargs)  # noqa: E731
        self.in_channels = in_channels
        self.checkpoint_stages = checkpoint_stages
        backbone.bn1.per_step = True
        self.conv1, self.bn1, self.sn1, self.maxpool = backbone.conv1, backbone.bn1, backbone.sn1, backbone.maxpool
        c_in = 64
        self.stage_names = []
        for index, stride in enumerate((1, 2, 2, 2), start=1):
            stage = getattr(backbone, f"layer{index}")
            c_out = stage[-1].conv2.out_channels if block is BasicBlock else stage[-1].conv3.out_channels
            name = f"recurrent_layer{index}"
            setattr(self, name, RecurrentStage(stage, c_in, c_out, stride, make))
            self.stage_names.append(name)
            c_in = c_out
        self.avgpool = SeqAdaptiveAvgPool2d((1, 1))
        self.fc = backbone.fc
        self.scoring_layers = ["sn1", "maxpool"] + [
            f"{name}.sub_module.{i}" for name, count in zip(self.stage_names, layers) for i in range(count)
        ] + ["avgpool"]
        init_weights_(self, convs=(nn.Conv2d, nn.ConvTranspose2d), norms=(), trainable_only=True)

    def forward_features(self, x: Tensor) -> Tensor:
        self.prepare(x)
        if not repeated_over_time(x):
            x = self.bn1(self.conv1(x))
        else:  # an image repeated over T: the stem's conv and BN once, not T times (exact)
            x = conv_bn_static(self.conv1, self.bn1, x)
        x = fire_and_pool(self.sn1, self.maxpool, x)
        for name in self.stage_names:
            x = run_stage(getattr(self, name), x, self.checkpoint_stages and self.training)
        return self.avgpool(x).flatten(2)

    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` (an image repeated over T, or T video frames) -> ``[T, B, num_classes]``."""
        return self.fc(self.forward_features(x))


def _lorafb(depth: int, **kwargs) -> LoRaFBSNet:
    return LoRaFBSNet(depth=depth, **kwargs)


@register_model
def lorafb_snet18(**kwargs) -> LoRaFBSNet:
    """LoRaFB-SNet-18 (LIF tau 2, ADD)."""
    return _lorafb(18, **kwargs)


@register_model
def lorafb_snet34(**kwargs) -> LoRaFBSNet:
    return _lorafb(34, **kwargs)


@register_model
def lorafb_snet50(**kwargs) -> LoRaFBSNet:
    return _lorafb(50, **kwargs)


@register_model
def lorafb_snet101(**kwargs) -> LoRaFBSNet:
    return _lorafb(101, **kwargs)


@register_model
def lorafb_snet152(**kwargs) -> LoRaFBSNet:
    return _lorafb(152, **kwargs)


@register_model
def lorafb_cnet18(**kwargs) -> LoRaFBSNet:
    """LoRaFB-CNet-18: the same wiring with ReLU and plain residual blocks (the no-spike ablation)."""
    kwargs.setdefault("neuron", "relu")
    kwargs.setdefault("cnf", None)
    return _lorafb(18, **kwargs)
