"""The stateful neuron modules: step modes, state handling, PLIF's parameter, bad input."""
import pytest
import torch
from torch import nn

from cortexsnn.neurons import FastSigmoid, IFNode, LIFNode, PLIFNode, reset, set_step_mode


@pytest.mark.parametrize("cls", [IFNode, LIFNode, PLIFNode])
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_single_step_equals_multi_step_and_state_carries(cls, v_reset):
    torch.manual_seed(6)
    x = torch.randn(10, 3, 7, dtype=torch.float64) + 0.5
    multi = cls(v_reset=v_reset).to(torch.float64)
    single = cls(v_reset=v_reset, step_mode="s").to(torch.float64)
    spikes_m = torch.cat([multi(x[:4]), multi(x[4:])])  # state carried across the two calls
    spikes_s = torch.stack([single(x_t) for x_t in x])
    assert torch.equal(spikes_m, spikes_s) and spikes_m.sum() > 0
    torch.testing.assert_close(multi.v, single.v)


def test_gradients_single_step_equal_multi_step():
    torch.manual_seed(7)
    x = torch.randn(8, 2, 5, dtype=torch.float64) + 0.5
    grads = []
    for mode in ("m", "s"):
        node = PLIFNode(init_tau=3.0, step_mode=mode).to(torch.float64)
        xi = x.clone().requires_grad_()
        out = node(xi) if mode == "m" else torch.stack([node(x_t) for x_t in xi])
        (out * torch.linspace(0, 1, 5, dtype=torch.float64)).sum().backward()
        grads.append((xi.grad, node.w.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_reset_a_whole_network_and_set_step_mode():
    net = nn.Sequential(nn.Linear(4, 6), LIFNode(), nn.Linear(6, 3), IFNode(v_reset=-0.1))
    x = torch.randn(5, 2, 4) * 3
    first = net(x)
    assert net[1].v.shape == (2, 6) and net[3].v.shape == (2, 3)
    reset(net)
    assert net[1].v.dim() == 0 and float(net[1].v) == 0.0 and float(net[3].v) == pytest.approx(-0.1)
    assert torch.equal(net(x), first)  # after a reset the network forgets the previous sample
    set_step_mode(net, "s")
    reset(net)
    assert torch.equal(torch.stack([net(x_t) for x_t in x]), first)


def test_state_follows_dtype_and_is_not_in_state_dict():
    node = LIFNode().to(torch.float64)
    out = node(torch.randn(3, 2, 4, dtype=torch.float64))
    assert out.dtype == torch.float64 and node.v.dtype == torch.float64
    node.to(torch.float32)
    assert node.v.dtype == torch.float32  # state moves with the module
    assert list(node.state_dict()) == []
    reset(node)
    assert node.v.dtype == torch.float32
    # a float64 state meeting float32 input is cast to the input's dtype
    node.to(torch.float64)
    assert node(torch.randn(3, 2, 4)).dtype == torch.float32


def test_plif_parameter_and_gradient():
    torch.manual_seed(5)
    node = PLIFNode(init_tau=2.0)
    assert node.tau == pytest.approx(2.0)
    assert list(node.state_dict()) == ["w"] and [n for n, _ in node.named_parameters()] == ["w"]
    x = torch.randn(8, 4, 10) + 0.6
    node(x).sum().backward()
    assert node.w.grad is not None and node.w.grad.abs() > 0
    # a finite-difference check of dL/dw on the potential (detach_reset: the exact derivative)
    node = PLIFNode(init_tau=2.5, detach_reset=True).to(torch.float64)
    x = x.double()

    def final_v(w):
        with torch.no_grad():
            node.w.fill_(w)
        reset(node)
        node(x)
        return node.v.sum()

    w0, eps = float(node.w.detach()), 1e-6
    numeric = (final_v(w0 + eps) - final_v(w0 - eps)) / (2 * eps)
    node.w.grad = None
    final_v(w0).backward()
    assert node.w.grad.item() == pytest.approx(numeric.item(), rel=1e-6)


def test_surrogate_by_name_and_repr():
    node = LIFNode(tau=3.0, surrogate="fast_sigmoid", v_reset=None)
    assert node.surrogate == FastSigmoid()
    text = repr(node)
    assert "tau=3.0" in text and "v_reset=None" in text and "FastSigmoid" in text


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_non_finite_input_is_reported(backend):
    x = torch.rand(4, 2, 3)
    x[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        LIFNode(backend=backend)(x)
    x[2, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        IFNode(backend=backend)(x)
    x[2, 1, 0] = -float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        IFNode(v_reset=None, backend=backend)(x)


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"expects \[T, B, ...\]"):
        IFNode()(torch.randn(5))
    node = IFNode()
    node(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="reset"):
        node(torch.randn(2, 5, 4))
    single = LIFNode(step_mode="s")
    single(torch.randn(3, 4))
    with pytest.raises(ValueError, match="reset"):
        single(torch.randn(2, 3, 4))  # a sequence fed to a single-step module
    with pytest.raises(ValueError, match="unknown neuron backend"):
        IFNode(backend="cuda-magic")
    with pytest.raises(ValueError, match="tau"):
        LIFNode(tau=0.5)
    with pytest.raises(ValueError, match="below v_threshold"):
        IFNode(v_threshold=1.0, v_reset=1.5)
    with pytest.raises(ValueError, match="step_mode"):
        IFNode(step_mode="x")
    with pytest.raises(ValueError, match="unknown surrogate"):
        IFNode(surrogate="relu")
    with pytest.raises(TypeError, match="floating-point"):
        IFNode()(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one time step"):
        LIFNode()(torch.ones(0, 2, 3))
