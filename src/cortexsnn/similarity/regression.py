"""Regression scores: TSVD-ridge with leave-one-out (Huang et al., AAAI 2023) and PCA-ridge with R^2 (Huang et al., NeurIPS 2024).

Both reduce wide model features through stimuli x stimuli Gram matrices (float64, chunked), so
neither materialises a ``features x components`` factor. The ridge steps follow scikit-learn's
``Ridge(alpha, fit_intercept=True)``: the intercept is not penalised.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ._checks import SilentLayerError, as_matrix, check_not_constant, check_same_stimuli, metric_inputs, resolve_device
from .cca import SVDSolver, truncated_svd
from .rdm import gram

__all__ = ["loo_ridge_predictions", "tsvd_regression", "pca_ridge_r2", "PCARidge"]


def _constant_columns(y: torch.Tensor) -> list[int]:
    yc = y - y.mean(dim=0)
    scale = y.abs().amax(dim=0)
    return ((yc.abs().amax(dim=0) <= 1e-12 * scale) | (scale == 0)).nonzero().flatten().tolist()


def _check_responses(y: torch.Tensor) -> None:
    if not torch.isfinite(y).all():
        raise ValueError("neural responses y hold NaN or infinite values; remove or impute them first")
    bad = _constant_columns(y)
    if bad:
        raise SilentLayerError(
            f"neurons {bad[:10]}{' ...' if len(bad) > 10 else ''} respond identically to every stimulus; "
            "their correlation / R^2 is undefined. Drop them before scoring.",
            rows=bad,
        )


def loo_ridge_predictions(z: Any, y: Any, alpha: float = 1.0) -> torch.Tensor:
    """Leave-one-out predictions of ``Ridge(alpha)`` (with intercept) of ``y`` from ``z``, exactly.

    For a penalised least-squares fit with a fixed penalty, the prediction for stimulus ``i`` by the
    model fitted without ``i`` is ``(yhat_i - h_ii y_i) / (1 - h_ii)`` with ``H = A (A^T A + P)^-1 A^T``,
    ``A = [1, z]`` and ``P = diag(0, alpha I)``; identical to refitting n times (scikit-learn's
    ``cross_val_predict(Ridge(alpha), z, y, cv=LeaveOneOut())``), at the cost of one fit.
    """
    zm = as_matrix(z, "z").to(torch.float64)
    ym = as_matrix(y, "y").to(device=zm.device, dtype=torch.float64)
    check_same_stimuli(zm, ym, ("z", "y"))
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    n, d = zm.shape
    a = torch.cat([torch.ones(n, 1, dtype=torch.float64, device=zm.device), zm], dim=1)
    penalty = torch.full((d + 1,), float(alpha), dtype=torch.float64, device=zm.device)
    penalty[0] = 0.0
    lhs = a.T @ a + torch.diag(penalty)
    coef = torch.linalg.solve(lhs, a.T @ ym)
    h = (a * torch.linalg.solve(lhs, a.T).T).sum(dim=1)  # diag(H)
    if (1.0 - h).min() <= 1e-12:
        raise ValueError("a stimulus has leverage 1: leave-one-out is undefined (too few stimuli for the features?)")
    fitted = a @ coef
    return (fitted - h[:, None] * ym) / (1.0 - h[:, None])


def _columnwise_pearson(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pc, yc = p - p.mean(dim=0), y - y.mean(dim=0)
    return (pc * yc).sum(dim=0) / (torch.linalg.vector_norm(pc, dim=0) * torch.linalg.vector_norm(yc, dim=0))


def tsvd_regression(
    x: Any,
    y: Any,
    *,
    n_components: int = 40,
    alpha: float = 1.0,
    svd_solver: SVDSolver = "gram",
    random_state: int = 2022,
    per_neuron: bool = False,
    device: str | torch.device | None = None,
) -> float | torch.Tensor:
    """TSVD-Regression score of Huang et al. (AAAI 2023).

    Model features -> ``n_components`` dims by an uncentred truncated SVD fitted on all stimuli (as
    Huang et al.'s code; skipped when there are no more features than that); leave-one-out cross-validation
    over stimuli (Huang et al.'s shuffled K-fold with one stimulus per fold gives the same folds);
    ``Ridge(alpha)`` on all neurons jointly; Pearson r between each neuron's out-of-fold predictions
    and its responses; the mean over neurons (or the per-neuron tensor with ``per_neuron=True``).

    Raises:
        DegenerateInputError: fewer than ``MIN_STIMULI_REGRESSION`` (4) stimuli.
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus.
        SilentLayerError: a neuron with identical responses to all stimuli (its r is undefined), or
            predictions that are constant (a silent model layer).
    """
    xm, ym = metric_inputs(x, y, family="regression", what="TSVD-Regression")
    dev = resolve_device(device, x)
    ym = ym.to(device=dev, dtype=torch.float64)
    _check_responses(ym)
    if xm.shape[1] > n_components:
        z = truncated_svd(xm, n_components, svd_solver=svd_solver, random_state=random_state, device=dev)
    else:
        z = xm.to(device=dev, dtype=torch.float64)
    pred = loo_ridge_predictions(z, ym, alpha)
    r = _columnwise_pearson(pred, ym)
    if not torch.isfinite(r).all():
        raise SilentLayerError("the out-of-fold predictions are constant for some neurons (a silent model layer?)")
    return r if per_neuron else float(r.mean())


def _pca_scores_from_gram(g: torch.Tensor, train: torch.Tensor, test: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA (centred on the training stimuli) scores of train and test stimuli from the full Gram."""
    g_tt = g[train][:, train]
    col = g[:, train].mean(dim=1)  # <x_i, mean_train>
    mm = col[train].mean()  # <mean_train, mean_train>
    gc_train = g_tt - col[train][:, None] - col[train][None, :] + mm
    w, u = torch.linalg.eigh(0.5 * (gc_train + gc_train.T))
    w, u = w.flip(0)[:k], u.flip(1)[:, :k]
    keep = w > w[0] * 1e-12
    w, u = w[keep], u[:, keep]
    s = w.sqrt()
    train_scores = u * s
    gc_test = g[test][:, train] - col[test][:, None] - col[train][None, :] + mm
    test_scores = gc_test @ u / s
    return train_scores, test_scores


def _ridge_fit_predict(z_train: torch.Tensor, y_train: torch.Tensor, z_test: torch.Tensor, alpha: float) -> torch.Tensor:
    zm, ymu = z_train.mean(dim=0), y_train.mean(dim=0)
    zc = z_train - zm
    lhs = zc.T @ zc + alpha * torch.eye(zc.shape[1], dtype=torch.float64, device=zc.device)
    coef = torch.linalg.solve(lhs, zc.T @ (y_train - ymu))
    return (z_test - zm) @ coef + ymu


def _r2_per_neuron(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ss_res = ((y - pred) ** 2).sum(dim=0)
    ss_tot = ((y - y.mean(dim=0)) ** 2).sum(dim=0)
    return 1.0 - ss_res / ss_tot


def pca_ridge_r2(
    x: Any,
    y: Any,
    *,
    n_components: int = 40,
    alpha: float = 1.0,
    cv: int | Literal["in_sample"] = 5,
    random_state: int = 0,
    per_neuron: bool = False,
    device: str | torch.device | None = None,
) -> float | torch.Tensor:
    """PCA-ridge regression score (the appendix of Huang et al., NeurIPS 2024), cross-validated by default.

    PCA to ``n_components`` (fitted on the training stimuli of each fold, exact, via the Gram
    matrix) -> ``Ridge(alpha)`` -> R^2 per neuron (scikit-learn's ``r2_score`` on the out-of-fold
    predictions pooled over folds) -> mean over neurons.

    Args:
        cv: number of folds (shuffled ``KFold`` with ``random_state``), or ``"in_sample"`` for the
            procedure of Huang et al. (NeurIPS 2024) (PCA and ridge fitted and evaluated on all stimuli; inflated).

    Raises:
        DegenerateInputError: fewer than ``MIN_STIMULI_REGRESSION`` (4) stimuli.
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus.
        SilentLayerError: a neuron with identical responses to all stimuli (its R^2 is undefined).
    """
    xm, ym = metric_inputs(x, y, family="regression", what="PCA-ridge R^2")
    dev = resolve_device(device, x)
    ym = ym.to(device=dev, dtype=torch.float64)
    _check_responses(ym)
    n = xm.shape[0]
    g = gram(xm, center="none", device=dev)
    if cv == "in_sample":
        every = torch.arange(n, device=dev)
        z_train, _ = _pca_scores_from_gram(g, every, every[:1], n_components)
        pred = _ridge_fit_predict(z_train, ym, z_train, alpha)
    else:
        if not isinstance(cv, int) or not 2 <= cv <= n:
            raise ValueError(f"cv must be an int in [2, {n}] or 'in_sample', got {cv!r}")
        from sklearn.model_selection import KFold

        pred = torch.empty_like(ym)
        for train_idx, test_idx in KFold(cv, shuffle=True, random_state=random_state).split(np.arange(n)):
            train = torch.as_tensor(train_idx, device=dev)
            test = torch.as_tensor(test_idx, device=dev)
            z_train, z_test = _pca_scores_from_gram(g, train, test, n_components)
            pred[test] = _ridge_fit_predict(z_train, ym[train], z_test, alpha)
    r2 = _r2_per_neuron(pred, ym)
    return r2 if per_neuron else float(r2.mean())


class PCARidge:
    """scikit-learn-style estimator: PCA(``n_components``, exact) -> Ridge(``alpha``), in torch.

    ``fit(x, y)`` learns the PCA on ``x`` (centred) and the ridge map; ``predict(x)`` projects new
    stimuli; ``score(x, y)`` is the mean over neurons of R^2 (scikit-learn's ``r2_score`` with
    ``multioutput="uniform_average"``). No randomness is involved (exact eigendecomposition).
    """

    def __init__(self, n_components: int = 40, alpha: float = 1.0) -> None:
        self.n_components = n_components
        self.alpha = alpha

    def fit(self, x: Any, y: Any) -> "PCARidge":
        """Learn the PCA on ``x`` and the ridge map to ``y``; a constant ``x`` is refused
        (:class:`ConstantRepresentationError`: nothing to project)."""
        xm, ym = as_matrix(x, "x").to(torch.float64), as_matrix(y, "y").to(torch.float64)
        check_same_stimuli(xm, ym, ("x", "y"))
        check_not_constant(xm, "x", "a PCA-ridge fit")
        self.mean_ = xm.mean(dim=0)
        xc = xm - self.mean_
        _, s, vt = torch.linalg.svd(xc, full_matrices=False)
        k = min(self.n_components, int((s > s[0] * 1e-12).sum()))
        self.components_ = vt[:k]
        z = xc @ self.components_.T
        self.z_mean_ = z.mean(dim=0)
        self.y_mean_ = ym.mean(dim=0)
        zc = z - self.z_mean_
        lhs = zc.T @ zc + self.alpha * torch.eye(k, dtype=torch.float64)
        self.coef_ = torch.linalg.solve(lhs, zc.T @ (ym - self.y_mean_))
        return self

    def predict(self, x: Any) -> torch.Tensor:
        if not hasattr(self, "coef_"):
            raise RuntimeError("PCARidge is not fitted yet; call fit(x, y) first")
        xm = as_matrix(x, "x", min_rows=1).to(torch.float64)
        z = (xm - self.mean_) @ self.components_.T
        return (z - self.z_mean_) @ self.coef_ + self.y_mean_

    def score(self, x: Any, y: Any) -> float:
        ym = as_matrix(y, "y", min_rows=2).to(torch.float64)
        return float(_r2_per_neuron(self.predict(x), ym).mean())
