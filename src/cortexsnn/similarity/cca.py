"""SVCCA as in Huang et al. (AAAI 2023), standard CCA and projection-weighted CCA (PWCCA).

The seed's SVCCA: reduce the model features (and, for allen_natural_scenes, the neural data) to 40
dimensions with an *uncentred* truncated SVD (scikit-learn ``TruncatedSVD(40, random_state=2022)``),
then the CCA of Raghu et al.'s reference code on ``dims x samples`` arrays: covariance blocks (the
``np.cov`` estimate), ``Sxx`` scaled by ``max|Sxx|``, ``Syy`` by ``max|Syy|``, ``Sxy`` by
``sqrt(max_x * max_y)``, ``M = Sxx^-1/2 Sxy Syy^-1/2`` with the inverse square roots taken as the
eigen-square-root of the pseudo-inverse, and the score is the mean of the ``min(dx, dy)`` singular
values of ``M`` (the canonical correlations).

Fast route: the top singular vectors of a wide ``[stimuli x features]`` matrix come from the
eigen-decomposition of its ``stimuli x stimuli`` Gram matrix (accumulated in float64 over feature
chunks), which gives the exact truncated SVD without ever forming ``features x 40`` factors.
scikit-learn's default TruncatedSVD solver is *randomized* (5 power iterations): its 40-dim subspace
is an approximation of the exact one. ``svd_solver="sklearn"`` reproduces the seed bit for bit by
calling scikit-learn itself; ``"gram"`` (default) is exact and fast.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ._checks import SilentLayerError, as_matrix, check_same_stimuli, resolve_device
from .rdm import gram

__all__ = ["truncated_svd", "svcca", "seed_cca", "cca", "pwcca"]

SVDSolver = Literal["gram", "sklearn"]


def truncated_svd(
    x: Any,
    n_components: int = 40,
    *,
    svd_solver: SVDSolver = "gram",
    random_state: int = 2022,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Scores ``U_k S_k`` (``[stimuli, k]``, float64) of an uncentred rank-``k`` SVD of ``x``.

    Equals ``TruncatedSVD(n_components).fit_transform(x)`` of scikit-learn up to the sign of each
    column (``svd_solver="gram"``: exact, via ``eigh`` of ``x x^T``; compare with scikit-learn's
    ``algorithm="arpack"``) or exactly (``svd_solver="sklearn"``: scikit-learn's randomized solver
    with ``random_state``, the seed's choice). Columns are in decreasing singular value order.
    """
    xm = as_matrix(x, "x")
    n, p = xm.shape
    if not 1 <= n_components <= min(n, p):
        raise ValueError(f"n_components must be in [1, min(stimuli, features)] = [1, {min(n, p)}], got {n_components}")
    dev = resolve_device(device, x)
    if svd_solver == "sklearn":
        from sklearn.decomposition import TruncatedSVD

        scores = TruncatedSVD(n_components=n_components, random_state=random_state).fit_transform(xm.cpu().numpy())
        return torch.from_numpy(np.asarray(scores, dtype=np.float64)).to(dev)
    if svd_solver != "gram":
        raise ValueError(f"svd_solver must be 'gram' or 'sklearn', got {svd_solver!r}")
    g = gram(xm, center="none", device=dev)
    w, u = torch.linalg.eigh(g)
    w, u = w.flip(0)[:n_components].clamp_min(0.0), u.flip(1)[:, :n_components]
    # Deterministic signs: the largest-magnitude entry of each left singular vector is positive.
    idx = u.abs().argmax(dim=0)
    signs = torch.sign(u[idx, torch.arange(u.shape[1], device=dev)])
    signs[signs == 0] = 1.0
    return u * signs * w.sqrt()


def _dims_by_samples_cov(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``np.cov`` blocks of ``[samples, dx]`` and ``[samples, dy]`` (centred, ddof 1)."""
    n = a.shape[0]
    ac, bc = a - a.mean(dim=0), b - b.mean(dim=0)
    return ac.T @ ac / (n - 1), ac.T @ bc / (n - 1), bc.T @ bc / (n - 1)


def _inv_sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    """Eigen-square-root of the pseudo-inverse (the reference code's ``positivedef_matrix_sqrt(pinv(S))``).

    numpy's ``pinv`` cut-off (``rcond=1e-15`` relative to the largest singular value) is used.
    Eigenvalues that rounding pushes below zero are clamped to zero (the reference code would
    take ``sqrt`` of a negative number and return NaN).
    """
    inv = torch.linalg.pinv(s, rtol=1e-15, hermitian=False)
    w, v = torch.linalg.eigh(0.5 * (inv + inv.T))
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def seed_cca(a: Any, b: Any) -> torch.Tensor:
    """Canonical correlations by the seed's (Raghu et al.'s reference) algorithm.

    Args:
        a: ``[samples, dx]`` (e.g. 40 TSVD scores per stimulus); b: ``[samples, dy]``.

    Returns:
        The ``min(dx, dy)`` canonical correlations (float64 tensor, decreasing).
    """
    am, bm = as_matrix(a, "a").to(torch.float64), as_matrix(b, "b").to(torch.float64)
    check_same_stimuli(am, bm, ("a", "b"))
    bm = bm.to(am.device)
    sxx, sxy, syy = _dims_by_samples_cov(am, bm)
    xmax, ymax = sxx.abs().max(), syy.abs().max()
    if xmax == 0 or ymax == 0:
        raise SilentLayerError("a representation has zero variance across samples: CCA is undefined")
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / torch.sqrt(xmax * ymax)
    m = _inv_sqrt_psd(sxx) @ sxy @ _inv_sqrt_psd(syy)
    return torch.linalg.svdvals(m).abs()


def svcca(
    x: Any,
    y: Any,
    *,
    n_components: int = 40,
    reduce_y: bool = True,
    svd_solver: SVDSolver = "gram",
    random_state: int = 2022,
    device: str | torch.device | None = None,
) -> float:
    """SVCCA score of Huang et al. (AAAI 2023): TSVD to ``n_components`` dims, the seed's CCA, mean correlation.

    Args:
        x: model features ``[stimuli, features]``; reduced when it has more than ``n_components``
            features.
        y: neural responses ``[stimuli, neurons]``; reduced the same way when ``reduce_y`` (the seed
            does so for allen_natural_scenes only; macaque data are used as they are).
        svd_solver: ``"gram"`` (exact truncated SVD through the stimuli x stimuli Gram matrix) or
            ``"sklearn"`` (scikit-learn's randomized TruncatedSVD with ``random_state``: the seed's
            exact numbers).
    """
    xm, ym = as_matrix(x, "model features x"), as_matrix(y, "neural responses y")
    check_same_stimuli(xm, ym, ("model features x", "neural responses y"))
    dev = resolve_device(device, x)

    def reduce(m: torch.Tensor) -> torch.Tensor:
        if m.shape[1] > n_components:
            return truncated_svd(m, n_components, svd_solver=svd_solver, random_state=random_state, device=dev)
        return m.to(device=dev, dtype=torch.float64)

    a = reduce(xm)
    b = reduce(ym) if reduce_y else ym.to(device=dev, dtype=torch.float64)
    return float(seed_cca(a, b).mean())


def _orthonormal_basis(m: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """Orthonormal basis of the column space of the column-centred ``m`` (rank-revealing).

    Narrow matrices use an SVD of the centred matrix; wide ones (more features than stimuli) the
    eigenvectors of the centred Gram matrix, accumulated over feature chunks.
    """
    n, p = m.shape
    if p <= n:
        c = m.to(device=dev, dtype=torch.float64)
        c = c - c.mean(dim=0)
        u, s, _ = torch.linalg.svd(c, full_matrices=False)
        keep = s > s.max() * max(n, p) * torch.finfo(torch.float64).eps
        return u[:, keep]
    g = gram(m, center="columns", device=dev)
    w, u = torch.linalg.eigh(g)
    keep = w > w.max() * n * torch.finfo(torch.float64).eps * 10
    return u[:, keep]


def cca(a: Any, b: Any, *, device: str | torch.device | None = None) -> torch.Tensor:
    """Canonical correlations between the (column-centred) column spaces of ``a`` and ``b``.

    The standard, numerically stable route (Björck & Golub): orthonormal bases ``Qa``, ``Qb``
    (rank-revealing, so collinear features are handled) and the singular values of ``Qa^T Qb``.
    When a side has as many independent dimensions as stimuli - 1, all correlations are 1: reduce
    the dimensionality first (e.g. :func:`truncated_svd`).

    Returns:
        ``min(rank a, rank b)`` correlations, decreasing, float64.
    """
    am, bm = as_matrix(a, "a", min_rows=3), as_matrix(b, "b", min_rows=3)
    check_same_stimuli(am, bm, ("a", "b"))
    dev = resolve_device(device, a)
    qa, qb = _orthonormal_basis(am, dev), _orthonormal_basis(bm, dev)
    if qa.shape[1] == 0 or qb.shape[1] == 0:
        raise SilentLayerError("a representation is constant across stimuli: CCA is undefined")
    return torch.linalg.svdvals(qa.T @ qb).clamp(0.0, 1.0)


def pwcca(a: Any, b: Any, *, device: str | torch.device | None = None) -> float:
    """Projection-weighted CCA (Morcos, Raghu & Bengio 2018).

    The canonical variates ``h_i`` of the side with fewer features (``a`` on a tie) weigh each
    canonical correlation by how much of that side's centred activity they account for:
    ``alpha_i = sum_j |<h_i, z_j>|`` over its features ``z_j``; the score is
    ``sum_i alpha_i rho_i / sum_i alpha_i``.
    """
    am, bm = as_matrix(a, "a", min_rows=3), as_matrix(b, "b", min_rows=3)
    check_same_stimuli(am, bm, ("a", "b"))
    dev = resolve_device(device, a)
    if bm.shape[1] < am.shape[1]:
        am, bm = bm, am
    qa, qb = _orthonormal_basis(am, dev), _orthonormal_basis(bm, dev)
    if qa.shape[1] == 0 or qb.shape[1] == 0:
        raise SilentLayerError("a representation is constant across stimuli: PWCCA is undefined")
    u, rho, _ = torch.linalg.svd(qa.T @ qb, full_matrices=False)
    h = qa @ u  # [stimuli, r] orthonormal canonical variates of the smaller side
    z = am.to(device=dev, dtype=torch.float64)
    z = z - z.mean(dim=0)
    alpha = (h.T @ z).abs().sum(dim=1)
    return float((alpha * rho.clamp(0.0, 1.0)).sum() / alpha.sum())
