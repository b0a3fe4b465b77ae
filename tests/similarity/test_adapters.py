"""Adapters: a network from SpikingJelly, snnTorch, Norse, plain torch or the zoo is scored with its
state reset before every stimulus batch, so its features do not depend on the batch size, and they
equal a hand-written loop that runs each stimulus alone through the library's own API."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from cortexsnn.errors import CortexSNNError
from cortexsnn.models import create_model
from cortexsnn.models.external import ModelSpecError, load_model_spec
from cortexsnn.neurons import reset
from cortexsnn.similarity.adapters import (
    AdapterError,
    NativeAdapter,
    NorseAdapter,
    SnnTorchAdapter,
    SpikingJellyAdapter,
    StateResetError,
    adapter_for,
    detect_library,
)
from cortexsnn.similarity.features import extract_features

T = 4
N = 8


def _stimuli(n=N, size=8, seed=0):
    """Images on a 1/4 grid: with weights on a 1/16 grid (:func:`_boost`) every convolution sum is
    exact in float32, so batching cannot change a membrane potential in its last bit and flip a spike."""
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(n, 3, size, size, generator=g) * 4) / 4


def _boost(model, factor=3.0):
    """Scale conv / linear weights so the neurons spike (and not everywhere), and round every
    parameter to a multiple of 1/16 (exact sums, see :func:`_stimuli`)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(factor)
        for p in model.parameters():
            p.copy_(torch.round(p * 16) / 16)
    return model


class _Recorder:
    """Hand-written hooks: every call's output, the first element of a tuple (the library's
    (spikes, membrane) or (output, state))."""

    def __init__(self, model, names):
        modules = dict(model.named_modules())
        self.seen = {n: [] for n in names}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name):
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            self.seen[name].append(out.detach().clone())
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _reference(model, x, names, run_one):
    """Each stimulus alone: ``run_one(model, x_i, recorder)`` resets and runs it with the library's
    API; a layer's feature is its output averaged over the T steps, flattened."""
    out = {n: [] for n in names}
    with torch.no_grad():
        for i in range(x.shape[0]):
            rec = _Recorder(model, names)
            try:
                steps = run_one(model, x[i:i + 1])
            finally:
                rec.close()
            for n in names:
                seq = torch.cat(rec.seen[n]) if steps == "per_call" else rec.seen[n][0]
                out[n].append(seq.reshape(T, -1).mean(dim=0))
    return {n: torch.stack(v).numpy() for n, v in out.items()}


def _assert_batch_free_and_equal(model, x, names, ref, spiking, **kw):
    by = {bs: dict(extract_features(model, x, layers=names, time_steps=T, batch_size=bs, zscore=False, **kw))
          for bs in (1, 3, 8)}
    for name in names:
        assert by[1][name].shape == ref[name].shape
        np.testing.assert_array_equal(by[1][name].numpy(), by[3][name].numpy())
        np.testing.assert_array_equal(by[1][name].numpy(), by[8][name].numpy())
        np.testing.assert_allclose(by[1][name].numpy(), ref[name], rtol=0, atol=1e-6)
    for name in spiking:  # the test would be vacuous with silent or saturated neurons
        assert 0.0 < float(by[1][name].mean()) < 1.0, name
    return by[1]


# --- SpikingJelly ---------------------------------------------------------------------------------

def _sj_net():
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(3, 4, 3, padding=1), layer.BatchNorm2d(4), neuron.LIFNode(tau=2.0),
        layer.Conv2d(4, 6, 3, stride=2, padding=1), neuron.IFNode(),
        layer.Flatten(), layer.Linear(6 * 4 * 4, 5), neuron.LIFNode(tau=2.0),
    )
    with torch.no_grad():
        net[6].weight.mul_(4.0)  # the last layer spikes too
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    return _boost(net).eval()


SJ_LAYERS = ["2", "3", "4", "7"]


def test_spikingjelly_single_step():
    from spikingjelly.activation_based import functional

    net = _sj_net()
    x = _stimuli()

    def run_one(model, xi):
        functional.reset_net(model)
        for _ in range(T):
            model(xi)
        return "per_call"

    ref = _reference(net, x, SJ_LAYERS, run_one)
    assert isinstance(adapter_for(net), SpikingJellyAdapter) and adapter_for(net).model_step_mode(net) == "s"
    assert adapter_for(net).spiking_layers(net) == ["2", "4", "7"]
    _assert_batch_free_and_equal(net, x, SJ_LAYERS, ref, ["2", "4", "7"])


def test_spikingjelly_multi_step_is_reset_between_batches():
    from spikingjelly.activation_based import functional

    net = _sj_net()
    functional.set_step_mode(net, "m")
    x = _stimuli(seed=1)

    def run_one(model, xi):
        functional.reset_net(model)
        model(xi.unsqueeze(0).repeat(T, 1, 1, 1, 1))
        return "sequence"

    ref = _reference(net, x, SJ_LAYERS, run_one)
    assert adapter_for(net).model_step_mode(net) == "m"
    _assert_batch_free_and_equal(net, x, SJ_LAYERS, ref, ["2", "4", "7"])
    # what the issue saw: without the reset (the zoo adapter resets only cortexsnn neurons),
    # the state of one batch leaks into the next and the features depend on the batch size
    leaky = {bs: dict(extract_features(net, x, layers=["2"], time_steps=T, batch_size=bs, zscore=False,
                                       adapter="cortexsnn", check_reset=False))["2"] for bs in (2, 8)}
    assert not torch.equal(leaky[2], leaky[8])
    with pytest.raises(StateResetError, match="adapter='spikingjelly' resets them"):
        list(extract_features(net, x, layers=["2"], time_steps=T, adapter="cortexsnn"))


def test_spikingjelly_movie_carries_state_across_chunks():
    from spikingjelly.activation_based import functional

    net = _sj_net()
    functional.set_step_mode(net, "m")
    frames = _stimuli(7, seed=4)
    chunked = dict(extract_features(net, frames, layers=["2", "7"], mode="movie", chunk_frames=3))
    functional.reset_net(net)
    rec = _Recorder(net, ["2", "7"])
    with torch.no_grad():
        net(frames.unsqueeze(1))
    rec.close()
    for name in ("2", "7"):
        np.testing.assert_allclose(chunked[name].numpy(), rec.seen[name][0][:, 0].reshape(7, -1).numpy(), atol=1e-6)


# --- snnTorch -------------------------------------------------------------------------------------

def _snntorch_net():
    import snntorch as snn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), snn.Leaky(beta=0.8, init_hidden=True),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5), snn.Leaky(beta=0.7, init_hidden=True, output=True),
    )
    with torch.no_grad():
        net[5].weight.mul_(4.0)  # the last layer spikes too
    return _boost(net, 2.0).eval()


def test_snntorch_init_hidden():
    from snntorch import utils

    net = _snntorch_net()
    x = _stimuli(seed=2)
    names = ["1", "2", "3", "6"]

    def run_one(model, xi):
        utils.reset(model)  # snnTorch's own reset of init_hidden neurons
        for _ in range(T):
            model(xi)
        return "per_call"

    ref = _reference(net, x, names, run_one)
    assert isinstance(adapter_for(net), SnnTorchAdapter)
    feats = _assert_batch_free_and_equal(net, x, names, ref, ["1", "3", "6"])
    assert feats["6"].shape == (N, 5)  # the (spk, mem) output is read as spk


def test_snntorch_default_layers_are_its_neurons():
    net = _snntorch_net()
    feats = dict(extract_features(net, _stimuli(3), time_steps=T, zscore=False))
    assert list(feats) == ["1", "3", "6"]


# --- Norse ----------------------------------------------------------------------------------------

def _norse_cells():
    import norse.torch as norse

    torch.manual_seed(0)
    net = norse.SequentialState(
        nn.Conv2d(3, 4, 3, padding=1), norse.LIFCell(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), norse.LIFCell(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5), norse.LICell(),
    )
    return _boost(net, 12.0).eval()


def test_norse_cells_in_sequential_state():
    net = _norse_cells()
    x = _stimuli(seed=3)
    names = ["0", "1", "3", "6"]

    def run_one(model, xi):
        state = None  # Norse: a fresh state is no state
        for _ in range(T):
            _, state = model(xi, state)
        return "per_call"

    ref = _reference(net, x, names, run_one)
    adapter = adapter_for(net)
    assert isinstance(adapter, NorseAdapter) and adapter.model_step_mode(net) == "s"
    assert adapter.spiking_layers(net) == ["1", "3", "6"]
    _assert_batch_free_and_equal(net, x, names, ref, ["1", "3"])


def test_norse_sequence_modules():
    import norse.torch as norse

    torch.manual_seed(0)
    net = _boost(norse.SequentialState(
        norse.Lift(nn.Conv2d(3, 4, 3, padding=1)), norse.LIF(),
        norse.Lift(nn.Conv2d(4, 6, 3, stride=2, padding=1)), norse.LIF(),
    ), 12.0).eval()
    x = _stimuli(seed=5)
    names = ["0", "1", "3"]

    def run_one(model, xi):
        model(xi.unsqueeze(0).repeat(T, 1, 1, 1, 1))  # state=None: a fresh state
        return "sequence"

    ref = _reference(net, x, names, run_one)
    assert adapter_for(net).model_step_mode(net) == "m"
    _assert_batch_free_and_equal(net, x, names, ref, ["1", "3"])


class _NorseLoop(nn.Module):
    """The Norse tutorials' style: ``forward`` takes ``[T, B, ...]`` and loops over the cells itself."""

    def __init__(self):
        super().__init__()
        import norse.torch as norse

        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.lif = norse.LIFCell()

    def forward(self, x):
        state = None
        for t in range(x.shape[0]):
            z, state = self.lif(self.conv(x[t]), state)
        return z


def test_norse_model_looping_over_time_itself():
    torch.manual_seed(0)
    net = _boost(_NorseLoop(), 12.0).eval()
    x = _stimuli(seed=6)
    names = ["conv", "lif"]

    def run_one(model, xi):
        model(xi.unsqueeze(0).repeat(T, 1, 1, 1, 1))
        return "per_call"

    ref = _reference(net, x, names, run_one)
    # detected as a model of cells (one call per step), which it is not: the step count says so
    with pytest.raises(ValueError, match="step_mode='m'"):
        list(extract_features(net, x, layers=names, time_steps=T))
    _assert_batch_free_and_equal(net, x, names, ref, ["lif"], adapter=NorseAdapter(step_mode="m"))


def test_norse_movie_carries_returned_state_across_chunks():
    net = _norse_cells()
    frames = _stimuli(7, seed=7)
    chunked = dict(extract_features(net, frames, layers=["1", "3"], mode="movie", chunk_frames=3))
    rec = _Recorder(net, ["1", "3"])
    state = None
    with torch.no_grad():
        for t in range(7):
            _, state = net(frames[t:t + 1], state)
    rec.close()
    for name in ("1", "3"):
        np.testing.assert_allclose(chunked[name].numpy(), torch.cat(rec.seen[name]).reshape(7, -1).numpy(), atol=1e-6)


# --- plain torch and the zoo ----------------------------------------------------------------------

def test_plain_cnn():
    torch.manual_seed(0)
    net = _boost(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)), 1.0).eval()
    x = _stimuli(seed=8)
    names = ["2", "3", "5", "6"]
    assert detect_library(net) == "torch" and isinstance(adapter_for(net), NativeAdapter)
    ref = {n: [] for n in names}
    with torch.no_grad():
        for i in range(N):
            rec = _Recorder(net, names)
            net(x[i:i + 1])
            rec.close()
            for n in names:
                ref[n].append(rec.seen[n][0].reshape(-1))
    by = {bs: dict(extract_features(net, x, layers=names, mode="cnn", batch_size=bs, zscore=False)) for bs in (1, 3, 8)}
    for n in names:
        for bs in (1, 3, 8):  # no spikes here: batching may change the last bits
            np.testing.assert_allclose(by[bs][n].numpy(), torch.stack(ref[n]).numpy(), rtol=0, atol=1e-6)


def test_zoo_model():
    torch.manual_seed(0)
    model = _boost(create_model("sew_resnet8", num_classes=10), 1.0).eval()
    x = _stimuli(size=16, seed=9)
    names = list(model.scoring_layers)
    assert detect_library(model) == "cortexsnn" and isinstance(adapter_for(model), NativeAdapter)

    def run_one(m, xi):
        reset(m)
        m(xi.unsqueeze(0).repeat(T, 1, 1, 1, 1))
        return "sequence"

    ref = _reference(model, x, names, run_one)
    by = {bs: dict(extract_features(model, x, time_steps=T, batch_size=bs, zscore=False)) for bs in (1, 3, 8)}
    for n in names:
        np.testing.assert_array_equal(by[1][n].numpy(), by[3][n].numpy())
        np.testing.assert_array_equal(by[1][n].numpy(), by[8][n].numpy())
        np.testing.assert_allclose(by[1][n].numpy(), ref[n], rtol=0, atol=1e-6)
    assert 0.0 < float(by[1]["sn1"].mean()) < 1.0


# --- bad input ------------------------------------------------------------------------------------

class _Accumulator(nn.Module):
    """A stateful module no adapter knows: a running sum kept in a plain tensor attribute."""

    def __init__(self):
        super().__init__()
        self.total = None

    def forward(self, x):
        self.total = x if self.total is None or self.total.shape != x.shape else self.total + x
        return self.total


def test_unresettable_state_is_one_clear_error():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Accumulator()).eval()
    x = _stimuli(4)
    with pytest.raises(StateResetError) as info:
        list(extract_features(net, x, mode="cnn", layers=["1"]))
    msg = str(info.value)
    assert "_Accumulator" in msg and "'total'" in msg and "check_reset=False" in msg
    assert isinstance(info.value, CortexSNNError)


def test_random_model_is_caught_too():
    class Noisy(nn.Module):
        def forward(self, x):
            return x + torch.randn_like(x)

    with pytest.raises(StateResetError, match="random"):
        list(extract_features(nn.Sequential(nn.Conv2d(3, 2, 3), Noisy()), _stimuli(2), mode="cnn", layers=["1"]))


def test_unknown_or_mixed_adapters():
    import snntorch as snn
    from spikingjelly.activation_based import neuron

    net = nn.Sequential(nn.Conv2d(3, 2, 3))
    with pytest.raises(AdapterError, match="unknown adapter 'brian2'"):
        extract_features(net, _stimuli(2), adapter="brian2", mode="cnn", layers=["0"])
    with pytest.raises(AdapterError, match="several SNN libraries"):
        adapter_for(nn.Sequential(neuron.IFNode(), snn.Leaky(beta=0.5, init_hidden=True)))
    with pytest.raises(AdapterError, match="step_mode"):
        adapter_for(net, step_mode="m")
    with pytest.raises(AdapterError, match="step_mode must be"):
        SpikingJellyAdapter(step_mode="x")  # type: ignore[arg-type]
    assert issubclass(AdapterError, CortexSNNError) and issubclass(StateResetError, CortexSNNError)


# --- load_model_spec ------------------------------------------------------------------------------

def test_load_model_spec():
    model = load_model_spec("torch.nn:Linear", in_features=3, out_features=2)
    assert isinstance(model, nn.Linear) and model.out_features == 2
    net = load_model_spec("torchvision.models:resnet18", weights=None, num_classes=4)
    assert net.fc.out_features == 4


def test_load_model_spec_errors(tmp_path, monkeypatch):
    cases = [
        ("resnet18", {}, "not 'package.module:factory'"),
        ("torchvision.models:", {}, "not 'package.module:factory'"),
        ("no_such_package_xyz.nets:build", {}, "no module named 'no_such_package_xyz'"),
        ("torch.nn:NoSuchLayer", {}, "has no attribute 'NoSuchLayer'"),
        ("torch:pi", {}, "not a function or class"),
        ("torch:zeros", {"size": (2,)}, "returned a Tensor, not a torch.nn.Module"),
        ("torch.nn:Linear", {}, r"calling torch\.nn\.Linear\(\) failed: TypeError"),
    ]
    for spec, kwargs, message in cases:
        with pytest.raises(ModelSpecError, match=message):
            load_model_spec(spec, **kwargs)
    (tmp_path / "broken_nets_for_test.py").write_text(textwrap.dedent("""
        import not_installed_dependency_xyz
        def build():
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelSpecError, match="needs 'not_installed_dependency_xyz'"):
        load_model_spec("broken_nets_for_test:build")
    sys.modules.pop("broken_nets_for_test", None)
    assert issubclass(ModelSpecError, CortexSNNError) and issubclass(ModelSpecError, ValueError)
