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

**Surrogates and backends.** Every surrogate gives the same gradient on every backend that runs it:

* the built-in surrogates (:class:`~cortexsnn.neurons.surrogate.ATan`, ``Sigmoid``, ``FastSigmoid``,
  ``Gaussian``, ``Triangle``, and subclasses that keep their ``derivative``) run on every backend:
  the compiled kernels carry their formulas, selected by ``kind_id``;
* any other surrogate (a user-defined :class:`~cortexsnn.neurons.surrogate.Surrogate` subclass, or
  a built-in one whose ``derivative`` is overridden; :func:`~cortexsnn.neurons.surrogate.kernel_kind`
  is ``None``) runs on the ``torch`` backend only, which calls its own ``derivative``. ``auto``
  picks ``torch`` for it (with one logged warning per surrogate class: it is slower); an explicit
  ``cpu`` or ``triton`` (argument or environment variable) raises
  :class:`~cortexsnn.neurons.surrogate.UnsupportedSurrogateError`.

The compiled kernels refuse a surrogate id they do not know (an error, never another formula).

**Building.** The CPU kernel is compiled with ``-march=native`` and cached by a key of what the
binary depends on (CPU features, compiler and version, flags, source; see
:mod:`cortexsnn.utils.cbuild`): a node of a cluster with another CPU builds its own, and a cached
binary built elsewhere or damaged is rebuilt, never loaded. Without a C compiler, ``auto`` uses the
``torch`` backend after one warning; an explicit ``cpu`` raises :class:`KernelBuildError`.
"""
from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from cortexsnn.neurons.surrogate import Surrogate, UnsupportedSurrogateError, kernel_kind
from cortexsnn.utils.cbuild import CKernel, KernelBuildError

__all__ = [
    "cpu_kernel", "triton_kernel", "resolve_backend", "compiled_surrogate", "BACKENDS", "KernelBuildError",
    "UnsupportedSurrogateError",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "triton", "torch")
_SOURCE = Path(__file__).with_name("lif_cpu.c")
# -ffp-contract=off: no fused multiply-adds, so that every potential is rounded exactly as the
# same expression in PyTorch rounds it (bit-identical spikes and potentials)
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=c11"]
_triton_module = None
_triton_failed: str | None = None
_noted_surrogates: set[type] = set()  # user-defined surrogate classes already reported as running on torch


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        forward = getattr(lib, f"lif_forward_{suffix}")
        forward.argtypes = [p, p, p, p, i32, p, i64, i64, i32, i32, real, real, real, i32, i32]
        forward.restype = ctypes.c_int64
        backward = getattr(lib, f"lif_backward_{suffix}")
        backward.argtypes = [p, i64, i32, p, p, p, i32, p, i64, p, p, p, i64, i64, i32, i32, real, real, real, i32,
                             i32, i32, real, i32, i32, ctypes.POINTER(ctypes.c_double)]
        backward.restype = ctypes.c_int  # 0, or -1: an unknown surrogate kind or mode, nothing computed
        geometry = [i64] * 12  # steps, planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow
        pool_forward = getattr(lib, f"lif_pool_forward_{suffix}")
        pool_forward.argtypes = [p, p, p, p, p, real, *geometry, i32, i32, real, real, real, i32, i32]
        pool_forward.restype = ctypes.c_int64
        pool_backward = getattr(lib, f"lif_pool_backward_{suffix}")
        pool_backward.argtypes = [p, p, p, p, p, real, *geometry, i32, i32, real, real, real, i32, i32, i32, real,
                                  i32]
        pool_backward.restype = ctypes.c_int


#: The compiled CPU kernel library (built on first use); calling it gives ``None`` if that fails.
cpu_kernel = CKernel(_SOURCE, _FLAGS, "lif_cpu", _declare, "the fused CPU neuron kernel",
                     "using the slower torch backend. Install a C compiler (e.g. gcc) to enable it.", libs=("-lm",))


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


def compiled_surrogate(surrogate: Surrogate, backend: str) -> int:
    """The kernels' id of ``surrogate``'s formula; :class:`UnsupportedSurrogateError` when the compiled
    kernels do not implement it (the check every compiled backward pass makes before it runs)."""
    kind = kernel_kind(surrogate)
    if kind is None:
        raise UnsupportedSurrogateError(
            f"the {backend!r} neuron backend cannot run the surrogate {type(surrogate).__name__}: the compiled kernels "
            "implement "
            "only the built-in surrogates (ATan, Sigmoid, FastSigmoid, Gaussian, Triangle) and this one has its own "
            "derivative. Use backend='torch' (or 'auto', which picks it), which calls its derivative()."
        )
    return kind


def _torch_for(surrogate: Surrogate, choice: str) -> str:
    """The backend of a surrogate the compiled kernels do not implement: ``torch``, or an error when a
    compiled one was asked for."""
    if choice in ("cpu", "triton"):
        compiled_surrogate(surrogate, choice)  # raises
    if type(surrogate) not in _noted_surrogates:
        _noted_surrogates.add(type(surrogate))
        log.warning(
            "the surrogate %s has its own derivative, which the compiled neuron kernels do not implement: its neurons "
            "run on the (slower) 'torch' backend", type(surrogate).__name__,
        )
    return "torch"


def resolve_backend(backend: str | None, device_type: str, surrogate: Surrogate | None = None) -> str:
    """The backend to use for tensors on ``device_type``: ``"cpu"``, ``"triton"`` or ``"torch"``.

    With ``surrogate``, one the compiled kernels do not implement resolves to ``"torch"`` under
    ``auto`` and raises :class:`UnsupportedSurrogateError` under ``cpu`` or ``triton`` (module docstring).
    """
    choice = (backend or os.environ.get("CORTEXSNN_NEURON_BACKEND") or "auto").lower()
    if choice not in BACKENDS:
        raise ValueError(f"unknown neuron backend {choice!r}; choose one of {BACKENDS}")
    if choice == "torch":
        return "torch"
    if surrogate is not None and kernel_kind(surrogate) is None:
        return _torch_for(surrogate, choice)
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
        raise KernelBuildError(f"the CPU kernel was asked for but could not be built: {cpu_kernel.failure}")
    return "torch"
