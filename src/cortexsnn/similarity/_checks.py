"""Input validation shared by the similarity metrics.

Every public metric passes its inputs through :func:`as_matrix` (numpy arrays or torch tensors in, a
2-D torch tensor out, without copying when possible) and :func:`check_same_stimuli`. Problems that
would otherwise surface as a silent ``NaN`` score raise an exception that says what was wrong.

The checks that decide whether a score can mean anything live here too, so that every metric
applies the same rules:

* :func:`check_min_stimuli` - each metric's minimum number of stimuli (:data:`MIN_STIMULI`);
* :func:`check_not_constant` - a representation whose rows (stimuli) are all identical carries no
  information about the stimuli, whatever its value (all zeros and all ones alike), and is refused
  by every metric with :class:`ConstantRepresentationError`;
* :func:`check_cca_dimensions` - CCA-family scores are refused when the two sides together have as
  many features as stimuli or more (canonical correlations equal to 1 by construction).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cortexsnn.errors import CortexSNNError, InvalidArgumentError

__all__ = [
    "SilentLayerError",
    "ConstantRepresentationError",
    "DegenerateInputError",
    "degenerate_flag",
    "MIN_STIMULI",
    "MIN_STIMULI_RSA",
    "MIN_STIMULI_CKA",
    "MIN_STIMULI_CCA",
    "MIN_STIMULI_REGRESSION",
    "as_matrix",
    "as_vector",
    "check_same_stimuli",
    "check_min_stimuli",
    "check_not_constant",
    "check_cca_dimensions",
    "metric_inputs",
    "resolve_device",
]

#: Fewest stimuli for which a score can mean anything. The common floor of 4 is the smallest
#: number of stimuli whose relabellings (``n!``) let a stimulus-permutation test - the standard
#: inference for these scores (the Mantel test of RSA; Nili et al., PLoS Comput Biol 2014) - reach
#: ``p < 0.05`` at all: ``3! = 6`` relabellings give ``p >= 1/6``, ``4! = 24`` give ``p >= 1/24``.
#: Each metric also degenerates on its own below it (see the per-metric constants).
#:
#: RSA: 3 stimuli give 3 stimulus pairs, whose Spearman correlation takes only the values
#: -1, -0.5, 0.5 and 1 (a "perfect" 0.5 from noise); 2 stimuli give 1 pair (undefined).
MIN_STIMULI_RSA = 4
#: CKA: with 2 stimuli the centred Gram matrix has rank 1 and linear CKA is 1 for any two
#: representations; debiased CKA (the unbiased HSIC estimator, Song et al. 2012) divides by
#: ``n (n - 3)`` and is undefined below 4 stimuli.
MIN_STIMULI_CKA = 4
#: CCA, PWCCA, SVCCA: besides the features-versus-stimuli rule of :func:`check_cca_dimensions`
#: (which already excludes 2 stimuli), a canonical correlation of two 1-feature representations
#: is ``|Pearson r|`` over the stimuli, a two-valued statistic for 3 stimuli.
MIN_STIMULI_CCA = 4
#: Regression scores (TSVD-ridge with leave-one-out, PCA-ridge with cross-validation): the
#: per-neuron Pearson r / R^2 over out-of-fold predictions of 3 stimuli, each predicted from a
#: fit to 2, is no more informative than RSA on 3 stimuli.
MIN_STIMULI_REGRESSION = 4
#: The minimum per metric family, keyed as the metrics name themselves in their error messages.
MIN_STIMULI: dict[str, int] = {
    "rsa": MIN_STIMULI_RSA,
    "cka": MIN_STIMULI_CKA,
    "cca": MIN_STIMULI_CCA,
    "regression": MIN_STIMULI_REGRESSION,
}


class SilentLayerError(CortexSNNError, ValueError):
    """A representation carries no usable signal (constant rows, a constant RDM, a silent layer).

    Raised instead of returning ``NaN``: a correlation with a constant pattern is undefined, and
    averaging such a ``NaN`` away would hide a dead layer. ``rows`` holds the offending row indices
    where they are known.
    """

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


class ConstantRepresentationError(SilentLayerError):
    """Every stimulus has the same representation (all rows identical, whatever the value).

    Such a representation says nothing about the stimuli; a score against it is either undefined
    (a correlation with a constant) or an artefact of rounding, so every metric refuses it alike.
    """


class DegenerateInputError(CortexSNNError, ValueError):
    """The inputs are well-formed but admit no meaningful score.

    Raised for fewer stimuli than a metric's minimum (:data:`MIN_STIMULI`) and for CCA-family
    scores when the two representations together have as many features as stimuli or more.
    ``flag`` is the short reason a scoring run records beside the layer's NaN score (e.g.
    ``"cca: features >= stimuli (40 + 30 features, 60 stimuli)"``).
    """

    def __init__(self, message: str, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag or "degenerate: " + message.split(". ")[0][:160]


def degenerate_flag(exc: BaseException) -> str:
    """The short reason recorded beside a NaN score for a degenerate input (``exc`` a
    :class:`DegenerateInputError` or :class:`SilentLayerError`)."""
    if isinstance(exc, DegenerateInputError):
        return exc.flag
    if isinstance(exc, ConstantRepresentationError):
        return "degenerate: constant representation"
    return "degenerate: " + str(exc).split("; ")[0][:160]


def resolve_device(device: str | torch.device | None, *tensors: Any) -> torch.device:
    """The device to compute on: ``device`` if given, else that of the first torch input, else CPU."""
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


class RDMGivenAsResponsesError(CortexSNNError, ValueError):
    """An RDM (square, symmetric, zero diagonal) was given where responses [stimuli, features] are expected."""


def _looks_like_rdm(t: torch.Tensor) -> bool:
    """Square (at least 4 x 4), zero diagonal, symmetric, non-negative: what an RDM is and a response
    matrix practically never is."""
    if t.dim() != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 4:
        return False
    if bool(torch.diagonal(t).abs().max() != 0) or bool((t < 0).any()):
        return False
    scale = float(t.abs().max())
    return scale > 0 and bool(((t - t.T).abs().max()) <= 1e-9 * scale)


def as_matrix(x: Any, name: str, *, min_rows: int = 2) -> torch.Tensor:
    """``x`` (numpy array, torch tensor or nested list) as a 2-D torch tensor ``[stimuli, features]``.

    Higher-dimensional inputs are flattened per stimulus (``[N, C, H, W]`` -> ``[N, C*H*W]``).
    Integer and boolean inputs become float64; floating inputs keep their dtype (the metrics cast
    chunks to float64 themselves, so a float32 layer is never copied whole).
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x)) if x.dtype != np.float16 else torch.from_numpy(x.astype(np.float32))
    else:
        t = torch.as_tensor(np.asarray(x))
    if t.dim() < 2:
        raise InvalidArgumentError(f"{name} must be a [stimuli x features] matrix, got shape {tuple(t.shape)}")
    if t.dim() > 2:
        t = t.reshape(t.shape[0], -1)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if _looks_like_rdm(t):
        raise RDMGivenAsResponsesError(
            f"{name} is a square, symmetric matrix with a zero diagonal ({t.shape[0]} x {t.shape[1]}): an RDM, not "
            "responses [stimuli, features]. Give the responses; or, where a target is expected, wrap the RDM as "
            "cortexsnn.data.neural.RDMSet.from_matrices([rdm], ['name']) (a set of subjects' RDMs the same way); "
            "to compare two RDMs use compare_rdms")
    if t.shape[0] < min_rows:
        raise InvalidArgumentError(f"{name} has {t.shape[0]} stimuli (rows); at least {min_rows} are needed")
    if t.shape[1] < 1:
        raise InvalidArgumentError(f"{name} has no features (shape {tuple(t.shape)})")
    return t


def as_vector(x: Any, name: str) -> torch.Tensor:
    """``x`` as a 1-D float64 tensor (e.g. an RDM's condensed upper triangle)."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 1:
        raise InvalidArgumentError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def check_same_stimuli(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("X", "Y")) -> None:
    """Raise if the two matrices do not have the same number of stimuli (rows)."""
    if x.shape[0] != y.shape[0]:
        raise InvalidArgumentError(
            f"stimulus counts differ: {names[0]} has {x.shape[0]} rows, {names[1]} has {y.shape[0]}; "
            "both must hold the same stimuli in the same order"
        )


def check_finite_rows(x: torch.Tensor, name: str) -> None:
    """Raise a ``ValueError`` naming the rows of ``x`` that hold NaN or infinite values."""
    bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        shown = bad[:10]
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise InvalidArgumentError(
            f"{name} holds NaN or infinite values in rows {shown}{more}; remove or impute them first"
        )


def check_min_stimuli(n: int, family: str, what: str | None = None) -> None:
    """Raise :class:`DegenerateInputError` when ``n`` stimuli are fewer than ``MIN_STIMULI[family]``.

    Args:
        n: number of stimuli (rows, or the side of an RDM).
        family: ``"rsa"``, ``"cka"``, ``"cca"`` or ``"regression"``.
        what: the metric's name in the message (default: ``family``).
    """
    minimum = MIN_STIMULI[family]
    if n < minimum:
        name = what or family.upper()
        raise DegenerateInputError(
            f"{name} got {n} stimuli; at least {minimum} are needed for a meaningful value (with fewer, "
            "the score is fixed or takes a handful of values whatever the data, and no permutation test "
            "can reach p < 0.05). Score more stimuli.",
            flag=f"too few stimuli: {n} < {minimum}")


def _constant_tolerance(dtype: torch.dtype) -> float:
    # float32 rounding of identical rows computed along different paths stays within a few eps
    return max(4.0 * torch.finfo(dtype).eps, 1e-12) if dtype.is_floating_point else 0.0


def check_not_constant(x: torch.Tensor, name: str, what: str) -> None:
    """Raise :class:`ConstantRepresentationError` when every row of ``x`` equals the first one.

    Rows count as equal when no entry differs from the first row's by more than a few rounding
    units of the largest magnitude in its block of features. The scan goes over blocks of
    features and stops at the first block that varies, so a normal representation costs one small
    block; only a constant one is read through.

    Args:
        x: ``[stimuli, features]`` (as returned by :func:`as_matrix`).
        name: what ``x`` is, for the message (``"model features x"``).
        what: the metric's name, for the message.
    """
    n, p = x.shape
    if n < 2:
        return
    tol = _constant_tolerance(x.dtype)
    step = max(1, min(p, (1 << 20) // n))
    for start in range(0, p, step):
        block = x[:, start:start + step]
        first = block[:1]
        spread = (block - first).abs().amax()
        scale = block.abs().amax()
        if not torch.isfinite(spread):
            return  # NaN / inf: the metric's own finiteness check names the rows
        if spread > tol * scale:
            return
    raise ConstantRepresentationError(
        f"{name} is the same for all {n} stimuli (every row identical): it carries no information about "
        f"the stimuli, so {what} is undefined (a silent or saturated layer? features computed before the "
        "stimuli were applied?). Check how the representation was extracted."
    )


def check_cca_dimensions(n: int, p_a: int, p_b: int, what: str, names: tuple[str, str] = ("a", "b")) -> None:
    """Refuse CCA-family scores when the two sides together have at least as many features as stimuli.

    After centring, ``n`` stimuli span ``n - 1`` dimensions, so two representations with ``p_a + p_b
    >= n`` features share at least ``p_a + p_b - n + 1`` directions: that many canonical
    correlations equal 1 whatever the data (independent noise included; with ``p >= n - 1`` on one
    side, all of them do). Below the bound the correlations are still biased upwards when the
    features are not few compared with the stimuli; reduce first (SVCCA, Raghu et al., NeurIPS 2017).

    Raises:
        DegenerateInputError: ``p_a + p_b >= n``.
    """
    if p_a + p_b >= n:
        raise DegenerateInputError(
            f"{what} is degenerate here: {names[0]} has {p_a} features and {names[1]} has {p_b}, together "
            f"{p_a + p_b}, not fewer than the {n} stimuli, so at least {p_a + p_b - n + 1} canonical "
            "correlations equal 1 whatever the data. Reduce the dimensionality first: svcca(x, y, "
            "n_components=k) or truncated_svd / PCA to k dimensions per side with 2 k well below the "
            "number of stimuli, or score more stimuli.",
            flag=f"cca: features >= stimuli ({p_a} + {p_b} features, {n} stimuli)")


def metric_inputs(
    x: Any,
    y: Any,
    *,
    family: str,
    what: str,
    names: tuple[str, str] = ("model features x", "neural responses y"),
) -> tuple[torch.Tensor, torch.Tensor]:
    """The common entry checks of a two-representation metric.

    ``x`` and ``y`` as 2-D tensors (:func:`as_matrix`), the same number of stimuli
    (:func:`check_same_stimuli`), at least the family's minimum of stimuli
    (:func:`check_min_stimuli`) and neither representation constant (:func:`check_not_constant`).
    """
    xm, ym = as_matrix(x, names[0], min_rows=1), as_matrix(y, names[1], min_rows=1)
    check_same_stimuli(xm, ym, names)
    check_min_stimuli(xm.shape[0], family, what)
    check_not_constant(xm, names[0], what)
    check_not_constant(ym, names[1], what)
    return xm, ym
