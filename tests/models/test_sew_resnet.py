import pytest
import torch
import torchvision

from cortexsnn.models import UnknownModelError, create_model
from cortexsnn.models.sew_resnet import connect
from cortexsnn.neurons import reset

SEW = ["sew_resnet18", "sew_resnet34", "sew_resnet50", "sew_resnet101", "sew_resnet152"]


@pytest.mark.parametrize("depth", [18, 34, 50, pytest.param(101, marks=pytest.mark.slow),
                                   pytest.param(152, marks=pytest.mark.slow)])
def test_parameter_counts_equal_torchvision(depth):
    reference = sum(p.numel() for p in getattr(torchvision.models, f"resnet{depth}")().parameters())
    for prefix in ("sew_resnet", "spiking_resnet"):
        model = create_model(f"{prefix}{depth}")
        assert sum(p.numel() for p in model.parameters()) == reference


def test_state_dict_keys_are_torchvision_keys():
    ours = create_model("sew_resnet18").state_dict()
    theirs = torchvision.models.resnet18().state_dict()
    assert list(ours) == list(theirs) and len(ours) == 122


def test_scoring_layers_of_sew_resnet18():
    assert create_model("sew_resnet18").scoring_layers == [
        "sn1", "maxpool", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
        "layer3.0", "layer3.1", "layer4.0", "layer4.1", "avgpool",
    ]


def test_connect_functions_follow_the_paper():
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])
    s = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert connect(a, s, "ADD").tolist() == [0, 1, 1, 2]
    assert connect(a, s, "AND").tolist() == [0, 0, 0, 1]
    assert connect(a, s, "IAND").tolist() == [0, 1, 0, 0]  # (not A) and S
    assert connect(a, s, "OR").tolist() == [0, 1, 1, 1]
    with pytest.raises(ValueError, match="unknown connect function"):
        connect(a, s, "XOR")


@pytest.mark.parametrize("cnf", ["AND", "IAND"])
def test_binary_connect_functions_keep_block_outputs_binary(cnf):
    model = create_model("sew_resnet18", cnf=cnf, num_classes=5).eval()
    outputs = {}
    model.layer2[1].register_forward_hook(lambda m, i, o: outputs.setdefault("block", o))
    with torch.no_grad():
        model(torch.rand(2, 2, 3, 32, 32) * 4)
    assert set(outputs["block"].unique().tolist()) <= {0.0, 1.0}


def test_neuron_choice_and_state_reset():
    model = create_model("sew_resnet8", neuron="plif", num_classes=3)
    assert any(n.endswith(".w") or n == "sn1.w" for n, _ in model.named_parameters())
    lif = create_model("sew_resnet8", neuron="lif", neuron_kwargs={"tau": 2.0}).eval()
    stem = []
    lif.sn1.register_forward_hook(lambda module, inputs, output: stem.append(output))
    x = torch.rand(3, 1, 3, 32, 32) * 8
    with torch.no_grad():
        lif(x), lif(x)
    assert torch.equal(stem[0], stem[1])  # each forward starts from the initial state
    lif.stateful = True
    reset(lif)
    with torch.no_grad():
        lif(x), lif(x)
    assert torch.equal(stem[2], stem[0]) and not torch.equal(stem[3], stem[0])  # state carried over


def test_bad_input_and_names():
    with pytest.raises(UnknownModelError, match="known models: .*sew_resnet18"):
        create_model("sew_resnet19")
    model = create_model("sew_resnet18")
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="3-channel images, got 1"):
        model(torch.rand(1, 1, 1, 32, 32))
    with pytest.raises(ValueError, match="neuron type"):
        create_model("sew_resnet18", neuron="hodgkin-huxley")


def _basic_block_params(cin, c, downsample):
    return cin * c * 9 + 2 * c + c * c * 9 + 2 * c + (cin * c + 2 * c if downsample else 0)


def _resnext_block_params(cin, c, downsample, inverted):
    hidden = cin * (6 if inverted else 1) // (2 if cin == c else 1)
    params = cin * hidden + 2 * hidden + hidden * (hidden // 32) * 9 + 2 * hidden + hidden * c + 2 * c
    return params + (cin * c + 2 * c if downsample else 0)


@pytest.mark.parametrize("name, depth, widths, kind", [
    ("sew_resnet8", 1, (128, 256, 512), "basic"), ("sew_resnet14", 2, (128, 256, 512), "basic"),
    ("wide_sew_resnet8", 1, (512, 1024, 2048), "basic"),
    ("sew_resnext11", 1, (128, 256, 512), "resnext"), ("sew_resnext20", 2, (128, 256, 512), "resnext"),
    ("sew_resnext20_inverted", 2, (128, 256, 512), "inverted"),
])
def test_shallow_models_parameter_counts_by_hand(name, depth, widths, kind):
    expected = 3 * 64 * 49 + 2 * 64 + widths[-1] * 10 + 10
    cin = 64
    for c in widths:
        for i in range(depth):
            if kind == "basic":
                expected += _basic_block_params(cin, c, i == 0)
            else:
                expected += _resnext_block_params(cin, c, i == 0, kind == "inverted")
            cin = c
    model = create_model(name, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == expected
    # the seed's names: stages block1..3
    assert model.scoring_layers[2] == "block1.0" and f"block3.{depth - 1}" in model.scoring_layers
    assert len(model.scoring_layers) == 3 + 3 * depth


def test_checkpointed_stages_give_the_same_gradients_and_state():
    torch.manual_seed(0)
    plain = create_model("sew_resnet8", num_classes=4, neuron="lif")
    lean = create_model("sew_resnet8", num_classes=4, neuron="lif", checkpoint_stages=True)
    lean.load_state_dict(plain.state_dict())
    x = torch.rand(3, 2, 3, 32, 32) * 3
    calls = {"plain": 0, "lean": 0}
    plain.block2.register_forward_pre_hook(lambda *a: calls.__setitem__("plain", calls["plain"] + 1))
    lean.block2.register_forward_pre_hook(lambda *a: calls.__setitem__("lean", calls["lean"] + 1))
    results = []
    for model in (plain, lean):
        out = model(x)
        out.mean(0).logsumexp(-1).sum().backward()
        results.append((out, [m.v.clone() for m in model.modules() if hasattr(m, "v_threshold")]))
    assert calls == {"plain": 1, "lean": 2}  # the checkpointed stage ran again in backward (it may stop early, so count entries)
    torch.testing.assert_close(results[1][0], results[0][0])
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a)  # the final neuron state is the same
    for (name, a), b in zip(plain.named_parameters(), lean.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)
    for (name, a), b in zip(plain.named_buffers(), lean.buffers()):
        torch.testing.assert_close(b, a, msg=name)  # batch-norm statistics updated once


def test_record_layers_gives_time_major_outputs():
    from cortexsnn.models.layers import record_layers

    model = create_model("sew_resnet18", num_classes=4).eval()
    with torch.no_grad(), record_layers(model) as seen:
        model(torch.rand(3, 2, 3, 64, 64))
    shapes = {name: torch.cat(parts).shape for name, parts in seen.items()}
    assert list(shapes) == model.scoring_layers
    assert shapes["sn1"] == (3, 2, 64, 32, 32) and shapes["layer4.1"] == (3, 2, 512, 2, 2)
    assert shapes["avgpool"] == (3, 2, 512, 1, 1)
    with pytest.raises(KeyError, match="no layers"):
        with record_layers(model, ["layer9"]):
            pass


@pytest.mark.parametrize("name, neuron", [("sew_resnet8", "lif"), ("spiking_resnet18", "if")])
def test_spike_inputs_saved_as_uint8_give_the_same_gradients(name, neuron):
    from cortexsnn.models.layers import SeqConv2d

    torch.manual_seed(0)
    from cortexsnn.models.layers import set_compact_spikes

    compact = set_compact_spikes(create_model(name, num_classes=4, neuron=neuron), True)
    flags = {n: m.spike_input for n, m in compact.named_modules() if isinstance(m, SeqConv2d)}
    assert flags.pop("conv1") is False and all(flags.values())  # the stem sees the image
    plain = create_model(name, num_classes=4, neuron=neuron)
    plain.load_state_dict(compact.state_dict())
    for m in plain.modules():
        if isinstance(m, SeqConv2d):
            m.spike_input = False
    x = torch.rand(2, 2, 3, 32, 32) * 3
    packed = []

    def note(t):
        packed.append(t.dtype)
        return t

    for model in (plain, compact):
        with torch.autograd.graph.saved_tensors_hooks(note, lambda t: t):
            out = model(x)
        out.mean(0).logsumexp(-1).sum().backward()
    assert torch.uint8 in packed
    for (n, a), b in zip(plain.named_parameters(), compact.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=0, msg=n)
    assert not any(m.spike_input for m in create_model("sew_resnet8", neuron="relu").modules() if isinstance(m, SeqConv2d))


def test_max_pool_keeping_only_indices_has_torch_gradients():
    from cortexsnn.models.layers import SeqMaxPool2d

    torch.manual_seed(0)
    spikes = (torch.rand(2, 3, 4, 9, 10) > 0.6).float().requires_grad_()  # ties everywhere
    analog = torch.randn(2, 3, 4, 9, 10, requires_grad=True)
    pool = SeqMaxPool2d(kernel_size=3, stride=2, padding=1)
    for x in (spikes, analog):
        out = pool(x)
        weights = torch.randn_like(out)
        (grad,) = torch.autograd.grad((out * weights).sum(), x)
        ref_out = torch.nn.functional.max_pool2d(x.flatten(0, 1), 3, 2, 1)
        (ref_grad,) = torch.autograd.grad((ref_out * weights.flatten(0, 1)).sum(), x)
        torch.testing.assert_close(out.flatten(0, 1), ref_out, rtol=0, atol=0)
        torch.testing.assert_close(grad, ref_grad)
