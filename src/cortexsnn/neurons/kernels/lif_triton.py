"""Fused multi-step IF / LIF / PLIF kernels in Triton, for CUDA tensors.

The same algorithm as the CPU kernel (``lif_cpu.c``): one program per block of neurons runs the
whole time loop in registers; the forward pass writes the spikes, the final potential and, for
training, ``H`` (the potential before firing); the backward pass runs the adjoint recurrence in
reverse time from ``H`` alone. Arithmetic is done in float32 for 16-bit inputs and in the input's
precision otherwise. The surrogate, the charge rule and the reset are compile-time constants, so
each combination is its own specialised kernel. ``dL/dd`` (PLIF) is reduced per block and summed
on the host in float64, so the result does not depend on the order in which blocks finish.

``TRITON_INTERPRET=1`` runs these kernels on CPU tensors (the tests use it); otherwise they need
a CUDA device.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from cortexsnn.neurons.kernels import compiled_surrogate

__all__ = ["forward", "backward", "interpreted"]

_BLOCK = 256
_MODE_IF, _MODE_LIF_DECAY_INPUT = 0, 1


def interpreted() -> bool:
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _surrogate(u, alpha, KIND: tl.constexpr):
    if KIND == 0:  # ATan
        z = 1.5707963267948966 * alpha * u
        return alpha / 2.0 / (1.0 + z * z)
    elif KIND == 1:  # Sigmoid
        sg = 1.0 / (1.0 + tl.exp(-alpha * u))
        return alpha * sg * (1.0 - sg)
    elif KIND == 2:  # fast sigmoid
        z = 1.0 + alpha * tl.abs(u)
        return 1.0 / (z * z)
    elif KIND == 3:  # Gaussian pdf, sigma = alpha
        return tl.exp(-u * u / (2.0 * alpha * alpha)) / (2.5066282746310002 * alpha)
    elif KIND == 4:  # triangle
        return tl.maximum(1.0 - alpha * tl.abs(u), 0.0) * alpha
    else:  # no stand-in formula: an unknown kind does not compile (backward() refuses it first)
        tl.static_assert(False, "unknown surrogate kind")


@triton.jit
def _leak(e, d, DIV: tl.constexpr):
    if DIV:  # LIF: divide by tau, as SpikingJelly does
        return e / d
    else:  # PLIF: multiply by sigmoid(w)
        return e * d


@triton.jit
def _charge(v, x, d, vr, MODE: tl.constexpr, DIV: tl.constexpr):
    if MODE == 0:
        return v + x
    elif MODE == 1:
        return v + _leak(x - (v - vr), d, DIV)
    else:
        return v - _leak(v - vr, d, DIV) + x


@triton.jit
def _reset(h, s, v_th, v_reset, HARD: tl.constexpr):
    if HARD:
        return h * (1.0 - s) + v_reset * s
    else:
        return h - v_th * s


@triton.jit
def _forward_kernel(x_ptr, spikes_ptr, h_ptr, v_ptr, p_ptr, steps, n,
                    MODE: tl.constexpr, DIV: tl.constexpr, HARD: tl.constexpr, SAVE_H: tl.constexpr,
                    COMPUTE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    d, v_th, v_reset = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2)
    vr = v_reset if HARD else 0.0
    v = tl.load(v_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    for t in range(0, steps):
        x = tl.load(x_ptr + t * n + offs, mask=mask, other=0.0).to(COMPUTE)
        h = _charge(v, x, d, vr, MODE, DIV)
        s = (h >= v_th).to(COMPUTE)
        tl.store(spikes_ptr + t * n + offs, s.to(spikes_ptr.dtype.element_ty), mask=mask)
        if SAVE_H:
            tl.store(h_ptr + t * n + offs, h.to(h_ptr.dtype.element_ty), mask=mask)
        v = _reset(h, s, v_th, v_reset, HARD)
    tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(gs_ptr, gs_tstride, h_ptr, x_ptr, v0_ptr, gx_ptr, gv_ptr, gd_ptr, p_ptr,
                     steps, n,
                     MODE: tl.constexpr, DIV: tl.constexpr, HARD: tl.constexpr, DETACH: tl.constexpr,
                     KIND: tl.constexpr,
                     GS_BCAST: tl.constexpr, WANT_D: tl.constexpr, COMPUTE: tl.constexpr,
                     BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    d, v_th, v_reset, alpha = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2), tl.load(p_ptr + 3)
    vr = v_reset if HARD else 0.0
    rate = 1.0 / d if DIV else d  # the leak factor 1 / tau
    k = 1.0 if MODE == 0 else 1.0 - rate  # dH[t]/dV[t-1]
    cx = rate if MODE == 1 else 1.0  # dH[t]/dX[t]
    gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    acc = tl.zeros([BLOCK], dtype=COMPUTE)
    for i in range(0, steps):
        t = steps - 1 - i
        h = tl.load(h_ptr + t * n + offs, mask=mask, other=0.0).to(COMPUTE)
        if GS_BCAST:
            gs = tl.load(gs_ptr + t * gs_tstride).to(COMPUTE)
        else:
            gs = tl.load(gs_ptr + t * gs_tstride + offs, mask=mask, other=0.0).to(COMPUTE)
        s = (h >= v_th).to(COMPUTE)
        sg = _surrogate(h - v_th, alpha, KIND)
        if HARD:
            if DETACH:
                dvdh = 1.0 - s
            else:
                dvdh = (1.0 - s) + (v_reset - h) * sg
        else:
            if DETACH:
                dvdh = tl.full([BLOCK], 1.0, COMPUTE)
            else:
                dvdh = 1.0 - v_th * sg
        gh = gs * sg + gv * dvdh
        tl.store(gx_ptr + t * n + offs, (gh * cx).to(gx_ptr.dtype.element_ty), mask=mask)
        if WANT_D:
            if t > 0:
                hp = tl.load(h_ptr + (t - 1) * n + offs, mask=mask, other=0.0).to(COMPUTE)
                vp = _reset(hp, (hp >= v_th).to(COMPUTE), v_th, v_reset, HARD)
            else:
                vp = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            if MODE == 1:
                x = tl.load(x_ptr + t * n + offs, mask=mask, other=0.0).to(COMPUTE)
                dh_dd = x - (vp - vr)
            else:
                dh_dd = -(vp - vr)
            acc += tl.where(mask, gh * dh_dd, 0.0)
        gv = gh * k
    tl.store(gv_ptr + offs, gv.to(gv_ptr.dtype.element_ty), mask=mask)
    if WANT_D:
        tl.store(gd_ptr + pid, tl.sum(acc, axis=0).to(tl.float64))


def _compute_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _params(like: torch.Tensor, *values: float) -> torch.Tensor:
    # scalars travel in a tensor of the compute precision: Triton would round Python floats to
    # float32, which would cost the float64 path its exactness
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
    return torch.tensor(values, dtype=dtype, device=like.device)


def _grid(n: int):
    return (triton.cdiv(n, _BLOCK),)


def forward(x, v, mode, d, div, v_th, v_reset, hard, save_h):
    """Whole-sequence forward: ``(spikes, h_seq or None, v_last)``; ``x`` contiguous ``[T, ...]``."""
    spikes = torch.empty_like(x)
    # H of 16-bit inputs is kept in float32: the backward pass recomputes the spikes from it, and
    # a rounded H could fall on the other side of the threshold than the forward's
    h_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    h_seq = torch.empty_like(x, dtype=h_dtype) if save_h else spikes  # a dummy pointer when not saved
    v = v.contiguous().clone()
    steps, n = x.shape[0], x[0].numel()
    if n:
        _forward_kernel[_grid(n)](
            x, spikes, h_seq, v, _params(x, d, v_th, v_reset, 0.0), steps, n,
            MODE=mode, DIV=div, HARD=hard, SAVE_H=save_h, COMPUTE=_compute_dtype(x.dtype), BLOCK=_BLOCK,
        )
    return spikes, (h_seq if save_h else None), v


def backward(grad_s, grad_v, h_seq, x, v_init, mode, d, div, v_th, v_reset, hard, detach, surrogate, want_d):
    """Adjoint recurrence: ``(grad_x, grad_v_init, grad_d)`` (``grad_d`` a Python float)."""
    steps, n = h_seq.shape[0], h_seq[0].numel()
    grad_x = torch.empty_like(h_seq, dtype=grad_s.dtype)
    gv = grad_v.contiguous().clone() if grad_v is not None else torch.zeros_like(h_seq[0], dtype=grad_s.dtype)
    if all(stride == 0 for stride in grad_s.stride()[1:]):
        gs_bcast, gs_tstride = True, grad_s.stride(0)
    else:
        if not grad_s[0].is_contiguous():
            grad_s = grad_s.contiguous()
        gs_bcast, gs_tstride = False, grad_s.stride(0)
    kind = compiled_surrogate(surrogate, "triton")  # a user-defined derivative: refused, never substituted
    blocks = _grid(n)[0]
    partial = torch.zeros(max(blocks, 1), dtype=torch.float64, device=h_seq.device)
    if n:
        _backward_kernel[(blocks,)](
            grad_s, gs_tstride, h_seq, x if want_d else h_seq, v_init if want_d else gv,
            grad_x, gv, partial, _params(h_seq, d, v_th, v_reset, surrogate.alpha), steps, n,
            MODE=mode, DIV=div, HARD=hard, DETACH=detach, KIND=kind, GS_BCAST=gs_bcast, WANT_D=want_d,
            COMPUTE=_compute_dtype(h_seq.dtype), BLOCK=_BLOCK,
        )
    return grad_x, gv, float(partial.sum()) if want_d else 0.0
