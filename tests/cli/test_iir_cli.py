"""`cortexsnn iir` end to end on tiny runs, and its error messages."""
from __future__ import annotations

import json

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
