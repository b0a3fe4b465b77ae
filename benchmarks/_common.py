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


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each function, the functions run in turn each round so that
    a disturbance of the shared machine hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


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
