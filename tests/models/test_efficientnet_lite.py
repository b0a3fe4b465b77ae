"""EfficientNet-Lite0 of the zoo against the reference implementation (efficientnet_lite_pytorch) with
the same ImageNet weights file: same keys, same logits, same classes; fx-traceable; scored as a CNN."""
from __future__ import annotations

import pytest
import torch

from cortexsnn.models import CheckpointLayoutError, create_model, load_weights
from cortexsnn.models.efficientnet_lite import LITE0_BLOCKS, EfficientNetLite
from cortexsnn.models.pretrained import fetch_pretrained, get_pretrained_cfg

reference_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="the oracle: pip install efficientnet-lite-pytorch")


def _weights_path():
    return fetch_pretrained("efficientnet_lite0")


def _reference(image_size: int = 224):
    ref = reference_pkg.EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
    ref.load_state_dict(state, strict=True)
    return ref.eval()


@pytest.fixture(scope="module")
def ours():
    return create_model("efficientnet_lite0", pretrained=True).eval()


def test_block_table_and_keys_match_the_reference(ours):
    ref = _reference()
    # the reference's decoded stage table (r, k, s, e, i, o) is ours
    from efficientnet_lite_pytorch.utils import efficientnet_lite

    args, params = efficientnet_lite(1.0, 1.0, 224, 0.2)
    assert [(a.num_repeat, a.kernel_size, a.stride[0], a.expand_ratio, a.input_filters, a.output_filters)
            for a in args] == list(LITE0_BLOCKS)
    assert params.batch_norm_epsilon == 1e-3 and params.relu_fn == "relu6"
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    file_keys = torch.load(_weights_path(), map_location="cpu", weights_only=True).keys()
    assert list(ours_sd) == list(ref_sd) and sorted(ours_sd) == sorted(file_keys) and len(ours_sd) == 296
    assert all(ours_sd[k].shape == ref_sd[k].shape for k in ref_sd)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 4_652_008
    assert len(ours._blocks) == 16 and ours._bn0.eps == 1e-3


@pytest.mark.parametrize("size", [224, 231])
def test_same_logits_as_the_reference_on_random_images(ours, size):
    ref = _reference(size)  # the reference pads for a fixed size; 231 checks the odd-size "SAME" padding
    torch.manual_seed(0)
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert (got - expected).abs().max().item() <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert expected.std() > 0.5  # real logits, not a degenerate output


@pytest.mark.data
def test_same_logits_and_classes_on_the_92_images(ours, shared_data):
    from cortexsnn.data.neural import load_kriegeskorte92
    from cortexsnn.data.stimuli import stimuli_from_array

    folder = shared_data / "kriegeskorte92"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    cfg = get_pretrained_cfg("efficientnet_lite0")
    images = stimuli_from_array(load_kriegeskorte92(folder).images, size=224, normalization=(cfg.mean, cfg.std)).tensor
    assert images.shape == (92, 3, 224, 224)
    # (x * 255 - 127) / 128 exactly
    raw = stimuli_from_array(load_kriegeskorte92(folder).images, size=224, normalization="none").tensor
    torch.testing.assert_close(images, (raw * 255 - 127) / 128, rtol=0, atol=1e-5)
    ref = _reference()
    with torch.no_grad():
        expected, got = ref(images), ours(images)
    assert (got - expected).abs().max().item() <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))
    # trained weights: the 24 animal photos mostly land in ImageNet's animal classes (0-397), the 44
    # objects and scenes mostly not (measured 23 / 24 and 1 / 44); a random network's top-1 probability is ~0.001
    categories = load_kriegeskorte92(folder).categories
    top = got.argmax(1)
    animals = [i for i, c in enumerate(categories) if c.startswith("nonhuman")]
    inanimate = [i for i, c in enumerate(categories) if c.endswith("inanimate")]
    assert len(animals) == 24 and len(inanimate) == 44
    assert (top[animals] < 398).sum() >= 20 and (top[inanimate] < 398).sum() <= 5
    assert got.softmax(1).max(1).values.median() > 0.1


def test_fx_traces_with_one_relu6_module_per_call_site(ours):
    graph_module = torch.fx.symbolic_trace(ours)
    acts = [n.target for n in graph_module.graph.nodes
            if n.op == "call_module" and isinstance(ours.get_submodule(n.target), torch.nn.ReLU6)]
    assert len(acts) == len(set(acts)) == 1 + 1 + 2 * 15 + 1  # stem, block 0 (no expansion), 15 blocks, head
    assert acts[0] == "_stem_act" and acts[-1] == "_head_act" and "_blocks.1._expand_act" in acts
    convs = [n for n in graph_module.graph.nodes
             if n.op == "call_module" and isinstance(ours.get_submodule(n.target), torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 + 3 * 15 + 1
    for size in (224, 97):  # the traced padding follows the input size
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            torch.testing.assert_close(graph_module(x), ours(x), rtol=0, atol=0)


def test_pretrained_cfg_and_scoring_layers(ours):
    cfg = ours.pretrained_cfg
    assert cfg.name == "efficientnet_lite0.imagenet" and cfg.time_steps is None and cfg.num_classes == 1000
    assert cfg.input_size == (3, 224, 224)
    assert cfg.mean == pytest.approx((127 / 255,) * 3) and cfg.std == pytest.approx((128 / 255,) * 3)
    assert ours.feature_mode == "cnn"
    assert ours.scoring_layers == ["_stem_act"] + [f"_blocks.{i}" for i in range(16)] + ["_head_act", "_avg_pooling"]
    assert create_model("efficientnet_lite0").pretrained_cfg is None


def test_extract_features_scores_it_as_a_cnn(ours):
    from cortexsnn.similarity.features import default_layers, extract_features

    x = torch.randn(5, 3, 64, 64)
    layers = default_layers(ours, "cnn")
    feats = dict(extract_features(ours, x, mode="cnn", batch_size=2))
    assert list(feats) == layers and len(layers) == 19
    assert feats["_stem_act"].shape == (5, 32 * 32 * 32) and feats["_avg_pooling"].shape == (5, 1280)
    assert all(torch.isfinite(f).all() for f in feats.values())
    with pytest.raises(ValueError, match="mode='cnn'"):
        list(extract_features(ours, x, mode="static", time_steps=2))


def test_refuses_time_major_input_and_wrong_weights(ours, tmp_path):
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        ours(torch.rand(2, 1, 3, 32, 32))
    # weights of another architecture, both ways
    sew = create_model("sew_resnet8", num_classes=10)
    torch.save(sew.state_dict(), tmp_path / "sew.pth")
    with pytest.raises(CheckpointLayoutError, match="missing keys"):
        load_weights(EfficientNetLite(), tmp_path / "sew.pth")
    with pytest.raises(CheckpointLayoutError, match="another architecture"):
        load_weights(create_model("sew_resnet18"), _weights_path())
    # the right architecture with another classifier: the shapes are reported
    with pytest.raises(CheckpointLayoutError, match=r"_fc.weight: checkpoint \(1000, 1280\) vs model \(10, 1280\)"):
        create_model("efficientnet_lite0", pretrained=True, num_classes=10)


def test_untrained_model_trains_and_drops_connections_only_in_training():
    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", num_classes=7, drop_connect_rate=0.5)
    x = torch.randn(3, 3, 48, 48)
    out = model(x)
    assert out.shape == (3, 7)
    out.sum().backward()
    assert model._conv_stem.weight.grad is not None and model._conv_stem.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
