"""bootstrap_rdm_cis against the one-pair bootstrap_ci and score_features' bootstrap."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cortexsnn.data.neural import RDMSet
from cortexsnn.similarity import bootstrap_ci, rdm
from cortexsnn.similarity.bootstrap import bootstrap_rdm_cis
from cortexsnn.similarity.scoring import score_features


def _rdms(k: int, n: int = 14, features: int = 30, seed: int = 0, decimals: int | None = 1) -> np.ndarray:
    """``k`` correlation RDMs; rounded so that many dissimilarities tie (the ranks must average them)."""
    g = torch.Generator().manual_seed(seed)
    out = np.stack([rdm(torch.randn(n, features, generator=g, dtype=torch.float64)).numpy() for _ in range(k)])
    return np.round(out, decimals) if decimals is not None else out


@pytest.mark.parametrize("method,ties", [("spearman", "average"), ("spearman", "ordinal"), ("pearson", "average")])
def test_equals_bootstrap_ci_pair_by_pair(method, ties):
    models, targets = _rdms(3, seed=1), _rdms(2, seed=2)
    assert len(np.unique(models[0][np.triu_indices(14, 1)])) < 91 / 2  # heavy ties
    lo, hi = bootstrap_rdm_cis(models, list(targets), n_boot=80, random_state=5, method=method, ties=ties,
                               confidence=0.9)
    assert lo.shape == hi.shape == (3, 2)
    for i in range(3):
        for a in range(2):
            stat = None if method == "pearson" else (lambda x, y: _spearman(x, y, ties))
            _, ref_lo, ref_hi = bootstrap_ci(models[i], targets[a], method=method, n_boot=80, random_state=5,
                                             confidence=0.9, statistic=stat)
            assert lo[i, a] == pytest.approx(ref_lo, abs=1e-12)
            assert hi[i, a] == pytest.approx(ref_hi, abs=1e-12)
    assert np.all(lo <= hi)


def _spearman(x, y, ties):
    from cortexsnn.similarity import compare_rdms

    return compare_rdms(x, y, "spearman", ties=ties)


def test_rdm_sets_equal_score_features_intervals():
    """An area given as several subjects' RDMs: the statistic is the mean over subjects, as
    score_features reports it, and the bounds equal its own bootstrap."""
    g = torch.Generator().manual_seed(3)
    feats = [(f"layer{i}", torch.randn(14, 40, generator=g)) for i in range(3)]
    single, subjects = _rdms(1, seed=4, decimals=None)[0], _rdms(3, seed=5, decimals=None)
    targets = {"one": RDMSet.from_matrices([single], ["a"]), "set": RDMSet.from_matrices(subjects, ["s1", "s2", "s3"])}
    table = score_features(iter(feats), targets, metric="rsa", n_boot=40, bootstrap_seed=7, ceiling="none")
    models = np.stack([rdm(x).numpy() for _, x in feats])
    lo, hi = bootstrap_rdm_cis(models, [single, subjects], n_boot=40, random_state=7)
    np.testing.assert_allclose(lo, table.ci_low, atol=1e-12, rtol=0)
    np.testing.assert_allclose(hi, table.ci_high, atol=1e-12, rtol=0)


def test_constant_rdm_gives_nan_not_a_number():
    models = _rdms(2, seed=6)
    models[1] = 1.0 - np.eye(14)  # every dissimilarity equal: no correlation exists
    lo, hi = bootstrap_rdm_cis(models, [_rdms(1, seed=7)[0]], n_boot=10)
    assert np.isfinite(lo[0]).all() and np.isfinite(hi[0]).all()
    assert np.isnan(lo[1]).all() and np.isnan(hi[1]).all()


def test_bad_input():
    models = _rdms(2)
    with pytest.raises(ValueError, match="stimuli"):
        bootstrap_rdm_cis(models, [_rdms(1, n=10)[0]])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_rdm_cis(models, [models[0]], n_boot=0)
    with pytest.raises(ValueError, match="method"):
        bootstrap_rdm_cis(models, [models[0]], method="kendall")
    bad = models.copy()
    bad[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_rdm_cis(bad, [models[1]])
    with pytest.raises(ValueError, match="no targets"):
        bootstrap_rdm_cis(models, [])
