import pytest
import torch

from cortexsnn.encoding import bernoulli_rate, latency, poisson, repeat


def test_repeat_is_time_major_view():
    x = torch.rand(2, 3)
    out = repeat(x, 4)
    assert out.shape == (4, 2, 3) and torch.equal(out[3], x)
    assert out.data_ptr() == x.data_ptr()


def test_bernoulli_rate_matches_probability_and_is_seeded():
    x = torch.tensor([0.0, 0.25, 1.0])
    gen = torch.Generator().manual_seed(0)
    spikes = bernoulli_rate(x, 20000, generator=gen)
    rates = spikes.mean(0)
    assert rates[0] == 0 and rates[2] == 1
    assert rates[1].item() == pytest.approx(0.25, abs=0.01)
    again = bernoulli_rate(x, 20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(spikes, again)
    assert poisson is bernoulli_rate
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bernoulli_rate(torch.tensor([2.0]), 3)
    with pytest.raises(ValueError, match="NaN"):
        bernoulli_rate(torch.tensor([float("nan")]), 3)


def test_latency_one_spike_earlier_for_stronger():
    x = torch.tensor([[1.0, 0.5, 0.0, 0.26]])
    spikes = latency(x, 5)
    assert spikes.shape == (5, 1, 4)
    # steps: round((1 - x) * 4) = 0, 2, never, round(2.96) = 3
    assert spikes.argmax(0).tolist() == [[0, 2, 0, 3]]
    assert spikes.sum(0).tolist() == [[1, 1, 0, 1]]
    scaled = latency(x * 10, 5, normalize=True)
    assert torch.equal(scaled, spikes)
    with pytest.raises(ValueError, match="positive integer"):
        latency(x, 0)


def test_latency_normalizes_each_sample_and_keeps_dtype():
    x = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.25, 0.125]], dtype=torch.float64)
    spikes = latency(x, 9, normalize=True)
    assert spikes.dtype == torch.float64 and spikes.shape == (9, 3, 3)
    # sample 0 / 2 -> [1, 0.5, 0]: steps 0, 4, never; sample 1 all zero: no spikes; sample 2 / 0.5
    # -> [1, 0.5, 0.25]: steps 0, 4, 6
    assert spikes.sum(0).tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    assert spikes.argmax(0)[[0, 2]].tolist() == [[0, 4, 0], [0, 4, 6]]
    with pytest.raises(ValueError, match="non-negative"):
        latency(torch.tensor([[-1.0, 1.0]]), 4, normalize=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        latency(torch.tensor([1.5]), 4)


def test_latency_threshold_and_rounding():
    x = torch.tensor([0.05, 0.1, 0.375, 0.625])
    spikes = latency(x, 5, threshold=0.1)
    assert spikes.sum(0).tolist() == [0, 0, 1, 1]  # at or below the threshold: silent
    # (1 - x) * 4 = 2.5, 1.5 -> 2 and 2 (halves to even)
    assert spikes.argmax(0)[2:].tolist() == [2, 2]


def test_rate_coding_max_rate_and_validation():
    x = torch.full((4000,), 0.5)
    spikes = bernoulli_rate(x, 10, max_rate=0.2, generator=torch.Generator().manual_seed(1))
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes.mean().item() == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="max_rate"):
        bernoulli_rate(x, 3, max_rate=1.5)
    with pytest.raises(TypeError, match="floating-point"):
        bernoulli_rate(torch.ones(3, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="positive integer"):
        repeat(x, -1)
