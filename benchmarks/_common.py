"""Helpers shared by the benchmark scripts: timing, peak memory, the table and the JSON lines."""
from __future__ import annotations

import json
import resource
import statistics
import time
from typing import Callable, Sequence


def rss_peak_mib() -> float:
    """This process's peak resident set size so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakGrowth:
    """Peak growth of the resident set over a block of code (MiB), exact to the page.

    On entry the kernel's high-water mark (VmHWM) is reset to the current resident set (Linux:
    ``/proc/self/clear_refs`` = 5), so a transient peak before the block (imports, input creation)
    cannot hide the block's own; ``growth`` = VmHWM after the block - VmRSS at its start. Falls back
    to the ``ru_maxrss`` delta where the reset is unavailable (then it is a lower bound).
    """

    def __enter__(self) -> "PeakGrowth":
        import gc

        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            self._exact = True
            self._start = _status_mib("VmRSS")
        except OSError:
            self._exact = False
            self._start = rss_peak_mib()
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_mib("VmHWM") if self._exact else rss_peak_mib()
        self.growth = max(0.0, peak - self._start)


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the functions run in turn each round so that
    a disturbance of the shared machine hits all of them alike."""
    samples = time_interleaved_samples(fns, rounds, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def time_interleaved_samples(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of every call of each function (``rounds`` each), run in turn as in ``time_interleaved``."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def summary_line(benchmark: str, workload: str, ours_s: float, others: dict[str, float],
                 ours_peak: float | None, other_peaks: dict[str, float | None]) -> dict:
    """The JSON summary of one workload (reference = the fastest other implementation)."""
    reference = min(others, key=others.get)
    return {
        "benchmark": benchmark,
        "workload": workload,
        "ours_s": round(ours_s, 6),
        "reference": reference,
        "reference_s": round(others[reference], 6),
        "speedup": round(others[reference] / ours_s, 3),
        "ours_peak_mib": None if ours_peak is None else round(ours_peak, 1),
        "reference_peak_mib": None if other_peaks.get(reference) is None else round(other_peaks[reference], 1),
    }


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def print_json_lines(lines: Sequence[dict]) -> None:
    for line in lines:
        print(json.dumps(line))


def input_current(n: int, weight, bias, norse: bool, device=None, dtype=None):
    """``(linear or None, current(x))``: the input current of the neuron workloads, ``x`` itself or
    ``W x + b`` through an ``nn.Linear(n, n)`` holding ``weight`` and ``bias``. Norse integrates half
    the current (``0.5 I``), so its layer holds ``2 W`` and ``2 b``: every library sees the same
    current."""
    import torch
    from torch import nn

    linear = None
    if weight is not None:
        scale = 2.0 if norse else 1.0
        linear = nn.Linear(n, n, device=device, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(weight * scale)
            linear.bias.copy_(bias * scale)

    def current(x):
        return linear(x) if linear is not None else x

    return linear, current
