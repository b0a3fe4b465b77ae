"""Degenerate inputs are refused alike by every metric, with a toolkit error that says what to do.

* CCA / PWCCA / SVCCA: the two sides together have as many features as stimuli or more
  (canonical correlations of 1 by construction, e.g. 0.99999 for independent noise);
* a constant representation (every stimulus represented alike, all zeros or all ones alike);
* fewer stimuli than the metric's documented minimum (e.g. CKA = 1.0 with 2, RSA = 0.5 with 3).
"""
from __future__ import annotations

import numpy as np
import pytest

import cortexsnn.similarity as S
from cortexsnn.errors import CortexSNNError
from cortexsnn.similarity._checks import (
    MIN_STIMULI,
    MIN_STIMULI_CCA,
    MIN_STIMULI_CKA,
    MIN_STIMULI_REGRESSION,
    MIN_STIMULI_RSA,
    ConstantRepresentationError,
    DegenerateInputError,
)

# every scoring function, as f(x, y) on [stimuli, features] matrices, with its family's minimum
METRICS = {
    "rsa": (lambda x, y: S.rsa(x, y), MIN_STIMULI_RSA),
    "tsrsa (no frame dropped)": (lambda x, y: S.tsrsa(x, y, drop_first=False), MIN_STIMULI_RSA),
    "linear_cka": (lambda x, y: S.linear_cka(x, y), MIN_STIMULI_CKA),
    "debiased linear_cka": (lambda x, y: S.linear_cka(x, y, debiased=True), MIN_STIMULI_CKA),
    "rbf_cka": (lambda x, y: S.rbf_cka(x, y), MIN_STIMULI_CKA),
    "cca": (lambda x, y: S.cca(x[:, :1], y[:, :1]), MIN_STIMULI_CCA),
    "seed_cca": (lambda x, y: S.seed_cca(x[:, :1], y[:, :1]), MIN_STIMULI_CCA),
    "svcca": (lambda x, y: S.svcca(x, y, n_components=1), MIN_STIMULI_CCA),
    "pwcca": (lambda x, y: S.pwcca(x[:, :1], y[:, :1]), MIN_STIMULI_CCA),
    "pwcca canonical": (lambda x, y: S.pwcca(x[:, :1], y[:, :1], variant="canonical"), MIN_STIMULI_CCA),
    "tsvd_regression": (lambda x, y: S.tsvd_regression(x, y, n_components=2), MIN_STIMULI_REGRESSION),
    "pca_ridge_r2": (lambda x, y: S.pca_ridge_r2(x, y, n_components=2, cv="in_sample"), MIN_STIMULI_REGRESSION),
}


def _pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 30)), rng.standard_normal((n, 20))


def test_error_classes_are_toolkit_errors_and_value_errors():
    for cls in (S.SilentLayerError, ConstantRepresentationError, DegenerateInputError):
        assert issubclass(cls, CortexSNNError) and issubclass(cls, ValueError)
    assert issubclass(ConstantRepresentationError, S.SilentLayerError)  # silent-layer handling still applies


# ----------------------------------------------------------------------------- features vs stimuli
def test_issue_example_cca_and_pwcca_on_wide_independent_noise_are_refused():
    rng = np.random.default_rng(0)
    x, y = rng.random((92, 5000)), rng.random((92, 300))
    for fn in (S.pwcca, S.cca, S.seed_cca, lambda a, b: S.pwcca(a, b, variant="canonical")):
        with pytest.raises(DegenerateInputError, match=r"5000 features .* 300, together 5300, not fewer than the 92 "
                                                        r"stimuli") as err:
            fn(x, y)
        assert "svcca" in str(err.value) and "truncated_svd" in str(err.value)
    # the reduction the message points to works on the same data
    assert 0 < S.svcca(x, y, n_components=10) < 1


def test_the_bound_is_where_unit_correlations_appear():
    """With pa + pb = n features the centred spaces (dimension n - 1) must share a direction: a
    canonical correlation of exactly 1 for independent noise. One feature fewer and none is 1 by
    construction."""
    rng = np.random.default_rng(1)
    n = 40
    a, b = rng.standard_normal((n, 25)), rng.standard_normal((n, 15))
    qa = np.linalg.qr(a - a.mean(0))[0]
    qb = np.linalg.qr(b - b.mean(0))[0]
    assert np.linalg.svd(qa.T @ qb, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-10)  # why it is refused
    with pytest.raises(DegenerateInputError, match="at least 1 canonical correlations equal 1"):
        S.cca(a, b)
    rho = S.cca(a, b[:, :14]).numpy()
    assert rho.max() < 1 - 1e-9  # not 1 by construction (though near it: reduce well below the bound)
    assert 0 < S.pwcca(a, b[:, :14]) < 1


def test_svcca_refuses_components_that_fill_the_stimuli_and_says_so():
    x, y = _pair(30)
    with pytest.raises(DegenerateInputError, match=r"n_components=15"):
        S.svcca(x, y, n_components=15)
    assert 0 < S.svcca(x, y, n_components=14) < 1
    # reduce_y=False counts all of y's neurons
    with pytest.raises(DegenerateInputError, match="reduce_y=False"):
        S.svcca(x, y, n_components=10, reduce_y=False)


# ----------------------------------------------------------------------------- constant representation
@pytest.mark.parametrize("value", [0.0, 1.0, -3.7])
@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("side", ["x", "y"])
def test_constant_representation_is_refused_by_every_metric(name, value, side):
    fn, _ = METRICS[name]
    x, y = _pair(12)
    if side == "x":
        x = np.full_like(x, value)
    else:
        y = np.full_like(y, value)
    with pytest.raises(ConstantRepresentationError, match="same for all 12 stimuli"):
        fn(x, y)


def test_identical_non_constant_rows_are_constant_too():
    # every stimulus gets the same varied pattern: still no information about the stimuli
    rng = np.random.default_rng(2)
    x = np.tile(rng.standard_normal(50), (10, 1)).astype(np.float32)
    _, y = _pair(10)
    for fn in (S.rdm, lambda a: S.rsa(a, y), lambda a: S.linear_cka(a, y), lambda a: S.svcca(a, y, n_components=3)):
        with pytest.raises(ConstantRepresentationError):
            fn(x)
    # float32 rounding of otherwise identical rows counts as identical
    jitter = x.copy()
    jitter[3] = np.nextafter(jitter[3], np.float32(np.inf))
    with pytest.raises(ConstantRepresentationError):
        S.rdm(jitter)


def test_issue_example_svcca_of_all_ones_is_refused_like_all_zeros():
    _, y = _pair(50)
    for value in (0.0, 1.0):
        with pytest.raises(ConstantRepresentationError):
            S.svcca(np.full((50, 200), value), y, n_components=10)


def test_a_representation_that_varies_only_in_a_late_feature_block_is_not_constant():
    x = np.zeros((8, 300_000), dtype=np.float32)  # constant for many scan blocks, then varies
    x[:, -1] = np.arange(8)
    S.rdm(x, "euclidean")


def test_cka_from_grams_refuses_a_constant_representation():
    ones = np.ones((10, 5))
    k = S.gram(ones, center="none")
    _, y = _pair(10)
    with pytest.raises(ConstantRepresentationError):
        S.cka_from_grams(k, S.gram(y))


# ----------------------------------------------------------------------------- minimum stimuli
def test_minimum_constants_are_documented_and_shared():
    assert MIN_STIMULI == {"rsa": 4, "cka": 4, "cca": 4, "regression": 4}


@pytest.mark.parametrize("name", list(METRICS))
def test_fewer_stimuli_than_the_minimum_are_refused(name):
    fn, minimum = METRICS[name]
    x, y = _pair(minimum - 1)
    with pytest.raises(DegenerateInputError, match=rf"got {minimum - 1} stimuli; at least {minimum} are needed"):
        fn(x, y)


@pytest.mark.parametrize("name", [m for m in METRICS if "cca" not in m or "cka" in m])
def test_the_minimum_itself_is_scored(name):
    fn, minimum = METRICS[name]
    x, y = _pair(minimum, seed=4)
    assert np.isfinite(float(np.mean(np.asarray(fn(x, y)))))


def test_cca_family_at_the_minimum_with_one_feature_each():
    x, y = _pair(MIN_STIMULI_CCA, seed=4)
    r = abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1])
    assert S.pwcca(x[:, :1], y[:, :1]) == pytest.approx(r, abs=1e-12)
    assert S.cca(x[:, :1], y[:, :1]).item() == pytest.approx(r, abs=1e-12)


def test_issue_examples_cka_with_two_and_rsa_with_three_stimuli():
    x, y = _pair(3)
    with pytest.raises(DegenerateInputError, match="CKA"):
        S.linear_cka(x[:2], y[:2])  # was 1.0 for any data
    with pytest.raises(DegenerateInputError, match="RSA"):
        S.rsa(x, y)  # was 0.5 (3 pairs)


def test_square_rdms_below_the_minimum_are_refused_condensed_vectors_are_not():
    x, y = _pair(3)
    rx, ry = S.rdm(x), S.rdm(y)  # an RDM of 3 stimuli is still an RDM ...
    with pytest.raises(DegenerateInputError):
        S.compare_rdms(rx, ry)  # ... but comparing two of them is not meaningful
    with pytest.raises(DegenerateInputError):
        S.rdm_set_ceiling(np.stack([rx.numpy(), ry.numpy()]))
    with pytest.raises(DegenerateInputError):
        S.bootstrap_ci(rx, ry, n_boot=5)
    # condensed vectors are arbitrary sets of pairs (e.g. a bootstrap resample's): at least two pairs
    assert -1 <= S.spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) <= 1


# ----------------------------------------------------------------------------- flagged results of a scoring run
def _wide_and_constant_layers(n=60, seed=0):
    """Neural data with a narrow (10 neurons) and a wide (30) area, and layers of which one is
    constant; with SVCCA (40 components) the 50- and 35-feature layers are degenerate against the
    wide area only (40 + 30 and 35 + 30 features >= 60 stimuli)."""
    rng = np.random.default_rng(seed)
    neural = {"V1": rng.normal(size=(n, 10)), "V4": rng.normal(size=(n, 30))}
    layers = [("wide", rng.normal(size=(n, 50))), ("mid", rng.normal(size=(n, 35))), ("flat", np.ones((n, 30))),
              ("narrow", rng.normal(size=(n, 4)))]
    return neural, layers


def test_a_degenerate_layer_among_others_is_flagged_not_fatal_and_never_the_best_layer():
    from cortexsnn.similarity.scoring import score_features

    neural, layers = _wide_and_constant_layers()
    table = score_features(iter(layers), neural, metric="svcca")
    assert table.flags == {
        "wide": {"V4": "cca: features >= stimuli (40 + 30 features, 60 stimuli)"},
        "mid": {"V4": "cca: features >= stimuli (35 + 30 features, 60 stimuli)"},
        "flat": {"V1": "degenerate: constant representation", "V4": "degenerate: constant representation"}}
    flagged = np.array([[table.flag(la, a) is not None for a in table.areas] for la in table.layers])
    assert np.isnan(table.scores[flagged]).all() and np.isfinite(table.scores[~flagged]).all()
    assert table.best_layer["V4"] == "narrow"  # the only layer with a meaningful V4 score
    # the scored cells are the numbers each layer gets on its own (a flagged layer changes nothing)
    alone = score_features(iter([layers[0], layers[3]]), {"V1": neural["V1"]}, metric="svcca")
    assert table.scores[0, 0] == alone.scores[0, 0] and table.scores[3, 0] == alone.scores[1, 0]
    assert table.scores[3, 1] == S.svcca(layers[3][1], neural["V4"], n_components=40, reduce_y=False)
    # a direct call of the metric on the degenerate pair still raises
    with pytest.raises(DegenerateInputError, match="degenerate"):
        S.svcca(layers[0][1], neural["V4"], n_components=40, reduce_y=False)


def test_flags_are_carried_into_results_json_scores_csv_and_the_report(tmp_path):
    import csv
    import json

    from cortexsnn.similarity.report import write_report
    from cortexsnn.similarity.results import ScoreTable
    from cortexsnn.similarity.scoring import score_features

    neural, layers = _wide_and_constant_layers()
    table = score_features(iter(layers), neural, metric="svcca")
    table.write(tmp_path)  # what `cortexsnn similarity` writes, then its report
    write_report([table.to_dict()], tmp_path)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["flags"] == table.flags and record["scores"][0][1] is None
    assert ScoreTable.read(tmp_path).flags == table.flags
    rows = {(r["layer"], r["area"]): r for r in csv.DictReader(open(tmp_path / "scores.csv"))}
    assert rows[("wide", "V4")]["flag"] == "cca: features >= stimuli (40 + 30 features, 60 stimuli)"
    assert rows[("wide", "V4")]["score"] == "" and rows[("wide", "V1")]["flag"] == ""
    assert rows[("flat", "V1")]["flag"] == "degenerate: constant representation"
    assert float(rows[("narrow", "V4")]["score"]) == table.scores[3, 1]
    page = (tmp_path / "report.html").read_text()
    assert "flagged: cca: features &gt;= stimuli (40 + 30 features, 60 stimuli)" in page
    assert "Flagged scores (2;" in page and "wide vs V4" in page and "mid vs V4" in page


def test_a_run_in_which_every_layer_is_degenerate_is_refused():
    from cortexsnn.similarity.scoring import score_features

    rng = np.random.default_rng(0)
    with pytest.raises(DegenerateInputError, match="at least 4") as info:
        score_features(iter([("a", rng.normal(size=(3, 5))), ("b", rng.normal(size=(3, 6)))]),
                       {"V1": rng.normal(size=(3, 10))}, metric="rsa")
    assert info.value.flag == "too few stimuli: 3 < 4"
