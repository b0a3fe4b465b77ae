"""Feature extraction: shapes, reset semantics, z-scoring, streaming, and equality with a plain hook loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cortexsnn.models import create_model, record_layers
from cortexsnn.models.layers import SeqAdaptiveAvgPool2d, SeqBatchNorm2d, SeqConv2d, SpikingModel, make_neuron
from cortexsnn.neurons import reset
from cortexsnn.similarity.features import default_layers, extract_features, zscore_global


class TinySNN(SpikingModel):
    """conv -> BN -> LIF -> conv -> LIF -> pool: two stateful layers, small enough for exact loops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = SeqConv2d(3, 4, 3, padding=1)
        self.bn1 = SeqBatchNorm2d(4)
        self.sn1 = make_neuron("lif", tau=2.0)
        self.conv2 = SeqConv2d(4, 6, 3, stride=2, padding=1)
        self.sn2 = make_neuron("lif", tau=2.0)
        self.pool = SeqAdaptiveAvgPool2d((2, 2))
        self.scoring_layers = ["sn1", "conv2", "sn2", "pool"]
        with torch.no_grad():  # drive the neurons hard enough to spike
            self.conv1.weight.mul_(4.0)
            self.conv2.weight.mul_(4.0)
            self.bn1.running_mean.uniform_(-0.2, 0.2)
            self.bn1.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        self.prepare(x)
        return self.pool(self.sn2(self.conv2(self.sn1(self.bn1(self.conv1(x))))))


@pytest.fixture
def tiny():
    torch.manual_seed(1)
    return TinySNN().eval()


def _stimuli(n, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def _reference_static(model, x, names, steps):
    """A hand-written loop: one stimulus at a time, reset, repeat T, mean over T, flatten."""
    out = {n: [] for n in names}
    with torch.no_grad():
        for i in range(x.shape[0]):
            reset(model)
            with record_layers(model, names) as seen:
                model(x[i:i + 1].unsqueeze(0).repeat(steps, 1, 1, 1, 1))
            for n in names:
                out[n].append(torch.cat(seen[n]).mean(dim=0).reshape(-1))
    return {n: torch.stack(v).double().numpy() for n, v in out.items()}


def _np_zscore(a):
    return (a - a.mean()) / (a.std() + 1e-10)


def test_static_matches_hand_written_loop_and_zscore(tiny):
    x = _stimuli(7)
    ref = _reference_static(tiny, x, tiny.scoring_layers, 4)
    raw = dict(extract_features(tiny, x, mode="static", time_steps=4, batch_size=3, zscore=False))
    z = dict(extract_features(tiny, x, mode="static", time_steps=4, batch_size=3))
    assert list(raw) == tiny.scoring_layers == list(z)
    for name in tiny.scoring_layers:
        assert raw[name].dtype == torch.float32 and raw[name].device.type == "cpu"
        assert raw[name].shape == (7, ref[name].shape[1])
        np.testing.assert_allclose(raw[name].numpy(), ref[name], atol=1e-5)
        np.testing.assert_allclose(z[name].numpy(), _np_zscore(ref[name]), atol=1e-4)
    assert raw["sn1"].shape[1] == 4 * 16 * 16 and raw["pool"].shape[1] == 6 * 2 * 2
    # the spiking layers do spike, and not everywhere (the test would be vacuous otherwise)
    assert 0.0 < float(raw["sn2"].mean()) < 1.0


def test_static_independent_of_batch_composition(tiny):
    x = _stimuli(6, seed=3)
    by_one = dict(extract_features(tiny, x, batch_size=1, zscore=False))
    by_four = dict(extract_features(tiny, x, batch_size=4, zscore=False))
    reordered = dict(extract_features(tiny, x.flip(0), batch_size=6, zscore=False))
    for name in tiny.scoring_layers:
        np.testing.assert_allclose(by_one[name].numpy(), by_four[name].numpy(), atol=1e-6)
        np.testing.assert_allclose(by_one[name].numpy(), reordered[name].flip(0).numpy(), atol=1e-6)


def test_movie_state_carried_across_chunks(tiny):
    frames = _stimuli(11, seed=5)
    chunked = dict(extract_features(tiny, frames, mode="movie", chunk_frames=4))
    # reference: the whole movie as one sequence [T=11, B=1]
    reset(tiny)
    with torch.no_grad(), record_layers(tiny) as seen:
        tiny(frames.unsqueeze(1))
    reset(tiny)
    per_chunk_reset = {n: [] for n in tiny.scoring_layers}
    with torch.no_grad():
        for s in range(0, 11, 4):
            reset(tiny)
            with record_layers(tiny) as part:
                tiny(frames[s:s + 4].unsqueeze(1))
            for n in tiny.scoring_layers:
                piece = torch.cat(part[n])[:, 0]
                per_chunk_reset[n].append(piece.reshape(piece.shape[0], -1))
    for name in tiny.scoring_layers:
        whole = torch.cat(seen[name])[:, 0].reshape(11, -1)
        assert chunked[name].shape == whole.shape
        np.testing.assert_allclose(chunked[name].numpy(), whole.numpy(), atol=1e-6)  # no z-score either
    # resetting at each chunk would give different spiking features: the carried state matters
    broken = torch.cat(per_chunk_reset["sn2"])
    assert not torch.allclose(broken, chunked["sn2"])
    assert tiny.stateful is False and not tiny.training  # flags restored


def test_movie_lorafb_time_loop_pieces():
    torch.manual_seed(0)
    model = create_model("lorafb_snet18", num_classes=10).eval()
    frames = _stimuli(6, size=32, seed=2)
    names = ["maxpool", "recurrent_layer1.sub_module.1", "recurrent_layer4.sub_module.1", "avgpool"]
    chunked = dict(extract_features(model, frames, layers=names, mode="movie", chunk_frames=4))
    reset(model)
    with torch.no_grad(), record_layers(model, names) as seen:
        model(frames.unsqueeze(1))
    for name in names:
        whole = torch.cat(seen[name])[:, 0].reshape(6, -1)
        np.testing.assert_allclose(chunked[name].numpy(), whole.numpy(), atol=1e-5)


def test_zoo_model_shapes_and_default_layers():
    torch.manual_seed(0)
    model = create_model("sew_resnet18", num_classes=10).eval()
    x = _stimuli(3, size=32)
    feats = list(extract_features(model, x, time_steps=2, batch_size=2, zscore=False))
    assert [n for n, _ in feats] == model.scoring_layers
    sizes = {n: f.shape for n, f in feats}
    assert sizes["sn1"] == (3, 64 * 16 * 16) and sizes["maxpool"] == (3, 64 * 8 * 8)
    assert sizes["layer4.1"] == (3, 512 * 1 * 1) and sizes["avgpool"] == (3, 512)
    ref = _reference_static(model, x, ["layer2.0", "avgpool"], 2)
    np.testing.assert_allclose(dict(feats)["layer2.0"].numpy(), ref["layer2.0"], atol=1e-5)


def test_streaming_groups_and_spill_give_the_same_features(tiny, tmp_path):
    x = _stimuli(5, seed=9)
    full = dict(extract_features(tiny, x, max_bytes=None))
    # sn1 (1024 features) is 20 KiB for 5 stimuli: a 8 KiB budget spills it, groups the rest
    calls = []
    hook = tiny.conv1.register_forward_hook(lambda *a: calls.append(1))
    small = dict(extract_features(tiny, x, max_bytes=8 * 1024, spill_dir=str(tmp_path), batch_size=5))
    hook.remove()
    assert len(calls) > 2  # more than one pass over the stimuli (+ the shape probe)
    for name in tiny.scoring_layers:
        np.testing.assert_allclose(small[name].numpy(), full[name].numpy(), atol=1e-6)
    assert list(tmp_path.iterdir()) == []  # spill files are unlinked at once


def test_cnn_mode_torchvision_resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10).eval()
    names = default_layers(model, "cnn")
    assert names == ["relu", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
                     "layer4.0", "layer4.1", "avgpool"]
    x = _stimuli(4, size=32)
    feats = dict(extract_features(model, x, mode="cnn", batch_size=3, zscore=False))
    with torch.no_grad(), record_layers(model, names) as seen:
        model(x)
    for n in names:
        np.testing.assert_allclose(feats[n].numpy(), torch.cat(seen[n]).reshape(4, -1).numpy(), atol=1e-5)


def test_zscore_global_in_place():
    a = torch.randn(9, 13) * 3 + 2
    expected = _np_zscore(a.double().numpy())
    out = zscore_global(a, chunk_rows=2)
    assert out is a
    np.testing.assert_allclose(a.numpy(), expected, atol=1e-6)
    c = torch.full((4, 3), 5.0)
    assert torch.equal(zscore_global(c), torch.zeros(4, 3))  # a silent layer stays visible as zeros


def test_bad_inputs(tiny):
    x = _stimuli(2)
    with pytest.raises(ValueError, match="mode"):
        extract_features(tiny, x, mode="video")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        extract_features(tiny, x[0])
    with pytest.raises(TypeError, match="floating"):
        extract_features(tiny, (x * 10).to(torch.uint8))
    with pytest.raises(KeyError, match="no layers"):
        list(extract_features(tiny, x, layers=["nope"]))
    with pytest.raises(ValueError, match="time-major"):
        list(extract_features(nn.Sequential(nn.Flatten(0, 1), nn.Conv2d(3, 2, 3)), x, layers=["1"], mode="static"))
    with pytest.raises(ValueError, match="mode='cnn'"):
        list(extract_features(nn.Sequential(nn.Conv2d(3, 2, 3)), x, layers=["0"], mode="static"))
    with pytest.raises(ValueError, match="scoring_layers"):
        list(extract_features(nn.Sequential(nn.Conv2d(3, 2, 3)), x, mode="cnn"))
    with pytest.raises(ValueError, match="twice"):
        extract_features(tiny, x, layers=["sn1", "sn1"])
