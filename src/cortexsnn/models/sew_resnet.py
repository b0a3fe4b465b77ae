"""SEW-ResNet (Fang et al., NeurIPS 2021) and Spiking ResNet, with the shallow variants of the
brain-similarity paper (Huang et al., AAAI 2023).

Multi-step on ``[T, B, C, H, W]``, output ``[T, B, num_classes]`` (average over T for the
prediction). Layer names follow torchvision / SpikingJelly (``conv1``, ``bn1``, ``sn1``,
``layer1.0.conv1``, ..., ``fc``), so their checkpoints load one to one.

SEW block: ``out = g(A, S)`` with ``A`` the residual branch's spikes and ``S`` the identity
(or the spiking downsample ``SN(BN(conv1x1(x)))``); connect functions as in the paper:
ADD ``A + S``, AND ``A * S``, IAND ``(1 - A) * S`` (SpikingJelly's Bottleneck computes
``A * (1 - S)``, a bug not reproduced here), OR ``A + S - A * S``. No neuron follows ``g``.
Spiking ResNet: ``SN(BN(conv(...)) + downsample(x))``, the neuron after the addition.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from cortexsnn.models.layers import (
    init_weights_,
    SeqAdaptiveAvgPool2d,
    SeqBatchNorm2d,
    SeqConv2d,
    SeqMaxPool2d,
    SpikingModel,
    fire_and_pool,
    make_neuron,
    mark_spike_inputs,
    repeated_over_time,
    run_stage,
    static_stem,
    time_major_to,
)
from cortexsnn.models.registry import register_model

__all__ = ["SEWResNet", "BasicBlock", "Bottleneck", "connect", "CONNECT_FUNCTIONS"]

CONNECT_FUNCTIONS = ("ADD", "AND", "IAND", "OR")


def connect(a: Tensor, s: Tensor, cnf: str) -> Tensor:
    """Spike-element-wise connect function ``g(A, S)`` of the paper."""
    if cnf == "ADD":
        return a + s
    if cnf == "AND":
        return a * s
    if cnf == "IAND":
        return (1.0 - a) * s
    if cnf == "OR":
        return a + s - a * s
    raise ValueError(f"unknown connect function {cnf!r}; choose one of {CONNECT_FUNCTIONS}")


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> SeqConv2d:
    return SeqConv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> SeqConv2d:
    return SeqConv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, cnf: str | None = "ADD",
                 neuron: Callable[[], nn.Module] = make_neuron) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = SeqBatchNorm2d(planes)
        self.sn1 = neuron()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = SeqBatchNorm2d(planes)
        self.sn2 = neuron()
        self.downsample = downsample
        self.cnf = cnf
        if downsample is not None and cnf is not None:
            self.downsample_sn = neuron()

    def forward(self, x: Tensor) -> Tensor:
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return _merge(self, out, x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 1, base_width: int = 64, cnf: str | None = "ADD",
                 neuron: Callable[[], nn.Module] = make_neuron) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = SeqBatchNorm2d(width)
        self.sn1 = neuron()
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = SeqBatchNorm2d(width)
        self.sn2 = neuron()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = SeqBatchNorm2d(planes * self.expansion)
        self.sn3 = neuron()
        self.downsample = downsample
        self.cnf = cnf
        if downsample is not None and cnf is not None:
            self.downsample_sn = neuron()

    def forward(self, x: Tensor) -> Tensor:
        out = self.sn1(self.bn1(self.conv1(x)))
        out = self.sn2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return _merge(self, out, x, last="sn3")


def _merge(block: nn.Module, out: Tensor, x: Tensor, last: str = "sn2") -> Tensor:
    """SEW: spike the branch, then g(A, S); Spiking ResNet (cnf None): add, then spike."""
    final_neuron = getattr(block, last)
    if block.cnf is None:
        identity = x if block.downsample is None else block.downsample(x)
        return final_neuron(out + identity)
    identity = x if block.downsample is None else block.downsample_sn(block.downsample(x))
    return connect(final_neuron(out), identity, block.cnf)


class SEWResNet(SpikingModel):
    """SEW-ResNet / Spiking ResNet backbone.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage.
        planes: channels per stage (before the block expansion).
        strides: stride of each stage's first block.
        cnf: connect function (``"ADD"``, ``"AND"``, ``"IAND"``, ``"OR"``) or ``None`` for Spiking ResNet.
        neuron: ``"if"`` (default), ``"lif"`` or ``"plif"``; ``neuron_kwargs`` go to its constructor.
        num_classes, in_channels, groups, width_per_group, zero_init_residual: as in torchvision.
        stage_prefix: stage names are ``f"{stage_prefix}{i}"`` (``layer1..4`` as in torchvision;
            the shallow models of the similarity paper use ``block1..3``).
        checkpoint_stages: recompute each stage in the backward pass instead of storing its
            activations (activation checkpointing; neuron state and batch-norm statistics are
            restored around the recomputation, so results and gradients are unchanged).

    The membrane state is reset at the start of every ``forward`` unless ``stateful`` is set.
    """

    def __init__(self, block: type, layers: Sequence[int], planes: Sequence[int] = (64, 128, 256, 512),
                 strides: Sequence[int] = (1, 2, 2, 2), cnf: str | None = "ADD", neuron: str = "if",
                 neuron_kwargs: dict | None = None, num_classes: int = 1000, in_channels: int = 3,
                 groups: int = 1, width_per_group: int = 64, stem_channels: int = 64,
                 zero_init_residual: bool = False, stage_prefix: str = "layer",
                 checkpoint_stages: bool = False) -> None:
        super().__init__()
        if cnf is not None and cnf not in CONNECT_FUNCTIONS:
            raise ValueError(f"unknown connect function {cnf!r}; choose one of {CONNECT_FUNCTIONS}")
        if not (len(layers) == len(planes) == len(strides)):
            raise ValueError("layers, planes and strides need one entry per stage")
        kwargs = dict(neuron_kwargs or {})
        self.neuron_type = neuron
        self.cnf = cnf
        self.in_channels = in_channels
        self.checkpoint_stages = checkpoint_stages
        self._neuron = lambda: make_neuron(neuron, **kwargs)
        self.groups, self.base_width = groups, width_per_group
        self.inplanes = stem_channels
        self.conv1 = SeqConv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = SeqBatchNorm2d(stem_channels)
        self.sn1 = self._neuron()
        self.maxpool = SeqMaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stage_names = []
        for index, (count, width, stride) in enumerate(zip(layers, planes, strides), start=1):
            name = f"{stage_prefix}{index}"
            setattr(self, name, self._make_stage(block, width, count, stride))
            self.stage_names.append(name)
        self.avgpool = SeqAdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[-1] * block.expansion, num_classes)
        self.scoring_layers = ["sn1", "maxpool"] + [
            f"{stage}.{i}" for stage, count in zip(self.stage_names, layers) for i in range(count)
        ] + ["avgpool"]
        self._init_weights(zero_init_residual)
        del self._neuron
        if neuron != "relu":  # every convolution after the stem sees spike counts
            mark_spike_inputs(self, exclude=("conv1",))

    def _make_stage(self, block: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), SeqBatchNorm2d(planes * block.expansion)
            )
        stage = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, self.cnf, self._neuron)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            stage.append(block(self.inplanes, planes, 1, None, self.groups, self.base_width, self.cnf, self._neuron))
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        init_weights_(self, norms=(nn.BatchNorm2d, nn.GroupNorm))
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    _stage_formats: dict | None = None

    def set_channels_last(self, image_size: int = 224, min_side: int = 8) -> "SEWResNet":
        """Store the stem and the stages channels-last (NHWC), which oneDNN convolutions on CPUs run
        faster, except stages whose input maps are smaller than ``min_side`` pixels on a side for
        ``image_size`` inputs (there NCHW is faster, e.g. SEW-ResNet-18's last stage at 64 px).

        Activations follow the weights' format (the neurons and pooling keep it); the forward pass
        converts between the two formats where a stage's format differs. Call it before wrapping
        the model in DDP or creating the optimiser. Results equal the NCHW model's up to float
        rounding. Returns the model.
        """
        self.conv1.to(memory_format=torch.channels_last)
        side = -(-image_size // 4)  # after the stride-2 stem convolution and max pooling
        formats = {}
        for name in self.stage_names:
            stage = getattr(self, name)
            fmt = torch.channels_last if side >= min_side else torch.contiguous_format
            stage.to(memory_format=fmt)
            formats[name] = fmt
            first = stage[0]
            stride = first.downsample[0].stride[0] if first.downsample is not None else 1
            side = -(-side // stride)
        self._stage_formats = formats
        return self

    def forward_features(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> pooled features ``[T, B, F]``."""
        self.prepare(x)
        if not repeated_over_time(x):
            x = fire_and_pool(self.sn1, self.maxpool, self.bn1(self.conv1(x)))
        else:  # a static image repeated over T: the stem's conv and BN once, not T times
            x = static_stem(self.conv1, self.bn1, self.sn1, self.maxpool, x)
        formats = self._stage_formats
        for name in self.stage_names:
            if formats is not None:
                x = time_major_to(x, formats[name])
            x = run_stage(getattr(self, name), x, self.checkpoint_stages and self.training)
        return self.avgpool(x).flatten(2)

    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W]`` -> logits ``[T, B, num_classes]``."""
        return self.fc(self.forward_features(x))


_DEPTHS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3]),
           101: (Bottleneck, [3, 4, 23, 3]), 152: (Bottleneck, [3, 8, 36, 3])}


def _resnet(depth: int, cnf: str | None, **kwargs) -> SEWResNet:
    block, layers = _DEPTHS[depth]
    return SEWResNet(block, layers, cnf=cnf, **kwargs)


@register_model
def sew_resnet18(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """SEW-ResNet-18 (IF neurons, ADD by default)."""
    return _resnet(18, cnf, **kwargs)


@register_model
def sew_resnet34(cnf: str = "ADD", **kwargs) -> SEWResNet:
    return _resnet(34, cnf, **kwargs)


@register_model
def sew_resnet50(cnf: str = "ADD", **kwargs) -> SEWResNet:
    return _resnet(50, cnf, **kwargs)


@register_model
def sew_resnet101(cnf: str = "ADD", **kwargs) -> SEWResNet:
    return _resnet(101, cnf, **kwargs)


@register_model
def sew_resnet152(cnf: str = "ADD", **kwargs) -> SEWResNet:
    return _resnet(152, cnf, **kwargs)


@register_model
def spiking_resnet18(**kwargs) -> SEWResNet:
    """Spiking ResNet-18: the neuron after the residual addition (the non-SEW baseline)."""
    return _resnet(18, None, **kwargs)


@register_model
def spiking_resnet34(**kwargs) -> SEWResNet:
    return _resnet(34, None, **kwargs)


@register_model
def spiking_resnet50(**kwargs) -> SEWResNet:
    return _resnet(50, None, **kwargs)


@register_model
def spiking_resnet101(**kwargs) -> SEWResNet:
    return _resnet(101, None, **kwargs)


@register_model
def spiking_resnet152(**kwargs) -> SEWResNet:
    return _resnet(152, None, **kwargs)


# Shallow models of the similarity paper (Huang et al., AAAI 2023): stem, then 3 stages ``block1..3`` of stride 2.
class ResNeXtBlock(nn.Module):
    """The shallow SEW-ResNeXt block of Huang et al. (AAAI 2023): 1x1 -> grouped 3x3 (32 groups) -> 1x1, no expansion.

    The hidden width is the block's input width (x6 for the ``inverted`` variant), halved when the
    block keeps its width.
    """

    expansion = 1
    inverted = False

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 groups: int = 32, base_width: int = 64, cnf: str | None = "ADD",
                 neuron: Callable[[], nn.Module] = make_neuron) -> None:
        super().__init__()
        hidden = inplanes * (6 if self.inverted else 1)
        if inplanes == planes:
            hidden //= 2
        self.conv1 = conv1x1(inplanes, hidden)
        self.bn1 = SeqBatchNorm2d(hidden)
        self.sn1 = neuron()
        self.conv2 = conv3x3(hidden, hidden, stride, groups)
        self.bn2 = SeqBatchNorm2d(hidden)
        self.sn2 = neuron()
        self.conv3 = conv1x1(hidden, planes)
        self.bn3 = SeqBatchNorm2d(planes)
        self.sn3 = neuron()
        self.downsample = downsample
        self.cnf = cnf
        if downsample is not None and cnf is not None:
            self.downsample_sn = neuron()

    forward = Bottleneck.forward


class InvertedResNeXtBlock(ResNeXtBlock):
    inverted = True


def _shallow(block: type, depth_per_stage: int, planes=(128, 256, 512), cnf: str = "ADD", **kwargs) -> SEWResNet:
    kwargs.setdefault("stage_prefix", "block")
    return SEWResNet(block, [depth_per_stage] * 3, planes=planes, strides=(2, 2, 2), cnf=cnf, **kwargs)


@register_model
def sew_resnet8(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """Stem + 3 BasicBlock stages (128/256/512 channels, one block each, stride 2)."""
    return _shallow(BasicBlock, 1, cnf=cnf, **kwargs)


@register_model
def sew_resnet14(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """Stem + 3 BasicBlock stages (128/256/512 channels, two blocks each)."""
    return _shallow(BasicBlock, 2, cnf=cnf, **kwargs)


@register_model
def wide_sew_resnet8(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """sew_resnet8 with 4x the stage channels (512/1024/2048)."""
    return _shallow(BasicBlock, 1, planes=(512, 1024, 2048), cnf=cnf, **kwargs)


@register_model
def wide_sew_resnet14(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """sew_resnet14 with 4x the stage channels (512/1024/2048)."""
    return _shallow(BasicBlock, 2, planes=(512, 1024, 2048), cnf=cnf, **kwargs)


def _resnext(depth_per_stage: int, inverted: bool, cnf: str, **kwargs) -> SEWResNet:
    kwargs.setdefault("groups", 32)
    block = InvertedResNeXtBlock if inverted else ResNeXtBlock
    return _shallow(block, depth_per_stage, planes=(128, 256, 512), cnf=cnf, **kwargs)


@register_model
def sew_resnext11(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """Stem + 3 grouped-bottleneck stages (32 groups, 128/256/512 channels), one block each."""
    return _resnext(1, False, cnf, **kwargs)


@register_model
def sew_resnext20(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """Stem + 3 grouped-bottleneck stages (32 groups, 128/256/512 channels), two blocks each."""
    return _resnext(2, False, cnf, **kwargs)


@register_model
def sew_resnext11_inverted(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """sew_resnext11 with inverted (x6 wider) hidden layers."""
    return _resnext(1, True, cnf, **kwargs)


@register_model
def sew_resnext20_inverted(cnf: str = "ADD", **kwargs) -> SEWResNet:
    """sew_resnext20 with inverted (x6 wider) hidden layers."""
    return _resnext(2, True, cnf, **kwargs)
