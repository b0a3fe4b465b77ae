"""SVCCA as in Huang et al. (AAAI 2023), standard CCA and projection-weighted CCA (PWCCA).

Huang et al.'s SVCCA: reduce the model features (and, for allen_natural_scenes, the neural data) to 40
dimensions with an *uncentred* truncated SVD (scikit-learn ``TruncatedSVD(40, random_state=2022)``),
then the CCA of Raghu et al.'s reference code (NeurIPS 2017; google/svcca's ``cca_core``) on
``dims x samples`` arrays: covariance blocks (the ``np.cov`` estimate), ``Sxx`` scaled by
``max|Sxx|``, ``Syy`` by ``max|Syy|``, ``Sxy`` by ``sqrt(max_x * max_y)``, ``M = Sxx^-1/2 Sxy Syy^-1/2``
with the inverse square roots taken as the eigen-square-root of the pseudo-inverse, and the score
is the mean of the ``min(dx, dy)`` singular values of ``M`` (the canonical correlations).

Fast route: the top singular vectors of a wide ``[stimuli x features]`` matrix come from the
eigen-decomposition of its ``stimuli x stimuli`` Gram matrix (accumulated in float64 over feature
chunks), which gives the exact truncated SVD without ever forming ``features x 40`` factors.
scikit-learn's default TruncatedSVD solver is *randomized* (5 power iterations): its 40-dim subspace
is an approximation of the exact one. ``svd_solver="sklearn"`` reproduces Huang et al.'s code bit for bit by
calling scikit-learn itself; ``"gram"`` (default) is exact and fast.

PWCCA (Morcos, Raghu & Bengio, NeurIPS 2018) defaults to the numbers of the authors' reference
implementation (google/svcca's ``compute_pwcca``); ``variant="canonical"`` is the weighting written
in the paper, with the canonical variates themselves (see :func:`pwcca` for what differs).

Every score here refuses inputs on which it is degenerate (:mod:`._checks`): fewer than
:data:`~._checks.MIN_STIMULI_CCA` stimuli, a constant representation, or two sides that together
have as many features as stimuli or more (canonical correlations of 1 by construction).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ._checks import SilentLayerError, as_matrix, check_cca_dimensions, metric_inputs, resolve_device
from .rdm import gram

__all__ = ["truncated_svd", "svcca", "seed_cca", "cca", "pwcca", "PWCCAVariant"]

SVDSolver = Literal["gram", "sklearn"]
PWCCAVariant = Literal["reference", "canonical"]


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
    with ``random_state``, Huang et al.'s choice). Columns are in decreasing singular value order.
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


def _reference_cca_matrix(am: torch.Tensor, bm: torch.Tensor) -> torch.Tensor:
    """``M = Sxx^-1/2 Sxy Syy^-1/2`` of the reference code (scaled ``np.cov`` blocks), float64 ``[dx, dy]``."""
    sxx, sxy, syy = _dims_by_samples_cov(am, bm)
    xmax, ymax = sxx.abs().max(), syy.abs().max()
    if xmax == 0 or ymax == 0:
        raise SilentLayerError("a representation has zero variance across samples: CCA is undefined")
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / torch.sqrt(xmax * ymax)
    return _inv_sqrt_psd(sxx) @ sxy @ _inv_sqrt_psd(syy)


def _cca_pair(a: Any, b: Any, what: str, names: tuple[str, str] = ("a", "b")) -> tuple[torch.Tensor, torch.Tensor]:
    """The CCA family's entry checks: shapes, stimuli, minimum count, constancy, features vs stimuli."""
    am, bm = metric_inputs(a, b, family="cca", what=what, names=names)
    check_cca_dimensions(am.shape[0], am.shape[1], bm.shape[1], what, names)
    return am, bm


def seed_cca(a: Any, b: Any) -> torch.Tensor:
    """Canonical correlations by Huang et al.'s (Raghu et al.'s reference) algorithm.

    Args:
        a: ``[samples, dx]`` (e.g. 40 TSVD scores per stimulus); b: ``[samples, dy]``.

    Returns:
        The ``min(dx, dy)`` canonical correlations (float64 tensor, decreasing).

    Raises:
        DegenerateInputError: fewer than 4 samples, or ``dx + dy`` not fewer than the samples.
        ConstantRepresentationError: ``a`` or ``b`` is the same for every sample.
    """
    am, bm = _cca_pair(a, b, "CCA (Raghu et al.'s reference algorithm)")
    am = am.to(torch.float64)
    bm = bm.to(device=am.device, dtype=torch.float64)
    return torch.linalg.svdvals(_reference_cca_matrix(am, bm)).abs()


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
    """SVCCA score of Huang et al. (AAAI 2023): TSVD to ``n_components`` dims, Huang et al.'s CCA, mean correlation.

    Args:
        x: model features ``[stimuli, features]``; reduced when it has more than ``n_components``
            features.
        y: neural responses ``[stimuli, neurons]``; reduced the same way when ``reduce_y`` (Huang et al.'s code
            does so for allen_natural_scenes only; macaque data are used as they are).
        svd_solver: ``"gram"`` (exact truncated SVD through the stimuli x stimuli Gram matrix) or
            ``"sklearn"`` (scikit-learn's randomized TruncatedSVD with ``random_state``: Huang et al.'s
            exact numbers).

    Raises:
        DegenerateInputError: fewer than 4 stimuli, or the reduced sides together have as many
            dimensions as stimuli or more (lower ``n_components``).
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus (an all-ones
            layer would otherwise score the correlations of its rounding noise).
    """
    xm, ym = metric_inputs(x, y, family="cca", what="SVCCA")
    dev = resolve_device(device, x)
    n = xm.shape[0]
    dims_a = min(xm.shape[1], n_components)
    dims_b = min(ym.shape[1], n_components) if reduce_y else ym.shape[1]
    # refuse before any SVD: the reduced sides keep at most n_components dimensions each
    check_cca_dimensions(n, dims_a, dims_b, "SVCCA",
                         (f"x (after TSVD to n_components={n_components})",
                          f"y ({'after TSVD' if reduce_y else 'not reduced, reduce_y=False'})"))

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

    Returns:
        ``min(rank a, rank b)`` correlations, decreasing, float64.

    Raises:
        DegenerateInputError: fewer than 4 stimuli, or ``a`` and ``b`` together have as many
            features as stimuli or more (then at least ``pa + pb - n + 1`` correlations are 1 for
            any data): reduce first, e.g. :func:`svcca` or :func:`truncated_svd` per side.
        ConstantRepresentationError: ``a`` or ``b`` is the same for every stimulus.
    """
    am, bm = _cca_pair(a, b, "CCA")
    dev = resolve_device(device, a)
    qa, qb = _orthonormal_basis(am, dev), _orthonormal_basis(bm, dev)
    if qa.shape[1] == 0 or qb.shape[1] == 0:
        raise SilentLayerError("a representation is constant across stimuli: CCA is undefined")
    return torch.linalg.svdvals(qa.T @ qb).clamp(0.0, 1.0)


def _pwcca_reference(am: torch.Tensor, bm: torch.Tensor, dev: torch.device) -> float:
    """google/svcca's ``compute_pwcca`` (epsilon 0) with ``am`` (the side with fewer features) as ``acts1``.

    Canonical correlations ``rho`` and left singular vectors ``U`` (``[p, p]``) of the reference's
    ``M``; "directions" ``D = (A - m) U + m`` (column ``i`` is the centred activity rotated by
    ``u_i``, plus the mean of neuron ``i``); ``P`` = the orthonormal basis of ``D``'s columns in
    order (QR); weights ``alpha_i = sum_j |<P_i, a_j>|`` over the *uncentred* neurons ``a_j``.

    The SVD is numpy's (LAPACK ``gesdd``), as in the reference: adding neuron ``i``'s mean to the
    ``i``-th direction makes the result depend on the sign LAPACK gives each singular vector, and
    torch's LAPACK (MKL) picks other signs for some matrices.
    """
    a64 = am.to(device=dev, dtype=torch.float64)
    b64 = bm.to(device=dev, dtype=torch.float64)
    m = _reference_cca_matrix(a64, b64)
    u, rho, _ = np.linalg.svd(m.cpu().numpy())
    u_t = torch.from_numpy(u).to(dev)
    rho_t = torch.from_numpy(np.abs(rho)).to(dev)
    mean = a64.mean(dim=0)
    d = (a64 - mean) @ u_t + mean
    p_basis = torch.linalg.qr(d, mode="reduced").Q
    alpha = (p_basis.T @ a64).abs().sum(dim=1)
    return float((alpha * rho_t).sum() / alpha.sum())


def _pwcca_canonical(am: torch.Tensor, bm: torch.Tensor, dev: torch.device) -> float:
    """The paper's weighting with the canonical variates themselves (orthonormal, centred data)."""
    qa, qb = _orthonormal_basis(am, dev), _orthonormal_basis(bm, dev)
    if qa.shape[1] == 0 or qb.shape[1] == 0:
        raise SilentLayerError("a representation is constant across stimuli: PWCCA is undefined")
    u, rho, _ = torch.linalg.svd(qa.T @ qb, full_matrices=False)
    h = qa @ u  # [stimuli, r] orthonormal canonical variates of the smaller side
    z = am.to(device=dev, dtype=torch.float64)
    z = z - z.mean(dim=0)
    alpha = (h.T @ z).abs().sum(dim=1)
    return float((alpha * rho.clamp(0.0, 1.0)).sum() / alpha.sum())


def pwcca(
    a: Any,
    b: Any,
    *,
    variant: PWCCAVariant = "reference",
    device: str | torch.device | None = None,
) -> float:
    """Projection-weighted CCA (Morcos, Raghu & Bengio, NeurIPS 2018).

    The canonical correlations ``rho_i`` are averaged with weights ``alpha_i`` that say how much of
    one side's activity the ``i``-th canonical direction accounts for; the weighted side is the one
    with fewer features (``a`` on a tie): ``sum_i alpha_i rho_i / sum_i alpha_i``.

    Args:
        a, b: ``[stimuli, features]`` representations of the same stimuli.
        variant: how the directions and weights are formed.

            * ``"reference"`` (default): the numbers of the authors' reference implementation,
              google/svcca's ``compute_pwcca(acts1, acts2)`` (epsilon 0; ``acts`` are ``features x
              stimuli``) with the smaller side as ``acts1`` - equal to it to ~1e-12 on its tutorial
              activations. Its canonical correlations are those of :func:`seed_cca`; its
              "directions" are the left singular vectors ``u_i`` of ``Sxx^-1/2 Sxy Syy^-1/2``
              applied to the centred activity *without* the whitening ``Sxx^-1/2`` (so they are not
              the canonical variates unless ``Sxx`` is a multiple of the identity), with neuron
              ``i``'s mean added to direction ``i``, orthonormalised in order by a QR
              decomposition; the weights use the *uncentred* activity
              ``alpha_i = sum_j |<p_i, a_j>|``. The score therefore changes with the features'
              means and with the signs LAPACK gives the singular vectors (numpy's SVD is used, as
              in the reference). When ``b`` has fewer features this equals
              ``compute_pwcca(b, a)``; the reference's own branch for that case indexes the wrong
              array and raises ``IndexError`` (google/svcca pull request #9).
            * ``"canonical"``: the paper's formula with the canonical variates ``h_i`` of the
              centred data (orthonormal, from the standard QR route of :func:`cca`) and the
              centred features ``z_j``: ``alpha_i = sum_j |<h_i, z_j>|``. Invariant to the
              features' means; differs from ``"reference"`` by several hundredths on the
              reference's tutorial activations (0.807 vs 0.737 on its MNIST pair).

    Raises:
        DegenerateInputError: fewer than 4 stimuli, or ``a`` and ``b`` together have as many
            features as stimuli or more (canonical correlations of 1 for any data): reduce first
            (:func:`svcca`, :func:`truncated_svd`).
        ConstantRepresentationError: ``a`` or ``b`` is the same for every stimulus.
    """
    if variant not in ("reference", "canonical"):
        raise ValueError(f"variant must be 'reference' or 'canonical', got {variant!r}")
    am, bm = _cca_pair(a, b, "PWCCA")
    dev = resolve_device(device, a)
    if bm.shape[1] < am.shape[1]:
        am, bm = bm, am
    if variant == "reference":
        return _pwcca_reference(am, bm, dev)
    return _pwcca_canonical(am, bm, dev)
