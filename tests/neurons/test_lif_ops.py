"""The fused kernels as torch.library custom ops: opcheck, the same numbers as the eager path,
and torch.compile(fullgraph=True) through a network of neurons."""
import itertools
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from cortexsnn.neurons import LIFNode, PLIFNode, reset
from cortexsnn.neurons.functional import if_multistep, lif_multistep, plif_multistep
from cortexsnn.neurons.functional.lif_ops import fused_sequence
from cortexsnn.neurons.surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Triangle

SURROGATES = [ATan(2.0), Sigmoid(4.0), FastSigmoid(3.0), Gaussian(0.4), Triangle(1.0)]


def _forward_args(dtype, mode, hard, full_v, decay_grad, requires_grad):
    """Tiny inputs for cortexsnn::lif_multistep_cpu: LIF (``div``, decay = tau) or PLIF (decay = sigmoid(w))."""
    torch.manual_seed(11)
    x = (torch.randn(4, 2, 5, dtype=dtype) + 0.5).requires_grad_(requires_grad)
    v_init = (torch.rand(2, 5, dtype=dtype) * 0.3 if full_v else torch.tensor(0.1, dtype=dtype))
    v_init.requires_grad_(requires_grad)
    plif = decay_grad and requires_grad
    decay = torch.tensor(0.6, dtype=dtype, requires_grad=True) if plif else torch.tensor(2.0, dtype=torch.float64)
    return (x, v_init, decay, mode, not plif, 0.8, -0.1, hard, not hard, 1, 4.0, requires_grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode, hard, full_v, decay_grad", [(1, True, False, False), (2, False, True, True),
                                                            (0, True, True, False), (1, False, False, True)])
def test_opcheck_cpu_forward(dtype, mode, hard, full_v, decay_grad):
    for requires_grad in (False, True):
        args = _forward_args(dtype, mode, hard, full_v, decay_grad, requires_grad)
        torch.library.opcheck(torch.ops.cortexsnn.lif_multistep_cpu, args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_cpu_backward(dtype):
    torch.manual_seed(12)
    x = torch.randn(4, 2, 5, dtype=dtype) + 0.5
    grad_spikes = torch.randn_like(x)
    for grad_v, v_init, want_decay in ((torch.randn(2, 5, dtype=dtype), torch.rand(2, 5, dtype=dtype), True),
                                       (None, torch.tensor(0.2, dtype=dtype), False)):
        decay = torch.tensor(0.7, dtype=dtype)
        args = (grad_spikes, grad_v, x, v_init, decay, 1, False, 1.0, 0.0, True, False, 3, 0.4, want_decay)
        torch.library.opcheck(torch.ops.cortexsnn.lif_multistep_cpu_backward, args)


def _grads(fn, inputs, g):
    s, v = fn()
    return [s, v, *torch.autograd.grad((s * g).sum() + v.sum(), inputs)]


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_custom_op_path_is_bit_identical_to_the_eager_path(surrogate):
    """What torch.compile runs (the ops) against what eager runs (the kernels called directly)."""
    torch.manual_seed(13)
    for dtype, v_reset, detach, decay_input in itertools.product(
        (torch.float32, torch.float64), (0.0, None), (True, False), (True, False)
    ):
        x = (torch.randn(6, 3, 7, dtype=dtype) + 0.4).requires_grad_()
        v0 = (torch.rand(3, 7, dtype=dtype) * 0.3).requires_grad_()
        v_one = torch.tensor(0.1, dtype=dtype, requires_grad=True)  # one V_init value: broadcast by the kernel
        w = torch.tensor(0.2, dtype=dtype, requires_grad=True)
        g = torch.randn_like(x)
        mode = 1 if decay_input else 2
        kw = dict(v_reset=v_reset, detach_reset=detach, surrogate=surrogate)
        cases = [
            (lambda: plif_multistep(x, w, v0, decay_input=decay_input, backend="cpu", **kw),
             lambda: fused_sequence("cpu", x, v0, torch.sigmoid(w), mode, False, 1.0, v_reset, detach, surrogate,
                                    True),
             (x, v0, w)),
            (lambda: lif_multistep(x, v0, 3.0, decay_input, backend="cpu", **kw),
             lambda: fused_sequence("cpu", x, v0, torch.tensor(3.0, dtype=torch.float64), mode, True, 1.0, v_reset,
                                    detach, surrogate, True),
             (x, v0)),
            (lambda: if_multistep(x, v_one, backend="cpu", **kw),
             lambda: fused_sequence("cpu", x, v_one, torch.tensor(1.0), 0, False, 1.0, v_reset, detach, surrogate,
                                    True),
             (x, v_one)),
        ]
        for eager, op, inputs in cases:
            want, got = _grads(eager, inputs, g), _grads(op, inputs, g)
            assert want[0].sum() > 0
            for a, b in zip(want, got):
                assert a.dtype == b.dtype and torch.equal(a, b)


class _TwoLayers(nn.Module):
    def __init__(self, backend="cpu"):
        super().__init__()
        self.fc1, self.lif = nn.Linear(6, 8), LIFNode(tau=2.0, v_threshold=0.5, backend=backend)
        self.fc2 = nn.Linear(8, 3)
        self.plif = PLIFNode(v_threshold=0.1, v_reset=None, detach_reset=True, backend=backend)

    def forward(self, x):
        return self.plif(self.fc2(self.lif(self.fc1(x)))).mean(0)


def _train_step(net, model, x):
    reset(net)
    out = model(x)
    out.sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    return [out.detach(), net.lif.v.clone(), net.plif.v.clone(), *grads]


def _compiled_equals_eager(compile_backend, exact):
    torch.manual_seed(14)
    net = _TwoLayers().double()
    x = torch.randn(5, 4, 6, dtype=torch.float64) * 2
    torch._dynamo.reset()
    want = _train_step(net, net, x)
    # fullgraph=True: a graph break anywhere (a ctypes call, an untraceable kernel launch) is an error
    compiled = torch.compile(net, fullgraph=True, backend=compile_backend)
    for _ in range(2):  # the second call runs the cached graph
        got = _train_step(net, compiled, x)
        assert want[0].abs().sum() > 0
        for a, b in zip(want, got):
            if exact:
                assert torch.equal(a, b)
            else:
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with torch.no_grad():  # inference: the ops without their autograd
        reset(net)
        want_inference = net(x)
        reset(net)
        assert torch.equal(compiled(x), want_inference) if exact else torch.allclose(compiled(x), want_inference)


def test_torch_compile_traces_the_cpu_kernels_without_graph_breaks():
    # aot_eager: dynamo and AOTAutograd (fake tensors, the registered autograd formula), the ops
    # themselves run as they are: the numbers are the eager ones bit for bit
    _compiled_equals_eager("aot_eager", exact=True)


@pytest.mark.slow
def test_torch_compile_with_inductor_equals_eager():
    # inductor generates and compiles C++ for the linear layers around the kernels (a minute here)
    _compiled_equals_eager("inductor", exact=False)


_TRITON_OPS_CHECK = r"""
import torch
from cortexsnn.neurons.functional import lif_multistep, plif_multistep
from cortexsnn.neurons.functional.lif_ops import fused_sequence
from cortexsnn.neurons.surrogate import Sigmoid

torch.manual_seed(0)
sur = Sigmoid(4.0)
for dtype in (torch.float32, torch.float64):
    x = (torch.randn(4, 2, 5, dtype=dtype) + 0.5)
    v0 = torch.rand(2, 5, dtype=dtype) * 0.3
    for requires_grad in (False, True):
        args = (x.clone().requires_grad_(requires_grad), v0.clone().requires_grad_(requires_grad),
                torch.tensor(0.6, dtype=dtype, requires_grad=requires_grad), 1, False, 0.8, 0.0, True, False,
                sur.kind_id, sur.alpha, requires_grad)
        torch.library.opcheck(torch.ops.cortexsnn.lif_multistep_triton, args)
    h = x.clone()
    torch.library.opcheck(torch.ops.cortexsnn.lif_multistep_triton_backward,
                          (torch.randn_like(x), torch.randn_like(v0), h, x, v0, torch.tensor(0.6, dtype=dtype), 1,
                           False, 0.8, 0.0, True, False, sur.kind_id, sur.alpha, True))
    # the op path against the eager path, bit for bit
    xg, vg = x.clone().requires_grad_(), v0.clone().requires_grad_()
    w = torch.tensor(0.3, dtype=dtype, requires_grad=True)
    g = torch.randn_like(x)
    out = []
    for run in (lambda: plif_multistep(xg, w, vg, surrogate=sur, backend="triton"),
                lambda: fused_sequence("triton", xg, vg, torch.sigmoid(w), 1, False, 1.0, 0.0, False, sur, True)):
        s, v = run()
        out.append([s, v, *torch.autograd.grad((s * g).sum() + v.sum(), (xg, vg, w))])
    assert out[0][0].sum() > 0
    assert all(torch.equal(a, b) for a, b in zip(*out))
print("TRITON-OPS-OK")
"""


def test_triton_ops_in_the_interpreter():
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, "-c", _TRITON_OPS_CHECK], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0 and "TRITON-OPS-OK" in result.stdout, result.stderr[-3000:]
