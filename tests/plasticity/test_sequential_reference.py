"""Sequential mode reproduces a plain per-image implementation of the spec weight for weight."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import stdp_reference as ref  # noqa: E402

from cortexsnn.plasticity.kernels import spike_conv_kernel
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.models.network import Stage, STDPNetwork
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule
from cortexsnn.plasticity.training import AdaptiveRates, train_rstdp_batch, train_stdp_batch

T = 6


def _random_latencies(n, c, h, w, density, seed):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randint(0, T, (n, c, h, w), generator=g)
    silent = torch.rand(n, c, h, w, generator=g) > density
    return torch.where(silent, T, lat).to(torch.uint8)


def _net(layer: SpikeConv, head: SpikeConv | None = None, per_class: int = 2) -> STDPNetwork:
    head = head or SpikeConv(layer.out_channels, 3 * per_class, 3, padding=1, threshold=None, rstdp=RSTDPRule())
    net = STDPNetwork("test", {"c1": layer, "h": head}, [("conv", "c1")], ["h"],
                      [Stage("c1", "stdp", ["c1"]), Stage("h", "rstdp", ["h"])],
                      time_steps=T, n_classes=3, features_per_class=per_class)
    return net.double()


@pytest.mark.parametrize(("method", "stabilizer"), [("event", True), ("event", False), ("dense", True)])
def test_stdp_sequential_matches_reference(method, stabilizer):
    """Without the stabiliser weights pile up at the bounds and equal potentials become common;
    which of two equal scores wins then depends on float summation order (conv2d vs the
    event-driven kernel), so that case uses dyadic weights and rates, whose sums are exact."""
    torch.manual_seed(1)
    ap, an, top = (0.05, -0.04, 0.3) if stabilizer else (1 / 16, -1 / 32, 0.25)
    rule = STDPRule(a_plus=ap, a_minus=an, stabilizer=stabilizer, double_every=7, max_a_plus=top)
    layer = SpikeConv(4, 8, 3, padding=1, threshold=4.0, k_winners=3, inhibition_radius=1, stdp=rule,
                      weight_mean=0.5, weight_std=0.2)
    layer.method = method
    net = _net(layer)
    if not stabilizer:
        layer.weight.copy_(torch.round(layer.weight.clamp(0, 1) * 64) / 64)
    inputs = _random_latencies(24, 4, 8, 8, 0.5, seed=2)
    expected = layer.weight.clone()
    waves = [ref.waves_of(x, T) for x in inputs]
    ref.train_stdp_layer(expected, waves, 4.0, 3, 1, 1, ap, an, 7, top, stabilizer=stabilizer)
    # two batches, to check that the schedule carries over
    train_stdp_batch(net, "c1", inputs[:13], "sequential")
    train_stdp_batch(net, "c1", inputs[13:], "sequential")
    torch.testing.assert_close(layer.weight, expected, rtol=0, atol=1e-12)
    assert int(layer.samples_seen) == 24
    # the updates were not trivial
    assert (layer.weight - expected.new_tensor(0.5)).abs().max() > 0.2


def _forbid_pytorch_heads(monkeypatch, training):
    """Make the PyTorch heads path fail, so that a run that passes went through the compiled loop;
    returns the original for the comparison runs."""
    original = training._rstdp_heads_sequential

    def fail(*args, **kwargs):
        raise AssertionError("the compiled R-STDP loop was not used")

    monkeypatch.setattr(training, "_rstdp_heads_sequential", fail)
    return original


@pytest.mark.parametrize(("compiled", "chunk"), [(True, 32), (False, 1), (False, 4), (False, 32)])
def test_rstdp_sequential_matches_reference(compiled, chunk, monkeypatch):
    """Both heads-only paths: the compiled per-image loop, and the chunked PyTorch potentials, where
    features changed earlier in a chunk (and the first update's clamp of the whole tensor) must be
    seen by later images."""
    import cortexsnn.plasticity.training as training

    if not compiled:
        monkeypatch.setattr(training, "_rstdp_heads_sequential_c", lambda *args: None)
    elif spike_conv_kernel() is None:
        pytest.skip("no C compiler for the compiled kernel")
    else:
        _forbid_pytorch_heads(monkeypatch, training)
    torch.manual_seed(3)
    per_class = 2
    layer = SpikeConv(4, 5, 3, padding=1, threshold=3.0, k_winners=1)
    head = SpikeConv(4, 3 * per_class, 3, padding=1, threshold=None,
                     rstdp=RSTDPRule(0.05, -0.03, -0.04, 0.01, lower=0.2, upper=0.8), weight_mean=0.6, weight_std=0.2)
    net = STDPNetwork("test", {"c1": layer, "h": head}, [], ["h"], [Stage("h", "rstdp", ["h"])],
                      time_steps=T, n_classes=3, features_per_class=per_class).double()
    inputs = _random_latencies(30, 4, 5, 5, 0.4, seed=4)
    labels = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(5))
    expected = net.layers["h"].weight.clone()
    ref.train_rstdp_head(expected, [ref.waves_of(x, T) for x in inputs], labels.tolist(), 1, per_class,
                         (0.05, -0.03), (-0.04, 0.01), 0.2, 0.8, batch=10)
    adaptive = AdaptiveRates()
    stats = []
    for s in range(0, 30, 10):
        stats.append(train_rstdp_batch(net, net.stages[0], inputs[s : s + 10], labels[s : s + 10], "sequential", adaptive,
                                       sequential_chunk=chunk))
    torch.testing.assert_close(net.layers["h"].weight, expected, rtol=0, atol=1e-12)
    assert sum(s["hits"] + s["misses"] for s in stats) > 0


def test_batched_mode_equals_sequential_for_one_image_batches():
    torch.manual_seed(6)
    layer = SpikeConv(4, 8, 3, padding=1, threshold=4.0, k_winners=3, inhibition_radius=1,
                      stdp=STDPRule(0.05, -0.04, double_every=5), weight_mean=0.5, weight_std=0.2)
    net_a = _net(layer)
    net_b = _net(SpikeConv(4, 8, 3, padding=1, threshold=4.0, k_winners=3, inhibition_radius=1,
                           stdp=STDPRule(0.05, -0.04, double_every=5)))
    net_b.load_state_dict(net_a.state_dict())
    inputs = _random_latencies(12, 4, 9, 9, 0.5, seed=7)
    for i in range(12):
        train_stdp_batch(net_a, "c1", inputs[i : i + 1], "sequential")
        train_stdp_batch(net_b, "c1", inputs[i : i + 1], "batched")
    torch.testing.assert_close(net_a.layers["c1"].weight, net_b.layers["c1"].weight, rtol=0, atol=1e-12)


def test_batched_mode_sums_updates_from_batch_start_weights():
    torch.manual_seed(8)
    rule = STDPRule(0.05, -0.04, stabilizer=False, double_every=None)
    make = lambda: SpikeConv(4, 8, 3, padding=1, threshold=4.0, k_winners=2, inhibition_radius=1, stdp=rule)  # noqa: E731
    net = _net(make())
    start = net.layers["c1"].weight.clone()
    inputs = _random_latencies(6, 4, 9, 9, 0.5, seed=9)
    expected_delta = torch.zeros_like(start)
    for i in range(6):  # each image's update from the same starting weights, summed
        w = start.clone()
        waves = [ref.waves_of(inputs[i], T)]
        ref.train_stdp_layer(w, waves, 4.0, 2, 1, 1, 0.05, -0.04, 10**9, 1.0, stabilizer=False, lb=-10.0, ub=10.0)
        expected_delta += w - start
    train_stdp_batch(net, "c1", inputs, "batched")
    assert expected_delta.abs().max() > 0.09  # several images updated the same feature
    torch.testing.assert_close(net.layers["c1"].weight, (start + expected_delta).clamp(0, 1), rtol=0, atol=1e-12)


def _majority_net(trained: list[str]) -> STDPNetwork:
    heads = {f"h{k}": SpikeConv(4, 3 * 2, k, padding=k // 2, threshold=None,
                                rstdp=RSTDPRule(0.05, -0.03, -0.04, 0.01, lower=0.2, upper=0.8),
                                weight_mean=0.6, weight_std=0.2) for k in (1, 3, 5)}
    return STDPNetwork("test", heads, [], list(heads), [Stage("heads", "rstdp", trained)], vote="majority",
                       tie_head=1, time_steps=T, n_classes=3, features_per_class=2).double()


@pytest.mark.parametrize("trained", [["h1", "h3", "h5"], ["h3"]])
def test_compiled_heads_equal_pytorch_heads_under_majority_vote(trained, monkeypatch):
    """Each head of a majority vote is judged by its own class, so the compiled loop runs the heads
    one after the other; weights and decisions must equal the PyTorch path's (which interleaves
    them image by image), also when only some heads learn."""
    import cortexsnn.plasticity.training as training

    if spike_conv_kernel() is None:
        pytest.skip("no C compiler for the compiled kernel")
    torch.manual_seed(8)
    compiled, plain = _majority_net(trained), _majority_net(trained)
    plain.load_state_dict(compiled.state_dict())
    inputs = _random_latencies(40, 4, 6, 6, 0.4, seed=9)
    labels = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(10))
    original = _forbid_pytorch_heads(monkeypatch, training)
    stats_c = [train_rstdp_batch(compiled, compiled.stages[0], inputs[s : s + 20], labels[s : s + 20], "sequential",
                                 AdaptiveRates()) for s in (0, 20)]
    monkeypatch.setattr(training, "_rstdp_heads_sequential", original)
    monkeypatch.setattr(training, "_rstdp_heads_sequential_c", lambda *args: None)
    stats_p = [train_rstdp_batch(plain, plain.stages[0], inputs[s : s + 20], labels[s : s + 20], "sequential",
                                 AdaptiveRates()) for s in (0, 20)]
    assert stats_c == stats_p
    for name in ("h1", "h3", "h5"):
        torch.testing.assert_close(compiled.layers[name].weight, plain.layers[name].weight, rtol=0, atol=0)
    assert sum(s["hits"] + s["misses"] for s in stats_c) > 0


def test_compiled_head_float32_matches_pytorch_path(monkeypatch):
    """float32, as the models train: the same decisions and weights as the PyTorch path on inputs
    where no two potentials come within rounding of each other (dyadic weights: exact sums)."""
    import cortexsnn.plasticity.training as training

    if spike_conv_kernel() is None:
        pytest.skip("no C compiler for the compiled kernel")
    torch.manual_seed(11)
    rule = RSTDPRule(1 / 64, -1 / 128, -1 / 64, 1 / 256, lower=0.25, upper=0.75)
    nets = []
    for _ in range(2):
        net = STDPNetwork("test", {"h": SpikeConv(8, 10 * 3, 3, threshold=None, rstdp=rule)}, [], ["h"],
                          [Stage("h", "rstdp", ["h"])], time_steps=T, n_classes=10, features_per_class=3)
        nets.append(net)
    w = torch.round(torch.rand(30, 8, 3, 3) * 32) / 64 + 0.25
    for net in nets:
        net.layers["h"].weight.copy_(w)
    inputs = _random_latencies(64, 8, 6, 6, 0.5, seed=12)
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(13))
    original = _forbid_pytorch_heads(monkeypatch, training)
    out_c = train_rstdp_batch(nets[0], nets[0].stages[0], inputs, labels, "sequential", AdaptiveRates())
    monkeypatch.setattr(training, "_rstdp_heads_sequential", original)
    monkeypatch.setattr(training, "_rstdp_heads_sequential_c", lambda *args: None)
    out_p = train_rstdp_batch(nets[1], nets[1].stages[0], inputs, labels, "sequential", AdaptiveRates())
    assert out_c == out_p and out_c["hits"] + out_c["misses"] == 64
    torch.testing.assert_close(nets[0].layers["h"].weight, nets[1].layers["h"].weight, rtol=0, atol=0)
    assert not torch.equal(nets[0].layers["h"].weight, w)
