"""End-to-end `cortexsnn train` on a tiny generated UCF101 folder (videos, then frame folders)."""
from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from _ucf101_fixture import make_ucf101  # noqa: E402

from cortexsnn.cli.main import main as cli_main  # noqa: E402
from cortexsnn.config import shipped_config_dir  # noqa: E402
from cortexsnn.utils.checkpoint import load_checkpoint  # noqa: E402

CONFIG = shipped_config_dir() / "train" / "lorafb_snet18_ucf101.yaml"


def _rows(out):
    """One row per epoch from metrics.csv's ``train`` and ``val`` rows (``val/skipped_clips`` as ``val_skipped_clips``)."""
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    epochs = {}
    for row in rows:
        merged = epochs.setdefault(row["step"], {})
        for key, value in row.items():
            if value not in ("", None) and key not in ("step", "split"):
                merged[key if row["split"] == "train" and key not in ("loss",) else f"{row['split']}_{key}"] = value
    return list(epochs.values())


def _small(root, out, *extra):
    return ["--config", str(CONFIG), f"data.root={root}", "data.frames=4", "data.f_steps=4", "data.image_size=32",
            "data.clip_resize=[36,40]", "data.clip_crop=32", "data.workers=0", "run.batch_size=4", "run.epochs=1",
            "run.max_batches_per_epoch=1", "run.amp=false", "run.progress=false", "optim.warmup_epochs=0",
            f"run.out_dir={out}", *extra]


def test_one_step_on_videos_skips_the_corrupt_video(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "UCF-101"
    make_ucf101(root, as_frames=False)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="skipped 1 of 7 videos"):
        code = cli_main(["train", *_small(root, out, "model.name=sew_resnet8", "data.workers=1")])
    assert code == 0, capsys.readouterr().err
    (row,) = _rows(out)
    assert float(row["skipped_videos"]) == 1 and float(row["skipped_clips"]) == 0
    assert float(row["val_skipped_clips"]) == 0
    record = load_checkpoint(out / "checkpoint_latest.pt", kind="cortexsnn-train")
    assert record["model"]["fc.weight"].shape[0] == 3 and record["config"]["data"]["dataset"] == "ucf101"
    assert "1 training videos skipped" in caplog.text


def test_lorafb_config_on_frame_folders_counts_undecodable_clip(tmp_path, capsys):
    root = tmp_path / "UCF-101"
    make_ucf101(root, as_frames=True)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning):
        code = cli_main(["train", *_small(root, out, "run.batch_size=2", "data.clip_sampling=continuous")])
    assert code == 0, capsys.readouterr().err
    (row,) = _rows(out)
    # continuous sampling: one clip per test video; the Diving test video's 3rd frame is corrupt and
    # is in its clip only when the drawn start is 0, 1 or 2
    assert float(row["val_skipped_clips"]) in (0.0, 1.0) and float(row["skipped_videos"]) == 1
    record = load_checkpoint(out / "checkpoint_latest.pt", kind="cortexsnn-train")
    assert record["model_name"] == "lorafb_snet18"
    assert tuple(record["model"]["fc.weight"].shape) == (3, 512)
    assert torch.isfinite(torch.tensor(float(row["train_loss"])))


def test_frame_folders_skip_undecodable_clip_mid_epoch(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    root = tmp_path / "UCF-101"
    make_ucf101(root, as_frames=True)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="3.png cannot be decoded"):
        code = cli_main(["train", *_small(root, out, "model.name=sew_resnet8")])
    assert code == 0, capsys.readouterr().err
    (row,) = _rows(out)
    assert float(row["val_skipped_clips"]) == 1  # the one test clip holding the corrupt frame, every epoch
    assert "1 clips skipped" in caplog.text


def test_video_rejects_mixup(tmp_path, capsys):
    assert cli_main(["train", *_small(tmp_path, tmp_path / "o", "data.mixup_alpha=0.2")]) == 2
    assert "images only" in capsys.readouterr().err


def test_pretrained_loads_all_but_the_classifier(tmp_path):
    from cortexsnn.models import create_model
    from cortexsnn.training.trainer import _load_pretrained
    from cortexsnn.utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    source = create_model("sew_resnet8", num_classes=10)
    save_checkpoint(tmp_path / "imagenet.pt", {"kind": "cortexsnn-train", "model": source.state_dict()})
    target = create_model("sew_resnet8", num_classes=3)
    fc_before = target.fc.weight.clone()
    _load_pretrained(target, str(tmp_path / "imagenet.pt"))
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert torch.equal(target.block3[0].conv2.weight, source.block3[0].conv2.weight)
    assert torch.equal(target.fc.weight, fc_before)
    with pytest.raises(Exception, match="missing"):
        _load_pretrained(create_model("sew_resnet14", num_classes=3), str(tmp_path / "imagenet.pt"))
