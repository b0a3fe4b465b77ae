"""The rate-IF neuron of converted networks (``rate_if_multistep``): hand-derived steps, the compiled
CPU kernel against the PyTorch loop bit for bit, the signed count's floor, the rate's error bound."""
import pytest
import torch

from cortexsnn.neurons.functional.rate_if import _cpu_kernel, rate_if_multistep

BACKENDS = ["cpu", "torch"]


def _fresh(shape, theta, start=0.5):
    v = (start * theta).expand(shape).clone()
    return v, torch.zeros(shape)


def test_cpu_kernel_builds():
    # where a C compiler exists the kernel must build: a silent fallback would go unnoticed
    assert _cpu_kernel() is not None


# --- hand-derived steps ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signed", [True, False])
def test_constant_input_hand_derived(backend, signed):
    # threshold 1, start 0.5, input 0.3: v = 0.8 (no spike), 1.1 (spike, v -> 0.1), 0.4, 0.7; the next step
    # would reach 0.5 + 5 * 0.3 = 2.0 exactly (a tie), so the float-exact case below covers the later steps
    theta = torch.ones(1)
    v, count = _fresh((1,), theta)
    spikes, v, count = rate_if_multistep(torch.full((4, 1), 0.3), v, count, theta, signed=signed, backend=backend)
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert count.item() == 1.0
    assert v.item() == pytest.approx(0.7, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_input_spikes_at_threshold(backend):
    # input 0.25 (exact in binary), start 0.5: v = 0.75, 1.0 -> spike (v >= theta fires), 0.25, 0.5, 0.75, 1.0 -> spike, ...
    # spikes at steps 2, 6, 10; after 12 steps v = 0.5 + 12 * 0.25 - 3 = 0.5 exactly
    theta = torch.ones(1)
    v, count = _fresh((1,), theta)
    spikes, v, count = rate_if_multistep(torch.full((12, 1), 0.25), v, count, theta, backend=backend)
    assert [t + 1 for t in torch.nonzero(spikes.flatten()).flatten().tolist()] == [2, 6, 10]
    assert v.item() == 0.5 and count.item() == 3.0
    # the same drive given as a per-channel bias with zero input
    v, count = _fresh((1,), theta)
    biased, _, _ = rate_if_multistep(torch.zeros(12, 1), v, count, theta, torch.full((1,), 0.25), backend=backend)
    assert torch.equal(biased, spikes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_spike_gives_one_back(backend):
    # theta 1, start 0.5, inputs 1.25, -0.75, -0.75, -0.75 (exact in binary):
    # signed:   v 1.75 -> +1 (0.75); 0.0 -> 0; -0.75 -> -1 (count 1 -> 0, v 0.25); -0.5 -> 0 (count is 0: no more)
    # unsigned: v 1.75 -> +1 (0.75); 0.0; -0.75; -1.5 (no spike below zero)
    theta = torch.ones(1)
    x = torch.tensor([1.25, -0.75, -0.75, -0.75]).reshape(4, 1)
    v, count = _fresh((1,), theta)
    s, v1, c1 = rate_if_multistep(x, v, count, theta, signed=True, backend=backend)
    assert s.flatten().tolist() == [1.0, 0.0, -1.0, 0.0]
    assert v1.item() == -0.5 and c1.item() == 0.0
    s, v2, c2 = rate_if_multistep(x, v, count, theta, signed=False, backend=backend)
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert v2.item() == -1.5 and c2.item() == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_burst_and_weighted_output(backend):
    # theta 0.5, at most 2 spikes a step, start 0.25, input 1.375:
    # v 1.625 -> floor(3.25) = 3, capped at 2 (v 0.625); 2.0 -> 4 -> 2 (v 1.0); 2.375 -> 4 -> 2 (v 1.375)
    theta = torch.full((1,), 0.5)
    v, count = _fresh((1,), theta)
    s, v, count = rate_if_multistep(torch.full((3, 1), 1.375), v, count, theta, max_spikes=torch.full((1,), 2.0),
                                    weighted=True, backend=backend)
    assert s.flatten().tolist() == [1.0, 1.0, 1.0]  # 2 spikes x theta 0.5
    assert v.item() == 1.375 and count.item() == 6.0


# --- the compiled kernel against the PyTorch loop ---------------------------------------------------

def _case(layout: str, burst: bool, seed: int):
    gen = torch.Generator().manual_seed(seed)
    steps, batch, channels, height, width = 37, 4, 8, 12, 12  # 4,608 neurons: three of the kernel's blocks
    if layout == "nchw":
        x = torch.randn(steps, batch, channels, height, width, generator=gen)
    else:  # every step channels-last
        x = torch.randn(steps, batch, height, width, channels, generator=gen).permute(0, 1, 4, 2, 3)
        assert x[0].is_contiguous(memory_format=torch.channels_last) and not x[0].is_contiguous()
    x = x * 0.8 + 0.1 * torch.sin(torch.arange(steps, dtype=torch.float32)).reshape(-1, 1, 1, 1, 1)
    theta = (torch.rand(channels, generator=gen) + 0.2).reshape(channels, 1, 1)
    bias = (torch.randn(channels, generator=gen) * 0.05).reshape(channels, 1, 1)
    top = (torch.randint(1, 4, (channels,), generator=gen).float() if burst else torch.ones(channels)).reshape(channels, 1, 1)
    v = (0.5 * theta).expand(batch, channels, height, width)
    return x, v, torch.zeros(batch, channels, height, width), theta, bias, top


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("burst", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_cpu_kernel_bit_identical_to_torch(layout, signed, burst, weighted):
    x, v, count, theta, bias, top = _case(layout, burst, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the kernel splits its blocks over OpenMP threads
    try:
        fast = rate_if_multistep(x, v, count, theta, bias, top, signed=signed, weighted=weighted, backend="cpu")
    finally:
        torch.set_num_threads(threads)
    slow = rate_if_multistep(x, v, count, theta, bias, top, signed=signed, weighted=weighted, backend="torch")
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
    spikes = fast[0] / theta if weighted else fast[0]
    # the case exercises what it claims to: negative spikes only when signed, bursts only when allowed
    assert bool((spikes < 0).any()) == signed
    assert bool((spikes > 1).any()) == burst
    if layout == "channels_last":
        assert fast[1].is_contiguous(memory_format=torch.channels_last)


def test_split_sequence_continues_exactly():
    # two calls carrying the state equal one call over the whole sequence
    x, v, count, theta, bias, top = _case("nchw", True, seed=4)
    whole = rate_if_multistep(x, v, count, theta, bias, top)
    first = rate_if_multistep(x[:20], v, count, theta, bias, top)
    second = rate_if_multistep(x[20:], first[1], first[2], theta, bias, top)
    assert torch.equal(torch.cat([first[0], second[0]]), whole[0])
    assert torch.equal(second[1], whole[1]) and torch.equal(second[2], whole[2])


# --- properties ------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("burst", [True, False])
def test_signed_count_never_below_zero(backend, burst):
    gen = torch.Generator().manual_seed(5)
    steps, n = 200, 3000
    # a drive that swings strongly negative after an early positive transient
    drift = torch.cat([torch.full((20, 1), 0.6), torch.full((steps - 20, 1), -0.3)])
    x = drift + torch.randn(steps, n, generator=gen)
    theta = torch.rand(n, generator=gen) + 0.1
    top = torch.randint(1, 4, (n,), generator=gen).float() if burst else torch.ones(n)
    v, count = _fresh((n,), theta)
    spikes, _, count = rate_if_multistep(x, v, count, theta, max_spikes=top, signed=True, backend=backend)
    running = spikes.cumsum(0)
    assert (spikes < 0).sum() > 1000  # spikes are given back often ...
    assert float(running.min()) >= 0.0  # ... but never more than were sent
    assert torch.equal(running[-1], count)
    assert bool((spikes.abs() <= top).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("top", [1.0, 3.0])
def test_constant_input_rate_within_bound(backend, signed, top):
    # with constant input a in [0, theta * max_spikes] no step is clipped, so after T steps
    # theta * count = theta / 2 + a T - v_T with v_T in [0, theta): |rate - a| <= theta / (2T)
    # (the half-threshold start halves the theta / T of a neuron started at 0)
    theta = 0.7
    a = torch.linspace(0.0, theta * top, 1001)
    th = torch.full_like(a, theta)
    for steps in (1, 7, 64, 255):
        v, count = _fresh(a.shape, th)
        _, _, count = rate_if_multistep(a.expand(steps, -1).contiguous(), v, count, th, max_spikes=torch.full_like(a, top),
                                        signed=signed, backend=backend)
        rate = theta * count / steps
        error = (rate - a).abs().max().item()
        assert error <= theta / (2 * steps) + 1e-6, (steps, error)
        if steps >= 7:
            assert error > theta / (2 * steps) * 0.9  # the bound is attained: it is the right one


def test_shape_and_backend_errors():
    theta = torch.ones(3)
    with pytest.raises(ValueError, match="must be"):
        rate_if_multistep(torch.zeros(4, 2, 3), torch.zeros(2, 4), torch.zeros(2, 4), theta)
    with pytest.raises(ValueError, match="unknown backend"):
        rate_if_multistep(torch.zeros(4, 3), torch.zeros(3), torch.zeros(3), theta, backend="cuda")
    with pytest.raises(ValueError, match="dense float32"):
        rate_if_multistep(torch.zeros(4, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                          torch.zeros(3, dtype=torch.float64), theta.double(), backend="cpu")
