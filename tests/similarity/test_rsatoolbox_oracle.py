"""RDMs, comparisons, noise ceilings and the stimulus bootstrap against rsatoolbox, on synthetic data.

The real-data counterparts (Kriegeskorte et al.'s 92 images, Majaj et al.'s V4 / IT) live in
test_reference_data.py and need ../shared/data; these run anywhere rsatoolbox is installed (a dev
dependency). Synthetic RDMs include ties (rounded dissimilarities), which is where rank-based
comparisons most often disagree.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import cortexsnn.similarity as S
from cortexsnn.similarity.ceilings import _pool

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm, compare  # noqa: E402

# ours -> rsatoolbox's name for the same comparison
COMPARISONS = [("spearman", "spearman"), ("pearson", "corr"), ("kendall_tau_a", "tau-a"), ("cosine", "cosine")]


def _triu(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], 1)]


@pytest.fixture(scope="module")
def responses():
    """Two noisy views of one latent structure: 24 stimuli x 150 / 90 channels."""
    rng = np.random.default_rng(11)
    latent = rng.standard_normal((24, 6))
    x = latent @ rng.standard_normal((6, 150)) + 0.8 * rng.standard_normal((24, 150))
    y = latent @ rng.standard_normal((6, 90)) + 1.5 * rng.standard_normal((24, 90))
    return x, y


@pytest.fixture(scope="module")
def subject_rdms():
    """Eight 'subjects' sharing a structure, condensed, rounded to 2 decimals (so with ties)."""
    rng = np.random.default_rng(12)
    n = 20
    truth = rng.random(n * (n - 1) // 2)
    return np.round(np.stack([truth + 0.4 * rng.random(truth.size) for _ in range(8)]), 2)


@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rdm_equals_rsatoolbox_calc_rdm(responses, metric, dtype):
    x = responses[0].astype(dtype)
    ref = calc_rdm(Dataset(x.astype(np.float64)), method=metric).get_matrices()[0]
    if metric == "euclidean":
        # rsatoolbox's 'euclidean' RDM is the squared distance divided by the number of channels
        ours = S.rdm(x, "sqeuclidean").numpy() / x.shape[1]
    else:
        ours = S.rdm(x, metric).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("ours_method,rsa_method", COMPARISONS)
def test_compare_rdms_equals_rsatoolbox_compare(responses, subject_rdms, ours_method, rsa_method):
    # continuous RDMs computed from data ...
    rx, ry = (S.rdm(m).numpy() for m in responses)
    ref = compare(RDMs(_triu(rx)[None]), RDMs(_triu(ry)[None]), method=rsa_method)[0, 0]
    assert S.compare_rdms(rx, ry, ours_method) == pytest.approx(ref, abs=1e-12)
    # ... and tied ones (rounded), each against all the others
    ref_all = compare(RDMs(subject_rdms[:1]), RDMs(subject_rdms[1:]), method=rsa_method)[0]
    ours_all = [S.compare_rdms(subject_rdms[0], v, ours_method) for v in subject_rdms[1:]]
    np.testing.assert_allclose(ours_all, ref_all, rtol=0, atol=1e-12)


def test_rsa_equals_rsatoolbox_pipeline(responses):
    x, y = responses
    ref = compare(calc_rdm(Dataset(x), method="correlation"), calc_rdm(Dataset(y), method="correlation"),
                  method="spearman")[0, 0]
    assert S.rsa(x, y) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("ours_method,rsa_method", COMPARISONS)
def test_rdm_set_ceiling_equals_rsatoolbox_boot_noise_ceiling(subject_rdms, ours_method, rsa_method):
    from rsatoolbox.inference import boot_noise_ceiling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rsatoolbox warns that its tau ceiling pools averaged ranks
        ref_low, ref_up = boot_noise_ceiling(RDMs(subject_rdms), method=rsa_method)
    low, up = S.rdm_set_ceiling(subject_rdms, method=ours_method, pooling="rsatoolbox")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert up == pytest.approx(ref_up, abs=1e-12)
    # square RDMs give the same bounds as their condensed vectors
    squares = np.stack([S.square_rdm(v).numpy() for v in subject_rdms])
    assert S.rdm_set_ceiling(squares, method=ours_method) == pytest.approx((low, up), abs=1e-15)


def test_rsatoolbox_pool_rdm_equals_our_pooling(subject_rdms):
    from rsatoolbox.util.inference_util import pool_rdm

    vectors = torch.from_numpy(subject_rdms)
    for ours_method, rsa_method in COMPARISONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = pool_rdm(RDMs(subject_rdms), method=rsa_method).get_vectors()[0]
        np.testing.assert_allclose(_pool(vectors, ours_method, "rsatoolbox").numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ours_method,rsa_method", [("spearman", "spearman"), ("pearson", "corr"),
                                                    ("kendall_tau_a", "tau-a")])
def test_bootstrap_ci_replicates_are_rsatoolbox_pattern_subsamples(responses, ours_method, rsa_method):
    """bootstrap_ci's replicate for one draw of stimuli equals rsatoolbox's comparison of the two RDMs
    subsampled by ``RDMs.subsample_pattern('index', draw)`` (the sampling of
    ``rsatoolbox.inference.bootstrap_sample_pattern``: pairs of a stimulus with its own copy become
    NaN and are left out); the interval is the percentile interval of those replicates."""
    rx, ry = (S.rdm(m).numpy() for m in responses)
    n = rx.shape[0]
    n_boot, seed = 40, 5
    est, lo, hi = S.bootstrap_ci(rx, ry, method=ours_method, n_boot=n_boot, random_state=seed)
    a, b = RDMs(_triu(rx)[None]), RDMs(_triu(ry)[None])
    rng = np.random.default_rng(seed)  # the draws bootstrap_ci makes, in order
    replicates = []
    for _ in range(n_boot):
        draw = rng.integers(0, n, n)
        replicates.append(compare(a.subsample_pattern("index", draw), b.subsample_pattern("index", draw),
                                  method=rsa_method)[0, 0])
    assert est == pytest.approx(compare(a, b, method=rsa_method)[0, 0], abs=1e-12)
    assert lo == pytest.approx(np.quantile(replicates, 0.025), abs=1e-12)
    assert hi == pytest.approx(np.quantile(replicates, 0.975), abs=1e-12)


def test_bootstrap_draws_have_rsatoolbox_distribution():
    """Our draws (numpy Generator) and rsatoolbox's (``np.random.randint``) are both n stimuli drawn
    uniformly with replacement: the number of distinct stimuli per draw has the same mean,
    n (1 - (1 - 1/n)^n) (about 63 % of n)."""
    from rsatoolbox.inference import bootstrap_sample_pattern

    n, reps = 15, 400
    rdms = RDMs(np.random.default_rng(0).random((1, n * (n - 1) // 2)))
    np.random.seed(3)
    theirs = [len(np.unique(bootstrap_sample_pattern(rdms)[1])) for _ in range(reps)]
    rng = np.random.default_rng(3)
    ours = [len(np.unique(rng.integers(0, n, n))) for _ in range(reps)]
    expected = n * (1 - (1 - 1 / n) ** n)
    for draws in (theirs, ours):
        assert np.mean(draws) == pytest.approx(expected, abs=0.25)
