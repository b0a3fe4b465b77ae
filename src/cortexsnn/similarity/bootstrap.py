"""Bootstrap confidence intervals of many RDM comparisons at once.

:func:`cortexsnn.similarity.ceilings.bootstrap_ci` resamples stimuli for *one* pair of RDMs. Scoring
every layer of several models against several areas repeats the same resampling for each pair and
ranks the same neural vectors again and again; :func:`bootstrap_rdm_cis` draws each bootstrap
sample once and compares every model RDM with every target RDM in one ranked matrix product.
It uses the same random draws, the same pairs (pairs of a stimulus with its own copy excluded)
and the same percentile interval as ``bootstrap_ci``, so for one pair of RDMs the bounds are
identical (tested); for a target given as a set of RDMs (subjects) the statistic is the mean over
the set of the comparisons with each, the score that
:func:`cortexsnn.similarity.scoring.score_features` reports for such an area.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from scipy.stats import rankdata

from cortexsnn.errors import InvalidArgumentError

from .rdm import square_rdm, upper_triangle

__all__ = ["bootstrap_rdm_cis", "bootstrap_rdm_samples"]


def _square_stack(x: Any, what: str) -> np.ndarray:
    """``[k, n, n]`` float64 from one RDM (square or condensed) or a stack of square RDMs."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        if a.shape[1] != a.shape[2]:
            raise ValueError(f"{what}: a stack of RDMs must be [k, n, n], got shape {a.shape}")
        return a
    if a.ndim in (1, 2):
        return square_rdm(upper_triangle(torch.as_tensor(a))).cpu().numpy()[None]
    raise ValueError(f"{what}: expected an RDM [n, n], a condensed RDM or a stack [k, n, n], got shape {a.shape}")


def bootstrap_rdm_cis(
    model_rdms: Any,
    targets: Sequence[Any],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    method: Literal["spearman", "pearson"] = "spearman",
    ties: Literal["average", "ordinal"] = "average",
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals over stimuli of every model RDM against every target.

    The quantiles of :func:`bootstrap_rdm_samples` (same arguments): ``(low, high)``, each
    ``[L, A]`` float64. A bound computed over NaN replicates is NaN (never silently dropped).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = bootstrap_rdm_samples(model_rdms, targets, n_boot=n_boot, random_state=random_state, method=method,
                                   ties=ties)
    tail = (1.0 - confidence) / 2.0
    return np.quantile(values, tail, axis=0), np.quantile(values, 1.0 - tail, axis=0)


def bootstrap_rdm_samples(
    model_rdms: Any,
    targets: Sequence[Any],
    *,
    n_boot: int = 1000,
    random_state: int = 0,
    method: Literal["spearman", "pearson"] = "spearman",
    ties: Literal["average", "ordinal"] = "average",
) -> np.ndarray:
    """Bootstrap replicates over stimuli of every model RDM compared with every target.

    One resampling serves every pair, so the replicates of two rows are paired: the difference of
    two models' rows is the bootstrap distribution of their score difference.

    Each replicate draws ``n`` stimuli with replacement (``numpy.random.default_rng(random_state)``,
    one ``integers(0, n, n)`` draw per replicate, as :func:`~cortexsnn.similarity.ceilings.bootstrap_ci`),
    keeps the pairs of distinct draws and compares the resampled upper triangles.

    Args:
        model_rdms: ``[L, n, n]`` RDMs (e.g. one per layer; numpy or torch).
        targets: ``A`` targets, each one RDM ``[n, n]`` or a set ``[S, n, n]`` (e.g. subjects), whose
            statistic is the mean over its ``S`` comparisons.
        method: ``"spearman"`` (Pearson r of ranks) or ``"pearson"``.
        ties: ranking of ``"spearman"``: ``"average"`` (scipy, rsatoolbox) or ``"ordinal"`` (Huang et al.'s code).

    Returns:
        ``[n_boot, L, A]`` float64. A replicate in which a resampled RDM is constant gives NaN.
    """
    models = _square_stack(model_rdms, "model_rdms")
    if models.shape[0] == 0:
        raise ValueError("model_rdms holds no RDMs")
    stacks = [_square_stack(t, f"target {k}") for k, t in enumerate(targets)]
    if not stacks:
        raise ValueError("no targets given")
    n = models.shape[1]
    for k, s in enumerate(stacks):
        if s.shape[1] != n:
            raise ValueError(f"target {k} has {s.shape[1]} stimuli, the model RDMs {n}; they must share the stimuli")
    if n < 3:
        raise ValueError("at least three stimuli are needed to compare RDMs")
    if n_boot < 1:
        raise InvalidArgumentError(f"n_boot must be >= 1 (bootstrap replicates; 1000 is usual), got {n_boot}")
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    if ties not in ("average", "ordinal"):
        raise ValueError(f"ties must be 'average' or 'ordinal', got {ties!r}")
    for what, a in (("model_rdms", models), *((f"target {k}", s) for k, s in enumerate(stacks))):
        if not np.isfinite(a).all():
            raise ValueError(f"{what} holds NaN or infinite dissimilarities")

    every = np.concatenate([models, *stacks])  # [rows = L + sum S, n, n]
    n_models, rows = models.shape[0], every.shape[0]
    bounds = np.cumsum([0] + [s.shape[0] for s in stacks])
    iu0, iu1 = np.triu_indices(n, k=1)
    condensed = every[:, iu0, iu1]  # [rows, M]
    n_pairs = condensed.shape[1]
    pair = np.zeros((n, n), dtype=np.int64)  # pair index of (a, b) and (b, a) in the condensed order
    pair[iu0, iu1] = np.arange(n_pairs)
    pair = pair + pair.T
    fast_ranks = method == "spearman" and ties == "average"
    if fast_ranks:
        # A resample only repeats original pairs, so its average ranks follow from counting each
        # original value's copies: rank = (copies of smaller values) + (copies of this value + 1) / 2.
        dense = np.stack([np.unique(c, return_inverse=True)[1].ravel() for c in condensed])  # [rows, M]
        offsets = (np.arange(rows) * n_pairs)[:, None]
    rng = np.random.default_rng(random_state)
    values = np.empty((n_boot, n_models, len(stacks)))
    with np.errstate(invalid="ignore", divide="ignore"):
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            i, j = idx[iu0], idx[iu1]
            keep = i != j
            picked = pair[i[keep], j[keep]]  # [pairs kept]
            if fast_ranks:
                d = dense[:, picked] + offsets  # [rows, pairs]
                counts = np.bincount(d.ravel(), minlength=rows * n_pairs).reshape(rows, n_pairs)
                below = np.cumsum(counts, axis=1) - counts
                v = (below + (counts + 1) / 2.0).ravel()[d]
            else:
                v = condensed[:, picked]
                if method == "spearman":
                    v = rankdata(v, method=ties, axis=1)
            v = v - v.mean(axis=1, keepdims=True)
            v = v / np.linalg.norm(v, axis=1, keepdims=True)
            r = v[:n_models] @ v[n_models:].T  # [L, sum S]
            for a in range(len(stacks)):
                values[b, :, a] = r[:, bounds[a]:bounds[a + 1]].mean(axis=1)
    return values
