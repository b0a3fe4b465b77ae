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
