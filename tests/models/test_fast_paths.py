"""Speed paths of the deep models give the plain computation's numbers: the stem computed once for a
repeated image, convolutions on tiny maps as a GEMM, channels-last stages, layout-keeping neurons."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexsnn.models import create_model
from cortexsnn.models import sew_resnet as sew_module
from cortexsnn.models.layers import SeqBatchNorm2d, SeqConv2d, SeqMaxPool2d, conv_bn_static, repeated_over_time
from cortexsnn.neurons import LIFNode


def test_repeated_over_time_detects_copies_and_expansions():
    x = torch.randn(3, 4, 5)
    assert repeated_over_time(x.unsqueeze(0).expand(4, 3, 4, 5))
    assert repeated_over_time(x.unsqueeze(0).repeat(4, 1, 1, 1))
    changed = x.unsqueeze(0).repeat(4, 1, 1, 1)
    changed[3, 2, 3, 4] += 1e-6
    assert not repeated_over_time(changed)
    assert not repeated_over_time(x.unsqueeze(0))


def test_conv_bn_static_equals_full_computation():
    torch.manual_seed(0)
    conv_a, bn_a = SeqConv2d(3, 8, 3, padding=1, bias=False).double(), SeqBatchNorm2d(8).double()
    conv_b, bn_b = SeqConv2d(3, 8, 3, padding=1, bias=False).double(), SeqBatchNorm2d(8).double()
    conv_b.load_state_dict(conv_a.state_dict())
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64).unsqueeze(0).repeat(4, 1, 1, 1, 1)
    g = torch.randn(4, 2, 8, 6, 7, dtype=torch.float64)
    for step in range(2):  # running statistics after two updates
        full = bn_a(conv_a(x))
        once = conv_bn_static(conv_b, bn_b, x)
        assert once.shape == full.shape and once.stride(0) == 0
        torch.testing.assert_close(once, full, rtol=1e-12, atol=1e-12)
        (full * g).sum().backward()
        (once * g).sum().backward()
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn_b, name), getattr(bn_a, name), rtol=1e-12, atol=1e-14)
    for a, b in ((conv_a.weight, conv_b.weight), (bn_a.weight, bn_b.weight), (bn_a.bias, bn_b.bias)):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)
    bn_a.eval(), bn_b.eval()
    torch.testing.assert_close(conv_bn_static(conv_b, bn_b, x), bn_a(conv_a(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,size,spikes", [
    (16, 8, 3, 1, 1, 2, True), (16, 8, 3, 2, 1, 4, True), (16, 8, 1, 2, 0, 3, True), (5, 4, 3, 2, 1, 3, False)])
def test_gemm_convolution_on_tiny_maps_matches_conv2d(cin, cout, kernel, stride, padding, size, spikes):
    torch.manual_seed(1)
    conv = SeqConv2d(cin, cout, kernel, stride, padding, bias=not spikes).double()
    conv.spike_input = spikes
    x = (torch.rand(2, 3, cin, size, size) > 0.6).double() * 2 if spikes else torch.randn(2, 3, cin, size, size).double()
    x.requires_grad_(True)
    assert conv._tiny_output(x.flatten(0, 1))
    y = conv(x)
    g = torch.randn_like(y)
    y.backward(g)
    ours = [x.grad.clone(), conv.weight.grad.clone()] + ([] if conv.bias is None else [conv.bias.grad.clone()])
    x.grad = None
    conv.zero_grad()
    ref = F.conv2d(x.flatten(0, 1), conv.weight, conv.bias, stride, padding).view_as(y)
    ref.backward(g)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    refs = [x.grad, conv.weight.grad] + ([] if conv.bias is None else [conv.bias.grad])
    for a, b in zip(ours, refs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert not SeqConv2d(cin, cout, kernel, stride, padding)._tiny_output(torch.zeros(1, cin, 8, 8))


def test_neuron_keeps_channels_last_layout():
    torch.manual_seed(2)
    x = torch.randn(3, 2, 4, 5, 6) * 2
    cl = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape).requires_grad_(True)
    plain = x.clone().requires_grad_(True)
    a, b = LIFNode(tau=2.0, detach_reset=True), LIFNode(tau=2.0, detach_reset=True)
    out_cl, out = a(cl), b(plain)
    assert out_cl.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out_cl, out) and torch.equal(a.v, b.v)
    g = torch.randn_like(out)
    out_cl.backward(g)
    out.backward(g)
    assert torch.equal(cl.grad, plain.grad)


def test_maxpool_channels_last_gradient():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 4, 8, 8)
    cl = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape).requires_grad_(True)
    pool = SeqMaxPool2d(3, 2, 1)
    y = pool(cl)
    g = torch.randn_like(y)
    y.backward(g)
    ref = x.clone().requires_grad_(True)
    F.max_pool2d(ref.flatten(0, 1), 3, 2, 1).view_as(y).backward(g)
    assert torch.equal(cl.grad, ref.grad)
    assert cl.grad.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [64, 128])
def test_channels_last_model_and_static_stem_match_plain_model(size, monkeypatch):
    torch.manual_seed(4)
    plain = create_model("sew_resnet18", num_classes=10, neuron="lif", neuron_kwargs={"tau": 2.0})
    fast = create_model("sew_resnet18", num_classes=10, neuron="lif", neuron_kwargs={"tau": 2.0})
    plain.double()  # float64: no spike flips from the formats' different rounding
    fast.double().load_state_dict(plain.state_dict())
    fast.set_channels_last(size)
    assert fast._stage_formats["layer1"] == torch.channels_last
    assert fast._stage_formats["layer4"] == (torch.contiguous_format if size == 64 else torch.channels_last)
    x = torch.randn(2, 3, size, size, dtype=torch.float64).unsqueeze(0).repeat(3, 1, 1, 1, 1)
    y = torch.tensor([1, 7])
    loss_fast = F.cross_entropy(fast(x).mean(0), y)
    _assert_same_step_as_plain(fast, plain, loss_fast, x, y, sew_module, monkeypatch)


def _loss_counting_calls(model, x, y, module, name, monkeypatch):
    """The model's loss, and how many times it called ``module.name`` (a fast path) on the way."""
    calls = []
    real = getattr(module, name)
    with monkeypatch.context() as patch:
        patch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
        loss = F.cross_entropy(model(x).mean(0), y)
    return loss, len(calls)


def _assert_same_step_as_plain(fast, plain, loss_fast, x, y, module, monkeypatch) -> None:
    """``plain`` run without the repeated-image stem of ``module`` gives ``fast``'s loss, gradients
    and stem running statistics."""
    with monkeypatch.context() as patch:
        patch.setattr(module, "repeated_over_time", lambda x: False)
        loss_plain = F.cross_entropy(plain(x).mean(0), y)
    torch.testing.assert_close(loss_fast, loss_plain, rtol=1e-10, atol=1e-12)
    loss_fast.backward()
    loss_plain.backward()
    for (name, a), b in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-8, atol=1e-10, msg=name)
    torch.testing.assert_close(fast.bn1.running_var, plain.bn1.running_var, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fast.bn1.running_mean, plain.bn1.running_mean, rtol=1e-12, atol=1e-14)
    assert int(fast.bn1.num_batches_tracked) == int(plain.bn1.num_batches_tracked)


@pytest.mark.parametrize(("name", "kwargs", "module_name", "fast_path", "scale"), [
    # NCHW SEW-ResNet: stem conv + BN once, then the fused neuron + max-pool kernel
    ("sew_resnet18", {"neuron": "lif", "neuron_kwargs": {"tau": 2.0}}, "layers", "neuron_maxpool_static", 2.0),
    ("lorafb_snet18", {}, "lorafb", "conv_bn_static", 3.0),
])
def test_static_stem_of_nchw_model_matches_plain_model(name, kwargs, module_name, fast_path, scale, monkeypatch):
    import cortexsnn.models.layers as layers
    import cortexsnn.models.lorafb as lorafb_module

    fast_module = {"layers": layers, "lorafb": lorafb_module}[module_name]
    stem_module = lorafb_module if name.startswith("lorafb") else sew_module
    torch.manual_seed(5)
    plain = create_model(name, num_classes=10, **kwargs).double()
    fast = create_model(name, num_classes=10, **kwargs).double()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64).unsqueeze(0).repeat(3, 1, 1, 1, 1) * scale
    y = torch.tensor([2, 5])
    loss_fast, calls = _loss_counting_calls(fast, x, y, fast_module, fast_path, monkeypatch)
    assert calls == 1
    _assert_same_step_as_plain(fast, plain, loss_fast, x, y, stem_module, monkeypatch)
    torch.testing.assert_close(fast.sn1.v, plain.sn1.v, rtol=1e-10, atol=1e-12)  # the neuron's final state
