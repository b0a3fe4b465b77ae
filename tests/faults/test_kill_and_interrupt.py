"""Fault injection: real processes killed (SIGKILL) or interrupted (SIGINT) in the middle of a run,
then resumed or rerun. Marked ``faults`` (``pytest -m faults`` runs them alone) and ``slow``.

* ``iir train`` killed with SIGKILL once its first checkpoint is on disk, then ``--resume``: the
  final weights, optimiser state and every logged metric equal an uninterrupted run's, bit for bit;
  no log row is written twice; no temporary file is left; the folder's manifest said ``running``
  while nobody ran it, and says ``complete`` after the resume.
* ``benchmark`` interrupted with SIGINT while it scores (``CORTEXSNN_FAULT=step@1:INT``: a fixed
  point after the model's RDMs, not a race with the scoring): exit 130, the manifest says ``interrupted``, no results file and no temporary file is
  left. Rerunning the same command there completes (the interrupted run wrote nothing to mix
  with); a further rerun into the finished folder is refused until ``--overwrite``. That rerun,
  killed with SIGKILL while it writes its tables (``CORTEXSNN_FAULT``, :mod:`cortexsnn.utils.faults`),
  leaves only its own first files, a ``running`` manifest and the interrupted write's temporary
  file; ``--overwrite`` once more completes with every file its own and no temporary file.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _processes import default_sigint  # noqa: E402
from cortexsnn.utils.faults import ENV as FAULT_ENV  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

_IIR = ["iir", "train", "--config", "configs/iir/snn_mlp_1.yaml", "train.epochs=4", "data.train_limit=300",
        "data.val_size=50", "data.test_limit=100", "train.progress=false"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cortexsnn.cli.main", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {path.name} appeared")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def _temporary(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_cli(*_IIR, "--out", str(reference)), check=True, env=_env(), cwd=tmp_path, capture_output=True,
                   timeout=600)
    process = subprocess.Popen(_cli(*_IIR, "--out", str(killed)), env=_env(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(killed / "checkpoint_latest.pt", process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert json.loads((killed / "run.json").read_text())["status"] == "running"  # nobody ended it
    done = subprocess.run(_cli(*_IIR, "--out", str(killed), "--resume"), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    a = torch.load(reference / "checkpoint_latest.pt", weights_only=True, map_location="cpu")
    b = torch.load(killed / "checkpoint_latest.pt", weights_only=True, map_location="cpu")
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert json.dumps(a["optimizer"]["param_groups"]) == json.dumps(b["optimizer"]["param_groups"])
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for key in state_a:
            assert torch.equal(torch.as_tensor(state_a[key]), torch.as_tensor(state_b[key])), key
    assert _rows(killed) == _rows(reference)  # every metric, and no row twice
    ra, rb = (json.loads((f / "results.json").read_text()) for f in (reference, killed))
    assert ra["metrics"]["test_accuracy"] == rb["metrics"]["test_accuracy"]
    assert ra["metrics"]["test_loss"] == rb["metrics"]["test_loss"]
    manifest = json.loads((killed / "run.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["runs"]) == 2 and manifest["runs"][1]["resumed"]
    assert not _temporary(killed)


def test_sigint_while_scoring_leaves_an_interrupted_folder_that_overwrite_replaces(tmp_path, shared_data):
    out = tmp_path / "bench"
    args = ["benchmark", "--benchmarks", "kriegeskorte92", "--models", "resnet18", "--data-dir", str(shared_data),
            "--no-download", "--image-size", "32", "--bootstrap", "100", "--splits", "2", "--out", str(out)]
    # SIGINT (as Ctrl-C) sent to itself once the model's RDMs are taken, before the benchmarks are scored
    process = subprocess.Popen(_cli(*args), env={**_env(), FAULT_ENV: "step@1:INT"}, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "results.json").exists() and not (out / "report.html").exists() and not _temporary(out)

    # the interrupted run wrote no output, so rerunning the same command there mixes nothing: it completes
    rerun = subprocess.run(_cli(*args), env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert json.loads((out / "results.json").read_text())["format"] == "cortexsnn.similarity.SuiteResult/1"
    # a folder holding a finished run's results is refused until --overwrite
    again = subprocess.run(_cli(*args), env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    # --overwrite deletes that run's outputs first; killed while writing its tables (after results.json and
    # scores.csv, in summary.csv), the folder holds the new run's first files only and says it did not complete
    killed = subprocess.run(_cli(*args, "--overwrite"), env={**_env(), FAULT_ENV: "write:summary.csv@1:KILL"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # no live lock: killed
    left = sorted(p.name for p in out.iterdir() if p.name[0] != "." and p.name not in ("run.json", "run.lock"))
    assert left == ["results.json", "scores.csv"] and [p.name[:13] for p in _temporary(out)] == [".summary.csv."]
    started = time.time()
    done = subprocess.run(_cli(*args, "--overwrite"), env=_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete" and not _temporary(out)
    for p in out.iterdir():  # every output is the last run's: the folder never mixes two runs
        assert p.stat().st_mtime >= started - 1, p.name
