"""Centered kernel alignment (Kornblith et al., 2019): linear, RBF and debiased.

All forms work on stimuli x stimuli Gram matrices accumulated over feature chunks in float64
(:func:`cortexsnn.similarity.gram`), so a wide layer is never copied whole.
"""
from __future__ import annotations

from typing import Any, Literal

import torch

from ._checks import ConstantRepresentationError, SilentLayerError, check_min_stimuli, metric_inputs
from .rdm import gram

__all__ = ["linear_cka", "rbf_cka", "cka_from_grams", "center_gram"]


def center_gram(k: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """Double-centre a Gram matrix: ``H K H`` (``unbiased=False``) or U-centring (``unbiased=True``).

    U-centring (Székely & Rizzo 2014; Song et al. 2012) zeroes the diagonal and removes row / column
    means with the ``1 / (n - 2)`` and ``1 / (2 (n - 1))`` factors, so that ``<U(K), U(L)>`` divided
    by ``n (n - 3)`` is the unbiased HSIC estimator. Needs ``n >= 4`` when unbiased.
    """
    k = k.to(torch.float64).clone()
    n = k.shape[0]
    if unbiased:
        if n < 4:
            raise ValueError(f"debiased CKA needs at least 4 stimuli, got {n}")
        k.fill_diagonal_(0.0)
        means = k.sum(dim=0) / (n - 2)
        means = means - means.sum() / (2 * (n - 1))
        k -= means[:, None]
        k -= means[None, :]
        k.fill_diagonal_(0.0)
    else:
        means = k.mean(dim=0)
        k -= means[:, None]
        k -= means[None, :]
        k += means.mean()
    return k


def cka_from_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool = False) -> float:
    """CKA between two (uncentred) Gram / kernel matrices of the same stimuli.

    Raises:
        DegenerateInputError: fewer than ``MIN_STIMULI_CKA`` (4) stimuli.
        ConstantRepresentationError: a Gram matrix with nothing left after centring (every stimulus
            represented alike).
    """
    if k.shape != l.shape or k.dim() != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"Gram matrices must be square and of equal shape, got {tuple(k.shape)} and {tuple(l.shape)}")
    check_min_stimuli(k.shape[0], "cka", "CKA")
    kc, lc = center_gram(k, debiased), center_gram(l.to(k.device), debiased)
    hsic_kl = (kc * lc).sum()
    nk, nl = torch.linalg.matrix_norm(kc), torch.linalg.matrix_norm(lc)
    for name, nv, raw in (("first", nk, k), ("second", nl, l)):
        if not torch.isfinite(nv):
            raise ValueError(f"the {name} Gram matrix holds NaN or infinite values")
        # relative to the uncentred Gram: identical rows leave only rounding after centring
        if nv <= 1e-14 * torch.linalg.matrix_norm(raw.to(torch.float64)):
            raise ConstantRepresentationError(
                f"the {name} representation is the same for every stimulus (nothing is left of its Gram "
                "matrix after centring), so CKA is undefined (a silent layer?)"
            )
    if debiased and (kc * kc).sum() <= 0:
        raise SilentLayerError("the debiased self-similarity of a representation is not positive")
    return float(hsic_kl / (nk * nl))


def _pair(x: Any, y: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    return metric_inputs(x, y, family="cka", what=what, names=("x", "y"))


def linear_cka(
    x: Any,
    y: Any,
    *,
    debiased: bool = False,
    precision: Literal["float64", "float32"] = "float64",
    device: str | torch.device | None = None,
) -> float:
    """Linear CKA between ``x`` ``[stimuli, p]`` and ``y`` ``[stimuli, q]``.

    ``<Kc, Lc>_F / (||Kc||_F ||Lc||_F)`` with ``K = Xc Xc^T`` of column-centred features (equal to
    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``). ``debiased=True`` uses U-centred Grams
    (the unbiased HSIC estimator), which removes CKA's upward bias when features outnumber stimuli.

    Raises:
        DegenerateInputError: fewer than ``MIN_STIMULI_CKA`` (4) stimuli (with 2, linear CKA is 1 for
            any two representations).
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus.
    """
    xm, ym = _pair(x, y, "linear CKA")
    k = gram(xm, center="columns", precision=precision, device=device)
    l = gram(ym, center="columns", precision=precision, device=device)
    return cka_from_grams(k, l, debiased=debiased)


def _rbf_kernel(g: torch.Tensor, threshold: float) -> torch.Tensor:
    sq = g.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * g).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    # Median over all n^2 entries, diagonal included, averaging the two middle values (np.median),
    # as in Kornblith et al.'s reference code.
    v = torch.sort(d2.flatten()).values
    m = v.numel()
    median = v[m // 2] if m % 2 else 0.5 * (v[m // 2 - 1] + v[m // 2])
    if median <= 0:
        raise SilentLayerError("all stimuli have (nearly) identical features: the RBF bandwidth is zero")
    return torch.exp(-d2 / (2.0 * threshold**2 * median))


def rbf_cka(
    x: Any,
    y: Any,
    *,
    threshold: float = 1.0,
    debiased: bool = False,
    device: str | torch.device | None = None,
) -> float:
    """RBF-kernel CKA: Gaussian kernels with bandwidth ``sigma = threshold * sqrt(median squared distance)``.

    The median is taken over all stimulus pairs including the zero diagonal, as in Kornblith et al.

    Raises:
        DegenerateInputError: fewer than ``MIN_STIMULI_CKA`` (4) stimuli.
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    xm, ym = _pair(x, y, "RBF CKA")
    k = _rbf_kernel(gram(xm, center="columns", device=device), threshold)
    l = _rbf_kernel(gram(ym, center="columns", device=device), threshold)
    return cka_from_grams(k, l, debiased=debiased)
