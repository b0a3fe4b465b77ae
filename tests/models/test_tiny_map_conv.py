"""The tiny-map convolution (``layers._TinyMapConv2d``): matrix products over only the kernel taps
that fall inside the input, used by ``SeqConv2d`` on the CPU when the output map has at most
``TINY_MAP_MAX_PIXELS`` pixels (SEW-ResNet-18's last stage at 64 px, sew_resnet8 on MNIST).

It sums in another order than ``F.conv2d``: float64 results must agree to 1e-12, float32 ones to
float32 rounding. The paths that published results take (the zoo at 224 px) must never reach it.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexsnn.models import create_model, layers
from cortexsnn.models.layers import SeqConv2d, _tap_blocks, _TinyMapConv2d


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


CASES = [
    # cin, cout, kernel, stride, padding, (h, w), bias, pack
    (64, 32, 3, 1, 1, (2, 2), False, False),          # SEW-ResNet-18's last stage at 64 px
    (32, 64, 3, 2, 1, (4, 4), False, False),          # its first block (stride 2)
    (32, 64, 1, 2, 0, (4, 4), False, False),          # its downsample
    (16, 8, 3, 1, 1, (1, 1), True, False),            # 1x1 maps: only the centre tap
    (16, 8, 3, 2, 1, (2, 2), False, True),            # 2x2 -> 1x1, uint8-saved spike counts
    (16, 8, 3, 2, 1, (3, 3), True, False),            # odd size
    (8, 4, (3, 1), (2, 1), (1, 0), (3, 2), False, False),  # rectangular kernel, anisotropic stride
    (8, 4, (1, 3), 1, (0, 1), (2, 3), True, False),   # padding on one axis only
    (6, 5, 5, 1, 2, (2, 2), False, False),            # a 5x5 kernel: 16 of 25 taps over padding
    (6, 5, 2, 2, 0, (4, 3), False, False),            # even kernel, no padding
]


def _inputs(cin, cout, kernel, size, bias, pack, dtype):
    torch.manual_seed(3)
    x = (torch.rand(12, cin, *size) > 0.7).to(dtype) * 2 if pack else torch.randn(12, cin, *size, dtype=dtype)
    weight = torch.randn(cout, cin, *kernel, dtype=dtype) * 0.1
    b = torch.randn(cout, dtype=dtype) if bias else None
    return x, weight, b


def _run(function, x, weight, b, stride, padding, pack, grad_seed=4):
    inputs = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, weight, b)]
    out = function(*inputs, stride, padding, pack)
    grad = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(grad_seed)).to(out.dtype)
    out.backward(grad)
    return [out.detach(), *(t.grad for t in inputs if t is not None)]


def _conv2d(x, weight, b, stride, padding, pack):
    return F.conv2d(x, weight, b, stride, padding)


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size,bias,pack", CASES)
@pytest.mark.parametrize("weight_layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("input_layout", ["nchw", "channels_last"])
def test_matches_conv2d_in_float64(cin, cout, kernel, stride, padding, size, bias, pack, weight_layout,
                                   input_layout):
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    x, weight, b = _inputs(cin, cout, kernel, size, bias, pack, torch.float64)
    if input_layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if weight_layout == "channels_last":
        weight = weight.contiguous(memory_format=torch.channels_last)
    ours = _run(_TinyMapConv2d.apply, x, weight, b, stride, padding, pack)
    reference = _run(_conv2d, x, weight, b, stride, padding, pack)
    assert ours[0].is_contiguous()  # NCHW output, whatever the layouts of its inputs
    for a, r in zip(ours, reference):
        assert a.shape == r.shape
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size,bias,pack", CASES[:5])
def test_float32_agrees_with_conv2d_to_rounding(cin, cout, kernel, stride, padding, size, bias, pack):
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    x, weight, b = _inputs(cin, cout, kernel, size, bias, pack, torch.float32)
    ours = _run(_TinyMapConv2d.apply, x, weight, b, stride, padding, pack)
    reference = _run(_conv2d, x.double(), weight.double(), None if b is None else b.double(), stride, padding, pack)
    for a, r in zip(ours, reference):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), r, rtol=1e-5, atol=1e-5)


def test_no_tap_over_the_padding_is_computed():
    # 2x2 maps, 3x3 kernel, padding 1: each output pixel meets the input in 4 taps, 16 of 36 in all
    (oh, ow), blocks = _tap_blocks((2, 2), (3, 3), (1, 1), (1, 1))
    assert (oh, ow) == (2, 2)
    assert sum((j1 - j0) * len(pairs) for (_, j0, j1), pairs in blocks) == 16
    # 1x1 maps: the centre tap only
    _, blocks = _tap_blocks((1, 1), (3, 3), (1, 1), (1, 1))
    assert [(key, len(pairs)) for key, pairs in blocks] == [((1, 1, 2), 1)]
    # every (output pixel, tap) inside the input appears exactly once
    h, w, kh, kw, sh, sw, ph, pw = 4, 3, 3, 2, 2, 1, 1, 1
    (oh, ow), blocks = _tap_blocks((h, w), (kh, kw), (sh, sw), (ph, pw))
    seen = [(p, i, j) for (i, j0, j1), pairs in blocks for p, _, _ in pairs for j in range(j0, j1)]
    expected = [(oy * ow + ox, i, j) for oy in range(oh) for ox in range(ow) for i in range(kh) for j in range(kw)
                if 0 <= oy * sh - ph + i < h and 0 <= ox * sw - pw + j < w]
    assert sorted(seen) == sorted(expected)


def test_training_stores_the_weight_channels_last_once_with_the_same_values():
    torch.manual_seed(0)
    conv = SeqConv2d(16, 8, 3, 1, 1, bias=False)
    before = conv.weight.detach().clone()
    parameter = conv.weight
    x = torch.randn(2, 3, 16, 2, 2)
    with torch.no_grad():
        conv(x)
    assert conv.weight.is_contiguous()  # inference leaves the storage alone
    conv(x).sum().backward()
    assert conv.weight is parameter  # the same parameter object (optimisers keep working)
    assert conv.weight.permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(conv.weight, before)
    assert conv.weight.grad.shape == conv.weight.shape
    # the state dict loads into a fresh (NCHW) convolution, which then computes the same
    fresh = SeqConv2d(16, 8, 3, 1, 1, bias=False)
    fresh.load_state_dict(conv.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x), conv(x))


def test_an_sgd_step_matches_conv2d_in_float64():
    torch.manual_seed(1)
    ours = SeqConv2d(12, 6, 3, 2, 1, bias=True).double()
    reference = torch.nn.Conv2d(12, 6, 3, 2, 1, bias=True).double()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 12, 4, 4, dtype=torch.float64)
    optimisers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (ours, reference)]
    for _ in range(3):
        for module, optimiser, run in ((ours, optimisers[0], lambda: ours(x).flatten(0, 1)),
                                       (reference, optimisers[1], lambda: reference(x.flatten(0, 1)))):
            optimiser.zero_grad()
            (run() ** 2).sum().backward()
            optimiser.step()
    for a, b in zip(ours.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["sew_resnet18", "lorafb_snet18", "sew_resnet8"])
def test_published_224px_paths_never_take_the_tiny_map_convolution(name, monkeypatch):
    """The main job (docs/results.md) scores the zoo at 224 px: its results do not depend on the
    tiny-map convolution, whose order of summation changed after they were computed."""
    calls = []
    real = _TinyMapConv2d.apply
    monkeypatch.setattr(layers._TinyMapConv2d, "apply", lambda *a: calls.append(a[0].shape) or real(*a))
    model = create_model(name).eval()
    with torch.no_grad():
        model(torch.randn(2, 1, 3, 224, 224))
        assert not calls
        model(torch.randn(2, 1, 3, 64, 64))  # while at 64 px the last stage does
    assert name == "sew_resnet8" or calls


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size,bias,pack", CASES)
def test_uninitialised_memory_never_reaches_the_weight_gradient(cin, cout, kernel, stride, padding, size, bias, pack,
                                                               monkeypatch):
    """The weight gradient starts as ``new_empty``: poison that memory with NaN, and every tap must
    still be written (or zeroed) before it is read."""
    real_new_empty = torch.Tensor.new_empty
    monkeypatch.setattr(torch.Tensor, "new_empty",
                        lambda self, *shape, **kw: real_new_empty(self, *shape, **kw).fill_(float("nan")))
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    x, weight, b = _inputs(cin, cout, kernel, size, bias, pack, torch.float64)
    ours = _run(_TinyMapConv2d.apply, x, weight, b, stride, padding, pack)
    reference = _run(_conv2d, x, weight, b, stride, padding, pack)
    for a, r in zip(ours, reference):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
