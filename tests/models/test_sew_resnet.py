import pytest
import torch
import torchvision

from cortexsnn.models import UnknownModelError, create_model, list_models
from cortexsnn.models.sew_resnet import connect
from cortexsnn.neurons import reset

SEW = ["sew_resnet18", "sew_resnet34", "sew_resnet50", "sew_resnet101", "sew_resnet152"]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_parameter_counts_equal_torchvision(depth):
    reference = sum(p.numel() for p in getattr(torchvision.models, f"resnet{depth}")().parameters())
    for prefix in ("sew_resnet", "spiking_resnet"):
        model = create_model(f"{prefix}{depth}")
        assert sum(p.numel() for p in model.parameters()) == reference


def test_state_dict_keys_are_torchvision_keys():
    ours = create_model("sew_resnet18").state_dict()
    theirs = torchvision.models.resnet18().state_dict()
    assert list(ours) == list(theirs) and len(ours) == 122


@pytest.mark.parametrize("name", list_models("*res*"))
def test_every_resnet_runs_multistep(name):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, 32, 32))
    assert out.shape == (2, 3, 7) and torch.isfinite(out).all()
    layers = dict(model.named_modules())
    assert model.scoring_layers[:2] == ["sn1", "maxpool"] and model.scoring_layers[-1] == "avgpool"
    assert all(name in layers for name in model.scoring_layers)


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
