"""IIR synapse filters and the reset-trace neuron (Fang et al., IJCAI 2020) against hand-derived references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from cortexsnn.neurons import DualExpPSP, FirstOrderPSP, ResetTraceNeuron
from cortexsnn.neurons.functional import iir as F
from cortexsnn.neurons.surrogate import Gaussian

METHODS = ("toeplitz", "scan", "loop")
D = torch.float64


def test_dual_exp_coefficients_match_the_spec():
    a1, a2, b = F.dual_exp_coefficients(4.0, 1.0)
    assert a1 == pytest.approx(1.1467, abs=1e-4)
    assert a2 == pytest.approx(-0.2865, abs=1e-4)
    assert b == pytest.approx(0.4109, abs=1e-4)


def test_first_order_coefficient():
    assert F.first_order_coefficient(4.0) == pytest.approx(0.7788, abs=1e-4)


@pytest.mark.parametrize("bad", [(0.0, 1.0), (4.0, -1.0), (2.0, 2.0), (float("nan"), 1.0)])
def test_bad_time_constants_raise(bad):
    with pytest.raises(ValueError):
        F.dual_exp_coefficients(*bad)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tm,ts", [(4.0, 1.0), (8.0, 2.0)])
def test_dual_exp_impulse_response_is_the_difference_of_exponentials(method, tm, ts):
    steps = 40
    x = torch.zeros(steps, 1, 3, dtype=D)
    x[0] = 1.0
    coeffs = [torch.full((3,), c, dtype=D) for c in F.dual_exp_coefficients(tm, ts)]
    p = F.dual_exp_filter(x, *coeffs, method=method)
    n = torch.arange(steps, dtype=D)
    expected = torch.exp(-(n + 1) / tm) - torch.exp(-(n + 1) / ts)
    torch.testing.assert_close(p[:, 0, 0], expected, rtol=0, atol=1e-14)
    # peak 0.471 at n = 1 and DC gain 2.94 for tm 4, ts 1 (spec)
    if tm == 4.0:
        assert int(expected.argmax()) == 1 and float(expected.max()) == pytest.approx(0.471, abs=1e-3)
        a1, a2, b = F.dual_exp_coefficients(tm, ts)
        assert b / (1 - a1 - a2) == pytest.approx(2.94, abs=1e-2)


@pytest.mark.parametrize("method", METHODS)
def test_first_order_impulse_response(method):
    x = torch.zeros(30, 2, 4, dtype=D)
    x[0] = 1.0
    alpha = torch.full((4,), F.first_order_coefficient(4.0), dtype=D)
    p = F.first_order_filter(x, alpha, method=method)
    expected = torch.exp(-torch.arange(30, dtype=D) / 4.0)
    torch.testing.assert_close(p[:, 1, 2], expected, rtol=0, atol=1e-14)


def _random_coeffs(shape, generator):
    a1, a2, b = F.dual_exp_coefficients(4.0, 1.0)
    jitter = lambda: 0.05 * torch.randn(shape, dtype=D, generator=generator)  # noqa: E731
    return a1 + jitter(), a2 + jitter(), b + jitter()


@pytest.mark.parametrize("method", ("toeplitz", "scan"))
@pytest.mark.parametrize("features,cshape", [((5,), (5,)), ((3, 2, 2), (3, 1, 1))])
def test_filters_agree_with_the_plain_loop_and_pass_gradcheck(method, features, cshape):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 2, *features, dtype=D, generator=g)
    a1, a2, b = _random_coeffs(cshape, g)
    ref = F.dual_exp_filter(x, a1, a2, b, method="loop")
    torch.testing.assert_close(F.dual_exp_filter(x, a1, a2, b, method=method), ref, rtol=1e-12, atol=1e-12)
    inputs = tuple(t.clone().requires_grad_() for t in (x, a1, a2, b))
    assert gradcheck(lambda *a: F.dual_exp_filter(*a, method=method), inputs)
    alpha = (0.7 + 0.1 * torch.rand(cshape, dtype=D, generator=g)).requires_grad_()
    ref1 = F.first_order_filter(x, alpha, method="loop")
    torch.testing.assert_close(F.first_order_filter(x, alpha, method=method), ref1, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x_, al: F.first_order_filter(x_, al, method=method), (x.clone().requires_grad_(), alpha))


@pytest.mark.parametrize("method", ("toeplitz", "scan"))
def test_filter_gradients_equal_the_loop(method):
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(25, 4, 6, dtype=D, generator=g) < 0.3).to(D)
    coeffs = [c.requires_grad_() for c in _random_coeffs((6,), g)]
    w = torch.randn(25, 4, 6, dtype=D, generator=g)
    grads = [torch.autograd.grad((F.dual_exp_filter(x, *coeffs, method=m) * w).sum(), coeffs) for m in (method, "loop")]
    for fused, ref in zip(*grads):
        torch.testing.assert_close(fused, ref, rtol=1e-10, atol=1e-12)


def test_coefficient_shape_is_checked():
    x = torch.zeros(3, 2, 4, 5)
    with pytest.raises(ValueError, match="coefficient shape"):
        F.first_order_filter(x, torch.full((5,), 0.5))


def test_stability_guard_keeps_an_unstable_filter_bounded():
    a1, a2, b = torch.tensor([1.5]), torch.tensor([-0.2]), torch.tensor([0.4])  # a pole at ~1.35
    x = torch.zeros(300, 1, 1)
    x[0] = 1.0
    unguarded = F.dual_exp_filter(x, a1, a2, b, method="scan", margin=None)
    guarded = F.dual_exp_filter(x, a1, a2, b, method="scan")
    assert not torch.isfinite(unguarded).all() or unguarded.abs().max() > 1e30  # blows up
    assert guarded.abs().max() < 1e3 and guarded[-1].abs().item() < guarded.abs().max().item()
    ga1, ga2 = F.stable_dual_exp_coefficients(a1, a2)
    assert abs(ga2.item()) < 1 and abs(ga1.item()) < 1 - ga2.item()
    # inside the triangle nothing changes, and the gradient passes unchanged
    a1s = torch.tensor([1.1467], requires_grad=True)
    out, _ = F.stable_dual_exp_coefficients(a1s, torch.tensor([-0.2865]))
    out.sum().backward()
    assert out.item() == a1s.item() and a1s.grad.item() == 1.0


def test_module_projection_puts_parameters_into_the_stable_triangle():
    psp = DualExpPSP(4)
    with torch.no_grad():
        psp.a1.copy_(torch.tensor([2.0, -2.0, 0.5, 1.1467]))
        psp.a2.copy_(torch.tensor([-0.5, 0.3, 1.5, -0.2865]))
    psp.project_()
    a1, a2 = psp.a1.detach(), psp.a2.detach()
    assert (a2.abs() < 1).all() and (a1.abs() < 1 - a2).all()
    assert a1[3].item() == pytest.approx(1.1467, abs=1e-4)
    first = FirstOrderPSP(2)
    with torch.no_grad():
        first.alpha.copy_(torch.tensor([1.3, 0.5]))
    first.project_()
    assert first.alpha[0].item() < 1 and first.alpha[1].item() == 0.5


def _numpy_reset_trace(current: np.ndarray, tau_m: float, membrane: bool) -> np.ndarray:
    """Independent reference of the seed's neuron (spike on v >= 1)."""
    d = math.exp(-1 / tau_m)
    v = np.zeros(current.shape[1:])
    r = np.zeros(current.shape[1:])
    spikes = np.zeros_like(current)
    for t in range(current.shape[0]):
        v = (d * v if membrane else 0.0) + current[t] - r
        spikes[t] = v >= 1.0
        r = d * r + spikes[t]
    return spikes


@pytest.mark.parametrize("membrane", [False, True])
def test_reset_trace_neuron_forward_matches_the_reference(membrane):
    current = torch.randn(40, 3, 7, dtype=D) * 0.8 + 0.6
    spikes, _, _ = F.reset_trace_neuron(current, tau_m=4.0, membrane_filter=membrane)
    np.testing.assert_array_equal(spikes.numpy(), _numpy_reset_trace(current.numpy(), 4.0, membrane))
    assert spikes.sum() > 0


def test_reset_trace_neuron_hand_example():
    # constant current 1.5: spike at t=0, then v = 1.5 - r with r decaying by e^-1/4 until v >= 1 again
    spikes, v, r = F.reset_trace_neuron(torch.full((6, 1, 1), 1.5, dtype=D))
    d = math.exp(-0.25)
    assert spikes.flatten().tolist() == [1, 0, 0, 0, 1, 0]
    assert r.item() == pytest.approx(d**5 + d, rel=1e-12)
    assert v.item() == pytest.approx(1.5 - (d**4 + 1), rel=1e-12)


@pytest.mark.parametrize("membrane", [False, True])
def test_fused_neuron_gradient_equals_the_plain_autograd_loop(membrane):
    g = torch.Generator().manual_seed(3)
    current = (torch.randn(30, 4, 6, dtype=D, generator=g) * 0.7 + 0.6).requires_grad_()
    v0 = torch.randn(4, 6, dtype=D, generator=g).requires_grad_()
    r0 = torch.rand(4, 6, dtype=D, generator=g).requires_grad_()
    w = torch.randn(30, 4, 6, dtype=D, generator=g)
    grads = []
    for fused in (True, False):
        s, v, r = F.reset_trace_neuron(current, membrane_filter=membrane, v0=v0, r0=r0, fused=fused)
        loss = (s * w).sum() + 0.3 * v.sum() + 0.7 * r.sum()
        grads.append(torch.autograd.grad(loss, (current, v0, r0), allow_unused=True))
    for fused, ref in zip(*grads):
        ref = torch.zeros_like(fused) if ref is None else ref
        torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    assert grads[0][0].abs().sum() > 0


def test_neuron_gradient_is_the_gaussian_surrogate_and_flows_through_the_reset_trace():
    current = torch.tensor([[[1.2]], [[0.9]]], dtype=D, requires_grad=True)
    s, _, _ = F.reset_trace_neuron(current, tau_m=4.0)
    grad = torch.autograd.grad(s[1].sum(), current)[0]
    pdf = lambda x: math.exp(-x * x / (2 * 0.16)) / (math.sqrt(2 * math.pi) * 0.4)  # noqa: E731
    v1 = 0.9 - 1.0  # v[1] = I[1] - r[0], r[0] = s[0] = 1
    assert grad[1].item() == pytest.approx(pdf(v1 - 1.0), rel=1e-12)
    # ds1/dI0 = ds1/dv1 * dv1/dr0 * dr0/ds0 * ds0/dv0 = pdf(v1 - 1) * (-1) * 1 * pdf(0.2)
    assert grad[0].item() == pytest.approx(-pdf(v1 - 1.0) * pdf(0.2), rel=1e-12)


def test_single_step_modules_equal_multi_step():
    torch.manual_seed(0)
    x = (torch.rand(12, 3, 5) < 0.4).float()
    for make in (lambda: DualExpPSP(5), lambda: FirstOrderPSP(5)):
        multi = make()
        single = make()
        single.step_mode = "s"
        expected = multi(x)
        got = torch.stack([single(x[t]) for t in range(12)])
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        single.reset()
        assert single.p1 is None if hasattr(single, "p1") else single.p is None
    current = torch.randn(12, 3, 5) + 0.8
    for membrane in (False, True):
        multi, single = ResetTraceNeuron(membrane_filter=membrane), ResetTraceNeuron(membrane_filter=membrane, step_mode="s")
        expected = multi(current)
        got = torch.stack([single(current[t]) for t in range(12)])
        torch.testing.assert_close(got, expected)
    # multi-step in two chunks equals one call (state carried)
    whole, chunks = ResetTraceNeuron(), ResetTraceNeuron()
    torch.testing.assert_close(torch.cat([chunks(current[:5]), chunks(current[5:])]), whole(current))


def test_step_response_is_the_cumulative_impulse_response():
    psp = DualExpPSP(3)
    x = torch.ones(25, 2, 3)
    torch.testing.assert_close(psp(x)[:, 0], psp.step_response(25), rtol=1e-6, atol=1e-6)
    first = FirstOrderPSP(3)
    torch.testing.assert_close(first(x)[:, 1], first.step_response(25), rtol=1e-6, atol=1e-6)


def test_surrogate_default_is_the_seed_gaussian():
    neuron = ResetTraceNeuron()
    assert isinstance(neuron.surrogate, Gaussian) and neuron.surrogate.sigma == 0.4


@pytest.fixture
def compiled():
    from cortexsnn.neurons.functional._iir_cpu import kernels

    module = kernels()
    if module is None:
        pytest.skip("the compiled IIR kernels could not be built here (no C++ compiler?)")
    return module


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("membrane", [False, True])
def test_compiled_neuron_equals_the_pytorch_path(compiled, dtype, membrane):
    g = torch.Generator().manual_seed(4)
    current = (torch.randn(25, 8, 37, generator=g) * 0.8 + 0.6).to(dtype).requires_grad_()
    w = torch.randn(25, 8, 37, generator=g).to(dtype)
    results = []
    for use in (True, False):
        F._USE_KERNELS[0] = use
        try:
            s, v, r = F.reset_trace_neuron(current, membrane_filter=membrane)
            grad = torch.autograd.grad((s * w).sum() + v.sum() + 0.5 * r.sum(), current)[0]
        finally:
            F._USE_KERNELS[0] = True
        results.append((s, v, r, grad))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_filters_equal_the_pytorch_path(compiled, dtype):
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(30, 3, 4, 2, 5, generator=g) < 0.3).to(dtype)
    w = torch.randn(30, 3, 4, 2, 5, generator=g).to(dtype)
    coeffs = [c.to(dtype).requires_grad_() for c in _random_coeffs((4, 1, 1), g)]
    alpha = torch.full((4, 1, 1), 0.8, dtype=dtype, requires_grad=True)
    outs = []
    for use in (True, False):
        F._USE_KERNELS[0] = use
        try:
            y = F.dual_exp_filter(x, *coeffs, method="scan")
            z = F.first_order_filter(x, alpha, method="scan")
            grads = torch.autograd.grad((y * w).sum() + (z * w).sum(), [*coeffs, alpha])
        finally:
            F._USE_KERNELS[0] = True
        outs.append((y, z, *grads))
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
