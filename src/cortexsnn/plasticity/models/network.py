"""A feed-forward STDP network: a feature path of spiking convolutions and pools, and one or
more R-STDP decision heads."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cortexsnn.encoding import first_spike_latencies
from cortexsnn.plasticity.filters import S1C1
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.spike_ops import (
    decision_winners,
    k_winners,
    last_step_potentials,
    spike_pool,
    thresholded_potentials,
    values_at_first_spike,
)

__all__ = ["Stage", "STDPNetwork"]


@dataclass
class Stage:
    """A training stage: ``kind`` "stdp" (one layer, unsupervised) or "rstdp" (reward).

    ``layers`` are the names of the layers updated in the stage. An R-STDP stage may hold one
    thresholded feature layer and/or the decision heads; the decision always uses all heads.
    """

    name: str
    kind: str
    layers: list[str] = field(default_factory=list)


class STDPNetwork(nn.Module):
    """Layers, their order and the decision rule of an STDP network.

    Args:
        name: the model's name (stored in checkpoints).
        layers: the spiking convolutions by name.
        ops: the feature path, a list of ``("conv", name)``, ``("pool", k)`` or
            ``("parallel", [names])`` (branches on the same input, concatenated over channels;
            each branch pads to the same output size).
        heads: names of the decision layers applied to the feature path's output.
        stages: the training stages in order.
        vote: "single" (one head) or "majority" (heads vote; ties go to ``tie_head``).
        time_steps: ``T``.
        n_classes, features_per_class: feature ``f`` of a head votes for class ``f // features_per_class``.
        coder: the preprocessing (image -> latencies).
    """

    def __init__(
        self,
        name: str,
        layers: dict[str, SpikeConv],
        ops: Sequence[tuple],
        heads: Sequence[str],
        stages: Sequence[Stage],
        vote: str = "single",
        tie_head: int = 0,
        time_steps: int = 15,
        n_classes: int = 10,
        features_per_class: int = 20,
        coder: S1C1 | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.layers = nn.ModuleDict(layers)
        self.ops = list(ops)
        self.heads = list(heads)
        self.stages = list(stages)
        self.vote, self.tie_head = vote, tie_head
        self.time_steps = time_steps
        self.n_classes, self.features_per_class = n_classes, features_per_class
        self.coder = coder if coder is not None else S1C1(time_steps=time_steps)
        for head in self.heads:
            if self.layers[head].out_channels != n_classes * features_per_class:
                raise ValueError(f"head {head} needs {n_classes * features_per_class} features")

    # ------------------------------------------------------------------ structure
    @property
    def in_channels(self) -> int:
        return self.coder.out_channels

    def op_index(self, layer: str) -> int:
        """Index in :attr:`ops` of the op holding ``layer``."""
        for i, op in enumerate(self.ops):
            if (op[0] == "conv" and op[1] == layer) or (op[0] == "parallel" and layer in op[1]):
                return i
        raise KeyError(f"{layer} is not on the feature path")

    def trainable_stages(self) -> list[str]:
        return [stage.name for stage in self.stages]

    # ------------------------------------------------------------------ inference
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 1, H, W]`` in [0, 1] -> input latencies ``[B, C, H, W]``."""
        return self.coder(images)

    def run_ops(self, latencies: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run the feature path ops ``start:stop`` (inference: no inhibition)."""
        _check_latencies(latencies, self)
        ops = self.ops[start:stop]
        i = 0
        while i < len(ops):
            if ops[i][0] == "conv" and i + 1 < len(ops) and ops[i + 1][0] == "pool":
                # a convolution and the pooling after it in one pass (same result)
                latencies = self.layers[ops[i][1]].fire_pool(latencies, self.time_steps, ops[i + 1][1])
                i += 2
                continue
            latencies = self.apply_op(ops[i], latencies)
            i += 1
        return latencies

    def apply_op(self, op: tuple, latencies: torch.Tensor) -> torch.Tensor:
        kind = op[0]
        if kind == "conv":
            return self.layers[op[1]](latencies, self.time_steps)
        if kind == "pool":
            return spike_pool(latencies, op[1])
        if kind == "parallel":
            return torch.cat([self.layers[n](latencies, self.time_steps) for n in op[1]], dim=1)
        raise ValueError(f"unknown op {op!r}")

    def head_potentials(self, features: torch.Tensor, fired: bool = False) -> list[torch.Tensor]:
        """Last-step potentials ``[B, F, H, W]`` of every head for feature-path latencies (or, with
        ``fired=True``, for the 0/1 maps of :meth:`fired_maps`)."""
        steps = self.time_steps
        if fired:
            return [fired_potentials(features, self.layers[h].weight, self.layers[h].padding) for h in self.heads]
        return [last_step_potentials(self.layers[h].pad(features, steps), self.layers[h].weight, steps,
                                     "dense" if self.layers[h].method == "auto" else self.layers[h].method)
                for h in self.heads]

    def head_decisions(self, potentials: Sequence[torch.Tensor], features: torch.Tensor | None = None):
        """Per head: ``(winner [B, 3], valid [B], class [B] with -1 for silent)``."""
        out = []
        for head, pot in zip(self.heads, potentials):
            layer = self.layers[head]
            if layer.threshold is None:
                winner, valid = decision_winners(pot, self.time_steps)
            else:  # first-spike decision (shallow network)
                full = layer.potentials(features, self.time_steps)
                thr = thresholded_potentials(full, layer.threshold)
                from cortexsnn.plasticity.spike_ops import fire

                lat = fire(full, layer.threshold)
                w, v = k_winners(lat, values_at_first_spike(thr, lat), 1, 0, self.time_steps)
                winner, valid = w[:, 0], v[:, 0]
            cls = torch.where(valid, winner[:, 0] // self.features_per_class, torch.full_like(winner[:, 0], -1))
            out.append((winner, valid, cls))
        return out

    def combine(self, classes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The network's decision from the heads' classes (-1 = silent)."""
        if self.vote == "single" or len(classes) == 1:
            return classes[0]
        votes = torch.stack(classes, dim=1)  # [B, H]
        counts = torch.zeros(votes.shape[0], self.n_classes + 1, dtype=torch.long, device=votes.device)
        counts.scatter_add_(1, votes + 1, torch.ones_like(votes))
        counts[:, 0] = 0  # silent heads do not vote
        best_count, best = counts.max(dim=1)
        return torch.where(best_count >= 2, best - 1, classes[self.tie_head])

    def fired_only(self) -> bool:
        """True when decisions depend only on which neurons ever fired (last-step heads)."""
        return all(self.layers[h].threshold is None for h in self.heads)

    def run_ops_fired(self, latencies: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The feature path reduced to the last step: which neurons have fired by step ``T - 1``.

        Without inhibition (the inference path) and with last-step decision heads, the decision
        depends only on these maps: a layer has fired by the last step iff its last-step
        potential exceeds the threshold, which is one convolution of the previous layer's fired
        map instead of ``T``. Maps are returned as latencies (0 = fired, ``T`` = silent); see
        :meth:`fired_maps` for the 0/1 float maps.
        """
        fired = self.fired_maps(latencies, start, stop)
        return torch.where(fired > 0, 0, self.time_steps).to(latencies.dtype)

    def fired_maps(self, latencies: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """:meth:`run_ops_fired` as float 0/1 maps (1 = fired), channels-last in memory.

        The maps stay binary floats from layer to layer: zero padding, a dense convolution
        (channels-last, which is faster on CPU), the threshold, and max-pooling (a logical OR,
        i.e. the earliest spike of the window) need no conversion between steps.
        """
        _check_latencies(latencies, self)
        dtype = next(iter(self.layers.values())).weight.dtype
        x = _channels_last((latencies < self.time_steps).to(dtype))
        for op in self.ops[start:stop]:
            if op[0] == "pool":
                x = F.max_pool2d(x, op[1], op[1])
                continue
            names = [op[1]] if op[0] == "conv" else op[1]
            outs = []
            for name in names:
                layer = self.layers[name]
                pot = fired_potentials(x, layer.weight, layer.padding)
                outs.append(pot.gt_(layer.threshold))  # in place: 1.0 where fired, else 0.0
            x = outs[0] if len(outs) == 1 else _channels_last(torch.cat(outs, dim=1))
        return x

    @torch.no_grad()
    def predict(self, latencies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decisions ``[B]`` (-1 = silent) and class scores ``[B, n_classes]``.

        A class's score is the largest last-step potential among its features and positions,
        summed over the heads (the decision layer's evidence, used for ROC AUC). With last-step
        heads the feature path runs on fired maps (:meth:`run_ops_fired`, same decisions).
        """
        if self.fired_only():
            features = self.fired_maps(latencies)
            pots = self.head_potentials(features, fired=True)
        else:
            features = self.run_ops(latencies)
            pots = self.head_potentials(features)
        decisions = self.head_decisions(pots, features)
        scores = sum(p.amax(dim=(2, 3)).view(p.shape[0], self.n_classes, -1).amax(dim=2) for p in pots)
        return self.combine([d[2] for d in decisions]), scores

    @torch.no_grad()
    def forward_time_major(self, spikes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Time-major call: coded spike trains ``[T, B, C, H, W]`` -> :meth:`predict`'s
        ``(decisions [B], scores [B, n_classes])``.

        ``spikes`` is the network's input after its front end (``C = in_channels``, ``T =
        time_steps``), as one-spike-per-neuron trains or SpykeTorch's cumulative waves; only the
        first spike of each neuron counts (:func:`cortexsnn.encoding.first_spike_latencies`). The
        native form is ``predict(encode(images))``; ``forward_time_major(latencies_to_waves(
        encode(images), T))`` gives the same decisions and scores.
        """
        if spikes.dim() != 5 or spikes.shape[0] != self.time_steps or spikes.shape[2] != self.in_channels:
            raise ValueError(f"{self.name} expects coded spike trains [T={self.time_steps}, B, C={self.in_channels}, "
                             f"H, W], got {tuple(spikes.shape)}; code images with encode() (S1C1) first")
        return self.predict(first_spike_latencies(spikes))

    @torch.no_grad()
    def activations(self, latencies: torch.Tensor) -> dict[str, torch.Tensor]:
        """Output latencies of every op of the feature path and last-step potentials of the heads."""
        maps = {"input": latencies}
        x = latencies
        for i, op in enumerate(self.ops):
            x = self.apply_op(op, x)
            label = op[1] if op[0] == "conv" else ("+".join(op[1]) if op[0] == "parallel" else f"pool{i}")
            maps[label] = x
        for head, pot in zip(self.heads, self.head_potentials(x)):
            maps[head] = pot
        return maps


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def fired_potentials(fired: torch.Tensor, weight: torch.Tensor, padding: int) -> torch.Tensor:
    """Last-step potentials ``[B, F, Ho, Wo]`` of 0/1 fired maps ``[B, C, H, W]``: one dense
    convolution (channels-last) with zero padding.

    The padding is the convolution's own rather than a padded copy: the kernel then skips the
    taps that fall on it (for mozafari2018's decision layer, padding 2 around a 4 x 4 map, half of
    them) and adds the same products in the same order otherwise, so the potentials are
    bit-identical (``tests/plasticity/test_time_ordered_kernel.py``)."""
    return F.conv2d(_channels_last(fired), weight, padding=padding)


def _check_latencies(latencies: torch.Tensor, model: STDPNetwork) -> None:
    if latencies.dim() != 4:
        raise ValueError(f"expected latencies [B, C, H, W], got shape {tuple(latencies.shape)}")
