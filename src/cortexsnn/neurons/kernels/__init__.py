"""Fused multi-step neuron kernels and the machinery that builds and selects them.

Backends, in order of preference on each device:

* ``"cpu"``: a small C kernel (``lif_cpu.c``, vectorised, POSIX threads) compiled on first use with the
  system's C compiler into the cortexsnn cache (``CORTEXSNN_CACHE``) and called through
  ``ctypes`` (which releases the GIL): it needs no PyTorch headers, so it builds in about a
  second. Its backward pass recomputes ``H`` from the saved input, in cache-sized chunks.
* ``"triton"``: the same kernel in Triton (``lif_triton.py``) for CUDA tensors; with
  ``TRITON_INTERPRET=1`` it also runs on CPU tensors (how the tests check it without a GPU).
* ``"torch"``: the same algorithm (forward recurrence, adjoint backward recurrence from a saved
  ``H``) written with tensor operations: runs on every device and dtype, the fallback when no
  compiler or Triton is available.

``CORTEXSNN_NEURON_BACKEND`` (``auto``, ``cpu``, ``triton``, ``torch``) or a module's
``backend=`` argument forces one; ``auto`` takes ``cpu`` for CPU tensors when the kernel builds,
``triton`` for CUDA tensors when Triton imports, else ``torch``.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings
from pathlib import Path

from cortexsnn.utils.cbuild import KernelBuildError, load_c_library

__all__ = ["cpu_kernel", "triton_kernel", "resolve_backend", "BACKENDS", "KernelBuildError"]

BACKENDS = ("auto", "cpu", "triton", "torch")
_SOURCE = Path(__file__).with_name("lif_cpu.c")
# -ffp-contract=off: no fused multiply-adds, so that every potential is rounded exactly as the
# same expression in PyTorch rounds it (bit-identical spikes and potentials)
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=c11"]
_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failed: str | None = None
_triton_module = None
_triton_failed: str | None = None


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        forward = getattr(lib, f"lif_forward_{suffix}")
        forward.argtypes = [p, p, p, p, i32, p, i64, i64, i32, i32, real, real, real, i32, i32]
        forward.restype = ctypes.c_int64
        backward = getattr(lib, f"lif_backward_{suffix}")
        backward.argtypes = [p, i64, i32, p, p, p, i32, p, i64, p, p, p, i64, i64, i32, i32, real, real, real, i32,
                             i32, i32, real, i32, i32]
        backward.restype = ctypes.c_double
        geometry = [i64] * 12  # steps, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow
        pool_forward = getattr(lib, f"lif_pool_forward_{suffix}")
        pool_forward.argtypes = [p, p, p, p, p, real, *geometry, i32, i32, real, real, real, i32, i32]
        pool_forward.restype = ctypes.c_int64
        pool_backward = getattr(lib, f"lif_pool_backward_{suffix}")
        pool_backward.argtypes = [p, p, p, p, p, real, *geometry, i32, i32, real, real, real, i32, i32, i32, real,
                                  i32]
        pool_backward.restype = None


def cpu_kernel() -> ctypes.CDLL | None:
    """The compiled CPU kernel library, building it on first use; ``None`` if that fails."""
    global _library, _failed
    if _library is not None or _failed is not None:
        return _library
    with _lock:
        if _library is not None or _failed is not None:
            return _library
        try:
            lib = load_c_library(_SOURCE, _FLAGS, "lif_cpu", libs=("-lm",))
            _declare(lib)
            _library = lib
        except (OSError, KernelBuildError) as exc:
            _failed = str(exc)
            warnings.warn(
                f"cortexsnn: the fused CPU neuron kernel is unavailable ({exc}); using the slower "
                "torch backend. Install a C compiler (e.g. gcc) to enable it.",
                RuntimeWarning,
                stacklevel=3,
            )
    return _library


def triton_kernel():
    """The Triton kernel module (:mod:`.lif_triton`), or ``None`` when Triton cannot be imported."""
    global _triton_module, _triton_failed
    if _triton_module is None and _triton_failed is None:
        try:
            from cortexsnn.neurons.kernels import lif_triton

            _triton_module = lif_triton
        except Exception as exc:  # ImportError, or a Triton that fails to initialise
            _triton_failed = f"{type(exc).__name__}: {exc}"
    return _triton_module


def resolve_backend(backend: str | None, device_type: str) -> str:
    """The backend to use for tensors on ``device_type``: ``"cpu"``, ``"triton"`` or ``"torch"``."""
    choice = (backend or os.environ.get("CORTEXSNN_NEURON_BACKEND") or "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(f"unknown neuron backend {choice!r}; choose one of {BACKENDS}")
    if choice == "torch":
        return "torch"
    if choice == "triton":
        if triton_kernel() is None:
            raise KernelBuildError(f"the Triton neuron backend was asked for but Triton is unavailable: {_triton_failed}")
        if device_type != "cuda" and not _triton_module.interpreted():
            raise ValueError(
                "the 'triton' neuron backend needs CUDA tensors (or TRITON_INTERPRET=1 to run it on the CPU)"
            )
        return "triton"
    if device_type != "cpu":
        if choice == "cpu":
            raise ValueError("the 'cpu' neuron backend needs CPU tensors; use 'auto', 'triton' or 'torch' on GPUs")
        return "triton" if device_type == "cuda" and triton_kernel() is not None else "torch"
    if cpu_kernel() is not None:
        return "cpu"
    if choice == "cpu":
        raise KernelBuildError(f"the CPU kernel was asked for but could not be built: {_failed}")
    return "torch"
