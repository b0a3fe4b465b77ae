"""Deep-SNN training: exact resume, DDP equivalence, bad input."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from cortexsnn.cli.main import main as cli_main
from cortexsnn.training.run import TrainingInterrupted
from cortexsnn.training.trainer import load_train_config, train
from cortexsnn.utils.checkpoint import load_checkpoint


def _overrides(root, out, *extra):
    return [f"data.root={root}", "data.image_size=32", "data.val_resize=36", "data.workers=0",
            "model.name=sew_resnet8", "model.T=2", "run.batch_size=8", f"run.out_dir={out}",
            "optim.warmup_epochs=1", "optim.lr=0.05", "run.progress=false", "run.epochs=3", *extra]


def _weights(path):
    return load_checkpoint(path, kind="cortexsnn-train")["model"]


def test_resume_continues_exactly(image_folder, tmp_path):
    straight = train(load_train_config(None, _overrides(image_folder, tmp_path / "a")))
    partial = train(load_train_config(None, _overrides(image_folder, tmp_path / "b", "run.stop_after_epochs=1")))
    assert partial["epochs"] == 1
    with pytest.raises(FileExistsError, match="resume=True"):
        train(load_train_config(None, _overrides(image_folder, tmp_path / "b")))
    resumed = train(load_train_config(None, _overrides(image_folder, tmp_path / "b")), resume=True)
    a, b = _weights(tmp_path / "a" / "checkpoint_latest.pt"), _weights(tmp_path / "b" / "checkpoint_latest.pt")
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight["best_val_top1"] == resumed["best_val_top1"]
    history = load_checkpoint(tmp_path / "b" / "checkpoint_latest.pt")["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert (tmp_path / "b" / "metrics.csv").read_text().count("\n") == 7  # header + 3 epochs (train, val)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(image_folder, tmp_path):
    common = [f"data.root={image_folder}", "data.image_size=32", "data.val_resize=32", "data.workers=0",
              "data.augment=false", "model.name=cornet_rt", "model.T=2", "run.epochs=1", "optim.warmup_epochs=0",
              "optim.lr=0.01", "optim.schedule=constant", "run.progress=false", "run.device=cpu"]
    train(load_train_config(None, [*common, "run.batch_size=8", f"run.out_dir={tmp_path / 'single'}"]))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={_free_port()}", "-m", "cortexsnn.cli.main", "train", *common, "run.batch_size=4",
         f"run.out_dir={tmp_path / 'ddp'}"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single, ddp = _weights(tmp_path / "single" / "checkpoint_latest.pt"), _weights(tmp_path / "ddp" / "checkpoint_latest.pt")
    worst = max(float((ddp[k].float() - single[k].float()).abs().max()) for k in single)
    assert worst < 1e-5, f"DDP and single-process weights differ by {worst:.2e}"
    assert any(not torch.equal(single[k], v) for k, v in _initial_cornet().items())


def _initial_cornet():
    from cortexsnn.models import create_model

    torch.manual_seed(2022)
    return create_model("cornet_rt", num_classes=3).state_dict()


def test_bad_input_messages(image_folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    (empty / "val").mkdir()
    assert cli_main(["train", f"data.root={empty}", f"run.out_dir={tmp_path / 'x'}"]) == 2
    assert "no usable images" in capsys.readouterr().err
    assert cli_main(["train", f"data.root={tmp_path / 'nowhere'}", f"run.out_dir={tmp_path / 'y'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["train", f"data.root={image_folder}", "model.name=sew_resnet7", f"run.out_dir={tmp_path / 'z'}"]) == 2
    assert "known models" in capsys.readouterr().err
    assert cli_main(["train", "optim.learning_rate=0.1"]) == 2
    assert "unknown config key 'optim.learning_rate'" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["sigint_per_iteration_workers0", "sigterm_per_epoch_workers2"])
def test_interrupt_mid_epoch_resumes_exactly(image_folder, tmp_path, variant):
    """A signal in the middle of an epoch: final checkpoint, and the resumed run has the same per-step
    losses, weights, EMA, optimiser and scheduler state as a run that was never interrupted."""
    import signal

    sig = signal.SIGINT if variant.startswith("sigint") else signal.SIGTERM
    extra = ["run.epochs=2", "run.ema_decay=0.9", "data.mixup_alpha=0.4", "optim.warmup_epochs=1",
             f"optim.per_iteration={'true' if 'per_iteration' in variant else 'false'}",
             f"data.workers={2 if variant.endswith('workers2') else 0}"]
    stop_at = (0, 1) if "per_iteration" in variant else (1, 0)  # (epoch, batch) after which the signal comes

    straight_losses = []
    train(load_train_config(None, _overrides(image_folder, tmp_path / "a", *extra)),
          step_callback=lambda e, b, loss: straight_losses.append((e, b, loss)))

    losses = []

    def interrupt(epoch, batch, loss):
        losses.append((epoch, batch, loss))
        if (epoch, batch) == stop_at:
            os.kill(os.getpid(), sig)

    with pytest.raises(TrainingInterrupted, match=f"at epoch {stop_at[0] + 1}, batch {stop_at[1] + 1};"):
        train(load_train_config(None, _overrides(image_folder, tmp_path / "b", *extra)), step_callback=interrupt)
    record = load_checkpoint(tmp_path / "b" / "checkpoint_latest.pt")
    assert record["partial"]["epoch"] == stop_at[0] and record["partial"]["batches"] == stop_at[1] + 1
    assert record["epoch"] == stop_at[0] - 1 and len(record["history"]) == stop_at[0]
    train(load_train_config(None, _overrides(image_folder, tmp_path / "b", *extra)), resume=True,
          step_callback=lambda e, b, loss: losses.append((e, b, loss)))

    assert [(e, b) for e, b, _ in losses] == [(e, b) for e, b, _ in straight_losses] and len(losses) == 6
    assert [loss for *_, loss in losses] == [loss for *_, loss in straight_losses]  # bit-identical
    a = load_checkpoint(tmp_path / "a" / "checkpoint_latest.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoint_latest.pt")
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert a["scheduler"] == b["scheduler"] and b["partial"] is None
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])  # train loss / accuracy over the split epoch too


def test_weight_ema_matches_hand_computed_average():
    from cortexsnn.models import create_model
    from cortexsnn.training.trainer import WeightEMA

    net = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema = WeightEMA(net, 0.75)
    history = []
    for value in (1.0, 3.0, -2.0):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked.fill_(int(value * 10))
        ema.update_parameters(net)
        history.append(value)
    expected = (0.75 * 1.0 + 0.25 * 3.0) * 0.75 + 0.25 * -2.0  # first update copies
    assert torch.allclose(ema.module[0].weight, torch.full((1, 2), expected))
    assert int(ema.module[1].num_batches_tracked) == -20 and ema.n_averaged == 3
    # spiking models: neuron state (not in the state dict) is left alone after a forward of any batch
    model = create_model("sew_resnet8", num_classes=3)
    model(torch.rand(2, 2, 3, 32, 32))
    averaged = WeightEMA(model, 0.5)
    averaged.update_parameters(model)
    restored = WeightEMA(model, 0.5)
    restored.load_state_dict(averaged.state_dict())
    assert restored.n_averaged == 1 and "module.conv1.weight" in averaged.state_dict()


def test_channels_last_training_runs_and_checkpoints(image_folder, tmp_path):
    metrics = train(load_train_config(None, _overrides(image_folder, tmp_path / "cl", "model.channels_last=true",
                                                       "run.epochs=1", "run.max_batches_per_epoch=1")))
    assert metrics["epochs"] == 1
    weights = _weights(tmp_path / "cl" / "checkpoint_latest.pt")
    assert weights["conv1.weight"].is_contiguous(memory_format=torch.channels_last)
    from cortexsnn.models import create_model

    create_model("sew_resnet8", num_classes=3).load_state_dict(weights)  # loads into a plain NCHW model


_AGREE_WORKER = """
import sys, torch, torch.distributed as dist
from cortexsnn.training.distributed import DistInfo
from cortexsnn.training.trainer import every_rank_has_batch
rank, port, flags = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
info = DistInfo(rank=rank, local_rank=rank, world_size=2)
print([every_rank_has_batch(f == "1", info, torch.device("cpu")) for f in flags])
dist.destroy_process_group()
"""


def test_a_rank_without_a_batch_makes_every_rank_skip_the_step():
    """A rank whose clips all failed to decode must not leave the others waiting in the all-reduce."""
    # steps: both usable; rank 1 empty; rank 0 empty; both empty
    flags = {0: "1100", 1: "1010"}
    port = str(_free_port())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", _AGREE_WORKER, str(rank), port, flags[rank]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
    assert [out.strip() for out, _ in outputs] == ["[True, False, False, False]"] * 2


def test_resume_restores_the_stored_config_refuses_changes_and_logs_no_row_twice(image_folder, tmp_path, capsys):
    from cortexsnn.utils.runfolder import read_manifest

    out = tmp_path / "r"
    train(load_train_config(None, _overrides(image_folder, out, "run.stop_after_epochs=1")))
    assert read_manifest(out)["status"] == "interrupted"
    lines = (out / "metrics.csv").read_text().splitlines()
    # killed after logging epoch 2 but before its checkpoint: a row beyond the checkpoint
    (out / "metrics.csv").write_text("\n".join([*lines, "2" + lines[-1][1:]]) + "\n")
    code = cli_main(["train", "--resume", f"run.out_dir={out}", "optim.lr=0.5", "run.batch_size=4", "model.T=1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    for change in ("optim.lr: 0.05 -> 0.5", "run.batch_size: 8 -> 4", "model.T: 2 -> 1"):
        assert change in err
    assert "run.epochs" in err  # what may change
    assert cli_main(["train", "--resume", f"run.out_dir={out}", "run.stop_after_epochs=0"]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows[1:]] == [[str(e), split] for e in (1, 2, 3) for split in ("train", "val")]
    assert [r["epoch"] for r in load_checkpoint(out / "checkpoint_latest.pt")["history"]] == [1, 2, 3]
    assert read_manifest(out)["status"] == "complete"


def test_an_unusable_output_folder_is_refused_before_computing(image_folder, tmp_path, capsys, monkeypatch):
    from cortexsnn.training import trainer

    monkeypatch.setattr(trainer, "_build_data", lambda cfg: pytest.fail("computed before checking the folder"))
    (tmp_path / "file").write_text("x")
    assert cli_main(["train", *_overrides(image_folder, tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint_best.pt").write_bytes(b"another run's")
    assert cli_main(["train", *_overrides(image_folder, tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "checkpoint_best.pt" in err
