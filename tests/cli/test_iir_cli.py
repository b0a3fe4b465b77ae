"""`cortexsnn iir` end to end on tiny runs, and its error messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortexsnn.cli.main import main
from cortexsnn.config import shipped_config_dir

CONFIGS = shipped_config_dir() / "iir"
TINY = [
    "train.epochs=1", "train.length=4", "train.batch_size=32", "data.train_limit=96", "data.val_size=32",
    "data.test_limit=32", "train.progress=false", "train.threads=1",
]


def test_train_then_test(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_2.yaml", "--out", str(out), *TINY]) == 0
    summary = json.loads(_last_json(capsys))
    assert summary["model"] == "iir_mlp" and "test_accuracy" in summary
    assert main(["iir", "test", "--checkpoint", str(out / "checkpoint_best.pt"), "--no-progress"]) == 0
    tested = json.loads(_last_json(capsys))
    assert tested["accuracy"] == pytest.approx(summary["test_accuracy"])


def _last_json(capsys) -> str:
    """The JSON summary printed last (after the log lines)."""
    text = capsys.readouterr().out
    start = text.rindex("\n{") + 1 if "\n{" in text else text.index("{")
    return text[start:]


@pytest.mark.parametrize(
    "args,message",
    [
        (["train.bogus=1"], "unknown config key"),
        (["train.epochs=x"], "train.epochs"),
        (["--data-dir", "/nonexistent/mnist"], "is not a directory"),
        (["data.data_dir=/nonexistent/mnist"], "does not exist"),
    ],
)
def test_train_errors_are_one_clear_line(tmp_path, capsys, args, message):
    code = main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(tmp_path / "r"), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_test_errors(tmp_path, capsys):
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    assert main(["iir", "test", "--checkpoint", str(tmp_path / "broken.pt")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["iir", "test", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_config_file(capsys):
    assert main(["iir", "train", "--config", f"{CONFIGS}/nope.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(out), *TINY]) == 0
    before = (out / "checkpoint_latest.pt").read_bytes()
    capsys.readouterr()
    assert main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(out), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "checkpoint_latest.pt").read_bytes() == before


def test_demo_runs_on_the_embedded_subset(tmp_path, capsys, monkeypatch):
    from cortexsnn.cli import demo

    tiny = ["data.train_limit=200", "data.val_size=40", "data.test_limit=50", "train.length=4", "train.threads=1"]
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", [*demo.DEMO_OVERRIDES, *tiny])
    assert main(["demo", "--iir", "--no-progress", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "embedded MNIST subset" in out


def test_memory_command_with_the_default_config(tmp_path, capsys):
    tiny = [
        "memory.size=30", "memory.hidden=[20,10,20]", "memory.repeats=4", "memory.dev_repeats=1",
        "memory.test_repeats=1", "memory.erase_size=5", "train.epochs=1", "train.batch_size=16",
        "train.progress=false", "train.threads=1",
    ]
    assert main(["iir", "memory", "--out", str(tmp_path / "m"), *tiny]) == 0
    assert json.loads(_last_json(capsys))["task"] == "associative_memory"
    assert main(["iir", "memory", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(tmp_path / "x")]) == 2
    assert "associative_memory config" in capsys.readouterr().err


def test_two_runs_on_one_folder_and_overwrite(tmp_path, capsys):
    from cortexsnn.utils.runfolder import RunFolder

    out = tmp_path / "run"
    args = ["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(out), *TINY]
    with RunFolder(out, "iir train"):  # another run holds the folder
        assert main(args) == 2
    err = capsys.readouterr().err
    assert "in use by another run" in err and str(out) in err and "pid" in err and "Traceback" not in err
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    (out / "stale.txt").write_text("not the run's")
    assert main(["iir", "train", "--overwrite", *args[2:], "train.seed=3"]) == 0
    assert json.loads((out / "results.json").read_text()) != first
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert (tmp_path / "run" / "stale.txt").exists()  # not an output of the run: kept
    assert main(["iir", "train", "--resume", "--overwrite", *args[2:]]) == 2


def test_resume_without_config_uses_the_stored_one_and_refuses_other_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["iir", "train", "--resume", "--out", str(out), "train.lr=0.5", "train.batch_size=8"]) == 2
    err = capsys.readouterr().err
    assert "train.lr: 0.0001 -> 0.5" in err or "train.lr" in err
    assert "train.batch_size" in err and "train.epochs" in err
    assert main(["iir", "train", "--resume", "--out", str(out), "train.epochs=2"]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert sum(",val," in r for r in rows) == 2 and sum(",test," in r for r in rows) == 1


def test_an_output_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    assert main(["iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml", "--out", str(tmp_path / "out"), *TINY]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow  # two interpreters: ~12 s alone, much more on a busy machine (the fast twin: test_runfolder.py)
def test_two_processes_on_one_folder(tmp_path):
    """The reported case: two `iir train --out same` at once. The second is refused at once, naming the
    first, and writes nothing; the first, stopped by Ctrl-C, leaves a folder that says 'interrupted'."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "same"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "cortexsnn.cli.main", "iir", "train", "--config", f"{CONFIGS}/snn_mlp_1.yaml",
           "--out", str(out), *TINY]
    first = subprocess.Popen([*cmd, "train.epochs=500"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.csv").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # the first run is training
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run ended too early for this test"
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2 and "in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.returncode == 130, first_err[-2000:]
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "interrupted" and len(manifest["runs"]) == 1 and manifest["pid"] == first.pid
    assert not (out / "run.lock").exists() and not list(out.glob(".*.tmp"))
