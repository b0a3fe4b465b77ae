"""A converted network: the ANN's graph with its activations replaced by spiking neurons.

:class:`ConvertedSNN` is a multi-step SNN on time-major tensors: ``snn(x)`` takes ``[T, B, ...]``
(an image repeated over ``T`` for static stimuli: the first layer then receives the image as a
constant current, the usual input of converted networks) and returns the network output at every
step ``[T, B, ...]``. The rate read-out of the classifier is the running mean over steps
(:func:`rate_readout`). Every activation call site of the ANN is a :class:`RateIFNeuron`; between
them the ANN's own (batch-norm-folded) linear layers run unchanged on ``k`` steps at once (``k`` =
``time_chunk``), which is exact because they act on each step alone.

The same network runs in **analog mode** (:meth:`ConvertedSNN.analog`): each neuron computes the
ANN's activation instead of spiking, so the converted graph *is* the ANN; calibration and fidelity
checks compare the two modes of one object.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import torch
from torch import Tensor, fx, nn

from cortexsnn.conversion.errors import ConversionError
from cortexsnn.conversion.modules import ChunkedModule, Probe, RateIFNeuron

__all__ = ["ConvertedSNN", "rate_readout"]

log = logging.getLogger(__name__)


class _Tap(nn.Module):
    """Called by the graph after a recorded node: hands the value to that layer's probe."""

    def __init__(self) -> None:
        super().__init__()
        self.probes: list[Probe] = []  # registered on the ConvertedSNN, not here (one owner per module)

    def forward(self, value: Tensor, index: int) -> Tensor:
        self.probes[index](value)
        return value


class ConvertedSNN(nn.Module):
    """A spiking network made from a trained ANN by :func:`~cortexsnn.conversion.convert`.

    Attributes:
        network: the traced graph (``torch.fx.GraphModule``) with neurons in place of activations.
        neurons: the neuron layers in execution order, named after the ANN's activation call sites.
        scoring_layers: the recorded layers (the ANN's module paths; probes at those paths).
        time_chunk: steps run at once by the linear layers (memory vs speed).
        info: how the network was converted (method, thresholds, calibration), JSON-able.
    """

    def __init__(self, network: fx.GraphModule, neurons: dict[str, RateIFNeuron], layers: Sequence[str],
                 time_chunk: int = 8, channels_last: bool = False) -> None:
        super().__init__()
        self.scoring_layers = list(layers)
        for name in self.scoring_layers:  # the probes first: named_modules() then finds them at the ANN's paths
            self._place_probe(name)
        self.network = network
        self.neuron_names = list(neurons)
        self.time_chunk = int(time_chunk)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.network.to(memory_format=torch.channels_last)
        self.info: dict = {}
        self._analog = False

    def _place_probe(self, path: str) -> None:
        parent: nn.Module = self
        parts = path.split(".")
        for part in parts[:-1]:
            if not hasattr(parent, part) or not isinstance(getattr(parent, part), nn.Module):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        existing = getattr(parent, parts[-1], None)
        probe = Probe()
        if isinstance(existing, nn.Module):  # a container made for a deeper path: keep its children
            for child_name, child in existing.named_children():
                probe.add_module(child_name, child)
        parent.add_module(parts[-1], probe)

    @property
    def neurons(self) -> list[RateIFNeuron]:
        return [self.network.get_submodule(n) for n in self.neuron_names]

    def probe(self, name: str) -> Probe:
        return self.get_submodule(name)

    @property
    def is_analog(self) -> bool:
        return self._analog

    @contextlib.contextmanager
    def analog(self) -> Iterator["ConvertedSNN"]:
        """Within the block, neurons compute the ANN's activations (one step, no state)."""
        old = self._analog
        self._set_analog(True)
        try:
            yield self
        finally:
            self._set_analog(old)

    def _set_analog(self, flag: bool) -> None:
        self._analog = flag
        for module in self.modules():
            if isinstance(module, ChunkedModule):
                module.analog = flag

    def forward(self, x: Tensor) -> Tensor:
        """``[T, B, ...]`` in, the network output at every step ``[T, B, ...]`` out (state carries over
        between calls until :func:`cortexsnn.neurons.reset`)."""
        if x.dim() < 2:
            raise ConversionError(f"a converted network takes time-major input [T, B, ...], got shape {tuple(x.shape)}")
        steps = x.shape[0]
        if self._analog:
            out = self._run(x.flatten(0, 1), steps)
            return out.reshape(steps, x.shape[1], *out.shape[1:])
        outputs = []
        for start in range(0, steps, self.time_chunk):
            chunk = x[start:start + self.time_chunk]
            k = chunk.shape[0]
            out = self._run(chunk.flatten(0, 1), k)
            outputs.append(out.reshape(k, x.shape[1], *out.shape[1:]))
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    def _run(self, flat: Tensor, steps: int) -> Tensor:
        if self.channels_last and flat.dim() == 4:
            flat = flat.contiguous(memory_format=torch.channels_last)
        for module in self.modules():
            if isinstance(module, ChunkedModule):
                module.steps = steps
        out = self.network(flat)
        if not isinstance(out, Tensor):
            raise ConversionError(f"the converted network returned {type(out).__name__}; only networks with one "
                                  "tensor output are supported")
        return out

    def extra_repr(self) -> str:
        return f"neurons={len(self.neuron_names)}, time_chunk={self.time_chunk}"


def rate_readout(outputs: Tensor) -> Tensor:
    """Running mean over steps of per-step outputs ``[T, B, ...]``: entry ``t`` is the read-out after
    ``t + 1`` steps (the converted classifier's logits at that time)."""
    steps = torch.arange(1, outputs.shape[0] + 1, dtype=outputs.dtype, device=outputs.device)
    return outputs.cumsum(0) / steps.reshape(-1, *([1] * (outputs.dim() - 1)))
