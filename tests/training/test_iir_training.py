"""IIR training loop: exact resume, checkpoints, config checks (tiny runs on the embedded subset)."""
from __future__ import annotations

import csv
import os


import pytest
import torch

from cortexsnn.config import ConfigError, shipped_config_dir
from cortexsnn.training.iir import TrainingInterrupted, evaluate_checkpoint, load_iir_config, train
from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

CONFIGS = shipped_config_dir() / "iir"
TINY = [
    "train.epochs=2", "train.length=6", "train.batch_size=32", "train.eval_batch_size=64", "train.lr=0.002",
    "data.train_limit=160", "data.val_size=32", "data.test_limit=64", "train.progress=false", "train.threads=1",
    "train.log_every=1",
]


def _quiet(*_args):
    pass


def _train_rows(path):
    with (path / "metrics.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row["split"] in ("train_batch", "train", "val")]


def test_tiny_run_writes_checkpoints_logs_and_results(tmp_path):
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    results = train(cfg, tmp_path, log=_quiet)
    for name in ("checkpoint_latest.pt", "checkpoint_best.pt", "metrics.csv", "results.json"):
        assert (tmp_path / name).is_file()
    assert any((tmp_path / "tensorboard").iterdir())
    assert 0.0 <= results["test_accuracy"] <= 1.0 and len(results["history"]) == 2
    record = load_checkpoint(tmp_path / "checkpoint_latest.pt", kind="iir_mlp")
    assert record["epoch"] == 2 and record["config"]["model"]["synapse_type"] == "dual_exp"
    again = evaluate_checkpoint(tmp_path / "checkpoint_best.pt", progress=False)
    assert again["accuracy"] == pytest.approx(results["test_accuracy"])


@pytest.mark.parametrize("stop_after", [2, 5])  # inside epoch 1, inside epoch 2 (5 batches per epoch)
def test_resume_continues_bit_for_bit(tmp_path, stop_after):
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    straight = train(cfg, tmp_path / "straight", log=_quiet)
    with pytest.raises(TrainingInterrupted, match="resume=True"):
        train(cfg, tmp_path / "cut", stop_after_batches=stop_after, log=_quiet)
    resumed = train(cfg, tmp_path / "cut", resume=True, log=_quiet)
    rows_a, rows_b = _train_rows(tmp_path / "straight"), _train_rows(tmp_path / "cut")
    assert [(r["step"], r["split"], r["loss"]) for r in rows_a] == [(r["step"], r["split"], r["loss"]) for r in rows_b]
    a = load_checkpoint(tmp_path / "straight" / "checkpoint_latest.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint_latest.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["test_accuracy"] == resumed["test_accuracy"]


def test_resume_refuses_a_changed_config_and_keeps_the_checkpoint(tmp_path):
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path, stop_after_batches=1, log=_quiet)
    before = (tmp_path / "checkpoint_latest.pt").read_bytes()
    changed = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", [*TINY, "train.lr=0.5"])
    with pytest.raises(ConfigError, match="train.lr"):
        train(changed, tmp_path, resume=True, log=_quiet)
    assert (tmp_path / "checkpoint_latest.pt").read_bytes() == before


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    save_checkpoint(tmp_path / "checkpoint_latest.pt", {"kind": "lif_convnet", "model": {}})
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    with pytest.raises(CheckpointError, match="lif_convnet"):
        train(cfg, tmp_path, resume=True, log=_quiet)
    with pytest.raises(CheckpointError, match="not an IIR model"):
        evaluate_checkpoint(tmp_path / "checkpoint_latest.pt")


def test_truncated_checkpoint_is_refused(tmp_path):
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", [*TINY, "train.epochs=1"])
    train(cfg, tmp_path, log=_quiet)
    data = (tmp_path / "checkpoint_best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        evaluate_checkpoint(tmp_path / "cut.pt")


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.epoch=3", "unknown config key"),
        ("train.epochs=three", "train.epochs"),
        ("model.synapse_type=alpha", "synapse_type"),
        ("model.dropout=1.5", "dropout"),
        ("train.epochs=0", "train.epochs"),
    ],
)
def test_bad_config_values_are_named(override, match):
    with pytest.raises(ConfigError, match=match):
        load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", [override])


def test_all_shipped_configs_load():
    for name, model in [("snn_mlp_1", "iir_mlp"), ("snn_mlp_2", "iir_mlp"), ("snn_conv", "iir_conv"), ("snn_conv_small", "iir_conv"), ("associative_memory", "iir_memory")]:
        cfg = load_iir_config(f"{CONFIGS}/{name}.yaml")
        assert cfg.model.name == model
    assert load_iir_config(f"{CONFIGS}/snn_mlp_2.yaml").model.synapse_type == "first_order"


def test_val_size_larger_than_the_training_set_is_explained(tmp_path):
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", [*TINY, "data.val_size=5000"])
    with pytest.raises(ConfigError, match="val_size"):
        train(cfg, tmp_path, log=_quiet)


def test_memory_task_tiny_run(tmp_path):
    overrides = [
        "memory.size=30", "memory.hidden=[20,10,20]", "memory.repeats=4", "memory.dev_repeats=1", "memory.test_repeats=1",
        "memory.erase_size=5", "train.epochs=1", "train.batch_size=16", "train.progress=false", "train.threads=1",
    ]
    cfg = load_iir_config(f"{CONFIGS}/associative_memory.yaml", overrides)
    results = train(cfg, tmp_path, log=_quiet)
    assert results["task"] == "associative_memory" and 0 <= results["test_mse"] < 5


def test_sigterm_writes_a_checkpoint_and_stops(tmp_path, monkeypatch):
    import os
    import signal

    from cortexsnn.training import iir

    calls = {"n": 0}
    original = iir._Classification.__call__

    def call_then_signal(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 2 and model.training:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, model, batch)

    monkeypatch.setattr(iir._Classification, "__call__", call_then_signal)
    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="batch 2"):
        train(cfg, tmp_path, log=_quiet)
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    record = load_checkpoint(tmp_path / "checkpoint_latest.pt", kind="iir_mlp")
    assert (record["epoch"], record["batch"]) == (0, 2)


def _all_rows(path):
    with (path / "metrics.csv").open() as handle:
        return [(r["step"], r["split"], r.get("loss"), r.get("accuracy")) for r in csv.DictReader(handle)]


def test_resume_after_a_kill_logs_no_row_twice(tmp_path):
    """kill -9 after rows were logged but before the next checkpoint: the resumed run drops those rows
    and its metrics.csv equals an uninterrupted run's, row for row."""
    from cortexsnn.utils.runfolder import read_manifest

    cfg = load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY)
    train(cfg, tmp_path / "straight", log=_quiet)
    cut = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):
        train(cfg, cut, stop_after_batches=2, log=_quiet)
    assert read_manifest(cut)["status"] == "interrupted"
    early = (cut / "checkpoint_latest.pt").read_bytes()
    with pytest.raises(TrainingInterrupted):
        train(cfg, cut, resume=True, stop_after_batches=2, log=_quiet)  # two more train_batch rows
    (cut / "checkpoint_latest.pt").write_bytes(early)  # as if killed before writing the later checkpoint
    train(cfg, cut, resume=True, log=_quiet)
    assert _all_rows(cut) == _all_rows(tmp_path / "straight")
    manifest = read_manifest(cut)
    assert manifest["status"] == "complete" and len(manifest["runs"]) == 3
    assert {"checkpoint_latest.pt", "metrics.csv", "results.json"} <= set(manifest["files"])


def test_an_output_path_that_is_a_file_is_refused_before_computing(tmp_path, monkeypatch):
    from cortexsnn.training import iir
    from cortexsnn.utils.runfolder import RunFolderError

    monkeypatch.setattr(iir, "build_splits", lambda cfg: pytest.fail("computed before checking the folder"))
    (tmp_path / "out").write_text("a file")
    with pytest.raises(RunFolderError, match="is a file"):
        train(load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY), tmp_path / "out", log=_quiet)


def test_a_folder_in_use_is_refused_before_computing(tmp_path, monkeypatch):
    from cortexsnn.training import iir
    from cortexsnn.utils.runfolder import RunFolder, RunFolderLockedError

    monkeypatch.setattr(iir, "build_splits", lambda cfg: pytest.fail("computed in a folder in use"))
    with RunFolder(tmp_path, "iir train"):
        with pytest.raises(RunFolderLockedError, match=f"pid {os.getpid()}"):
            train(load_iir_config(f"{CONFIGS}/snn_mlp_1.yaml", TINY), tmp_path, log=_quiet)
