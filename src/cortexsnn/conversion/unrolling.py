"""Recurrent, time-major ANNs made convertible: unrolled over ``K`` steps into a feed-forward graph.

The converter takes a static network on ``[B, C, H, W]`` that ``torch.fx`` can trace. A recurrent
network of the zoo (LoRaFB-CNet, ``lorafb_cnet18``: the LoRaFB-SNet wiring of Huang et al., NeurIPS
2024, with ReLU instead of every neuron) takes time-major input ``[T, B, C, H, W]`` and carries
state from one step to the next, in a Python loop that fx cannot trace. For images it is used with
the image repeated over ``T``; :func:`unroll` writes that use out for ``K`` steps:

* the network's step ``t`` becomes ``K`` copies of its layers (the same modules called ``K`` times,
  so the weights are shared); the state before the first step is zero, as after
  :func:`cortexsnn.neurons.reset`;
* the output is the **mean over the K steps** of the per-step output, the zoo's read-out of a
  time-major network on a static image (the trainer classifies ``model(x).mean(0)``, and
  :func:`~cortexsnn.similarity.features.extract_features` in static mode averages every layer over
  ``T``). So ``unroll(model, K)(x)`` equals ``model(x.expand(K, *x.shape)).mean(0)`` in evaluation
  mode (to float rounding: 1e-10 in float64, about 1e-6 relative in float32). In evaluation mode the
  original's shortcuts change nothing: the stem computed once for a repeated image
  (``repeated_over_time``, ``conv_bn_static``) is the stem at every step, and batch norm with
  ``per_step`` uses its running statistics like any other; every forward starts from the zero
  state (``prepare`` resets it), and a ``stateful`` model is refused;
* every scored layer is recorded at a :class:`StepMean` of its ``K`` copies
  (:attr:`Unrolled.recorded_paths`), so the features of the unrolled network, and of the spiking
  network converted from it, are the time-averaged features of the original.

In the converted SNN each copy of an activation is its own layer of neurons with its own
calibrated thresholds (the converter makes one neuron layer per call site). The SNN then runs
its own time: each SNN step runs all ``K`` unrolled steps, and its rate read-out approaches the
unrolled ANN's output as the SNN's ``T`` grows.

A model family is made unrollable by :func:`register_unroller`; LoRaFB-SNet's ReLU variant is
registered here. Its spiking variant (``lorafb_snet18``) is already an SNN and is refused.
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Callable, TypeVar

import torch
from torch import Tensor, nn

from cortexsnn.conversion.errors import ConversionError
from cortexsnn.conversion.graph import register_linear_module
from cortexsnn.models.layers import (
    SeqAdaptiveAvgPool2d,
    SeqBatchNorm2d,
    SeqConv2d,
    SeqConvTranspose2d,
    SeqGroupNorm,
    SeqMaxPool2d,
    SeqReLU,
    SpikingModel,
)
from cortexsnn.models.lorafb import LoRaFBSNet, RecurrentStage
from cortexsnn.neurons import MemoryModule

__all__ = ["DEFAULT_UNROLL_STEPS", "StepMean", "ZeroState", "Unrolled", "UnrolledLoRaFB", "register_unroller",
           "is_time_major", "unroll"]

log = logging.getLogger(__name__)

#: ``K`` when none is given: the ``T`` at which the zoo scores time-major networks on static images
#: (``extract_features(..., mode="static")``'s default ``time_steps``, and ``cortexsnn demo``).
DEFAULT_UNROLL_STEPS = 4

#: The zoo's time-major layers and their torch base classes. They only fold time into the batch;
#: an unrolled network runs one step at a time on ``[B, ...]``, where the torch class computes the
#: same (``SeqConv2d``'s tiny-map path sums in another order: the last bits differ).
_TORCH_LAYERS: dict[type, type] = {
    SeqConv2d: nn.Conv2d, SeqBatchNorm2d: nn.BatchNorm2d, SeqMaxPool2d: nn.MaxPool2d,
    SeqAdaptiveAvgPool2d: nn.AdaptiveAvgPool2d, SeqConvTranspose2d: nn.ConvTranspose2d, SeqReLU: nn.ReLU,
    SeqGroupNorm: nn.GroupNorm,
}


@register_linear_module
class StepMean(nn.Module):
    """The mean of one layer's outputs at the ``K`` unrolled steps (a linear map of its inputs)."""

    def forward(self, *steps: Tensor) -> Tensor:
        total = steps[0]
        for value in steps[1:]:
            total = total + value
        return total / len(steps)


@register_linear_module
class ZeroState(nn.Module):
    """A recurrent stage's output before the first step (zero), shaped from the stage's input.

    ``[B, C_in, H, W] -> zeros [B, channels, ceil(H / stride), ceil(W / stride)]``; the zero is a
    constant the rate code carries (no spikes).
    """

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.stride = int(stride)

    def forward(self, x: Tensor) -> Tensor:
        height, width = (math.ceil(s / self.stride) for s in x.shape[-2:])
        return x.new_zeros(x.shape[0], self.channels, height, width)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"


class Unrolled(nn.Module):
    """A recurrent time-major network unrolled over ``steps`` on a static image (see the module docstring).

    Attributes:
        steps: ``K``, the unrolled steps.
        source: the class name of the unrolled network.
        scoring_layers: the original's scored layers (the same module paths).
        recorded_paths: ``{scored layer: module path of its time-averaged output}`` in this module,
            for layers whose output differs between steps (the converter and
            :func:`~cortexsnn.conversion.measure_fidelity` record there).
    """

    def __init__(self, steps: int, source: str) -> None:
        super().__init__()
        self.steps = int(steps)
        self.source = source
        self.scoring_layers: list[str] = []
        self.recorded_paths: dict[str, str] = {}
        self.step_means = nn.ModuleDict()

    def _add_step_mean(self, layer: str) -> None:
        """Record ``layer`` at a new :class:`StepMean` of its outputs at the ``K`` steps."""
        key = layer.replace(".", "-")
        self.step_means[key] = StepMean()
        self.recorded_paths[layer] = f"step_means.{key}"

    def _step_mean(self, layer: str) -> StepMean:
        return self.step_means[layer.replace(".", "-")]

    def extra_repr(self) -> str:
        return f"source={self.source}, steps={self.steps}"


Unroller = Callable[[nn.Module, int], Unrolled]
_UNROLLERS: dict[type, Unroller] = {}
U = TypeVar("U", bound=Unroller)


def register_unroller(cls: type) -> Callable[[U], U]:
    """Declare ``fn(model, steps) -> Unrolled`` the unroller of ``cls`` (and of its subclasses that keep
    its ``forward``)."""
    def decorate(fn: U) -> U:
        _UNROLLERS[cls] = fn
        return fn
    return decorate


def _unroller(model: nn.Module) -> Unroller | None:
    """The unroller registered for ``model``'s class or a base class whose ``forward`` it keeps."""
    for cls in type(model).__mro__:
        if cls in _UNROLLERS:
            if type(model).forward is not cls.forward:
                raise ConversionError(
                    f"{type(model).__name__} overrides the forward of {cls.__name__}, whose unroller would not compute "
                    f"it; register an unroller for {type(model).__name__} (cortexsnn.conversion.register_unroller)")
            return _UNROLLERS[cls]
    return None


def is_time_major(model: nn.Module) -> bool:
    """Whether ``model`` takes time-major input ``[T, B, ...]`` (a zoo SNN or a registered recurrent ANN),
    i.e. is not a static network the converter can trace as it is."""
    return _unroller(model) is not None or isinstance(model, SpikingModel)


def unroll(model: nn.Module, steps: int = DEFAULT_UNROLL_STEPS) -> Unrolled:
    """``model`` (time-major, recurrent) unrolled over ``steps`` on a static image: an fx-traceable
    module on ``[B, C, H, W]`` whose output is ``model(x.expand(steps, *x.shape)).mean(0)`` (in
    evaluation mode, from the initial state). The model itself is left unchanged (the unrolled
    network holds a copy of its layers).

    Raises:
        ConversionError: ``steps < 1``; a model with no registered unroller; a model whose layers
            cannot be unrolled into an ANN (spiking neurons, a state carried between calls).
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConversionError(f"unroll steps must be a positive integer, got {steps!r}")
    fn = _unroller(model)
    if fn is None:
        raise ConversionError(
            f"{type(model).__name__} takes time-major input [T, B, ...] and has no unroller: the converter needs a "
            "network on [B, C, H, W]; convert a static network, or register one with "
            "cortexsnn.conversion.register_unroller")
    if getattr(model, "stateful", False):
        raise ConversionError(f"{type(model).__name__} is stateful (its output depends on the state of earlier calls); "
                              "the unrolled network starts from the initial state: set model.stateful = False")
    unrolled = fn(model, steps)
    log.info("unrolled %s over %d steps", type(model).__name__, steps)
    return unrolled.eval()


def _static_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in evaluation mode whose zoo time-major layers are their torch classes."""
    twin = copy.deepcopy(model).eval()
    for module in twin.modules():
        plain = _TORCH_LAYERS.get(type(module))
        if plain is not None:
            module.__class__ = plain  # same attributes and parameters: the subclass adds behaviour only
    return twin


def _check_relu(model: nn.Module) -> None:
    """Refuse neurons: only ReLU networks are ANNs (``nn.ReLU`` / ``SeqReLU``)."""
    for name, module in model.named_modules():
        if isinstance(module, MemoryModule) and not isinstance(module, RecurrentStage):
            raise ConversionError(
                f"layer {name!r} of {type(model).__name__} is a {type(module).__name__} (a spiking neuron): this "
                "network is already an SNN. Only its ReLU variant is an ANN that converts (e.g. lorafb_cnet18 "
                "rather than lorafb_snet18)")


class UnrolledLoRaFB(Unrolled):
    """:class:`~cortexsnn.models.lorafb.LoRaFBSNet` with ReLU (LoRaFB-CNet) unrolled over ``K`` steps.

    The stem runs once (its input, the image, is the same at every step). Each stage ``l`` at step
    ``t``: ``R = O[t-1]`` (stride 1) or ``ReLU(BN(DWT(O[t-1])))``, ``A = ReLU(BN(conv1x1([x[t], R])))``,
    ``O[t] = blocks(A)``, with ``O[-1] = 0``. The classifier reads the mean of the last stage's
    pooled output over the ``K`` steps (the mean of the per-step logits, since ``fc`` is affine).
    Module paths are the original's; the scored blocks and ``avgpool`` are recorded at step means.
    """

    def __init__(self, model: LoRaFBSNet, steps: int) -> None:
        super().__init__(steps, type(model).__name__)
        _check_relu(model)
        twin = _static_copy(model)
        for name in ("conv1", "bn1", "sn1", "maxpool", *twin.stage_names, "avgpool", "fc"):
            self.add_module(name, getattr(twin, name))
        self.stage_names = list(twin.stage_names)
        self.scoring_layers = list(model.scoring_layers)
        self.initial_states = nn.ModuleDict({
            name: ZeroState(getattr(twin, name).c_out, getattr(twin, name).stride) for name in self.stage_names})
        for layer in self.scoring_layers:  # the scored layers inside the loop over steps
            if layer.startswith(tuple(f"{name}." for name in self.stage_names)):
                self._add_step_mean(layer)
        self._add_step_mean("avgpool")  # the classifier's input, recorded there too

    def _stage_step(self, name: str, x_t: Tensor, previous: Tensor, seen: dict[str, list[Tensor]]) -> Tensor:
        stage = getattr(self, name)
        feedback = previous
        if stage.stride > 1:
            feedback = stage.sn1(stage.bn1(stage.dwconv(previous, output_size=x_t.shape[-2:])))
        # conv1x1 of the concatenation (LoRaFB-SNet's definition; the zoo sums two half convolutions)
        out = stage.sn(stage.bn(stage.pwconv(torch.cat([x_t, feedback], 1))))
        for index, block in enumerate(stage.sub_module):
            out = block(out)
            seen.setdefault(f"{name}.sub_module.{index}", []).append(out)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W]`` -> the mean over the ``K`` steps of the logits ``[B, num_classes]``."""
        stem = self.maxpool(self.sn1(self.bn1(self.conv1(x))))
        inputs = [stem] * self.steps
        seen: dict[str, list[Tensor]] = {}
        for name in self.stage_names:
            previous = self.initial_states[name](inputs[0])
            outputs = []
            for t in range(self.steps):
                previous = self._stage_step(name, inputs[t], previous, seen)
                outputs.append(previous)
            inputs = outputs
        for layer, values in seen.items():
            if layer in self.recorded_paths:
                self._step_mean(layer)(*values)
        pooled = self._step_mean("avgpool")(*[self.avgpool(o) for o in inputs])
        return self.fc(pooled.flatten(1))


@register_unroller(LoRaFBSNet)
def _unroll_lorafb(model: nn.Module, steps: int) -> Unrolled:
    return UnrolledLoRaFB(model, steps)
