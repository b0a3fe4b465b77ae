"""Every surrogate x every multi-step neuron x every backend gives the gradient of the plain loop.

The reference is independent of the package's neuron code: a Python time loop written here (charge,
fire, reset), whose spike is an autograd function of this file that calls the surrogate's own
``derivative``; ``torch.autograd`` differentiates it. The surrogates are the five built-in ones and
two user-defined ones: a new class, and a subclass of ``ATan`` that overrides ``derivative`` (it
inherits ATan's ``kind_id``, which must not send it to ATan's compiled formula). A user-defined
surrogate runs on the ``torch`` backend (``auto`` picks it; an explicit compiled backend is refused).

The Triton cases run in Triton's CPU interpreter, in a subprocess (``TRITON_INTERPRET`` must be set
before Triton is imported): :func:`test_triton_backend_in_the_interpreter` reruns this file's
``triton`` cases there.
"""
from __future__ import annotations

import ctypes
import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cortexsnn.neurons.functional import if_multistep, lif_multistep, plif_multistep, reset_trace_neuron
from cortexsnn.neurons.functional import iir as iir_functional
from cortexsnn.neurons.kernels import UnsupportedSurrogateError, cpu_kernel, resolve_backend
from cortexsnn.neurons.surrogate import (
    ATan, FastSigmoid, Gaussian, Sigmoid, Surrogate, SurrogateError, Triangle, kernel_kind,
)

D = torch.float64
STEPS, BATCH, NEURONS = 5, 3, 40
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class Laplace(Surrogate):
    """A user-defined surrogate: the Laplace density ``alpha / 2 exp(-alpha |x|)`` (area 1)."""

    alpha: float = 2.0

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.alpha * torch.exp(-self.alpha * x.abs())


@dataclass(frozen=True)
class SteepATan(ATan):
    """A user subclass of a built-in surrogate that changes its derivative (keeps ATan's kind_id)."""

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * super().derivative(x)


BUILT_IN = [ATan(2.0), Sigmoid(4.0), FastSigmoid(3.0), Gaussian(0.4), Triangle(1.0)]
USER_DEFINED = [Laplace(2.0), SteepATan(2.0)]
SURROGATES = BUILT_IN + USER_DEFINED
NEURONS_MODELS = ["if", "lif-decay-input", "lif", "plif"]
BACKENDS = ["cpu", "torch", "triton"]


class _ReferenceSpike(torch.autograd.Function):
    """Heaviside forward; backward: the surrogate's own derivative, nothing of the package in between."""

    @staticmethod
    def forward(ctx, u, surrogate):  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(u), None


def _reference(model, x, v0, w, surrogate, v_reset, tau=3.0, v_th=1.0):
    """The plain loop: ``(spikes, v_last)``, differentiable by autograd."""
    hard = v_reset is not None
    vr = v_reset if hard else 0.0
    v, spikes = v0, []
    for t in range(x.shape[0]):
        if model == "if":
            h = v + x[t]
        elif model == "lif-decay-input":
            h = v + (x[t] - (v - vr)) / tau
        elif model == "lif":
            h = v - (v - vr) / tau + x[t]
        else:  # plif, input decayed, 1 / tau = sigmoid(w)
            h = v + (x[t] - (v - vr)) * torch.sigmoid(w)
        s = _ReferenceSpike.apply(h - v_th, surrogate)
        v = h * (1.0 - s) + v_reset * s if hard else h - v_th * s
        spikes.append(s)
    return torch.stack(spikes), v


def _fused(model, backend, x, v0, w, surrogate, v_reset):
    kw = dict(v_reset=v_reset, surrogate=surrogate, backend=backend)
    if model == "if":
        return if_multistep(x, v0, **kw)
    if model == "plif":
        return plif_multistep(x, w, v0, True, **kw)
    return lif_multistep(x, v0, 3.0, model == "lif-decay-input", **kw)


def _inputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.randn(STEPS, BATCH, NEURONS, dtype=D, generator=generator) * 0.8 + 0.5).requires_grad_()
    v0 = (torch.rand(BATCH, NEURONS, dtype=D, generator=generator) * 0.3).requires_grad_()
    w = torch.tensor(-0.4, dtype=D, requires_grad=True)
    g_spikes = torch.randn(STEPS, BATCH, NEURONS, dtype=D, generator=generator)
    g_v = torch.randn(BATCH, NEURONS, dtype=D, generator=generator)
    return x, v0, w, g_spikes, g_v


def _outputs_and_grads(run, x, v0, w, g_spikes, g_v, model):
    s, v = run(x, v0, w)
    wanted = (x, v0, w) if model == "plif" else (x, v0)
    grads = torch.autograd.grad((s * g_spikes).sum() + (v * g_v).sum(), wanted)
    return s.detach(), v.detach(), grads


def _skip_unless_backend_here(backend):
    if backend == "triton" and not INTERPRETED:
        pytest.skip("run in Triton's interpreter by test_triton_backend_in_the_interpreter")
    if backend == "cpu" and cpu_kernel() is None:
        pytest.fail("the CPU kernel must build where a C compiler exists")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", NEURONS_MODELS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
def test_gradient_equals_the_plain_loop(backend, model, surrogate, v_reset):
    _skip_unless_backend_here(backend)
    x, v0, w, g_spikes, g_v = _inputs()
    if kernel_kind(surrogate) is None and backend != "torch":
        # a compiled backend cannot run a user-defined derivative: refused, naming the one that can
        with pytest.raises(UnsupportedSurrogateError, match="backend='torch'"):
            _fused(model, backend, x, v0, w, surrogate, v_reset)
        backend = "auto"  # which must pick the torch backend and be right
    expected = _outputs_and_grads(lambda *a: _reference(model, *a, surrogate, v_reset), x, v0, w, g_spikes, g_v,
                                  model)
    got = _outputs_and_grads(lambda *a: _fused(model, backend, *a, surrogate, v_reset), x, v0, w, g_spikes, g_v,
                             model)
    assert expected[0].sum() > 0 and (expected[0] == 0).any()  # some neurons fire, some do not
    assert torch.equal(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=1e-12)
    for grad, reference in zip(got[2], expected[2]):
        torch.testing.assert_close(grad, reference, rtol=1e-10, atol=1e-12)


def test_user_defined_surrogates_are_not_the_kernels_formulas():
    """The user-defined surrogates above differ from every compiled formula, so the equality tests
    would catch a substitute (the bug this file guards against gave triangle's gradient)."""
    u = torch.linspace(-2, 2, 101, dtype=D)
    for user in USER_DEFINED:
        assert kernel_kind(user) is None
        for built_in in BUILT_IN:
            assert not torch.allclose(user.derivative(u), type(built_in)(user.alpha).derivative(u))
    assert [kernel_kind(s) for s in BUILT_IN] == [0, 1, 2, 3, 4]

    @dataclass(frozen=True)
    class PlainATan(ATan):  # a subclass that keeps ATan's derivative keeps its compiled formula
        pass

    assert kernel_kind(PlainATan(2.0)) == 0


def test_auto_reports_the_torch_backend_once(caplog):
    import cortexsnn.neurons.kernels as kernels

    @dataclass(frozen=True)
    class OnceSurrogate(Laplace):
        pass

    kernels._noted_surrogates.discard(OnceSurrogate)
    with caplog.at_level(logging.WARNING, logger="cortexsnn.neurons.kernels"):
        assert resolve_backend("auto", "cpu", OnceSurrogate()) == "torch"
        assert resolve_backend(None, "cpu", OnceSurrogate()) == "torch"
    notes = [r for r in caplog.records if "OnceSurrogate" in r.getMessage()]
    assert len(notes) == 1 and "'torch' backend" in notes[0].getMessage()


def test_explicit_compiled_backend_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("CORTEXSNN_NEURON_BACKEND", "cpu")
    with pytest.raises(UnsupportedSurrogateError, match="only the built-in surrogates"):
        lif_multistep(torch.randn(3, 2, 4), surrogate=Laplace())
    assert resolve_backend("torch", "cpu", Laplace()) == "torch"


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "loop"])
def test_reset_trace_neuron_equals_the_plain_loop(surrogate, compiled, monkeypatch):
    """The reset-trace neuron (Fang et al., IJCAI 2020): its compiled CPU kernel computes Gaussian's
    derivative only; every other surrogate (SteepGaussian below included) must take the loop."""
    monkeypatch.setattr(iir_functional, "_USE_KERNELS", [compiled])
    x, v0, _, g_spikes, g_v = _inputs(1)
    decay = membrane = math.exp(-1.0 / 4.0)  # tau_m = 4, membrane filter on

    def reference(x, v0):
        v, r, spikes = v0, torch.zeros_like(v0), []
        for t in range(x.shape[0]):
            v = x[t] - r + membrane * v
            s = _ReferenceSpike.apply(v - 1.0, surrogate)
            r = decay * r + s
            spikes.append(s)
        return torch.stack(spikes), v

    def fused(x, v0):
        s, v, _ = reset_trace_neuron(x, tau_m=4.0, threshold=1.0, membrane_filter=True, surrogate=surrogate, v0=v0)
        return s, v

    expected = _outputs_and_grads(lambda x, v0, w: reference(x, v0), x, v0, None, g_spikes, g_v, "iir")
    got = _outputs_and_grads(lambda x, v0, w: fused(x, v0), x, v0, None, g_spikes, g_v, "iir")
    assert torch.equal(got[0], expected[0]) and expected[0].sum() > 0
    for grad, reference_grad in zip(got[2], expected[2]):
        torch.testing.assert_close(grad, reference_grad, rtol=1e-10, atol=1e-12)


def test_reset_trace_kernel_refuses_a_gaussian_with_its_own_derivative(monkeypatch):
    @dataclass(frozen=True)
    class SteepGaussian(Gaussian):
        def derivative(self, x):
            return 2.0 * super().derivative(x)

    monkeypatch.setattr(iir_functional, "_USE_KERNELS", [True])
    x = (torch.randn(4, 2, 30, dtype=D) + 0.6).requires_grad_()
    g = torch.randn_like(x)

    def grad_of(surrogate, fused):
        s, _, _ = reset_trace_neuron(x, tau_m=2.0, threshold=1.0, surrogate=surrogate, fused=fused)
        return torch.autograd.grad((s * g).sum(), x)[0]

    steep = grad_of(SteepGaussian(0.4), fused=True)
    torch.testing.assert_close(steep, grad_of(SteepGaussian(0.4), fused=False), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(steep, grad_of(Gaussian(0.4), fused=True))  # not Gaussian's kernel


# ------------------------------------------------------------------------------ the kernels themselves
def _call_cpu_backward(kind, mode=1, dtype=torch.float64):
    """The compiled backward with a raw surrogate kind: ``(status, grad_x, grad_d)``."""
    lib = cpu_kernel()
    suffix = "f64" if dtype == torch.float64 else "f32"
    steps, n = 3, 20
    x = torch.randn(steps, n, dtype=dtype)
    v0 = torch.zeros(n, dtype=dtype)
    grad_s = torch.randn(steps, n, dtype=dtype)
    grad_x = torch.full((steps, n), 7.0, dtype=dtype)  # a sentinel: refused means nothing written
    grad_v = torch.empty(n, dtype=dtype)
    workspace = torch.empty(steps * 512, dtype=dtype)
    grad_d = ctypes.c_double(-1.0)
    p = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    status = getattr(lib, f"lif_backward_{suffix}")(
        p(grad_s), n, 0, None, p(x), p(v0), 0, p(workspace), 512, p(grad_x), None, p(grad_v), steps, n, mode, 1,
        2.0, 1.0, 0.0, 1, 0, kind, 1.0, 0, 1, ctypes.byref(grad_d),
    )
    return status, grad_x, grad_d.value


@pytest.mark.parametrize("kind", [-1, 5, 99])
def test_cpu_kernel_refuses_an_unknown_surrogate_kind(kind):
    for dtype in (torch.float32, torch.float64):
        status, grad_x, _ = _call_cpu_backward(kind, dtype=dtype)
        assert status == -1
        assert torch.all(grad_x == 7.0)  # nothing computed, no stand-in formula
    status, grad_x, _ = _call_cpu_backward(4)  # the last known kind still runs
    assert status == 0 and not torch.all(grad_x == 7.0)


def test_cpu_kernel_refuses_an_unknown_mode():
    assert _call_cpu_backward(0, mode=3)[0] == -1
    lib = cpu_kernel()
    x = torch.randn(2, 8, dtype=D)
    out = torch.empty_like(x)
    v = torch.zeros(8, dtype=D)
    v_last = torch.empty(8, dtype=D)
    p = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    assert lib.lif_forward_f64(p(x), p(out), None, p(v), 0, p(v_last), 2, 8, 3, 1, 2.0, 1.0, 0.0, 1, 1) == -1


def test_pooled_kernel_refuses_user_defined_surrogates():
    from cortexsnn.models.layers import SeqMaxPool2d, fire_and_pool
    from cortexsnn.neurons import IFNode
    from cortexsnn.neurons.functional.pooled import neuron_maxpool_static

    x = torch.randn(2, 3, 6, 6, dtype=D)
    with pytest.raises(UnsupportedSurrogateError):
        neuron_maxpool_static(x, 4, surrogate=Laplace())
    # the fused stem falls back to the unfused modules, which run the user's derivative on torch
    xs = x.unsqueeze(0).expand(4, *x.shape).requires_grad_()
    pool = SeqMaxPool2d(3, 2, 1)
    out = fire_and_pool(IFNode(surrogate=SteepATan()), pool, xs)
    reference, _ = _reference("if", xs, torch.zeros((), dtype=D), None, SteepATan(), 0.0)
    expected = pool(reference)
    assert torch.equal(out, expected)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad((out * g).sum(), xs)[0],
                               torch.autograd.grad((expected * g).sum(), xs)[0], rtol=1e-10, atol=1e-12)


def test_a_derivative_of_the_wrong_shape_is_an_error():
    @dataclass(frozen=True)
    class Summed(Surrogate):  # returns one number per step instead of one per neuron
        def derivative(self, x):
            return (1.0 / (1.0 + x.square())).sum()

    x = (torch.randn(4, 2, 5) + 0.8).requires_grad_()
    s, _ = lif_multistep(x, surrogate=Summed())
    with pytest.raises(SurrogateError, match=r"Summed.derivative returned shape \(\) for an input of shape \(2, 5\)"):
        s.sum().backward()
    y = torch.randn(2, 5, requires_grad=True)
    with pytest.raises(SurrogateError, match="tensor of its input's shape"):
        Summed()(y).sum().backward()


# ------------------------------------------------------------------------------ Triton, interpreted
@pytest.mark.skipif(INTERPRETED, reason="this is the launcher of the interpreted cases")
def test_triton_backend_in_the_interpreter():
    """This file's ``triton`` cases, run by Triton's CPU interpreter in a subprocess."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(Path(__file__)), "-k",
         "triton and not in_the_interpreter and not compile"],
        capture_output=True, text=True, env=env, timeout=900, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = [line for line in result.stdout.splitlines() if " passed" in line]
    assert passed and "skipped" not in passed[-1], result.stdout[-2000:]


def test_triton_kernel_refuses_unknown_kinds():
    """In the interpreter (the subprocess above): the backward kernel with an unknown KIND fails
    rather than computing another formula; the Python entry refuses a user-defined surrogate."""
    if not INTERPRETED:
        pytest.skip("runs in Triton's interpreter")
    from cortexsnn.neurons.kernels import lif_triton

    h = torch.randn(3, 10)
    with pytest.raises(UnsupportedSurrogateError):
        lif_triton.backward(torch.ones(3, 10), None, h, h, h[0], 1, 2.0, True, 1.0, 0.0, True, False, Laplace(),
                            False)
    grad_x = torch.empty_like(h)
    with pytest.raises(Exception, match="unknown surrogate kind"):
        lif_triton._backward_kernel[(1,)](
            torch.ones(3, 10), 10, h, h, h[0], grad_x, torch.zeros(10), torch.zeros(1, dtype=D),
            torch.tensor([2.0, 1.0, 0.0, 1.0]), 3, 10, MODE=1, DIV=True, HARD=True, DETACH=False, KIND=5,
            GS_BCAST=False, WANT_D=False, COMPUTE=lif_triton.tl.float32, BLOCK=16,
        )


def test_triton_kernel_with_an_unknown_kind_does_not_compile():
    """The same for the CUDA compiler (sm_90, no GPU needed): KIND 5 is a compile error."""
    triton = pytest.importorskip("triton")
    if INTERPRETED:
        pytest.skip("compiles for CUDA, outside the interpreter")
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from cortexsnn.neurons.kernels import lif_triton

    signature = {"gs_ptr": "*fp32", "gs_tstride": "i64", "h_ptr": "*fp32", "x_ptr": "*fp32", "v0_ptr": "*fp32",
                 "gx_ptr": "*fp32", "gv_ptr": "*fp32", "gd_ptr": "*fp64", "p_ptr": "*fp32", "steps": "i32", "n": "i32",
                 **{name: "constexpr" for name in ("MODE", "DIV", "HARD", "DETACH", "KIND", "GS_BCAST", "WANT_D",
                                                   "COMPUTE", "BLOCK")}}
    source = ASTSource(fn=lif_triton._backward_kernel, signature=signature,
                       constexprs={"MODE": 1, "DIV": True, "HARD": True, "DETACH": False, "KIND": 5, "GS_BCAST": False,
                                   "WANT_D": False, "COMPUTE": tl.float32, "BLOCK": 256})
    with pytest.raises(Exception) as info:
        triton.compile(source, target=GPUTarget("cuda", 90, 32))
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("unknown surrogate kind" in text for text in chain), chain


def test_reference_loop_matches_a_hand_derived_value():
    """The reference itself, on one neuron and one step: H = 0 + 1.2 >= 1 fires; with a loss of the
    spike, dL/dX = ATan'(0.2) = 1 / (1 + (pi 0.2)^2) (alpha 2)."""
    x = torch.tensor([[1.2]], dtype=D, requires_grad=True)
    s, _ = _reference("if", x, torch.zeros(1, dtype=D), None, ATan(2.0), 0.0)
    (grad,) = torch.autograd.grad(s.sum(), x)
    assert s.item() == 1.0
    assert grad.item() == pytest.approx(1 / (1 + (math.pi * 0.2) ** 2), rel=1e-12)


def test_state_on_another_device():
    """A 0-dim CPU state goes with an input on any device (here "meta", the only other device of a
    CPU-only machine); a full state, or a 0-dim one elsewhere, on another device is refused."""
    from cortexsnn.errors import InvalidArgumentError

    x = torch.randn(4, 2, 6, device="meta")
    spikes, v_last = lif_multistep(x, torch.tensor(0.2), backend="torch")
    assert spikes.device.type == "meta" and spikes.shape == x.shape and v_last.shape == (2, 6)
    with pytest.raises(InvalidArgumentError, match="v_init is on cpu but the input is on meta"):
        lif_multistep(x, torch.zeros(2, 6))
    with pytest.raises(InvalidArgumentError, match="v_init is on meta but the input is on cpu"):
        if_multistep(torch.randn(4, 2, 6), torch.zeros((), device="meta"))


def test_a_module_with_a_compiled_backend_refuses_a_user_surrogate_when_built():
    from cortexsnn.neurons import IFNode, LIFNode, PLIFNode

    for cls in (IFNode, LIFNode, PLIFNode):
        for backend in ("cpu", "triton"):
            with pytest.raises(UnsupportedSurrogateError, match=f"the '{backend}' neuron backend"):
                cls(surrogate=Laplace(), backend=backend)
        node = cls(surrogate=Laplace())  # auto: runs, on torch, with the user's derivative
        x = (torch.randn(4, 2, 10, dtype=D) + 0.6).requires_grad_()
        node.to(D)
        spikes = node(x)
        (grad,) = torch.autograd.grad(spikes.sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
