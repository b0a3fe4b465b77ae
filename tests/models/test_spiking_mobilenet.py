import torch
import torchvision

from cortexsnn.models import create_model
from cortexsnn.models.checkpoints import load_weights


def test_parameters_equal_torchvision_mobilenet_v2():
    model = create_model("spiking_mobilenet")
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in torchvision.models.mobilenet_v2().parameters()
    )
    residual = [m.residual for m in model.modules() if hasattr(m, "residual")]
    assert len(residual) == 17 and sum(residual) == 10  # keep width and stride: 0 + 1 + 2 + 3 + 2 + 2 + 0


def test_seed_layout_and_scoring_layers():
    model = create_model("spikingmobilenet", num_classes=4)
    keys = set(model.state_dict())
    # stage 0 has no expansion: depthwise (layers.0..2) and projection (layers.3..5)
    assert {"conv1.weight", "bn1.running_mean", "layers.0.0.layers.0.weight", "layers.0.0.layers.4.bias",
            "layers.1.0.layers.6.weight", "layers.7.weight", "layers.8.running_var", "fc.weight"} <= keys
    assert model.scoring_layers[0] == "sn1" and model.scoring_layers[-2:] == ["layers.9", "avgpool"]
    assert len(model.scoring_layers) == 1 + 17 + 2
    load_weights(create_model("spiking_mobilenet", num_classes=4), model.state_dict())


def test_spikes_and_residual_counts():
    model = create_model("spiking_mobilenet", num_classes=4).eval()
    seen = {}
    model.layers[1][1].register_forward_hook(lambda m, i, o: seen.__setitem__("res", o))
    model.layers[9].register_forward_hook(lambda m, i, o: seen.__setitem__("last", o))
    with torch.no_grad():
        out = model(torch.rand(2, 1, 3, 32, 32) * 4)
    assert out.shape == (2, 1, 4)
    assert set(seen["last"].unique().tolist()) <= {0.0, 1.0}
    assert set(seen["res"].unique().tolist()) <= {0.0, 1.0, 2.0}  # ADD of two spike maps


def test_convolutions_after_the_stem_save_spike_inputs_compactly():
    from cortexsnn.models.layers import SeqConv2d

    flags = {n: m.spike_input for n, m in create_model("spiking_mobilenet").named_modules() if isinstance(m, SeqConv2d)}
    assert flags.pop("conv1") is False and len(flags) == 2 + 16 * 3 + 1 and all(flags.values())
