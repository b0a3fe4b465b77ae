"""Fault injection on ``cortexsnn similarity`` while it writes its results (``results.json``, then
``scores.csv``, then the report's figures and ``report.html``): a real process killed (SIGKILL) or
interrupted (SIGINT) after some outputs are written and before others, in a folder that held
another run (``--overwrite``).

The folder must never mix two runs' files: the old run's outputs are gone before the new run writes;
the manifest says the run did not complete (``running`` with no live lock after a kill,
``interrupted`` after SIGINT); a rerun without ``--overwrite`` is refused; with it the folder ends
complete, every output written by that last run, and no temporary file is left.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _processes import killed, manifest, run, temporary  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

OUTPUTS = ("results.json", "scores.csv", "report.html")


def _recording(folder):
    from cortexsnn.data.neural import NeuralData, save_npz

    n, rng = 24, np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    drive = images.reshape(n, -1, 3).mean(axis=1) / 255.0  # neurons driven by the images' colour means
    responses = {"V1": drive @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(n, 10)),
                 "V4": drive[:, :2] @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(n, 6))}
    return save_npz(NeuralData(responses, np.arange(n), meta={"dataset": "toy"}, stimuli=images), folder / "rec.npz")


def _outputs(folder):
    """The run's outputs in ``folder`` (not the manifest, lock or temporary files)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in ("run.json", "run.lock") and p.name[0] != ".")


def _seed_of(folder):
    return json.loads((folder / "results.json").read_text())["seeds"]["bootstrap"]


def test_kill_and_sigint_while_writing_results_never_mix_two_runs(tmp_path):
    rec, out = _recording(tmp_path), tmp_path / "out"
    args = lambda seed, *extra: ["similarity", "--quiet", "--image-size", "32", "--model", "resnet18",  # noqa: E731
                                 "--neural-dataset", "recording", "--neural-dataset-dir", rec, "--metric", "RSA",
                                 "--bootstrap", "20", "--ceiling-splits", "5", "--output-dir", out, "--seed", seed,
                                 *extra]
    first = run(args(1), tmp_path)
    assert first.returncode == 0, first.stderr
    assert set(OUTPUTS) <= set(_outputs(out)) and _seed_of(out) == 1

    # a second run (another seed) replaces it and is killed after results.json, while writing scores.csv
    write = run(args(2, "--overwrite"), tmp_path, fault="write:scores.csv@1:KILL")
    assert killed(write)
    assert manifest(out)["status"] == "running"  # not complete; no live lock: a killed run
    assert _outputs(out) == ["results.json"] and _seed_of(out) == 2  # nothing of the first run is left
    assert [p.name.startswith(".scores.csv.") for p in temporary(out)] == [True]

    refused = run(args(2), tmp_path)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert _outputs(out) == ["results.json"] and manifest(out)["status"] == "running"  # nothing was changed

    # interrupted (Ctrl-C) while writing the report, after its tables and figures
    stopped = run(args(2, "--overwrite"), tmp_path, fault="write:report.html@1:INT")
    assert stopped.returncode == 130 and "interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    assert manifest(out)["status"] == "interrupted" and not temporary(out)
    assert "report.html" not in _outputs(out) and {"results.json", "scores.csv"} <= set(_outputs(out))

    started = time.time()
    done = run(args(2, "--overwrite"), tmp_path)
    assert done.returncode == 0, done.stderr
    record = manifest(out)
    assert record["status"] == "complete" and not temporary(out) and _seed_of(out) == 2
    assert set(OUTPUTS) <= set(_outputs(out)) and sorted(record["files"]) == _outputs(out)
    for name in _outputs(out):  # every output is the last run's
        assert (out / name).stat().st_mtime >= started - 1, name
