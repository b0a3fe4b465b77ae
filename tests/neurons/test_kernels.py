"""The fused whole-sequence kernels against the plain step loop, gradcheck, backend selection."""
import warnings

import pytest
import torch

import cortexsnn.neurons.kernels as kernels
import cortexsnn.utils.cbuild as cbuild
from cortexsnn.neurons.functional import (
    if_multistep,
    if_step,
    lif_multistep,
    lif_step,
    plif_multistep,
    plif_step,
)
from cortexsnn.neurons.kernels import KernelBuildError, cpu_kernel, resolve_backend
from cortexsnn.neurons.surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Triangle

BACKENDS = ["cpu", "torch"]
SURROGATES = [ATan(2.0), Sigmoid(4.0), FastSigmoid(3.0), Gaussian(0.4), Triangle(1.0)]


def test_cpu_kernel_builds():
    # the fused CPU kernel must build wherever gcc with OpenMP exists (CI included): a silent
    # fallback to the slower path would go unnoticed otherwise
    assert cpu_kernel() is not None
    assert resolve_backend(None, "cpu") in ("cpu", "torch")
    assert resolve_backend("auto", "cpu") == "cpu"


def _loop(step, x, v0, **kw):
    v, out = v0, []
    for t in range(x.shape[0]):
        s, v = step(x[t], v, **kw)
        out.append(s)
    return torch.stack(out), v


def _models(backend):
    """(fused, loop) pairs of ``(x, v0, w, **kw) -> (spikes, v_last)`` for IF, both LIFs, PLIF."""
    return {
        "if": (
            lambda x, v0, w, **kw: if_multistep(x, v0, backend=backend, **kw),
            lambda x, v0, w, **kw: _loop(if_step, x, v0, **kw),
        ),
        "lif-decay-input": (
            lambda x, v0, w, **kw: lif_multistep(x, v0, 3.0, True, backend=backend, **kw),
            lambda x, v0, w, **kw: _loop(lif_step, x, v0, tau=3.0, decay_input=True, **kw),
        ),
        "lif": (
            lambda x, v0, w, **kw: lif_multistep(x, v0, 3.0, False, backend=backend, **kw),
            lambda x, v0, w, **kw: _loop(lif_step, x, v0, tau=3.0, decay_input=False, **kw),
        ),
        "plif": (
            lambda x, v0, w, **kw: plif_multistep(x, w, v0, True, backend=backend, **kw),
            lambda x, v0, w, **kw: _loop(plif_step, x, v0, w=w, decay_input=True, **kw),
        ),
    }


def _grads(fn, x, v0, w, gs, gv, **kw):
    s, v = fn(x, v0, w, **kw)
    loss = (s * gs).sum() + (v * gv).sum()
    return (s.detach(), v.detach(), *torch.autograd.grad(loss, (x, v0, w), allow_unused=True))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("v_reset", [0.0, -0.2, None])
@pytest.mark.parametrize("detach", [True, False])
def test_fused_equals_step_loop(backend, surrogate, v_reset, detach):
    torch.manual_seed(3)
    x = (torch.randn(9, 2, 33, dtype=torch.float64) + 0.3).requires_grad_()
    v0 = (torch.rand(2, 33, dtype=torch.float64) * 0.5).requires_grad_()
    w = torch.tensor(-0.4, dtype=torch.float64, requires_grad=True)
    gs, gv = torch.randn_like(x), torch.randn_like(v0)
    kw = dict(v_reset=v_reset, surrogate=surrogate, detach_reset=detach, v_threshold=0.8)
    for name, (fused, loop) in _models(backend).items():
        got = _grads(fused, x, v0, w, gs, gv, **kw)
        want = _grads(loop, x, v0, w, gs, gv, **kw)
        assert torch.equal(got[0], want[0]), name
        assert got[0].sum() > 0, name
        for a, b in zip(got[1:], want[1:]):
            if b is None:  # no w in IF / LIF
                assert a is None or not a.abs().sum(), name
                continue
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("detach", [True, False])
def test_long_sequences_parallel_chunks_and_recomputation(detach):
    # T = 1100 shrinks the recomputing backward's chunks to 48 neurons (500 = 10 x 48 + 20) and
    # 1.1 M neuron-steps run on every thread: compare with the torch path (which saves H)
    torch.manual_seed(8)
    x = (torch.randn(1100, 2, 250, dtype=torch.float64) * 0.7 + 0.2).requires_grad_()
    w = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    v0 = (torch.rand(2, 250, dtype=torch.float64) * 0.3).requires_grad_()
    gs, gv = torch.randn_like(x), torch.randn_like(v0)
    out = []
    for backend in BACKENDS:
        s, v = plif_multistep(x, w, v0, v_reset=None, detach_reset=detach, surrogate=Triangle(1.0), backend=backend)
        out.append((s, v, *torch.autograd.grad((s * gs).sum() + (v * gv).sum(), (x, w, v0))))
    assert torch.equal(out[0][0], out[1][0])
    for a, b in zip(out[0][1:], out[1][1:]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_cpu_kernel_saves_only_its_input():
    """The CPU backward recomputes H: the graph holds the input and V_init, no [T, ...] H."""
    x = torch.randn(6, 3, 8, requires_grad=True)
    s, _ = lif_multistep(x, backend="cpu")  # V_init 0: one value, broadcast by the kernel
    saved = [t for t in s.grad_fn.saved_tensors if t is not None]
    assert sorted(t.dim() for t in saved) == [0, 3]
    s, _ = lif_multistep(x, torch.rand(3, 8), backend="cpu")
    saved = [t for t in s.grad_fn.saved_tensors if t is not None]
    assert sorted(t.shape for t in saved) == [(3, 8), (6, 3, 8)]
    assert any(t.data_ptr() == x.data_ptr() for t in saved)  # the input itself, not a copy
    s_torch, _ = lif_multistep(x, backend="torch")
    assert [t.shape for t in s_torch.grad_fn.saved_tensors if t is not None] == [(6, 3, 8)]  # H


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_kernel_matches_float64(backend):
    torch.manual_seed(4)
    x = torch.randn(20, 3, 300, dtype=torch.float64) + 0.4
    g = torch.randn_like(x)
    results = {}
    for dtype in (torch.float64, torch.float32):
        xi = x.to(dtype).detach().requires_grad_()
        s, _ = lif_multistep(xi, tau=2.0, backend=backend)
        (s * g.to(dtype)).sum().backward()
        results[dtype] = (s.double(), xi.grad.double())
    assert torch.equal(results[torch.float32][0], results[torch.float64][0])
    torch.testing.assert_close(results[torch.float32][1], results[torch.float64][1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_gradcheck_of_fused_kernels(backend, decay_input, v_reset):
    # A surrogate gradient is not the derivative of the spike function, so gradcheck can only test
    # the outputs whose true derivative the kernel computes: with detach_reset the final potential
    # is a piecewise-smooth function of x, v0 and w (spikes only switch branches), and its fused
    # gradient must equal the finite differences -- here with plenty of spikes along the way.
    torch.manual_seed(5)
    x = (torch.randn(7, 2, 5, dtype=torch.float64) + 0.8).requires_grad_()
    v0 = (torch.rand(2, 5, dtype=torch.float64) * 0.3).requires_grad_()
    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    kw = dict(decay_input=decay_input, v_reset=v_reset, detach_reset=True, surrogate=Sigmoid(4.0), backend=backend)
    spikes, _ = plif_multistep(x, w, v0, **kw)
    assert 0 < spikes.mean() < 1
    assert torch.autograd.gradcheck(lambda a, b, c: plif_multistep(a, c, b, **kw)[1], (x, v0, w))
    assert torch.autograd.gradcheck(lambda a: if_multistep(a, 0.0, v_reset=v_reset, detach_reset=True,
                                                           backend=backend)[1], (x,))
    # and the surrogate path of the backward against autograd through the step loop, spikes used
    gs = torch.randn_like(x)
    for detach in (True, False):
        kw_loop = dict(decay_input=decay_input, v_reset=v_reset, detach_reset=detach, surrogate=Sigmoid(4.0))
        fused = plif_multistep(x, w, v0, backend=backend, **kw_loop)
        loop = _loop(plif_step, x, v0, w=w, **kw_loop)
        g_fused = torch.autograd.grad((fused[0] * gs).sum() + fused[1].sum(), (x, v0, w))
        g_loop = torch.autograd.grad((loop[0] * gs).sum() + loop[1].sum(), (x, v0, w))
        for a, b in zip(g_fused, g_loop):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_layouts(backend):
    """Expanded (sum-loss) and non-contiguous spike gradients, and gradients of v_last alone."""
    torch.manual_seed(6)
    x = (torch.randn(6, 4, 10, dtype=torch.float64) + 0.5).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    s, _ = lif_multistep(x, backend=backend)
    s.sum().backward()  # the gradient arrives as an expanded scalar
    s_ref, _ = _loop(lif_step, ref_x, torch.zeros(4, 10, dtype=torch.float64))
    s_ref.sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-14)

    x.grad, ref_x.grad = None, None
    g = torch.randn(10, 4, 6, dtype=torch.float64).permute(2, 1, 0)  # non-contiguous
    lif_multistep(x, backend=backend)[0].backward(g)
    _loop(lif_step, ref_x, torch.zeros(4, 10, dtype=torch.float64))[0].backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-14)

    x.grad, ref_x.grad = None, None
    lif_multistep(x, backend=backend)[1].sum().backward()  # only the final potential is used
    _loop(lif_step, ref_x, torch.zeros(4, 10, dtype=torch.float64))[1].sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_builds_no_graph(backend):
    x = torch.randn(5, 3, 8, requires_grad=True)
    with torch.no_grad():
        s, v = lif_multistep(x, backend=backend)
    assert not s.requires_grad and not v.requires_grad
    s2, _ = lif_multistep(x.detach(), backend=backend)
    assert torch.equal(s, s2) and s2.grad_fn is None


def test_half_precision_falls_back_to_torch():
    x = torch.randn(4, 2, 6)
    s16, _ = lif_multistep(x.to(torch.bfloat16), backend="cpu")
    assert s16.dtype == torch.bfloat16
    assert torch.equal(s16.float(), lif_multistep(x.to(torch.bfloat16).float(), backend="torch")[0])


def test_backend_selection(monkeypatch):
    with pytest.raises(ValueError, match="unknown neuron backend"):
        resolve_backend("cuda-magic", "cpu")
    monkeypatch.setenv("CORTEXSNN_NEURON_BACKEND", "torch")
    assert resolve_backend(None, "cpu") == "torch"
    assert resolve_backend("cpu", "cpu") == "cpu"  # an explicit argument wins over the variable
    monkeypatch.setenv("CORTEXSNN_NEURON_BACKEND", "bogus")
    with pytest.raises(ValueError, match="unknown neuron backend 'bogus'"):
        lif_multistep(torch.randn(3, 2))
    monkeypatch.delenv("CORTEXSNN_NEURON_BACKEND")
    with pytest.raises(ValueError, match="needs CPU tensors"):
        resolve_backend("cpu", "cuda")
    assert resolve_backend("auto", "cuda") in ("torch", "triton")


def test_failed_build_warns_once_and_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels.cpu_kernel, "_library", None)
    monkeypatch.setattr(kernels.cpu_kernel, "_failure", None)

    def broken(*args, **kwargs):
        raise KernelBuildError("no compiler here")

    monkeypatch.setattr(cbuild, "load_c_library", broken)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        assert resolve_backend(None, "cpu") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call is silent
        assert resolve_backend(None, "cpu") == "torch"
    with pytest.raises(KernelBuildError, match="could not be built"):
        resolve_backend("cpu", "cpu")
    s, _ = lif_multistep(torch.randn(4, 3) + 1.0)  # still runs, on the torch path
    assert s.shape == (4, 3)


_TRITON_CHECK = r"""
import itertools
import torch
from cortexsnn.neurons.functional import if_multistep, lif_multistep, plif_multistep
from cortexsnn.neurons.kernels import resolve_backend
from cortexsnn.neurons.surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Triangle

assert resolve_backend("triton", "cpu") == "triton"
torch.manual_seed(0)
D = torch.float64
surrogates = (ATan(2.0), Sigmoid(4.0), FastSigmoid(3.0), Gaussian(0.4), Triangle(1.0))
configs = list(itertools.product((0.0, -0.1, None), (True, False), (True, False)))
for i, (v_reset, detach, decay_input) in enumerate(configs):  # every config, surrogates in turn
    sur = surrogates[i % len(surrogates)]
    x = (torch.randn(6, 3, 70, dtype=D) + 0.4).requires_grad_()
    w = torch.tensor(0.2, dtype=D, requires_grad=True)
    v0 = (torch.rand(3, 70, dtype=D) * 0.3).requires_grad_()
    g = torch.randn_like(x)
    kw = dict(v_reset=v_reset, detach_reset=detach, surrogate=sur, decay_input=decay_input)
    out = []
    for backend in ("triton", "torch"):
        s, v = plif_multistep(x, w, v0, backend=backend, **kw)
        grads = torch.autograd.grad((s * g).sum() + v.sum(), (x, w, v0))
        out.append((s, v, *grads))
    assert out[0][0].sum() > 0
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
# IF with an expanded (sum-loss) gradient in float32, and bfloat16 (computed in float32)
for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 1e-2)):
    x = (torch.randn(7, 2, 300) + 0.4).to(dtype)
    out = []
    for backend in ("triton", "torch"):
        xi = (x if backend == "triton" else x.float()).clone().requires_grad_()
        s, v = if_multistep(xi, backend=backend)
        s.sum().backward()
        out.append((s.float(), v.float(), xi.grad.float()))
    assert torch.equal(out[0][0], out[1][0])
    torch.testing.assert_close(out[0][2], out[1][2], rtol=0, atol=tol)
with torch.no_grad():
    s, v = lif_multistep(torch.randn(5, 4, 9), backend="triton")
print("TRITON-OK")
"""


def test_triton_kernel_in_the_interpreter():
    """The CUDA Triton kernels, run by Triton's CPU interpreter, against the torch path."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, "-c", _TRITON_CHECK], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0 and "TRITON-OK" in result.stdout, result.stderr[-3000:]


def test_triton_backend_needs_cuda_without_the_interpreter(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        resolve_backend("triton", "cpu")


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp64"])
def test_triton_kernels_compile_for_cuda(dtype):
    """Compile the Triton kernels down to a cubin for an H100 (sm_90) without a GPU: the
    interpreter test above runs them as Python, this one catches what only the compiler rejects."""
    triton = pytest.importorskip("triton")
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from cortexsnn.neurons.kernels import lif_triton

    compute, h_type, param_type = {"fp32": (tl.float32, "*fp32", "*fp32"), "bf16": (tl.float32, "*fp32", "*fp32"),
                                   "fp64": (tl.float64, "*fp64", "*fp64")}[dtype]
    io = f"*{dtype}"
    target = GPUTarget("cuda", 90, 32)
    forward = ASTSource(
        fn=lif_triton._forward_kernel,
        signature={"x_ptr": io, "spikes_ptr": io, "h_ptr": h_type, "v_ptr": io, "p_ptr": param_type, "steps": "i32",
                   "n": "i32", "MODE": "constexpr", "DIV": "constexpr", "HARD": "constexpr", "SAVE_H": "constexpr",
                   "COMPUTE": "constexpr", "BLOCK": "constexpr"},
        constexprs={"MODE": 1, "DIV": True, "HARD": True, "SAVE_H": True, "COMPUTE": compute, "BLOCK": 256},
    )
    assert "cubin" in triton.compile(forward, target=target).asm
    signature = {"gs_ptr": io, "gs_tstride": "i64", "h_ptr": h_type, "x_ptr": io, "v0_ptr": io, "gx_ptr": io,
                 "gv_ptr": io, "gd_ptr": "*fp64", "p_ptr": param_type, "steps": "i32", "n": "i32",
                 **{name: "constexpr" for name in ("MODE", "DIV", "HARD", "DETACH", "KIND", "GS_BCAST", "WANT_D",
                                                   "COMPUTE", "BLOCK")}}
    for kind, (mode, hard, detach, bcast, want_d) in enumerate(
        [(1, True, False, False, True), (2, False, True, True, True), (0, True, True, False, False),
         (1, False, False, True, False), (2, True, False, False, True)]
    ):
        backward = ASTSource(
            fn=lif_triton._backward_kernel, signature=signature,
            constexprs={"MODE": mode, "DIV": not want_d, "HARD": hard, "DETACH": detach, "KIND": kind,
                        "GS_BCAST": bcast, "WANT_D": want_d, "COMPUTE": compute, "BLOCK": 256},
        )
        assert "cubin" in triton.compile(backward, target=target).asm
