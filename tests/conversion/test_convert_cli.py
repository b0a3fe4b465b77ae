"""``cortexsnn convert`` and saving / loading converted networks."""
from __future__ import annotations

import json
import stat

import pytest
import torch
from torch import nn

from cortexsnn.cli.main import main
from cortexsnn.conversion import ConversionConfig, ConversionError, convert, load_converted, rate_readout, save_converted
from cortexsnn.neurons import reset


def _small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 8, 3, stride=2),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_save_and_load_give_the_same_spikes(tmp_path):
    ann = _small_cnn()
    calibration = torch.rand(16, 3, 16, 16)
    snn = convert(ann, calibration, ConversionConfig(time_chunk=4))
    path = save_converted(snn, tmp_path / "snn.safetensors", extra={"model": "small"})
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # readable by others
    again = load_converted(path, _small_cnn(seed=1))  # other initial weights: the file's replace them
    x = torch.rand(2, 3, 16, 16)
    seq = x.unsqueeze(0).expand(8, *x.shape)
    with torch.no_grad():
        reset(snn), reset(again)
        assert torch.equal(rate_readout(snn(seq)), rate_readout(again(seq)))
    assert again.info["neurons"] == 2 and again.info["config"]["time_chunk"] == 4


def test_load_refuses_another_architecture(tmp_path):
    snn = convert(_small_cnn(), torch.rand(16, 3, 16, 16))
    path = save_converted(snn, tmp_path / "snn.safetensors")
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    with pytest.raises(ConversionError, match="another architecture"):
        load_converted(path, other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConversionError, match="not a readable"):
        load_converted(tmp_path / "junk.safetensors", _small_cnn())


def test_cli_convert_writes_the_network_and_its_fidelity(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for i in range(10):
        pixels = (torch.rand(40, 40, 3, generator=rng) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"im{i}.png")
    out = tmp_path / "out"
    code = main(["convert", "--model", "efficientnet_lite0", "--weights", "imagenet", "--image-size", "32",
                 "--calibration-dir", str(images), "--evaluate-dir", str(images), "--steps", "8,16", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "results.json").read_text())
    assert record["conversion"]["neurons"] == 33 and record["fidelity"]["steps"] == [8, 16]
    assert "efficientnet_lite0.imagenet" in record["weights"] and "10 images" in record["calibration"]
    assert (out / "snn.safetensors").stat().st_size > 10_000_000


@pytest.mark.parametrize("argv, message", [
    (["--model", "no_such_net"], "unknown model"),
    (["--model", "resnet18"], "no weights"),
    (["--model", "efficientnet_lite0", "--weights", "imagenet", "--steps", "a,b"], "comma-separated integers"),
    (["--model", "efficientnet_lite0", "--weights", "imagenet", "--checkpoint", "x.pth"], "not both"),
])
def test_cli_convert_bad_input(tmp_path, capsys, argv, message):
    assert main(["convert", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
