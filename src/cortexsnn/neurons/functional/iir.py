"""IIR synapse filters and the reset-trace neuron of Fang et al. (IJCAI 2020).

All functions take time-major sequences ``[T, B, *features]``.

Synapse (post-synaptic potential, PSP) filters, one per presynaptic neuron (or channel):

* dual-exponential, a second-order IIR filter ``p[t] = a1 p[t-1] + a2 p[t-2] + b s[t]`` with
  ``a1 = e^(-1/tm) + e^(-1/ts)``, ``a2 = -e^(-(tm+ts)/(tm ts))``, ``b = e^(-1/tm) - e^(-1/ts)``,
  whose impulse response is ``h[n] = e^(-(n+1)/tm) - e^(-(n+1)/ts)``;
* first-order low-pass ``p[t] = alpha p[t-1] + s[t]``, ``alpha = e^(-1/tau)``.

The coefficients are trainable tensors shaped ``features[:d] + (1,) * (len(features) - d)``
(one value per neuron, ``[N]``, or per channel, ``[C, 1, 1]``).

Two equivalent evaluations are offered (``method``):

* ``"toeplitz"``: build each neuron's impulse response for the ``T`` steps from its coefficients
  (a recurrence over ``T`` scalars per neuron) and apply it as a causal lower-triangular ``[T, T]``
  matrix per neuron, one batched matrix product. Best for short sequences (MNIST, ``T = 25``).
* ``"scan"``: the recurrence itself, in a fused autograd function whose backward pass is the
  adjoint recurrence (no autograd graph of ``T`` tiny steps). Best for long sequences (``T = 300``).
  On the CPU both passes run in compiled C++/OpenMP kernels (:mod:`._iir_cpu`, built on first
  use; a PyTorch implementation of the same recurrences runs where no compiler is available).

``"auto"`` picks ``scan`` on the CPU (measured faster there even for ``T = 25``: 8 ms against
23 ms forward and backward for ``[25, 64, 500]``) and ``toeplitz`` on GPUs for ``T <= 64``. ``"loop"`` is the plain autograd recurrence, the
reference the two are tested against (``torch.autograd.gradcheck`` in float64).

Stability guard: Fang et al.'s code leaves the coefficients unconstrained, so training may push a filter's
poles out of the unit circle and its output grows geometrically. Here the recurrence uses
``(a1, a2)`` projected into the stable triangle ``|a2| <= 1 - margin``,
``|a1| <= 1 - a2 - margin`` (both poles of ``z^2 - a1 z - a2`` inside the unit circle) and
``|alpha| <= 1 - margin``; :func:`stable_dual_exp_coefficients` is a clamp, so the gradient
passes unchanged wherever the guard is inactive (the usual case, e.g. for ``tm = 4, ts = 1``)
and is zero across a clamped bound. The modules of :mod:`cortexsnn.neurons.iir` also project
their parameters in place after each optimiser step (``project_()``), so stored parameters stay
stable too.

Neuron (reset-trace neuron): ``v[t] = m v[t-1] + I[t] - r[t-1]``, spike ``s[t] = H(v[t] - theta)``,
reset trace ``r[t] = d r[t-1] + s[t]`` with ``d = e^(-1/tm)`` and ``m = d`` when the membrane
filter is on, ``m = 0`` when off (Fang et al.'s setting). The gradient flows through the reset
trace (it is not detached); the spike's derivative is a surrogate (Fang et al.'s Gaussian pdf,
sigma 0.4). The neuron is a fused autograd function too (compiled on the CPU for the Gaussian surrogate).
Fang et al.'s code spikes on ``v > theta`` strictly, cortexsnn's surrogates on
``v >= theta``; the two differ only when ``v`` equals the threshold exactly (a set of measure
zero for real-valued weights).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from cortexsnn.neurons.functional._iir_cpu import kernels
from cortexsnn.neurons.surrogate import Gaussian, Surrogate, kernel_kind, surrogate_derivative

__all__ = [
    "dual_exp_coefficients",
    "first_order_coefficient",
    "stable_dual_exp_coefficients",
    "stable_first_order_coefficient",
    "dual_exp_impulse_response",
    "first_order_impulse_response",
    "dual_exp_filter",
    "first_order_filter",
    "reset_trace_neuron",
    "reset_trace_neuron_step",
    "STABILITY_MARGIN",
]

STABILITY_MARGIN = 1e-3
_TOEPLITZ_MAX_T = 64
FilterMethod = Literal["auto", "toeplitz", "scan", "loop"]


# ---------------------------------------------------------------------------------------------
# coefficients
# ---------------------------------------------------------------------------------------------
def dual_exp_coefficients(tau_m: float, tau_s: float) -> tuple[float, float, float]:
    """``(a1, a2, b)`` of the dual-exponential PSP filter for time constants ``tau_m > tau_s > 0``.

    For ``tau_m = 4, tau_s = 1``: ``(1.1467, -0.2865, 0.4109)``.
    """
    if not (tau_m > 0 and tau_s > 0 and math.isfinite(tau_m) and math.isfinite(tau_s)):
        raise ValueError(f"tau_m and tau_s must be positive finite numbers, got {tau_m!r}, {tau_s!r}")
    if tau_m == tau_s:
        raise ValueError("tau_m must differ from tau_s (equal time constants give b = 0, a silent filter)")
    dm, ds = math.exp(-1.0 / tau_m), math.exp(-1.0 / tau_s)
    return dm + ds, -math.exp(-(tau_m + tau_s) / (tau_m * tau_s)), dm - ds


def first_order_coefficient(tau: float) -> float:
    """``alpha = e^(-1/tau)`` of the first-order low-pass PSP filter (``0.7788`` for ``tau = 4``)."""
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return math.exp(-1.0 / tau)


def stable_dual_exp_coefficients(a1: Tensor, a2: Tensor, margin: float = STABILITY_MARGIN) -> tuple[Tensor, Tensor]:
    """Clamp ``(a1, a2)`` into the stable triangle ``|a2| <= 1 - margin``, ``|a1| <= 1 - a2 - margin``."""
    a2c = a2.clamp(-1.0 + margin, 1.0 - margin)
    bound = 1.0 - a2c.detach() - margin
    a1c = torch.maximum(torch.minimum(a1, bound), -bound)
    return a1c, a2c


def stable_first_order_coefficient(alpha: Tensor, margin: float = STABILITY_MARGIN) -> Tensor:
    """Clamp ``alpha`` into ``[-1 + margin, 1 - margin]``."""
    return alpha.clamp(-1.0 + margin, 1.0 - margin)


# ---------------------------------------------------------------------------------------------
# impulse responses
# ---------------------------------------------------------------------------------------------
def dual_exp_impulse_response(a1: Tensor, a2: Tensor, b: Tensor, steps: int) -> Tensor:
    """``h[n]`` for ``n < steps`` of ``p[t] = a1 p[t-1] + a2 p[t-2] + b s[t]``, shape ``[steps, *a1.shape]``.

    Differentiable with respect to the coefficients (a recurrence over ``steps`` small tensors).
    """
    a1, a2, b = torch.broadcast_tensors(a1, a2, b)
    h = [b]
    if steps > 1:
        h.append(a1 * b)
    for _ in range(2, steps):
        h.append(a1 * h[-1] + a2 * h[-2])
    return torch.stack(h[:steps])


def first_order_impulse_response(alpha: Tensor, steps: int) -> Tensor:
    """``h[n] = alpha^n`` for ``n < steps``, shape ``[steps, *alpha.shape]``."""
    # alpha**n via repeated products keeps negative alpha and the gradient at alpha = 0 exact
    h = [torch.ones_like(alpha)]
    for _ in range(1, steps):
        h.append(h[-1] * alpha)
    return torch.stack(h)


# ---------------------------------------------------------------------------------------------
# shape handling
# ---------------------------------------------------------------------------------------------
def _split_features(x: Tensor, coeff: Tensor, name: str) -> tuple[int, int]:
    """Check that ``coeff`` matches ``x = [T, B, *features]``; return ``(C, R)`` with
    ``C = coeff.numel()`` leading features and ``R`` trailing features sharing a coefficient."""
    if x.dim() < 3:
        raise ValueError(f"{name}: input must be time-major [T, B, *features], got shape {tuple(x.shape)}")
    features = tuple(x.shape[2:])
    cshape = list(coeff.shape)
    while cshape and cshape[-1] == 1:  # trailing singleton dims: shared along those features
        cshape.pop()
    lead = len(cshape)
    if coeff.dim() > len(features) or tuple(cshape) != features[:lead]:
        raise ValueError(
            f"{name}: coefficient shape {tuple(coeff.shape)} must equal the leading feature dims of "
            f"{features}, optionally followed by 1s (one coefficient per neuron or per channel)"
        )
    channels = math.prod(features[:lead]) if lead else 1
    rest = math.prod(features[lead:]) if lead < len(features) else 1
    return channels, rest


def _apply_toeplitz(x: Tensor, h: Tensor, channels: int, rest: int) -> Tensor:
    """``p[t] = sum_{k <= t} h[t - k] x[k]`` per channel, as a batched ``[T, T]`` matrix product."""
    steps, batch = x.shape[0], x.shape[1]
    h = h.reshape(steps, channels)
    lag = torch.arange(steps, device=x.device)
    lag = lag.view(-1, 1) - lag.view(1, -1)  # [t, k] = t - k
    causal = lag >= 0
    toeplitz = h[lag.clamp(min=0)] * causal.unsqueeze(-1).to(h.dtype)  # [T, T, C]
    xs = x.reshape(steps, batch, channels, rest)
    out = torch.einsum("tkc,kbcr->tbcr", toeplitz, xs)
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# fused recurrences (forward recurrence, adjoint recurrence backward)
# ---------------------------------------------------------------------------------------------
def _kernel_for(x: Tensor):
    """The compiled CPU kernels when they apply to ``x`` (CPU, float32/float64), else ``None``."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or not _USE_KERNELS[0]:
        return None
    return kernels()


_USE_KERNELS = [True]  # switched off by tests to compare with the pure-PyTorch path


class _DualExpScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, a1: Tensor, a2: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        # x [T, B, C, R]; coefficients [C, 1]
        kernel = _kernel_for(x)
        ctx.kernel = kernel
        if kernel is not None:
            x = x.contiguous()
            flat = [c.reshape(-1).to(x.dtype).contiguous() for c in (a1, a2, b)]
            out = kernel.dual_exp_forward(x, *flat)
            ctx.save_for_backward(x, out, *flat)
            ctx.coeff_dtype = a1.dtype
            return out
        out = torch.empty_like(x)
        p1 = torch.zeros_like(x[0])
        p2 = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            p = torch.addcmul(torch.addcmul(b * x[t], a1, p1), a2, p2)
            out[t] = p
            p2, p1 = p1, p
        ctx.save_for_backward(x, out, a1, a2, b)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, out, a1, a2, b = ctx.saved_tensors
        if ctx.kernel is not None:
            grad_x, sums = ctx.kernel.dual_exp_backward(grad_out.contiguous(), x, out, a1, a2, b)
            grads = sums.sum(dim=(1, 3)).unsqueeze(-1).to(ctx.coeff_dtype)  # [3, C, 1]
            return grad_x, grads[0], grads[1], grads[2]
        steps = x.shape[0]
        lam = torch.empty_like(grad_out)  # adjoint: dL/dp[t] including the future
        l1 = torch.zeros_like(grad_out[0])
        l2 = torch.zeros_like(grad_out[0])
        for t in range(steps - 1, -1, -1):
            lt = torch.addcmul(torch.addcmul(grad_out[t], a1, l1), a2, l2)
            lam[t] = lt
            l2, l1 = l1, lt
        grad_x = lam * b if ctx.needs_input_grad[0] else None
        sum_dims = (0, 1, 3)
        grad_a1 = (lam[1:] * out[:-1]).sum(dim=sum_dims).unsqueeze(-1) if steps > 1 else torch.zeros_like(a1)
        grad_a2 = (lam[2:] * out[:-2]).sum(dim=sum_dims).unsqueeze(-1) if steps > 2 else torch.zeros_like(a2)
        grad_b = (lam * x).sum(dim=sum_dims).unsqueeze(-1)
        return grad_x, grad_a1, grad_a2, grad_b


class _FirstOrderScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor) -> Tensor:  # type: ignore[override]
        kernel = _kernel_for(x)
        ctx.kernel = kernel
        if kernel is not None:
            flat = alpha.reshape(-1).to(x.dtype).contiguous()
            out = kernel.first_order_forward(x.contiguous(), flat)
            ctx.save_for_backward(out, flat)
            ctx.coeff_dtype = alpha.dtype
            return out
        out = torch.empty_like(x)
        p = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            p = torch.addcmul(x[t], alpha, p)
            out[t] = p
        ctx.save_for_backward(out, alpha)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        out, alpha = ctx.saved_tensors
        if ctx.kernel is not None:
            grad_x, sums = ctx.kernel.first_order_backward(grad_out.contiguous(), out, alpha)
            return grad_x, sums.sum(dim=(0, 2)).unsqueeze(-1).to(ctx.coeff_dtype)
        lam = torch.empty_like(grad_out)
        lt = torch.zeros_like(grad_out[0])
        for t in range(grad_out.shape[0] - 1, -1, -1):
            lt = torch.addcmul(grad_out[t], alpha, lt)
            lam[t] = lt
        grad_alpha = (lam[1:] * out[:-1]).sum(dim=(0, 1, 3)).unsqueeze(-1) if out.shape[0] > 1 else torch.zeros_like(alpha)
        return lam, grad_alpha


# ---------------------------------------------------------------------------------------------
# filters
# ---------------------------------------------------------------------------------------------
def _pick(method: str, steps: int, device: torch.device) -> str:
    if method not in ("auto", "toeplitz", "scan", "loop"):
        raise ValueError(f"method must be 'auto', 'toeplitz', 'scan' or 'loop', got {method!r}")
    if method == "auto":
        return "toeplitz" if device.type != "cpu" and steps <= _TOEPLITZ_MAX_T else "scan"
    return method


def dual_exp_filter(
    x: Tensor,
    a1: Tensor,
    a2: Tensor,
    b: Tensor,
    method: FilterMethod = "auto",
    margin: float | None = STABILITY_MARGIN,
) -> Tensor:
    """Dual-exponential PSP of the spike (or current) sequence ``x [T, B, *features]``.

    ``a1``, ``a2``, ``b``: one coefficient per neuron/channel (see the module docstring);
    ``margin``: stability guard (``None`` disables it, as in Fang et al.'s code). Returns ``[T, B, *features]``.
    """
    channels, rest = _split_features(x, a1, "dual_exp_filter")
    for name, coeff in (("a2", a2), ("b", b)):
        if coeff.shape != a1.shape:
            raise ValueError(f"dual_exp_filter: {name} has shape {tuple(coeff.shape)}, a1 has {tuple(a1.shape)}")
    if margin is not None:
        a1, a2 = stable_dual_exp_coefficients(a1, a2, margin)
    steps = x.shape[0]
    method = _pick(method, steps, x.device)
    if method == "toeplitz":
        h = dual_exp_impulse_response(a1.reshape(channels), a2.reshape(channels), b.reshape(channels), steps)
        return _apply_toeplitz(x, h.to(x.dtype), channels, rest)
    if method == "scan":
        xs = x.reshape(steps, x.shape[1], channels, rest)
        shape = (channels, 1)
        out = _DualExpScan.apply(xs, a1.reshape(shape), a2.reshape(shape), b.reshape(shape))
        return out.reshape(x.shape)
    # plain autograd loop (reference)
    p1 = torch.zeros_like(x[0])
    p2 = torch.zeros_like(x[0])
    out = []
    for t in range(steps):
        p = a1 * p1 + a2 * p2 + b * x[t]
        out.append(p)
        p2, p1 = p1, p
    return torch.stack(out)


def first_order_filter(
    x: Tensor,
    alpha: Tensor,
    method: FilterMethod = "auto",
    margin: float | None = STABILITY_MARGIN,
) -> Tensor:
    """First-order low-pass PSP ``p[t] = alpha p[t-1] + x[t]`` of ``x [T, B, *features]``."""
    channels, rest = _split_features(x, alpha, "first_order_filter")
    if margin is not None:
        alpha = stable_first_order_coefficient(alpha, margin)
    steps = x.shape[0]
    method = _pick(method, steps, x.device)
    if method == "toeplitz":
        h = first_order_impulse_response(alpha.reshape(channels), steps)
        return _apply_toeplitz(x, h.to(x.dtype), channels, rest)
    if method == "scan":
        xs = x.reshape(steps, x.shape[1], channels, rest)
        return _FirstOrderScan.apply(xs, alpha.reshape(channels, 1)).reshape(x.shape)
    p = torch.zeros_like(x[0])
    out = []
    for t in range(steps):
        p = alpha * p + x[t]
        out.append(p)
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# reset-trace neuron
# ---------------------------------------------------------------------------------------------
class _ResetTraceNeuron(torch.autograd.Function):
    """Fused multi-step reset-trace neuron; the backward pass is the adjoint recurrence."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, current: Tensor, v0: Tensor, r0: Tensor, threshold: float, reset_decay: float,
        membrane_decay: float, surrogate: Surrogate,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # the compiled kernel computes Gaussian's derivative only: any other surrogate (a subclass of
        # Gaussian with its own derivative included) runs the loop below, which calls its derivative
        kernel = _kernel_for(current) if kernel_kind(surrogate) == Gaussian.kind_id else None
        ctx.kernel = kernel
        ctx.params = (threshold, reset_decay, membrane_decay, surrogate)
        ctx.v0_shape, ctx.r0_shape = v0.shape, r0.shape
        if kernel is not None:
            state_shape = current.shape[1:]
            flat = current.reshape(current.shape[0], -1).contiguous()
            v_init = v0.to(current.dtype).expand(state_shape).reshape(-1).contiguous()
            r_init = r0.to(current.dtype).expand(state_shape).reshape(-1).contiguous()
            spikes, potentials, v_last, r_last = kernel.neuron_forward(
                flat, v_init, r_init, threshold, reset_decay, membrane_decay
            )
            ctx.save_for_backward(potentials)
            ctx.state_shape = state_shape
            return spikes.view(current.shape), v_last.view(state_shape), r_last.view(state_shape)
        spikes = torch.empty_like(current)
        potentials = torch.empty_like(current)
        v = v0.expand_as(current[0])
        r = r0.expand_as(current[0])
        for t in range(current.shape[0]):
            v = current[t] - r if membrane_decay == 0.0 else current[t] - r + membrane_decay * v
            s = (v >= threshold).to(current.dtype)
            r = reset_decay * r + s
            potentials[t] = v
            spikes[t] = s
        ctx.save_for_backward(potentials)
        return spikes, v.clone(), r.clone()

    @staticmethod
    def backward(ctx, grad_spikes: Tensor, grad_v_last: Tensor | None, grad_r_last: Tensor | None):  # type: ignore[override]
        (potentials,) = ctx.saved_tensors
        threshold, reset_decay, membrane_decay, surrogate = ctx.params
        if ctx.kernel is not None:
            steps = potentials.shape[0]
            zeros = potentials.new_zeros(potentials.shape[1:])
            gv_last = zeros if grad_v_last is None else grad_v_last.reshape(-1).contiguous()
            gr_last = zeros if grad_r_last is None else grad_r_last.reshape(-1).contiguous()
            grad_current, cv, cr = ctx.kernel.neuron_backward(
                grad_spikes.reshape(steps, -1).contiguous(), potentials, gv_last, gr_last,
                threshold, reset_decay, membrane_decay, surrogate.alpha,
            )
            cv, cr = cv.view(ctx.state_shape), cr.view(ctx.state_shape)
            grad_v0 = _reduce_to(cv, ctx.v0_shape) if ctx.needs_input_grad[1] else None
            grad_r0 = _reduce_to(cr, ctx.r0_shape) if ctx.needs_input_grad[2] else None
            return grad_current.view(grad_spikes.shape), grad_v0, grad_r0, None, None, None, None
        sg = surrogate_derivative(surrogate, potentials - threshold)
        grad_current = torch.empty_like(potentials)
        zero = torch.zeros_like(potentials[0])
        cv = zero if grad_v_last is None else grad_v_last.expand_as(zero)  # dL/dv[t] from the future
        cr = zero if grad_r_last is None else grad_r_last.expand_as(zero)  # dL/dr[t] from the future
        for t in range(potentials.shape[0] - 1, -1, -1):
            gv = (grad_spikes[t] + cr) * sg[t] + cv
            grad_current[t] = gv
            cr = reset_decay * cr - gv
            cv = membrane_decay * gv
        grad_v0 = _reduce_to(cv, ctx.v0_shape) if ctx.needs_input_grad[1] else None
        grad_r0 = _reduce_to(cr, ctx.r0_shape) if ctx.needs_input_grad[2] else None
        return grad_current, grad_v0, grad_r0, None, None, None, None


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for dim, size in enumerate(shape):
        if size == 1 and grad.shape[dim] != 1:
            grad = grad.sum(dim, keepdim=True)
    return grad


def reset_trace_neuron(
    current: Tensor,
    tau_m: float = 4.0,
    threshold: float = 1.0,
    membrane_filter: bool = False,
    surrogate: Surrogate | None = None,
    v0: Tensor | None = None,
    r0: Tensor | None = None,
    fused: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run the reset-trace neuron over ``current [T, B, *features]`` (``W p[t] + bias``, precomputed).

    Returns ``(spikes [T, B, ...], v_last, r_last)``; ``v0``/``r0`` are the initial membrane and
    reset-trace states (zero when ``None``). ``fused=False`` runs the plain autograd loop, the
    reference of the fused kernel.
    """
    if current.dim() < 2:
        raise ValueError(f"reset_trace_neuron: input must be time-major [T, B, ...], got shape {tuple(current.shape)}")
    surrogate = Gaussian(0.4) if surrogate is None else surrogate
    decay = first_order_coefficient(tau_m)
    membrane_decay = decay if membrane_filter else 0.0
    zero = current.new_zeros(())
    v0 = zero if v0 is None else v0
    r0 = zero if r0 is None else r0
    if fused:
        return _ResetTraceNeuron.apply(current, v0, r0, float(threshold), decay, membrane_decay, surrogate)
    v, r = v0, r0
    spikes = []
    for t in range(current.shape[0]):
        s, v, r = reset_trace_neuron_step(current[t], v, r, decay, membrane_decay, threshold, surrogate)
        spikes.append(s)
    return torch.stack(spikes), v.expand_as(current[0]), r.expand_as(current[0])


def reset_trace_neuron_step(
    current: Tensor, v: Tensor, r: Tensor, reset_decay: float, membrane_decay: float,
    threshold: float, surrogate: Surrogate,
) -> tuple[Tensor, Tensor, Tensor]:
    """One step: ``v = m v + I - r``; ``s = H(v - theta)``; ``r = d r + s``. Returns ``(s, v, r)``."""
    v = current - r + membrane_decay * v if membrane_decay != 0.0 else current - r
    s = surrogate(v - threshold)
    r = reset_decay * r + s
    return s, v, r
