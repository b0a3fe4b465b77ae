"""IF / LIF / PLIF dynamics: hand-derived sequences and parity with SpikingJelly and snnTorch."""
import pytest
import torch

from cortexsnn.neurons import IFNode, LIFNode, PLIFNode
from cortexsnn.neurons.functional import if_multistep, if_step, lif_multistep, lif_step, plif_init_w
from cortexsnn.neurons.surrogate import ATan, FastSigmoid

BACKENDS = ["cpu", "torch"]
TOL = {torch.float64: 1e-6, torch.float32: 1e-5}


def _spikes_and_grad(fn, x, g):
    x = x.detach().clone().requires_grad_()
    s = fn(x)
    (s * g).sum().backward()
    return s.detach(), x.grad


# ------------------------------------------------------------------------------------------------
# hand-derived sequences
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_if_hard_and_soft_reset_by_hand(backend):
    x = torch.tensor([0.6, 0.6, 0.6, 0.6, 0.3], dtype=torch.float64).view(5, 1)
    # hard: H = 0.6, 1.2 (fire, V = 0), 0.6, 1.2 (fire), 0.3
    spikes, v = if_multistep(x, backend=backend)
    assert spikes.flatten().tolist() == [0, 1, 0, 1, 0]
    assert v.item() == pytest.approx(0.3)
    # soft: H = 0.6, 1.2 (fire, V = 0.2), 0.8, 1.4 (fire, V = 0.4), 0.7
    spikes, v = if_multistep(x, v_reset=None, backend=backend)
    assert spikes.flatten().tolist() == [0, 1, 0, 1, 0]
    assert v.item() == pytest.approx(0.7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_by_hand_both_charge_rules(backend):
    x = torch.full((4, 1), 1.5, dtype=torch.float64)
    # decay_input: H = V + (X - V) / 2: 0.75, 1.125 (fire, V = 0), 0.75, 1.125 (fire)
    spikes, v = lif_multistep(x, tau=2.0, decay_input=True, backend=backend)
    assert spikes.flatten().tolist() == [0, 1, 0, 1]
    # not decay_input: H = V / 2 + X: 1.5 (fire) every step
    spikes, _ = lif_multistep(x, tau=2.0, decay_input=False, backend=backend)
    assert spikes.flatten().tolist() == [1, 1, 1, 1]
    # threshold reached exactly fires (Heaviside(0) = 1): V / 2 + 0.5 with v_threshold 0.5
    spikes, _ = lif_multistep(torch.full((2, 1), 0.5), tau=2.0, decay_input=False, v_threshold=0.5, backend=backend)
    assert spikes.flatten().tolist() == [1, 1]
    # leak towards a negative v_reset: H = V + (0 - (V - vr)) / 4 from V = 0, vr = -1: -0.25
    _, v = lif_multistep(torch.zeros(1, 1), v_init=0.0, tau=4.0, v_reset=-1.0, backend=backend)
    assert v.item() == pytest.approx(-0.25)


def test_single_step_functions_by_hand():
    s, v = if_step(torch.tensor([0.7]), torch.tensor([0.5]))
    assert s.item() == 1 and v.item() == 0.0
    s, v = lif_step(torch.tensor([0.4]), torch.tensor([0.2]), tau=2.0, v_reset=None)
    assert s.item() == 0 and v.item() == pytest.approx(0.2 + (0.4 - 0.2) / 2)


def test_plif_init_w():
    assert torch.sigmoid(torch.tensor(plif_init_w(3.0))).item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="init_tau must be > 1"):
        plif_init_w(1.0)


# ------------------------------------------------------------------------------------------------
# the reference libraries
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["if", "lif-decay-input", "lif"])
@pytest.mark.parametrize("detach", [True, False])
def test_parity_with_spikingjelly(dtype, backend, kind, detach):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    torch.manual_seed(1)
    x = torch.randn(12, 3, 257, dtype=dtype) * 1.2 + 0.4
    g = torch.randn_like(x)
    common = dict(detach_reset=detach, step_mode="m", surrogate_function=sj_surrogate.ATan(alpha=2.0))
    if kind == "if":
        ref = sj_neuron.IFNode(**common)
        ours = IFNode(detach_reset=detach, backend=backend)
    else:
        decay_input = kind == "lif-decay-input"
        ref = sj_neuron.LIFNode(tau=2.0, decay_input=decay_input, **common)
        ours = LIFNode(tau=2.0, decay_input=decay_input, detach_reset=detach, backend=backend)
    s_ref, g_ref = _spikes_and_grad(ref, x, g)
    s_ours, g_ours = _spikes_and_grad(ours.to(dtype), x, g)
    assert s_ours.dtype == dtype
    assert torch.equal(s_ours, s_ref)
    assert s_ours.sum() > 0 and (s_ours == 0).sum() > 0
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(ours.v, ref.v, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decay_input", [True, False])
def test_bit_identical_to_spikingjelly_in_float32(backend, decay_input):
    # same operations in the same order (division by tau for LIF, multiplication by sigmoid(w)
    # for PLIF), so the potentials agree to the last bit, not merely to a tolerance
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    torch.manual_seed(10)
    x = torch.randn(32, 4, 500) * 1.5 + 0.5
    pairs = [
        (sj_neuron.LIFNode(tau=1.7, decay_input=decay_input, v_reset=None, step_mode="m"),
         LIFNode(tau=1.7, decay_input=decay_input, v_reset=None, backend=backend)),
        (sj_neuron.LIFNode(tau=7.3, decay_input=decay_input, v_reset=-0.3, step_mode="m"),
         LIFNode(tau=7.3, decay_input=decay_input, v_reset=-0.3, backend=backend)),
        (sj_neuron.ParametricLIFNode(init_tau=3.0, decay_input=decay_input, step_mode="m"),
         PLIFNode(init_tau=3.0, decay_input=decay_input, backend=backend)),
    ]
    for ref, ours in pairs:
        assert torch.equal(ours(x), ref(x))
        assert torch.equal(ours.v, ref.v)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_soft_and_hard_reset_parity_with_spikingjelly(backend, v_reset):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    torch.manual_seed(11)
    x = torch.randn(10, 4, 31, dtype=torch.float64) + 0.6
    g = torch.randn_like(x)
    ref = sj_neuron.LIFNode(tau=3.0, v_threshold=0.7, v_reset=v_reset, step_mode="m",
                            surrogate_function=sj_surrogate.Sigmoid(alpha=4.0))
    ours = LIFNode(tau=3.0, v_threshold=0.7, v_reset=v_reset, surrogate="sigmoid", backend=backend)
    s_ref, g_ref = _spikes_and_grad(ref, x, g)
    s_ours, g_ours = _spikes_and_grad(ours, x, g)
    assert torch.equal(s_ours, s_ref)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decay_input", [True, False])
def test_plif_parity_with_spikingjelly(backend, decay_input):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
    torch.manual_seed(12)
    x = torch.randn(16, 2, 45, dtype=torch.float64) + 0.5
    g = torch.randn_like(x)
    ref = sj_neuron.ParametricLIFNode(init_tau=3.0, decay_input=decay_input, step_mode="m", detach_reset=True,
                                      surrogate_function=sj_surrogate.ATan(alpha=2.0)).to(torch.float64)
    ours = PLIFNode(init_tau=3.0, decay_input=decay_input, detach_reset=True, backend=backend).to(torch.float64)
    torch.testing.assert_close(ours.w, ref.w)
    s_ref, g_ref = _spikes_and_grad(ref, x, g)
    s_ours, g_ours = _spikes_and_grad(ours, x, g)
    assert torch.equal(s_ours, s_ref)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.w.grad, ref.w.grad, rtol=1e-6, atol=1e-8)
    assert ours.w.grad.abs() > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_with_snntorch_leaky(backend):
    snn = pytest.importorskip("snntorch")
    surrogate = pytest.importorskip("snntorch.surrogate")
    torch.manual_seed(2)
    x = torch.randn(20, 4, 64, dtype=torch.float64) + 0.5
    g = torch.randn_like(x)
    # snnTorch: mem = beta mem + x, reset to zero, always detached; equals LIF without decay_input,
    # tau = 1 / (1 - beta), v_reset 0, detach_reset. Its fast sigmoid with slope k = our FastSigmoid(k).
    leaky = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero", spike_grad=surrogate.fast_sigmoid(slope=5))

    def run_snntorch(inp):
        mem, out = leaky.reset_mem(), []
        for step in inp:
            spk, mem = leaky(step, mem)
            out.append(spk)
        return torch.stack(out)

    ours = LIFNode(tau=2.0, decay_input=False, detach_reset=True, surrogate=FastSigmoid(5.0), backend=backend)
    s_ref, g_ref = _spikes_and_grad(run_snntorch, x, g)
    s_ours, g_ours = _spikes_and_grad(ours, x, g)
    # snnTorch fires on mem > threshold, we on >=: equal for continuous random input
    assert torch.equal(s_ours, s_ref)
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)


def test_if_soft_reset_parity_with_snntorch_subtract():
    snn = pytest.importorskip("snntorch")
    surrogate = pytest.importorskip("snntorch.surrogate")
    torch.manual_seed(3)
    x = torch.randn(15, 3, 40, dtype=torch.float64) * 0.8 + 0.3
    g = torch.randn_like(x)
    # snnTorch "subtract": mem[t] = beta mem[t-1] + x[t] - thr S[t-1], i.e. the threshold is taken
    # off after the leak, where SpikingJelly (and we) take it off before: the two agree for
    # beta = 1, the IF neuron with a soft reset (snnTorch's reset is detached).
    leaky = snn.Leaky(beta=1.0, threshold=1.0, reset_mechanism="subtract", spike_grad=surrogate.atan(alpha=2.0))

    def run_snntorch(inp):
        mem, out = leaky.reset_mem(), []
        for step in inp:
            spk, mem = leaky(step, mem)
            out.append(spk)
        return torch.stack(out)

    ours = IFNode(v_reset=None, detach_reset=True, surrogate=ATan(2.0))
    s_ref, g_ref = _spikes_and_grad(run_snntorch, x, g)
    s_ours, g_ours = _spikes_and_grad(ours, x, g)
    assert torch.equal(s_ours, s_ref) and s_ours.sum() > 0
    torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-6)
