"""Pure dynamics of the integrate-and-fire family: IF, LIF and PLIF (SpikingJelly semantics).

One function per model and step mode; state in, state out; no module state anywhere. With
``vr = v_reset`` for a hard reset and ``vr = 0`` for a soft one (``v_reset=None``):

* IF:   ``H[t] = V[t-1] + X[t]``
* LIF:  ``H[t] = V[t-1] + (X[t] - (V[t-1] - vr)) / tau`` (``decay_input=True``) or
  ``H[t] = V[t-1] - (V[t-1] - vr) / tau + X[t]`` (``decay_input=False``)
* PLIF: LIF with ``1 / tau = sigmoid(w)``, ``w`` learnable.

Spike ``S[t] = Heaviside(H[t] - v_threshold)`` (fires at ``>=``) with a surrogate gradient;
hard reset ``V[t] = H[t] (1 - S[t]) + v_reset S[t]``, soft reset ``V[t] = H[t] - v_threshold S[t]``;
``detach_reset`` removes the gradient through ``S`` in the reset.

The multi-step functions (``*_multistep``, input ``[T, ...]``) run the whole time loop in one
fused autograd function (see :mod:`cortexsnn.neurons.kernels`); the backward pass runs the
adjoint recurrence in reverse time from ``H``, which the CPU kernel recomputes from the saved
input (no ``[T, ...]`` tensor of its own) and the other backends save. The ``*_step``
functions are the plain single-step maths (autograd through ordinary tensor operations); the
multi-step kernels are tested against loops of them. Under ``torch.compile`` the CPU and Triton
kernels run as the custom ops of :mod:`cortexsnn.neurons.functional.lif_ops` (the same kernels,
the same numbers), so that the graph does not break at each neuron.
"""
from __future__ import annotations

import ctypes
import math
import os

import torch
from torch import Tensor

from cortexsnn.errors import InvalidArgumentError
from cortexsnn.neurons.functional.lif_ops import fused_sequence
from cortexsnn.neurons.kernels import KernelBuildError, compiled_surrogate, cpu_kernel, resolve_backend, triton_kernel
from cortexsnn.neurons.surrogate import ATan, Surrogate, surrogate_derivative

__all__ = [
    "if_step",
    "lif_step",
    "plif_step",
    "if_multistep",
    "lif_multistep",
    "plif_multistep",
    "plif_init_w",
]

_MODE_IF, _MODE_LIF_DECAY_INPUT, _MODE_LIF = 0, 1, 2
_DEFAULT_SURROGATE = ATan(2.0)


# --------------------------------------------------------------------------------------------
# single step: the maths, in plain tensor operations
# --------------------------------------------------------------------------------------------
def _fire_and_reset(
    h: Tensor, v_threshold: float, v_reset: float | None, surrogate: Surrogate, detach_reset: bool
) -> tuple[Tensor, Tensor]:
    spike = surrogate(h - v_threshold)
    spike_r = spike.detach() if detach_reset else spike
    if v_reset is None:
        v = h - v_threshold * spike_r
    else:
        v = h * (1.0 - spike_r) + v_reset * spike_r
    return spike, v


def if_step(
    x: Tensor,
    v: Tensor | float,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """One step of the integrate-and-fire neuron: returns ``(spike, v)``."""
    return _fire_and_reset(v + x, v_threshold, v_reset, surrogate, detach_reset)


def _leak(e, d, div: bool):
    # LIF divides by tau, PLIF multiplies by sigmoid(w): the operations SpikingJelly performs,
    # so that potentials, and therefore spikes, agree to the last bit
    return e / d if div else e * d


def _lif_charge(x: Tensor, v: Tensor | float, d: Tensor | float, decay_input: bool, vr: float, div: bool) -> Tensor:
    if decay_input:
        return v + _leak(x - (v - vr), d, div)
    return v - _leak(v - vr, d, div) + x


def lif_step(
    x: Tensor,
    v: Tensor | float,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """One step of the leaky integrate-and-fire neuron: returns ``(spike, v)``."""
    _check_tau(tau)
    vr = 0.0 if v_reset is None else v_reset
    h = _lif_charge(x, v, float(tau), decay_input, vr, div=True)
    return _fire_and_reset(h, v_threshold, v_reset, surrogate, detach_reset)


def plif_step(
    x: Tensor,
    v: Tensor | float,
    w: Tensor,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """One step of the parametric LIF neuron (``1 / tau = sigmoid(w)``): returns ``(spike, v)``."""
    vr = 0.0 if v_reset is None else v_reset
    h = _lif_charge(x, v, torch.sigmoid(w), decay_input, vr, div=False)
    return _fire_and_reset(h, v_threshold, v_reset, surrogate, detach_reset)


def plif_init_w(init_tau: float) -> float:
    """The ``w`` giving ``sigmoid(w) = 1 / init_tau`` (``init_tau > 1``)."""
    if not init_tau > 1.0:
        raise ValueError(f"PLIF init_tau must be > 1 (1/tau = sigmoid(w) < 1), got {init_tau}")
    return -math.log(init_tau - 1.0)


def _check_tau(tau: float) -> None:
    if not (isinstance(tau, (int, float)) and tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")


# --------------------------------------------------------------------------------------------
# multi step: one fused autograd function over the whole sequence
# --------------------------------------------------------------------------------------------
def _forward_torch(x, v, mode, d, div, v_th, v_reset, hard, save_h):
    vr = v_reset if hard else 0.0
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if save_h else None
    for t in range(x.shape[0]):
        if mode == _MODE_IF:
            h = v + x[t]
        elif mode == _MODE_LIF_DECAY_INPUT:
            h = v + _leak(x[t] - (v - vr), d, div)
        else:
            h = v - _leak(v - vr, d, div) + x[t]
        s = (h >= v_th).to(x.dtype)
        spikes[t] = s
        if save_h:
            h_seq[t] = h
        v = h * (1.0 - s) + v_reset * s if hard else h - v_th * s
    return spikes, h_seq, v


def _reset_of(h, v_th, v_reset, hard):
    s = (h >= v_th).to(h.dtype)
    return h * (1.0 - s) + v_reset * s if hard else h - v_th * s


def _backward_torch(grad_s, grad_v, h_seq, x, v_init, mode, d, div, v_th, v_reset, hard, detach, surrogate, want_d):
    vr = v_reset if hard else 0.0
    rate = 1.0 / d if div else d  # the leak factor 1 / tau
    k = 1.0 if mode == _MODE_IF else 1.0 - rate
    cx = rate if mode == _MODE_LIF_DECAY_INPUT else 1.0
    keep = 0.0 if detach else 1.0
    grad_x = torch.empty_like(h_seq)
    gv = grad_v
    grad_d = h_seq.new_zeros((), dtype=torch.float64)
    for t in range(h_seq.shape[0] - 1, -1, -1):
        h = h_seq[t]
        s = (h >= v_th).to(h.dtype)
        sg = surrogate_derivative(surrogate, h - v_th)
        dvdh = (1.0 - s) + keep * (v_reset - h) * sg if hard else 1.0 - keep * v_th * sg
        gh = grad_s[t] * sg + gv * dvdh
        grad_x[t] = gh * cx
        if want_d:
            vp = _reset_of(h_seq[t - 1], v_th, v_reset, hard) if t > 0 else v_init
            dh_dd = x[t] - (vp - vr) if mode == _MODE_LIF_DECAY_INPUT else -(vp - vr)
            grad_d += (gh * dh_dd).sum(dtype=torch.float64)
        gv = gh * k
    return grad_x, gv, float(grad_d)


# below this many neuron-steps one thread is faster than starting others
_PARALLEL_MIN_WORK = 1 << 20


def _threads(steps: int, n: int) -> int:
    """Threads for the CPU kernel: torch's intra-op count for large work, else one.

    On an oversubscribed machine (1-minute load average above the core count + 1) one thread:
    the kernel streams memory, and a second thread that is not scheduled when it is needed cost
    more than it gained (measured on the 2-core development machine at load ~12: [64, 16, 4096]
    forward + backward took 41-57 ms with two threads, 28-43 ms with one).
    """
    threads = torch.get_num_threads()
    if threads == 1 or steps * n < _PARALLEL_MIN_WORK:
        return 1
    try:
        if os.getloadavg()[0] > (os.cpu_count() or 1) + 1:
            return 1
    except OSError:  # no load average on this platform
        pass
    return threads


def _ptr(t: Tensor | None):
    return ctypes.c_void_p(t.data_ptr()) if t is not None else None


def _forward_cpu(x, v, mode, d, div, v_th, v_reset, hard, save_h):
    """The forward recurrence in C; ``v`` is V_init, of one element or contiguous like ``x[0]``."""
    lib = cpu_kernel()
    suffix = "f32" if x.dtype == torch.float32 else "f64"
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if save_h else None
    v_last = torch.empty_like(x[0])
    steps, n = x.shape[0], x[0].numel()
    not_finite = getattr(lib, f"lif_forward_{suffix}")(
        _ptr(x), _ptr(spikes), _ptr(h_seq), _ptr(v), int(v.numel() == 1), _ptr(v_last), steps, n, mode, int(div),
        d, v_th, v_reset, int(hard), _threads(steps, n),
    )
    if not_finite < 0:
        _check_status(not_finite, 0, mode)
    if not_finite:
        _raise_not_finite()
    return spikes, h_seq, v_last


def _grad_layout(grad_s: Tensor) -> tuple[Tensor, int, int]:
    """``(tensor, time stride, broadcast flag)`` for the kernel, without copying where possible.

    The gradient of a sum over spikes arrives expanded (stride 0): the kernel reads one value per
    step instead of a materialised ``[T, ...]`` tensor of copies.
    """
    inner_strides = grad_s.stride()[1:]
    if all(stride == 0 for stride in inner_strides):
        return grad_s, grad_s.stride(0), 1
    if not grad_s[0].is_contiguous():
        grad_s = grad_s.contiguous()
    return grad_s, grad_s.stride(0) if grad_s.shape[0] > 1 else grad_s[0].numel(), 0


# the backward pass recomputes H for a chunk of neurons over all steps into a per-thread buffer of
# about this many bytes (it should stay in the L2 cache)
_RECOMPUTE_BYTES = 256 * 1024


def _recompute_chunk(steps: int, itemsize: int) -> int:
    """Neurons per chunk for the recomputing backward: a multiple of 16 in [16, 512]."""
    return max(16, min(512, (_RECOMPUTE_BYTES // itemsize // steps) // 16 * 16))


def _backward_cpu(grad_s, grad_v, h_seq, x, v_init, mode, d, div, v_th, v_reset, hard, detach, surrogate, want_d):
    """The adjoint recurrence in C; ``h_seq=None`` recomputes H from ``x`` and ``v_init``."""
    lib = cpu_kernel()
    suffix = "f32" if x.dtype == torch.float32 else "f64"
    grad_x = torch.empty_like(x)
    grad_v_in = grad_v.contiguous() if grad_v is not None else None
    grad_v_init = torch.empty_like(x[0])
    steps, n = x.shape[0], x[0].numel()
    threads = _threads(steps, n)
    chunk, workspace = 0, None
    if h_seq is None:
        chunk = _recompute_chunk(steps, x.element_size())
        workspace = x.new_empty(threads * steps * chunk)
    grad_s, gs_tstride, gs_bcast = _grad_layout(grad_s)
    kind = compiled_surrogate(surrogate, "cpu")
    grad_d = ctypes.c_double(0.0)
    status = getattr(lib, f"lif_backward_{suffix}")(
        _ptr(grad_s), gs_tstride, gs_bcast, _ptr(h_seq), _ptr(x), _ptr(v_init), int(v_init.numel() == 1),
        _ptr(workspace), chunk, _ptr(grad_x), _ptr(grad_v_in), _ptr(grad_v_init), steps, n, mode, int(div), d,
        v_th, v_reset, int(hard), int(detach), kind, surrogate.alpha, int(want_d), threads, ctypes.byref(grad_d),
    )
    _check_status(status, kind, mode)
    return grad_x, grad_v_init, grad_d.value


def _check_status(status: int, kind: int, mode: int) -> None:
    """A compiled kernel refused its surrogate kind or charge mode (and computed nothing)."""
    if status != 0:
        raise KernelBuildError(
            f"the CPU neuron kernel refused surrogate kind {kind} / mode {mode} (status {status}); the kernel library "
            "does not match this version of cortexsnn: clear the kernel cache ($CORTEXSNN_CACHE/kernels)"
        )


class _NeuronSequence(torch.autograd.Function):
    """Whole-sequence IF/LIF/PLIF, backward = the adjoint recurrence in reverse time.

    What is saved for the backward pass: on the CPU kernel, the input ``X`` and ``V_init`` (``H``
    is recomputed chunk by chunk in cache; ``X`` is usually kept alive by autograd anyway, so the
    neuron adds no memory of its own beyond its spikes); on the other backends, ``H``.
    """

    @staticmethod
    def forward(ctx, x, v_init, decay, div, mode, v_th, v_reset, detach, surrogate, backend, track):  # type: ignore[override]
        hard = v_reset is not None
        v_reset_value = 0.0 if v_reset is None else float(v_reset)
        d = float(decay) if mode != _MODE_IF else 1.0
        if backend == "cpu" and v_init.numel() == 1:
            v0 = v_init  # the kernel broadcasts one value itself: no [B, ...] copy
        else:
            v0 = v_init.expand_as(x[0]).contiguous()
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        # track: grad mode is on and an input needs a gradient (decided by the caller: inside
        # forward() grad mode is always off); without it nothing is saved (inference)
        recompute = backend == "cpu"
        run = {"cpu": _forward_cpu, "torch": _forward_torch}.get(backend) or triton_kernel().forward
        spikes, h_seq, v_last = run(x, v0, mode, d, div, v_th, v_reset_value, hard, track and not recompute)
        want_d = track and bool(ctx.needs_input_grad[2])
        keep_input = track and (recompute or want_d)
        ctx.save_for_backward(h_seq, x if keep_input else None, v0 if keep_input else None)
        ctx.config = (mode, d, div, v_th, v_reset_value, hard, detach, surrogate, backend, want_d, v_init.shape,
                      decay.dtype, x.dtype)
        return spikes, v_last

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last):  # type: ignore[override]
        h_seq, x, v0 = ctx.saved_tensors
        mode, d, div, v_th, v_reset, hard, detach, surrogate, backend, want_d, v_shape, d_dtype, x_dtype = ctx.config
        like = x if h_seq is None else h_seq
        if grad_spikes is None:  # only v_last was used: a zero that takes no memory
            grad_spikes = like.new_zeros((), dtype=x_dtype).expand(like.shape)
        run = {"cpu": _backward_cpu, "torch": _backward_torch}.get(backend) or triton_kernel().backward
        if backend == "torch" and grad_v_last is None:
            grad_v_last = torch.zeros_like(h_seq[0])
        grad_x, grad_v0, grad_d = run(
            grad_spikes, grad_v_last,
            h_seq, x, v0, mode, d, div, v_th, v_reset, hard, detach, surrogate, want_d,
        )
        grad_x = grad_x if ctx.needs_input_grad[0] else None
        grad_v_init = grad_v0.sum_to_size(v_shape) if ctx.needs_input_grad[1] else None
        grad_decay = torch.tensor(grad_d, dtype=d_dtype, device=like.device) if want_d else None
        return grad_x, grad_v_init, grad_decay, None, None, None, None, None, None, None, None


def _run_sequence(
    x_seq: Tensor,
    v_init: Tensor | float,
    mode: int,
    decay: Tensor | float,
    div: bool,
    v_threshold: float,
    v_reset: float | None,
    surrogate: Surrogate,
    detach_reset: bool,
    backend: str | None,
) -> tuple[Tensor, Tensor]:
    if not isinstance(x_seq, Tensor) or x_seq.dim() < 2:
        raise ValueError(
            f"multi-step neurons need a time-major input [T, B, ...], got "
            f"{tuple(x_seq.shape) if isinstance(x_seq, Tensor) else type(x_seq).__name__}"
        )
    if x_seq.shape[0] == 0:
        raise ValueError(f"multi-step neurons need at least one time step, got shape {tuple(x_seq.shape)}")
    if not x_seq.is_floating_point():
        raise TypeError(f"neuron input must be a floating-point tensor, got {x_seq.dtype}")
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate must be a cortexsnn Surrogate, got {type(surrogate).__name__}")
    chosen = resolve_backend(backend, x_seq.device.type, surrogate)
    if chosen == "cpu" and x_seq.dtype not in (torch.float32, torch.float64):
        chosen = "torch"  # half precision on the CPU: the tensor path
    if not isinstance(v_init, Tensor):
        v_init = torch.tensor(float(v_init), dtype=x_seq.dtype, device=x_seq.device)
    v_init = _on_device_of(v_init, x_seq, "v_init").to(dtype=x_seq.dtype)
    if not isinstance(decay, Tensor):
        decay = torch.tensor(float(decay), dtype=torch.float64)
    track = torch.is_grad_enabled() and (x_seq.requires_grad or v_init.requires_grad or decay.requires_grad)
    order = _memory_order(x_seq)
    if order is not None:  # e.g. channels-last feature maps: run in memory order, no copy either way
        inner = [d - 1 for d in order[1:]]
        if v_init.numel() != 1:
            v_init = v_init.expand(x_seq.shape[1:]).permute(inner)
        x_seq = x_seq.permute(order)
    if chosen != "torch" and torch.compiler.is_compiling():
        # torch.compile traces the compiled kernels as custom ops (lif_ops); eager calls skip the
        # custom-op dispatch, which costs more than the kernel on small layers
        spikes, v_last = fused_sequence(
            chosen, x_seq.contiguous(), v_init, decay, mode, div, v_threshold, v_reset, detach_reset, surrogate, track
        )
    else:
        spikes, v_last = _NeuronSequence.apply(
            x_seq.contiguous(), v_init, decay, div, mode, float(v_threshold), v_reset, bool(detach_reset), surrogate,
            chosen, track,
        )
    if order is not None:
        spikes = spikes.permute(_inverse(order))
        v_last = v_last.permute(_inverse(inner))
    if chosen == "torch" and x_seq.device.type == "cpu" and not bool(torch.isfinite(v_last).all()):
        _raise_not_finite()  # the CPU kernel counts these itself; on GPUs a check would synchronise
    return spikes, v_last


def _on_device_of(value: Tensor, x_seq: Tensor, name: str) -> Tensor:
    """``value`` on ``x_seq``'s device: a 0-dim CPU state is moved (PyTorch mixes those with any device);
    any other state on another device is an error (a kernel would read foreign memory)."""
    if value.device == x_seq.device:
        return value
    if value.dim() == 0 and value.device.type == "cpu":
        return value.to(x_seq.device)
    raise InvalidArgumentError(
        f"{name} is on {value.device} but the input is on {x_seq.device}; move them to one device "
        "(e.g. neuron.to(device), or reset the neurons with cortexsnn.neurons.reset(net) after moving the input)"
    )


def _memory_order(x: Tensor) -> list[int] | None:
    """A permutation, time first, of the dimensions of ``x`` in the memory order of one time step,
    when that differs from the logical order (channels-last maps: ``[T, B, H, W, C]``); ``None``
    when ``x`` is contiguous or a step is not a dense permuted block."""
    if x.is_contiguous() or x.dim() < 3:
        return None
    step = x[0]
    inner = sorted(range(step.dim()), key=lambda d: (-step.stride(d), d))
    if inner == list(range(step.dim())) or not step.permute(inner).is_contiguous():
        return None
    return [0] + [d + 1 for d in inner]


def _inverse(order: list[int]) -> list[int]:
    return [order.index(i) for i in range(len(order))]


def _raise_not_finite() -> None:
    # A NaN or infinite input leaves a NaN/inf in V that no spike or reset removes (a hard reset
    # computes inf * 0 = NaN), so checking the final state (B x N, not T x B x N) catches every
    # non-finite input cheaply.
    raise ValueError(
        "neuron input contains NaN or infinite values (the membrane potential became non-finite); "
        "check the preceding layer, the learning rate, or the data"
    )


def if_multistep(
    x_seq: Tensor,
    v_init: Tensor | float = 0.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """IF neurons over a sequence ``x_seq [T, ...]``: returns ``(spikes [T, ...], v_last)``."""
    return _run_sequence(x_seq, v_init, _MODE_IF, 1.0, False, v_threshold, v_reset, surrogate, detach_reset, backend)


def lif_multistep(
    x_seq: Tensor,
    v_init: Tensor | float = 0.0,
    tau: float = 2.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """LIF neurons over a sequence ``x_seq [T, ...]``: returns ``(spikes [T, ...], v_last)``."""
    _check_tau(tau)
    mode = _MODE_LIF_DECAY_INPUT if decay_input else _MODE_LIF
    return _run_sequence(x_seq, v_init, mode, tau, True, v_threshold, v_reset, surrogate, detach_reset, backend)


def plif_multistep(
    x_seq: Tensor,
    w: Tensor,
    v_init: Tensor | float = 0.0,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Parametric LIF over a sequence (``1 / tau = sigmoid(w)``, gradient to ``w``)."""
    mode = _MODE_LIF_DECAY_INPUT if decay_input else _MODE_LIF
    if isinstance(w, Tensor) and isinstance(x_seq, Tensor) and w.device != x_seq.device:
        raise InvalidArgumentError(f"the PLIF parameter w is on {w.device} but the input is on {x_seq.device}; "
                                   "move the neuron to the input's device (neuron.to(device))")
    return _run_sequence(
        x_seq, v_init, mode, torch.sigmoid(w), False, v_threshold, v_reset, surrogate, detach_reset, backend
    )
