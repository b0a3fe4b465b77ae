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

from cortexsnn.plasticity.coding import S1C1, latencies_to_waves, waves_to_latencies  # noqa: E402
from cortexsnn.plasticity import spike_ops  # noqa: E402
from cortexsnn.plasticity.stdp import stdp_delta  # noqa: E402

T = 15


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


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_fire_inhibition_and_k_winners_match_reference(method):
    g = torch.Generator().manual_seed(1)
    lat_in = _random_latencies(5, 4, 14, 14, seed=2)
    weight = torch.empty(12, 4, 3, 3).normal_(0.8, 0.05, generator=g)
    threshold, k, radius = 6.0, 4, 1
    pot = spike_ops.conv_potentials(lat_in, weight, T, method=method)
    out_lat = spike_ops.fire(pot, threshold)
    thr = spike_ops.thresholded_potentials(pot, threshold)
    thr_inh, lat_inh = spike_ops.pointwise_inhibition(thr, out_lat)
    values = spike_ops.values_at_first_spike(thr_inh, lat_inh)
    winners, valid = spike_ops.k_winners(lat_inh, values, k, radius, T)
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
    pot = spike_ops.conv_potentials(lat_in, weight, T, method="dense")
    lat = spike_ops.fire(pot, 5.0)
    thr, lat = spike_ops.pointwise_inhibition(spike_ops.thresholded_potentials(pot, 5.0), lat)
    winners, valid = spike_ops.k_winners(lat, spike_ops.values_at_first_spike(thr, lat), 3, 1, T)
    assert valid.any()
    delta = stdp_delta(weight, lat_in, lat, winners, valid, torch.tensor([0.004]), torch.tensor([-0.003]),
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
