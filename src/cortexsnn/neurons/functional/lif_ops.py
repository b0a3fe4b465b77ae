"""The fused IF / LIF / PLIF kernels as PyTorch custom operators (``torch.ops.cortexsnn.*``).

The CPU kernel is called through ``ctypes`` and the Triton kernels are launched from Python: both
are opaque to ``torch.compile``, which broke its graph at every neuron when they ran inside an
``autograd.Function``. Registered with :func:`torch.library.custom_op`, each kernel is one node
of the graph: a fake (meta) implementation gives ``torch.compile`` the shapes and dtypes of the
outputs without running the kernel, and :meth:`register_autograd` gives it the backward pass,
itself another custom op. The results are those of the kernels called directly, bit for bit.

Operators (every non-tensor argument an ``int``, ``float`` or ``bool``):

* ``cortexsnn::lif_multistep_cpu(x, v_init, decay, mode, div, v_threshold, v_reset, hard,
  detach_reset, surrogate_kind, alpha, keep_h) -> (spikes, v_last, h_seq)`` and its backward
  ``cortexsnn::lif_multistep_cpu_backward``; the CPU kernel recomputes ``H`` in the backward pass,
  so ``h_seq`` is always empty.
* ``cortexsnn::lif_multistep_triton`` / ``cortexsnn::lif_multistep_triton_backward``: the same for
  the Triton kernels (CUDA tensors, or any tensor under ``TRITON_INTERPRET=1``); with ``keep_h``
  (training) ``h_seq`` holds ``H`` for the backward pass, else it is empty.

``mode`` is the charge rule (0 IF, 1 LIF with ``decay_input``, 2 LIF without), ``decay`` a 0-d
tensor holding ``tau`` (``div=True``, LIF) or ``sigmoid(w)`` (``div=False``, PLIF; its gradient is
the op's gradient to ``decay``), ``v_reset`` is ignored unless ``hard``, ``surrogate_kind`` and
``alpha`` are a :class:`~cortexsnn.neurons.surrogate.Surrogate`'s ``kind_id`` and ``alpha``.
``x`` must be contiguous ``[T, ...]``; ``v_init`` has one element (CPU only: the kernel
broadcasts it) or the shape of ``x[0]``, contiguous. :func:`fused_sequence` prepares the inputs
and calls the right op.

:mod:`cortexsnn.neurons.functional.lif` calls it while ``torch.compile`` traces; eager calls go to
the kernels through an ``autograd.Function`` as before, because a Python custom op's dispatch
(the generated autograd node, the argument handling of ``register_autograd``) cost more than the
kernel itself on small layers: a ``[4, 2, 64]`` LIF forward + backward took about 1.4 ms through the
ops against 0.5 ms direct (2-core machine under load). Both paths run the same kernel functions;
``tests/neurons/test_lif_ops.py`` checks that they agree bit for bit.
"""
from __future__ import annotations

import torch
from torch import Tensor

from cortexsnn.neurons.kernels import compiled_surrogate, triton_kernel
from cortexsnn.neurons.surrogate import _KERNEL_FORMULAS, Surrogate

__all__ = ["fused_sequence", "OPS"]

_MODE_IF = 0


def _kernel_surrogate(kind: int, alpha: float) -> Surrogate:
    """The built-in surrogate whose formula the kernels know as ``kind`` (an op passes only its id
    and ``alpha``)."""
    return _KERNEL_FORMULAS[kind](alpha)


def _decay_value(decay: Tensor, mode: int) -> float:
    return float(decay) if mode != _MODE_IF else 1.0


# --------------------------------------------------------------------------------------------
# the CPU kernel
# --------------------------------------------------------------------------------------------
@torch.library.custom_op("cortexsnn::lif_multistep_cpu", mutates_args=(), device_types="cpu")
def lif_multistep_cpu(
    x: Tensor, v_init: Tensor, decay: Tensor, mode: int, div: bool, v_threshold: float, v_reset: float,
    hard: bool, detach_reset: bool, surrogate_kind: int, alpha: float, keep_h: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    from cortexsnn.neurons.functional.lif import _forward_cpu

    spikes, _, v_last = _forward_cpu(x, v_init, mode, _decay_value(decay, mode), div, v_threshold, v_reset, hard,
                                     False)
    return spikes, v_last, x.new_empty(0)  # H is recomputed by the backward pass: never kept


@lif_multistep_cpu.register_fake
def _(x, v_init, decay, mode, div, v_threshold, v_reset, hard, detach_reset, surrogate_kind, alpha, keep_h):
    return torch.empty_like(x), torch.empty_like(x[0]), x.new_empty(0)


@torch.library.custom_op("cortexsnn::lif_multistep_cpu_backward", mutates_args=(), device_types="cpu")
def lif_multistep_cpu_backward(
    grad_spikes: Tensor, grad_v_last: Tensor | None, x: Tensor, v_init: Tensor, decay: Tensor, mode: int,
    div: bool, v_threshold: float, v_reset: float, hard: bool, detach_reset: bool, surrogate_kind: int,
    alpha: float, want_decay: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    from cortexsnn.neurons.functional.lif import _backward_cpu

    grad_x, grad_v_init, grad_decay = _backward_cpu(
        grad_spikes, grad_v_last, None, x, v_init, mode, _decay_value(decay, mode), div, v_threshold, v_reset, hard,
        detach_reset, _kernel_surrogate(surrogate_kind, alpha), want_decay,
    )
    return grad_x, grad_v_init, torch.tensor(grad_decay, dtype=torch.float64)


@lif_multistep_cpu_backward.register_fake
def _(grad_spikes, grad_v_last, x, v_init, decay, mode, div, v_threshold, v_reset, hard, detach_reset,
      surrogate_kind, alpha, want_decay):
    return torch.empty_like(x), torch.empty_like(x[0]), x.new_empty((), dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# the Triton kernels
# --------------------------------------------------------------------------------------------
def _h_dtype(dtype: torch.dtype) -> torch.dtype:
    # the Triton forward keeps H of 16-bit inputs in float32 (see lif_triton.forward)
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


@torch.library.custom_op("cortexsnn::lif_multistep_triton", mutates_args=())
def lif_multistep_triton(
    x: Tensor, v_init: Tensor, decay: Tensor, mode: int, div: bool, v_threshold: float, v_reset: float,
    hard: bool, detach_reset: bool, surrogate_kind: int, alpha: float, keep_h: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    spikes, h_seq, v_last = triton_kernel().forward(
        x, v_init, mode, _decay_value(decay, mode), div, v_threshold, v_reset, hard, keep_h
    )
    return spikes, v_last, h_seq if keep_h else x.new_empty(0, dtype=_h_dtype(x.dtype))


@lif_multistep_triton.register_fake
def _(x, v_init, decay, mode, div, v_threshold, v_reset, hard, detach_reset, surrogate_kind, alpha, keep_h):
    h_seq = torch.empty_like(x, dtype=_h_dtype(x.dtype)) if keep_h else x.new_empty(0, dtype=_h_dtype(x.dtype))
    return torch.empty_like(x), x.new_empty(x.shape[1:]), h_seq


@torch.library.custom_op("cortexsnn::lif_multistep_triton_backward", mutates_args=())
def lif_multistep_triton_backward(
    grad_spikes: Tensor, grad_v_last: Tensor | None, h_seq: Tensor, x: Tensor, v_init: Tensor, decay: Tensor,
    mode: int, div: bool, v_threshold: float, v_reset: float, hard: bool, detach_reset: bool, surrogate_kind: int,
    alpha: float, want_decay: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    grad_x, grad_v_init, grad_decay = triton_kernel().backward(
        grad_spikes, grad_v_last, h_seq, x, v_init, mode, _decay_value(decay, mode), div, v_threshold, v_reset, hard,
        detach_reset, _kernel_surrogate(surrogate_kind, alpha), want_decay,
    )
    return grad_x, grad_v_init, torch.tensor(grad_decay, dtype=torch.float64, device=h_seq.device)


@lif_multistep_triton_backward.register_fake
def _(grad_spikes, grad_v_last, h_seq, x, v_init, decay, mode, div, v_threshold, v_reset, hard, detach_reset,
      surrogate_kind, alpha, want_decay):
    return (torch.empty_like(h_seq, dtype=grad_spikes.dtype), h_seq.new_empty(h_seq.shape[1:], dtype=grad_spikes.dtype),
            h_seq.new_empty((), dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# autograd: the backward pass of each forward op is its backward op
# --------------------------------------------------------------------------------------------
# positions of the forward ops' inputs
_X, _V_INIT, _DECAY = 0, 1, 2


def _setup_context(ctx, inputs, output, recompute: bool) -> None:
    """What the backward pass keeps: on the CPU kernel (``recompute``) ``X`` and ``V_init``, from
    which it recomputes ``H``; on Triton ``H``, and ``X`` and ``V_init`` only for the gradient to
    ``decay`` (PLIF)."""
    x, v_init, decay, mode, div, v_threshold, v_reset, hard, detach, kind, alpha, keep_h = inputs
    _, _, h_seq = output
    ctx.mark_non_differentiable(h_seq)
    ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
    want_decay = bool(ctx.needs_input_grad[_DECAY])
    keep_input = recompute or want_decay
    ctx.save_for_backward(None if recompute else h_seq, x if keep_input else None, v_init if keep_input else None)
    # decay is an input, held for its value (the kernel reads it as a number) without adding to
    # the saved tensors; the backward op reads it, so torch.compile never needs it as a Python float
    ctx.decay = decay
    ctx.v_init_shape = v_init.shape
    ctx.config = (mode, div, v_threshold, v_reset, hard, detach, kind, alpha, want_decay, x.dtype)


def _setup_cpu(ctx, inputs, output) -> None:
    _setup_context(ctx, inputs, output, recompute=True)


def _setup_triton(ctx, inputs, output) -> None:
    _setup_context(ctx, inputs, output, recompute=False)


def _grad_spikes_or_zero(grad_spikes: Tensor | None, like: Tensor, dtype: torch.dtype) -> Tensor:
    if grad_spikes is None:  # only v_last was used: a zero that takes no memory
        return like.new_zeros((), dtype=dtype).expand(like.shape)
    return grad_spikes


def _gradients(ctx, grad_x, grad_v, grad_decay):
    v_init_shape = ctx.v_init_shape
    grad_x = grad_x if ctx.needs_input_grad[_X] else None
    grad_v = grad_v.sum_to_size(v_init_shape) if ctx.needs_input_grad[_V_INIT] else None
    want_decay = ctx.config[8]
    grad_decay = grad_decay.to(dtype=ctx.decay.dtype, device=ctx.decay.device) if want_decay else None
    return grad_x, grad_v, grad_decay, None, None, None, None, None, None, None, None, None


def _backward_cpu(ctx, grad_spikes, grad_v_last, grad_h):
    _, x, v_init = ctx.saved_tensors
    mode, div, v_th, v_reset, hard, detach, kind, alpha, want_decay, x_dtype = ctx.config
    grad_spikes = _grad_spikes_or_zero(grad_spikes, x, x_dtype)
    grad_x, grad_v, grad_decay = torch.ops.cortexsnn.lif_multistep_cpu_backward(
        grad_spikes, grad_v_last, x, v_init, ctx.decay, mode, div, v_th, v_reset, hard, detach, kind, alpha,
        want_decay,
    )
    return _gradients(ctx, grad_x, grad_v, grad_decay)


def _backward_triton(ctx, grad_spikes, grad_v_last, grad_h):
    h_seq, x, v_init = ctx.saved_tensors
    mode, div, v_th, v_reset, hard, detach, kind, alpha, want_decay, x_dtype = ctx.config
    grad_spikes = _grad_spikes_or_zero(grad_spikes, h_seq, x_dtype)
    # without the gradient to decay the kernel reads neither X nor V_init: H stands in for them
    grad_x, grad_v, grad_decay = torch.ops.cortexsnn.lif_multistep_triton_backward(
        grad_spikes, grad_v_last, h_seq, h_seq if x is None else x, h_seq[0] if v_init is None else v_init, ctx.decay,
        mode, div, v_th, v_reset, hard, detach, kind, alpha, want_decay,
    )
    return _gradients(ctx, grad_x, grad_v, grad_decay)


lif_multistep_cpu.register_autograd(_backward_cpu, setup_context=_setup_cpu)
lif_multistep_triton.register_autograd(_backward_triton, setup_context=_setup_triton)

OPS = {"cpu": torch.ops.cortexsnn.lif_multistep_cpu, "triton": torch.ops.cortexsnn.lif_multistep_triton}


def fused_sequence(
    backend: str, x: Tensor, v_init: Tensor, decay: Tensor, mode: int, div: bool, v_threshold: float,
    v_reset: float | None, detach_reset: bool, surrogate, track: bool,
) -> tuple[Tensor, Tensor]:
    """Run the ``backend`` (``"cpu"`` or ``"triton"``) op over contiguous ``x [T, ...]``:
    ``(spikes, v_last)``.

    ``v_init`` is one value or has the shape of ``x[0]``; ``track`` (grad mode on and an input
    needing a gradient) makes the Triton forward keep ``H`` for the backward pass.
    """
    if backend == "cpu" and v_init.numel() == 1:
        v0 = v_init  # the kernel broadcasts one value itself: no [B, ...] copy
    else:
        v0 = v_init.expand_as(x[0]).contiguous()  # its gradient is summed back by autograd
    hard = v_reset is not None
    spikes, v_last, _ = OPS[backend](
        x, v0, decay, mode, div, float(v_threshold), float(v_reset) if hard else 0.0, hard, bool(detach_reset),
        compiled_surrogate(surrogate, backend), float(surrogate.alpha), bool(track),
    )
    return spikes, v_last
