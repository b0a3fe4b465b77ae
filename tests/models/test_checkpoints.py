import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _sew_layouts import sew_container_layout as _sew_container_layout  # noqa: E402
from _sew_layouts import sew_original_layout as _sew_original_layout  # noqa: E402

from cortexsnn.models import create_model
from cortexsnn.models.checkpoints import (
    CheckpointLayoutError,
    convert_state_dict,
    detect_layout,
    load_safetensors,
    load_weights,
    read_checkpoint,
    save_safetensors,
)


def _spikingjelly_sew_resnet18(cnf="ADD"):
    sj_model = pytest.importorskip("spikingjelly.activation_based.model.sew_resnet")
    from spikingjelly.activation_based import functional, neuron, surrogate

    torch.manual_seed(0)
    model = sj_model.sew_resnet18(
        cnf=cnf, spiking_neuron=neuron.IFNode, surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True
    )
    functional.set_step_mode(model, "m")
    with torch.no_grad():  # non-trivial batch-norm statistics
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval(), functional


@pytest.mark.parametrize("layout", ["torchvision", "sew-original", "sew-container"])
def test_spikingjelly_weights_give_the_same_output(layout, tmp_path):
    reference, functional = _spikingjelly_sew_resnet18()
    state = reference.state_dict()
    state = {"torchvision": dict, "sew-original": _sew_original_layout, "sew-container": _sew_container_layout}[layout](state)
    assert detect_layout(state) == layout
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    ours = create_model("sew_resnet18").eval()
    load_weights(ours, path)
    x = torch.rand(3, 2, 3, 64, 64) * 2
    with torch.no_grad():
        functional.reset_net(reference)
        expected = reference(x)
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert expected.abs().sum() > 0


def test_seed_training_checkpoint_with_namespace(tmp_path):
    model = create_model("sew_resnet8", num_classes=10)
    record = {
        "model": {f"module.{k}": v for k, v in model.state_dict().items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "lr_scheduler": {"last_epoch": 3},
        "epoch": 3,
        "args": argparse.Namespace(model="sew_resnet8", lr=0.1, T=4),
        "max_test_acc": 12.5,
    }
    path = tmp_path / "checkpoint_latest.pth"
    torch.save(record, path)
    read = read_checkpoint(path)
    assert read["args"].T == 4 and read["epoch"] == 3
    fresh = create_model("sew_resnet8", num_classes=10)
    load_weights(fresh, path)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointLayoutError, match="refused"):
        read_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_checkpoint_of_another_architecture_lists_keys(tmp_path):
    source = create_model("sew_resnet34").state_dict()
    with pytest.raises(CheckpointLayoutError, match=r"unexpected keys \(\d+\): layer1\.2\."):
        load_weights(create_model("sew_resnet18"), source)
    with pytest.raises(CheckpointLayoutError, match="shape mismatches"):
        load_weights(create_model("sew_resnet18", num_classes=10), create_model("sew_resnet18").state_dict())
    info = load_weights(create_model("sew_resnet18", num_classes=10), create_model("sew_resnet18").state_dict(), skip=("fc.",))
    assert info["missing"] == [] and info["unexpected"] == []


def test_safetensors_round_trip(tmp_path):
    model = create_model("sew_resnet8", num_classes=4).eval()
    path = save_safetensors(model, tmp_path / "m.safetensors", metadata={"model": "sew_resnet8", "T": 4})
    fresh = create_model("sew_resnet8", num_classes=4).eval()
    meta = load_safetensors(fresh, path)
    assert meta["model"] == "sew_resnet8" and meta["T"] == "4"
    x = torch.rand(2, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointLayoutError):
        load_safetensors(fresh, tmp_path / "bad.safetensors")


def test_convert_strips_data_parallel_prefix():
    state = {"module.conv1.weight": torch.zeros(1), "module.fc.bias": torch.zeros(1)}
    assert list(convert_state_dict(state)) == ["conv1.weight", "fc.bias"]


def test_lorafb_checkpoint_into_sew_resnet_is_refused_clearly():
    weights = create_model("lorafb_snet18", num_classes=10).state_dict()
    with pytest.raises(CheckpointLayoutError, match=r"another architecture.*\n.*missing keys.*layer1\.0\.conv1\.weight"
                       r"[\s\S]*unexpected keys.*recurrent_layer1\."):
        load_weights(create_model("sew_resnet18", num_classes=10), weights)
    # the seed's DataParallel checkpoints of LoRaFB-SNet map one to one
    fresh = create_model("lorafb_snet18", num_classes=10)
    load_weights(fresh, {"model": {f"module.{k}": v for k, v in weights.items()}})
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), weights.values()))


@pytest.mark.parametrize("cnf", ["AND", "IAND"])
def test_binary_connect_functions_match_spikingjelly_basic_blocks(cnf):
    """SpikingJelly's BasicBlock computes g(S, A) with IAND = S * (1 - A), the paper's (not A) and S."""
    reference, functional = _spikingjelly_sew_resnet18(cnf)
    with torch.no_grad():  # larger batch-norm gains keep the binary network active in depth
        for name, param in reference.named_parameters():
            if name.endswith("weight") and param.dim() == 1:
                param.fill_(5.0)
    ours = create_model("sew_resnet18", cnf=cnf).eval()
    load_weights(ours, reference.state_dict())
    blocks = ["layer1.1", "layer2.1", "layer3.1", "layer4.1"]
    seen = {"sj": {}, "ours": {}}
    for key, model in (("sj", reference), ("ours", ours)):
        for name in blocks:
            model.get_submodule(name).register_forward_hook(
                lambda m, i, o, key=key, name=name: seen[key].__setitem__(name, o))
    x = torch.rand(2, 2, 3, 64, 64) * 2
    with torch.no_grad():
        functional.reset_net(reference)
        expected = reference(x)
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    for name in blocks:
        assert torch.equal(seen["ours"][name], seen["sj"][name]), name
    assert seen["sj"]["layer3.1"].sum() > 0  # the comparison is not between silent networks
