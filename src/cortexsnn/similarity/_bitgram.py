"""Exact Gram matrices of spike matrices: AND + POPCNT on packed bits (``bitgram_cpu.c``).

The features of a spiking layer are spike counts: 0/1 spikes per frame in movie mode, small sums
after a SEW ``ADD``. For 0/1 features the products ``x_i . x_j`` are the numbers of features where
both rows spike, which packed bits give exactly at one AND + POPCNT per 64 features, instead of 64
floating-point multiply-adds. :func:`scan` reads the matrix once (packing it on the way) and says
what it holds: 0/1 values (use :func:`bit_gram`), other integers below ``2**24`` (float32 products
of them are exact while partial sums stay below ``2**24``), or anything else.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cortexsnn.utils.cbuild import CKernel, KernelBuildError

_SOURCE = Path(__file__).with_name("bitgram_cpu.c")
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c11"]


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.bit_gram.argtypes = [p, i64, i64, i64, i64, p]
    lib.bit_gram.restype = None
    for name in ("scan_pack_f32", "scan_pack_f64"):
        fn = getattr(lib, name)
        fn.argtypes = [p, i64, i64, i64, i64, p, i64, p, p]
        fn.restype = ctypes.c_int


#: The compiled kernel (built on first use); calling it gives ``None`` (with one warning) if that fails.
kernel = CKernel(_SOURCE, _FLAGS, "bitgram_cpu", _declare, "the spike Gram kernel",
                 "spike features take the (slower) BLAS path")


@dataclass
class Scan:
    """What :func:`scan` found: ``kind`` is ``"binary"`` (``bits`` holds the packed rows),
    ``"integer"`` (non-negative integers up to ``top``) or ``"other"``; ``sums`` are the exact
    row sums (for the first two kinds)."""

    kind: str
    bits: np.ndarray | None = None
    sums: np.ndarray | None = None
    top: float = 0.0


def _row_ranges(n: int, pieces: int, triangle: bool) -> list[tuple[int, int]]:
    if triangle:  # row i of the upper triangle costs n - i pairs: cut it into pieces of equal area
        cost = np.cumsum(np.arange(n, 0, -1, dtype=np.float64))
        cuts = np.searchsorted(cost, cost[-1] * np.arange(1, pieces) / pieces)
    else:
        cuts = np.arange(1, pieces) * n // pieces
    bounds = [0, *sorted({int(c) for c in cuts if 0 < c < n}), n]
    return list(zip(bounds[:-1], bounds[1:]))


def _parallel(fn, ranges: list[tuple[int, int]], threads: int) -> list:
    if threads == 1 or len(ranges) == 1:
        return [fn(r) for r in ranges]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:  # ctypes releases the GIL
        return list(pool.map(fn, ranges))


def scan(x: np.ndarray, threads: int | None = None) -> Scan | None:
    """Classify (and pack) the rows of a float32 / float64 matrix ``x [n, p]`` in one pass.

    Returns ``None`` when the kernel is unavailable or ``x`` has another dtype or layout.
    """
    lib = kernel()
    if lib is None or x.dtype not in (np.float32, np.float64) or x.ndim != 2 or x.strides[1] != x.itemsize:
        return None
    n, p = x.shape
    words = (p + 63) // 64
    bits = np.zeros((n, words), dtype=np.uint64)
    sums = np.zeros(n, dtype=np.int64)
    fn = lib.scan_pack_f32 if x.dtype == np.float32 else lib.scan_pack_f64
    ld = x.strides[0] // x.itemsize
    threads = max(1, threads or torch.get_num_threads())

    def run(rng: tuple[int, int]) -> tuple[int, float]:
        top = ctypes.c_double(0.0)
        kind = fn(x.ctypes.data, p, ld, rng[0], rng[1], bits.ctypes.data, words, sums.ctypes.data,
                  ctypes.byref(top))
        return kind, top.value

    results = _parallel(run, _row_ranges(n, threads, triangle=False), threads)
    kind = max(k for k, _ in results)
    if kind == 2:
        return Scan("other")
    if kind == 1:
        return Scan("integer", sums=sums, top=max(t for _, t in results))
    return Scan("binary", bits=bits, sums=sums, top=1.0)


def bit_gram(bits: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The exact ``[n, n]`` int64 Gram matrix of the packed 0/1 rows ``bits [n, words]``."""
    lib = kernel()
    if lib is None:
        raise KernelBuildError(f"the spike Gram kernel is unavailable: {kernel.failure}")
    n, words = bits.shape
    bits = np.ascontiguousarray(bits, dtype=np.uint64)
    g = np.zeros((n, n), dtype=np.int64)
    threads = max(1, threads or torch.get_num_threads())

    def run(rng: tuple[int, int]) -> None:
        lib.bit_gram(bits.ctypes.data, n, words, rng[0], rng[1], g.ctypes.data)

    _parallel(run, _row_ranges(n, 4 * threads, triangle=True), threads)
    return np.triu(g) + np.triu(g, 1).T
