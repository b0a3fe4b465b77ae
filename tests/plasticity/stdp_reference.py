"""A plain per-image implementation of the spec's STDP network operations (SpykeTorch's structure:
cumulative waves [T, C, H, W], one image per call, Python loops), written independently of
``cortexsnn.plasticity`` to check it against. float64 throughout."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def waves_of(latencies: torch.Tensor, T: int) -> torch.Tensor:
    """[C, H, W] latencies -> [T, C, H, W] cumulative 0/1 waves."""
    return torch.stack([(latencies.long() <= t).double() for t in range(T)])


def intensity_to_latency_waves(intensities: torch.Tensor, T: int) -> torch.Tensor:
    """The seed's Intensity2Latency on one image ``[C, H, W]`` (stable sort for ties)."""
    flat = intensities.reshape(-1)
    nonzero = int((flat != 0).sum())
    bin_size = nonzero // T
    values, idx = torch.sort(flat, descending=True, stable=True)
    spike_map = torch.zeros_like(flat)
    out = []
    for t in range(T):
        sl = slice(t * bin_size, (t + 1) * bin_size)
        spike_map[idx[sl]] = values[sl]
        out.append(spike_map.clone().reshape(intensities.shape))
    return torch.stack(out).sign()


def fire(potentials: torch.Tensor, threshold):
    thr = potentials.clone()
    if threshold is None:
        thr[:-1] = 0
    else:
        thr[thr <= threshold] = 0
    return thr.sign(), thr


def pointwise_inhibition(thr: torch.Tensor) -> torch.Tensor:
    """At each position keep the feature with the largest thresholded potential at the first
    step where any feature spikes (SpykeTorch's formulation with max / gather / scatter)."""
    T = thr.shape[0]
    maximum, argmax = thr.max(dim=1, keepdim=True)  # over features, each step
    spiking = maximum.sign()
    first = (T - spiking.sum(dim=0, keepdim=True)).long().clamp(0, T - 1)
    winners = argmax.gather(0, first)
    coef = torch.zeros_like(thr[0]).unsqueeze(0)
    coef.scatter_(1, winners, spiking[-1:])
    return thr * coef


def get_k_winners(potentials: torch.Tensor, spikes: torch.Tensor, kwta: int, radius: int):
    T = spikes.shape[0]
    first = (T - spikes.sum(dim=0, keepdim=True)).long().clamp(0, T - 1)
    values = potentials.gather(0, first)
    truncated = spikes * values
    v = truncated.max() * T
    truncated = truncated + spikes * v
    total = truncated.sum(dim=0)
    winners = []
    for _ in range(kwta):
        best = float(total.max())
        if best == 0:
            break
        idx = int(torch.argmax(total))
        f, y, x = np.unravel_index(idx, total.shape)
        winners.append((int(f), int(y), int(x)))
        total[f] = 0
        if radius:
            total[:, max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1] = 0
    return winners


def stdp(weight: torch.Tensor, in_spikes: torch.Tensor, out_spikes: torch.Tensor, winners, ap, an,
         stabilizer: bool, lb: float, ub: float) -> None:
    k = weight.shape[-1]
    in_lat = in_spikes.sum(0)
    out_lat = out_spikes.sum(0)
    lr = torch.zeros_like(weight)
    for f, y, x in winners:
        pairing = in_lat[:, y:y + k, x:x + k] >= out_lat[f, y, x]
        lr[f] = torch.where(pairing, torch.tensor(ap, dtype=weight.dtype), torch.tensor(an, dtype=weight.dtype))
    weight += lr * (((weight - lb) * (ub - weight)) if stabilizer else 1)
    weight.clamp_(lb, ub)


def conv_waves(waves: torch.Tensor, weight: torch.Tensor, pad: int) -> torch.Tensor:
    return torch.stack([F.conv2d(F.pad(w, (pad,) * 4).unsqueeze(0), weight)[0] for w in waves])


def train_stdp_layer(weight, images_waves, threshold, kwta, radius, pad, a_plus, a_minus, double_every, max_ap,
                     stabilizer=True, lb=0.0, ub=1.0):
    """STDP on one layer, one image at a time, with the doubling schedule of the spec."""
    counter = 0
    ap, an = a_plus, a_minus
    for waves in images_waves:
        counter += 1
        if counter >= double_every:
            counter = 0
            ap = min(ap * 2, max_ap)
            an = ap * -0.75
        pot = conv_waves(waves, weight, pad)
        spk, thr = fire(pot, threshold)
        thr = pointwise_inhibition(thr)
        spk = thr.sign()
        winners = get_k_winners(thr, spk, kwta, radius)
        padded = torch.stack([F.pad(w, (pad,) * 4) for w in waves])
        stdp(weight, padded, spk, winners, ap, an, stabilizer, lb, ub)
    return weight


def train_rstdp_head(weight, images_waves, labels, pad, per_class, reward, punish, lb, ub, batch):
    """R-STDP decision layer, one image at a time, adaptive rates after each batch (seed)."""
    apr, anr = reward
    app, anp = punish
    cur_r, cur_p = (apr, anr), (app, anp)
    for start in range(0, len(images_waves), batch):
        hits = misses = 0
        part = range(start, min(start + batch, len(images_waves)))
        for i in part:
            waves = images_waves[i]
            pot = conv_waves(waves, weight, pad)
            spk, _ = fire(pot, None)
            winners = get_k_winners(pot, spk, 1, 0)
            if not winners:
                continue
            padded = torch.stack([F.pad(w, (pad,) * 4) for w in waves])
            decision = winners[0][0] // per_class
            if decision == labels[i]:
                hits += 1
                stdp(weight, padded, spk, winners, *cur_r, False, lb, ub)
            else:
                misses += 1
                stdp(weight, padded, spk, winners, *cur_p, False, lb, ub)
        n = len(part)
        cur_r = (apr * misses / n, anr * misses / n)
        cur_p = (app * hits / n, anp * hits / n)
    return weight
