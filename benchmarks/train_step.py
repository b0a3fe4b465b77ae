#!/usr/bin/env python
"""One SGD training step of SEW-ResNet-18: cortexsnn vs SpikingJelly 2.0, same process, interleaved.

Workload (as in /work/shared/anchor-bench/sew_bench.py): SEW-ResNet-18, connect function ADD,
multi-step LIF neurons (tau 2, threshold 1, hard reset to 0, ATan alpha 2, detach_reset), T = 4
(the image repeated over time), a batch of 8 random images at 3x64x64 and 3x224x224, 1000
classes, cross-entropy on the time-averaged output, SGD (lr 0.1, momentum 0.9), 2 torch threads.

Both networks start from the same weights (SpikingJelly's state dict is loaded into ours), and
before timing one step of each is checked to give the same loss and gradients.
Variants of ours: `cortexsnn` (NCHW), `cortexsnn-cl` (`set_channels_last(res)`: NHWC stages
except those on maps under 8 px), `cortexsnn-ckpt` (activation checkpointing per stage).
Time: median seconds per step over interleaved rounds (ours, theirs, ours, ...).
Peak memory: in a fresh subprocess per implementation and resolution, the growth of the resident
set (VmHWM after reset of the high-water mark, see benchmarks/_common.PeakGrowth) over two
training steps, after the model, optimizer and input exist; it covers activations, gradients,
optimizer state and allocator caches.

Usage: .venv/bin/python benchmarks/train_step.py [--res 64,224] [--rounds 3] [--no-memory]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import PeakGrowth, print_json_lines, print_table, summary_line, time_interleaved  # noqa: E402

T, BATCH, CLASSES = 4, 8, 1000


def build_spikingjelly():
    from spikingjelly.activation_based import functional, neuron, surrogate
    from spikingjelly.activation_based.model import sew_resnet

    net = sew_resnet.sew_resnet18(pretrained=False, cnf="ADD", spiking_neuron=neuron.LIFNode, tau=2.0,
                                  v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(net, "m")
    return net, lambda: functional.reset_net(net)


def build_ours(checkpoint_stages: bool = False, channels_last_res: int = 0, compact_spikes: bool = False):
    from cortexsnn.models import create_model
    from cortexsnn.models.layers import set_compact_spikes

    net = create_model("sew_resnet18", neuron="lif", neuron_kwargs={"tau": 2.0}, checkpoint_stages=checkpoint_stages)
    if channels_last_res:
        net.set_channels_last(channels_last_res)
    set_compact_spikes(net, compact_spikes)
    return net, lambda: None  # our models reset their state at the start of forward


def make_step(net, reset, x, y):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        reset()
        out = net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def data(res: int):
    generator = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 3, res, res, generator=generator), torch.randint(0, CLASSES, (BATCH,), generator=generator)


def check_equal(res: int, channels_last: bool = False) -> float:
    """One forward/backward of each from the same weights: max |grad difference|."""
    torch.manual_seed(0)
    theirs, reset = build_spikingjelly()
    ours, _ = build_ours()
    ours.load_state_dict(theirs.state_dict())
    if channels_last:
        ours.set_channels_last(res)
    x, y = data(res)
    grads = []
    for net, do_reset in ((theirs, reset), (ours, lambda: None)):
        do_reset()
        loss = torch.nn.functional.cross_entropy(net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0), y)
        loss.backward()
        grads.append((loss.item(), [p.grad for p in net.parameters()]))
    grad_diff = max((a - b).abs().max().item() for a, b in zip(grads[0][1], grads[1][1]))
    loss_diff = abs(grads[0][0] - grads[1][0])
    if channels_last:
        # NHWC convolutions round differently, which flips a few spikes near the threshold: report
        # the difference (the float64 equality of the two layouts is tested in tests/models/test_fast_paths.py)
        print(f"{res}px channels-last: loss {grads[1][0]:.6f} vs SpikingJelly {grads[0][0]:.6f}, "
              f"max |grad difference| {grad_diff:.2e}", flush=True)
    elif loss_diff > 1e-4 * max(1.0, abs(grads[0][0])):
        raise SystemExit(f"losses differ at {res}px: SpikingJelly {grads[0][0]} vs ours {grads[1][0]}")
    return grad_diff


def memory_worker(impl: str, res: int) -> float:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net, reset = {"spikingjelly": build_spikingjelly, "cortexsnn": build_ours,
                  "cortexsnn-cl": lambda: build_ours(channels_last_res=res),
                  "cortexsnn-ckpt": lambda: build_ours(True),
                  "cortexsnn-compact": lambda: build_ours(compact_spikes=True)}[impl]()
    x, y = data(res)
    step = make_step(net, reset, x, y)
    with PeakGrowth() as peak:
        step()
        step()
    return peak.growth


def peak_in_subprocess(impl: str, res: int) -> float | None:
    env = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, __file__, "--memory-worker", impl, "--res", str(res)],
                          capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PEAK ")]
    if not lines:
        print(f"memory worker {impl} {res}px failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(lines[0].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", default="64,224")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the issue's setting)")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        print(f"PEAK {memory_worker(args.memory_worker, int(args.res))}")
        return

    torch.set_num_threads(args.threads)
    rows, lines = [], []
    for res in (int(r) for r in args.res.split(",")):
        grad_diff = check_equal(res)
        check_equal(res, channels_last=True)
        torch.manual_seed(0)
        theirs, reset = build_spikingjelly()
        ours, _ = build_ours()
        ours.load_state_dict(theirs.state_dict())
        ours_cl, _ = build_ours()
        ours_cl.load_state_dict(theirs.state_dict())
        ours_cl.set_channels_last(res)
        lean, _ = build_ours(checkpoint_stages=True)
        lean.load_state_dict(theirs.state_dict())
        x, y = data(res)
        fns = {"cortexsnn": make_step(ours, lambda: None, x, y),
               "cortexsnn-cl": make_step(ours_cl, lambda: None, x, y),
               "cortexsnn-ckpt": make_step(lean, lambda: None, x, y),
               "spikingjelly": make_step(theirs, reset, x, y)}
        times = time_interleaved(fns, rounds=args.rounds, warmup=1)
        peaks = {name: None for name in fns}
        if not args.no_memory:
            peaks = {name: peak_in_subprocess(name, res) for name in fns}
        for name in fns:
            rows.append([f"3x{res}x{res}", name, f"{times[name]:.3f}", f"{BATCH / times[name]:.2f}",
                         "-" if peaks[name] is None else f"{peaks[name]:.0f}",
                         f"{times['spikingjelly'] / times[name]:.2f}x",
                         "-" if peaks[name] is None or not peaks["spikingjelly"] else f"{peaks[name] / peaks['spikingjelly']:.2f}x"])
        print(f"{res}px: same loss; max |grad difference| vs SpikingJelly {grad_diff:.2e}", flush=True)
        for variant in ("cortexsnn", "cortexsnn-cl", "cortexsnn-ckpt"):
            suffix = {"cortexsnn": "", "cortexsnn-cl": "_cl", "cortexsnn-ckpt": "_ckpt"}[variant]
            line = summary_line("train_step", f"sew_resnet18_lif_T4_b8_{res}px{suffix}",
                                times[variant], {"spikingjelly": times["spikingjelly"]},
                                peaks[variant], {"spikingjelly": peaks["spikingjelly"]})
            lines.append(line)
    print_table(f"SEW-ResNet-18 training step (ADD, LIF tau 2, T 4, batch 8, SGD), {args.threads} thread(s)",
                ["input", "implementation", "s/step", "images/s", "peak MiB", "speed vs SJ", "memory vs SJ"], rows)
    print()
    print_json_lines(lines)


if __name__ == "__main__":
    main()
