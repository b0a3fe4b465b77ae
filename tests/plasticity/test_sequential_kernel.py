"""The compiled sequential STDP loop against the per-image PyTorch loop it replaces (float32)."""
from __future__ import annotations

import pytest
import torch

import cortexsnn.plasticity.training as training
from cortexsnn.plasticity.kernels import spike_conv_kernel
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.models.network import Stage, STDPNetwork
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule

pytestmark = pytest.mark.skipif(spike_conv_kernel() is None, reason="no C compiler for the spike kernels")
T = 8


def _network(stabilizer: bool, seed: int) -> STDPNetwork:
    torch.manual_seed(seed)
    rule = STDPRule(a_plus=0.05, a_minus=-0.04, stabilizer=stabilizer, double_every=9, max_a_plus=0.2)
    layer = SpikeConv(3, 10, 3, padding=1, threshold=3.0, k_winners=4, inhibition_radius=2, stdp=rule,
                      weight_mean=0.6, weight_std=0.3)  # some initial weights outside [0, 1]: clamp_all
    head = SpikeConv(10, 6, 3, padding=1, threshold=None, rstdp=RSTDPRule())
    return STDPNetwork("t", {"c1": layer, "h": head}, [("conv", "c1")], ["h"],
                       [Stage("c1", "stdp", ["c1"]), Stage("h", "rstdp", ["h"])],
                       time_steps=T, n_classes=3, features_per_class=2)


@pytest.mark.parametrize("stabilizer", [True, False])
def test_compiled_sequential_loop_equals_python_loop(stabilizer, monkeypatch):
    g = torch.Generator().manual_seed(3)
    inputs = torch.randint(0, T, (30, 3, 9, 9), generator=g)
    inputs = torch.where(torch.rand(30, 3, 9, 9, generator=g) > 0.6, T, inputs).to(torch.uint8)
    compiled, plain = _network(stabilizer, 0), _network(stabilizer, 0)
    assert not bool(((compiled.layers["c1"].weight >= 0) & (compiled.layers["c1"].weight <= 1)).all())
    calls = []
    real = training._stdp_sequential_c
    monkeypatch.setattr(training, "_stdp_sequential_c", lambda *a: calls.append(1) or real(*a))
    stats_c = [training.train_stdp_batch(compiled, "c1", part, "sequential") for part in (inputs[:17], inputs[17:])]
    assert calls == [1, 1]
    monkeypatch.setattr(training, "_kernel_for", lambda *a: None)  # the per-image PyTorch loop
    stats_p = [training.train_stdp_batch(plain, "c1", part, "sequential") for part in (inputs[:17], inputs[17:])]
    assert stats_c == stats_p
    w_c, w_p = compiled.layers["c1"].weight, plain.layers["c1"].weight
    assert torch.equal(w_c, w_p)  # bit for bit
    assert (w_c - _network(stabilizer, 0).layers["c1"].weight.clamp(0, 1)).abs().max() > 0.1
