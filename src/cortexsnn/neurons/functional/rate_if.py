"""Integrate-and-fire neurons of a converted network (rate code; no gradient needed).

An ANN-to-SNN conversion replaces an activation ``a = clip(z, 0, upper)`` by an integrate-and-fire
neuron driven by the same current ``z`` at every step: with reset by subtraction (Rueckauer et al.,
Frontiers in Neuroscience 2017) the number of spikes after ``t`` steps is the quantised running sum
of the input, so the rate ``theta * count / t`` tends to the activation. Two refinements of the
literature are here:

* an initial potential of half the threshold (Bu et al., AAAI 2022, "Optimized potential
  initialization") rounds instead of truncating, which removes the expected quantisation bias;
* **signed spikes**: a neuron whose potential falls below zero after it has fired gives one spike
  back (``-1``, adding ``theta`` to the potential). The spike count then follows the rounded running
  sum of the input in both directions, so a neuron that fired early on a transient does not keep
  its surplus (the "unevenness" error of deep conversions; signed neurons as in Kim et al., AAAI
  2020, and Li and Zeng, IJCAI 2022). The count never goes below zero, so the code stays a ReLU;
* **bursts** (Li and Zeng, IJCAI 2022, "Efficient and accurate conversion of spiking neural network
  with burst spikes"): up to ``max_spikes`` spikes in one step, so a neuron whose threshold is set
  for resolution (a percentile of its activations) can still carry the rare large activation up to
  the ANN's own bound instead of clipping it.

One step: ``v += x + bias``; ``s = clamp(floor(v / theta), low, max_spikes)`` with ``low = -min(count,
max_spikes)`` for signed neurons (else 0); ``v -= s * theta``; ``count += s``.

State: the potential ``v`` and (signed neurons) the spike count ``count`` so far.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import Tensor

from cortexsnn.utils.cbuild import CKernel

__all__ = ["rate_if_multistep"]

_SOURCE = Path(__file__).resolve().parent.parent / "kernels" / "rate_if_cpu.c"
# no FMA contraction: the kernel rounds every potential exactly as the PyTorch loop does
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC", "-std=c11"]


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.rate_if_forward_f32.argtypes = [p, p, p, p, p, p, p, i64, i64, i32, i32, i32]
    lib.rate_if_forward_f32.restype = None


#: The compiled kernel (built on first use); calling it gives ``None`` (with one warning) where it cannot be built.
_cpu_kernel = CKernel(_SOURCE, _FLAGS, "rate_if_cpu", _declare, "the rate-IF CPU kernel", "using the PyTorch loop")


def _same_layout(*tensors: Tensor) -> bool:
    first = tensors[0]
    return all(t.shape == first.shape and t.stride() == first.stride() for t in tensors[1:])


def _dense(t: Tensor) -> bool:
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


def rate_if_multistep(x_seq: Tensor, v: Tensor, count: Tensor, threshold: Tensor, bias: Tensor | None = None,
                      max_spikes: Tensor | None = None, *, signed: bool = True, weighted: bool = False,
                      backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Run ``T`` steps of (signed) integrate-and-fire neurons with reset by subtraction.

    Args:
        x_seq: input currents ``[T, B, ...]``.
        v: membrane potentials ``[B, ...]`` (start a fresh sequence at ``threshold / 2``).
        count: net spikes emitted so far ``[B, ...]`` (zeros for a fresh sequence).
        threshold: positive thresholds broadcastable to ``[B, ...]`` (per channel: ``[C, 1, 1]``).
        bias: a constant input current added at every step, broadcastable like ``threshold``.
        max_spikes: the most spikes a neuron may emit in one step (a burst; default 1), broadcastable
            like ``threshold``; a signed neuron gives back at most as many.
        signed: allow negative spikes that undo earlier ones (see the module docstring).
        weighted: return ``threshold * spike`` (the spike's weight as the next layer receives it).
        backend: ``"auto"`` (the compiled CPU kernel for dense float32 CPU tensors, else PyTorch),
            ``"cpu"`` or ``"torch"``. Both give bit-identical results.

    Returns:
        ``(spikes [T, B, ...], integers in [-max_spikes, max_spikes] (times the threshold if ``weighted``), v, count)``; the
        state is new tensors.
    """
    if x_seq.dim() < 2 or x_seq.shape[1:] != v.shape or v.shape != count.shape:
        raise ValueError(f"rate_if_multistep: input {tuple(x_seq.shape)} must be [T, *state] with state "
                         f"{tuple(v.shape)} (count {tuple(count.shape)})")
    bias = torch.zeros((), dtype=x_seq.dtype, device=x_seq.device) if bias is None else bias
    max_spikes = torch.ones((), dtype=x_seq.dtype, device=x_seq.device) if max_spikes is None else max_spikes
    if backend not in ("auto", "cpu", "torch"):
        raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'cpu' or 'torch'")
    usable = _time_major_dense(x_seq)
    if backend == "cpu" or (backend == "auto" and usable):
        kernel = _cpu_kernel() if usable else None
        if kernel is not None:
            return _run_kernel(kernel, x_seq, v, count, threshold, bias, max_spikes, signed, weighted)
        if backend == "cpu":
            raise ValueError("the CPU rate-IF kernel needs dense float32 CPU tensors (and a C compiler)")
    return _run_torch(x_seq, v, count, threshold, bias, max_spikes, signed, weighted)


def _time_major_dense(x_seq: Tensor) -> bool:
    """Steps laid one after another, each step dense in one layout (NCHW or channels-last)."""
    if x_seq.device.type != "cpu" or x_seq.dtype != torch.float32 or x_seq.shape[0] == 0:
        return False
    step = x_seq[0]
    return _dense(step) and x_seq.stride(0) == step.numel()


def _like(value: Tensor, step: Tensor) -> Tensor:
    if value.shape == step.shape and value.stride() == step.stride() and value.dtype == step.dtype:
        return value
    return torch.empty_like(step).copy_(value.expand(step.shape))


def _run_kernel(kernel, x_seq, v, count, threshold, bias, max_spikes, signed, weighted):
    step = x_seq[0]
    # the state and the per-element constants in the step's layout (already so: used as they are)
    theta, bias_full, top_full = (_like(value, step) for value in (threshold, bias, max_spikes))
    v_out = torch.empty_like(step).copy_(v)
    count_out = torch.empty_like(step).copy_(count)
    spikes = torch.empty_like(x_seq)
    if not _same_layout(step, theta, bias_full, top_full, v_out, count_out, spikes[0]) or spikes.stride(0) != step.numel():
        return _run_torch(x_seq, v, count, threshold, bias, max_spikes, signed, weighted)
    kernel.rate_if_forward_f32(x_seq.data_ptr(), spikes.data_ptr(), v_out.data_ptr(), count_out.data_ptr(),
                               theta.data_ptr(), bias_full.data_ptr(), top_full.data_ptr(), x_seq.shape[0], step.numel(), int(signed),
                               int(weighted), torch.get_num_threads())
    return spikes, v_out, count_out


def _run_torch(x_seq, v, count, threshold, bias, max_spikes, signed, weighted):
    spikes = torch.empty_like(x_seq)
    v = v.clone()
    count = count.clone()
    for t in range(x_seq.shape[0]):
        v.add_(x_seq[t] + bias)
        low = -torch.minimum(count, max_spikes) if signed else torch.zeros_like(v)
        s = torch.floor(v / threshold)
        s = torch.where(s > max_spikes, max_spikes, s)
        s = torch.where(s < low, low, s)
        v.sub_(s * threshold)
        count.add_(s)
        spikes[t] = s * threshold if weighted else s
    return spikes, v, count
