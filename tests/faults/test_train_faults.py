"""Fault injection on ``cortexsnn train`` (a tiny image folder, 2 epochs of 3 steps): real processes
killed (SIGKILL) in a step and in a checkpoint write, interrupted (SIGINT), or run twice on one folder.

The faults come from ``CORTEXSNN_FAULT`` (:mod:`cortexsnn.utils.faults`): ``step@N`` after the N-th
optimiser step, ``write:NAME@N`` inside the N-th atomic write of NAME, after its temporary file is
written and before the rename. Every resumed run must end bit-identical to an uninterrupted one:
weights, optimiser and scheduler state, the history and every ``metrics.csv`` row (no row twice),
with no temporary file left and ``run.json`` saying how each part ended.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _processes import (assert_same, killed, load, manifest, refused_while_another_runs, rows, run,  # noqa: E402
                        temporary)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: the checkpoints `train` writes (the one place the tests name them)
LATEST, BEST = "checkpoint_latest.pt", "checkpoint_best.pt"
#: metrics.csv rows an epoch logs (one per split: train, val)
ROWS_PER_EPOCH = 2
#: what a checkpoint holds that must be bit-identical after a resume
STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "epoch", "best_top1", "history", "log_rows")


def _args(image_folder, out, *extra):
    return ["train", f"data.root={image_folder}", "data.image_size=32", "data.val_resize=36", "data.workers=0",
            "model.name=sew_resnet8", "model.T=2", "run.batch_size=8", "optim.warmup_epochs=1", "optim.lr=0.05",
            "run.progress=false", "run.epochs=2", "run.device=cpu", f"run.out_dir={out}", *extra]


@pytest.fixture(scope="module")
def reference(image_folder, tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = run(_args(image_folder, out), out.parent)
    assert done.returncode == 0, done.stderr
    return out


def _assert_equals_reference(folder, reference):
    for name in (LATEST, BEST):
        a, b = load(reference / name), load(folder / name)
        for key in STATE_KEYS:
            assert_same(a[key], b[key], f"{name}:{key}")
    assert rows(folder) == rows(reference)  # every metric, and no row twice
    assert not temporary(folder)
    assert manifest(folder)["status"] == "complete"


def test_kill_in_checkpoint_writes_and_in_a_step_then_resume_equals_an_uninterrupted_run(image_folder, reference, tmp_path):
    out = tmp_path / "run"
    # killed while writing the very first checkpoint: nothing to resume from, and the message says what to do
    first = run(_args(image_folder, out), tmp_path, fault=f"write:{BEST}@1:KILL")
    assert killed(first) and manifest(out)["status"] == "running"  # nobody ended it: killed
    assert temporary(out) and not (out / LATEST).exists()  # the interrupted write's temporary file
    refused = run(_args(image_folder, out, "--resume"), tmp_path)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr

    # started anew, killed in a step of epoch 2 (after the 5th of 6 steps)
    step = run(_args(image_folder, out, "--overwrite"), tmp_path, fault="step@5:KILL")
    assert killed(step) and len(rows(out)) == ROWS_PER_EPOCH and not temporary(out)  # the old temporary file is gone
    assert load(out / LATEST)["epoch"] == 0

    # resumed, killed while writing epoch 2's latest checkpoint (its metrics row is already logged)
    write = run(_args(image_folder, out, "--resume"), tmp_path, fault=f"write:{LATEST}@1:KILL")
    assert killed(write) and len(rows(out)) == 2 * ROWS_PER_EPOCH and temporary(out)
    assert load(out / LATEST)["epoch"] == 0  # the interrupted write left the previous checkpoint intact

    done = run(_args(image_folder, out, "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_equals_reference(out, reference)
    runs = manifest(out)["runs"]
    assert [r["resumed"] for r in runs] == [False, True, True]
    assert [r.get("status") for r in runs] == [None, None, "complete"]  # the killed parts never ended


def test_sigint_in_a_step_exits_130_and_resume_equals_an_uninterrupted_run(image_folder, reference, tmp_path):
    out = tmp_path / "run"
    stopped = run(_args(image_folder, out), tmp_path, fault="step@4:INT")
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    assert manifest(out)["status"] == "interrupted" and not temporary(out)
    assert load(out / LATEST)["partial"]["batches"] == 1  # the position inside epoch 2
    done = run(_args(image_folder, out, "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_equals_reference(out, reference)


def test_a_second_run_on_the_folder_is_refused_while_the_first_runs(image_folder, reference, tmp_path):
    out = tmp_path / "run"
    refused_while_another_runs(_args(image_folder, out), tmp_path, out)
    _assert_equals_reference(out, reference)  # the refused run changed nothing
