"""Every file the toolkit writes is readable by others as the umask allows (0644 under umask 022),
as a plain ``open()`` would make it: checkpoints, results, logs, figures, caches and downloads.
(``mkstemp`` and ``pooch``'s temporary files are 0600 until they are given that mode.)"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from cortexsnn.cli.main import main
from cortexsnn.utils.io import readable_mode


def _modes(*roots: Path) -> dict[str, int]:
    out = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                out[str(path)] = stat.S_IMODE(path.stat().st_mode)
    return out


def _assert_readable(*roots: Path) -> None:
    modes = _modes(*roots)
    assert modes, f"nothing written under {roots}"
    # compiled kernels (.so) are executable, as a compiler's output is: 0755 under umask 022
    wrong = {p: oct(m) for p, m in modes.items() if m != readable_mode(executable=p.endswith(".so"))}
    assert not wrong, f"files not {oct(readable_mode())} (.so: {oct(readable_mode(True))}): {wrong}"
    if readable_mode() == 0o644:  # the usual umask 022
        assert all(m & 0o044 == 0o044 for m in modes.values())


def test_readable_mode_is_what_open_gives(tmp_path):
    (tmp_path / "plain").write_text("x")
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == readable_mode()


def test_checkpoints_and_results_of_the_training_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "cache"))
    iir = ["train.epochs=1", "train.length=4", "train.batch_size=32", "data.train_limit=64", "data.val_size=32",
           "data.test_limit=32", "train.progress=false", "train.threads=1"]
    assert main(["iir", "train", "--config", "configs/iir/snn_mlp_2.yaml", "--out", str(tmp_path / "iir"), *iir]) == 0
    assert {"checkpoint_best.pt", "checkpoint_latest.pt", "metrics.csv", "results.json"} <= {
        p.name for p in (tmp_path / "iir").iterdir()}
    stdp = ["--model", "mozafari2018", "--epochs", "1", "1", "1", "--mode", "batched", "--batch-size", "10",
            "--train-limit", "30", "--test-limit", "10", "--val-fraction", "0.3", "--activation-maps", "1",
            "--no-progress", "--threads", "1", "--out", str(tmp_path / "stdp")]
    assert main(["stdp", "train", *stdp]) == 0
    assert (tmp_path / "stdp" / "checkpoint_latest.pt").is_file() and (tmp_path / "stdp" / "results.json").is_file()
    _assert_readable(tmp_path / "iir", tmp_path / "stdp", tmp_path / "cache")


def test_weight_files_and_checkpoints_written_by_the_api(tmp_path):
    from cortexsnn.models import create_model
    from cortexsnn.models.checkpoints import save_safetensors
    from cortexsnn.utils.checkpoint import save_checkpoint

    model = create_model("sew_resnet8", num_classes=10)
    save_safetensors(model, tmp_path / "w" / "model.safetensors")
    save_checkpoint(tmp_path / "w" / "ckpt.pt", {"kind": "test", "model": model.state_dict()})
    _assert_readable(tmp_path / "w")


def test_downloaded_weights(tmp_path, monkeypatch):
    from cortexsnn.models import pretrained as P

    monkeypatch.setattr(P, "_PRETRAINED", {m: dict(tags) for m, tags in P._PRETRAINED.items()})
    monkeypatch.setattr(P, "_DEFAULT_TAG", dict(P._DEFAULT_TAG))
    source = tmp_path / "mirror" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(os.urandom(1000))
    cfg = P.PretrainedCfg(
        model="sew_resnet8", tag="modes", file_name=source.name, source="url", url=source.as_uri(),
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(), input_size=(3, 32, 32), mean=P.IMAGENET_MEAN,
        std=P.IMAGENET_STD, normalization="ImageNet mean / std", time_steps=4, num_classes=10, licence="test",
        how_made="written by the test", citation="none", key_layout="sew-original")
    cfg = P.register_pretrained(cfg)
    path = P.fetch_pretrained(cfg, directory=tmp_path / "weights")
    assert path.read_bytes() == source.read_bytes()
    _assert_readable(tmp_path / "weights")


def test_downloaded_92_image_data(tmp_path, monkeypatch, shared_data):
    """The Kriegeskorte et al. (2008) files, fetched by pooch from a file:// mirror of the real ones."""
    import pooch

    from cortexsnn.data import neural
    from cortexsnn.models.pretrained import _copy_file_url

    source = shared_data / "kriegeskorte92"
    if not source.is_dir():
        pytest.skip(f"{source} is absent")
    mirror = tmp_path / "mirror"
    for name, (commit, _sha) in neural.KRIEGESKORTE92_FILES.items():
        (mirror / commit).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, mirror / commit / name)
    monkeypatch.setattr(neural, "_RSATOOLBOX_RAW", mirror.as_uri() + "/{commit}/{name}")
    real_retrieve = pooch.retrieve
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: real_retrieve(*a, downloader=_copy_file_url, **k))
    assert neural.fetch_kriegeskorte92(tmp_path / "k92") == tmp_path / "k92"
    assert len(list((tmp_path / "k92").iterdir())) == len(neural.KRIEGESKORTE92_FILES)
    _assert_readable(tmp_path / "k92")


def test_built_kernels(tmp_path, monkeypatch):
    from cortexsnn.utils.cbuild import load_c_library

    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "k.c"
    source.write_text("int cortexsnn_mode_test(int x) { return x + 1; }\n")
    lib = load_c_library(source, ["-O1", "-shared", "-fPIC"], "modes")
    assert lib.cortexsnn_mode_test(1) == 2
    _assert_readable(tmp_path / "cache")
