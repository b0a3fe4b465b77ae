import torch
import torchvision

from cortexsnn.models import create_model


def test_spiking_mobilenet_matches_mobilenet_v2_parameters():
    model = create_model("spiking_mobilenet")
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in torchvision.models.mobilenet_v2().parameters()
    )
    with torch.no_grad():
        out = create_model("spiking_mobilenet", num_classes=4).eval()(torch.rand(2, 1, 3, 32, 32))
    assert out.shape == (2, 1, 4)
    residual = [m.use_residual for m in model.features if hasattr(m, "use_residual")]
    assert sum(residual) == 10  # blocks that keep channels and stride: 1 + 2 + 3 + 2 + 2


def test_cornet_parameters_by_hand_and_delay():
    model = create_model("cornet_rt", num_classes=10).eval()
    expected = 0
    for cin, cout, k in [(3, 64, 7), (64, 128, 3), (128, 256, 3), (256, 512, 3)]:
        expected += cin * cout * k * k + cout + 2 * cout + cout * cout * 9 + 2 * cout
    expected += 512 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected
    x = torch.rand(4, 2, 3, 64, 64)
    seen = {}
    for name in ("V1", "V2", "IT"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    with torch.no_grad():
        model(x)
        # V2 at t = 0 sees no input yet (zeros): its output does not depend on the image
        first_v2 = seen["V2"][0].clone()
        model(torch.rand(4, 2, 3, 64, 64))
    torch.testing.assert_close(seen["V2"][0], first_v2)
    assert not torch.allclose(seen["V2"][1], first_v2)
    assert seen["V1"].shape == (4, 2, 64, 16, 16) and seen["IT"].shape == (4, 2, 512, 2, 2)


def test_spiking_cornet_spikes():
    model = create_model("s_cornet", num_classes=3).eval()
    seen = {}
    model.V1.register_forward_hook(lambda m, i, o: seen.__setitem__("V1", o))
    with torch.no_grad():
        model(torch.rand(3, 1, 3, 64, 64) * 4)
    assert set(seen["V1"].unique().tolist()) <= {0.0, 1.0}
