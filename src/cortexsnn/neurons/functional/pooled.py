"""IF / LIF neurons over a static input, fused with the max pooling that follows them.

A ResNet stem fed an image repeated over ``T`` steps computes ``conv -> BN`` once, then a neuron
layer over the same input at every step, then a max-pool. Run separately, the neuron writes a
``[T, B, C, H, W]`` spike tensor (the largest of the network: 64 x 112 x 112 per image and step
at 224 px), the pool reads it and keeps ``int64`` argmax indices, the backward pass fills a zeroed
``[T, B, C, H, W]`` gradient, runs the neuron's adjoint and sums over ``T``.
:func:`neuron_maxpool_static` does all of it one ``(batch, channel)`` plane at a time in a cache-
sized buffer: only the pooled spikes and a byte per pooled output (the window position of its
maximum) reach memory. The results are those of :func:`cortexsnn.neurons.functional.lif_multistep`
(or ``if_multistep``) on the expanded input followed by ``F.max_pool2d``: same spikes, the same
tie-breaking of the maximum (the first maximum of the window in row-major order, as PyTorch's CPU
pooling), the same gradients (tested against that composition).

CPU kernel only (``lif_cpu.c``); :func:`fusable` says when it applies.
"""
from __future__ import annotations

import torch
from torch import Tensor

from cortexsnn.neurons.functional.lif import (
    _MODE_IF, _MODE_LIF, _MODE_LIF_DECAY_INPUT, _check_status, _ptr, _raise_not_finite, _threads,
)
from cortexsnn.neurons.kernels import compiled_surrogate, cpu_kernel
from cortexsnn.neurons.surrogate import Surrogate

__all__ = ["neuron_maxpool_static", "pool_geometry"]


def pool_geometry(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int]) -> tuple[int, int]:
    """Output size of a max-pool (no dilation, floor mode)."""
    return (h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1


class _NeuronMaxPoolStatic(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, steps, config):  # type: ignore[override]
        mode, div, d, v_th, v_reset, hard, v_init, detach, surrogate, kernel, stride, padding = config
        lib = cpu_kernel()
        suffix = "f32" if x.dtype == torch.float32 else "f64"
        b, c, h, w = x.shape
        oh, ow = pool_geometry(h, w, kernel, stride, padding)
        planes = b * c
        out = x.new_empty((steps, b, c, oh, ow))
        arg = torch.empty((steps, b, c, oh, ow), dtype=torch.uint8)
        v_last = torch.empty_like(x)
        threads = _threads(steps, x.numel())
        workspace = x.new_empty(threads * 2 * h * w)
        geometry = (steps, planes, h, w, *kernel, *stride, *padding, oh, ow)
        not_finite = getattr(lib, f"lif_pool_forward_{suffix}")(
            _ptr(x), _ptr(out), _ptr(arg), _ptr(v_last), _ptr(workspace), v_init, *geometry, mode, int(div), d, v_th,
            v_reset, int(hard), threads,
        )
        if not_finite < 0:
            _check_status(not_finite, 0, mode)
        if not_finite:
            _raise_not_finite()
        ctx.save_for_backward(x, arg)
        ctx.config = config
        ctx.geometry = geometry
        ctx.mark_non_differentiable(v_last)
        return out, v_last

    @staticmethod
    def backward(ctx, grad_out, _grad_v_last):  # type: ignore[override]
        x, arg = ctx.saved_tensors
        mode, div, d, v_th, v_reset, hard, v_init, detach, surrogate, *_ = ctx.config
        steps, _, h, w = ctx.geometry[:4]
        lib = cpu_kernel()
        suffix = "f32" if x.dtype == torch.float32 else "f64"
        grad_out = grad_out.contiguous()
        grad_x = torch.empty_like(x)
        threads = _threads(steps, x.numel())
        workspace = x.new_empty(threads * (steps + 3) * h * w)
        kind = compiled_surrogate(surrogate, "cpu")
        status = getattr(lib, f"lif_pool_backward_{suffix}")(
            _ptr(grad_out), _ptr(arg), _ptr(x), _ptr(grad_x), _ptr(workspace), v_init, *ctx.geometry, mode,
            int(div), d, v_th, v_reset, int(hard), int(detach), kind, surrogate.alpha, threads,
        )
        _check_status(status, kind, mode)
        return grad_x, None, None


def neuron_maxpool_static(
    x: Tensor,
    steps: int,
    *,
    tau: float | None = None,
    decay_input: bool = True,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    v_init: float | None = None,
    surrogate: Surrogate,
    detach_reset: bool = False,
    kernel_size: tuple[int, int] = (3, 3),
    stride: tuple[int, int] = (2, 2),
    padding: tuple[int, int] = (1, 1),
) -> tuple[Tensor, Tensor]:
    """IF (``tau=None``) or LIF neurons driven by the same input ``x [B, C, H, W]`` for ``steps``
    steps, their spikes max-pooled: returns ``(pooled spikes [steps, B, C, OH, OW], v_last)``.

    Equal to ``max_pool2d(lif_multistep(x.expand(steps, ...)))`` (per step), forward and
    backward; ``v_last`` (the final membrane potential) carries no gradient. ``v_init`` is one
    value for every neuron (default: ``v_reset``, or 0 for a soft reset). Needs the compiled CPU
    kernel and a contiguous float32/float64 CPU tensor; the window may hold at most 255 positions,
    and a surrogate the kernel implements (a built-in one: ``UnsupportedSurrogateError`` otherwise;
    :func:`cortexsnn.models.layers.fire_and_pool` then takes the unfused modules).
    """
    compiled_surrogate(surrogate, "cpu")  # refused before the forward pass, not in the backward
    if cpu_kernel() is None:
        raise RuntimeError("neuron_maxpool_static needs the compiled CPU neuron kernel (a C compiler)")
    if x.dim() != 4 or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"expected a float32/float64 CPU tensor [B, C, H, W], got {x.dtype} {tuple(x.shape)} "
                         f"on {x.device}")
    if kernel_size[0] * kernel_size[1] > 255:
        raise ValueError(f"pooling window {kernel_size} too large for the fused kernel (at most 255 positions)")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    hard = v_reset is not None
    v_reset_value = float(v_reset) if hard else 0.0
    v0 = float(v_init) if v_init is not None else v_reset_value
    if tau is None:
        mode, d = _MODE_IF, 1.0
    else:
        mode, d = (_MODE_LIF_DECAY_INPUT if decay_input else _MODE_LIF), float(tau)
    config = (mode, True, d, float(v_threshold), v_reset_value, hard, v0, bool(detach_reset), surrogate,
              tuple(kernel_size), tuple(stride), tuple(padding))
    return _NeuronMaxPoolStatic.apply(x.contiguous(), int(steps), config)

