"""The fused static-input neuron + max-pool kernel against the two operations run separately."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexsnn.neurons.functional import if_multistep, lif_multistep
from cortexsnn.neurons.functional.pooled import neuron_maxpool_static
from cortexsnn.neurons.kernels import cpu_kernel
from cortexsnn.neurons.surrogate import ATan, Sigmoid

pytestmark = pytest.mark.skipif(cpu_kernel() is None, reason="no C compiler for the CPU neuron kernel")


def _reference(x, steps, tau, v_reset, surrogate, detach, kernel, stride, padding):
    xe = x.unsqueeze(0).expand(steps, *x.shape)
    common = dict(v_threshold=1.0, v_reset=v_reset, surrogate=surrogate, detach_reset=detach)
    v0 = 0.0 if v_reset is None else v_reset
    if tau is None:
        spikes, v_last = if_multistep(xe, v0, **common)
    else:
        spikes, v_last = lif_multistep(xe, v0, tau, True, **common)
    pooled = F.max_pool2d(spikes.flatten(0, 1), kernel, stride, padding)
    return pooled.view(steps, *x.shape[:2], *pooled.shape[-2:]), v_last


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "tau, v_reset, surrogate, detach, kernel, stride, padding, size",
    [
        (2.0, 0.0, ATan(2.0), True, (3, 3), (2, 2), (1, 1), (13, 12)),   # the SEW-ResNet stem
        (None, 0.0, ATan(2.0), False, (3, 3), (2, 2), (1, 1), (9, 9)),    # IF, gradient through the reset
        (3.0, None, Sigmoid(4.0), False, (2, 2), (2, 2), (0, 0), (8, 10)),  # soft reset, 2x2 pooling
        (2.0, -0.5, ATan(2.0), True, (3, 2), (1, 2), (1, 0), (7, 11)),    # uneven window and strides
    ],
)
def test_fused_equals_neuron_then_pool(dtype, tau, v_reset, surrogate, detach, kernel, stride, padding, size):
    torch.manual_seed(0)
    x = (torch.randn(3, 5, *size, dtype=dtype) * 1.2 + 0.4).requires_grad_(True)
    steps = 4
    ref, v_ref = _reference(x, steps, tau, v_reset, surrogate, detach, kernel, stride, padding)
    out, v_last = neuron_maxpool_static(x, steps, tau=tau, v_reset=v_reset, surrogate=surrogate, detach_reset=detach,
                                        kernel_size=kernel, stride=stride, padding=padding)
    assert out.shape == ref.shape
    assert 0 < float(out.detach().mean()) < 1  # some windows fire, some do not
    assert torch.equal(out, ref)
    assert torch.equal(v_last, v_ref)
    g = torch.randn_like(ref)
    (grad_ref,) = torch.autograd.grad(ref, x, g)
    (grad,) = torch.autograd.grad(out, x, g)
    assert grad_ref.abs().max() > 0
    # same per-step adjoint and same tie-breaking of the maxima; the sum over steps in step order
    torch.testing.assert_close(grad, grad_ref, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)


def test_fused_rejects_what_it_cannot_run():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        neuron_maxpool_static(torch.zeros(2, 3, 4), 2, surrogate=ATan())
    with pytest.raises(ValueError, match="255"):
        neuron_maxpool_static(torch.zeros(1, 1, 20, 20), 2, surrogate=ATan(), kernel_size=(16, 16))


def test_fire_and_pool_fuses_only_without_hooks(monkeypatch):
    import cortexsnn.models.layers as layers

    neuron = layers.make_neuron("lif", tau=2.0)
    pool = layers.SeqMaxPool2d(3, 2, 1)
    torch.manual_seed(1)
    base = (torch.randn(2, 4, 10, 10) + 0.5).requires_grad_(True)
    x = base.unsqueeze(0).expand(3, *base.shape)
    calls = []
    real = layers.neuron_maxpool_static
    monkeypatch.setattr(layers, "neuron_maxpool_static", lambda *a, **k: calls.append(1) or real(*a, **k))
    fused = layers.fire_and_pool(neuron, pool, x)
    v_fused = neuron.v.clone()
    assert calls == [1]
    neuron.reset()
    seen = []
    handle = neuron.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    separate = layers.fire_and_pool(neuron, pool, x)
    handle.remove()
    assert calls == [1] and seen == [torch.Size([3, 2, 4, 10, 10])]  # the hook saw the neuron's own output
    assert torch.equal(fused, separate)
    assert torch.equal(v_fused, neuron.v)
