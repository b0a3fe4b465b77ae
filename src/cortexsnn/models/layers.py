"""Multi-step building blocks for deep SNNs on time-major tensors ``[T, B, ...]``.

Stateless layers (convolution, normalisation, pooling) are applied to all time steps at once by
folding time into the batch: ``[T, B, C, H, W] -> [T*B, C, H, W] -> [T, B, C', H', W']``. They are
subclasses of the torch layers, so their state-dict keys are the familiar ones (``conv1.weight``,
``bn1.running_mean``, ...) and checkpoints of SpikingJelly / torchvision layouts map one to one.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from cortexsnn.neurons import IFNode, LIFNode, MemoryModule, PLIFNode, reset
from cortexsnn.neurons.functional.pooled import neuron_maxpool_static
from cortexsnn.neurons.kernels import resolve_backend
from cortexsnn.neurons.surrogate import kernel_kind
from cortexsnn.neurons.surrogate import ATan

__all__ = [
    "SeqConv2d",
    "SeqBatchNorm2d",
    "SeqMaxPool2d",
    "SeqAdaptiveAvgPool2d",
    "SeqGroupNorm",
    "SeqConvTranspose2d",
    "SeqReLU",
    "make_neuron",
    "NEURONS",
    "SpikingModel",
    "run_stage",
    "record_layers",
    "mark_spike_inputs",
    "set_compact_spikes",
    "repeated_over_time",
    "conv_bn_static",
    "fire_and_pool",
    "static_stem",
    "time_major_to",
    "is_channels_last",
]


def _fold(module_forward: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    if x.dim() != 5:
        raise ValueError(f"expected a time-major feature map [T, B, C, H, W], got shape {tuple(x.shape)}")
    steps, batch = x.shape[:2]
    y = module_forward(x.flatten(0, 1))
    return y.view(steps, batch, *y.shape[1:])


class _SpikeInputConv2d(torch.autograd.Function):
    """A convolution that keeps its input for the backward pass as ``uint8``.

    Its input is a spike count (0/1 spikes, or small sums of them after a SEW ``ADD``), which
    ``uint8`` holds exactly, so the gradients are the same as ``F.conv2d``'s while the saved
    activation takes a quarter of the memory.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x.to(torch.uint8), weight)
        ctx.config = (list(stride), list(padding), list(dilation), groups, x.dtype, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        packed, weight = ctx.saved_tensors
        stride, padding, dilation, groups, dtype, has_bias = ctx.config
        need = ctx.needs_input_grad
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, packed.to(dtype), weight, [weight.shape[0]] if has_bias else None, stride, padding, dilation,
            False, [0, 0], groups, [need[0], need[1], has_bias and need[2]],
        )
        return grad_x, grad_w, grad_b, None, None, None, None


@functools.lru_cache(maxsize=512)
def _tap_blocks(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]):
    """Which kernel taps of a convolution fall inside the input, grouped for matrix products.

    Returns ``((oh, ow), blocks)``. Each block is ``((i, j0, j1), pairs)``: kernel row ``i``,
    columns ``j0:j1``, and the ``(output pixel, input row, first input column)`` triples whose
    window meets the input in exactly those taps of that row. Taps over the zero padding appear
    in no block.
    """
    (h, w), (kh, kw), (sh, sw), (ph, pw) = size, kernel, stride, padding
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    blocks: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    for oy in range(oh):
        for ox in range(ow):
            left = ox * sw - pw
            j0, j1 = max(0, -left), min(kw, w - left)
            if j0 >= j1:
                continue
            for i in range(kh):
                qy = oy * sh - ph + i
                if 0 <= qy < h:
                    blocks.setdefault((i, j0, j1), []).append((oy * ow + ox, qy, left + j0))
    return (oh, ow), tuple((key, tuple(pairs)) for key, pairs in blocks.items())


def _block_rows(source: Tensor, pairs, width: int) -> Tensor:
    """``source [N, H, W, C]`` at each pair's input row and columns, as rows ``[pairs * N, width * C]``."""
    n = source.shape[0]
    parts = [source[:, qy, qx:qx + width, :].reshape(n, -1) for _, qy, qx in pairs]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class _TinyMapConv2d(torch.autograd.Function):
    """A convolution on a tiny output map as matrix products over the kernel taps inside the input.

    On SEW-ResNet-18's last stage at 64 px (2x2 maps, 3x3 kernels, padding 1) five of a window's
    nine taps fall on the zero padding, and a direct convolution or unfold + GEMM multiplies by
    those zeros. Here each output pixel and kernel row takes one matrix product over only the
    taps that meet the input: with the input channels-last (``[N, H, W, C]``, a copy of a few
    hundred KiB) and the weight viewed as ``[Co, kh, kw, C]``, the taps ``j0:j1`` of kernel row
    ``i`` are one strided matrix ``[Co, (j1 - j0) * C]`` and the input row they meet is another,
    so no patch matrix is built; products that share a weight block are stacked into one. This
    does 4/9 of unfold + GEMM's arithmetic on 2x2 maps and 1/9 on 1x1 maps. The sums are the
    convolution's (float64 results equal ``F.conv2d``'s to 1e-12) but in another order, so float32
    results differ from other paths in the last bits.

    The weight is read through ``weight.permute(0, 2, 3, 1)``: a view when it is stored
    channels-last, else one copy per call; the weight gradient comes out in that layout. The
    input is saved for the backward pass channels-last (as ``uint8`` with ``pack``: a spike count).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, pack):
        n, c, h, w = x.shape
        co, _, kh, kw = weight.shape
        (oh, ow), blocks = _tap_blocks((h, w), (kh, kw), tuple(stride), tuple(padding))
        source = x.permute(0, 2, 3, 1).contiguous()
        taps = weight.permute(0, 2, 3, 1).contiguous()  # a view when the weight is channels-last
        out = x.new_zeros(n, oh * ow, co)
        for (i, j0, j1), pairs in blocks:
            block = taps[:, i, j0:j1, :].flatten(1)  # [Co, (j1 - j0) * C], rows kh * kw * C apart
            if len(pairs) == 1:
                out[:, pairs[0][0]].addmm_(_block_rows(source, pairs, j1 - j0), block.t())
                continue
            products = torch.mm(_block_rows(source, pairs, j1 - j0), block.t())
            for k, (p, _, _) in enumerate(pairs):
                out[:, p] += products[k * n:(k + 1) * n]
        out = out.transpose(1, 2).contiguous().view(n, co, oh, ow)  # NCHW, as F.conv2d gives
        if bias is not None:
            out = out + bias.view(1, co, 1, 1)
        ctx.save_for_backward(source.to(torch.uint8) if pack else source, taps)
        ctx.config = ((h, w), tuple(stride), tuple(padding), x.dtype, bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved, taps = ctx.saved_tensors
        size, stride, padding, dtype, has_bias = ctx.config
        source = saved.to(dtype)
        n, co = grad_out.shape[:2]
        kh, kw, c = taps.shape[1:]
        (oh, ow), blocks = _tap_blocks(size, (kh, kw), stride, padding)
        grad = grad_out.permute(0, 2, 3, 1).reshape(n, oh * ow, co)
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = source.new_zeros(n, *size, c) if need_x else None
        # the weight gradient is written tap by tap instead of zero-filled first: filling a fresh
        # [Co, kh, kw, C] tensor cost more than one of the matrix products here (page faults)
        grad_taps = taps.new_empty(co, kh, kw, c) if need_w else None
        written: set[tuple[int, int]] = set()
        for (i, j0, j1), pairs in blocks:
            width = j1 - j0
            grad_rows = grad[:, pairs[0][0]] if len(pairs) == 1 else torch.cat([grad[:, p] for p, _, _ in pairs])
            if need_w:
                block_taps = {(i, j) for j in range(j0, j1)}
                overlap = written & block_taps
                for _, j in sorted(block_taps - written) if overlap else ():  # accumulate: zero the new taps
                    grad_taps[:, i, j].zero_()
                # beta 0 (no tap written yet): the block's uninitialised contents are ignored
                grad_taps[:, i, j0:j1, :].flatten(1).addmm_(grad_rows.t(), _block_rows(source, pairs, width),
                                                             beta=1 if overlap else 0)
                written |= block_taps
            if need_x:
                block = taps[:, i, j0:j1, :].flatten(1)
                if len(pairs) == 1:
                    _, qy, qx = pairs[0]
                    grad_x[:, qy, qx:qx + width, :].flatten(1).addmm_(grad_rows, block)
                    continue
                back = torch.mm(grad_rows, block)  # [pairs * N, width * C]
                for k, (_, qy, qx) in enumerate(pairs):
                    grad_x[:, qy, qx:qx + width, :] += back[k * n:(k + 1) * n].view(n, width, c)
        for i, j in ((i, j) for i in range(kh) for j in range(kw)) if need_w else ():
            if (i, j) not in written:  # a tap that only ever meets the padding
                grad_taps[:, i, j].zero_()
        grad_b = grad_out.sum((0, 2, 3)) if has_bias and ctx.needs_input_grad[2] else None
        return (grad_x.permute(0, 3, 1, 2).contiguous() if need_x else None,
                grad_taps.permute(0, 3, 1, 2) if need_w else None, grad_b, None, None, None)


# convolutions whose output maps have at most this many pixels use _TinyMapConv2d on the CPU
TINY_MAP_MAX_PIXELS = 8


def _stored_channels_last(weight: Tensor) -> bool:
    return weight.permute(0, 2, 3, 1).is_contiguous()


class SeqConv2d(nn.Conv2d):
    """``nn.Conv2d`` over ``[T, B, C, H, W]``.

    ``spike_input = True`` declares that the input is always a spike count (non-negative integers
    below 256, e.g. the output of a neuron or of a SEW ``ADD``): the input is then saved for the
    backward pass as ``uint8`` (4x less memory, same gradients). The zoo sets it on every
    convolution fed by neurons; never on one that sees images or analog values.

    On the CPU, an output map of at most ``TINY_MAP_MAX_PIXELS`` pixels (SEW-ResNet-18's last stage
    at 64 px) runs :class:`_TinyMapConv2d`, which skips the kernel taps over the zero padding; the
    first training step on that path stores the weight channels-last (same values, same
    parameter object), the layout that path reads.
    """

    spike_input: bool = False
    #: with ``spike_input``, save the input for the backward pass as ``uint8`` rather than keep the
    #: float tensor; off by default, see :func:`set_compact_spikes`
    compact_spikes: bool = False

    def _tiny_output(self, x: Tensor) -> bool:
        if (self.groups != 1 or self.dilation != (1, 1) or isinstance(self.padding, str)
                or self.padding_mode != "zeros" or x.device.type != "cpu"):
            return False
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = (x.shape[-2] + 2 * ph - kh) // sh + 1
        ow = (x.shape[-1] + 2 * pw - kw) // sw + 1
        return oh * ow <= TINY_MAP_MAX_PIXELS

    def _conv(self, x: Tensor) -> Tensor:
        if self._tiny_output(x) and not torch.is_autocast_enabled(x.device.type):
            training = torch.is_grad_enabled() and self.weight.requires_grad
            if training and not _stored_channels_last(self.weight):
                # the tiny-map path reads the weight channels-last: store it so once, instead of a
                # copy of it each way on every step (same values, same parameter object)
                self.weight.data = self.weight.data.contiguous(memory_format=torch.channels_last)
            pack = self.spike_input and self.compact_spikes and torch.is_grad_enabled()
            return _TinyMapConv2d.apply(x, self.weight, self.bias, self.stride, self.padding, pack)
        if (self.spike_input and self.compact_spikes and torch.is_grad_enabled() and self.padding_mode == "zeros"
                and not torch.is_autocast_enabled(x.device.type)):
            return _SpikeInputConv2d.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                           self.groups)
        return super().forward(x)

    def forward(self, x: Tensor) -> Tensor:
        return _fold(self._conv, x)


def time_major_to(x: Tensor, memory_format: torch.memory_format) -> Tensor:
    """``[T, B, C, H, W]`` whose step maps are laid out in ``memory_format`` (a copy only if needed)."""
    flat = x.flatten(0, 1)
    if flat.is_contiguous(memory_format=memory_format):
        return x
    return flat.contiguous(memory_format=memory_format).view(x.shape)


def is_channels_last(module: nn.Module) -> bool:
    """Whether the first convolution weight of ``module`` is stored channels-last."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            w = sub.weight
            return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    return False


def repeated_over_time(x: Tensor) -> bool:
    """Whether every time step of ``x`` (``[T, B, ...]``, ``T > 1``) equals the first: a static image
    repeated over time, whether expanded (stride 0) or copied (checked with one comparison pass)."""
    if x.dim() < 2 or x.shape[0] < 2:
        return False
    if x.stride(0) == 0:
        return True
    return bool(torch.equal(x[1:], x[:1].expand_as(x[1:])))


def conv_bn_static(conv: nn.Module, bn: nn.Module, x: Tensor) -> Tensor:
    """``bn(conv(x))`` for an ``x`` that is the same at every time step, computed on one step.

    The result is expanded over time (stride 0). Convolution and batch norm then cost ``1/T`` of
    the full computation, forward and backward; the output, the gradients (summed over time by the
    expansion's backward) and the running statistics are those of the full computation: the batch
    statistics of ``T`` identical copies are those of one, and the running variance gets the
    unbiased correction for the full count ``T * B * H * W`` (with per-step statistics, ``T``
    updates of one step's count each, as ``T`` separate steps would make).
    """
    once = _conv_bn_once(conv, bn, x)
    return once.expand(x.shape[0], *once.shape[1:])


def _conv_bn_once(conv: nn.Module, bn: nn.Module, x: Tensor) -> Tensor:
    """The one step ``[1, B, C', H', W']`` of :func:`conv_bn_static` (running statistics included)."""
    steps = x.shape[0]
    z = conv(x[:1])
    if not (bn.training and bn.track_running_stats and bn.running_mean is not None):
        y = bn(z)
    else:
        flat = z.flatten(0, 1)
        with torch.no_grad():
            var, mean = torch.var_mean(flat, dim=(0, 2, 3), unbiased=False)
        y = F.batch_norm(flat, None, None, bn.weight, bn.bias, True, 0.0, bn.eps).view_as(z)
        # per-step statistics (SeqBatchNorm2d.per_step) update the running ones once per time step,
        # each with one step's count; otherwise once, with the count of all T steps
        per_step = getattr(bn, "per_step", False)
        count = (1 if per_step else steps) * (flat.numel() // flat.shape[1])
        with torch.no_grad():
            for _ in range(steps if per_step else 1):
                bn.num_batches_tracked.add_(1)
                momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
                bn.running_var.mul_(1.0 - momentum).add_(var * (count / max(count - 1, 1)), alpha=momentum)
    return y


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _has_hooks(*modules: nn.Module) -> bool:
    from torch.nn.modules import module as torch_module

    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def _fusable(neuron: nn.Module, pool: nn.Module, x: Tensor) -> bool:
    """Whether ``pool(neuron(x))`` can run as :func:`neuron_maxpool_static`: IF/LIF neurons in
    multi-step mode with a fresh (scalar) state, a plain max-pool, an input repeated over time
    (stride 0) whose step is a contiguous float32/float64 CPU map, the CPU kernel, no hooks (a
    hook, e.g. :func:`record_layers`, must see the neuron's own output)."""
    if type(neuron) not in (IFNode, LIFNode) or neuron.step_mode != "m" or neuron.v.dim() != 0:
        return False
    if not isinstance(pool, SeqMaxPool2d) or pool.return_indices or pool.ceil_mode or _pair(pool.dilation) != (1, 1):
        return False
    if x.dim() != 5 or x.shape[0] < 2 or x.stride(0) != 0 or not x[0].is_contiguous():
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or torch.is_autocast_enabled("cpu"):
        return False
    kernel = _pair(pool.kernel_size)
    if kernel[0] * kernel[1] > 255 or _has_hooks(neuron, pool):
        return False
    if kernel_kind(neuron.surrogate) is None:  # a user-defined derivative: the unfused modules, on torch
        return False
    return resolve_backend(neuron.backend, "cpu") == "cpu"


def fire_and_pool(neuron: nn.Module, pool: nn.Module, x: Tensor) -> Tensor:
    """``pool(neuron(x))`` for ``x [T, B, C, H, W]``.

    For a stem fed an image repeated over time (``x`` expanded over ``T`` by
    :func:`conv_bn_static`) on the CPU this runs the fused kernel
    (:func:`cortexsnn.neurons.functional.pooled.neuron_maxpool_static`): the neuron's ``[T, B,
    C, H, W]`` spikes never reach memory, and the pool keeps a byte per output instead of
    ``int64`` indices. Same outputs, gradients and final neuron state as the two modules;
    anything else takes the two modules.
    """
    if not _fusable(neuron, pool, x):
        return pool(neuron(x))
    return _fused_fire_and_pool(neuron, pool, x[0], x.shape[0])


def static_stem(conv: nn.Module, bn: nn.Module, neuron: nn.Module, pool: nn.Module, x: Tensor) -> Tensor:
    """``fire_and_pool(neuron, pool, conv_bn_static(conv, bn, x))`` for ``x [T, B, C, H, W]``
    repeated over time (see :func:`repeated_over_time`): the same outputs, gradients, running
    statistics and neuron state.

    The fused kernel reads the one computed step directly. Reached through the expanded tensor
    (``x[0]`` of the expansion), the backward pass would build a zeroed ``[T, B, C, H, W]``
    gradient for the selection (103 MB at 224 px, T 4, batch 8) and sum it over ``T``, only to
    recover the kernel's own gradient (unchanged by adding zeros).
    """
    once = _conv_bn_once(conv, bn, x)  # [1, B, C', H', W']
    expanded = once.expand(x.shape[0], *once.shape[1:])
    if not _fusable(neuron, pool, expanded):
        return pool(neuron(expanded))
    return _fused_fire_and_pool(neuron, pool, once.squeeze(0), x.shape[0])


def _fused_fire_and_pool(neuron: nn.Module, pool: nn.Module, step: Tensor, steps: int) -> Tensor:
    """The fused kernel on the one input step ``[B, C, H, W]``; sets the neuron's final state."""
    out, v_last = neuron_maxpool_static(
        step, steps, tau=neuron.tau if isinstance(neuron, LIFNode) else None,
        decay_input=getattr(neuron, "decay_input", True), v_threshold=neuron.v_threshold, v_reset=neuron.v_reset,
        v_init=float(neuron.v), surrogate=neuron.surrogate, detach_reset=neuron.detach_reset,
        kernel_size=_pair(pool.kernel_size), stride=_pair(pool.stride if pool.stride is not None else pool.kernel_size),
        padding=_pair(pool.padding),
    )
    neuron.v = v_last
    return out


def init_weights_(
    model: nn.Module,
    convs: tuple[type[nn.Module], ...] = (nn.Conv2d,),
    norms: tuple[type[nn.Module], ...] = (nn.BatchNorm2d,),
    linear_uniform: bool = False,
    trainable_only: bool = False,
) -> None:
    """The zoo's weight initialisation, in module order (so that one seed gives the same weights).

    Convolutions of the types ``convs``: Kaiming normal (fan-out, ReLU gain), as torchvision's ResNet;
    norms of the types ``norms``: weight 1, bias 0; with ``linear_uniform``, linear weights
    uniform in +-1/sqrt(out_features) and biases 0 (EfficientNet-Lite's classifier). ``trainable_only`` leaves
    frozen convolutions alone.
    """
    for m in model.modules():
        if isinstance(m, convs) and (m.weight.requires_grad or not trainable_only):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, norms):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif linear_uniform and isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def mark_spike_inputs(model: nn.Module, exclude: Sequence[str] = ("conv1",)) -> None:
    """Set ``spike_input`` on every :class:`SeqConv2d` of ``model`` except those named in ``exclude``."""
    for name, module in model.named_modules():
        if isinstance(module, SeqConv2d) and name not in exclude:
            module.spike_input = True


def set_compact_spikes(model: nn.Module, compact: bool = True) -> nn.Module:
    """Choose how the spike-fed convolutions of ``model`` keep their input for the backward pass.

    ``compact=True`` saves a ``uint8`` copy (a quarter of the bytes of the float spikes) at the cost
    of one conversion pass each way; ``False`` (the default) keeps the float tensor. The gradients
    are identical either way. Measured on SEW-ResNet-18 (T 4, batch 8, one SGD step, 2 threads), the
    peak memory was the same within noise both ways (224 px: 1315-1454 MiB compact, 1350-1399 MiB
    float; 64 px: 226 vs 234 MiB), because the float spikes stay alive in the graph anyway, while
    the float path was 5-7% faster; compact saving can still pay off where spikes would otherwise
    be freed (long sequences with checkpointed stages).
    """
    for module in model.modules():
        if isinstance(module, SeqConv2d):
            module.compact_spikes = compact
    return model


class SeqConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` over ``[T, B, C, H, W]`` (single-step ``[B, C, H, W]`` accepted)."""

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if x.dim() == 4:
            return super().forward(x, output_size)
        return _fold(lambda z: super(SeqConvTranspose2d, self).forward(z, output_size), x)


class SeqBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over ``[T, B, C, H, W]``: statistics over time, batch and space.

    With ``per_step = True`` a training forward takes the statistics of each time step
    separately (and updates the running statistics once per step), as a network stepped one
    time step at a time does; in evaluation both are the same.
    """

    per_step: bool = False

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return super().forward(x)
        if self.per_step and self.training and x.shape[0] > 1:
            return torch.stack([super(SeqBatchNorm2d, self).forward(x_t) for x_t in x])
        return _fold(super().forward, x)


class SeqGroupNorm(nn.GroupNorm):
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return super().forward(x)
        return _fold(super().forward, x)


class _IndexOnlyMaxPool2d(torch.autograd.Function):
    """Max pooling whose backward keeps only the argmax indices, not a float copy of the input.

    The gradient goes to each window's argmax (summed where windows overlap), exactly what
    ``F.max_pool2d``'s backward computes; the input itself is not needed for it.
    """

    @staticmethod
    def forward(ctx, x, kernel_size, stride, padding, dilation, ceil_mode):
        out, indices = F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
        ctx.save_for_backward(indices)
        ctx.input_shape = x.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (indices,) = ctx.saved_tensors
        n, c, h, w = ctx.input_shape
        if indices.is_contiguous(memory_format=torch.channels_last) and not indices.is_contiguous():
            # channels-last: scatter over [N, H*W, C] views, the gradient comes out channels-last too
            grad_in = grad_out.new_zeros(n, h * w, c)
            grad_in.scatter_add_(1, indices.permute(0, 2, 3, 1).reshape(n, -1, c),
                                 grad_out.permute(0, 2, 3, 1).reshape(n, -1, c))
            return grad_in.view(n, h, w, c).permute(0, 3, 1, 2), None, None, None, None, None
        grad_in = grad_out.new_zeros(n, c, h * w)
        grad_in.scatter_add_(2, indices.flatten(2), grad_out.flatten(2))
        return grad_in.view(n, c, h, w), None, None, None, None, None


class SeqMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` over ``[T, B, C, H, W]``; in training only the argmax indices are kept."""

    def _pool(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad and not self.return_indices:
            return _IndexOnlyMaxPool2d.apply(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                             self.ceil_mode)
        return super().forward(x)

    def forward(self, x: Tensor) -> Tensor:
        return _fold(self._pool, x)


class SeqAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return _fold(super().forward, x)


class SeqReLU(nn.ReLU):
    """ReLU (elementwise, any shape); the non-spiking stand-in of a neuron layer."""


NEURONS = {"if": IFNode, "lif": LIFNode, "plif": PLIFNode}


def make_neuron(kind: str = "if", **kwargs) -> nn.Module:
    """A neuron layer of ``kind`` (``"if"``, ``"lif"``, ``"plif"``) with Huang et al.'s defaults:
    threshold 1, hard reset to 0, ATan surrogate (alpha 2), ``detach_reset=True``."""
    kind = kind.lower()
    if kind == "relu":
        return SeqReLU()
    if kind not in NEURONS:
        raise ValueError(f"unknown neuron type {kind!r}; choose one of {sorted(NEURONS) + ['relu']}")
    options = dict(v_threshold=1.0, v_reset=0.0, surrogate=ATan(2.0), detach_reset=True)
    options.update(kwargs)
    return NEURONS[kind](**options)


class SpikingModel(nn.Module):
    """Base class of the zoo: input checks, state reset per forward, scored layers.

    ``scoring_layers`` lists, in order, the module paths whose outputs the brain-similarity analysis
    scores. With ``stateful = False`` (default) every forward starts from the neurons' initial
    state; set it to ``True`` to carry state across calls (e.g. a movie fed chunk by chunk) and call
    :func:`cortexsnn.neurons.reset` yourself.
    """

    scoring_layers: list[str] = []
    in_channels: int = 3
    stateful: bool = False

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects a time-major batch [T, B, C, H, W], got shape {tuple(x.shape)}; "
                "repeat a static image over T first (cortexsnn.encoding.repeat)"
            )
        if x.shape[2] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels}-channel images, got {x.shape[2]} channels; "
                f"pass in_channels={x.shape[2]} when creating the model or convert the images"
            )
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ValueError(f"images of {tuple(x.shape[-2:])} pixels are too small for {type(self).__name__} (min 16x16)")

    def prepare(self, x: Tensor) -> None:
        self.check_input(x)
        if not self.stateful:
            reset(self)


# ---------------------------------------------------------------------------------------------
# Activation checkpointing of stateful stages


def _state_of(module: nn.Module) -> list[tuple[nn.Module, str, object]]:
    """References to the neuron states and copies of the batch-norm statistics inside ``module``.

    Neurons replace their state tensors (never update them in place), so a reference suffices;
    batch norm updates its running statistics in place, so those are cloned (a few KiB).
    """
    saved: list[tuple[nn.Module, str, object]] = []
    for sub in module.modules():
        if isinstance(sub, MemoryModule):
            saved.extend((sub, name, value) for name, value in sub.memories())
        elif isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
            saved.extend((sub, name, getattr(sub, name).clone())
                         for name in ("running_mean", "running_var", "num_batches_tracked")
                         if getattr(sub, name) is not None)
    return saved


def _restore(saved: list[tuple[nn.Module, str, object]]) -> None:
    for sub, name, value in saved:
        if isinstance(sub, MemoryModule):
            setattr(sub, name, value)
        else:
            getattr(sub, name).copy_(value)


def run_stage(stage: nn.Module, x: Tensor, checkpointed: bool = False) -> Tensor:
    """``stage(x)``, optionally with activation checkpointing (recomputed in the backward pass).

    A stage with spiking neurons has state: the recomputation first puts back the neuron state
    the stage started from, and afterwards the state and batch-norm statistics the model holds
    at that moment, so checkpointing changes neither the outputs, the gradients, nor the state
    carried to the next call.
    """
    if not checkpointed or not torch.is_grad_enabled():
        return stage(x)
    initial = [(sub, name, value) for sub, name, value in _state_of(stage) if isinstance(sub, MemoryModule)]
    calls = [0]

    def replay(inputs: Tensor) -> Tensor:
        calls[0] += 1
        if calls[0] == 1:
            return stage(inputs)
        current = _state_of(stage)  # recomputation during backward
        _restore(initial)
        try:
            return stage(inputs)
        finally:
            _restore(current)

    return checkpoint(replay, x, use_reentrant=False)


# ---------------------------------------------------------------------------------------------
# Recording the scored layers


@contextlib.contextmanager
def record_layers(model: nn.Module, names: Sequence[str] | None = None,
                  transform: Callable[[Tensor], Tensor] | None = None) -> Iterator[dict[str, list[Tensor]]]:
    """Record the outputs of ``names`` (default: ``model.scoring_layers``) while the block runs.

    Yields a dict ``name -> list of outputs``; in the zoo every output is time-major, and a layer
    stepped inside a time loop (LoRaFB-SNet's blocks) contributes one ``[1, B, ...]`` piece per
    step, so ``torch.cat(outputs[name])`` is always the layer's ``[T, B, ...]`` response.
    ``transform`` (e.g. a spatial mean, or ``.detach().cpu()``) is applied to each piece as it
    arrives, so that only what is needed is kept.

    Example::

        with record_layers(model) as seen:
            model(x)
        features = {name: torch.cat(parts) for name, parts in seen.items()}
    """
    names = list(getattr(model, "scoring_layers", []) if names is None else names)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise KeyError(f"{type(model).__name__} has no layers {unknown}; scored layers: {getattr(model, 'scoring_layers', [])}")
    store: dict[str, list[Tensor]] = {n: [] for n in names}
    keep = transform or (lambda t: t.detach())

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            store[name].append(keep(output))
        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()
