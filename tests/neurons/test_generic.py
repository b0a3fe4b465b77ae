"""Neurons given by their charge, fire and reset functions: against the package's LIF, against a
hand-written loop, compiled against uncompiled, and the checks at the boundary."""
import logging
import math

import pytest
import torch

import cortexsnn.neurons.functional.generic as generic
from cortexsnn.errors import CortexSNNError, InvalidArgumentError
from cortexsnn.neurons import ATan, GenericNeuron, LIFNode, NeuronDefinitionError, Sigmoid, reset
from cortexsnn.neurons.functional import lif_multistep, neuron_multistep, neuron_step

TAU, V_TH = 3.0, 0.8


def lif_charge(x, s):
    return {"v": s["v"] + (x - (s["v"] - 0.0)) / TAU}  # LIFNode's decay_input charge, v_reset = 0


def lif_fire(s):
    return s["v"] - V_TH


def lif_hard_reset(s, spike):
    return {"v": s["v"] * (1.0 - spike) + 0.0 * spike}


def lif_soft_reset(s, spike):
    return {"v": s["v"] - V_TH * spike}


# the adaptive-threshold LIF (Bellec et al., NeurIPS 2018): the threshold rises by BETA after each
# spike and decays back with time constant TAU_A
BETA, TAU_A = 0.6, 5.0
RHO = math.exp(-1.0 / TAU_A)


def alif_charge(x, s):
    return {"v": s["v"] + (x - s["v"]) / TAU, "a": s["a"] * RHO}


def alif_fire(s):
    return s["v"] - (V_TH + BETA * s["a"])


def alif_reset(s, spike):
    return {"v": s["v"] * (1.0 - spike), "a": s["a"] + spike}


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("detach", [False, True])
def test_generic_lif_equals_the_package_lif(soft, detach):
    torch.manual_seed(21)
    x = (torch.randn(12, 3, 17, dtype=torch.float64) + 0.6).requires_grad_()
    v0 = (torch.rand(3, 17, dtype=torch.float64) * 0.3).requires_grad_()
    g = torch.randn_like(x)
    sur = Sigmoid(4.0)
    spikes, state = neuron_multistep(x, {"v": v0}, lif_charge, lif_fire, lif_soft_reset if soft else lif_hard_reset,
                                     surrogate=sur, detach_reset=detach)
    want_spikes, want_v = lif_multistep(x, v0, TAU, True, V_TH, None if soft else 0.0, sur, detach, backend="torch")
    assert torch.equal(spikes, want_spikes) and 0 < spikes.mean() < 1
    torch.testing.assert_close(state["v"], want_v, rtol=0, atol=1e-12)
    got = torch.autograd.grad((spikes * g).sum() + state["v"].sum(), (x, v0))
    want = torch.autograd.grad((want_spikes * g).sum() + want_v.sum(), (x, v0))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        assert a.abs().sum() > 0


def test_generic_module_equals_lifnode_and_carries_state():
    torch.manual_seed(22)
    x = torch.randn(2, 6, 4, 9) + 0.7
    generic_lif = GenericNeuron(lif_charge, lif_fire, lif_hard_reset, {"v": 0.0})
    lif = LIFNode(tau=TAU, v_threshold=V_TH, backend="torch")
    for chunk in x:  # two calls: the potential carries over
        assert torch.equal(generic_lif(chunk), lif(chunk))
        assert torch.equal(generic_lif.v, lif.v)
    reset(generic_lif)
    assert generic_lif.v.dim() == 0 and float(generic_lif.v) == 0.0
    single = GenericNeuron(lif_charge, lif_fire, lif_hard_reset, {"v": 0.0}, step_mode="s")
    reset(lif)
    assert torch.equal(torch.stack([single(x_t) for x_t in x[0]]), lif(x[0]))


def _atan_spike(u, alpha=2.0):
    """Heaviside with the ATan surrogate, written out here (Fang et al., 2021)."""

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad * alpha / 2 / (1 + (math.pi / 2 * alpha * u) ** 2)

    return Spike.apply(u)


def _alif_by_hand(x, v, a):
    spikes = []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) / TAU
        a = a * RHO
        s = _atan_spike(v - (V_TH + BETA * a))
        v = v * (1.0 - s)
        a = a + s
        spikes.append(s)
    return torch.stack(spikes), v, a


def test_adaptive_threshold_lif_against_a_hand_written_loop():
    torch.manual_seed(23)
    x = (torch.rand(30, 2, 11, dtype=torch.float64) * 2.0).requires_grad_()
    a0 = torch.rand(2, 11, dtype=torch.float64).requires_grad_()
    g = torch.randn_like(x)
    spikes, state = neuron_multistep(x, {"v": 0.0, "a": a0}, alif_charge, alif_fire, alif_reset, surrogate=ATan(2.0))
    want_spikes, want_v, want_a = _alif_by_hand(x, torch.zeros(2, 11, dtype=torch.float64), a0)
    assert torch.equal(spikes, want_spikes)
    assert torch.equal(state["v"], want_v) and torch.equal(state["a"], want_a)
    # adaptation: a constant input makes fewer spikes late than early
    constant, _ = neuron_multistep(torch.full((30, 1), 1.5), {"v": 0.0, "a": 0.0}, alif_charge, alif_fire, alif_reset)
    assert constant[:10].sum() > constant[-10:].sum() > 0
    got = torch.autograd.grad((spikes * g).sum() + state["a"].sum(), (x, a0))
    want = torch.autograd.grad((want_spikes * g).sum() + want_a.sum(), (x, a0))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _compiled_equals_plain(backend, exact):
    torch.manual_seed(24)
    x = (torch.rand(10, 3, 8, dtype=torch.float64) * 2.0).requires_grad_()
    g = torch.randn_like(x)
    out = []
    for compile in (False, backend):
        spikes, state = neuron_multistep(x, {"v": 0.0, "a": 0.0}, alif_charge, alif_fire, alif_reset, compile=compile)
        out.append([spikes, state["v"], state["a"], *torch.autograd.grad((spikes * g).sum() + state["v"].sum(), x)])
    assert generic._compile_failure is None
    assert out[0][0].sum() > 0
    for a, b in zip(*out):
        if exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_compiled_loop_equals_plain_loop():
    # aot_eager: dynamo and AOTAutograd trace the loop (and its surrogate) into one graph, run as is
    _compiled_equals_plain("aot_eager", exact=True)


@pytest.mark.slow
def test_compiled_loop_with_inductor_equals_plain_loop():
    _compiled_equals_plain("inductor", exact=False)


def test_compile_failure_falls_back_once_with_a_warning(monkeypatch, caplog):
    def no_compiler(backend):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return run

    monkeypatch.setattr(generic, "_compiled_loop", no_compiler)
    monkeypatch.setattr(generic, "_compile_failure", None)
    x = torch.rand(6, 2, 5) * 2
    want, _ = neuron_multistep(x, {"v": 0.0, "a": 0.0}, alif_charge, alif_fire, alif_reset)
    with caplog.at_level(logging.WARNING, logger="cortexsnn"):
        for _ in range(2):
            got, _ = neuron_multistep(x, {"v": 0.0, "a": 0.0}, alif_charge, alif_fire, alif_reset, compile=True)
            assert torch.equal(got, want)
    warnings = [r for r in caplog.records if "torch.compile is unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no working C++ compiler" in warnings[0].getMessage()


def test_a_mistake_in_the_functions_is_not_taken_for_a_missing_compiler(monkeypatch):
    monkeypatch.setattr(generic, "_compile_failure", None)

    def charge_with_a_typo(x, s):
        return {"v": s["voltage"] + x}

    with pytest.raises(KeyError, match="voltage"):
        neuron_multistep(torch.rand(3, 2, 4), {"v": 0.0}, charge_with_a_typo, lif_fire, lif_hard_reset,
                         compile="aot_eager")
    assert generic._compile_failure is None


@pytest.mark.parametrize("compile", [False, "aot_eager"])
def test_bad_functions_get_one_clear_message(compile):
    x = torch.rand(4, 2, 3)
    run = lambda c, f, r: neuron_multistep(x, {"v": 0.0}, c, f, r, compile=compile)  # noqa: E731
    cases = [
        (lambda x, s: {"v": (s["v"] + x).double()}, lif_fire, lif_hard_reset, r"charge returned .*'v' with dtype "
                                                                                r"torch.float64"),
        (lambda x, s: {"v": (s["v"] + x).sum(0)}, lif_fire, lif_hard_reset, r"charge returned .*'v' with shape \(3,\)"),
        (lif_charge, lif_fire, lambda s, spike: {"v": s["v"][:1]}, r"reset returned .*'v' with shape \(1, 3\)"),
        (lif_charge, lambda s: s["v"].mean(), lif_hard_reset, r"fire returned the firing margin with shape \(\)"),
        (lif_charge, lif_fire, lambda s, spike: {"w": spike}, r"reset returned \['w'\], which are not state variables"),
        (lambda x, s: s["v"] + x, lif_fire, lif_hard_reset, r"charge returned a Tensor; it must return a dict"),
    ]
    for charge, fire, reset_fn, message in cases:
        with pytest.raises(NeuronDefinitionError, match=message) as info:
            run(charge, fire, reset_fn)
        assert isinstance(info.value, CortexSNNError)


def test_bad_state_and_input():
    x = torch.rand(4, 2, 3)
    with pytest.raises(InvalidArgumentError, match="does not broadcast"):
        neuron_multistep(x, {"v": torch.zeros(5)}, lif_charge, lif_fire, lif_hard_reset)
    with pytest.raises(InvalidArgumentError, match="non-empty dict"):
        neuron_multistep(x, {}, lif_charge, lif_fire, lif_hard_reset)
    with pytest.raises(CortexSNNError, match="time-major"):
        neuron_multistep(x[0, 0], {"v": 0.0}, lif_charge, lif_fire, lif_hard_reset)
    with pytest.raises(CortexSNNError, match="floating-point"):
        neuron_step(torch.ones(2, 3, dtype=torch.int64), {"v": 0.0}, lif_charge, lif_fire, lif_hard_reset)
    with pytest.raises(InvalidArgumentError, match="must be an identifier"):
        GenericNeuron(lif_charge, lif_fire, lif_hard_reset, {"training": 0.0})
    with pytest.raises(InvalidArgumentError, match="finite number"):
        GenericNeuron(lif_charge, lif_fire, lif_hard_reset, {"v": float("nan")})
    neuron = GenericNeuron(lif_charge, lif_fire, lif_hard_reset, {"v": 0.0})
    neuron(x)
    with pytest.raises(InvalidArgumentError, match="call cortexsnn.neurons.reset"):
        neuron(torch.rand(4, 5, 3))
