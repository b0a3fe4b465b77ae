#!/usr/bin/env python
"""Multi-step LIF forward + backward: cortexsnn vs snnTorch, SpikingJelly and Norse on CPU.

Workloads (batch 16):
  neuron-lif-64x16x4096   LIF alone on [T, B, N] = [64, 16, 4096]
  neuron-lif-16x16x512    LIF alone on [16, 16, 512]
  linear-lif-64x16x4096   Linear(4096, 4096) + LIF, T 64 (the Open Neuromorphic workload)

Every library computes the same neuron: H = 0.5 V + X (tau 2, input not decayed), spike when
H >= 1, hard reset to 0, fast-sigmoid surrogate 1 / (1 + |H - 1|)^2, reset path detached --
except Norse, whose reset is never detached and whose LIF box cell computes 0.5 V + 0.5 I (so it is
fed 2 X, the doubling included in its time). Spikes are checked equal across libraries before
timing, and gradients against ours where the reset is detached alike.

Times: medians over interleaved rounds in this process (so disturbances hit all alike).
Peak memory: each implementation runs once more in a fresh subprocess; the figure is the growth
of the peak resident set (Linux VmHWM, reset just before) during one forward + backward, over the
resident set after imports, input creation and a warm-up call on a smaller input. It counts what
the step allocates and keeps alive at its peak: outputs, saved tensors, gradients (for
linear-lif, also the 64 MiB weight gradient).

The backward pass starts from one fixed random gradient of the spikes, the same tensor for every
library (no loss reduction inside the timed step).

    python benchmarks/neurons.py [--quick] [--rounds N] [--no-memory] [--only WORKLOAD ...]

GPU workloads (``--device cuda``; ``benchmarks/_neurons_device.py`` says how they are run, checked
and measured): each implementation in its own process, against SpikingJelly 2.0 (Triton, its compiled
CUDA extension, torch), SpikingJelly 0.0.0.0.14's CuPy backend, Norse + torch.compile and snnTorch:
  sj2-lif-32x64x65536-fp16          LIF alone on [32, 64, 65536], float16 (SpikingJelly 2.0's benchmark)
  on-linear-lif-500x16x16384        Linear(16384, 16384) + LIF, T 500, batch 16 (Open Neuromorphic)
  on-linear-lif-500x16x16384-fp16   the same in float16

    python benchmarks/neurons.py --device cuda [--only WORKLOAD ...] [--impls IMPL ...] [--rounds N]
    python benchmarks/neurons.py --only on-linear-lif-500x16x16384 --tiny   # the same code on the CPU, tiny
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (PeakGrowth, input_current, print_json_lines, print_table, summary_line,  # noqa: E402
                     time_interleaved_samples)
from _neurons_device import (  # noqa: E402
    DEFAULT_DEVICE_IMPLS,
    DEVICE_IMPLS,
    DEVICE_WORKLOADS,
    device_worker,
    print_summaries,
    run_device_benchmarks,
)

WORKLOADS = {
    "neuron-lif-64x16x4096": (64, 16, 4096, False),
    "neuron-lif-16x16x512": (16, 16, 512, False),
    "linear-lif-64x16x4096": (64, 16, 4096, True),
}
IMPLS = ["cortexsnn", "snntorch", "spikingjelly", "spikingjelly_simple", "norse"]
LABELS = {
    "cortexsnn": "cortexsnn LIFNode (fused CPU kernel)",
    "snntorch": "snnTorch Leaky (loop over T)",
    "spikingjelly": "SpikingJelly LIFNode m-step (torch)",
    "spikingjelly_simple": "SpikingJelly SimpleLIFNode m-step",
    "norse": "Norse Lift(LIFBoxCell)",
}


def make_inputs(steps: int, batch: int, n: int, linear: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    if linear:
        bound = 1.0 / n**0.5
        weight = (torch.rand(n, n, generator=gen) * 2 - 1) * bound
        bias = (torch.rand(n, generator=gen) * 2 - 1) * bound
        x = torch.randn(steps, batch, n, generator=gen)
    else:
        weight = bias = None
        x = torch.randn(steps, batch, n, generator=gen) + 0.5
    return x, weight, bias


def build(impl: str, n: int, weight, bias):
    """Return ``run(x) -> spikes`` and the tensors whose gradients are compared."""
    linear, current = input_current(n, weight, bias, norse=impl == "norse")

    if impl == "cortexsnn":
        from cortexsnn.neurons import FastSigmoid, LIFNode, reset

        node = LIFNode(tau=2.0, decay_input=False, v_reset=0.0, surrogate=FastSigmoid(1.0), detach_reset=True)

        def run(x):
            reset(node)
            return node(current(x))

    elif impl == "snntorch":
        import snntorch as snn
        from snntorch import surrogate

        leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero", spike_grad=surrogate.fast_sigmoid(slope=1))

        def run(x):
            cur = current(x)  # the Linear on all T at once: snnTorch's fastest idiom here
            mem, out = leaky.reset_mem(), []
            for c in cur:
                spk, mem = leaky(c, mem)
                out.append(spk)
            return torch.stack(out)

    elif impl in ("spikingjelly", "spikingjelly_simple"):
        from spikingjelly.activation_based import functional, neuron, surrogate

        cls = neuron.LIFNode if impl == "spikingjelly" else neuron.SimpleLIFNode
        node = cls(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                   surrogate_function=surrogate.SuperSpike(alpha=1.0), detach_reset=True, step_mode="m")

        def run(x):
            functional.reset_net(node)
            return node(current(x))

    elif impl == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters, Lift

        params = LIFBoxParameters(tau_mem_inv=torch.as_tensor(0.5), v_leak=torch.as_tensor(0.0),
                                  v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0),
                                  method="super", alpha=torch.as_tensor(1.0))
        lifted = Lift(LIFBoxCell(params, dt=1.0))

        def run(x):
            cur = current(x) if linear is not None else 2.0 * x
            return lifted(cur)[0]

    else:
        raise ValueError(impl)
    return run, linear


def upstream_gradient(steps: int, batch: int, n: int, seed: int = 2) -> torch.Tensor:
    """The fixed gradient fed back into the spikes (the same tensor for every library).

    A fixed ``dL/dS`` keeps a loss reduction (e.g. ``.sum()``, whose own cost on a busy 2-core
    machine can exceed the neuron's on small workloads) out of the timing, and a random one
    checks the gradients more strictly than all ones.
    """
    return torch.randn(steps, batch, n, generator=torch.Generator().manual_seed(seed))


def step_fn(run, x, linear, grad_spikes):
    """One forward + backward with ``grad_spikes`` as the spikes' gradient."""
    def step():
        if linear is not None:
            linear.zero_grad(set_to_none=True)
        else:
            x.grad = None
        run(x).backward(grad_spikes)
    return step


def check_equal(workload, impls) -> list[str]:
    steps, batch, n, linear = WORKLOADS[workload]
    steps = min(steps, 16)  # a shorter run suffices for the equality check
    notes = []
    x, weight, bias = make_inputs(steps, batch, n, linear, seed=1)
    results = {}
    for impl in impls:
        run, lin = build(impl, n, weight, bias)
        xi = x.clone().requires_grad_(lin is None)
        spikes = run(xi)
        spikes.backward(upstream_gradient(steps, batch, n))
        grad = xi.grad if lin is None else lin.weight.grad * (0.5 if impl == "norse" else 1.0)
        results[impl] = (spikes.detach(), grad)
    ours_spikes, ours_grad = results["cortexsnn"]
    for impl, (spikes, grad) in results.items():
        mismatched = int((spikes != ours_spikes).sum())
        if mismatched:
            raise SystemExit(f"{workload}: {impl} gives {mismatched} different spikes from cortexsnn; not comparable")
        if impl != "norse":
            err = float((grad - ours_grad).abs().max())
            if err > 1e-4:
                raise SystemExit(f"{workload}: {impl} gradient differs from cortexsnn by {err:.2e}")
            notes.append(f"{impl}: same spikes, gradient max |diff| {err:.1e}")
        else:
            notes.append("norse: same spikes (gradient differs by design: Norse never detaches the reset)")
    return notes


def worker(impl: str, workload: str) -> None:
    """Print the peak-memory growth of one forward + backward of ``impl`` (fresh process)."""
    torch.set_num_threads(torch.get_num_threads())
    steps, batch, n, linear = WORKLOADS[workload]
    x, weight, bias = make_inputs(steps, batch, n, linear)
    run, lin = build(impl, n, weight, bias)
    small = make_inputs(2, batch, n, linear)[0].requires_grad_(lin is None)
    run(small).backward(upstream_gradient(2, batch, n))  # warm-up on the timed code path: lazy initialisation, kernel loading
    if lin is not None:
        lin.zero_grad(set_to_none=True)
    xi = x.requires_grad_(lin is None)
    step = step_fn(run, xi, lin, upstream_gradient(steps, batch, n))
    with PeakGrowth() as peak:
        step()
    print(json.dumps({"peak_mib": peak.growth}))


def measure_memory(impl: str, workload: str) -> float | None:
    out = subprocess.run([sys.executable, __file__, "--worker", impl, workload], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  (memory worker for {impl} failed: {out.stderr.strip()[-300:]})", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few rounds, small workload only (smoke test)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS) + list(DEVICE_WORKLOADS),
                        help="run only these workloads")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: the CPU workloads) or cuda (the GPU workloads: " + ", ".join(DEVICE_WORKLOADS)
                        + "); a GPU workload named with --only on the CPU runs the same code there")
    parser.add_argument("--impls", nargs="+", choices=list(DEVICE_IMPLS), default=None,
                        help="implementations for the GPU workloads (default: " + " ".join(DEFAULT_DEVICE_IMPLS) + ")")
    parser.add_argument("--tiny", action="store_true",
                        help="the GPU workloads at a size that runs in seconds (tests the code path on any device)")
    parser.add_argument("--worker-timeout", type=float, default=240.0,
                        help="seconds allowed to one implementation of a GPU workload (its own process)")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--device-worker", nargs=2, metavar=("IMPL", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument("--check-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.device_worker:
        device_worker(*args.device_worker, args.device, args.tiny, args.rounds or 3, args.check_file)
        return
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            parser.exit(2, f"neurons.py: --device {args.device} asked for, but CUDA is not available here (torch "
                           f"{torch.__version__}, CUDA build {torch.version.cuda}); run it on a machine with an NVIDIA "
                           "GPU, or use --device cpu\n")
        on_cpu_only = [w for w in args.only or [] if w in WORKLOADS]
        if on_cpu_only:
            parser.exit(2, f"neurons.py: {', '.join(on_cpu_only)} run on --device cpu only; on CUDA choose from "
                           f"{', '.join(DEVICE_WORKLOADS)}\n")
    elif args.device != "cpu":
        parser.exit(2, f"neurons.py: --device must be cpu or cuda[:N], got {args.device!r}\n")
    device_workloads = [w for w in args.only or [] if w in DEVICE_WORKLOADS]
    if args.device.startswith("cuda") and not args.only:
        device_workloads = list(DEVICE_WORKLOADS)
    if device_workloads:
        summaries = run_device_benchmarks(os.path.abspath(__file__), device_workloads,
                                          args.impls or DEFAULT_DEVICE_IMPLS, args.device, args.tiny, args.rounds,
                                          args.worker_timeout)
        print_summaries(summaries)
    if args.device.startswith("cuda") or (args.only and not any(w in WORKLOADS for w in args.only)):
        return
    cpu_main(args)


def cpu_main(args: argparse.Namespace) -> None:
    """The CPU workloads, timed interleaved in this process (see the module docstring)."""
    cpu_only = [w for w in args.only or [] if w in WORKLOADS]
    workloads = ["neuron-lif-16x16x512"] if args.quick else (cpu_only or list(WORKLOADS))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    summaries = []
    for workload in workloads:
        steps, batch, n, linear = WORKLOADS[workload]
        notes = check_equal(workload, IMPLS)
        x, weight, bias = make_inputs(steps, batch, n, linear)
        grad_spikes = upstream_gradient(steps, batch, n)
        fns = {}
        for impl in IMPLS:
            run, lin = build(impl, n, weight, bias)
            fns[impl] = step_fn(run, x.clone().requires_grad_(lin is None), lin, grad_spikes)
        rounds = args.rounds or (3 if args.quick else (41 if n <= 512 else 7))
        load_before = os.getloadavg()[0]
        samples = time_interleaved_samples(fns, rounds=rounds, warmup=1)
        times = {impl: statistics.median(values) for impl, values in samples.items()}
        best = {impl: min(values) for impl, values in samples.items()}
        load = (load_before + os.getloadavg()[0]) / 2
        peaks = {impl: (None if args.no_memory else measure_memory(impl, workload)) for impl in IMPLS}
        rows = []
        for impl in IMPLS:
            peak = peaks[impl]
            rows.append([LABELS[impl], f"{times[impl] * 1e3:.1f}", f"{best[impl] * 1e3:.1f}",
                         "-" if peak is None else f"{peak:.0f}", f"{times[impl] / times['cortexsnn']:.2f}x",
                         f"{best[impl] / best['cortexsnn']:.2f}x"])
        print_table(f"{workload}: forward + backward ({rounds} interleaved rounds, load average {load:.1f})",
                    ["implementation", "median ms", "min ms", "peak MiB", "median / ours", "min / ours"], rows)
        for note in notes:
            print(f"  {note}")
        print("  peak MiB: growth of the resident set's high-water mark during one forward + backward, "
              "each implementation in a fresh process (VmHWM reset just before the step)")
        others = {impl: times[impl] for impl in IMPLS if impl != "cortexsnn"}
        other_peaks = {impl: peaks[impl] for impl in others}
        summaries.append(summary_line("neurons", workload, times["cortexsnn"], others, peaks["cortexsnn"], other_peaks))
    print()
    print_json_lines(summaries)


if __name__ == "__main__":
    main()
