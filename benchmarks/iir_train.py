"""Training throughput of the seed-002 IIR MLP (784-500-500-10, dual-exp PSP, T 25, batch 64).

Ours (:class:`cortexsnn.models.iir_mlp.IIRMLP`: fused PSP scan and reset-trace kernels, the
constant-current shortcut) against a straightforward per-layer Python-loop implementation of the
same model in the seed's structure (time-last ``[B, N, T]`` tensors, a loop over time steps in
each PSP filter and each neuron layer, a per-step linear map, the surrogate spike as an autograd
function), written plainly below. Both run the same training steps (Adam, cross-entropy on spike
counts, dropout 0.3) on the same random batches, interleaved in one process so that the ratio
survives the noise of a shared machine. Both start from the same weights; the script first checks
that, without dropout, the two give the same spike counts.

Peak memory: each implementation runs 3 steps in a fresh subprocess, which resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``) just before building the model and reports the peak
resident set size (``VmHWM``) minus the resident size at that point (Linux only).

    python benchmarks/iir_train.py                 # one epoch-equivalent: 860 steps each
    python benchmarks/iir_train.py --steps 50      # quicker
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
from torch import nn

from cortexsnn.models.iir_mlp import IIRMLP
from cortexsnn.neurons.functional.iir import dual_exp_coefficients

BATCH, STEPS_T, EPOCH_STEPS = 64, 25, math.ceil(55_000 / 64)


# ---------------------------------------------------------------------------------------------
# the reference: the seed's structure, plain PyTorch
# ---------------------------------------------------------------------------------------------
class _GaussianSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v >= 1.0).float()

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        sigma = 0.4
        return grad * torch.exp(-((v - 1.0) ** 2) / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)


class SeedStyleLayer(nn.Module):
    """Dual-exp PSP filter (time loop) -> per-step linear -> reset-trace neuron (time loop)."""

    def __init__(self, n_in: int, n_out: int, tau_m: float = 4.0, tau_s: float = 1.0) -> None:
        super().__init__()
        a1, a2, b = dual_exp_coefficients(tau_m, tau_s)
        self.a1 = nn.Parameter(torch.full((n_in, 1), a1))
        self.a2 = nn.Parameter(torch.full((n_in, 1), a2))
        self.b = nn.Parameter(torch.full((n_in, 1), b))
        self.linear = nn.Linear(n_in, n_out)
        self.decay = math.exp(-1.0 / tau_m)

    def forward(self, x):  # x [B, N_in, T]
        steps = x.shape[-1]
        p1 = torch.zeros_like(x[..., 0])
        p2 = torch.zeros_like(x[..., 0])
        psp = []
        for t in range(steps):
            p = self.a1[:, 0] * p1 + self.a2[:, 0] * p2 + self.b[:, 0] * x[..., t]
            psp.append(p)
            p2, p1 = p1, p
        r = torch.zeros(x.shape[0], self.linear.out_features)
        spikes = []
        for t in range(steps):
            v = self.linear(psp[t]) - r
            s = _GaussianSpike.apply(v)
            r = self.decay * r + s
            spikes.append(s)
        return torch.stack(spikes, dim=-1)  # [B, N_out, T]


class SeedStyleMLP(nn.Module):
    def __init__(self, sizes=(784, 500, 500, 10), steps: int = STEPS_T, dropout: float = 0.3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SeedStyleLayer(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.steps = steps

    def forward(self, images):
        x = images.reshape(images.shape[0], -1, 1).repeat(1, 1, self.steps)  # constant current [B, 784, T]
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = self.dropout(x)
        return x.sum(-1)


def copy_weights(ours: IIRMLP, ref: SeedStyleMLP) -> None:
    with torch.no_grad():
        for k, layer in enumerate(ref.layers):
            layer.linear.load_state_dict(ours.linears[k].state_dict())
            layer.a1.copy_(ours.psps[k].a1.view(-1, 1))
            layer.a2.copy_(ours.psps[k].a2.view(-1, 1))
            layer.b.copy_(ours.psps[k].b.view(-1, 1))


def build(name: str):
    torch.manual_seed(0)
    ours = IIRMLP(steps=STEPS_T, dropout=0.3)
    with torch.no_grad():  # a realistic operating point: the hidden layers spike
        for linear in ours.linears:
            linear.weight.mul_(4.0)
    if name == "ours":
        return ours
    ref = SeedStyleMLP()
    copy_weights(ours, ref)
    return ref


def make_batches(count: int):
    g = torch.Generator().manual_seed(1)
    images = torch.rand(count, BATCH, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (count, BATCH), generator=g)
    return images, labels


def train_steps(model, optimizer, images, labels) -> float:
    start = time.perf_counter()
    for x, y in zip(images, labels):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if hasattr(model, "project_"):
            model.project_()
    return time.perf_counter() - start


def check_agreement() -> float:
    ours, ref = build("ours").eval(), build("seed").eval()
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    return float((a - b).abs().max())


def measure_memory(name: str, steps: int) -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    images, labels = make_batches(steps)
    base_kib = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:  # reset the peak (VmHWM) to the current RSS
        handle.write("5")
    model = build(name).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    train_steps(model, optimizer, images, labels)
    print(json.dumps({"peak_mib": (_status_kib("VmHWM") - base_kib) / 1024}))


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_in_subprocess(name: str, steps: int = 3) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory", name, "--steps", str(steps)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=EPOCH_STEPS, help="training steps per implementation (default: one epoch)")
    parser.add_argument("--chunk", type=int, default=10, help="steps per interleaved chunk")
    parser.add_argument("--memory", choices=("ours", "seed"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        measure_memory(args.memory, args.steps)
        return
    diff = check_agreement()
    print(f"agreement check (no dropout, same weights): max |count difference| = {diff:g}")
    models = {name: build(name).train() for name in ("ours", "seed")}
    optimizers = {name: torch.optim.Adam(m.parameters(), 1e-4) for name, m in models.items()}
    seconds = {name: 0.0 for name in models}
    warm_x, warm_y = make_batches(2)
    for name in models:
        train_steps(models[name], optimizers[name], warm_x, warm_y)
    done = 0
    while done < args.steps:
        n = min(args.chunk, args.steps - done)
        images, labels = make_batches(n)
        for name in models:  # interleaved
            seconds[name] += train_steps(models[name], optimizers[name], images, labels)
        done += n
    peaks = {name: peak_in_subprocess(name) for name in models}
    threads = torch.get_num_threads()
    print(f"\nIIR MLP 784-500-500-10, dual-exp, T {STEPS_T}, batch {BATCH}, {args.steps} training steps, {threads} threads")
    print(f"{'implementation':<32}{'total s':>10}{'ms/step':>10}{'samples/s':>12}{'peak MiB':>10}")
    labels = {"ours": "cortexsnn IIRMLP", "seed": "seed-structure Python loops"}
    for name in models:
        ms = seconds[name] / args.steps * 1000
        print(f"{labels[name]:<32}{seconds[name]:>10.1f}{ms:>10.1f}{BATCH * 1000 / ms:>12.0f}{peaks[name]:>10.0f}")
    print(f"speed-up: {seconds['seed'] / seconds['ours']:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "iir_train",
                "workload": f"iir_mlp_dualexp_T{STEPS_T}_b{BATCH}_{args.steps}steps",
                "ours_s": round(seconds["ours"], 3),
                "reference": "seed002_structure_python_loops",
                "reference_s": round(seconds["seed"], 3),
                "speedup": round(seconds["seed"] / seconds["ours"], 3),
                "ours_peak_mib": round(peaks["ours"], 1),
                "reference_peak_mib": round(peaks["seed"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
