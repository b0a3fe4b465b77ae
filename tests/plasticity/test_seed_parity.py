"""Batched building blocks vs the plain per-image seed-structured reference (``_seed_reference``).

Every comparison runs a batch through ``cortexsnn.plasticity`` and each image separately through
the reference (cumulative waves, loops, ``.item()``), and requires equal results.
"""
from __future__ import annotations

import pathlib
import sys

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _seed_reference as ref  # noqa: E402

from cortexsnn.encoding import latencies_to_waves, waves_to_latencies  # noqa: E402
from cortexsnn.plasticity.filters import S1C1  # noqa: E402
from cortexsnn.plasticity import spike_ops  # noqa: E402
from cortexsnn.plasticity.stdp import stdp_delta, stdp_rates_for_samples  # noqa: E402

T = 15


@pytest.fixture(autouse=True)
def _one_thread():
    """The per-image reference runs many small convolutions: one thread is much faster for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _digit_like_images(n: int, seed: int) -> torch.Tensor:
    """Smooth random blobs in [0, 1] (enough structure for DoG responses above 50)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 7, 7, generator=g)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return (x > 0.55).float() * x


def _random_latencies(b, c, h, w, seed, p_spike=0.4):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randint(0, T, (b, c, h, w), generator=g)
    silent = torch.rand(b, c, h, w, generator=g) > p_spike
    return torch.where(silent, torch.full_like(lat, T), lat).to(torch.uint8)


def test_preprocessing_matches_seed_structure():
    images = _digit_like_images(6, 0)
    lat = S1C1()(images)
    for i in range(images.shape[0]):
        waves = ref.s1c1(images[i])
        assert waves.sum() > 0
        assert torch.equal(latencies_to_waves(lat[i], T), waves)
        assert torch.equal(waves_to_latencies(waves), lat[i])


def _layer_winners(lat_in, weight, threshold, k, radius, method):
    lat, values = spike_ops.conv_fire_values(lat_in, weight, T, threshold, method)
    lat, values = spike_ops.inhibit_pointwise(lat, values, T)
    winners, valid = spike_ops.k_winners(lat, values, k, radius, T)
    return lat, values, winners, valid


@pytest.mark.parametrize("method", ["dense", "auto"])
def test_fire_inhibition_and_k_winners_match_reference(method):
    g = torch.Generator().manual_seed(1)
    lat_in = _random_latencies(5, 4, 14, 14, seed=2)
    weight = torch.empty(12, 4, 3, 3).normal_(0.8, 0.05, generator=g)
    threshold, k, radius = 6.0, 4, 1
    pot = spike_ops.conv_potentials(lat_in, weight, T, method=method)
    out_lat = spike_ops.fire(pot, threshold)
    lat_inh, _, winners, valid = _layer_winners(lat_in, weight, threshold, k, radius, method)
    for i in range(lat_in.shape[0]):
        waves = latencies_to_waves(lat_in[i], T)
        ref_pot = F.conv2d(waves, weight)
        torch.testing.assert_close(pot[:, i], ref_pot, rtol=1e-5, atol=1e-5)
        spk, ref_thr = ref.fire(ref_pot, threshold)
        assert torch.equal(waves_to_latencies(spk), out_lat[i])
        ref_inh = ref.pointwise_inhibition(ref_thr)
        assert torch.equal(waves_to_latencies(ref_inh.sign()), lat_inh[i])
        ref_winners = ref.get_k_winners(ref_inh, k, radius, ref_inh.sign())
        ours = [tuple(w.tolist()) for w, v in zip(winners[i], valid[i]) if v]
        assert ours == ref_winners
        assert len(ref_winners) > 0


def test_stdp_update_matches_reference():
    g = torch.Generator().manual_seed(3)
    lat_in = _random_latencies(1, 3, 10, 10, seed=4)
    weight = torch.empty(6, 3, 3, 3).normal_(0.8, 0.05, generator=g)
    lat, _, winners, valid = _layer_winners(lat_in, weight, 5.0, 3, 1, "dense")
    assert valid.any()
    winner_lat = lat[0, winners[0, :, 0], winners[0, :, 1], winners[0, :, 2]].unsqueeze(0)
    delta = stdp_delta(weight, lat_in, winners, winner_lat, valid, torch.tensor([0.004]), torch.tensor([-0.003]),
                       True, 0.0, 1.0)
    ours = (weight + delta).clamp(0, 1)

    reference = weight.clone()
    rule = ref.STDP(reference, (0.004, -0.003))
    ref_winners = [tuple(w.tolist()) for w, v in zip(winners[0], valid[0]) if v]
    rule(latencies_to_waves(lat_in[0], T), latencies_to_waves(lat[0], T), ref_winners)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-7)
    assert not torch.equal(ours, weight)


def test_spike_pool_passes_earliest_spike():
    lat = _random_latencies(3, 2, 9, 9, seed=5)
    pooled = spike_ops.spike_pool(lat, 3)
    for i in range(3):
        ref_pooled = ref.pooling(latencies_to_waves(lat[i], T), 3)
        assert torch.equal(waves_to_latencies(ref_pooled), pooled[i])


# ------------------------------------------------------------------ sequential training == seed
def _small_network():
    """mozafari2018's structure (pads 2/1/2, pools 2/3, th 15/10, k 5/8, r 3/1) with fewer
    channels, 2 features per class and a+ doubling every 6 samples, so that a short run crosses
    the schedule."""
    from cortexsnn.plasticity import RSTDPRule, S1C1, SpikeConv, STDPNetwork, STDPRule
    from cortexsnn.plasticity.models.network import Stage

    layers = {
        "c1": SpikeConv(6, 8, 5, padding=2, threshold=15, k_winners=5, inhibition_radius=3, stdp=STDPRule(double_every=6)),
        "c2": SpikeConv(8, 16, 3, padding=1, threshold=10, k_winners=8, inhibition_radius=1, stdp=STDPRule(double_every=6)),
        "c3": SpikeConv(16, 20, 5, padding=2, threshold=None, rstdp=RSTDPRule()),
    }
    ops = [("conv", "c1"), ("pool", 2), ("conv", "c2"), ("pool", 3)]
    stages = [Stage("c1", "stdp", ["c1"]), Stage("c2", "stdp", ["c2"]), Stage("c3", "rstdp", ["c3"])]
    return STDPNetwork("small", layers, ops, ["c3"], stages, features_per_class=2, coder=S1C1())


@pytest.mark.parametrize("method", ["dense", "auto"])
def test_sequential_training_reproduces_seed_weight_for_weight(method):
    from cortexsnn.plasticity.training import AdaptiveRates, stage_inputs, train_rstdp_batch, train_stdp_batch

    torch.manual_seed(0)
    model = _small_network()
    for layer in model.layers.values():
        layer.method = method
    seed_net = ref.SeedNet(model.layers["c1"].weight, model.layers["c2"].weight, model.layers["c3"].weight,
                           features_per_class=2, double_every=6)
    images = _digit_like_images(18, seed=7)
    lat = model.encode(images)
    # labels that the untrained network gets right for even images and wrong for odd ones, so that
    # both reward and punishment (and the adaptive rates of both) are exercised
    initial, _ = model.predict(lat)
    labels = torch.where(torch.arange(18) % 2 == 0, initial.clamp(min=0), (initial.clamp(min=0) + 1) % 10)
    waves = [ref.s1c1(img) for img in images]
    stages = {stage.name: stage for stage in model.stages}

    for layer_index, name in enumerate(["c1", "c2"]):
        before = model.layers[name].weight.clone()
        inputs = stage_inputs(model, stages[name], lat)
        for part in (slice(0, 7), slice(7, 18)):  # two batches: the schedule carries over
            train_stdp_batch(model, name, inputs[part], "sequential")
        for w in waves:
            seed_net.train_layer(w, layer_index)
        assert not torch.equal(model.layers[name].weight, before)
        torch.testing.assert_close(model.layers[name].weight, seed_net.w[layer_index], rtol=0, atol=1e-6)

    before = model.layers["c3"].weight.clone()
    inputs = stage_inputs(model, stages["c3"], lat)
    adaptive = AdaptiveRates()
    batches = [slice(0, 6), slice(6, 12), slice(12, 18)]
    outcomes = [train_rstdp_batch(model, stages["c3"], inputs[part], labels[part], "sequential", adaptive)
                for part in batches]
    assert all(o["hits"] > 0 and o["misses"] > 0 for o in outcomes), outcomes
    seed_net.train_rl_epoch([(waves[p], labels[p]) for p in batches])
    assert not torch.equal(model.layers["c3"].weight, before)
    torch.testing.assert_close(model.layers["c3"].weight, seed_net.w[2], rtol=0, atol=1e-6)


def test_batched_mode_with_one_image_per_batch_is_sequential_mode():
    from cortexsnn.plasticity.training import stage_inputs, train_stdp_batch

    torch.manual_seed(1)
    sequential, batched = _small_network(), _small_network()
    batched.load_state_dict(sequential.state_dict())
    lat = sequential.encode(_digit_like_images(12, seed=9))
    stage = sequential.stages[0]
    inputs = stage_inputs(sequential, stage, lat)
    train_stdp_batch(sequential, "c1", inputs, "sequential")
    for i in range(inputs.shape[0]):
        train_stdp_batch(batched, "c1", inputs[i : i + 1], "batched")
    torch.testing.assert_close(batched.layers["c1"].weight, sequential.layers["c1"].weight, rtol=0, atol=1e-6)
    # a real batch: every image's update from the weights at the start of the batch, summed, then clamped
    fresh = _small_network()
    fresh.load_state_dict(sequential.state_dict())
    fresh.layers["c1"].samples_seen.zero_()
    layer = fresh.layers["c1"]
    w0 = layer.weight.clone()
    padded = layer.pad(inputs, T)
    a_plus, a_minus = stdp_rates_for_samples(layer.stdp, torch.arange(1, inputs.shape[0] + 1))
    expected = w0.clone()
    for i in range(inputs.shape[0]):
        lat, _, winners, valid = _layer_winners(padded[i : i + 1], w0, 15.0, 5, 3, "dense")
        winner_lat = lat[0, winners[0, :, 0], winners[0, :, 1], winners[0, :, 2]].unsqueeze(0)
        expected += stdp_delta(w0, padded[i : i + 1], winners, winner_lat, valid, a_plus[i : i + 1],
                               a_minus[i : i + 1], True, 0.0, 1.0)
    expected.clamp_(0, 1)
    train_stdp_batch(fresh, "c1", inputs, "batched")
    torch.testing.assert_close(layer.weight, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(layer.weight, sequential.layers["c1"].weight, atol=1e-6)


def test_real_digits_preprocessing_and_decisions_match_seed_structure(shared_data):
    """Eight MNIST test digits through an untrained mozafari2018: spike waves equal the seed's
    S1C1, and decisions and per-class evidence (the seed computes all T steps per image) equal ours."""
    from cortexsnn.data.mnist import load_mnist
    from cortexsnn.plasticity import build_model
    from cortexsnn.plasticity.training import evaluate_latencies

    mnist = shared_data / "mnist"
    if not mnist.is_dir():
        pytest.skip(f"{mnist} is absent")
    dataset = load_mnist(mnist, train=False)
    images = torch.stack([dataset[i][0] for i in range(8)])
    torch.manual_seed(3)
    model = build_model("mozafari2018")
    lat = model.encode(images)
    decisions, scores = evaluate_latencies(model, lat)
    seed_net = ref.SeedNet(model.layers["c1"].weight, model.layers["c2"].weight, model.layers["c3"].weight)
    for i in range(8):
        waves = ref.s1c1(images[i])
        assert torch.equal(latencies_to_waves(lat[i], T), waves)
        assert seed_net.decide(waves) == int(decisions[i])
        # every class's evidence: its features' largest last-step potential over the 4 x 4 map
        per_class = seed_net.last_potentials.amax(dim=(1, 2)).view(10, 20).amax(dim=1)
        torch.testing.assert_close(scores[i], per_class, rtol=1e-5, atol=1e-4)
    assert (decisions >= 0).all()
    assert scores.std(dim=0).max() > 1.0  # the inputs move the evidence, not only the weights
