"""The device path of ``benchmarks/neurons.py``: multi-step LIF forward + backward on a GPU.

Each implementation runs in its own fresh process (a *worker*), one after the other:

* SpikingJelly 2.0 picks its CUDA implementation (``cuda`` = its compiled extension, ``triton``,
  ``torch``) once, at import, from ``SJ_LIF_CUDA_IMPLEMENTATION``: one process per choice;
* SpikingJelly's CuPy backend exists only in SpikingJelly <= 0.0.0.0.14 (2.0 replaced it by its
  compiled extension), which cannot be imported beside 2.0: it runs from the folder named by
  ``CORTEXSNN_BENCH_SJ_LEGACY`` (``pip install --target DIR spikingjelly==0.0.0.0.14``);
* peak GPU memory (``torch.cuda.max_memory_allocated``) is per process, and a library that fails
  (missing, no kernel for this GPU, a compile error) or hangs (``--worker-timeout``) costs its own row
  only.

Every implementation computes the same neuron as the CPU workloads (tau 2, input not decayed,
threshold 1, hard reset to 0, reset detached; Norse: 0.5 V + 0.5 I fed 2 X, reset never detached)
with the arc-tangent surrogate ``alpha / 2 / (1 + (pi/2 alpha x)^2)``, alpha 2 (the CPU workloads
use the fast sigmoid, which SpikingJelly's CuPy kernels do not have; Norse has no arc-tangent and keeps
SuperSpike: its gradient is not compared anyway).

Equality: each worker first runs a check input (the workload's batch, neurons and dtype, at most 16
steps, the same seed in every worker) and saves its spikes and the gradient of its input (for
Linear + LIF, of the Linear's input); the parent compares them with cortexsnn's. Spikes may differ only where arithmetic differs: a fused multiply-add on the GPU
(Triton contracts by default, the CPU kernel does not) moves ``H`` by one ulp, which flips a spike
only where ``H`` lies within that ulp of the threshold, and a library that keeps the potential in
float16 rounds it to 11 bits at every step. A spike that differs also changes that neuron's later
potentials, so the count is of neuron-steps. Allowed: at most 1e-4 of all neuron-steps in float32,
2e-2 in 16-bit formats. Gradients are compared on the neurons whose whole spike train matches:
max |diff| / max |ours| <= 1e-4 in float32 (as the CPU check), 2e-2 in 16-bit formats (each stored
gradient is rounded to 11 significant bits, and the rounding adds up over the time steps). A library
outside these bounds is shown but left out of the summary (marked ``not comparable``).

Timing: ``torch.cuda.synchronize()`` before and after each forward + backward, median and minimum of
``--rounds`` after two warm-up calls (the first compiles Triton / Inductor kernels). Peak memory:
``torch.cuda.reset_peak_memory_stats()`` before one more forward + backward, with gradients cleared
first; ``peak step MiB`` = peak allocated during the step - allocated before it (what the step
allocates: outputs, saved tensors, gradients), ``peak total MiB`` = peak allocated in the process
(inputs, weights and, for Linear + LIF, the weight gradient included). On the CPU (``--tiny`` runs
of the same code) the peak is the growth of the resident set (``PeakGrowth``).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

from _common import PeakGrowth, input_current, print_json_lines, print_table, summary_line


@dataclass(frozen=True)
class DeviceWorkload:
    steps: int
    batch: int
    n: int
    linear: bool
    dtype: str  # "float32" | "float16" | "bfloat16"
    about: str

    def shrunk(self) -> "DeviceWorkload":
        """The same workload at a size that runs in a second on a CPU (``--tiny``)."""
        return DeviceWorkload(min(self.steps, 6), min(self.batch, 2), min(self.n, 96), self.linear, self.dtype,
                              self.about + " (tiny)")


DEVICE_WORKLOADS = {
    "sj2-lif-32x64x65536-fp16": DeviceWorkload(
        32, 64, 65536, False, "float16",
        "SpikingJelly 2.0's multi-step LIF benchmark: 64 x 65,536 neurons, T 32, float16 "
        "(published, RTX 4090: Triton 3.37 ms, CuPy 5.19 ms, torch 41.87 ms)"),
    "on-linear-lif-500x16x16384": DeviceWorkload(
        500, 16, 16384, True, "float32",
        "the Open Neuromorphic benchmark: Linear(16,384, 16,384) + LIF, batch 16, T 500, float32 "
        "(published, RTX 4090: Norse + torch.compile 0.110 s, peak 5.43 GB; SpikingJelly CuPy 0.118 s)"),
    "on-linear-lif-500x16x16384-fp16": DeviceWorkload(
        500, 16, 16384, True, "float16",
        "the Open Neuromorphic benchmark in float16 (published, RTX 4090: Spyx float16 0.047 s)"),
}

# name -> (label, needs CUDA)
DEVICE_IMPLS = {
    "cortexsnn": ("cortexsnn LIFNode (fused kernel: Triton on CUDA)", False),
    "spikingjelly_triton": ("SpikingJelly 2.0 lif_multi_step, Triton", True),
    "spikingjelly_cuda": ("SpikingJelly 2.0 lif_multi_step, compiled CUDA extension", True),
    "spikingjelly_torch": ("SpikingJelly 2.0 lif_multi_step, torch", False),
    "spikingjelly_cupy": ("SpikingJelly 0.0.0.0.14 LIFNode, CuPy", True),
    "norse_compile": ("Norse LIFBoxCell + torch.compile (loop over T)", False),
    "norse": ("Norse LIFBoxCell, eager (loop over T)", False),
    "snntorch": ("snnTorch Leaky (loop over T)", False),
}
DEFAULT_DEVICE_IMPLS = ["cortexsnn", "spikingjelly_triton", "spikingjelly_cuda", "spikingjelly_torch",
                        "spikingjelly_cupy", "norse_compile", "snntorch"]
_SJ_CHOICE = {"spikingjelly_triton": "triton", "spikingjelly_cuda": "cuda", "spikingjelly_torch": "torch"}
LEGACY_ENV = "CORTEXSNN_BENCH_SJ_LEGACY"
SPIKES_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 2e-2}
GRAD_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 2e-2}


class ImplementationUnavailable(RuntimeError):
    """The library (or the backend asked of it) is not there; its row says why."""


# ----------------------------------------------------------------------------- worker side
def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def draw_sequence(steps: int, batch: int, n: int, linear: bool, dtype: torch.dtype, device: torch.device,
                  seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, grad_spikes)`` drawn on ``device`` from a fixed seed (the same in every worker), in
    float32 and then cast, so that every dtype sees the same values up to rounding."""
    gen = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(steps, batch, n, generator=gen, device=device)
    if not linear:
        x += 0.5  # LIF alone: a drive that makes it fire
    grad_spikes = torch.randn(steps, batch, n, generator=gen, device=device)
    return x.to(dtype), grad_spikes.to(dtype)


def draw_weights(n: int, dtype: torch.dtype, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear(n, n)``'s default initialisation, drawn from a fixed seed."""
    gen = torch.Generator(device=device).manual_seed(seed)
    bound = 1.0 / n**0.5
    weight = (torch.rand(n, n, generator=gen, device=device) * 2 - 1) * bound
    bias = (torch.rand(n, generator=gen, device=device) * 2 - 1) * bound
    return weight.to(dtype), bias.to(dtype)


def build_device(impl: str, n: int, weight, bias, device: torch.device, dtype: torch.dtype):
    """``(run(x) -> spikes, linear or None, what actually runs)`` for one implementation."""
    linear, current = input_current(n, weight, bias, norse=impl.startswith("norse"), device=device, dtype=dtype)

    if impl == "cortexsnn":
        from cortexsnn.neurons import ATan, LIFNode, reset
        from cortexsnn.neurons.kernels import resolve_backend

        node = LIFNode(tau=2.0, decay_input=False, v_reset=0.0, surrogate=ATan(2.0), detach_reset=True)
        backend = resolve_backend(None, device.type)
        if backend == "cpu" and dtype not in (torch.float32, torch.float64):
            backend = "torch"  # as the module does for 16-bit tensors on the CPU

        def run(x):
            reset(node)
            return node(current(x))

        return run, linear, f"cortexsnn backend {backend}"

    if impl in _SJ_CHOICE:
        choice = _SJ_CHOICE[impl]
        if os.environ.get("SJ_LIF_CUDA_IMPLEMENTATION") != choice:
            raise RuntimeError(f"worker for {impl} started without SJ_LIF_CUDA_IMPLEMENTATION={choice}")
        from spikingjelly.activation_based import functional, surrogate

        if not hasattr(functional, "neuron_implementation"):
            raise ImplementationUnavailable(
                f"spikingjelly {_version('spikingjelly')} has no selectable CUDA implementations "
                "(SpikingJelly 2.0 is needed)")
        used = "torch reference (CPU)"
        if device.type == "cuda":
            try:
                used = functional.neuron_implementation("lif", device)["implementation"]
            except RuntimeError as exc:  # e.g. the compiled extension is not in the wheel
                raise ImplementationUnavailable(str(exc).splitlines()[0][:300]) from exc
            if used != choice:
                raise ImplementationUnavailable(f"SpikingJelly selected {used!r} instead of {choice!r}")
        spike_fn = surrogate.ATan(alpha=2.0)

        def run(x):
            # the state in float32 (SpikingJelly's fused kernels take only a float32 V; its LIFNode
            # would give a float16 V for float16 inputs and fall back to the torch reference)
            v0 = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
            spikes, _, _ = functional.lif_multi_step(current(x), v0, 2.0, False, 1.0, 0.0, spike_fn, True)
            return spikes

        return run, linear, f"spikingjelly {_version('spikingjelly')} {used}"

    if impl == "spikingjelly_cupy":
        legacy = os.environ.get(LEGACY_ENV)
        if not legacy or not os.path.isdir(legacy):
            raise ImplementationUnavailable(
                f"set {LEGACY_ENV} to a folder holding spikingjelly 0.0.0.0.14 (CuPy backend; 2.0 has none)")
        import importlib.util

        if importlib.util.find_spec("cupy") is None:
            raise ImplementationUnavailable("cupy is not installed")
        from spikingjelly.activation_based import functional, neuron, surrogate

        if not os.path.abspath(neuron.__file__).startswith(os.path.abspath(legacy)):
            raise ImplementationUnavailable(f"spikingjelly was imported from {neuron.__file__}, not {legacy}")
        node = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="m",
                              backend="cupy")

        def run(x):
            functional.reset_net(node)
            return node(current(x))

        return run, linear, "spikingjelly 0.0.0.0.14 cupy"

    if impl in ("norse", "norse_compile"):
        from norse.torch import LIFBoxCell, LIFBoxParameters

        def scalar(value):
            return torch.as_tensor(value, device=device)

        params = LIFBoxParameters(tau_mem_inv=scalar(0.5), v_leak=scalar(0.0), v_th=scalar(1.0),
                                  v_reset=scalar(0.0), method="super", alpha=scalar(1.0))
        cell = LIFBoxCell(params, dt=1.0)
        # one time step compiled and called T times: compiling the whole T-step loop would unroll it
        step = torch.compile(cell) if impl == "norse_compile" else cell

        def run(x):
            cur = current(x) if linear is not None else 2.0 * x
            state, out = None, []
            for c in cur:
                z, state = step(c, state)
                out.append(z)
            return torch.stack(out)

        return run, linear, "norse " + ("torch.compile" if impl == "norse_compile" else "eager")

    if impl == "snntorch":
        import snntorch as snn
        from snntorch import surrogate

        leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero",
                          spike_grad=surrogate.atan(alpha=2.0)).to(device)

        def run(x):
            cur = current(x)
            mem, out = leaky.reset_mem(), []
            for c in cur:
                spk, mem = leaky(c, mem)
                out.append(spk)
            return torch.stack(out)

        return run, linear, "snntorch"

    raise ValueError(f"unknown implementation {impl!r}; choose from {sorted(DEVICE_IMPLS)}")


def _forward_backward(run, x, linear, grad_spikes):
    """One forward + backward; returns the spikes (detached)."""
    if linear is not None:
        linear.zero_grad(set_to_none=True)
    else:
        x.grad = None
    spikes = run(x)
    spikes.backward(grad_spikes if grad_spikes.dtype == spikes.dtype else grad_spikes.to(spikes.dtype))
    return spikes.detach()


def _clear_grads(x, linear) -> None:
    if linear is not None:
        linear.zero_grad(set_to_none=True)
    elif x is not None:
        x.grad = None


def device_worker(impl: str, workload_name: str, device_name: str, tiny: bool, rounds: int, check_path: str) -> None:
    """Check, time and measure one implementation on one workload; prints one JSON object.

    The check input has the timed input's batch and neurons (so a compiled step is compiled once
    for both) and at most 16 steps; its spikes and input gradient go to ``check_path``.
    """
    device = torch.device(device_name)
    workload = DEVICE_WORKLOADS[workload_name].shrunk() if tiny else DEVICE_WORKLOADS[workload_name]
    dtype = _dtype(workload.dtype)
    weight, bias = draw_weights(workload.n, dtype, device) if workload.linear else (None, None)
    try:
        run, lin, used = build_device(impl, workload.n, weight, bias, device, dtype)
    except ImplementationUnavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        return
    del weight, bias
    check_steps = min(workload.steps, 16)
    x_check, grad_check = draw_sequence(check_steps, workload.batch, workload.n, workload.linear, dtype, device, seed=1)
    x_check.requires_grad_(True)
    spikes = run(x_check)
    spikes.backward(grad_check.to(spikes.dtype))
    torch.save({"spikes": (spikes != 0).cpu(), "grad": x_check.grad.cpu()}, check_path)
    del x_check, grad_check, spikes
    _clear_grads(None, lin)

    x, grad_spikes = draw_sequence(workload.steps, workload.batch, workload.n, workload.linear, dtype, device, seed=0)
    x.requires_grad_(lin is None)
    spikes = _forward_backward(run, x, lin, grad_spikes)  # warm-up 1: compilation, caches
    spike_count = int(spikes.float().sum().item())
    out_dtype = str(spikes.dtype).replace("torch.", "")
    # a library whose spikes come out in another dtype (snnTorch's arc-tangent gives float32 for
    # float16 inputs) gets its gradient in that dtype once, not converted inside every timed step
    grad_spikes = grad_spikes.to(spikes.dtype)
    del spikes
    _forward_backward(run, x, lin, grad_spikes)  # warm-up 2
    samples = []
    for _ in range(rounds):
        _synchronize(device)
        start = time.perf_counter()
        _forward_backward(run, x, lin, grad_spikes)
        _synchronize(device)
        samples.append(time.perf_counter() - start)
    _clear_grads(x, lin)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _forward_backward(run, x, lin, grad_spikes)
        torch.cuda.synchronize(device)
        total = torch.cuda.max_memory_allocated(device)
        step_peak, total_peak = (total - before) / 2**20, total / 2**20
    else:
        with PeakGrowth() as peak:
            _forward_backward(run, x, lin, grad_spikes)
        step_peak, total_peak = peak.growth, None
    print(json.dumps({"median_s": statistics.median(samples), "min_s": min(samples), "rounds": rounds,
                      "peak_step_mib": step_peak, "peak_total_mib": total_peak, "spike_count": spike_count,
                      "spike_dtype": out_dtype, "implementation": used}))


# ----------------------------------------------------------------------------- parent side
def _run_worker(script: str, impl: str, workload: str, device: str, tiny: bool, rounds: int, check_path: str,
                timeout: float) -> dict:
    env = dict(os.environ)
    env.pop("SJ_LIF_CUDA_IMPLEMENTATION", None)
    if impl in _SJ_CHOICE:
        env["SJ_LIF_CUDA_IMPLEMENTATION"] = _SJ_CHOICE[impl]
    if impl == "spikingjelly_cupy" and env.get(LEGACY_ENV):
        # SpikingJelly 0.0.0.0.14 first on the path, ahead of the 2.0 installed beside the others
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env[LEGACY_ENV], env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, script, "--device-worker", impl, workload, "--device", device, "--rounds", str(rounds),
           "--check-file", check_path] + (["--tiny"] if tiny else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"no result within {timeout:.0f} s (--worker-timeout)"}
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = [line for line in out.stderr.strip().splitlines() if line.strip()]
        return {"failed": (tail[-1] if tail else f"exit status {out.returncode}")[:300]}
    return json.loads(lines[-1])


def compare_with_ours(ours: dict, theirs: dict, dtype: str, compare_grad: bool) -> tuple[bool, str, dict]:
    """``(comparable, note, figures)`` for one library's check tensors against cortexsnn's."""
    if theirs["spikes"].shape != ours["spikes"].shape:
        return False, f"spikes of shape {tuple(theirs['spikes'].shape)}, ours {tuple(ours['spikes'].shape)}", {}
    differ = ours["spikes"] != theirs["spikes"]
    mismatched = int(differ.sum())
    fraction = mismatched / differ.numel()
    figures = {"spikes_differing": mismatched, "spikes_differing_fraction": fraction}
    if fraction > SPIKES_TOLERANCE[dtype]:
        return False, f"{mismatched} of {differ.numel()} spikes differ from cortexsnn ({fraction:.1e})", figures
    note = f"spikes: {mismatched} of {differ.numel()} differ"
    if not compare_grad:
        return True, note + "; gradient not compared (Norse never detaches the reset)", figures
    ours_grad, their_grad = ours["grad"], theirs["grad"]
    if ours_grad.shape != their_grad.shape:
        return False, f"gradient shape {tuple(their_grad.shape)} != {tuple(ours_grad.shape)}", figures
    ours_grad, their_grad = ours_grad.float(), their_grad.float()
    same = ~differ.any(dim=0)  # the neurons whose whole spike train matches ours
    diff = (ours_grad - their_grad).abs()[:, same]
    scale = float(ours_grad.abs().max()) or 1.0
    relative = float(diff.max()) / scale if diff.numel() else 0.0
    figures["grad_max_rel_diff"] = relative
    if relative > GRAD_TOLERANCE[dtype]:
        return False, note + f"; gradient max |diff| / max |grad| {relative:.1e} > {GRAD_TOLERANCE[dtype]:.0e}", figures
    return True, note + f"; gradient max |diff| / max |grad| {relative:.1e}", figures


def _device_description(device: str) -> str:
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
                f"CUDA {torch.version.cuda}")
    return f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads"


def run_device_benchmarks(script: str, workloads: list[str], impls: list[str], device: str, tiny: bool,
                          rounds: int | None, worker_timeout: float) -> list[dict]:
    """Run every workload on ``device``; prints the tables and returns the JSON summaries."""
    description = _device_description(device)
    print(f"{description}{' (--tiny sizes)' if tiny else ''}", flush=True)
    summaries = []
    for name in workloads:
        workload = DEVICE_WORKLOADS[name].shrunk() if tiny else DEVICE_WORKLOADS[name]
        # Linear + LIF: about 0.1-0.3 s a step (the 16,384 x 16,384 products dominate): 5 rounds suffice
        n_rounds = rounds or (3 if tiny else (5 if workload.linear else 20))
        print(f"\n{name}: {workload.about}", flush=True)
        results, comparisons, ours_check = {}, {}, None
        with tempfile.TemporaryDirectory(prefix="cortexsnn-bench-") as tmp:
            for impl in sorted(impls, key=lambda i: i != "cortexsnn"):  # ours first: the others are checked against it
                needs_cuda = DEVICE_IMPLS[impl][1]
                if needs_cuda and not device.startswith("cuda"):
                    results[impl] = {"unavailable": "needs CUDA"}
                else:
                    path = os.path.join(tmp, f"{impl}.pt")
                    results[impl] = _run_worker(script, impl, name, device, tiny, n_rounds, path, worker_timeout)
                    if "median_s" in results[impl]:
                        check = torch.load(path, weights_only=True)
                        if impl == "cortexsnn":
                            ours_check = check
                        elif ours_check is not None:
                            comparisons[impl] = compare_with_ours(ours_check, check, workload.dtype,
                                                                  compare_grad=not impl.startswith("norse"))
                        os.remove(path)
                print(f"  {impl}: " + (f"{results[impl]['median_s'] * 1e3:.2f} ms" if "median_s" in results[impl]
                                       else results[impl].get("failed") or results[impl].get("unavailable")),
                      flush=True)
        summaries.append(_report(name, workload, impls, results, comparisons, description, n_rounds))
    return summaries


def _report(name, workload, impls, results, comparisons, description, rounds) -> dict:
    ours = results.get("cortexsnn", {})
    comparable, notes = {}, []
    for impl in impls:
        result = results[impl]
        if "median_s" not in result:
            continue
        if impl == "cortexsnn":
            comparable[impl] = True
            continue
        if impl not in comparisons:
            comparable[impl], note = False, "not checked: cortexsnn did not run"
        else:
            comparable[impl], note, figures = comparisons[impl]
            result.update(figures)
        result["check"] = note
        notes.append(f"{impl}: {note}" + ("" if comparable[impl] else "  -> not comparable, left out of the summary"))
    rows = []
    ours_s = ours.get("median_s")
    for impl in impls:
        result = results[impl]
        if "median_s" not in result:
            reason = f"failed: {result['failed']}" if "failed" in result else f"unavailable: {result.get('unavailable')}"
            rows.append([DEVICE_IMPLS[impl][0], "-", "-", "-", "-", "-", reason])
            continue
        total = result.get("peak_total_mib")
        rows.append([
            DEVICE_IMPLS[impl][0], f"{result['median_s'] * 1e3:.2f}", f"{result['min_s'] * 1e3:.2f}",
            f"{result['peak_step_mib']:.0f}", "-" if total is None else f"{total:.0f}",
            f"{result['median_s'] / ours_s:.2f}x" if ours_s else "-",
            result["implementation"] + ("" if comparable.get(impl, False) else " (not comparable)"),
        ])
    print_table(f"{name}: forward + backward, {description}, median of {rounds}",
                ["implementation", "median ms", "min ms", "peak step MiB", "peak total MiB", "median / ours", "runs"],
                rows)
    for note in notes:
        print(f"  {note}")
    counts = {impl: results[impl]["spike_count"] for impl in impls if "spike_count" in results[impl]}
    if counts:
        print("  spikes in the timed run: " + ", ".join(f"{impl} {count}" for impl, count in counts.items()))
    others = {impl: results[impl]["median_s"] for impl in impls
              if impl != "cortexsnn" and comparable.get(impl, False)}
    peaks = {impl: results[impl]["peak_step_mib"] for impl in others}
    if ours_s is None:
        line = {"benchmark": "neurons", "workload": name, "ours_s": None, "reference": None, "reference_s": None,
                "speedup": None, "ours_peak_mib": None, "reference_peak_mib": None,
                "error": ours.get("failed") or ours.get("unavailable")}
    elif not others:
        line = {"benchmark": "neurons", "workload": name, "ours_s": round(ours_s, 6), "reference": None,
                "reference_s": None, "speedup": None, "ours_peak_mib": round(ours["peak_step_mib"], 1),
                "reference_peak_mib": None}
    else:
        line = summary_line("neurons", name, ours_s, others, ours["peak_step_mib"], peaks)
        lowest = min(peaks, key=peaks.get)
        line["lowest_other_peak"] = lowest
        line["lowest_other_peak_mib"] = round(peaks[lowest], 1)
    line["device"] = description
    line["dtype"] = workload.dtype
    line["ours_peak_total_mib"] = None if ours.get("peak_total_mib") is None else round(ours["peak_total_mib"], 1)
    line["others"] = {impl: {key: result[key] for key in ("median_s", "min_s", "peak_step_mib", "peak_total_mib",
                                                           "implementation", "check") if key in result}
                      if "median_s" in result else {"error": result.get("failed") or result.get("unavailable")}
                      for impl, result in results.items() if impl != "cortexsnn"}
    return line


def print_summaries(summaries: list[dict]) -> None:
    print()
    print_json_lines(summaries)
