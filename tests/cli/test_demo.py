"""``cortexsnn demo``: the main job end to end on the real 92-image data (reduced size), its scores
against score_features, data discovery and the offline message."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from cortexsnn.cli import demo as D
from cortexsnn.cli.main import main
from cortexsnn.data.neural import KRIEGESKORTE92_FILES, RDMSet
from cortexsnn.similarity import rdm_set_ceiling
from cortexsnn.similarity.experiments import MetricOptions, ScoreTable, score_features


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
    assert code == 2 and "--no-download" in err and str(tmp_path / "nowhere") in err


def test_flags_are_checked(tmp_path, capsys):
    assert main(["demo", "--checkpoint", "sew_resnet18", "--output-dir", str(tmp_path)]) == 2
    assert "MODEL=PATH" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", "vgg16=x.pth", "--output-dir", str(tmp_path)]) == 2
    assert "not among the models" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", f"sew_resnet18={tmp_path / 'none.pth'}", "--output-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pick_layers():
    layers = [f"l{i}" for i in range(11)]
    assert D.pick_layers(layers, None) == layers and D.pick_layers(layers, 20) == layers
    assert D.pick_layers(layers, 3) == ["l0", "l5", "l10"]
    assert D.pick_layers(layers, 2) == ["l0", "l10"] and D.pick_layers(layers, 1) == ["l10"]


def test_scores_equal_score_features(shared_data):
    """The demo's per-layer RSA equals score_features on the same targets (the CLI's path), silent
    layers included."""
    targets, _ = D.load_targets(shared_data / "kriegeskorte92")
    g = torch.Generator().manual_seed(0)
    base = torch.randn(92, 50, generator=g)
    feats = [("a", base @ torch.randn(50, 300, generator=g)), ("b", torch.randn(92, 40, generator=g)),
             ("flat", torch.ones(92, 30)), ("c", torch.rand(92, 500, generator=g))]
    feats[3][1][5] = 0.25  # a constant stimulus row: undefined correlation distances
    names, scores, silent, reasons, rdms = D.score_layers(iter(feats), targets)
    ref = score_features(iter(feats), {"monkey IT": RDMSet.from_matrices([targets["monkey IT"]], ["m"]),
                                       "human IT": RDMSet.from_matrices(targets["human IT"], ["1", "2", "3", "4"])},
                         metric="rsa", options=MetricOptions(precision="float32"), ceiling="none")
    assert names == ref.layers and silent == ref.silent_layers == ["flat", "c"]
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(ref.scores))
    np.testing.assert_allclose(scores, ref.scores, atol=1e-12, equal_nan=True)
    assert set(rdms) == {"a", "b"} and rdms["a"].shape == (92, 92)
    assert "constant" in reasons["c"] and reasons["flat"] == ref.config["silent_reasons"]["flat"]


@pytest.mark.slow
def test_demo_end_to_end_on_the_92_images(shared_data, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--data-dir", str(shared_data / "kriegeskorte92"), "--no-download", "--output-dir", str(out),
                 "--image-size", "32", "--max-layers", "3", "--time-steps", "2", "--conversion-steps", "8",
                 "--bootstrap", "40", "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    record = json.loads((out / "results.json").read_text())
    tables = [ScoreTable.from_dict(t) for t in record["tables"]]
    assert [t.model for t in tables] == list(D.DEMO_MODELS)
    targets, _ = D.load_targets(shared_data / "kriegeskorte92")
    lo, up = rdm_set_ceiling(targets["human IT"])
    for t in tables:
        assert t.areas == ["monkey IT", "human IT"] and len(t.layers) == 3 and t.metric == "rsa"
        assert (t.ceiling["human IT"]["lower"], t.ceiling["human IT"]["upper"]) == pytest.approx((lo, up))
        assert 0.2 < lo < up < 0.9  # the published ceiling's range for human IT
        scored = [i for i, layer in enumerate(t.layers) if layer not in t.silent_layers]
        assert np.isfinite(t.scores[scored]).all() and np.isnan(np.delete(t.scores, scored, axis=0)).all()
        assert np.isfinite(t.ci_low[scored]).all() and np.isfinite(t.ci_high[scored]).all()
        assert (np.abs(t.scores[scored]) <= 1).all()
        assert (t.ci_low[scored] <= t.scores[scored] + 1e-9).all() and (t.scores[scored] <= t.ci_high[scored] + 1e-9).all()
        assert set(t.silent_layers) == set(t.config["silent_reasons"])
        assert ScoreTable.read(out / t.model).scores.shape == (3, 2)
    cnn, snn, controls = tables[0], tables[1], tables[2:]
    # the trained ANN and its spiking conversion, labelled with where their weights came from
    assert cnn.config["trained"] and "efficientnet_lite0.imagenet" in cnn.config["weights"]
    assert cnn.config["mode"] == "cnn" and np.isfinite(cnn.scores).all() and math.isfinite(cnn.model_score)
    assert snn.config["trained"] and snn.config["converted_from"] == "efficientnet_lite0"
    assert "spiking conversion" in snn.config["weights"] and snn.config["time_steps"] == 8
    assert "Algonauts" in snn.config["conversion"]["calibration"] and snn.config["mode"] == "static"
    assert snn.layers == cnn.layers and math.isfinite(snn.model_score)
    for t in controls:
        assert t.config["trained"] is False and "UNTRAINED" in t.config["weights"]
    # the report: there, its figures beside it, every model and its untrained status
    html = (out / "report.html").read_text()
    for name in re.findall(r'<img src="([^"]+)"', html):
        assert (out / name).is_file()
    assert "rdms.png" in html and all(t.model in html for t in tables) and html.count("UNTRAINED (random weights)") >= 2
    assert f"{cnn.model_score:.4f}" in html
    assert "model score" in printed.out and "UNTRAINED" in printed.out and "report.html" in printed.out
