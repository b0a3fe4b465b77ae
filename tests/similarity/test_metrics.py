"""Similarity metrics on synthetic data against scipy, scikit-learn and hand-written numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import kendalltau, pearsonr, rankdata, spearmanr

import cortexsnn.similarity as S
from cortexsnn.similarity._checks import DegenerateInputError


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 8))
    x = (z @ rng.standard_normal((8, 700)) + 0.5 * rng.standard_normal((50, 700))).astype(np.float32)
    y = z @ rng.standard_normal((8, 60)) + rng.standard_normal((50, 60))
    return x, y


# ----------------------------------------------------------------------------- RDMs
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine"])
def test_rdm_equals_scipy_and_is_chunk_invariant(xy, metric):
    x, _ = xy
    ref = squareform(pdist(x.astype(np.float64), metric))
    for chunk in (None, 1, 97, 700):
        out = S.rdm(x, metric, chunk_size=chunk)
        assert out.dtype == torch.float64
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-11)
        assert torch.equal(out, out.T) and torch.all(out.diagonal() == 0)


def test_rdm_accepts_torch_and_flattens_feature_maps(xy):
    x, _ = xy
    maps = torch.from_numpy(x[:, :600]).reshape(50, 6, 10, 10)
    np.testing.assert_allclose(S.rdm(maps).numpy(), S.rdm(x[:, :600]).numpy(), atol=1e-14)


def test_float32_precision_route_is_close(xy):
    x, _ = xy
    ref = S.rdm(x).numpy()
    np.testing.assert_allclose(S.rdm(x, precision="float32").numpy(), ref, atol=1e-5)


def test_correlation_rdm_is_stable_with_a_large_offset():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 300)) + 1e6  # cancellation trap for an uncentred Gram
    ref = squareform(pdist(x, "correlation"))
    np.testing.assert_allclose(S.rdm(x).numpy(), ref, atol=1e-8)


def test_standardize_features_matches_zscore_then_correlation(xy):
    from scipy.stats import zscore

    x, _ = xy
    ref = squareform(pdist(zscore(x.astype(np.float64), axis=0), "correlation"))
    np.testing.assert_allclose(S.rdm(x, standardize_features=True, chunk_size=33).numpy(), ref, atol=1e-12)


def test_upper_triangle_round_trip_and_order():
    m = np.arange(16.0).reshape(4, 4)
    m = m + m.T
    np.fill_diagonal(m, 0)
    np.testing.assert_array_equal(S.upper_triangle(m).numpy(), squareform(m, checks=False))
    np.testing.assert_array_equal(S.square_rdm(S.upper_triangle(m)).numpy(), m)
    with pytest.raises(ValueError, match="not the upper triangle"):
        S.square_rdm(np.ones(5))


# ----------------------------------------------------------------------------- comparisons
def test_rank_average_and_ordinal():
    v = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(S.rank(v).numpy(), rankdata(v))
    np.testing.assert_array_equal(S.rank(v, ties="ordinal").numpy(), rankdata(v, method="ordinal"))
    # ordinal = the seeds' argsort(argsort()) + 1 with a stable sort
    np.testing.assert_array_equal(S.rank(v, ties="ordinal").numpy(), np.argsort(np.argsort(v, kind="stable")) + 1)


def _tau_a_brute(a, b):
    n = len(a)
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i in range(n) for j in range(i + 1, n))
    return s / (n * (n - 1) / 2)


@pytest.mark.parametrize("levels", [(3, 4), (50, 2), (1000, 1000)])
def test_kendall_tau_a_equals_brute_force_and_scipy_tau_b_identity(levels):
    rng = np.random.default_rng(levels[0])
    a = rng.integers(0, levels[0], 257).astype(float)
    b = (a + rng.integers(0, levels[1], 257)).astype(float)
    ours = S.kendall_tau_a(a, b)
    assert ours == pytest.approx(_tau_a_brute(a, b), abs=1e-14)
    # tau-a = tau-b * sqrt((n0 - ties_a)(n0 - ties_b)) / n0
    n0 = 257 * 256 / 2

    def tie_pairs(v):
        c = np.unique(v, return_counts=True)[1]
        return (c * (c - 1) / 2).sum()

    tau_b = kendalltau(a, b).statistic
    assert ours == pytest.approx(tau_b * np.sqrt((n0 - tie_pairs(a)) * (n0 - tie_pairs(b))) / n0, abs=1e-12)


def test_spearman_pearson_equal_scipy_with_ties():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 20, 500).astype(float)
    b = a + rng.integers(0, 10, 500)
    assert S.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-14)
    assert S.pearson(a, b) == pytest.approx(pearsonr(a, b).statistic, abs=1e-14)
    ordinal = pearsonr(rankdata(a, method="ordinal"), rankdata(b, method="ordinal")).statistic
    assert S.spearman(a, b, ties="ordinal") == pytest.approx(ordinal, abs=1e-14)
    assert S.spearman(a, b, ties="ordinal") != pytest.approx(S.spearman(a, b), abs=1e-6)


def test_rsa_and_tsrsa(xy):
    x, y = xy
    ref = spearmanr(pdist(x.astype(np.float64), "correlation"), pdist(y, "correlation")).statistic
    assert S.rsa(x, y) == pytest.approx(ref, abs=1e-12)
    ref_ts = spearmanr(pdist(x[1:].astype(np.float64), "correlation"), pdist(y[1:], "correlation")).statistic
    assert S.tsrsa(x, y) == pytest.approx(ref_ts, abs=1e-12)
    assert S.tsrsa(x, y, drop_first=False) == pytest.approx(ref, abs=1e-12)
    assert S.rsa(x, y, compare="kendall_tau_a") == pytest.approx(
        _tau_a_brute(pdist(x.astype(np.float64), "correlation"), pdist(y, "correlation")), abs=1e-12)


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(xy):
    x, y = xy
    with pytest.raises(ValueError, match="stimulus counts differ"):
        S.rsa(x, y[:40])
    xn = x.copy()
    xn[7, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in rows \[7\]"):
        S.rdm(xn)
    xc = x.copy()
    xc[4] = 2.5
    with pytest.raises(S.SilentLayerError, match="constant") as err:
        S.rsa(xc, y)
    assert err.value.rows == [4]
    with pytest.raises(S.SilentLayerError):
        S.spearman(np.ones(10), np.arange(10.0))
    with pytest.raises(S.SilentLayerError):
        S.linear_cka(np.ones((50, 5)), y)
    yc = y.copy()
    yc[:, 2] = 1.0
    with pytest.raises(S.SilentLayerError, match="neurons"):
        S.tsvd_regression(x, yc)
    with pytest.raises(ValueError, match="unknown RDM metric"):
        S.rdm(x, "manhattan")
    with pytest.raises(ValueError, match="stimulus counts differ"):
        S.svcca(x, y[:49])


# ----------------------------------------------------------------------------- CKA
def _numpy_linear_cka(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))


def _numpy_unbiased_hsic(k, l):
    """Song et al. (2012) unbiased HSIC estimator, term by term."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


def test_linear_and_debiased_cka_match_numpy(xy):
    x, y = xy
    x64 = x.astype(np.float64)
    assert S.linear_cka(x, y) == pytest.approx(_numpy_linear_cka(x64, y), abs=1e-12)
    k, l = x64 @ x64.T, y @ y.T
    ref = _numpy_unbiased_hsic(k, l) / np.sqrt(_numpy_unbiased_hsic(k, k) * _numpy_unbiased_hsic(l, l))
    assert S.linear_cka(x, y, debiased=True) == pytest.approx(ref, abs=1e-10)
    assert S.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_rbf_cka_matches_numpy(xy):
    x, y = xy
    x64 = x.astype(np.float64)

    def rbf(m, threshold):
        d2 = squareform(pdist(m, "sqeuclidean"))
        return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))

    def centred(k):
        h = np.eye(len(k)) - 1 / len(k)
        return h @ k @ h

    for t in (0.5, 1.0, 2.0):
        kc, lc = centred(rbf(x64, t)), centred(rbf(y, t))
        ref = (kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc))
        assert S.rbf_cka(x, y, threshold=t) == pytest.approx(ref, abs=1e-12)


# ----------------------------------------------------------------------------- SVCCA / CCA
def test_truncated_svd_equals_sklearn(xy):
    from sklearn.decomposition import TruncatedSVD

    x, _ = xy
    x64 = x.astype(np.float64)
    ref = TruncatedSVD(20, algorithm="arpack", tol=0).fit_transform(x64)
    ours = S.truncated_svd(x, 20).numpy()
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), rtol=1e-8, atol=1e-9)
    seed = TruncatedSVD(20, random_state=2022).fit_transform(x)
    np.testing.assert_array_equal(S.truncated_svd(x, 20, svd_solver="sklearn").numpy(), seed.astype(np.float64))


def test_svcca_equals_plain_numpy_seed_procedure(xy):
    x, y = xy
    x64 = x.astype(np.float64)
    u, s, _ = np.linalg.svd(x64, full_matrices=False)
    a = u[:, :20] * s[:20]
    uy, sy, _ = np.linalg.svd(y, full_matrices=False)
    b = uy[:, :20] * sy[:20]
    cov = np.cov(a.T, b.T)
    sxx, sxy, syy = cov[:20, :20], cov[:20, 20:], cov[20:, 20:]
    xm, ym = np.abs(sxx).max(), np.abs(syy).max()

    def isq(m):
        w, v = np.linalg.eigh(np.linalg.pinv(m))
        return v @ np.diag(np.sqrt(w)) @ v.T

    ref = np.linalg.svd(isq(sxx / xm) @ (sxy / np.sqrt(xm * ym)) @ isq(syy / ym), compute_uv=False).mean()
    assert S.svcca(x, y, n_components=20) == pytest.approx(ref, abs=1e-10)
    # y left as is (the seed's macaque setting): 25 neurons vs 20 dims (45 < 50 stimuli)
    assert 0 < S.svcca(x, y[:, :25], n_components=20, reduce_y=False) <= 1


def test_cca_is_invariant_to_invertible_transforms_and_handles_wide_inputs(xy):
    x, y = xy
    rng = np.random.default_rng(5)
    a = x[:, :10].astype(np.float64)
    t = rng.standard_normal((10, 10))
    np.testing.assert_allclose(S.cca(a @ t, y[:, :8]).numpy(), S.cca(a, y[:, :8]).numpy(), atol=1e-10)
    # wide: as many dimensions as stimuli - 1 -> all canonical correlations would be 1: refused
    with pytest.raises(DegenerateInputError, match="degenerate"):
        S.cca(x, y[:, :5])
    assert 0 < S.pwcca(a, y[:, :8]) <= 1


# ----------------------------------------------------------------------------- regression
def test_loo_ridge_equals_sklearn_refits(xy):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_predict

    x, y = xy
    z = S.truncated_svd(x, 15).numpy()
    ref = cross_val_predict(Ridge(alpha=1.0), z, y, cv=KFold(50, shuffle=True, random_state=2022))
    np.testing.assert_allclose(S.loo_ridge_predictions(z, y).numpy(), ref, atol=1e-10)
    r = np.array([pearsonr(ref[:, j], y[:, j]).statistic for j in range(y.shape[1])])
    assert S.tsvd_regression(x, y, n_components=15) == pytest.approx(r.mean(), abs=1e-10)
    np.testing.assert_allclose(S.tsvd_regression(x, y, n_components=15, per_neuron=True).numpy(), r, atol=1e-10)


def test_pca_ridge_equals_sklearn_pipeline(xy):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    x, y = xy
    x64 = x.astype(np.float64)
    pipe = make_pipeline(PCA(20, svd_solver="full"), Ridge(alpha=1.0))
    ref_cv = r2_score(y, cross_val_predict(pipe, x64, y, cv=KFold(5, shuffle=True, random_state=7)))
    assert S.pca_ridge_r2(x, y, n_components=20, cv=5, random_state=7) == pytest.approx(ref_cv, abs=1e-10)
    ref_in = r2_score(y, pipe.fit(x64, y).predict(x64))
    assert S.pca_ridge_r2(x, y, n_components=20, cv="in_sample") == pytest.approx(ref_in, abs=1e-10)
    est = S.PCARidge(20, 1.0).fit(x[:40], y[:40])
    ref_est = pipe.fit(x64[:40], y[:40])
    np.testing.assert_allclose(est.predict(x[40:]).numpy(), ref_est.predict(x64[40:]), atol=1e-9)
    assert est.score(x[40:], y[40:]) == pytest.approx(r2_score(y[40:], ref_est.predict(x64[40:])), abs=1e-10)


# ----------------------------------------------------------------------------- ceilings
def test_split_half_neuron_ceiling_by_hand(xy):
    _, y = xy
    mean, sem = S.split_half_neuron_ceiling(y, n_splits=5, random_state=2023)
    rng = np.random.default_rng(2023)
    vals = []
    for _ in range(5):
        p = rng.permutation(60)
        a, b = y[1:, p[:30]], y[1:, p[30:]]
        vals.append(spearmanr(pdist(a, "correlation"), pdist(b, "correlation")).statistic)
    assert mean == pytest.approx(np.mean(vals), abs=1e-12)
    assert sem == pytest.approx(np.std(vals) / np.sqrt(5), abs=1e-12)


def test_split_half_trial_ceiling_spearman_brown():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((30, 40))
    trials = signal[None] + 2.0 * rng.standard_normal((10, 30, 40))
    mean, _ = S.split_half_trial_ceiling(trials, n_splits=4, random_state=1)
    rng2 = np.random.default_rng(1)
    vals = []
    for _ in range(4):
        p = rng2.permutation(10)
        r = spearmanr(pdist(trials[p[:5]].mean(0), "correlation"), pdist(trials[p[5:]].mean(0), "correlation")).statistic
        vals.append(2 * r / (1 + r))
    assert mean == pytest.approx(np.mean(vals), abs=1e-12)
    assert S.spearman_brown(0.5) == pytest.approx(2 / 3)


def test_rdm_set_ceiling_plain_mean_squared_by_hand():
    rng = np.random.default_rng(2)
    base = rng.random(45)
    rdms = np.stack([base + 0.3 * rng.random(45) for _ in range(5)])
    low, up = S.rdm_set_ceiling(rdms, pooling="mean", squared=True)
    ref_low = np.mean([spearmanr(rdms[i], np.delete(rdms, i, 0).mean(0)).statistic ** 2 for i in range(5)])
    ref_up = np.mean([spearmanr(rdms[i], rdms.mean(0)).statistic ** 2 for i in range(5)])
    assert (low, up) == pytest.approx((ref_low, ref_up), abs=1e-12)


def test_bootstrap_ci_is_reproducible_and_brackets_the_estimate(xy):
    x, y = xy
    ra, rb = S.rdm(x), S.rdm(y)
    est, lo, hi = S.bootstrap_ci(ra, rb, n_boot=50, random_state=3)
    assert est == pytest.approx(S.spearman(ra, rb))
    assert lo < est < hi
    assert S.bootstrap_ci(ra, rb, n_boot=50, random_state=3) == (est, lo, hi)
    assert S.bootstrap_ci(ra, rb, n_boot=50, random_state=4) != (est, lo, hi)


# ----------------------------------------------------------------------------- devices
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_metrics_on_cuda_equal_cpu(xy):
    x, y = xy
    xc, yc = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    assert S.rsa(xc, yc) == pytest.approx(S.rsa(x, y), abs=1e-12)
    assert S.linear_cka(xc, yc) == pytest.approx(S.linear_cka(x, y), abs=1e-12)
    assert S.svcca(xc, yc, n_components=20) == pytest.approx(S.svcca(x, y, n_components=20), abs=1e-9)
    assert S.tsvd_regression(xc, yc, n_components=15) == pytest.approx(S.tsvd_regression(x, y, n_components=15), abs=1e-9)
    assert S.rdm(x, device="cuda").device.type == "cuda"


def test_gram_route_with_many_stimuli_uses_syrk_and_matches_scipy():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1100, 64)).astype(np.float32)  # above the syrk threshold
    ref = squareform(pdist(x.astype(np.float64), "correlation"))
    np.testing.assert_allclose(S.rdm(x, chunk_size=40).numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="precision"):
        S.rdm(x, precision="float16")
