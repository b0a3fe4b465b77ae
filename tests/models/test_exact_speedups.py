"""The exact training-step speed-up of SEW-ResNet (issue 15) changes no bit of any result.

The reference is the computation it replaced, kept here verbatim: the static stem reached through
the expanded ``conv_bn_static`` output. Bits are compared (``-0.0`` differs from ``0.0``), not
values. (The tiny-map convolution, which skips the taps over the padding, is not exact: it sums in
another order; tests/models/test_tiny_map_conv.py checks it against ``F.conv2d``.)
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cortexsnn.models import create_model
from cortexsnn.models import layers
from cortexsnn.models import sew_resnet as sew_module
from cortexsnn.neurons import MemoryModule


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


@pytest.mark.parametrize("size", [32, 64])
def test_sew_resnet18_training_pass_is_bit_identical_to_previous_paths(size, monkeypatch):
    """Forward output, loss, every gradient, running statistics and final neuron states of one
    training forward/backward (LIF tau 2, the benchmark's neuron), with the static stem against
    the previous one (the tiny-map convolutions of the last stage the same in both)."""
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

    new = run(reference)
    with monkeypatch.context() as patch:
        patch.setattr(sew_module, "static_stem", _old_static_stem)
        previous = create_model("sew_resnet18", neuron="lif", neuron_kwargs={"tau": 2.0}, num_classes=10)
        previous.load_state_dict(state)
        old = run(previous)
    assert len(new) == len(old)
    for index, (a, b) in enumerate(zip(new, old)):
        assert _same_bits(a, b), f"result {index} differs"
