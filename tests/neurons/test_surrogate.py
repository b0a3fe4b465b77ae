import math

import pytest
import torch

from cortexsnn.neurons.surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Triangle, get_surrogate

X = torch.tensor([-1.5, -0.3, 0.0, 0.2, 2.0], dtype=torch.float64)


def _grad(surrogate, x):
    x = x.clone().requires_grad_()
    surrogate(x).sum().backward()
    return x.grad


def test_forward_is_heaviside_with_one_at_zero():
    for s in (ATan(), Sigmoid(), FastSigmoid(), Gaussian(), Triangle()):
        assert s(X).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_hand_derived_values():
    # ATan alpha 2: 1 / (1 + (pi x)^2)
    assert torch.allclose(_grad(ATan(2.0), X), 1 / (1 + (math.pi * X) ** 2))
    # sigmoid alpha 4 at 0: 4 * 0.25 = 1
    assert _grad(Sigmoid(4.0), torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(1.0)
    # fast sigmoid slope 25 at 0.2: 1 / (1 + 5)^2
    assert _grad(FastSigmoid(25.0), torch.tensor([0.2], dtype=torch.float64)).item() == pytest.approx(1 / 36)
    # Gaussian sigma 0.4 at 0: 1 / (sqrt(2 pi) 0.4)
    assert _grad(Gaussian(0.4), torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(
        1 / (math.sqrt(2 * math.pi) * 0.4)
    )
    # triangle alpha 1: 1 - |x| inside, 0 outside
    assert _grad(Triangle(1.0), X).tolist() == pytest.approx([0.0, 0.7, 1.0, 0.8, 0.0])


def test_surrogates_integrate_to_one():
    grid = torch.linspace(-60, 60, 400001, dtype=torch.float64)
    for s in (ATan(2.0), Sigmoid(4.0), Gaussian(0.4), Triangle(2.0)):
        assert torch.trapezoid(s.derivative(grid), grid).item() == pytest.approx(1.0, abs=5e-3)


def test_match_spikingjelly_and_snntorch():
    sj = pytest.importorskip("spikingjelly.activation_based.surrogate")
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    x = torch.randn(200, dtype=torch.float64)
    assert torch.allclose(_grad(ATan(2.0), x), _grad(sj.ATan(alpha=2.0), x))
    assert torch.allclose(_grad(Sigmoid(4.0), x), _grad(sj.Sigmoid(alpha=4.0), x))
    # SpikingJelly's SuperSpike is alpha / (1 + |x|)^2: the same function only at alpha = 1
    assert torch.allclose(_grad(FastSigmoid(1.0), x), _grad(sj.SuperSpike(alpha=1.0), x))
    assert torch.allclose(_grad(FastSigmoid(25.0), x), _grad(snn_surrogate.fast_sigmoid(slope=25), x))


def test_names_and_bad_alpha():
    assert get_surrogate("atan") == ATan(2.0)
    assert get_surrogate("gaussian", 0.3).alpha == 0.3
    with pytest.raises(ValueError, match="unknown surrogate"):
        get_surrogate("relu")
    with pytest.raises(ValueError, match="alpha must be a positive"):
        ATan(-1.0)
