"""The time-ordered thresholded convolution (``spike_fire_range``) and the fused STDP winners
(``conv_winners_image``) against dense PyTorch computations.

Weights are multiples of 1/64, so every sum is exact in either precision and in any order: the
kernels and the dense path must then agree exactly, ties included (few distinct weight values
make equal potentials, equal first-spike steps and equal k-WTA scores common)."""
from __future__ import annotations

import pytest
import torch

from cortexsnn.plasticity import spike_ops
from cortexsnn.plasticity.kernels import spike_conv_kernel

pytestmark = pytest.mark.skipif(spike_conv_kernel() is None, reason="no C compiler for the spike kernels")


def _inputs(b, c, h, w, steps, density, seed):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randint(0, steps, (b, c, h, w), generator=g)
    lat = torch.where(torch.rand(b, c, h, w, generator=g) < density, lat, steps)
    lat[0] = steps  # one image without any input spike
    return lat.to(torch.uint8)


def _dyadic(f, c, k, dtype, seed, levels=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, levels + 1, (f, c, k[0], k[1]), generator=g) / levels).to(dtype)


def _dense_fire_values(lat, weight, steps, threshold):
    potentials = spike_ops.conv_potentials(lat, weight, steps, "dense")
    out = spike_ops.fire(potentials, threshold)
    values = spike_ops.values_at_first_spike(potentials, out)
    return out, torch.where(out.long() < steps, values, torch.zeros((), dtype=weight.dtype))


CASES = [  # (channels, features, kernel, time steps, density, input size)
    (6, 30, (5, 5), 15, 0.2, (16, 16)),   # mozafari2018 C1: 4 vectors of features
    (30, 13, (3, 3), 15, 0.6, (8, 8)),    # a C2-like field, features not a multiple of 8
    (4, 70, (3, 3), 6, 0.5, (7, 9)),      # more than 8 vectors (the 8-, 4- and 1-vector groups)
    (2, 5, (3, 9), 5, 0.5, (6, 75)),      # rows wider than 8 and inputs wider than 64
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_time_ordered_fire_equals_dense(case, dtype):
    c, f, k, steps, density, (h, w) = CASES[case]
    lat = _inputs(3, c, h, w, steps, density, seed=case)
    weight = _dyadic(f, c, k, dtype, seed=10 + case)
    final = spike_ops.conv_potentials(lat, weight, steps, "dense")[-1]
    # thresholds below, inside and above the range of the final potentials, one of them equal to
    # potentials that occur (fire needs P > threshold)
    for threshold in [0.0, float(final.quantile(0.3)), float(final.median()), float(final.max()) + 1]:
        expected, expected_values = _dense_fire_values(lat, weight, steps, threshold)
        assert torch.equal(spike_ops.conv_fire(lat, weight, steps, threshold, "event"), expected)
        out, values = spike_ops.conv_fire_values(lat, weight, steps, threshold, "event")
        assert torch.equal(out, expected)
        assert torch.equal(values, expected_values)


def _tensor_winners(lat, weight, steps, threshold, k, radius):
    out, values = _dense_fire_values(lat, weight, steps, threshold)
    inh_lat, inh_val = spike_ops.inhibit_pointwise(out, values, steps)
    winners, valid = spike_ops.k_winners(inh_lat, inh_val, k, radius, steps)
    bi = torch.arange(lat.shape[0]).view(-1, 1)
    return winners, inh_lat[bi, winners[..., 0], winners[..., 1], winners[..., 2]].long(), valid


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_fused_winners_equal_tensor_path(case, dtype):
    c, f, k, steps, density, (h, w) = CASES[case]
    lat = _inputs(4, c, h, w, steps, density, seed=20 + case)
    weight = _dyadic(f, c, k, dtype, seed=30 + case, levels=4)  # coarse weights: ties everywhere
    final = spike_ops.conv_potentials(lat, weight, steps, "dense")[-1]
    for threshold in [0.0, float(final.median()), float(final.quantile(0.9))]:
        for n_winners, radius in [(1, 0), (5, 1), (40, 2)]:  # 40: more rounds than neurons left
            winners, winner_lat, valid = spike_ops.conv_stdp_winners(lat, weight, steps, threshold, n_winners,
                                                                     radius, "event")
            w2, l2, v2 = _tensor_winners(lat, weight, steps, threshold, n_winners, radius)
            assert torch.equal(valid, v2)
            assert torch.equal(winners[valid], w2[v2])
            assert torch.equal(winner_lat[valid], l2[v2])
            assert not bool(valid[0].any())  # the image without input spikes has no winner
            # the unfused kernels (fire with values, then the winners kernel) give every entry
            out, values = spike_ops.conv_fire_values(lat, weight, steps, threshold, "event")
            unfused = spike_ops.stdp_winners(out, values, n_winners, radius, steps)
            for mine, theirs in zip((winners, winner_lat, valid), unfused):
                assert torch.equal(mine, theirs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_silence_bound_is_exact_at_the_threshold(dtype):
    """All weights 1: a position with n input spikes reaches exactly n. With threshold n the
    position stays silent (P > threshold fails); with n - 1 or just below n it fires at its last
    spike's step: the kernel's bound (spikes x largest weight, with a margin) must not skip it."""
    steps = 6
    lat = _inputs(3, 3, 7, 7, steps, 0.5, seed=5)
    weight = torch.ones(9, 3, 3, 3, dtype=dtype)
    counts = torch.nn.functional.conv2d((lat < steps).to(dtype), torch.ones(1, 3, 3, 3, dtype=dtype))
    levels = [float(v) for v in counts.unique()]
    for threshold in sorted({v + d for v in levels for d in (0.0, -1.0, -(2.0**-12))}):
        expected, expected_values = _dense_fire_values(lat, weight, steps, threshold)
        out, values = spike_ops.conv_fire_values(lat, weight, steps, threshold, "event")
        assert torch.equal(out, expected) and torch.equal(values, expected_values)
        winners, winner_lat, valid = spike_ops.conv_stdp_winners(lat, weight, steps, threshold, 3, 1, "event")
        w2, l2, v2 = _tensor_winners(lat, weight, steps, threshold, 3, 1)
        assert torch.equal(valid, v2) and torch.equal(winners[valid], w2[v2]) and torch.equal(winner_lat[valid], l2[v2])


def test_real_valued_weights_fused_equals_unfused_bitwise():
    """float32 weights ~ N(0.8, 0.05), as STDP layers start: the fused winners and the fire
    kernel followed by the winners kernel make the same additions in the same order."""
    g = torch.Generator().manual_seed(7)
    lat = _inputs(6, 6, 20, 20, 15, 0.2, seed=7)
    weight = (0.8 + 0.05 * torch.randn(30, 6, 5, 5, generator=g)).float()
    fused = spike_ops.conv_stdp_winners(lat, weight, 15, 15.0, 5, 3, "event")
    out, values = spike_ops.conv_fire_values(lat, weight, 15, 15.0, "event")
    unfused = spike_ops.stdp_winners(out, values, 5, 3, 15)
    for mine, theirs in zip(fused, unfused):
        assert torch.equal(mine, theirs)
    assert int(fused[2].sum()) > 10  # the images do have winners


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_fire_pool_equals_fire_then_pool(case, dtype):
    c, f, k, steps, density, (h, w) = CASES[case]
    lat = _inputs(3, c, h, w, steps, density, seed=40 + case)
    weight = _dyadic(f, c, k, dtype, seed=50 + case, levels=8)
    final = spike_ops.conv_potentials(lat, weight, steps, "dense")[-1]
    for threshold in [0.0, float(final.quantile(0.3)), float(final.median()), float(final.max()) + 1]:
        expected = spike_ops.fire(spike_ops.conv_potentials(lat, weight, steps, "dense"), threshold)
        for pool in (2, 3):
            got = spike_ops.conv_fire_pool(lat, weight, steps, threshold, pool, "event")
            assert torch.equal(got, spike_ops.spike_pool(expected, pool))
            assert torch.equal(spike_ops.conv_fire_pool(lat, weight, steps, threshold, pool, "dense"), got)


def test_network_runs_conv_and_pool_in_one_pass():
    from cortexsnn.plasticity.models import build_model

    torch.manual_seed(0)
    model = build_model("mozafari2018")
    lat = _inputs(4, 6, 28, 28, model.time_steps, 0.2, seed=9)
    fused = model.run_ops(lat)
    step_by_step = lat
    for op in model.ops:
        step_by_step = model.apply_op(op, step_by_step)
    assert torch.equal(fused, step_by_step)
    assert bool((fused < model.time_steps).any())


def _forbid_pytorch_delta(monkeypatch):
    """Make the PyTorch update fail, so that a test of the compiled one cannot pass on it."""
    import cortexsnn.plasticity.training as training

    def fail(*args, **kwargs):
        raise AssertionError("the PyTorch stdp_delta ran instead of the compiled kernel")

    monkeypatch.setattr(training, "stdp_delta", fail)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("stabilizer", [True, False])
def test_batched_delta_kernel_equals_index_add(dtype, stabilizer, monkeypatch):
    """The compiled batched update sums the winners' changes in index_add_'s order: bit-identical
    to stdp_delta, with one feature winning in many images (repeated additions)."""
    from cortexsnn.plasticity.layers import SpikeConv
    from cortexsnn.plasticity.stdp import STDPRule, stdp_delta
    from cortexsnn.plasticity.training import _chunk_delta

    g = torch.Generator().manual_seed(11)
    layer = SpikeConv(4, 6, 3, threshold=2.0, k_winners=3, stdp=STDPRule(stabilizer=stabilizer)).to(dtype)
    layer.weight.copy_(torch.rand(6, 4, 3, 3, generator=g, dtype=dtype))
    lat = _inputs(9, 4, 8, 8, 10, 0.6, seed=12)
    winners = torch.stack([torch.randint(0, 6, (9, 3), generator=g), torch.randint(0, 6, (9, 3), generator=g),
                           torch.randint(0, 6, (9, 3), generator=g)], dim=-1)
    winner_lat = torch.randint(0, 10, (9, 3), generator=g)
    valid = torch.rand(9, 3, generator=g) > 0.2
    a_plus = torch.rand(9, generator=g, dtype=torch.float64) * 0.01
    a_minus = -torch.rand(9, generator=g, dtype=torch.float64) * 0.01
    expected = stdp_delta(layer.weight, lat, winners, winner_lat, valid, a_plus, a_minus, stabilizer, 0.0, 1.0)
    _forbid_pytorch_delta(monkeypatch)
    delta = _chunk_delta(layer, layer.stdp, lat, winners, winner_lat, valid, a_plus, a_minus)
    assert torch.equal(delta, expected)
    assert int(torch.unique(winners[..., 0][valid], return_counts=True)[1].max()) > 2


def test_batched_training_compiled_update_equals_pytorch_update(monkeypatch):
    """A batch of several chunks: the compiled update path leaves the same weights, bit for bit,
    as stdp_delta summed per chunk (the PyTorch path)."""
    import cortexsnn.plasticity.training as training
    from cortexsnn.plasticity.models import build_model

    torch.manual_seed(1)
    compiled = build_model("mozafari2018")
    plain = build_model("mozafari2018")
    plain.load_state_dict(compiled.state_dict())
    lat = _inputs(60, 6, 28, 28, compiled.time_steps, 0.2, seed=13)
    initial = compiled.layers["c1"].weight.clone()
    with monkeypatch.context() as patch:
        _forbid_pytorch_delta(patch)
        training.train_stdp_batch(compiled, "c1", lat, "batched", chunk=7)
    monkeypatch.setattr(training, "_kernel_for", lambda *a: None)  # stdp_delta in PyTorch
    training.train_stdp_batch(plain, "c1", lat, "batched", chunk=7)
    assert torch.equal(compiled.layers["c1"].weight, plain.layers["c1"].weight)
    assert not torch.equal(compiled.layers["c1"].weight, initial)


def test_fired_potentials_with_implicit_padding_equal_the_padded_copy():
    """fired_potentials lets the convolution pad (it then skips the padded taps): the potentials
    must stay bit-identical to a convolution of an explicitly zero-padded copy, the form the
    published evaluations used (mozafari2018's three layers' shapes, float32)."""
    import torch.nn.functional as F

    from cortexsnn.plasticity.models.network import _channels_last, fired_potentials

    g = torch.Generator().manual_seed(21)
    for c, f, k, pad, size in [(6, 30, 5, 2, 28), (30, 250, 3, 1, 14), (250, 200, 5, 2, 4)]:
        fired = (torch.rand(40, c, size, size, generator=g) < 0.6).float()
        weight = (0.8 + 0.05 * torch.randn(f, c, k, k, generator=g)).clamp(0, 1)
        explicit = F.conv2d(_channels_last(F.pad(fired, (pad,) * 4)), weight)
        assert torch.equal(fired_potentials(fired, weight, pad), explicit)
