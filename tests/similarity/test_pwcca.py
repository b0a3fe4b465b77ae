"""PWCCA (Morcos, Raghu & Bengio, NeurIPS 2018) on synthetic data with hand-checkable properties.

The equality with google/svcca's ``compute_pwcca`` itself is tested on its tutorial activations in
test_reference_data.py (needs ../shared/data).
"""
from __future__ import annotations

import numpy as np
import pytest

import cortexsnn.similarity as S

VARIANTS = ["reference", "canonical"]


@pytest.fixture
def ab():
    rng = np.random.default_rng(21)
    z = rng.standard_normal((200, 4))
    a = z @ rng.standard_normal((4, 6)) + rng.standard_normal((200, 6)) + 5.0  # non-zero means
    b = z @ rng.standard_normal((4, 9)) + 2.0 * rng.standard_normal((200, 9)) - 3.0
    return a, b


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_feature_each_is_the_absolute_pearson_r(ab, variant):
    # one canonical correlation, |r|, whatever its weight
    a, b = ab
    r = np.corrcoef(a[:, 0], b[:, 0])[0, 1]
    assert S.pwcca(a[:, :1], b[:, :1], variant=variant) == pytest.approx(abs(r), abs=1e-12)
    assert S.pwcca(a[:, :1], -b[:, :1], variant=variant) == pytest.approx(abs(r), abs=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_identical_up_to_an_invertible_map_scores_one(ab, variant):
    a, _ = ab
    t = np.random.default_rng(3).standard_normal((6, 6))
    assert S.pwcca(a, a @ t + 7.0, variant=variant) == pytest.approx(1.0, abs=1e-9)


def test_reference_equals_the_paper_formula_for_whitened_zero_mean_features(ab):
    """With centred, uncorrelated, equal-variance features (``Sxx`` a multiple of the identity and
    zero means) the reference's directions are the canonical variates and its weights use centred
    activity, so the two variants agree exactly."""
    a, b = ab
    q, _ = np.linalg.qr(a - a.mean(0))  # orthonormal columns in the centred subspace: mean 0
    white = 3.0 * q
    assert np.allclose(white.mean(0), 0, atol=1e-12)
    assert S.pwcca(white, b) == pytest.approx(S.pwcca(white, b, variant="canonical"), abs=1e-12)


def test_reference_depends_on_feature_means_the_paper_formula_does_not(ab):
    # the reference adds each neuron's mean to its direction and weighs uncentred activity
    a, b = ab
    shifted = a + np.linspace(-20, 20, a.shape[1])
    assert S.pwcca(shifted, b, variant="canonical") == pytest.approx(S.pwcca(a, b, variant="canonical"), abs=1e-12)
    assert abs(S.pwcca(shifted, b) - S.pwcca(a, b)) > 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_side_with_fewer_features_is_weighted(ab, variant):
    a, b = ab  # 6 vs 9 features: a is weighted either way round
    assert S.pwcca(a, b, variant=variant) == pytest.approx(S.pwcca(b, a, variant=variant), abs=1e-12)
    c = b[:, :6]  # a tie: the first argument is weighted (as the reference's acts1)
    assert S.pwcca(a, c, variant=variant) != pytest.approx(S.pwcca(c, a, variant=variant), abs=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_is_a_weighted_mean_of_the_canonical_correlations(ab, variant):
    a, b = ab
    rho = S.seed_cca(a, b).numpy()
    assert rho.min() - 1e-12 <= S.pwcca(a, b, variant=variant) <= rho.max() + 1e-12
    np.testing.assert_allclose(S.cca(a, b).numpy(), rho, atol=1e-9)


def test_unknown_variant_is_refused(ab):
    with pytest.raises(ValueError, match="variant must be 'reference' or 'canonical'"):
        S.pwcca(*ab, variant="morcos")
