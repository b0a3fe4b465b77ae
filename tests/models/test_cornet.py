import pytest
import torch

from cortexsnn.models import create_model
from cortexsnn.neurons import reset


def test_cornet_parameters_by_hand_and_seed_keys():
    model = create_model("cornet_rt", num_classes=10)
    expected = 0
    for cin, cout, k in [(3, 64, 7), (64, 128, 3), (128, 256, 3), (256, 512, 3)]:
        # conv_input (+bias), GroupNorm, conv1 (no bias), GroupNorm
        expected += cin * cout * k * k + cout + 2 * cout + cout * cout * 9 + 2 * cout
    expected += 512 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected
    keys = set(model.state_dict())
    assert {"V1.conv_input.weight", "V1.conv_input.bias", "V1.norm_input.weight", "V2.conv1.weight",
            "IT.norm1.bias", "decoder.linear.weight", "decoder.linear.bias"} <= keys
    assert "V1.conv1.bias" not in keys
    assert model.scoring_layers == ["V1", "V2", "V4", "IT", "decoder.avgpool"]


def _hooks(model, names):
    seen = {}
    for name in names:
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    return seen


def test_one_step_delay_between_areas():
    torch.manual_seed(0)
    model = create_model("cornet_rt", num_classes=10).eval()
    seen = _hooks(model, ("V1", "V2", "V4", "IT"))
    x = torch.rand(4, 2, 3, 64, 64)
    with torch.no_grad():
        model(x)
        first = {k: v.clone() for k, v in seen.items()}
        y = x.clone()
        y[1:] = torch.rand(3, 2, 3, 64, 64)  # change frames 1..3 only
        model(y)
    # V1 sees frame t at step t; V2 sees V1's step t-1; V4 V2's t-1, i.e. frame t-2; IT frame t-3
    torch.testing.assert_close(seen["V1"][0], first["V1"][0])
    assert not torch.allclose(seen["V1"][1], first["V1"][1])
    torch.testing.assert_close(seen["V2"][:2], first["V2"][:2])
    assert not torch.allclose(seen["V2"][2], first["V2"][2])
    torch.testing.assert_close(seen["V4"][:3], first["V4"][:3])
    torch.testing.assert_close(seen["IT"], first["IT"])  # frame 1 reaches IT at step 4
    assert seen["V1"].shape == (4, 2, 64, 16, 16) and seen["IT"].shape == (4, 2, 512, 2, 2)


def test_area_recurrence_by_hand():
    """V1 of CORnet-RT written out: out[t] = ReLU(GN(conv1(ReLU(GN(conv_in(x[t]))) + out[t-1])))."""
    torch.manual_seed(1)
    model = create_model("cornet_rt", num_classes=3).eval()
    v1 = model.V1
    x = torch.rand(3, 2, 3, 32, 32)
    f = torch.nn.functional
    with torch.no_grad():
        state, expected = 0.0, []
        for t in range(3):
            drive = torch.relu(f.group_norm(f.conv2d(x[t], v1.conv_input.weight, v1.conv_input.bias, 4, 3), 32,
                                            v1.norm_input.weight, v1.norm_input.bias))
            state = torch.relu(f.group_norm(f.conv2d(drive + state, v1.conv1.weight, None, 1, 1), 32,
                                            v1.norm1.weight, v1.norm1.bias))
            expected.append(state)
        reset(model)
        torch.testing.assert_close(v1(x), torch.stack(expected))


@pytest.mark.parametrize("name", ["cornet_rt", "s_cornet"])
def test_movie_in_chunks_equals_one_sequence(name):
    torch.manual_seed(2)
    model = create_model(name, num_classes=4).eval()
    x = torch.rand(6, 1, 3, 64, 64) * 3
    with torch.no_grad():
        whole = model(x)
        model.stateful = True
        reset(model)
        parts = torch.cat([model(x[:2]), model(x[2:5]), model(x[5:])])
    torch.testing.assert_close(parts, whole)
    with pytest.raises(ValueError, match="reset"):
        model(torch.rand(2, 3, 3, 64, 64))  # another batch size while holding state


def test_spiking_cornet_spikes():
    model = create_model("s_cornet", num_classes=3).eval()
    seen = _hooks(model, ("V1", "IT"))
    with torch.no_grad():
        out = model(torch.rand(3, 1, 3, 64, 64) * 4)
    assert out.shape == (3, 1, 3)
    assert set(seen["V1"].unique().tolist()) <= {0.0, 1.0} and seen["V1"].sum() > 0
