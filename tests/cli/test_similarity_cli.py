"""``cortexsnn similarity`` end to end on small data made here (and on the Allen 2-photon set)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cortexsnn.cli.main import main
from cortexsnn.data.neural import NeuralData, save_npz
from cortexsnn.similarity.results import ScoreTable


def _recording(tmp_path, n=24, with_images=True, name="rec.npz"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    # neurons driven by the images' colour means and a little noise: a real stimulus dependence
    drive = images.reshape(n, -1, 3).mean(axis=1) / 255.0
    resp = {"V1": drive @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(n, 10)),
            "V4": drive[:, :2] @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(n, 6))}
    data = NeuralData(resp, np.arange(n), meta={"dataset": "toy"}, stimuli=images if with_images else None)
    return save_npz(data, tmp_path / name), images


def _run(*args):
    return main(["similarity", "--quiet", "--no-report", "--image-size", "32", *map(str, args)])


def test_static_run_writes_results(tmp_path, capsys):
    rec, _ = _recording(tmp_path)
    out = tmp_path / "out"
    code = _run("--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec,
                "--metric", "RSA", "--output-dir", out, "--bootstrap", "20", "--ceiling-splits", "5",
                "--time-steps", "2", "--save-npy")
    assert code == 0, capsys.readouterr().err
    table = ScoreTable.read(out)
    from cortexsnn.models import create_model

    assert table.layers == create_model("sew_resnet18").scoring_layers and table.areas == ["V1", "V4"]
    assert table.metric == "rsa" and table.config["train_dataset"] == "imagenet"
    assert "UNTRAINED" in table.config["weights"] and table.config["stimuli"]["preset"] == "imagenet"
    assert table.config["mode"] == "static" and table.config["time_steps"] == 2
    assert table.ceiling and set(table.ceiling) == {"V1", "V4"}
    ok = np.isfinite(table.scores)
    assert ok.any() and np.all(table.ci_low[ok] <= table.scores[ok] + 1e-12)
    assert set(table.silent_layers) | {table.layers[i] for i in np.flatnonzero(ok.all(axis=1))} == set(table.layers)
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == len(table.layers) * 2
    assert np.load(out / "RSA" / "recording" / "imagenet" / "sew_resnet18.npy").shape == (len(table.layers), 2)
    printed = capsys.readouterr().out
    assert "model score" in printed and "results.json" in printed


def test_cnn_baseline_and_image_folder(tmp_path):
    rec, images = _recording(tmp_path, with_images=False)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"img_{i}.png")
    out = tmp_path / "cnn"
    assert _run("--model", "resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec,
                "--stimulus-dir", folder, "--metric", "cka", "--output-dir", out) == 0
    table = ScoreTable.read(out)
    assert table.config["mode"] == "cnn" and table.layers[0] == "relu" and table.metric == "cka"
    assert np.isfinite(table.scores).all()


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys):
    rec, images = _recording(tmp_path, with_images=False)
    out = tmp_path / "never"
    folder = tmp_path / "short"
    folder.mkdir()
    for i, im in enumerate(images[:-1]):  # one image missing
        Image.fromarray(im).save(folder / f"img_{i}.png")
    cases = [
        (["--stimulus-dir", folder], "expected"),
        (["--stimulus-dir", tmp_path / "absent"], "does not exist"),
    ]
    torch.save(torch.randn(24, 32, 32), tmp_path / "bad.pt")
    cases.append((["--stimulus-dir", tmp_path / "bad.pt"], "[N, 3, H, W]"))
    torch.save(torch.randn(23, 3, 32, 32), tmp_path / "short.pt")
    cases.append((["--stimulus-dir", tmp_path / "short.pt"], "24 expected"))
    for extra, message in cases:
        code = _run("--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec,
                    "--output-dir", out, *extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err, (extra, err)
    assert _run("--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir",
                tmp_path / "missing.npz", "--output-dir", out) == 2
    assert _run("--model", "no_such_net", "--neural-dataset", "recording", "--neural-dataset-dir", rec,
                "--stimulus-dir", tmp_path / "short.pt", "--output-dir", out) == 2
    rec2, _ = _recording(tmp_path, name="with_images.npz")
    assert _run("--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec2,
                "--layers", "sn1,nope", "--output-dir", out) == 2
    assert "nope" in capsys.readouterr().err
    assert _run("--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec2,
                "--shuffle", "--output-dir", out) == 2  # no --window, and not a movie
    assert not out.exists()


def test_a_folder_holding_results_is_refused_unless_overwrite(tmp_path, capsys):
    rec, _ = _recording(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")  # another run's results
    (out / ".scores.csv.x1.tmp").write_text("half")  # a write cut short
    args = ["--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", rec, "--layers", "sn1",
            "--time-steps", "1", "--ceiling-splits", "2", "--output-dir", out]
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "results.json" in err and (out / "results.json").read_text() == "{}"
    assert "--resume" not in err and "resume=" not in err  # similarity has nothing to resume
    assert _run(*args, "--overwrite") == 0
    assert ScoreTable.read(out).layers == ["sn1"] and not (out / ".scores.csv.x1.tmp").exists()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete" and {"results.json", "scores.csv"} <= set(manifest["files"])
    assert not (out / "run.lock").exists()


def test_movie_run_and_shuffle_ablation_with_best_layer(tmp_path):
    rec, _ = _recording(tmp_path, n=20)
    out = tmp_path / "movie"
    common = ["--model", "sew_resnet18", "--train-dataset", "ucf101", "--neural-dataset", "recording", "--movie",
              "--neural-dataset-dir", rec, "--output-dir", out, "--chunk-frames", "8",
              "--layers", "conv1,bn1,layer1.0,layer4.1"]
    assert _run(*common, "--ceiling-splits", "4") == 0
    base = ScoreTable.read(out)
    assert base.metric == "tsrsa" and base.config["mode"] == "movie" and base.config["stimuli"]["preset"] == "video"
    assert _run(*common, "--shuffle", "--window", "5", "--trial-for-ablation", "2", "--best-layer", "--save-npy") == 0
    t = ScoreTable.read(out / "stimulus_shuffle" / "best_layer" / "window_5")
    assert t.config["best_layer"] == base.best_layer and t.trial_scores.shape[0] == 2
    assert len(t.trials) == 2 and all(tr["chaos"] > 0 for tr in t.trials)
    npy = np.load(out / "TSRSA" / "recording" / "ucf101" / "stimulus_shuffle" / "best_layer" / "sew_resnet18_5.npy")
    assert npy.shape == (2, 2)
    assert _run(*common, "--trial-for-clip", "3", "--clip-len", "6") == 0
    clip = json.loads((out / "stimulus_clip" / "clip_len_6" / "results.json").read_text())
    assert len(clip["trials"]) == 3 and clip["config"]["ablation"]["kind"] == "clip"


@pytest.mark.slow
def test_allen_visp_two_photon(shared_data, tmp_path):
    out = tmp_path / "allen"
    code = _run("--model", "sew_resnet18", "--neural-dataset", "allen_visp_2p_ns118", "--neural-dataset-dir",
                shared_data / "allen_visp_2p_ns118", "--metric", "RSA", "--output-dir", out, "--ceiling-splits", "10",
                "--layers", "sn1,layer1.1,layer2.1,avgpool")
    assert code == 0
    t = ScoreTable.read(out)
    assert t.areas == ["VISp"] and t.config["neurons"] == {"VISp": 212}
    assert 0.0 < t.ceiling["VISp"]["mean"] < 1.0
    assert np.isfinite(t.scores).sum() >= 3


@pytest.mark.slow
def test_kriegeskorte92_rdm_targets(shared_data, tmp_path):
    import cortexsnn.similarity as S
    from cortexsnn.data.neural import load_kriegeskorte92

    out = tmp_path / "k92"
    assert _run("--model", "resnet18", "--neural-dataset", "kriegeskorte92", "--neural-dataset-dir",
                shared_data / "kriegeskorte92", "--output-dir", out, "--layers", "layer1.0,avgpool") == 0
    t = ScoreTable.read(out)
    assert t.areas == ["monkey IT", "human IT"] and set(t.ceiling) == {"human IT"}
    k = load_kriegeskorte92(shared_data / "kriegeskorte92")
    subjects = np.stack([k.brain.rdms[2 * s:2 * s + 2].mean(axis=0) for s in range(4)])  # sessions per subject
    lo, up = S.rdm_set_ceiling(subjects)
    assert (t.ceiling["human IT"]["lower"], t.ceiling["human IT"]["upper"]) == pytest.approx((lo, up))
    assert np.isfinite(t.scores).all()


def test_model_score_line_says_why_there_is_none():
    """A NaN model score is printed with its reason, not as a bare 'nan'."""
    from types import SimpleNamespace

    from cortexsnn.cli.similarity import _model_score_text

    mixed = SimpleNamespace(model_score=float("nan"), ceiling={"human_IT": object()}, areas=["monkey_IT", "human_IT"])
    assert _model_score_text(mixed).startswith("none: monkey_IT has no noise ceiling")
    unscored = SimpleNamespace(model_score=float("nan"), ceiling=None, areas=["IT"])
    assert _model_score_text(unscored) == "none: an area has no scored layer"
    assert _model_score_text(SimpleNamespace(model_score=0.25, ceiling=None, areas=["IT"])) == "0.2500"
