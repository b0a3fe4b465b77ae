"""A plain per-image implementation with the seed's (SpykeTorch's) structure, written from
``spec/plasticity.md`` for the parity tests (and mirrored in ``benchmarks/stdp.py``).

Everything here processes ONE image at a time as **cumulative spike waves** ``[T, C, H, W]``
(a neuron that fired stays 1), with Python loops and ``.item()`` where the seed has them. It is
deliberately independent of ``cortexsnn.plasticity``: no function is imported from there.
Only deviation from the seed: the latency coder sorts stably (the seed's sort is unstable, so
its tie order is unspecified).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- preprocessing
def dog(window: int, sigma1: float, sigma2: float) -> torch.Tensor:
    w = window // 2
    x, y = np.mgrid[-w : w + 1 : 1, -w : w + 1 : 1]
    a = 1.0 / (2 * math.pi)
    prod = x * x + y * y
    f1 = (1 / (sigma1 * sigma1)) * np.exp(-0.5 * (1 / (sigma1 * sigma1)) * prod)
    f2 = (1 / (sigma2 * sigma2)) * np.exp(-0.5 * (1 / (sigma2 * sigma2)) * prod)
    kernel = a * (f1 - f2)
    kernel = kernel - np.mean(kernel)
    kernel = kernel / np.max(kernel)
    return torch.from_numpy(kernel).float()


def dog_bank_weight() -> torch.Tensor:
    """The six DoG kernels of the spec, zero-padded to 13 x 13: ``[6, 1, 13, 13]``."""
    specs = [(3, 3 / 9, 6 / 9), (3, 6 / 9, 3 / 9), (7, 7 / 9, 14 / 9), (7, 14 / 9, 7 / 9),
             (13, 13 / 9, 26 / 9), (13, 26 / 9, 13 / 9)]
    kernels = []
    for window, s1, s2 in specs:
        p = (13 - window) // 2
        kernels.append(F.pad(dog(window, s1, s2).unsqueeze(0), (p, p, p, p)))
    return torch.stack(kernels)


def local_normalization(x: torch.Tensor, radius: int, eps: float = 1e-12) -> torch.Tensor:
    """``x``: ``[1, C, H, W]``; each channel divided by its mean over a (2r+1)^2 window."""
    length = radius * 2 + 1
    kernel = torch.ones(1, 1, length, length).float() / (length**2)
    y = x.squeeze(0).unsqueeze(1)
    means = F.conv2d(y, kernel, padding=radius) + eps
    y = y / means
    return y.squeeze(1).unsqueeze(0)


def intensity_to_latency(intensities: torch.Tensor, time_steps: int) -> torch.Tensor:
    """The seed's Intensity2Latency: cumulative waves ``[T, C, H, W]`` (floats, intensities)."""
    bins = []
    nonzero = torch.nonzero(intensities).size(0)
    bin_size = nonzero // time_steps
    flat = torch.reshape(intensities, (-1,))
    values, order = torch.sort(flat, descending=True, stable=True)
    value_bins, index_bins = torch.split(values, bin_size), torch.split(order, bin_size)
    spike_map = torch.zeros_like(values)
    for i in range(time_steps):
        spike_map.scatter_(0, index_bins[i], value_bins[i])
        bins.append(spike_map.clone().reshape(tuple(intensities.shape)).squeeze(0).float())
    return torch.stack(bins)


def s1c1(image: torch.Tensor, time_steps: int = 15) -> torch.Tensor:
    """One image ``[1, 28, 28]`` in [0, 1] -> cumulative spike waves ``[T, 6, 28, 28]`` (0/1 floats)."""
    x = (image * 255).unsqueeze(0)
    out = F.conv2d(x, dog_bank_weight(), padding=6).float()
    out = torch.where(out < 50, torch.tensor(0.0), out)
    out = local_normalization(out, 8)
    return intensity_to_latency(out, time_steps).sign()


# ----------------------------------------------------------------------------- spike functions
def pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p), value=0)


def pooling(x: torch.Tensor, kernel: int) -> torch.Tensor:
    return F.max_pool2d(x, kernel, kernel)


def fire(potentials: torch.Tensor, threshold: float | None):
    """``(spikes, thresholded potentials)``; no threshold: only the last step counts."""
    thresholded = potentials.clone()
    if threshold is None:
        thresholded[:-1] = 0
    else:
        F.threshold_(thresholded, threshold, 0)
    return thresholded.sign(), thresholded


def pointwise_inhibition(thresholded: torch.Tensor) -> torch.Tensor:
    maximum = torch.max(thresholded, dim=1, keepdim=True)
    clamp_pot = maximum[0].sign()
    earliest = (clamp_pot.size(0) - clamp_pot.sum(dim=0, keepdim=True)).long()
    earliest.clamp_(0, clamp_pot.size(0) - 1)
    any_spike = clamp_pot[-1:, :, :, :]
    winners = maximum[1].gather(0, earliest)
    coef = torch.zeros_like(thresholded[0]).unsqueeze_(0)
    coef.scatter_(1, winners, any_spike)
    return torch.mul(thresholded, coef)


def get_k_winners(potentials: torch.Tensor, kwta: int, radius: int, spikes: torch.Tensor) -> list[tuple]:
    """The seed's k-WTA: ``k`` rounds of a global argmax with ``.item()`` in the loop."""
    first = (spikes.size(0) - spikes.sum(dim=0, keepdim=True)).long()
    first.clamp_(0, spikes.size(0) - 1)
    values = potentials.gather(dim=0, index=first)
    truncated = spikes * values
    v = truncated.max() * potentials.size(0)
    truncated.addcmul_(spikes, v)
    total = truncated.sum(dim=0, keepdim=True).squeeze_(0)
    size = tuple(total.size())
    winners = []
    for _ in range(kwta):
        max_val, max_idx = total.view(-1).max(0)
        if max_val.item() == 0:
            break
        f, r, c = np.unravel_index(max_idx.item(), size)
        winners.append((int(f), int(r), int(c)))
        total[f, :, :] = 0
        if radius != 0:
            r0, r1 = max(0, r - radius), min(total.size(-2), r + radius + 1)
            c0, c1 = max(0, c - radius), min(total.size(-1), c + radius + 1)
            total[:, r0:r1, c0:c1] = 0
    return winners


class STDP:
    """The seed's STDP of one convolution weight ``[F, C, k, k]`` (per-feature rates)."""

    def __init__(self, weight: torch.Tensor, rates, stabilizer: bool = True, lower: float = 0.0, upper: float = 1.0):
        self.weight = weight
        self.rates = [(torch.tensor([rates[0]]), torch.tensor([rates[1]])) for _ in range(weight.size(0))]
        self.stabilizer, self.lower, self.upper = stabilizer, lower, upper

    def update_all(self, a_plus: float, a_minus: float) -> None:
        for i in range(len(self.rates)):
            self.rates[i] = (torch.tensor([a_plus]), torch.tensor([a_minus]))

    def __call__(self, input_spikes, output_spikes, winners) -> None:
        k = self.weight.size(-1)
        in_lat = torch.sum(input_spikes, dim=0)
        out_lat = torch.sum(output_spikes, dim=0)
        lr = torch.zeros_like(self.weight)
        for f, r, c in winners:
            out_tensor = torch.ones(k, k) * out_lat[f, r, c]
            in_tensor = in_lat[:, r : r + k, c : c + k]
            pairing = torch.ge(in_tensor, out_tensor)
            lr[f] = torch.where(pairing, *(self.rates[f]))
        w = self.weight
        w += lr * ((w - self.lower) * (self.upper - w) if self.stabilizer else 1)
        w.clamp_(self.lower, self.upper)


# ----------------------------------------------------------------------------- the network
class SeedNet:
    """The seed's ``MozafariMNIST2018`` structure for any channel counts (for fast tests).

    ``pad a -> C1 (th1, k1, r1) -> pool p1 -> pad b -> C2 (th2, k2, r2) -> pool p2 -> pad c -> C3``
    (decision layer trained by R-STDP). Weights are passed in so that ours can start equal.
    """

    def __init__(self, w1, w2, w3, th=(15.0, 10.0), k=(5, 8), r=(3, 1), pads=(2, 1, 2), pools=(2, 3),
                 features_per_class: int = 20, max_ap: float = 0.15, double_every: int = 500):
        self.w = [w1.clone(), w2.clone(), w3.clone()]
        self.th, self.k, self.r, self.pads, self.pools = th, k, r, pads, pools
        self.stdp = [STDP(self.w[0], (0.004, -0.003)), STDP(self.w[1], (0.004, -0.003))]
        self.stdp3 = STDP(self.w[2], (0.004, -0.003), False, 0.2, 0.8)
        self.anti_stdp3 = STDP(self.w[2], (-0.004, 0.0005), False, 0.2, 0.8)
        self.max_ap, self.double_every = max_ap, double_every
        self.features_per_class = features_per_class
        self.counters = [0, 0]
        self.ctx = None
        # base R-STDP rates, read once before training as the seed's script does
        self.base_rates = (0.004, -0.003, 0.0005, -0.004)

    def _count(self, layer: int) -> None:
        self.counters[layer] += 1
        if self.counters[layer] >= self.double_every:
            self.counters[layer] = 0
            # the seed computes in float32 tensors
            ap = torch.min(torch.tensor(self.stdp[layer].rates[0][0].item()) * 2, torch.tensor(self.max_ap)).item()
            self.stdp[layer].update_all(ap, (torch.tensor(ap) * -0.75).item())

    def _stdp_layer(self, layer: int, spk_in: torch.Tensor) -> None:
        pot = F.conv2d(spk_in, self.w[layer])
        spk, pot = fire(pot, self.th[layer])
        self._count(layer)
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        winners = get_k_winners(pot, self.k[layer], self.r[layer], spk)
        self.stdp[layer](spk_in, spk, winners)

    def train_layer(self, waves: torch.Tensor, layer: int) -> None:
        """One image of unsupervised STDP for layer 0 or 1."""
        spk_in = pad(waves, self.pads[0])
        if layer == 0:
            return self._stdp_layer(0, spk_in)
        spk, _ = fire(F.conv2d(spk_in, self.w[0]), self.th[0])
        spk_in = pad(pooling(spk, self.pools[0]), self.pads[1])
        self._stdp_layer(1, spk_in)

    def decide(self, waves: torch.Tensor) -> int:
        """Forward to the decision layer; keeps the context for reward/punish; -1 if silent."""
        spk, _ = fire(F.conv2d(pad(waves, self.pads[0]), self.w[0]), self.th[0])
        spk, _ = fire(F.conv2d(pad(pooling(spk, self.pools[0]), self.pads[1]), self.w[1]), self.th[1])
        spk_in = pad(pooling(spk, self.pools[1]), self.pads[2])
        pot = F.conv2d(spk_in, self.w[2])
        spk, _ = fire(pot, None)
        winners = get_k_winners(pot, 1, 0, spk)
        self.ctx = (spk_in, spk, winners)
        self.last_potentials = pot[-1]
        if not winners:
            return -1
        return winners[0][0] // self.features_per_class

    def reward(self) -> None:
        self.stdp3(*self.ctx)

    def punish(self) -> None:
        self.anti_stdp3(*self.ctx)

    def train_rl(self, batch_waves, targets) -> np.ndarray:
        """The seed's ``train_rl`` over one batch: fractions (correct, wrong, silent)."""
        perf = np.array([0, 0, 0])
        for waves, target in zip(batch_waves, targets):
            d = self.decide(waves)
            if d != -1:
                if d == int(target):
                    perf[0] += 1
                    self.reward()
                else:
                    perf[1] += 1
                    self.punish()
            else:
                perf[2] += 1
        return perf / len(batch_waves)

    def train_rl_epoch(self, batches) -> None:
        """Batches of (waves list, targets); the seed's adaptive rates after each batch."""
        apr, anr, app, anp = self.base_rates
        for waves, targets in batches:
            perf = self.train_rl(waves, targets)
            self.stdp3.update_all(apr * perf[1], anr * perf[1])
            self.anti_stdp3.update_all(anp * perf[0], app * perf[0])
