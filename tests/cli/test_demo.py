"""``cortexsnn demo`` / ``benchmark``: the main job end to end on the real data (reduced size), its
per-layer scores against score_features, data discovery and the offline message."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch

from cortexsnn.cli import demo as D
from cortexsnn.cli.main import main
from cortexsnn.data.neural import KRIEGESKORTE92_FILES
from cortexsnn.similarity import compare_rdms
from cortexsnn.similarity.benchmarks import load_benchmarks
from cortexsnn.similarity.scoring import MetricOptions, score_features
from cortexsnn.similarity.features import zscore_global
from cortexsnn.similarity.networks import pick_layers
from cortexsnn.similarity.suite import SuiteResult, layer_rdm


def _offline(monkeypatch):
    """No network: every HTTP(S) request goes to a closed local port."""
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def test_offline_message_names_the_files_and_the_folder(tmp_path, monkeypatch, capsys):
    """An empty data folder, downloads failing: one message, exit 2, nothing left half-written."""
    _offline(monkeypatch)
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("CORTEXSNN_DATA", str(empty))
    out = tmp_path / "out"
    code = main(["demo", "--output-dir", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("cortexsnn demo: error:") == 1 and "Traceback" not in err
    target = empty / "kriegeskorte92"
    assert f"missing from {target}" in err and f"Put these files in {target}" in err and "CORTEXSNN_DATA" in err
    for name, (commit, sha256) in KRIEGESKORTE92_FILES.items():
        assert name in err and sha256 in err and f"rsatoolbox/{commit}/demos/92imageData/{name}" in err
    assert not out.exists()
    assert not target.exists() or not any(p.suffix == ".mat" for p in target.iterdir())


def test_no_download_flag_and_data_dir(tmp_path, capsys):
    code = main(["demo", "--data-dir", str(tmp_path / "nowhere"), "--no-download", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "downloads are off" in err and str(tmp_path / "nowhere") in err
    assert err.count("error:") == 1 and "Traceback" not in err


def test_flags_are_checked(tmp_path, capsys):
    assert main(["demo", "--checkpoint", "sew_resnet18", "--output-dir", str(tmp_path)]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", "vgg16=x.pth", "--output-dir", str(tmp_path)]) == 2
    assert "not among the models" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", f"sew_resnet18={tmp_path / 'none.pth'}", "--output-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["benchmark", "--bootstrap", "10", "--output-dir", str(tmp_path)]) == 2
    assert "--bootstrap must be >= 100" in capsys.readouterr().err
    assert main(["benchmark", "--benchmarks", "v1", "--output-dir", str(tmp_path)]) == 2
    assert "unknown benchmark 'v1'" in capsys.readouterr().err


def test_pick_layers():
    layers = [f"l{i}" for i in range(11)]
    assert pick_layers(layers, None) == layers and pick_layers(layers, 20) == layers
    assert pick_layers(layers, 3) == ["l0", "l5", "l10"]
    assert pick_layers(layers, 2) == ["l0", "l10"] and pick_layers(layers, 1) == ["l10"]


def test_per_layer_scores_equal_score_features(shared_data):
    """The suite's per-layer RSA equals score_features on the same targets (the similarity command's
    path) for layers where every stimulus responds; a layer with a silent stimulus is scored under
    the stated rule where score_features reports it silent."""
    benchmarks, _ = load_benchmarks(["kriegeskorte92"], shared_data, download=False)
    monkey, human = benchmarks
    g = torch.Generator().manual_seed(0)
    base = torch.randn(92, 50, generator=g)
    feats = [("a", base @ torch.randn(50, 300, generator=g)), ("b", torch.randn(92, 40, generator=g)),
             ("c", torch.rand(92, 500, generator=g))]
    feats[2][1][5] = 0.25  # a constant stimulus row: undefined correlation distances
    # the extractor z-scores each layer (one global mean and std) before score_features sees it
    ref = score_features(iter([(n, zscore_global(x.clone())) for n, x in feats]),
                         {"monkey IT": monkey.target, "human IT": human.target}, metric="rsa",
                         options=MetricOptions(precision="float32"), ceiling="none")
    for k, (name, x) in enumerate(feats):
        r, record = layer_rdm(x.clone())
        ours = [compare_rdms(r, monkey.target.rdms[0]), float(np.mean([compare_rdms(r, s) for s in human.target.rdms]))]
        if name == "c":
            assert record["silent_stimuli"] == 1 and ref.silent_layers == ["c"] and np.isfinite(ours).all()
        else:
            assert ours == ref.scores[k].tolist()  # bit-identical


@pytest.mark.slow
def test_demo_end_to_end_on_three_species(shared_data, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--data-dir", str(shared_data), "--no-download", "--output-dir", str(out),
                 "--image-size", "32", "--max-layers", "3", "--time-steps", "2", "--conversion-steps", "8",
                 "--bootstrap", "100", "--splits", "3", "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    result = SuiteResult.read(out)
    assert list(result.models) == list(D.DEMO_MODELS)
    assert {b["species"] for b in result.benchmarks.values()} == {"macaque", "human", "mouse"}
    human = result.benchmarks["kriegeskorte92.human_IT"]["ceiling"]
    assert human["kind"] == "leave-one-subject-out" and 0.2 < human["lower"] < human["upper"] < 0.9
    assert result.benchmarks["kriegeskorte92.monkey_IT"]["ceiling"] is None
    cnn, snn = result.models["efficientnet_lite0"], result.models["efficientnet_lite0_snn"]
    assert cnn["trained"] and "efficientnet_lite0.imagenet" in cnn["weights"] and cnn["mode"] == "cnn"
    assert snn["trained"] and snn["converted_from"] == "efficientnet_lite0" and snn["time_steps"] == 8
    calibration = snn["conversion"]["calibration"]
    assert set(calibration) == {"kriegeskorte92", "algonauts78", "allen2p_ns118"}
    for scored, described in calibration.items():
        assert f"not the scored {scored}" in described  # never calibrated on the images it is scored on
    for name in ("sew_resnet18", "lorafb_snet18"):
        assert result.models[name]["trained"] is False and "UNTRAINED" in result.models[name]["weights"]
    for bname, scores in result.scores.items():
        summaries = {s["model"]: s for s in scores["summary"]}
        assert summaries["efficientnet_lite0"]["status"] == "scored"
        for s in summaries.values():
            if s["status"] == "scored":
                assert s["n_folds"] == 6 and -1 <= s["score"] <= 1
                assert ("normalized_score" in s) == (result.benchmarks[bname]["ceiling"] is not None)
        scored = [m for m, s in summaries.items() if s["status"] == "scored"]
        assert len(scores["comparisons"]) == len(scored) * (len(scored) - 1) // 2
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["benchmark"] for r in rows} == set(result.benchmarks)
    assert all(len([r for r in rows if r["model"] == m and r["benchmark"] == b]) <= 3
               for m in result.models for b in result.benchmarks)
    html = (out / "report.html").read_text()
    for name in re.findall(r'<img src="([^"]+)"', html):
        assert (out / name).is_file()
    assert "Paired comparisons" in html and html.count("UNTRAINED (random weights)") >= 2
    assert "held-out score" in printed.out and "UNTRAINED" in printed.out and "report.html" in printed.out
    assert json.loads((out / "results.json").read_text())["format"] == "cortexsnn.similarity.SuiteResult/1"
