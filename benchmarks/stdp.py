"""STDP / R-STDP convolutional SNNs (Mozafari et al., SpykeTorch): images/s of cortexsnn.plasticity vs the seed's
structure (SpykeTorch style: one image per call, cumulative waves [T, C, H, W], Python loops with
``.item()`` in k-WTA and STDP), written plainly below.

Workloads (mozafari2018, T = 15, MNIST test images, or smooth random blobs without the data):
preprocessing (DoG + normalisation + latency), inference (whole network to the decision), one
training pass of layer 1 (STDP), layer 2 (STDP) and layer 3 (R-STDP); ours in sequential mode
(the seed's per-image semantics) and in batched mode. Both sides start from the same weights and
run in the same process, interleaved (``benchmarks._common.time_interleaved``). Before any timing,
``check_equal`` requires the same decisions and the same weights after each layer's training pass
(ours in sequential mode) on the first 20 images.

Peak memory: each implementation runs the workload once in a fresh subprocess (50 images at
most); we report the kernel's high-water mark of the resident set (VmHWM, reset just before the
workload) minus the RSS at its start, i.e. after imports, data and model set-up.

    .venv/bin/python benchmarks/stdp.py [--images 200] [--rounds 3] [--threads 2] [--no-memory] [--only inference]

On a shared, loaded machine use ``--threads 1``: two threads per process slow both sides down
several-fold there (oversubscription).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import PeakGrowth, print_json_lines, print_table, summary_line, time_interleaved  # noqa: E402

T = 15


# ============================================================================ the seed's structure
def seed_dog(window, s1, s2):
    w = window // 2
    x, y = np.mgrid[-w : w + 1 : 1, -w : w + 1 : 1]
    prod = x * x + y * y
    f1 = (1 / (s1 * s1)) * np.exp(-0.5 * (1 / (s1 * s1)) * prod)
    f2 = (1 / (s2 * s2)) * np.exp(-0.5 * (1 / (s2 * s2)) * prod)
    k = (f1 - f2) / (2 * math.pi)
    k = k - np.mean(k)
    return torch.from_numpy(k / np.max(k)).float()


SEED_DOG = torch.stack([
    F.pad(seed_dog(win, a, b).unsqueeze(0), ((13 - win) // 2,) * 4)
    for win, a, b in [(3, 3 / 9, 6 / 9), (3, 6 / 9, 3 / 9), (7, 7 / 9, 14 / 9), (7, 14 / 9, 7 / 9),
                      (13, 13 / 9, 26 / 9), (13, 26 / 9, 13 / 9)]
])


def seed_s1c1(image):
    """One image [1, 28, 28] -> cumulative waves [T, 6, 28, 28] (the seed's S1C1Transform)."""
    x = F.conv2d((image * 255).unsqueeze(0), SEED_DOG, padding=6).float()
    x = torch.where(x < 50, torch.tensor(0.0), x)
    y = x.squeeze(0).unsqueeze(1)
    means = F.conv2d(y, torch.ones(1, 1, 17, 17) / 289, padding=8) + 1e-12
    x = (y / means).squeeze(1).unsqueeze(0)
    nonzero = torch.nonzero(x).size(0)
    bin_size = nonzero // T
    values, order = torch.sort(x.reshape(-1), descending=True)
    vb, ib = torch.split(values, bin_size), torch.split(order, bin_size)
    spike_map = torch.zeros_like(values)
    bins = []
    for i in range(T):
        spike_map.scatter_(0, ib[i], vb[i])
        bins.append(spike_map.clone().reshape(x.shape).squeeze(0))
    return torch.stack(bins).sign()


def seed_fire(pot, threshold=None):
    thr = pot.clone()
    if threshold is None:
        thr[:-1] = 0
    else:
        F.threshold_(thr, threshold, 0)
    return thr.sign(), thr


def seed_pointwise_inhibition(thr):
    maximum = torch.max(thr, dim=1, keepdim=True)
    clamp = maximum[0].sign()
    first = (clamp.size(0) - clamp.sum(dim=0, keepdim=True)).long().clamp_(0, clamp.size(0) - 1)
    coef = torch.zeros_like(thr[0]).unsqueeze_(0)
    coef.scatter_(1, maximum[1].gather(0, first), clamp[-1:])
    return thr * coef


def seed_k_winners(pot, kwta, radius, spikes):
    first = (spikes.size(0) - spikes.sum(dim=0, keepdim=True)).long().clamp_(0, spikes.size(0) - 1)
    truncated = spikes * pot.gather(0, first)
    v = truncated.max() * pot.size(0)
    truncated.addcmul_(spikes, v)
    total = truncated.sum(dim=0, keepdim=True).squeeze_(0)
    winners = []
    for _ in range(kwta):
        max_val, max_idx = total.view(-1).max(0)
        if max_val.item() == 0:
            break
        f, r, c = np.unravel_index(max_idx.item(), tuple(total.size()))
        winners.append((f, r, c))
        total[f, :, :] = 0
        if radius:
            total[:, max(0, r - radius) : r + radius + 1, max(0, c - radius) : c + radius + 1] = 0
    return winners


def seed_stdp(weight, rates, spk_in, spk_out, winners, stabilizer=True, lb=0.0, ub=1.0):
    k = weight.size(-1)
    in_lat, out_lat = spk_in.sum(0), spk_out.sum(0)
    lr = torch.zeros_like(weight)
    for f, r, c in winners:
        pairing = torch.ge(in_lat[:, r : r + k, c : c + k], torch.ones(k, k) * out_lat[f, r, c])
        lr[f] = torch.where(pairing, *rates)
    weight += lr * ((weight - lb) * (ub - weight) if stabilizer else 1)
    weight.clamp_(lb, ub)


class SeedMozafari:
    """The seed's MozafariMNIST2018: one image per call."""

    def __init__(self, w1, w2, w3):
        self.w = [w1.clone(), w2.clone(), w3.clone()]
        self.rates = [(torch.tensor([0.004]), torch.tensor([-0.003]))] * 2
        self.reward_rates = (torch.tensor([0.004]), torch.tensor([-0.003]))
        self.punish_rates = (torch.tensor([-0.004]), torch.tensor([0.0005]))
        self.counters = [0, 0]

    def _stdp_layer(self, layer, spk_in, th, k, r):
        spk, pot = seed_fire(F.conv2d(spk_in, self.w[layer]), th)
        self.counters[layer] += 1
        if self.counters[layer] >= 500:
            self.counters[layer] = 0
            ap = min(self.rates[layer][0].item() * 2, 0.15)
            self.rates[layer] = (torch.tensor([ap]), torch.tensor([-0.75 * ap]))
        pot = seed_pointwise_inhibition(pot)
        spk = pot.sign()
        winners = seed_k_winners(pot, k, r, spk)
        seed_stdp(self.w[layer], self.rates[layer], spk_in, spk, winners)

    def train_layer1(self, waves):
        self._stdp_layer(0, F.pad(waves, (2,) * 4), 15, 5, 3)

    def train_layer2(self, waves):
        spk, _ = seed_fire(F.conv2d(F.pad(waves, (2,) * 4), self.w[0]), 15)
        self._stdp_layer(1, F.pad(F.max_pool2d(spk, 2, 2), (1,) * 4), 10, 8, 1)

    def forward(self, waves):
        spk, _ = seed_fire(F.conv2d(F.pad(waves, (2,) * 4), self.w[0]), 15)
        spk, _ = seed_fire(F.conv2d(F.pad(F.max_pool2d(spk, 2, 2), (1,) * 4), self.w[1]), 10)
        spk_in = F.pad(F.max_pool2d(spk, 3, 3), (2,) * 4)
        pot = F.conv2d(spk_in, self.w[2])
        spk, _ = seed_fire(pot)
        winners = seed_k_winners(pot, 1, 0, spk)
        return (winners[0][0] // 20 if winners else -1), (spk_in, spk, winners)

    def train_rl(self, waves, target):
        decision, ctx = self.forward(waves)
        if decision == -1:
            return
        rates = self.reward_rates if decision == target else self.punish_rates
        seed_stdp(self.w[2], rates, *ctx, stabilizer=False, lb=0.2, ub=0.8)


# ============================================================================ workloads
def load_images(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    root = pathlib.Path(os.environ.get("CORTEXSNN_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
    if (root / "mnist").is_dir():
        from cortexsnn.data.mnist import load_mnist

        ds = load_mnist(root / "mnist", train=False)
        images = torch.stack([ds[i][0] for i in range(n)])
        labels = torch.tensor([ds[i][1] for i in range(n)])
        return images, labels, f"MNIST test images 0..{n - 1}"
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(28, 28), mode="bilinear", align_corners=False)
    return (x > 0.55).float() * x, torch.randint(0, 10, (n,), generator=g), "random blobs (no MNIST found)"


class Setup:
    """Images, cached spike inputs of both sides and fresh models with equal weights."""

    def __init__(self, n_images: int, seed: int = 0) -> None:
        from cortexsnn.plasticity import build_model

        self.images, self.labels, self.source = load_images(n_images)
        torch.manual_seed(seed)
        self.model = build_model("mozafari2018")
        self.init = {name: layer.weight.clone() for name, layer in self.model.layers.items()}
        self.latencies = self.model.encode(self.images)
        self.waves = [seed_s1c1(img) for img in self.images]

    def fresh_model(self):
        for name, layer in self.model.layers.items():
            layer.weight.copy_(self.init[name])
            if hasattr(layer, "samples_seen"):
                layer.samples_seen.zero_()
        return self.model

    def fresh_seed(self):
        return SeedMozafari(self.init["c1"], self.init["c2"], self.init["c3"])


def seed_workloads(s: Setup) -> dict:
    def preprocess():
        for img in s.images:
            seed_s1c1(img)

    def infer():
        net = s.fresh_seed()
        for w in s.waves:
            net.forward(w)

    def train1():
        net = s.fresh_seed()
        for w in s.waves:
            net.train_layer1(w)

    def train2():
        net = s.fresh_seed()
        for w in s.waves:
            net.train_layer2(w)

    def train3():
        net = s.fresh_seed()
        for w, y in zip(s.waves, s.labels.tolist()):
            net.train_rl(w, y)

    return {"preprocessing": preprocess, "inference": infer, "train layer 1 (STDP)": train1,
            "train layer 2 (STDP)": train2, "train layer 3 (R-STDP)": train3}


def ours_workloads(s: Setup) -> dict:
    from cortexsnn.plasticity.training import AdaptiveRates, evaluate_latencies, stage_inputs, train_rstdp_batch, train_stdp_batch

    stages = {stage.name: stage for stage in s.model.stages}

    def preprocess():
        s.model.encode(s.images)

    def infer():
        evaluate_latencies(s.fresh_model(), s.latencies)

    def stdp(name, mode):
        def run():
            model = s.fresh_model()
            train_stdp_batch(model, name, stage_inputs(model, stages[name], s.latencies), mode)
        return run

    def rstdp(mode):
        def run():
            model = s.fresh_model()
            inputs = stage_inputs(model, stages["c3"], s.latencies)
            train_rstdp_batch(model, stages["c3"], inputs, s.labels, mode, AdaptiveRates())
        return run

    out = {"preprocessing": preprocess, "inference": infer}
    for mode in ("sequential", "batched"):
        out[f"train layer 1 (STDP) {mode}"] = stdp("c1", mode)
        out[f"train layer 2 (STDP) {mode}"] = stdp("c2", mode)
        out[f"train layer 3 (R-STDP) {mode}"] = rstdp(mode)
    return out


def check_equal(s: Setup, n: int = 20) -> str:
    """Before timing: on the first ``n`` images, ours in sequential mode and the seed structure must
    give the same decisions and the same weights after each layer's training pass."""
    from cortexsnn.plasticity.training import AdaptiveRates, evaluate_latencies, stage_inputs, train_rstdp_batch, train_stdp_batch

    model, seed = s.fresh_model(), s.fresh_seed()
    stages = {stage.name: stage for stage in model.stages}
    lat, waves, labels = s.latencies[:n], s.waves[:n], s.labels[:n]
    ours_decisions, _ = evaluate_latencies(model, lat)
    seed_decisions = [seed.forward(w)[0] for w in waves]
    if ours_decisions.tolist() != seed_decisions:
        raise SystemExit(f"inference differs: ours {ours_decisions.tolist()} vs seed {seed_decisions}")
    worst = 0.0
    for index, name in enumerate(["c1", "c2"]):
        train_stdp_batch(model, name, stage_inputs(model, stages[name], lat), "sequential")
        for w in waves:
            (seed.train_layer1 if index == 0 else seed.train_layer2)(w)
        worst = max(worst, float((model.layers[name].weight - seed.w[index]).abs().max()))
        if torch.equal(model.layers[name].weight, s.init[name]):
            raise SystemExit(f"layer {name} did not learn on {n} images: the check would be vacuous")
    train_rstdp_batch(model, stages["c3"], stage_inputs(model, stages["c3"], lat), labels, "sequential", AdaptiveRates())
    for w, y in zip(waves, labels.tolist()):
        seed.train_rl(w, y)
    worst = max(worst, float((model.layers["c3"].weight - seed.w[2]).abs().max()))
    if torch.equal(model.layers["c3"].weight, s.init["c3"]):
        raise SystemExit(f"layer c3 did not learn on {n} images: the check would be vacuous")
    if worst > 1e-5:
        raise SystemExit(f"sequential training differs from the seed structure: max |dw| = {worst:.3g}")
    return f"equal on {n} images (decisions; weights after layers 1-3, max |diff| {worst:.1e})"


GROUPS = [  # (the seed's workload, our workloads timed against it in the same rounds)
    ("preprocessing", ["preprocessing"]),
    ("inference", ["inference"]),
    ("train layer 1 (STDP)", ["train layer 1 (STDP) sequential", "train layer 1 (STDP) batched"]),
    ("train layer 2 (STDP)", ["train layer 2 (STDP) sequential", "train layer 2 (STDP) batched"]),
    ("train layer 3 (R-STDP)", ["train layer 3 (R-STDP) sequential", "train layer 3 (R-STDP) batched"]),
]


def worker(impl: str, workload: str, n_images: int, threads: int) -> None:
    """Run one workload once in this (fresh) process and print its peak extra memory (MiB):
    VmHWM after the workload minus VmRSS before it, the high-water mark reset just before
    (``_common.PeakGrowth``)."""
    torch.set_num_threads(threads)
    s = Setup(n_images)
    fn = (ours_workloads(s) if impl == "ours" else seed_workloads(s))[workload]
    with PeakGrowth() as growth:
        fn()
    print(json.dumps({"peak_extra_mib": growth.growth}))


def measure_memory(impl: str, workload: str, n_images: int, threads: int) -> float | None:
    cmd = [sys.executable, __file__, "--worker", impl, workload, "--images", str(n_images), "--threads", str(threads)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"memory run failed for {impl} / {workload}: {result.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_extra_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="images per workload (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, median reported (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both sides (default 2)")
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess peak-memory runs")
    parser.add_argument("--only", nargs="*", help="run only the groups whose name contains one of these words (e.g. inference)")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.images, args.threads)

    torch.set_num_threads(args.threads)
    s = Setup(args.images)
    ours, seed = ours_workloads(s), seed_workloads(s)
    print("check:", check_equal(s, min(args.images, 20)), flush=True)
    load = os.getloadavg()[0]
    print(f"mozafari2018, {args.images} images ({s.source}), T = {T}, {args.threads} threads, "
          f"median of {args.rounds} interleaved rounds, load average {load:.1f} on {os.cpu_count()} CPUs")
    rows, lines = [], []
    ref_name = "seed-structure per image"
    for seed_name, our_names in GROUPS:
        if args.only and not any(word in seed_name for word in args.only):
            continue
        fns = {name: ours[name] for name in our_names}
        fns[ref_name] = seed[seed_name]
        times = time_interleaved(fns, rounds=args.rounds, warmup=1)
        ref_peak = None if args.no_memory else measure_memory("seed", seed_name, min(args.images, 50), args.threads)
        for name in our_names:
            peak = None if args.no_memory else measure_memory("ours", name, min(args.images, 50), args.threads)
            lines.append(summary_line("stdp", name, times[name], {ref_name: times[ref_name]}, peak, {ref_name: ref_peak}))
            rows.append([name, f"{args.images / times[name]:.1f}", f"{args.images / times[ref_name]:.1f}",
                         f"{times[ref_name] / times[name]:.1f}x",
                         "-" if peak is None else f"{peak:.0f}", "-" if ref_peak is None else f"{ref_peak:.0f}"])
        print(f"  {seed_name}: done", flush=True)
    print_table("images/s (higher is better)", ["workload", "ours", "seed structure", "speedup",
                                                 "ours peak MiB", "seed peak MiB"], rows)
    print_json_lines(lines)


if __name__ == "__main__":
    main()
