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

GPU (``--device cuda``, default 224 px): the same step on one CUDA device against SpikingJelly's
GPU neurons (its ``sj_lif`` operator picks, in its own order of preference, its compiled CUDA
kernel, else Triton, else the torch loop; ``--sj-impl`` forces one through
``SJ_LIF_CUDA_IMPLEMENTATION``; this SpikingJelly 2.0 has no CuPy backend). Ours runs its Triton
neuron kernel. Every timed step ends with ``torch.cuda.synchronize``; peak memory is the growth of
``torch.cuda.max_memory_allocated`` over two steps of a freshly built model, optimiser and input
(after ``reset_peak_memory_stats``), one implementation at a time in this process.

Usage: .venv/bin/python benchmarks/train_step.py [--res 64,224] [--rounds 3] [--no-memory]
       .venv/bin/python benchmarks/train_step.py --device cuda [--res 224] [--rounds 10] [--sj-impl auto]
"""
from __future__ import annotations

import argparse
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


def check_equal(res: int, channels_last: bool = False, device: torch.device | None = None) -> float:
    """One forward/backward of each from the same weights: max |grad difference|."""
    torch.manual_seed(0)
    theirs, reset = build_spikingjelly()
    ours, _ = build_ours()
    ours.load_state_dict(theirs.state_dict())
    if channels_last:
        ours.set_channels_last(res)
    x, y = data(res)
    if device is not None:
        theirs, ours, x, y = theirs.to(device), ours.to(device), x.to(device), y.to(device)
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
    elif loss_diff > (1e-4 if device is None else 1e-2) * max(1.0, abs(grads[0][0])):
        # on a GPU, Triton's fused multiply-adds may round a potential differently and flip a few
        # spikes (the neurons' own GPU check compares them with the CPU reference): a tolerance
        raise SystemExit(f"losses differ at {res}px: SpikingJelly {grads[0][0]} vs ours {grads[1][0]}")
    elif device is not None:
        print(f"{res}px on {device}: loss {grads[1][0]:.6f} vs SpikingJelly {grads[0][0]:.6f}, "
              f"max |grad difference| {grad_diff:.2e}", flush=True)
    return grad_diff


def build_impl(impl: str, res: int):
    """``(network, reset)`` of one implementation by its name in the table."""
    return {"spikingjelly": build_spikingjelly, "cortexsnn": build_ours,
            "cortexsnn-cl": lambda: build_ours(channels_last_res=res),
            "cortexsnn-ckpt": lambda: build_ours(True),
            "cortexsnn-compact": lambda: build_ours(compact_spikes=True)}[impl]()


def memory_worker(impl: str, res: int) -> float:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net, reset = build_impl(impl, res)
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


def cuda_device(name: str, parser: argparse.ArgumentParser) -> torch.device:
    """The CUDA device named by ``--device``, or exit with one line saying why there is none."""
    if not name.startswith("cuda"):
        parser.exit(2, f"train_step.py: --device must be cpu or cuda[:N], got {name!r}\n")
    if not torch.cuda.is_available():
        parser.exit(2, f"train_step.py: --device {name} needs a CUDA GPU, and torch.cuda.is_available() is False "
                       f"here (torch {torch.__version__}, CUDA build {torch.version.cuda}); run it on a machine with "
                       "an NVIDIA GPU, or use --device cpu\n")
    try:
        device = torch.device(name)
        torch.cuda.get_device_properties(device)
    except (RuntimeError, AssertionError) as exc:
        parser.exit(2, f"train_step.py: no such CUDA device {name!r} ({torch.cuda.device_count()} visible): {exc}\n")
    return device


def synchronised(step, device: torch.device):
    """``step`` timed to the end of its GPU work (``torch.cuda.synchronize`` before and after)."""
    def run() -> float:
        torch.cuda.synchronize(device)
        loss = step()
        torch.cuda.synchronize(device)
        return loss

    return run


def cuda_peak_growth(impl: str, res: int, device: torch.device) -> float:
    """Peak GPU memory growth (MiB) over two training steps of a freshly built ``impl``: activations,
    gradients, optimiser state and workspaces, beyond the weights and the input."""
    import gc

    torch.manual_seed(0)
    net, reset = build_impl(impl, res)
    net = net.to(device)
    x, y = (t.to(device) for t in data(res))
    step = make_step(net, reset, x, y)
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    step()
    step()
    torch.cuda.synchronize(device)
    growth = (torch.cuda.max_memory_allocated(device) - start) / 2**20
    del net, step, x, y
    gc.collect()
    torch.cuda.empty_cache()
    return growth


def spikingjelly_cuda_implementation(device: torch.device) -> str:
    """The implementation SpikingJelly's LIF operator runs on ``device`` (``cuda``, ``triton`` or ``torch``)."""
    try:
        from spikingjelly.activation_based.functional import neuron_implementation

        return str(neuron_implementation("lif", device)["implementation"])
    except Exception as exc:  # an older SpikingJelly without the query: say so in the table
        return f"unknown ({type(exc).__name__})"


def main_cuda(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    device = cuda_device(args.device, parser)
    if args.sj_impl != "auto":
        os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = args.sj_impl  # read when SpikingJelly is imported
    names = torch.cuda.get_device_name(device)
    rows, lines = [], []
    for res in (int(r) for r in (args.res or "224").split(",")):
        grad_diff = check_equal(res, device=device)
        torch.manual_seed(0)
        theirs, reset = build_spikingjelly()
        sj_impl = spikingjelly_cuda_implementation(device)
        nets = {"cortexsnn": build_ours()[0], "cortexsnn-cl": build_ours(channels_last_res=res)[0],
                "cortexsnn-ckpt": build_ours(True)[0]}
        for net in nets.values():
            net.load_state_dict(theirs.state_dict())
        theirs = theirs.to(device)
        x, y = (t.to(device) for t in data(res))
        fns = {name: synchronised(make_step(net.to(device), lambda: None, x, y), device) for name, net in nets.items()}
        fns["spikingjelly"] = synchronised(make_step(theirs, reset, x, y), device)
        times = time_interleaved(fns, rounds=args.rounds, warmup=2)
        del fns, nets, theirs
        peaks = {name: None for name in times}
        if not args.no_memory:
            peaks = {name: cuda_peak_growth(name, res, device) for name in times}
        for name in times:
            rows.append([f"3x{res}x{res}", name if name != "spikingjelly" else f"spikingjelly ({sj_impl})",
                         f"{times[name] * 1e3:.1f}", f"{BATCH / times[name]:.1f}",
                         "-" if peaks[name] is None else f"{peaks[name]:.0f}",
                         f"{times['spikingjelly'] / times[name]:.2f}x",
                         "-" if peaks[name] is None or not peaks["spikingjelly"] else f"{peaks[name] / peaks['spikingjelly']:.2f}x"])
        print(f"{res}px: max |grad difference| vs SpikingJelly {grad_diff:.2e}; SpikingJelly's LIF ran {sj_impl}",
              flush=True)
        for variant, suffix in (("cortexsnn", ""), ("cortexsnn-cl", "_cl"), ("cortexsnn-ckpt", "_ckpt")):
            lines.append(summary_line("train_step", f"sew_resnet18_lif_T4_b8_{res}px_cuda{suffix}",
                                      times[variant], {"spikingjelly": times["spikingjelly"]},
                                      peaks[variant], {"spikingjelly": peaks["spikingjelly"]}))
    print_table(f"SEW-ResNet-18 training step (ADD, LIF tau 2, T 4, batch 8, SGD) on {names}, torch {torch.__version__}",
                ["input", "implementation", "ms/step", "images/s", "peak MiB", "speed vs SJ", "memory vs SJ"], rows)
    print()
    print_json_lines(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--res", default=None, help="input sizes, comma-separated (default 64,224 on cpu, 224 on cuda)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the issue's setting)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] (the 224 px GPU step)")
    parser.add_argument("--sj-impl", default="auto", choices=("auto", "cuda", "triton", "torch"),
                        help="SpikingJelly's GPU LIF implementation (auto: its own order, compiled CUDA, Triton, torch)")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        print(f"PEAK {memory_worker(args.memory_worker, int(args.res))}")
        return
    if args.device != "cpu":
        main_cuda(args, parser)
        return

    torch.set_num_threads(args.threads)
    rows, lines = [], []
    for res in (int(r) for r in (args.res or "64,224").split(",")):
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
