"""Noise ceilings and bootstrap confidence intervals.

* :func:`split_half_neuron_ceiling` - SNN-Neural-Similarity-Movie's ceiling: split an area's neurons into two random
  halves, (TS)RSA between the halves, mean and standard error over splits. No Spearman-Brown
  correction (as Huang et al.'s code), so it is the reliability of *half* the neurons.
* :func:`split_half_trial_ceiling` - the other common choice: split the *trials* in halves, RSA
  between the half-averaged responses, Spearman-Brown corrected to the full number of trials.
* :func:`rdm_set_ceiling` - leave-one-subject-out lower and upper bounds for a set of RDMs
  (Nili et al. 2014), with rsatoolbox's pooling or Net2Brain's plain mean and squared correlations.
* :func:`bootstrap_ci` - percentile confidence interval of an RDM comparison, resampling stimuli.
"""
from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np
import torch

from cortexsnn.errors import InvalidArgumentError

from ._checks import as_matrix, check_min_stimuli
from .compare import CompareMethod, Ties, compare_rdms, rank, rsa
from .rdm import RDMMetric, square_rdm, upper_triangle

__all__ = ["split_half_neuron_ceiling", "split_half_trial_ceiling", "rdm_set_ceiling", "bootstrap_ci", "spearman_brown"]


def spearman_brown(r: float | torch.Tensor, factor: float = 2.0) -> float | torch.Tensor:
    """Spearman-Brown prophecy: reliability of ``factor`` times the data, ``k r / (1 + (k - 1) r)``."""
    return factor * r / (1.0 + (factor - 1.0) * r)


def split_half_neuron_ceiling(
    y: Any,
    *,
    n_splits: int = 100,
    random_state: int = 2023,
    drop_first: bool = True,
    rdm_metric: RDMMetric = "correlation",
    compare: CompareMethod = "spearman",
    ties: Ties = "average",
) -> tuple[float, float]:
    """SNN-Neural-Similarity-Movie's neural ceiling of one area: ``(mean, std / sqrt(n_splits))`` over random neuron splits.

    Each split permutes the neurons (``numpy.random.default_rng(random_state)``), takes the first
    ``N // 2`` as one half and the rest as the other, drops the first frame (``drop_first``, as
    TSRSA does) and compares the two halves' RDMs. Huang et al.'s code used seed 2023 as well, but its exact
    random draws are not reproducible here; the estimator is the same. The std is the population
    std (``ddof=0``), as ``numpy.std``.
    """
    ym = as_matrix(y, "neural responses y", min_rows=3)
    if ym.shape[1] < 2:
        raise ValueError("a split-half ceiling needs at least 2 neurons")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if drop_first:
        ym = ym[1:]
    rng = np.random.default_rng(random_state)
    n = ym.shape[1]
    values = []
    for _ in range(n_splits):
        perm = torch.as_tensor(rng.permutation(n), device=ym.device)
        half_a, half_b = ym[:, perm[: n // 2]], ym[:, perm[n // 2:]]
        values.append(rsa(half_a, half_b, rdm_metric=rdm_metric, compare=compare, ties=ties))
    v = np.asarray(values)
    return float(v.mean()), float(v.std() / np.sqrt(n_splits))


def split_half_trial_ceiling(
    trials: Any,
    *,
    n_splits: int = 100,
    random_state: int = 0,
    rdm_metric: RDMMetric = "correlation",
    compare: CompareMethod = "spearman",
    ties: Ties = "average",
) -> tuple[float, float]:
    """Trial split-half reliability of an RDM, Spearman-Brown corrected: ``(mean, std / sqrt(n_splits))``.

    Args:
        trials: ``[trials, stimuli, neurons]`` responses. Each split averages a random half of the
            trials (``n_trials // 2``) and the rest, builds both RDMs, compares them (r) and corrects
            to the full trial count with ``2 r / (1 + r)``; the corrected values are averaged.
    """
    t = trials.detach() if isinstance(trials, torch.Tensor) else torch.as_tensor(np.asarray(trials))
    if t.dim() != 3:
        raise ValueError(f"trials must be [trials, stimuli, neurons], got shape {tuple(t.shape)}")
    if t.shape[0] < 2:
        raise ValueError("a trial split-half ceiling needs at least 2 trials")
    t = t.to(torch.float64)
    rng = np.random.default_rng(random_state)
    k = t.shape[0]
    values = []
    for _ in range(n_splits):
        perm = torch.as_tensor(rng.permutation(k))
        a, b = t[perm[: k // 2]].mean(dim=0), t[perm[k // 2:]].mean(dim=0)
        r = rsa(a, b, rdm_metric=rdm_metric, compare=compare, ties=ties)
        values.append(spearman_brown(r))
    v = np.asarray(values)
    return float(v.mean()), float(v.std() / np.sqrt(n_splits))


def _pool(vectors: torch.Tensor, method: CompareMethod, pooling: str) -> torch.Tensor:
    """Average RDM vectors; ``pooling="rsatoolbox"`` first maps each to the comparison's own scale."""
    if pooling == "mean":
        return vectors.mean(dim=0)
    if pooling != "rsatoolbox":
        raise ValueError(f"pooling must be 'rsatoolbox' or 'mean', got {pooling!r}")
    if method in ("spearman", "kendall_tau_a"):
        return torch.stack([rank(v) for v in vectors]).mean(dim=0)
    if method == "pearson":
        c = vectors - vectors.mean(dim=1, keepdim=True)
        c = c / c.std(dim=1, unbiased=False, keepdim=True)
        m = c.mean(dim=0)
        return m - m.min()
    if method == "cosine":
        return (vectors / vectors.pow(2).mean(dim=1, keepdim=True).sqrt()).mean(dim=0)
    raise ValueError(f"unknown comparison {method!r}")


def rdm_set_ceiling(
    rdms: Any,
    *,
    method: CompareMethod = "spearman",
    pooling: Literal["rsatoolbox", "mean"] = "rsatoolbox",
    squared: bool = False,
) -> tuple[float, float]:
    """Leave-one-subject-out noise ceiling of a set of RDMs: ``(lower, upper)``.

    Lower bound: each subject's RDM against the pooled RDM of the *other* subjects; upper bound:
    against the pooled RDM of *all* subjects; both averaged over subjects (Nili et al. 2014).

    Args:
        rdms: ``[subjects, n, n]`` square RDMs or ``[subjects, pairs]`` condensed vectors.
        method: the comparison used to score models against these RDMs.
        pooling: ``"rsatoolbox"`` (rank-transform before averaging for Spearman / tau-a, z-score for
            Pearson, RMS-normalise for cosine; equals ``rsatoolbox.inference.boot_noise_ceiling``) or
            ``"mean"`` (plain average of the RDMs, as Net2Brain).
        squared: square each subject's correlation before averaging (Net2Brain reports R^2;
            ``pooling="mean", squared=True`` reproduces its ``lnc`` / ``unc``).

    Raises:
        DegenerateInputError: RDMs of fewer than ``MIN_STIMULI_RSA`` (4) stimuli.
    """
    r = rdms.detach() if isinstance(rdms, torch.Tensor) else torch.as_tensor(np.asarray(rdms))
    if r.dim() == 3:
        vectors = torch.stack([upper_triangle(m) for m in r])
    elif r.dim() == 2:
        vectors = r.to(torch.float64)
    else:
        raise ValueError(f"rdms must be [subjects, n, n] or [subjects, pairs], got shape {tuple(r.shape)}")
    s = vectors.shape[0]
    if s < 2:
        raise ValueError("a leave-one-subject-out ceiling needs at least 2 subjects' RDMs")
    check_min_stimuli(square_rdm(vectors[0]).shape[0], "rsa", "a noise ceiling of RDMs")
    everyone = _pool(vectors, method, pooling)
    lower, upper = [], []
    keep = torch.ones(s, dtype=torch.bool)
    for i in range(s):
        keep[:] = True
        keep[i] = False
        lo = compare_rdms(_pool(vectors[keep], method, pooling), vectors[i], method)
        up = compare_rdms(everyone, vectors[i], method)
        lower.append(lo * lo if squared else lo)
        upper.append(up * up if squared else up)
    return float(np.mean(lower)), float(np.mean(upper))


def bootstrap_ci(
    rdm_a: Any,
    rdm_b: Any,
    *,
    method: CompareMethod = "spearman",
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    statistic: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap CI over stimuli of an RDM comparison: ``(estimate, low, high)``.

    Each replicate draws ``n`` stimuli with replacement (``numpy.random.default_rng(random_state)``)
    and compares the two sub-RDMs on the pairs of *distinct* draws only (pairs of a stimulus with its
    own copy carry a zero dissimilarity that is not data), as rsatoolbox's bootstrap does.

    Args:
        rdm_a, rdm_b: square ``[n, n]`` RDMs (or condensed) of the same stimuli.
        statistic: optional ``f(vec_a, vec_b) -> float`` replacing ``compare_rdms(., ., method)``.
    """
    ra = square_rdm(upper_triangle(rdm_a))
    rb = square_rdm(upper_triangle(rdm_b))
    if ra.shape != rb.shape:
        raise ValueError(f"RDMs of different sizes: {tuple(ra.shape)} vs {tuple(rb.shape)}")
    check_min_stimuli(ra.shape[0], "rsa", "a bootstrap over stimuli")
    if not 0 < confidence < 1:
        raise InvalidArgumentError(f"confidence must be in (0, 1), got {confidence}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InvalidArgumentError(f"n_boot must be >= 1 (bootstrap replicates; 1000 is usual), got {n_boot!r}")
    stat = statistic or (lambda a, b: compare_rdms(a, b, method))
    n = ra.shape[0]
    estimate = stat(upper_triangle(ra), upper_triangle(rb))
    rng = np.random.default_rng(random_state)
    values = []
    iu = torch.triu_indices(n, n, offset=1)
    for _ in range(n_boot):
        idx = torch.as_tensor(rng.integers(0, n, n))
        i, j = idx[iu[0]], idx[iu[1]]
        distinct = i != j
        values.append(stat(ra[i[distinct], j[distinct]], rb[i[distinct], j[distinct]]))
    v = np.asarray(values)
    tail = (1.0 - confidence) / 2.0
    return float(estimate), float(np.quantile(v, tail)), float(np.quantile(v, 1.0 - tail))
