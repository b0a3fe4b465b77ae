"""The run substrate (cortexsnn.training.run): one results.json schema, TensorBoard cut back on resume,
old checkpoint names still found (tiny IIR runs on the embedded MNIST subset)."""
from __future__ import annotations

import json
import stat

import pytest
import torch

from cortexsnn.config import shipped_config_dir
from cortexsnn.training.iir import load_iir_config, train
from cortexsnn.training.run import TrainingInterrupted, find_latest_checkpoint

TINY = ["train.epochs=2", "train.length=4", "train.batch_size=32", "train.eval_batch_size=64",
        "data.train_limit=160", "data.val_size=32", "data.test_limit=32", "train.progress=false",
        "train.threads=1", "train.log_every=1"]


def _cfg():
    return load_iir_config(shipped_config_dir() / "iir" / "snn_mlp_1.yaml", TINY)


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_results_json_has_the_one_schema_and_is_world_readable(tmp_path):
    results = train(_cfg(), tmp_path)
    record = json.loads((tmp_path / "results.json").read_text())
    assert set(record) == {"kind", "status", "metrics", "best", "epochs", "config", "versions"}
    assert record["kind"] == "iir train" and record["status"] == "complete"
    assert record["metrics"]["test_accuracy"] == results["test_accuracy"]
    assert record["best"]["epoch"] == results["best_epoch"] and len(record["epochs"]) == 2
    assert record["config"]["train"]["epochs"] == 2 and "torch" in record["versions"]
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) & 0o044 == 0o044


def test_resume_after_a_kill_logs_no_tensorboard_event_twice(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    train(_cfg(), tmp_path / "straight")
    with pytest.raises(TrainingInterrupted, match="resume=True"):
        train(_cfg(), tmp_path / "cut", stop_after_batches=3)
    # a run killed after logging batch 4 but before its next checkpoint left an event behind
    writer = SummaryWriter(str(tmp_path / "cut" / "tensorboard"))
    writer.add_scalar("train_batch/loss", 123.0, 4)
    writer.close()
    train(_cfg(), tmp_path / "cut", resume=True)
    straight, resumed = _scalars(tmp_path / "straight"), _scalars(tmp_path / "cut")
    assert sorted(straight) == sorted(resumed) and {"train/loss", "val/accuracy", "test/accuracy"} <= set(straight)
    for tag, values in straight.items():
        if tag.endswith("/seconds"):  # wall-clock time differs; its steps do not
            resumed[tag], values = [s for s, _ in resumed[tag]], [s for s, _ in values]
        assert resumed[tag] == values, tag  # the same steps, each once, with the same values


def test_the_latest_checkpoint_of_an_older_version_is_found(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    (tmp_path / "checkpoint.pt").write_bytes(b"")  # `stdp train` before the substrate
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint.pt"
    (tmp_path / "checkpoint_latest.pt").write_bytes(b"")
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint_latest.pt"


def test_an_stdp_run_folder_of_an_older_version_resumes_from_checkpoint_pt(tmp_path):
    from cortexsnn.cli.main import main
    from cortexsnn.utils.checkpoint import load_checkpoint

    out = tmp_path / "run"
    common = ["--model", "mozafari2018", "--mode", "batched", "--batch-size", "10", "--val-fraction", "0.25",
              "--train-limit", "40", "--test-limit", "12", "--activation-maps", "0", "--no-progress", "--threads", "1",
              "--out", str(out)]
    assert main(["stdp", "train", "--epochs", "1", "1", "1", *common]) == 0
    # the layout `stdp train` wrote before the run substrate: checkpoint.pt only
    (out / "checkpoint_latest.pt").rename(out / "checkpoint.pt")
    (out / "checkpoint_best.pt").unlink()
    assert main(["stdp", "train", "--epochs", "1", "1", "1", *common, "--resume"]) == 0  # finished: nothing to train
    old, new = (load_checkpoint(out / name, kind="stdp") for name in ("checkpoint.pt", "checkpoint_latest.pt"))
    assert all(torch.equal(old["model"][k], new["model"][k]) for k in old["model"])
    assert old["fit_state"]["history"] == new["fit_state"]["history"]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["runs"][-1]["resumed"]
