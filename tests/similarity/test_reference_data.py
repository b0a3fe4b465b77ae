"""Metrics against independent references on the real data in ../shared/data (skipped when absent).

* kriegeskorte92: RDMs, Spearman / Pearson / Kendall tau-a comparisons and leave-one-out ceilings
  equal rsatoolbox's.
* algonauts78: the Net2Brain golden chain (ResNet-18 features -> RDMs -> per-subject squared
  Spearman averaged) reproduces the stored results.csv and noise ceilings to 1e-9.
* svcca_activations: the seed's CCA equals a straightforward numpy implementation of the published
  algorithm; standard CCA and PWCCA's ``"canonical"`` variant equal numpy references; PWCCA's
  default equals the golden values of google/svcca's own ``compute_pwcca`` to 1e-6.
* majaj2015: RSA (ours vs rsatoolbox) and linear CKA (Gram form vs feature form) between V4 and IT.
"""
from __future__ import annotations

import csv
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch

import cortexsnn.similarity as S

pytestmark = pytest.mark.data

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$CORTEXSNN_DATA`` or ``<repo>/../shared/data`` (as tests/conftest.py)."""
    env = os.environ.get("CORTEXSNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _triu(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], 1)]


# ----------------------------------------------------------------------------- kriegeskorte92
@pytest.fixture(scope="module")
def k92():
    root = shared_data_dir() / "kriegeskorte92"
    if not root.is_dir():
        pytest.skip(f"{root} is absent (set CORTEXSNN_DATA)")
    brain = sio.loadmat(root / "92_brainRDMs.mat")["RDMs"]
    human_it = np.stack([brain[0, s, r]["RDM"] for s in range(4) for r in range(2)]).astype(np.float64)
    models = sio.loadmat(root / "92_modelRDMs.mat")["Models"]
    model_rdms = np.stack([models[0, i]["RDM"] for i in range(models.shape[1])]).astype(np.float64)
    supp = sio.loadmat(root / "Kriegeskorte_Neuron2008_supplementalData.mat")
    images = np.stack([supp["stimuli_92objs"][0, i]["image"] for i in range(92)]).reshape(92, -1)
    mit = supp["RDMs_mIT_hIT_fig1"][0, 0]["RDM"].astype(np.float64)
    if mit.ndim == 2 and mit.shape[0] == 1:  # stored condensed (1 x 4186)
        mit = S.square_rdm(mit.ravel()).numpy()
    return {"human_it": human_it, "models": model_rdms, "images": images.astype(np.float32), "mit": mit}


@pytest.mark.parametrize("metric,rsa_method", [("correlation", "correlation"), ("euclidean", "euclidean")])
def test_rdm_of_92_images_equals_rsatoolbox(k92, metric, rsa_method):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    x = k92["images"]
    ref = calc_rdm(Dataset(x.astype(np.float64)), method=rsa_method).get_matrices()[0]
    ours = S.rdm(x, metric, chunk_size=5000).numpy()
    if metric == "euclidean":
        # rsatoolbox's 'euclidean' RDM is the squared distance divided by the number of channels
        ours = S.rdm(x, "sqeuclidean").numpy() / x.shape[1]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ours_method,rsa_method", [("spearman", "spearman"), ("pearson", "corr"),
                                                    ("kendall_tau_a", "tau-a"), ("cosine", "cosine")])
def test_rdm_comparisons_on_92_images_equal_rsatoolbox(k92, ours_method, rsa_method):
    from rsatoolbox.rdm import RDMs, compare

    brains = np.concatenate([k92["human_it"], k92["mit"][None]])
    for model in k92["models"]:
        ref = compare(RDMs(_triu(model)[None]), RDMs(np.stack([_triu(b) for b in brains])), method=rsa_method)[0]
        ours = [S.compare_rdms(model, b, ours_method) for b in brains]
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method,rsa_method", [("spearman", "spearman"), ("pearson", "corr"), ("cosine", "cosine")])
def test_leave_one_out_ceiling_on_92_images_equals_rsatoolbox(k92, method, rsa_method):
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs

    rdms = k92["human_it"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_low, ref_up = boot_noise_ceiling(RDMs(np.stack([_triu(r) for r in rdms])), method=rsa_method)
    low, up = S.rdm_set_ceiling(rdms, method=method, pooling="rsatoolbox")
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert up == pytest.approx(ref_up, abs=1e-12)
    assert low < up


# ----------------------------------------------------------------------------- algonauts78
@pytest.fixture(scope="module")
def algonauts():
    root = shared_data_dir() / "algonauts78"
    if not root.is_dir():
        pytest.skip(f"{root} is absent (set CORTEXSNN_DATA)")
    return root


def _features(root, layer: str) -> np.ndarray:
    files = [root / "case_resnet18" / "features" / f"ResNet18_image_{i:02d}.npz" for i in range(1, 79)]
    return np.stack([np.load(f)[layer].reshape(-1) for f in files])


def _stored_results(root) -> list[dict]:
    with open(root / "case_resnet18" / "rsa" / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_golden_chain_features_to_stored_rdms(algonauts):
    # Net2Brain's "pearson" RDM: z-score every feature over the 78 images, then 1 - Pearson r.
    for layer in ("layer3.1.conv2", "layer4.1.bn2"):
        stored = np.load(algonauts / "case_resnet18" / "rdm" / f"{layer}.npz")["arr_0"]
        ours = S.rdm(_features(algonauts, layer), "correlation", standardize_features=True).numpy()
        # the stored RDM went through float32 arithmetic somewhere: agreement to 2e-9
        np.testing.assert_allclose(ours, stored, atol=2e-9)
        # ... and ranks (all that Spearman sees) are identical
        assert torch.equal(S.rank(S.upper_triangle(ours)), S.rank(S.upper_triangle(stored)))


def test_golden_chain_reproduces_results_csv_and_ceilings(algonauts):
    log = json.loads((algonauts / "brain_data" / "noise_ceiling_log.json").read_text())
    rows = _stored_results(algonauts)
    assert len(rows) == 4
    for row in rows:
        roi = re.sub(r"^\(\d+\) ", "", row["ROI"])
        layer = re.sub(r"^\(\d+\) ", "", row["Layer"]).removesuffix(".npz")
        subjects = np.load(algonauts / "brain_data" / f"{roi}.npz")["arr_0"]
        model_rdm = S.rdm(_features(algonauts, layer), "correlation", standardize_features=True)
        per_subject = np.array([S.spearman(model_rdm, s) ** 2 for s in subjects])
        stored_array = np.array([float(v) for v in row["R2_array"].strip("[]").split()])
        np.testing.assert_allclose(per_subject, stored_array, rtol=0, atol=1e-9)
        assert per_subject.mean() == pytest.approx(float(row["R2"]), abs=1e-9)
        low, up = S.rdm_set_ceiling(subjects, method="spearman", pooling="mean", squared=True)
        assert low == pytest.approx(float(row["LNC"]), abs=1e-9)
        assert up == pytest.approx(float(row["UNC"]), abs=1e-9)
        assert low == pytest.approx(log[f"{roi}.npz"]["spearman"]["lnc"], abs=1e-9)
        assert up == pytest.approx(log[f"{roi}.npz"]["spearman"]["unc"], abs=1e-9)
        assert 100 * per_subject.mean() / low == pytest.approx(float(row["%R2"]), rel=1e-9)


# ----------------------------------------------------------------------------- svcca_activations
@pytest.fixture(scope="module")
def svcca_acts():
    path = shared_data_dir() / "svcca_activations" / "activations.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (set CORTEXSNN_DATA)")
    a = np.load(path)
    return {k: a[k].astype(np.float64) for k in a.files}


def _numpy_reference_cca(acts1: np.ndarray, acts2: np.ndarray) -> np.ndarray:
    """Raghu et al. (2017) / google svcca ``get_cca_similarity`` (epsilon 0), written plainly in numpy.

    acts are neurons x datapoints.
    """
    numx = acts1.shape[0]
    cov = np.cov(acts1, acts2)
    sxx, sxy, syy = cov[:numx, :numx], cov[:numx, numx:], cov[numx:, numx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)

    def inv_sqrt(m):
        w, v = np.linalg.eigh(np.linalg.pinv(m))
        return v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T

    arr = inv_sqrt(sxx) @ sxy @ inv_sqrt(syy)
    return np.abs(np.linalg.svd(arr, compute_uv=False))


def test_seed_cca_matches_numpy_reference(svcca_acts):
    pairs = [
        (svcca_acts["MNIST_model_0_lay04"].T, svcca_acts["MNIST_model_1_lay04"].T),  # 10000 x 10
        (svcca_acts["SVHN_model_0_lay06"][:, :50], svcca_acts["SVHN_model_1_lay06"][:, :40]),  # 1000 x 50/40
    ]
    for a, b in pairs:
        ref = _numpy_reference_cca(a.T, b.T)
        ours = S.seed_cca(a, b).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_standard_cca_and_pwcca_match_numpy(svcca_acts):
    a = svcca_acts["SVHN_model_0_lay06"][:, :50]
    b = svcca_acts["SVHN_model_1_lay06"][:, :40]
    ac, bc = a - a.mean(0), b - b.mean(0)
    qa, qb = np.linalg.qr(ac)[0], np.linalg.qr(bc)[0]
    u, rho, _ = np.linalg.svd(qa.T @ qb, full_matrices=False)
    np.testing.assert_allclose(S.cca(a, b).numpy(), rho, atol=1e-10)
    # PWCCA, the paper's formula: canonical variates of the smaller side (b) weighted by |<h_i, b_j>|
    u, rho, _ = np.linalg.svd(qb.T @ qa, full_matrices=False)
    h = qb @ u
    alpha = np.abs(h.T @ bc).sum(axis=1)
    np.testing.assert_allclose(S.pwcca(a, b, variant="canonical"), (alpha * rho).sum() / alpha.sum(), rtol=1e-10)
    # the seed's CCA and the QR route give the same canonical correlations on well-conditioned data
    np.testing.assert_allclose(S.seed_cca(a, b).numpy(), rho, atol=1e-8)


# Golden values of the reference implementation of PWCCA (Morcos et al., NeurIPS 2018): google/svcca
# ``pwcca.compute_pwcca(acts1, acts2)`` (epsilon=0, first value returned) from pwcca.py at commit
# 766f2062e5163e86462fdf96d01152ea9f334389 with cca_core.py at commit
# 08f8935e6665b242b89eee6c93d72e411a2bf8fa (per-neuron means, ``axis=1``), run unmodified in a scratch
# folder outside this repository on numpy 2.4.6 (OpenBLAS 0.3.31 LAPACK), on the arrays of
# activations.npz cast to float64, ``acts`` as neurons x datapoints:
#   MNIST: acts1 = MNIST_model_0_lay04, acts2 = MNIST_model_1_lay04 (and swapped)
#   SVHN: acts1 = SVHN_model_0_lay06.T, acts2 = SVHN_model_1_lay06.T (and swapped)
#   SVHN subset: acts1 = SVHN_model_1_lay06[:, :40].T, acts2 = SVHN_model_0_lay06[:, :50].T
# The reference adds neuron i's mean to its i-th direction, so its value depends on the signs that
# LAPACK gives the singular vectors (both it and ours take numpy's SVD; on the MNIST pair, random
# sign choices move it between 0.730 and 0.841): another LAPACK may need these values regenerated.
_REFERENCE_PWCCA = {
    ("MNIST_model_0_lay04", "MNIST_model_1_lay04"): 0.7372007263567015,
    ("MNIST_model_1_lay04", "MNIST_model_0_lay04"): 0.8179634300908639,
    ("SVHN_model_0_lay06", "SVHN_model_1_lay06"): 0.7126493415028176,
    ("SVHN_model_1_lay06", "SVHN_model_0_lay06"): 0.713682407980925,
}
_REFERENCE_PWCCA_SVHN_40_50 = 0.5918744868506454


def _stimuli_by_features(acts: dict, key: str) -> np.ndarray:
    return acts[key].T if key.startswith("MNIST") else acts[key]  # MNIST arrays are neurons x datapoints


@pytest.mark.parametrize("first,second", list(_REFERENCE_PWCCA))
def test_pwcca_equals_the_reference_implementation(svcca_acts, first, second):
    a, b = _stimuli_by_features(svcca_acts, first), _stimuli_by_features(svcca_acts, second)
    ours = S.pwcca(a, b)
    assert ours == pytest.approx(_REFERENCE_PWCCA[(first, second)], abs=1e-6)
    # the paper's formula with the canonical variates differs by hundredths here (0.807 on MNIST)
    assert abs(S.pwcca(a, b, variant="canonical") - ours) > 0.01


def test_pwcca_weights_the_smaller_side_as_the_reference_called_with_it_first(svcca_acts):
    a = svcca_acts["SVHN_model_0_lay06"][:, :50]
    b = svcca_acts["SVHN_model_1_lay06"][:, :40]
    # b has fewer features: compute_pwcca(b, a); the reference's own branch for compute_pwcca(a, b)
    # raises IndexError (google/svcca pull request #9)
    assert S.pwcca(a, b) == pytest.approx(_REFERENCE_PWCCA_SVHN_40_50, abs=1e-6)
    assert S.pwcca(b, a) == pytest.approx(_REFERENCE_PWCCA_SVHN_40_50, abs=1e-6)


def test_pwcca_float32_input_stays_within_1e6_of_the_reference(svcca_acts):
    raw = np.load(shared_data_dir() / "svcca_activations" / "activations.npz")
    ours = S.pwcca(raw["MNIST_model_0_lay04"].T, raw["MNIST_model_1_lay04"].T)  # float32 as stored
    assert ours == pytest.approx(_REFERENCE_PWCCA[("MNIST_model_0_lay04", "MNIST_model_1_lay04")], abs=1e-6)


def test_svcca_tsvd_equals_sklearn_on_svhn(svcca_acts):
    from sklearn.decomposition import TruncatedSVD

    x = svcca_acts["SVHN_model_0_lay06"][:200]  # 200 datapoints x 200 neurons
    ref = TruncatedSVD(40, algorithm="arpack", tol=0).fit_transform(x)
    ours = S.truncated_svd(x, 40).numpy()
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), rtol=1e-7, atol=1e-8)
    y = svcca_acts["SVHN_model_1_lay06"][:200]
    exact = S.svcca(x, y)
    seed_like = S.svcca(x, y, svd_solver="sklearn")
    # the seed's randomized solver: scikit-learn's own numbers, close to the exact subspace
    za = TruncatedSVD(40, random_state=2022).fit_transform(x)
    zb = TruncatedSVD(40, random_state=2022).fit_transform(y)
    assert seed_like == pytest.approx(_numpy_reference_cca(za.T, zb.T).mean(), abs=1e-12)
    assert exact == pytest.approx(seed_like, abs=2e-2)


# ----------------------------------------------------------------------------- majaj2015
@pytest.fixture(scope="module")
def majaj():
    root = shared_data_dir() / "majaj2015"
    if not root.is_dir():
        pytest.skip(f"{root} is absent (set CORTEXSNN_DATA)")
    # 800 of the 3200 images keep the test fast; the identities hold for any subset
    return np.load(root / "V4.npy")[:800], np.load(root / "IT.npy")[:800]


def test_rsa_v4_it_ours_equals_rsatoolbox(majaj):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare

    v4, it = majaj
    ref = compare(calc_rdm(Dataset(v4.astype(np.float64)), method="correlation"),
                  calc_rdm(Dataset(it.astype(np.float64)), method="correlation"), method="spearman")[0, 0]
    assert S.rsa(v4, it) == pytest.approx(ref, abs=1e-10)


def test_linear_cka_v4_it_gram_form_equals_feature_form(majaj):
    v4, it = (m.astype(np.float64) for m in majaj)
    xc, yc = v4 - v4.mean(0), it - it.mean(0)
    feature_form = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert S.linear_cka(majaj[0], majaj[1]) == pytest.approx(feature_form, abs=1e-12)
    assert 0.0 < feature_form < 1.0
