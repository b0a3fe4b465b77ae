"""The Triton neuron kernels compiled for a real GPU, against the CPU reference (issue 15, item 4).

Runs only where CUDA is available: ``pytest -m gpu`` (``benchmarks/gpu/run_gpu_checks.sh`` runs it on
the lent GPU machine); skipped everywhere else. ``test_kernels.py`` checks the same kernels' logic in
Triton's CPU interpreter on any machine; this file checks what the GPU compiler makes of them (fused
multiply-adds, which the CPU kernel is built without; float division; the masked last block).

The reference is the CPU backend (the C kernel where it builds, else the torch path; the two are
checked equal in ``test_kernels.py``) on the same float32 values. Spikes must be identical; potentials
and gradients (input, initial potential and, for PLIF, the decay) within 1e-5, relative and absolute.
16-bit inputs are computed in float32 by the kernel and compared with the float32 reference on the
same (exactly widened) values: spikes identical, outputs within the 16-bit rounding of each stored
value.
"""
from __future__ import annotations

import os

import pytest
import torch

from cortexsnn.neurons.functional import if_multistep, lif_multistep, plif_multistep
from cortexsnn.neurons.kernels import resolve_backend
from cortexsnn.neurons.surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Triangle

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m gpu on one)"),
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
                       reason="TRITON_INTERPRET is set: the kernels would be interpreted, not compiled"),
]

SURROGATES = [ATan(2.0), Sigmoid(4.0), FastSigmoid(3.0), Gaussian(0.4), Triangle(1.0)]
MODELS = ["if", "lif-decay-input", "lif", "plif"]
RESETS = [0.0, -0.2, None]  # hard to 0, hard to -0.2, soft (subtract the threshold)


def _cases():
    """Every surrogate x neuron model x reset kind; the reset detached in every other case, so that
    each surrogate, each model and each reset kind meets both."""
    cases = []
    for i, surrogate in enumerate(SURROGATES):
        for j, model in enumerate(MODELS):
            for k, v_reset in enumerate(RESETS):
                detach = (i + j + k) % 2 == 0
                cases.append(pytest.param(surrogate, model, v_reset, detach,
                                          id=f"{type(surrogate).__name__}-{model}-reset{v_reset}-detach{detach}"))
    return cases


def _run(model, x, v0, w, backend, **kw):
    if model == "if":
        return if_multistep(x, v0, backend=backend, **kw)
    if model == "lif-decay-input":
        return lif_multistep(x, v0, 3.0, True, backend=backend, **kw)
    if model == "lif":
        return lif_multistep(x, v0, 3.0, False, backend=backend, **kw)
    return plif_multistep(x, w, v0, True, backend=backend, **kw)


def _outputs(model, x, v0, w, gs, gv, backend, **kw):
    """``(spikes, v_last, dL/dx, dL/dv0, dL/dw or None)`` for ``L = <spikes, gs> + <v_last, gv>``."""
    x, v0, w = (t.detach().clone().requires_grad_() for t in (x, v0, w))
    s, v = _run(model, x, v0, w, backend, **kw)
    loss = (s * gs).sum() + (v * gv).sum()
    grads = torch.autograd.grad(loss, (x, v0, w), allow_unused=True)
    return (s.detach(), v.detach(), *grads)


def _reference_backend() -> str:
    return resolve_backend("auto", "cpu")


def _inputs(steps, batch, n, dtype=torch.float32, seed=3):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(steps, batch, n, generator=gen) * 0.8 + 0.3).to(dtype)
    v0 = (torch.rand(batch, n, generator=gen) * 0.5).to(dtype)
    w = torch.tensor(-0.4)
    gs = torch.randn(steps, batch, n, generator=gen).to(dtype)
    gv = torch.randn(batch, n, generator=gen).to(dtype)
    return x, v0, w, gs, gv


def _on(device, *tensors):
    return [t.to(device) for t in tensors]


def test_auto_backend_on_cuda_is_triton():
    pytest.importorskip("triton")
    # a silent fall-back to the torch path on GPUs would leave the kernels untested and slow
    assert resolve_backend(None, "cuda") == "triton"
    assert resolve_backend("auto", "cuda") == "triton"


@pytest.mark.parametrize("surrogate, model, v_reset, detach", _cases())
def test_triton_on_gpu_equals_cpu_float32(surrogate, model, v_reset, detach):
    pytest.importorskip("triton")
    # 700 neurons x batch 3 = 2,100 per step: 9 blocks of 256, the last one masked
    x, v0, w, gs, gv = _inputs(12, 3, 700)
    kw = dict(v_reset=v_reset, surrogate=surrogate, detach_reset=detach, v_threshold=0.8)
    want = _outputs(model, x, v0, w, gs, gv, _reference_backend(), **kw)
    got = _outputs(model, *_on("cuda", x, v0, w, gs, gv), "triton", **kw)
    got = [None if t is None else t.cpu() for t in got]
    assert torch.equal(got[0], want[0]), "spikes differ from the CPU reference"
    assert want[0].sum() > 0 and (want[0] == 0).any(), "the case must both fire and stay silent"
    for name, a, b in zip(["v_last", "grad x", "grad v0", "grad w"], got[1:], want[1:]):
        if b is None:  # no decay parameter in IF / LIF
            assert a is None or not a.abs().sum(), name
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_long_sequence_on_gpu_equals_cpu():
    pytest.importorskip("triton")
    x, v0, w, gs, gv = _inputs(257, 2, 2500, seed=5)
    kw = dict(v_reset=None, surrogate=ATan(2.0), detach_reset=False)
    want = _outputs("plif", x, v0, w, gs, gv, _reference_backend(), **kw)
    got = [t.cpu() for t in _outputs("plif", *_on("cuda", x, v0, w, gs, gv), "triton", **kw)]
    assert torch.equal(got[0], want[0])
    for a, b in zip(got[1:], want[1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, rtol", [(torch.float16, 2.0**-10), (torch.bfloat16, 2.0**-7)])
@pytest.mark.parametrize("model", ["lif", "plif"])
def test_16_bit_inputs_on_gpu(dtype, rtol, model):
    """16-bit in, float32 arithmetic inside, 16-bit out: equal to the float32 kernel on the same
    values up to the rounding of each stored output (half an ulp: 2^-11 float16, 2^-8 bfloat16)."""
    pytest.importorskip("triton")
    x, v0, w, gs, gv = _inputs(16, 4, 600, dtype=dtype, seed=7)
    kw = dict(v_reset=0.0, surrogate=ATan(2.0), detach_reset=True)
    want = _outputs(model, x.float(), v0.float(), w, gs.float(), gv.float(), _reference_backend(), **kw)
    got = _outputs(model, *_on("cuda", x, v0, w, gs, gv), "triton", **kw)
    assert got[0].dtype == dtype and got[2].dtype == dtype
    got = [None if t is None else t.float().cpu() for t in got]
    assert torch.equal(got[0], want[0])
    for a, b in zip(got[1:4], want[1:4]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-6)
    if model == "plif":  # the decay's gradient is a float64 sum on both sides, not rounded to 16 bits
        torch.testing.assert_close(got[4], want[4], rtol=1e-4, atol=1e-6)


def test_module_on_gpu_equals_cpu():
    """The public module (``LIFNode``, backend chosen automatically) on a CUDA tensor."""
    pytest.importorskip("triton")
    from cortexsnn.neurons import LIFNode, reset

    x, _, _, gs, _ = _inputs(10, 4, 333, seed=11)
    out = {}
    for device in ("cpu", "cuda"):
        node = LIFNode(tau=2.0, decay_input=False, v_reset=0.0, surrogate=ATan(2.0), detach_reset=True).to(device)
        reset(node)
        xi = x.to(device).requires_grad_()
        s = node(xi)
        s.backward(gs.to(device))
        out[device] = (s.detach().cpu(), xi.grad.cpu())
    assert torch.equal(out["cuda"][0], out["cpu"][0])
    torch.testing.assert_close(out["cuda"][1], out["cpu"][1], rtol=1e-5, atol=1e-5)
