"""The training-step speed-ups of SEW-ResNet (issue 15) change no bit of any result.

The references are the computations they replaced, kept here verbatim: the tiny-map convolution
as ``F.unfold`` + ``torch.matmul`` + ``F.fold``, and the static stem reached through the expanded
``conv_bn_static`` output. Bits are compared (``-0.0`` differs from ``0.0``), not values.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexsnn.models import create_model
from cortexsnn.models import layers
from cortexsnn.models import sew_resnet as sew_module
from cortexsnn.neurons import MemoryModule


class _UnfoldMatmulFold(torch.autograd.Function):
    """The previous ``layers._GemmConv2d`` (commit 00f1a0a), the reference of the new one."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, pack):
        n, _, h, w = x.shape
        co, _, kh, kw = weight.shape
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (w + 2 * padding[1] - kw) // stride[1] + 1
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
        out = torch.matmul(weight.reshape(co, -1), cols)
        if bias is not None:
            out = out + bias.view(1, co, 1)
        ctx.save_for_backward(x.to(torch.uint8) if pack else x, weight)
        ctx.config = (tuple(stride), tuple(padding), (h, w), x.dtype, bias is not None)
        return out.view(n, co, oh, ow)

    @staticmethod
    def backward(ctx, grad_out):
        saved, weight = ctx.saved_tensors
        stride, padding, size, dtype, has_bias = ctx.config
        n, co = grad_out.shape[:2]
        kernel = tuple(weight.shape[2:])
        grad = grad_out.reshape(n, co, -1)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            cols = F.unfold(saved.to(dtype), kernel, padding=padding, stride=stride)
            grad_w = torch.matmul(grad.permute(1, 0, 2).reshape(co, -1),
                                  cols.permute(0, 2, 1).reshape(-1, cols.shape[1])).view_as(weight)
        if ctx.needs_input_grad[0]:
            grad_cols = torch.matmul(weight.reshape(co, -1).t(), grad)
            grad_x = F.fold(grad_cols, size, kernel, padding=padding, stride=stride)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2))
        return grad_x, grad_w, grad_b, None, None, None


def _old_static_stem(conv, bn, neuron, pool, x):
    """The stem as it was: the fused kernel reached through the expanded conv + BN output."""
    return layers.fire_and_pool(neuron, pool, layers.conv_bn_static(conv, bn, x))


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return torch.equal(a, b)
    as_int = {torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
    return torch.equal(a.contiguous().view(as_int), b.contiguous().view(as_int))


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size,bias,pack,channels_last", [
    (64, 32, 3, 1, 1, 2, False, False, False),  # SEW-ResNet-18's last stage at 64 px
    (32, 64, 3, 2, 1, 4, False, False, False),  # its first block (stride 2)
    (32, 64, 1, 2, 0, 4, False, False, False),  # its downsample
    (16, 8, 3, 1, 1, 1, True, False, False),    # 1x1 maps (32 px), bias
    (16, 8, 3, 2, 1, 3, False, True, False),    # odd size, uint8-saved spikes
    (16, 8, 3, 1, 1, 2, True, False, True),     # channels-last input
    (8, 4, (3, 1), (2, 1), (1, 0), 3, False, False, False),  # rectangular kernel
])
def test_gemm_convolution_is_bit_identical_to_unfold_matmul_fold(cin, cout, kernel, stride, padding, size, bias,
                                                                 pack, channels_last):
    torch.manual_seed(3)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    kernel, stride, padding = pair(kernel), pair(stride), pair(padding)
    x = ((torch.rand(12, cin, size, size) > 0.7).float() * 2 if pack else torch.randn(12, cin, size, size))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, *kernel) * 0.1
    b = torch.randn(cout) if bias else None
    results = []
    for function in (layers._GemmConv2d, _UnfoldMatmulFold):
        inputs = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, weight, b)]
        out = function.apply(*inputs, stride, padding, pack)
        grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(4))
        out.backward(grad)
        results.append([out.detach(), *(t.grad for t in inputs if t is not None)])
    assert results[0][0].is_contiguous()
    for new, old in zip(*results):
        assert _same_bits(new, old)


@pytest.mark.parametrize("size", [32, 64])
def test_sew_resnet18_training_pass_is_bit_identical_to_previous_paths(size, monkeypatch):
    """Forward output, loss, every gradient, running statistics and final neuron states of one
    training forward/backward (LIF tau 2, the benchmark's neuron), with the new GEMM convolution
    and static stem against the previous ones."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, size, size, generator=generator)
    target = torch.tensor([1, 7])
    x = image.unsqueeze(0).repeat(3, 1, 1, 1, 1)
    reference = create_model("sew_resnet18", neuron="lif", neuron_kwargs={"tau": 2.0}, num_classes=10)
    state = {k: v.clone() for k, v in reference.state_dict().items()}

    def run(model):
        out = model(x)
        loss = F.cross_entropy(out.mean(0), target)
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        buffers = [b for b in model.buffers() if b is not None]
        states = [m.v for m in model.modules() if isinstance(m, MemoryModule)]
        return [out.detach(), loss.detach(), *grads, *buffers, *(v.detach() for v in states)]

    calls = []
    real_gemm = layers._GemmConv2d.apply
    monkeypatch.setattr(layers._GemmConv2d, "apply", lambda *a: calls.append(1) or real_gemm(*a))
    new = run(reference)
    assert calls, "the tiny-map GEMM path was not taken"
    with monkeypatch.context() as patch:
        patch.setattr(layers, "_GemmConv2d", _UnfoldMatmulFold)
        patch.setattr(sew_module, "static_stem", _old_static_stem)
        previous = create_model("sew_resnet18", neuron="lif", neuron_kwargs={"tau": 2.0}, num_classes=10)
        previous.load_state_dict(state)
        old = run(previous)
    assert len(new) == len(old)
    for index, (a, b) in enumerate(zip(new, old)):
        assert _same_bits(a, b), f"result {index} differs"
