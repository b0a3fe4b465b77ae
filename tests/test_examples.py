"""The scripts of examples/ run (with tiny settings; their defaults are seconds to a minute)."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SCRIPTS = ["score_your_own_model.py", "train_iir_mlp.py", "stdp_mnist.py", "load_checkpoint.py",
           "adaptive_threshold_neuron.py"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name[:-3]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_listed_and_documented():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)
    for name in SCRIPTS:
        tree = ast.parse((EXAMPLES / name).read_text())
        doc = ast.get_docstring(tree)
        assert doc and len(doc.splitlines()) > 3, f"{name} needs a docstring saying what it does and how to run it"
        assert name in (EXAMPLES / "README.md").read_text()
        # public API only: nothing private of cortexsnn imported
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cortexsnn"):
                assert not any(a.name.startswith("_") for a in node.names), f"{name} imports a private name"
                assert not any(part.startswith("_") for part in node.module.split(".")), f"{name}: {node.module}"


def test_train_iir_mlp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = _load("train_iir_mlp.py").main(
        ["--epochs", "1", "--train-limit", "96", "--test-limit", "32", "--length", "4", "--threads", "1",
         "--out", str(tmp_path / "run")])
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "checkpoint_best.pt").is_file()


def test_stdp_mnist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics = _load("stdp_mnist.py").main(
        ["--train-limit", "40", "--test-limit", "20", "--epochs", "1", "1", "1", "--threads", "1"])
    assert metrics["n_samples"] == 20 and 0.0 <= metrics["accuracy"] <= 1.0


def test_adaptive_threshold_neuron():
    result = _load("adaptive_threshold_neuron.py").main(["--steps", "60", "--train-steps", "15", "--threads", "1"])
    assert len(set(result["plain_isi"])) == 1  # a plain LIF fires at a fixed rate under a constant current
    isi = result["adaptive_isi"]
    assert len(isi) >= 2 and isi == sorted(isi) and isi[-1] > isi[0]  # the adaptive one slows down
    assert abs(result["rates"][-1] - 0.1) < abs(result["rates"][0] - 0.1)  # gradients reach the layer


def test_load_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _load("load_checkpoint.py").main(["--out", str(tmp_path)])
    assert (tmp_path / "checkpoint_max_test_acc.pth").is_file() and (tmp_path / "sew_resnet8.safetensors").is_file()
    assert model.pretrained_cfg is None


def test_load_checkpoint_runs_as_a_script(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(EXAMPLES / "load_checkpoint.py"), "--out", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "loaded weights equal the saved ones" in done.stdout


def test_score_your_own_model(tmp_path, monkeypatch, shared_data):
    source = shared_data / "kriegeskorte92"
    if not source.is_dir():
        pytest.skip(f"the 92-image data are absent from {source} (set CORTEXSNN_DATA); the example would download them")
    monkeypatch.chdir(tmp_path)
    table = _load("score_your_own_model.py").main(
        ["--data-dir", str(shared_data), "--image-size", "32", "--out", str(tmp_path / "scores")])
    assert table.areas == ["monkey IT", "human IT"] and len(table.layers) == 4
    assert (tmp_path / "scores" / "results.json").is_file()
    assert table.ceiling and "human IT" in table.ceiling
