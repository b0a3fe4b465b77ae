"""Score tables, ceilings, bootstrap, result files and the movie ablations."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

import cortexsnn.similarity as S
from cortexsnn.data.neural import NeuralData, RDMSet
from cortexsnn.models.layers import SeqConv2d, SpikingModel, make_neuron
from cortexsnn.neurons import reset
from cortexsnn.similarity.ablations import (
    chaos_level,
    clip_ablation,
    replace_ablation,
    replacement_frames,
    shuffle_ablation,
    shuffle_within_windows,
)
from cortexsnn.similarity.results import ScoreTable, best_layers_from_results, canonical_metric
from cortexsnn.similarity.scoring import (
    MetricOptions,
    score_features,
    score_model,
)
from cortexsnn.similarity.features import extract_features


def _rsa_scipy(x, y):
    return spearmanr(pdist(np.asarray(x, dtype=np.float64), "correlation"),
                     pdist(np.asarray(y, dtype=np.float64), "correlation")).statistic


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 5))
    y1 = latent @ rng.normal(size=(5, 20)) + 0.3 * rng.normal(size=(n, 20))
    y2 = latent[:, :3] @ rng.normal(size=(3, 12)) + 0.5 * rng.normal(size=(n, 12))
    layers = [(f"l{k}", torch.tensor(latent @ rng.normal(size=(5, 60)) + noise * rng.normal(size=(n, 60)),
                                     dtype=torch.float32))
              for k, noise in enumerate([3.0, 0.2, 1.0])]
    return layers, {"A": y1, "B": y2}


def test_rsa_table_against_scipy_and_aggregation():
    layers, neural = _data()
    t = score_features(layers, neural, metric="RSA", model="m", neural_dataset="toy", ceiling="none")
    assert t.metric == "rsa" and t.layers == ["l0", "l1", "l2"] and t.areas == ["A", "B"]
    for i, (_, x) in enumerate(layers):
        for j, a in enumerate(t.areas):
            assert t.scores[i, j] == pytest.approx(_rsa_scipy(x, neural[a]), abs=1e-10)
    assert t.best_layer == {"A": "l1", "B": "l1"}
    assert t.model_score == pytest.approx(t.scores[1].mean())
    assert t.ci_low is None and t.ceiling is None and t.silent_layers == []


def test_silent_layer_flagged_not_averaged():
    layers, neural = _data()
    layers.insert(1, ("dead", torch.zeros(30, 40)))
    t = score_features(layers, neural, metric="rsa", ceiling="none")
    assert t.silent_layers == ["dead"] and "identical" in t.config["silent_reasons"]["dead"]
    assert np.isnan(t.scores[1]).all() and np.isfinite(t.scores[[0, 2, 3]]).all()
    assert "dead" not in t.best_layer.values() and math.isfinite(t.model_score)
    # an area with no scored layer makes the model score NaN instead of being averaged away
    only_dead = score_features([("dead", torch.zeros(30, 4))], neural, metric="rsa", ceiling="none")
    assert math.isnan(only_dead.model_score) and only_dead.best_layer == {}


def test_model_score_never_averages_areas_with_and_without_a_ceiling():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(10, 6))
    subjects = [pdist(base + 0.5 * rng.normal(size=base.shape), "correlation") for _ in range(4)]
    one = [pdist(base + 0.5 * rng.normal(size=base.shape), "correlation")]
    x = torch.tensor(base @ rng.normal(size=(6, 25)))
    targets = {"human": RDMSet.from_matrices(subjects, list("abcd")), "monkey": RDMSet.from_matrices(one, ["m"])}
    mixed = score_features([("l", x)], targets, metric="rsa")
    assert set(mixed.ceiling) == {"human"} and math.isnan(mixed.model_score)
    raw = score_features([("l", x)], targets, metric="rsa", ceiling="none")
    assert raw.model_score == pytest.approx(raw.scores[0].mean())


def test_other_metrics_equal_the_metric_functions():
    # 80 stimuli: SVCCA's 40 TSVD dimensions + the 20 unreduced neurons of area A stay below them
    layers, neural = _data(n=80)
    x = layers[1][1]
    for metric, fn in [
        ("svcca", lambda a, b: S.svcca(a, b, reduce_y=False)),
        ("regression", lambda a, b: S.tsvd_regression(a, b)),
        ("pca-ridge", lambda a, b: S.pca_ridge_r2(a, b, cv=5)),
        ("cka", lambda a, b: S.linear_cka(a, b)),
        ("tsrsa", lambda a, b: S.tsrsa(a, b)),
    ]:
        t = score_features([layers[1]], neural, metric=metric)
        for j, a in enumerate(t.areas):
            assert t.scores[0, j] == pytest.approx(fn(x, neural[a]), abs=1e-9), metric
    t = score_features([layers[1]], neural, metric="cka", options=MetricOptions(cka="rbf-debiased"))
    assert t.scores[0, 0] == pytest.approx(S.rbf_cka(x, neural["A"], debiased=True), abs=1e-9)
    # svcca reduces the neural side for allen_natural_scenes only (Huang et al., AAAI 2023)
    t = score_features([layers[1]], {"A": neural["A"]}, metric="svcca", neural_dataset="allen_natural_scenes",
                       options=MetricOptions(n_components=10))
    assert t.scores[0, 0] == pytest.approx(S.svcca(x, neural["A"], n_components=10), abs=1e-9)


def test_ceiling_and_bootstrap_match_the_ceiling_functions():
    layers, neural = _data()
    t = score_features(layers[1:2], neural, metric="tsrsa", n_boot=50, ceiling_splits=20)
    for j, a in enumerate(t.areas):
        m, s = S.split_half_neuron_ceiling(neural[a], n_splits=20, random_state=2023, drop_first=True)
        assert t.ceiling[a]["mean"] == pytest.approx(m) and t.ceiling[a]["sem"] == pytest.approx(s)
        est, lo, hi = S.bootstrap_ci(S.rdm(layers[1][1][1:]), S.rdm(neural[a][1:]), n_boot=50, random_state=0)
        assert t.scores[0, j] == pytest.approx(est) and (t.ci_low[0, j], t.ci_high[0, j]) == pytest.approx((lo, hi))
        assert lo <= est <= hi


def test_trial_ceiling_with_trials():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(12, 8))
    trials = signal[None] + rng.normal(size=(6, 12, 8))
    data = NeuralData({"V1": trials}, np.arange(12))
    x = torch.tensor(signal @ rng.normal(size=(8, 30)))
    t = score_features([("l", x)], data, metric="rsa", ceiling_splits=10)
    m, _ = S.split_half_trial_ceiling(trials, n_splits=10, random_state=2023)
    assert t.ceiling["V1"]["mean"] == pytest.approx(m) and "trials" in t.ceiling["V1"]["method"]


def test_rdm_set_targets_mean_ceiling_and_bootstrap():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(10, 6))
    subjects = [pdist(base + 0.5 * rng.normal(size=base.shape), "correlation") for _ in range(4)]
    rset = RDMSet.from_matrices(subjects, [f"s{i}" for i in range(4)])
    x = torch.tensor(base @ rng.normal(size=(6, 25)))
    t = score_features([("l", x)], {"hIT": rset}, metric="rsa", n_boot=30)
    expected = np.mean([spearmanr(pdist(x.numpy(), "correlation"), s).statistic for s in subjects])
    assert t.scores[0, 0] == pytest.approx(expected, abs=1e-10)
    lo, up = S.rdm_set_ceiling(rset.rdms)
    c = t.ceiling["hIT"]
    assert (c["lower"], c["upper"]) == pytest.approx((lo, up)) and c["kind"] == "leave-one-subject-out"
    assert "mean" not in c and c["denominator"] == c["upper"]  # bounds reported as bounds, not as mean +- std
    assert t.percent_of_ceiling()["hIT"] == pytest.approx(100 * t.scores[0, 0] / up)
    # bootstrap by hand: the same stimulus draws for every subject, mean over subjects per replicate
    model_rdm = S.rdm(x).numpy()
    r = np.random.default_rng(0)
    iu = np.triu_indices(10, 1)
    vals = []
    for _ in range(30):
        idx = r.integers(0, 10, 10)
        i, j = idx[iu[0]], idx[iu[1]]
        keep = i != j
        vals.append(np.mean([spearmanr(model_rdm[i[keep], j[keep]], rset.rdms[s][i[keep], j[keep]]).statistic
                             for s in range(4)]))
    assert (t.ci_low[0, 0], t.ci_high[0, 0]) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)))
    with pytest.raises(ValueError, match="RDMs only"):
        score_features([("l", x)], {"hIT": rset}, metric="svcca")


def test_bad_inputs():
    layers, neural = _data()
    with pytest.raises(ValueError, match="stimulus counts differ"):
        score_features([("l", torch.randn(29, 5))], neural)
    with pytest.raises(ValueError, match="usable neurons"):
        score_features(layers, {"A": neural["A"][:, :1]})
    with pytest.raises(ValueError, match="usable neurons"):  # constant neurons are dropped for regression
        score_features(layers, {"A": np.c_[neural["A"][:, :1], np.ones((30, 3))]}, metric="regression")
    with pytest.raises(ValueError, match="unknown metric"):
        canonical_metric("mse")
    with pytest.raises(ValueError, match="NaN"):
        score_features([("l", torch.full((30, 4), float("nan")))], neural)


def test_round_trip_and_files(tmp_path):
    layers, neural = _data()
    layers.append(("dead", torch.zeros(30, 3)))
    t = score_features(layers, neural, metric="rsa", n_boot=20, ceiling_splits=5,
                       config={"train_dataset": "imagenet"}, model="sew_resnet18", neural_dataset="toy")
    d = t.to_dict()
    text = json.dumps(d, allow_nan=False)  # strictly JSON: no NaN
    back = ScoreTable.from_dict(json.loads(text))
    np.testing.assert_array_equal(back.scores, t.scores)
    np.testing.assert_array_equal(back.ci_low, t.ci_low)
    assert back.best_layer == t.best_layer and back.ceiling == t.ceiling and back.silent_layers == ["dead"]
    assert d["model_score"] == pytest.approx(t.model_score) and d["best_layer"] == t.best_layer
    written = t.write(tmp_path / "out", save_npy=True)
    assert [p.name for p in written] == ["results.json", "scores.csv", "sew_resnet18.npy"]
    assert written[2].relative_to(tmp_path / "out").as_posix() == "RSA/toy/imagenet/sew_resnet18.npy"
    np.testing.assert_array_equal(np.load(written[2]), t.scores)
    rows = list(csv.DictReader(open(tmp_path / "out" / "scores.csv")))
    assert len(rows) == 8 and rows[0]["layer"] == "l0" and rows[0]["area"] == "A"
    assert float(rows[0]["score"]) == t.scores[0, 0] and rows[-1]["score"] == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["RSA", "results.json", "scores.csv"]  # no temp files
    assert best_layers_from_results(tmp_path / "out") == t.best_layer
    only = score_features(layers, neural, metric="rsa", best_layer={"A": "l2", "B": "l1"}, ceiling="none")
    assert only.best_layer == {"A": "l2", "B": "l1"} and np.isnan(only.scores[0]).all()
    assert only.seed_array().tolist() == pytest.approx([only.scores[2, 0], only.scores[1, 1]])


# ---------------------------------------------------------------------------------------- movie ablations
class MovieSNN(SpikingModel):
    def __init__(self):
        super().__init__()
        self.conv = SeqConv2d(3, 4, 3, stride=2, padding=1)
        self.sn = make_neuron("lif", tau=4.0, v_threshold=0.5)
        self.conv2 = SeqConv2d(4, 4, 3, stride=2, padding=1)
        self.scoring_layers = ["conv", "sn", "conv2"]
        with torch.no_grad():
            self.conv.weight.mul_(3.0)  # spikes from the first frames on (no silent frame rows)

    def forward(self, x):
        self.prepare(x)
        return self.conv2(self.sn(self.conv(x)))


@pytest.fixture
def movie_setup():
    torch.manual_seed(0)
    model = MovieSNN().eval()
    g = torch.Generator().manual_seed(4)
    movie = torch.randn(40, 3, 16, 16, generator=g).cumsum(0) / 4  # slowly drifting frames
    feats = dict(extract_features(model, movie, mode="movie", chunk_frames=8))
    rng = np.random.default_rng(5)
    y = feats["conv2"].double().numpy() @ rng.normal(size=(feats["conv2"].shape[1], 15))
    neural = {"VISp": y + rng.normal(size=y.shape), "VISl": y[:, :8] + 2 * rng.normal(size=(40, 8))}
    return model, movie, neural, feats


def test_clip_ablation_sub_rdms(movie_setup):
    model, movie, neural, feats = movie_setup
    t = clip_ablation(feats.items(), neural, clip_len=10, trials=4, model="m", config={"train_dataset": "ucf101"})
    starts = np.random.RandomState(2023).choice(39 - 10 + 1, 4, replace=False)
    assert [tr["start"] for tr in t.trials] == starts.tolist()
    for k, s in enumerate(starts):
        rows = slice(1 + s, 1 + s + 10)  # first frame dropped
        expected = S.rsa(feats["sn"][rows], neural["VISl"][rows])
        assert t.trial_scores[k, 1, 1] == pytest.approx(expected, abs=1e-10)
    assert t.scores[1, 1] == pytest.approx(t.trial_scores[:, 1, 1].mean())
    assert t.seed_npy_path().as_posix() == "TSRSA/neural/ucf101/stimulus_clip/m_10.npy"
    assert t.seed_array().shape == (4, 3, 2)


def test_shuffle_ablation(movie_setup):
    model, movie, neural, feats = movie_setup
    ident = shuffle_ablation(model, movie, neural, window=1, trials=2, chunk_frames=8)
    base = score_model(model, movie, neural, metric="tsrsa", mode="movie", chunk_frames=8, ceiling="none")
    np.testing.assert_allclose(ident.scores, base.scores, atol=1e-12)
    assert [tr["chaos"] for tr in ident.trials] == pytest.approx([0.0, 0.0])
    t = shuffle_ablation(model, movie, neural, window=10, trials=3, chunk_frames=8, best_layer={"VISp": "sn", "VISl": "conv"})
    rng = np.random.RandomState(2023)
    perms = [shuffle_within_windows(40, 10, rng) for _ in range(3)]
    for k, perm in enumerate(perms):
        assert sorted(perm[:10]) == list(range(10)) and sorted(perm[30:]) == list(range(30, 40))
        shuffled = dict(extract_features(model, movie[torch.as_tensor(perm)], mode="movie", chunk_frames=8))
        assert t.trial_scores[k, t.layers.index("sn"), 0] == pytest.approx(
            S.tsrsa(shuffled["sn"], neural["VISp"][perm]), abs=1e-10)
        assert t.trials[k]["chaos"] == pytest.approx(chaos_level(perm)) and t.trials[k]["chaos"] > 0
    assert t.layers == ["conv", "sn"] and t.seed_array().shape == (3, 2)
    assert t.config["ablation"] == {"kind": "shuffle", "window": 10, "trials": 3}


def test_replace_ablation(movie_setup):
    model, movie, neural, feats = movie_setup
    norm = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    t = replace_ablation(model, movie, neural, window=8, replace_type="black", trials=2, normalization=norm,
                         chunk_frames=8, config={"train_dataset": "ucf101"})
    rng = np.random.RandomState(2023)
    for k in range(2):
        idx = [s + rng.randint(8) for s in range(0, 40, 8)]
        assert t.trials[k]["replaced"] == idx
        changed = movie.clone()
        changed[idx] = -1.0  # black pixels under mean = std = 0.5
        f = dict(extract_features(model, changed, mode="movie", chunk_frames=8))
        assert t.trial_scores[k, 2, 0] == pytest.approx(S.tsrsa(f["conv2"], neural["VISp"]), abs=1e-10)
    assert t.seed_npy_path().as_posix() == "TSRSA/neural/ucf101/stimulus_replace_black/model_8.npy"
    g = replacement_frames("gaussian", [3, 3, 4], (3, 4, 4), normalization=None)
    assert torch.equal(g[0], g[1]) and not torch.equal(g[0], g[2])
    scenes = torch.randn(5, 3, 4, 4)
    assert torch.equal(replacement_frames("static", [7], (3, 4, 4), normalization=None, scenes=scenes)[0], scenes[2])
    with pytest.raises(ValueError, match="normalisation"):
        replace_ablation(model, movie, neural, window=8, replace_type="uniform")


def test_front_len(movie_setup):
    model, movie, neural, feats = movie_setup
    t = score_model(model, movie, neural, metric="tsrsa", mode="movie", chunk_frames=8, front_len=20, ceiling="none")
    assert t.scores[1, 0] == pytest.approx(S.tsrsa(feats["sn"][:20], neural["VISp"][:20]), abs=1e-10)
    reset(model)


def test_score_model_checks_counts_before_running(movie_setup):
    model, movie, neural, _ = movie_setup
    calls = []
    hook = model.conv.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match="stimulus count mismatch"):
        score_model(model, movie[:-1], neural, metric="tsrsa", mode="movie")
    hook.remove()
    assert calls == []
