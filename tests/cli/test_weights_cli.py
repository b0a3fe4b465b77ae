"""Registered weights on the command line: ``similarity --weights`` and ``cortexsnn models``."""
from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from cortexsnn.cli.main import main
from cortexsnn.data.neural import NeuralData, save_npz
from cortexsnn.models import create_model
from cortexsnn.models import pretrained as P
from cortexsnn.similarity.results import ScoreTable


@pytest.fixture(autouse=True)
def registry(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "_PRETRAINED", {m: dict(tags) for m, tags in P._PRETRAINED.items()})
    monkeypatch.setattr(P, "_DEFAULT_TAG", dict(P._DEFAULT_TAG))
    monkeypatch.setenv("CORTEXSNN_DATA", str(tmp_path / "data"))


def _recording(tmp_path, n=12):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 40, 40, 3), dtype=np.uint8)
    drive = images.reshape(n, -1, 3).mean(axis=1) / 255.0
    data = NeuralData({"IT": drive @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(n, 8))}, np.arange(n),
                      meta={"dataset": "toy"}, stimuli=images)
    return save_npz(data, tmp_path / "rec.npz")


def _similarity(tmp_path, *args):
    return main(["similarity", "--quiet", "--no-report", "--image-size", "48", "--neural-dataset", "recording",
                 "--neural-dataset-dir", str(_recording(tmp_path)), "--metric", "RSA", "--ceiling", "none",
                 *map(str, args)])


def _synthetic_sew(tmp_path, **changes):
    torch.manual_seed(3)
    path = tmp_path / "sew8_test.pth"
    torch.save({"model": create_model("sew_resnet8", num_classes=1000).state_dict(),
                "args": argparse.Namespace(T=3)}, path)
    cfg = P.get_pretrained_cfg("sew_resnet18")
    fields = dict(model="sew_resnet8", tag="synthetic", file_name=path.name, source="url", url=path.as_uri(),
                  figshare_article=None, sha256=hashlib.sha256(path.read_bytes()).hexdigest(), hash_policy="sha256",
                  time_steps=3)
    cfg = replace(cfg, **{**fields, **changes})
    return P.register_pretrained(cfg)


def test_similarity_with_registered_efficientnet_weights(tmp_path, capsys):
    out = tmp_path / "out"
    assert _similarity(tmp_path, "--model", "efficientnet_lite0", "--weights", "imagenet", "--output-dir", out) == 0, \
        capsys.readouterr().err
    table = ScoreTable.read(out)
    config = table.config
    assert config["mode"] == "cnn" and config["pretrained"]["name"] == "efficientnet_lite0.imagenet"
    assert config["stimuli"]["mean"] == pytest.approx([127 / 255] * 3)
    assert config["stimuli"]["std"] == pytest.approx([128 / 255] * 3)
    assert config["weights"].startswith("efficientnet_lite0.imagenet") and "UNTRAINED" not in config["weights"]
    assert table.layers == create_model("efficientnet_lite0").scoring_layers
    assert "untrained" not in capsys.readouterr().err


def test_similarity_weights_set_t_and_load_the_file(tmp_path):
    _synthetic_sew(tmp_path)
    out = tmp_path / "sew"
    assert _similarity(tmp_path, "--model", "sew_resnet8", "--weights", "sew_resnet8=synthetic", "--output-dir", out) == 0
    table = ScoreTable.read(out)
    assert table.config["mode"] == "static" and table.config["time_steps"] == 3
    assert table.config["stimuli"]["preset"] == "custom" and table.config["pretrained"]["tag"] == "synthetic"
    assert (tmp_path / "data" / "weights" / "sew8_test.pth").is_file()


@pytest.mark.parametrize("args, expected", [
    (["--model", "efficientnet_lite0", "--weights", "imagenet", "--checkpoint-path", "x.pth"], "not both"),
    (["--model", "efficientnet_lite0", "--weights", "sew_resnet18=imagenet"], "--model is 'efficientnet_lite0'"),
    (["--model", "efficientnet_lite0", "--weights", "cifar"], "its tags: imagenet"),
    (["--model", "resnet18", "--weights", "imagenet"], "needs a zoo model"),
    (["--model", "efficientnet_lite0", "--weights", "imagenet", "--train-dataset", "ucf101"], "1000 classes"),
])
def test_bad_weights_flags_exit_2(tmp_path, capsys, args, expected):
    out = tmp_path / "never"
    assert _similarity(tmp_path, *args, "--output-dir", out) == 2
    assert expected in capsys.readouterr().err and not out.exists()


def test_unavailable_weights_exit_2_with_the_one_message(tmp_path, capsys):
    cfg = _synthetic_sew(tmp_path, url="http://127.0.0.1:9/sew8_test.pth")
    assert _similarity(tmp_path, "--model", "sew_resnet8", "--weights", "synthetic", "--output-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "sew8_test.pth" in err and cfg.sha256 in err and str(tmp_path / "data" / "weights") in err
    assert "cortexsnn similarity: error: the pretrained weights sew_resnet8.synthetic" in err and "Traceback" not in err


def test_models_command_lists_models_and_weights(capsys):
    assert main(["models", "sew_resnet1*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["sew_resnet101", "sew_resnet14", "sew_resnet152", "sew_resnet18"]
    assert lines[0].endswith("weights: imagenet*") and lines[1].split() == ["sew_resnet14", "deep"]
    assert main(["models", "--pretrained", "efficientnet*"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0.imagenet  (default)" in out and P.get_pretrained_cfg("efficientnet_lite0").sha256 in out
    assert "(x * 255 - 127) / 128" in out and "Apache-2.0" in out
