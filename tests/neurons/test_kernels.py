"""The fused kernels' calling conventions: gradient layouts, unused outputs, backend choice, NaN."""
import pytest
import torch

from cortexsnn.neurons import LIFNode
from cortexsnn.neurons.functional import if_multistep, lif_multistep, lif_step, plif_multistep
from cortexsnn.neurons.kernels import resolve_backend
from cortexsnn.neurons.surrogate import ATan

BACKENDS = ["cpu", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_gradcheck_through_spiking_with_detached_reset(backend, v_reset):
    # with detach_reset the gradient of the final potential is the true derivative (the spikes
    # are piecewise constant), so a numerical gradcheck holds even where neurons fire
    torch.manual_seed(11)
    x = (torch.randn(7, 2, 6, dtype=torch.float64) * 0.8 + 0.6).requires_grad_()
    w = torch.tensor(-0.2, dtype=torch.float64, requires_grad=True)
    v0 = (torch.randn(2, 6, dtype=torch.float64) * 0.1).requires_grad_()
    kw = dict(v_reset=v_reset, detach_reset=True, surrogate=ATan(2.0), backend=backend)
    spikes = plif_multistep(x, w, v0, **kw)[0]
    assert 0 < spikes.sum() < spikes.numel()  # the check covers firing and silent steps
    for decay_input in (True, False):
        assert torch.autograd.gradcheck(lambda a, b, c: plif_multistep(a, b, c, decay_input, **kw)[1], (x, w, v0))
        assert torch.autograd.gradcheck(lambda a, c: lif_multistep(a, c, 3.0, decay_input, **kw)[1], (x, v0))
    assert torch.autograd.gradcheck(lambda a, c: if_multistep(a, c, **kw)[1], (x, v0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_layouts_agree(backend):
    torch.manual_seed(12)
    x = torch.randn(5, 3, 8, dtype=torch.float64) + 0.4

    def grad(loss_of):
        xi = x.clone().requires_grad_()
        s, v = lif_multistep(xi, 0.0, 2.0, backend=backend)
        loss_of(s, v).backward()
        return xi.grad

    ones = torch.ones_like(x)
    # the gradient of a sum arrives expanded (stride 0); a per-step weight broadcasts over neurons
    torch.testing.assert_close(grad(lambda s, v: s.sum()), grad(lambda s, v: (s * ones).sum()))
    w_t = torch.arange(1.0, 6.0, dtype=torch.float64).view(5, 1, 1)
    torch.testing.assert_close(grad(lambda s, v: (s * w_t).sum()), grad(lambda s, v: (s * w_t.expand_as(x).clone()).sum()))
    # a non-contiguous gradient (a transposed upstream) and an unused spike output
    g = torch.randn(5, 8, 3, dtype=torch.float64).transpose(1, 2)
    torch.testing.assert_close(grad(lambda s, v: (s * g).sum()), grad(lambda s, v: (s * g.contiguous()).sum()))
    xl, v = x.clone().requires_grad_(), torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        _, v = lif_step(xl[t], v, 2.0)
    v.sum().backward()
    torch.testing.assert_close(grad(lambda s, v: v.sum()), xl.grad)


def test_cpu_and_torch_backends_agree_in_float32():
    torch.manual_seed(13)
    x = torch.randn(12, 4, 300) + 0.5
    g = torch.randn_like(x)
    out = {}
    for backend in BACKENDS:
        xi = x.clone().requires_grad_()
        s, _ = lif_multistep(xi, 0.0, 2.0, decay_input=False, backend=backend)
        (s * g).sum().backward()
        out[backend] = (s, xi.grad)
    assert torch.equal(out["cpu"][0], out["torch"][0])
    torch.testing.assert_close(out["cpu"][1], out["torch"][1], rtol=1e-5, atol=1e-6)


def test_backend_selection(monkeypatch):
    assert resolve_backend(None, "cpu") == "cpu"
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend(None, "cuda") == "torch"
    monkeypatch.setenv("CORTEXSNN_NEURON_BACKEND", "torch")
    assert resolve_backend(None, "cpu") == "torch"
    monkeypatch.setenv("CORTEXSNN_NEURON_BACKEND", "fpga")
    with pytest.raises(ValueError, match="unknown neuron backend"):
        resolve_backend(None, "cpu")
    with pytest.raises(ValueError, match="needs CPU tensors"):
        resolve_backend("cpu", "cuda")


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_input_is_reported(backend):
    x = torch.rand(4, 2, 3)
    x[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        LIFNode(backend=backend)(x)
    x[2, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        LIFNode(backend=backend)(x)


def test_inference_keeps_no_history():
    x = torch.randn(6, 2, 5, requires_grad=True)
    with torch.no_grad():
        s, _ = lif_multistep(x, 0.0, 2.0)
    assert s.grad_fn is None
    s, _ = lif_multistep(x.detach(), 0.0, 2.0)
    assert s.grad_fn is None
