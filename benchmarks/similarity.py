#!/usr/bin/env python
"""Similarity metrics: cortexsnn vs rsatoolbox vs the seeds' plain numpy / scikit-learn procedure.

Workloads (issue 4, item 8), synthetic float32 data from a fixed seed (a shared 20-d latent plus
noise, so the representations are related):

* ``rsa``   - 2 RDMs (1 - Pearson) + Spearman, model ``[118 x 200,000]`` vs neural ``[118 x 2,000]``
* ``cka``   - linear CKA, same matrices
* ``svcca`` - SVCCA as Huang et al. (AAAI 2023) (TSVD to 40 dims on both sides, the seed's CCA, mean correlation)
* ``tsrsa`` - TSRSA (first frame dropped), ``[3,600 x 100,000]`` vs ``[3,600 x 1,800]``, analog
  (rectified, real-valued) model features, as a CNN's
* ``tsrsa-spikes`` - the same with 0/1 spikes as model features: what a spiking layer gives per frame
  in movie mode (Huang et al., NeurIPS 2024, spec "Movie, recurrent models": the layer's output at each time step);
  each unit spikes with a probability that follows the shared latent, so the frames are related

Implementations:

* ``ours``       - cortexsnn.similarity, defaults (float64 Gram accumulation; SVCCA via the exact
  truncated SVD of the stimuli x stimuli Gram matrix);
* ``ours-f32``   - the same with ``precision="float32"`` (float32 products, float64 accumulation);
* ``plain``      - the seeds' procedure written plainly: ``1 - np.corrcoef`` RDMs, upper triangles,
  ``argsort(argsort())`` ranks, ``np.corrcoef`` of the ranks; Kornblith et al.'s numpy linear CKA;
  scikit-learn ``TruncatedSVD(40, random_state=2022)`` + the reference CCA in numpy;
* ``rsatoolbox`` - ``Dataset`` + ``calc_rdm(method="correlation")`` + ``compare(method="spearman")``.

Values are checked against a float64 reference (scipy ``spearmanr`` on float64 ``np.corrcoef`` RDMs;
the exact float64 SVD for SVCCA; float64 numpy CKA): ``|value - reference| <= 1e-6`` is required.

Timing: all implementations run in this process, interleaved, median of ``--reps`` after a warm-up
(TSRSA: one run each, no warm-up; rsatoolbox's TSRSA runs in a subprocess with a time limit
``--rsatoolbox-limit`` and is reported as a lower bound when it hits it). Peak memory: each
implementation runs once more in a fresh subprocess that builds the same data, resets the kernel's
peak-RSS counter (``/proc/self/clear_refs``), runs, and reports ``VmHWM - VmRSS(before)`` in MiB.

Usage: ``python benchmarks/similarity.py [--quick] [--reps 3] [--workloads rsa,cka,svcca,tsrsa-spikes,tsrsa]``

GPU (``--device cuda``): the metrics take ``device=`` and compute in torch there, so the same
functions are timed on the GPU against themselves on the CPU (``--threads`` CPU threads), in this
process, interleaved, ``torch.cuda.synchronize()``-bounded (each returns a Python float, which waits
for the GPU anyway): ``cpu`` (float64), ``cuda`` (numpy in, the host-to-device copy timed),
``cuda-f32`` (``precision="float32"``), ``cuda-resident`` (inputs already torch tensors on the GPU, as a
GPU model's features are). Workloads ``rsa``, ``cka``, ``regression`` (TSVD-Regression, Huang et al.,
AAAI 2023, on the ``rsa`` matrices) and ``tsrsa``. Values: within 1e-6 of the float64 reference
(``regression``: of the CPU value). Peak: ``torch.cuda.max_memory_allocated`` over one call (MiB).

    python benchmarks/similarity.py --device cuda [--quick] [--reps 3] [--workloads rsa,cka,regression,tsrsa]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FULL = {"static": (118, 200_000, 2_000), "movie": (3_600, 100_000, 1_800), "movie-spikes": (3_600, 100_000, 1_800)}
QUICK = {"static": (118, 20_000, 2_000), "movie": (600, 10_000, 300), "movie-spikes": (600, 10_000, 300)}
WORKLOAD_DATA = {"rsa": "static", "cka": "static", "svcca": "static", "tsrsa": "movie", "tsrsa-spikes": "movie-spikes",
                 "regression": "static"}
IMPLS = {
    "rsa": ["ours", "ours-f32", "plain", "rsatoolbox"],
    "cka": ["ours", "ours-f32", "plain"],
    "svcca": ["ours", "plain"],
    "tsrsa": ["ours", "ours-f32", "plain", "rsatoolbox"],
    "tsrsa-spikes": ["ours", "plain", "rsatoolbox"],  # ours is exact on spikes: no float32 variant
}


# ----------------------------------------------------------------------------- data
def make_data(n: int, p: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``X [n x p]`` and ``Y [n x q]`` sharing a 20-d latent; built in column blocks so that
    generation never holds a float64 copy of ``X`` (keeps the peak-memory figures clean)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 20))

    def build(cols: int) -> np.ndarray:
        out = np.empty((n, cols), dtype=np.float32)
        for start in range(0, cols, 4096):
            stop = min(cols, start + 4096)
            block = z @ rng.standard_normal((20, stop - start)) + 0.5 * rng.standard_normal((n, stop - start))
            out[:, start:stop] = np.maximum(block, 0.0)  # rectified, like a ReLU layer / firing rates
        return out

    return build(p), build(q)


def make_spike_data(n: int, p: int, q: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """0/1 float32 spikes ``X [n x p]`` (unit f spikes in frame t with probability
    ``sigmoid(z_t . w_f - 2)``, about 15% on average) and analog ``Y [n x q]`` from the same latent."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 20))
    x = np.empty((n, p), dtype=np.float32)
    for start in range(0, p, 4096):
        stop = min(p, start + 4096)
        drive = z @ (0.5 * rng.standard_normal((20, stop - start))) - 2.0
        x[:, start:stop] = rng.random((n, stop - start)) < 1.0 / (1.0 + np.exp(-drive))
    y = np.maximum(z @ rng.standard_normal((20, q)) + 0.5 * rng.standard_normal((n, q)), 0.0).astype(np.float32)
    return x, y


def workload_data(kind: str, sizes: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    return make_spike_data(*sizes) if kind == "movie-spikes" else make_data(*sizes)


# ----------------------------------------------------------------------------- plain procedures
def plain_rdm(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.corrcoef(x)


def plain_spearman_seed(a: np.ndarray, b: np.ndarray) -> float:
    """The seeds' ranking: argsort(argsort()) (ties not averaged), then Pearson of the ranks."""
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def plain_rsa(x: np.ndarray, y: np.ndarray) -> float:
    iu = np.triu_indices(x.shape[0], 1)
    return plain_spearman_seed(plain_rdm(x)[iu], plain_rdm(y)[iu])


def plain_tsrsa(x: np.ndarray, y: np.ndarray) -> float:
    return plain_rsa(x[1:], y[1:])


def plain_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s reference: gram_linear, center_gram, cka (float64)."""
    def centred_gram(m):
        g = m.astype(np.float64) @ m.astype(np.float64).T
        means = g.mean(axis=0)
        g -= means[:, None]
        g -= means[None, :]
        g += means.mean()
        return g

    k, l = centred_gram(x), centred_gram(y)
    return float((k * l).sum() / (np.linalg.norm(k) * np.linalg.norm(l)))


def numpy_seed_cca(a: np.ndarray, b: np.ndarray) -> float:
    """The seed's CCA (Raghu et al.'s reference code, epsilon 0) on samples x dims inputs."""
    dx = a.shape[1]
    cov = np.cov(a.T, b.T)
    sxx, sxy, syy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    xm, ym = np.abs(sxx).max(), np.abs(syy).max()

    def inv_sqrt(m):
        w, v = np.linalg.eigh(np.linalg.pinv(m))
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    arr = inv_sqrt(sxx / xm) @ (sxy / np.sqrt(xm * ym)) @ inv_sqrt(syy / ym)
    return float(np.abs(np.linalg.svd(arr, compute_uv=False)).mean())


def plain_svcca(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.decomposition import TruncatedSVD

    a = TruncatedSVD(40, random_state=2022).fit_transform(x)
    b = TruncatedSVD(40, random_state=2022).fit_transform(y)
    return numpy_seed_cca(a, b)


# ----------------------------------------------------------------------------- rsatoolbox
def rsatoolbox_rsa(x: np.ndarray, y: np.ndarray) -> float:
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    a = calc_rdm(Dataset(x), method="correlation")
    b = calc_rdm(Dataset(y), method="correlation")
    return float(compare(a, b, method="spearman")[0, 0])


def rsatoolbox_tsrsa(x: np.ndarray, y: np.ndarray) -> float:
    return rsatoolbox_rsa(x[1:], y[1:])


# ----------------------------------------------------------------------------- ours
def ours(workload: str, precision: str):
    import cortexsnn.similarity as S

    if workload == "rsa":
        return lambda x, y: S.rsa(x, y, precision=precision)
    if workload.startswith("tsrsa"):
        return lambda x, y: S.tsrsa(x, y, precision=precision)
    if workload == "cka":
        return lambda x, y: S.linear_cka(x, y, precision=precision)
    if workload == "svcca":
        return lambda x, y: S.svcca(x, y)
    raise ValueError(workload)


def implementation(workload: str, name: str):
    if name == "ours":
        return ours(workload, "float64")
    if name == "ours-f32":
        return ours(workload, "float32")
    if name == "plain":
        return {"rsa": plain_rsa, "tsrsa": plain_tsrsa, "tsrsa-spikes": plain_tsrsa, "cka": plain_linear_cka,
                "svcca": plain_svcca}[workload]
    if name == "rsatoolbox":
        return {"rsa": rsatoolbox_rsa, "tsrsa": rsatoolbox_tsrsa, "tsrsa-spikes": rsatoolbox_tsrsa}[workload]
    raise ValueError(name)


# ----------------------------------------------------------------------------- float64 references
def reference_value(workload: str, x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if workload in ("rsa", "tsrsa", "tsrsa-spikes"):
        if workload.startswith("tsrsa"):
            x, y = x[1:], y[1:]
        iu = np.triu_indices(x.shape[0], 1)
        return float(spearmanr(plain_rdm(x)[iu], plain_rdm(y)[iu]).statistic)
    if workload == "cka":
        return plain_linear_cka(x, y)
    if workload == "svcca":
        def exact_scores(m):
            u, s, _ = np.linalg.svd(m.astype(np.float64), full_matrices=False)
            return u[:, :40] * s[:40]

        return numpy_seed_cca(exact_scores(x), exact_scores(y))
    raise ValueError(workload)


# ----------------------------------------------------------------------------- memory (child)
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _limit_threads(n: int) -> None:
    """Same thread count for torch (OpenMP) and numpy's BLAS (OpenBLAS), for every implementation."""
    import threadpoolctl
    import torch

    torch.set_num_threads(n)
    threadpoolctl.threadpool_limits(n)


def child_peak(workload: str, name: str, sizes: tuple[int, int, int]) -> None:
    """Run one implementation once in this fresh process and print its peak extra RSS (MiB)."""
    import torch

    _limit_threads(int(os.environ.get("BENCH_THREADS", "2")))
    x, y = workload_data(WORKLOAD_DATA[workload], sizes)
    fn = implementation(workload, name)
    import cortexsnn.similarity  # noqa: F401  (imports are not part of the peak)
    if name == "rsatoolbox":
        import rsatoolbox.rdm  # noqa: F401
    if name == "plain":
        import sklearn.decomposition  # noqa: F401
        import scipy.stats  # noqa: F401
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    value = fn(x, y)
    elapsed = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    print(json.dumps({"peak_mib": (peak - before) / 1024.0, "hwm_reset": reset, "value": value, "seconds": elapsed}))


def measure_peak(workload: str, name: str, sizes, limit: float | None = None) -> dict | None:
    cmd = [sys.executable, __file__, "--child", workload, name, "--sizes", ",".join(map(str, sizes))]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=True)
    except subprocess.TimeoutExpired:
        return None
    except subprocess.CalledProcessError as err:
        print(err.stderr[-2000:], file=sys.stderr)
        raise
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- GPU
DEVICE_IMPLS = ["cpu", "cuda", "cuda-f32", "cuda-resident"]


def device_metric(workload: str, precision: str, device: str):
    """``fn(x, y) -> float``: cortexsnn's metric for ``workload`` computed on ``device``."""
    import cortexsnn.similarity as S

    if workload == "rsa":
        return lambda x, y: S.rsa(x, y, precision=precision, device=device)
    if workload.startswith("tsrsa"):
        return lambda x, y: S.tsrsa(x, y, precision=precision, device=device)
    if workload == "cka":
        return lambda x, y: S.linear_cka(x, y, precision=precision, device=device)
    if workload == "regression":
        if precision != "float64":
            raise ValueError("tsvd_regression computes in float64 only")
        return lambda x, y: S.tsvd_regression(x, y, device=device)
    if workload == "svcca":
        if precision != "float64":
            raise ValueError("svcca computes in float64 only")
        return lambda x, y: S.svcca(x, y, device=device)
    raise ValueError(workload)


def device_main(args) -> None:
    """``--device cuda``: the metrics on the GPU against the same metrics on the CPU (any torch
    device runs the same code: the tests use the CPU for it)."""
    import torch

    import cortexsnn

    _limit_threads(args.threads)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if on_gpu else f"{device.type} (as the device)"

    def synchronize():
        if on_gpu:
            torch.cuda.synchronize(device)

    print(f"cortexsnn {cortexsnn.__version__}, torch {torch.__version__}, CUDA {torch.version.cuda}, {name}, "
          f"{os.cpu_count()} CPUs, CPU threads {args.threads}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    sizes_by_data = QUICK if args.quick else FULL
    results = []
    for workload in args.workloads.split(","):
        kind = WORKLOAD_DATA[workload]
        x, y = workload_data(kind, sizes_by_data[kind])
        print(f"\n== {workload}: X {x.shape} vs Y {y.shape} (float32)", flush=True)
        xg, yg = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        fns = {}
        for impl in DEVICE_IMPLS:
            if impl == "cuda-f32" and workload in ("regression", "svcca"):
                continue  # float64 only
            metric = device_metric(workload, "float32" if impl == "cuda-f32" else "float64",
                                   "cpu" if impl == "cpu" else args.device)
            fns[impl] = (lambda m: (lambda a, b: m(xg, yg)))(metric) if impl == "cuda-resident" else metric

        def synchronised(fn):
            def call(a, b):
                synchronize()
                value = fn(a, b)
                synchronize()
                return value
            return call

        big = kind.startswith("movie")
        med, values = timed_interleaved({k: synchronised(f) for k, f in fns.items()}, x, y,
                                        reps=1 if big else args.reps, warmup=not big)
        if workload == "regression":
            ref, ref_name = values["cpu"], "ours on the CPU"
        else:
            ref, ref_name = reference_value(workload, x, y), "float64 reference"
        peaks = {}
        for impl, fn in fns.items():
            if impl == "cpu" or not on_gpu:
                continue
            synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            fn(x, y)
            synchronize()
            peaks[impl] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        print(f"  {'impl':14s} {'median s':>10s} {'value':>16s} {'|value - ref|':>14s} {'GPU peak MiB':>13s} {'CPU / this':>11s}")
        for impl in fns:
            err = abs(values[impl] - ref)
            peak = peaks.get(impl)
            print(f"  {impl:14s} {med[impl]:10.4f} {values[impl]:16.10f} {err:14.2e} "
                  f"{'-' if peak is None else f'{peak:.1f}':>13s} {med['cpu'] / med[impl]:10.2f}x")
        print(f"  reference: {ref_name} {ref:.10f}")
        for impl in fns:
            if impl == "cpu":
                continue
            err = abs(values[impl] - ref)
            if err > 1e-6:
                print(f"  !! {impl} differs from the {ref_name} by {err:.2e} > 1e-6")
            results.append({
                "benchmark": "similarity",
                "workload": f"{workload} {x.shape[0]}x{x.shape[1]} vs {y.shape[0]}x{y.shape[1]} ({impl})",
                "ours_s": med[impl],
                "reference": "cpu",
                "reference_s": med["cpu"],
                "speedup": med["cpu"] / med[impl],
                "ours_peak_mib": peaks.get(impl),
                "reference_peak_mib": None,
                "ours_abs_err_vs_reference": err,
                "device": name,
                "cpu_threads": args.threads,
            })
    print()
    for r in results:
        print(json.dumps(r))


# ----------------------------------------------------------------------------- main
def timed_interleaved(fns: dict, x, y, reps: int, warmup: bool) -> tuple[dict, dict]:
    times = {k: [] for k in fns}
    values = {}
    if warmup:
        for k, fn in fns.items():
            values[k] = fn(x, y)
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            values[k] = fn(x, y)
            times[k].append(time.perf_counter() - t0)
            print(f"    {k:11s} {times[k][-1]:9.3f} s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}, values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small matrices (smoke run, ~1 minute)")
    ap.add_argument("--reps", type=int, default=3, help="timed repeats for the 118-stimulus workloads")
    ap.add_argument("--workloads", default="rsa,cka,svcca,tsrsa-spikes,tsrsa")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-implementation peak-memory runs")
    ap.add_argument("--rsatoolbox-limit", type=float, default=600.0,
                    help="seconds allowed to rsatoolbox's TSRSA run (subprocess); beyond it a lower bound is reported")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads for torch and numpy's BLAS alike (1 gives the steadiest ratios on a loaded machine)")
    ap.add_argument("--skip", default="", help="comma-separated implementations to leave out, e.g. rsatoolbox")
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu",
                    help="cpu (default: ours against rsatoolbox and the plain procedures) or cuda (ours on the GPU "
                         "against ours on the CPU; workloads rsa,cka,regression,tsrsa by default)")
    args = ap.parse_args()
    os.environ["BENCH_THREADS"] = str(args.threads)
    if args.child:
        child_peak(args.child[0], args.child[1], tuple(int(v) for v in args.sizes.split(",")))
        return
    if args.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            print(f"similarity.py: --device {args.device} asked for, but CUDA is not available here "
                  f"(torch {torch.__version__}); run it on a machine with an NVIDIA GPU", file=sys.stderr)
            raise SystemExit(2)
        if args.workloads == ap.get_default("workloads"):
            args.workloads = "rsa,cka,regression,tsrsa"
        device_main(args)
        return

    import torch

    import cortexsnn

    _limit_threads(args.threads)
    sizes_by_data = QUICK if args.quick else FULL
    print(f"cortexsnn {cortexsnn.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {os.cpu_count()} CPUs, torch + BLAS threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    results = []
    data_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for workload in args.workloads.split(","):
        kind = WORKLOAD_DATA[workload]
        sizes = sizes_by_data[kind]
        if kind not in data_cache:
            data_cache.clear()
            data_cache[kind] = workload_data(kind, sizes)
        x, y = data_cache[kind]
        print(f"\n== {workload}: X {x.shape} vs Y {y.shape} (float32)", flush=True)
        big = kind.startswith("movie")
        names = [n for n in IMPLS[workload] if n not in args.skip.split(",")]
        in_process = [n for n in names if not (big and n == "rsatoolbox")]
        fns = {n: implementation(workload, n) for n in in_process}
        med, values = timed_interleaved(fns, x, y, reps=1 if big else args.reps, warmup=not big)
        ref = reference_value(workload, x, y)
        peaks = {}
        if big and "rsatoolbox" in names:
            print(f"    rsatoolbox  (subprocess, limit {args.rsatoolbox_limit:.0f} s) ...", flush=True)
            r = measure_peak(workload, "rsatoolbox", sizes, limit=args.rsatoolbox_limit)
            if r is None:  # hit the limit: no time, value or peak (and no unlimited re-run below)
                med["rsatoolbox"], values["rsatoolbox"], peaks["rsatoolbox"] = float("inf"), float("nan"), float("nan")
            else:
                med["rsatoolbox"], values["rsatoolbox"], peaks["rsatoolbox"] = r["seconds"], r["value"], r["peak_mib"]
        if not args.no_memory:
            for n in names:
                if n in peaks:
                    continue
                r = measure_peak(workload, n, sizes)
                peaks[n] = r["peak_mib"] if r else float("nan")
        print(f"  {'impl':11s} {'median s':>10s} {'value':>16s} {'|value - float64 ref|':>22s} {'peak extra MiB':>15s}")
        for n in names:
            err = abs(values[n] - ref) if np.isfinite(values[n]) else float("nan")
            t = med[n]
            shown = f"> {args.rsatoolbox_limit:.0f}" if not np.isfinite(t) else f"{t:.3f}"
            print(f"  {n:11s} {shown:>10s} {values[n]:16.10f} {err:22.2e} {peaks.get(n, float('nan')):15.1f}")
        print(f"  float64 reference value: {ref:.10f}")
        for variant in [n for n in names if n.startswith("ours")]:
            if abs(values[variant] - ref) > 1e-6:
                print(f"  !! {variant} differs from the float64 reference by {abs(values[variant] - ref):.2e} > 1e-6")
            others = [n for n in names if not n.startswith("ours")]
            fastest = min(others, key=lambda n: med[n])
            for other in others:
                limit_note = " (lower bound: hit the time limit)" if not np.isfinite(med[other]) else ""
                t_other = args.rsatoolbox_limit if not np.isfinite(med[other]) else med[other]
                print(f"  speedup {variant} vs {other}: {t_other / med[variant]:.2f}x{limit_note}")
            t_fast = args.rsatoolbox_limit if not np.isfinite(med[fastest]) else med[fastest]
            results.append({
                "benchmark": "similarity",
                "workload": f"{workload} {x.shape[0]}x{x.shape[1]} vs {y.shape[0]}x{y.shape[1]}"
                            + ("" if variant == "ours" else " (ours precision=float32)"),
                "ours_s": med[variant],
                "reference": fastest,
                "reference_s": t_fast,
                "speedup": t_fast / med[variant],
                "ours_peak_mib": peaks.get(variant),
                "reference_peak_mib": peaks.get(fastest),
                "ours_abs_err_vs_float64": abs(values[variant] - ref),
            })
    print()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
