"""The event-driven spike convolution kernel (``spike_conv_cpu.c``), built on first use.

Compiled with the system's C compiler into the cortexsnn cache and called through
``ctypes``, as the neuron kernels are (:mod:`cortexsnn.neurons.kernels`). When no compiler is available, :func:`spike_conv_kernel` returns ``None`` and the
callers fall back to dense PyTorch convolutions (same results, slower).
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from cortexsnn.utils.cbuild import CKernel

__all__ = ["spike_conv_kernel"]

_SOURCE = Path(__file__).with_name("spike_conv_cpu.c")
# -ffp-contract=off: no fused multiply-adds, so that the STDP update rounds exactly as PyTorch does
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC", "-std=c11"]


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        fn = getattr(lib, f"spike_conv_{suffix}")
        fn.argtypes = [p, p, p, p, i64, i64, i64, i64, i64, i64, i64, i64, i32, real, i64, i64]
        fn.restype = ctypes.c_int
        fused = getattr(lib, f"stdp_conv_winners_{suffix}")
        fused.argtypes = [p, p, i64, i64, i64, i64, i64, i64, i64, i64, real, i64, i64, i32, p, p, p, i64, i64]
        fused.restype = ctypes.c_int
        pooled = getattr(lib, f"spike_fire_pool_{suffix}")
        pooled.argtypes = [p, p, p, i64, i64, i64, i64, i64, i64, i64, real, i64, i64, i64]
        pooled.restype = ctypes.c_int
        delta = getattr(lib, f"stdp_delta_{suffix}")
        delta.argtypes = [p, p, i64, i64, i64, i64, i64, i64, i64, p, p, p, p, p, i32, real, real, p]
        delta.restype = None
        winners = getattr(lib, f"stdp_winners_{suffix}")
        winners.argtypes = [p, p, i64, i64, i64, i64, i64, i64, i64, i32, p, p, p, i64, i64]
        winners.restype = None
        sequential = getattr(lib, f"stdp_sequential_{suffix}")
        sequential.argtypes = [p, p, i64, i64, i64, i64, i64, i64, i64, i64, real, i64, i64, i32, p, p, i32, real,
                               real, i32]
        sequential.restype = ctypes.c_int64
        head = getattr(lib, f"rstdp_head_sequential_{suffix}")
        f64 = ctypes.c_double
        head.argtypes = [p, p, i64, i64, i64, i64, i64, i64, i64, i64, i64, p, f64, f64, f64, f64, i32, real, real,
                         i32, p]
        head.restype = ctypes.c_int64


#: The compiled library (built on first use); calling it gives ``None`` (with one warning) when it cannot be built.
spike_conv_kernel = CKernel(_SOURCE, _FLAGS, "spike_conv_cpu", _declare, "the event-driven spike convolution kernel",
                            "using dense PyTorch convolutions (slower). Install gcc with OpenMP to enable it.")
