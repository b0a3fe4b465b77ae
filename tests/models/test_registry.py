"""Every model of the zoo: registered, multi-step on [T, B, C, H, W], scored layers recorded."""
import pytest
import torch

from cortexsnn.models import UnknownModelError, create_model, list_models, register_model
from cortexsnn.models.layers import record_layers

EXPECTED = {
    *(f"{p}{d}" for p in ("sew_resnet", "spiking_resnet", "lorafb_snet") for d in (18, 34, 50, 101, 152)),
    "sew_resnet8", "sew_resnet14", "wide_sew_resnet8", "wide_sew_resnet14", "sew_resnext11", "sew_resnext20",
    "sew_resnext11_inverted", "sew_resnext20_inverted", "spiking_mobilenet", "spikingmobilenet",
    "lorafb_cnet18", "cornet_rt", "s_cornet",
}
# big models (> 40 M parameters): seconds each just to initialise on a loaded 2-core machine
SLOW = {"sew_resnet101", "sew_resnet152", "spiking_resnet101", "spiking_resnet152", "lorafb_snet101",
        "lorafb_snet152", "wide_sew_resnet14"}
DEEP = sorted(EXPECTED - {"spikingmobilenet"})  # an alias, checked below


def test_registry_lists_every_model():
    assert EXPECTED <= set(list_models())
    assert list_models("lorafb_*") == sorted(n for n in EXPECTED if n.startswith("lorafb_"))
    assert list_models() == sorted(list_models())
    assert type(create_model("spikingmobilenet")) is type(create_model("spiking_mobilenet"))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as info:
        create_model("sew_resnet19")
    message = str(info.value)
    assert "unknown model 'sew_resnet19'" in message and "sew_resnet18" in message and "s_cornet" in message


def test_a_name_cannot_be_registered_twice():
    def sew_resnet18():  # same name, another function
        raise AssertionError

    with pytest.raises(ValueError, match="registered twice"):
        register_model(sew_resnet18)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in DEEP])
def test_model_runs_multistep_and_records_its_scored_layers(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5).eval()
    assert isinstance(model.scoring_layers, list) and len(model.scoring_layers) >= 4
    assert len(set(model.scoring_layers)) == len(model.scoring_layers)
    x = torch.rand(2, 1, 3, 32, 32)
    with torch.no_grad(), record_layers(model) as seen:
        out = model(x)
    assert out.shape == (2, 1, 5) and torch.isfinite(out).all()
    for layer, parts in seen.items():
        response = torch.cat(parts)
        assert response.shape[:2] == (2, 1), f"{layer}: {tuple(response.shape)}"


def test_scored_layer_lists_follow_the_seeds():
    assert create_model("sew_resnet50").scoring_layers == (
        ["sn1", "maxpool"] + [f"layer{s}.{i}" for s, n in zip(range(1, 5), (3, 4, 6, 3)) for i in range(n)] + ["avgpool"]
    )
    assert create_model("lorafb_snet18").scoring_layers == ["sn1", "maxpool"] + [
        f"recurrent_layer{s}.sub_module.{i}" for s in range(1, 5) for i in range(2)] + ["avgpool"]
    assert create_model("sew_resnet14").scoring_layers == ["sn1", "maxpool"] + [
        f"block{s}.{i}" for s in range(1, 4) for i in range(2)] + ["avgpool"]
    assert create_model("s_cornet").scoring_layers == ["V1", "V2", "V4", "IT", "decoder.avgpool"]


@pytest.mark.parametrize("name", ["sew_resnet18", "lorafb_snet18", "spiking_mobilenet", "s_cornet"])
def test_bad_images_get_one_clear_message(name):
    model = create_model(name, num_classes=3)
    with pytest.raises(ValueError, match=r"time-major batch \[T, B, C, H, W\]"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="3-channel images, got 1 channels; pass in_channels=1"):
        model(torch.rand(2, 1, 1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(2, 1, 3, 8, 8))
    gray = create_model(name, num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert gray(torch.rand(2, 1, 1, 32, 32)).shape == (2, 1, 3)


def test_neuron_types_are_selectable():
    for neuron, kind in (("if", "IFNode"), ("lif", "LIFNode"), ("plif", "PLIFNode")):
        model = create_model("sew_resnet8", neuron=neuron, num_classes=3)
        kinds = {type(m).__name__ for m in model.modules() if hasattr(m, "v_threshold")}
        assert kinds == {kind}
    assert create_model("sew_resnet8", neuron="lif", neuron_kwargs={"tau": 3.0}).sn1.tau == 3.0
    assert {type(m).__name__ for m in create_model("lorafb_snet18").modules() if hasattr(m, "v_threshold")} == {"LIFNode"}
    with pytest.raises(ValueError, match="unknown neuron type 'hh'"):
        create_model("sew_resnet8", neuron="hh")
