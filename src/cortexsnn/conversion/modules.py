"""The stateful parts of a converted network: neurons, gated max pooling, layer probes.

Inside a converted network every tensor between two neurons is a batch of ``k * B`` samples: a
chunk of ``k`` time steps of ``B`` stimuli, flattened so that each linear layer runs once per
chunk. The stateful modules view it as ``[k, B, ...]`` (time-major), run their dynamics step by
step, and flatten again. :class:`~cortexsnn.conversion.network.ConvertedSNN` tells them ``k``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cortexsnn.neurons.base import MemoryModule
from cortexsnn.neurons.functional.rate_if import rate_if_multistep

__all__ = ["ChunkedModule", "RateIFNeuron", "GatedMaxPool", "Probe"]


class ChunkedModule(MemoryModule):
    """A module that sees ``[k * B, ...]`` and knows ``k`` (set by the network before each chunk)."""

    def __init__(self) -> None:
        super().__init__(step_mode="m")
        self.steps = 1
        self.analog = False  # compute the ANN's operation instead (see ConvertedSNN.analog)

    def _time_major(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.steps:
            raise ValueError(f"{type(self).__name__}: a batch of {x.shape[0]} is not {self.steps} steps x B")
        return x.reshape(self.steps, x.shape[0] // self.steps, *x.shape[1:])


class RateIFNeuron(ChunkedModule):
    """Integrate-and-fire neurons replacing one activation call site of the ANN.

    Thresholds are per channel (dim 1 of the input) or one per layer; the neuron outputs
    ``threshold * spike``, i.e. the spike's weight is carried by the next layer's synapses, so the
    downstream weights of the ANN are used unchanged. ``bias`` is an extra constant input current
    per channel (set by the layer-wise calibration; zero otherwise); ``max_spikes`` the most spikes per
    step (bursts; 1 for classic IF neurons).

    Buffers ``threshold``, ``bias`` and ``max_spikes`` are persistent (a converted network saves and loads with its
    state dict); the potential and the spike count are state, reset between stimuli.
    """

    def __init__(self, channels: int, upper: float | None = None, signed: bool = True,
                 initial_potential: float = 0.5) -> None:
        super().__init__()
        self.upper = upper
        self.signed = bool(signed)
        self.initial_potential = float(initial_potential)
        self.register_buffer("threshold", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("max_spikes", torch.ones(channels))
        self.register_memory("v", None)
        self.register_memory("count", None)

    def _per_channel(self, value: Tensor, x: Tensor) -> Tensor:
        return value.reshape(1, -1, *([1] * (x.dim() - 2))).to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if self.analog:
            return x.clamp(0.0, self.upper) if self.upper is not None else x.clamp_min(0.0)
        seq = self._time_major(x)
        if self.v is None:
            theta = self._per_channel(self.threshold, x)
            self.v = torch.empty_like(seq[0]).copy_((self.initial_potential * theta).expand(seq.shape[1:]))
            self.count = torch.zeros_like(seq[0])
        theta, bias, top = self._constants(seq[0])
        spikes, self.v, self.count = rate_if_multistep(seq, self.v, self.count, theta, bias, top, signed=self.signed,
                                                       weighted=True)
        return spikes.reshape(x.shape)

    def _constants(self, step: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Threshold, bias and burst size expanded to one step's shape and layout, kept while the
        buffers and the layout are unchanged (the compiled kernel reads them element by element)."""
        key = (step.shape, step.stride(), step.dtype, step.device, *(
            (b.data_ptr(), b._version) for b in (self.threshold, self.bias, self.max_spikes)))
        if getattr(self, "_cache_key", None) != key:
            self._cache = tuple(torch.empty_like(step).copy_(self._per_channel(b, step).expand(step.shape))
                                for b in (self.threshold, self.bias, self.max_spikes))
            self._cache_key = key
        return self._cache

    def extra_repr(self) -> str:
        return (f"channels={self.threshold.numel()}, upper={self.upper}, signed={self.signed}, "
                f"initial_potential={self.initial_potential}")


class GatedMaxPool(ChunkedModule):
    """Max pooling of spike trains: each window passes the increase of its largest running spike sum,
    so that the pooled count is the largest input count at every step and the pooled rate the max
    rate. (Passing the spikes of the input whose running sum leads, the gate of Rueckauer et al.
    2017, adds a spike at every change of leader: a bias that compounds through later layers.)"""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        if not isinstance(pool, nn.MaxPool2d):
            raise TypeError(f"gated max pooling supports MaxPool2d, got {type(pool).__name__}")
        self.pool = pool
        self.register_memory("total", None)
        self.register_memory("pooled", None)

    def forward(self, x: Tensor) -> Tensor:
        if self.analog:
            return self.pool(x)
        seq = self._time_major(x)
        p = self.pool
        out = []
        for x_t in seq:
            self.total = x_t.clone() if self.total is None else self.total + x_t
            pooled = F.max_pool2d(self.total, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode)
            out.append(pooled if self.pooled is None else pooled - self.pooled)
            self.pooled = pooled
        return torch.stack(out).reshape(-1, *out[0].shape[1:])


class Probe(ChunkedModule):
    """An identity that shows a recorded layer's output as ``[k, B, ...]`` to forward hooks.

    Named after the ANN module whose output it carries (``scoring_layers`` of the converted network
    are the ANN's), so feature extraction and ``record_layers`` work on the SNN as on the ANN.
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return self._time_major(x)
