"""RDM comparison (Spearman, Pearson, Kendall tau-a, cosine), RSA and time-series RSA.

RDMs are compared on their strict upper triangles (the stimulus pairs). Ranks average ties by
default, as ``scipy.stats.rankdata`` and rsatoolbox do; ``ties="ordinal"`` reproduces Huang et al.'s
``argsort(argsort(v))`` ranking, which breaks ties by position (stable order here).
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ._checks import SilentLayerError, check_min_stimuli, metric_inputs
from .rdm import RDMMetric, rdm, upper_triangle

__all__ = [
    "rank",
    "pearson",
    "spearman",
    "kendall_tau_a",
    "compare_rdms",
    "rsa",
    "tsrsa",
    "CompareMethod",
]

CompareMethod = Literal["spearman", "pearson", "kendall_tau_a", "cosine"]
Ties = Literal["average", "ordinal"]


def rank(v: Any, ties: Ties = "average") -> torch.Tensor:
    """Ranks ``1..n`` of a 1-D vector as float64.

    Args:
        v: values (numpy or torch, 1-D).
        ties: ``"average"`` gives tied values the mean of their positions (``scipy.stats.rankdata``);
            ``"ordinal"`` gives distinct ranks in order of appearance (Huang et al.'s double argsort).
    """
    x = upper_triangle(v) if not isinstance(v, torch.Tensor) or v.dim() != 1 else v
    if x.dim() != 1:
        raise ValueError(f"rank expects a 1-D vector, got shape {tuple(x.shape)}")
    n = x.numel()
    if ties == "average" and x.device.type == "cpu":
        return _average_ranks_cpu(x)
    sorted_vals, order = torch.sort(x, stable=True)
    ranks = torch.empty(n, dtype=torch.float64, device=x.device)
    positions = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    if ties == "ordinal":
        ranks[order] = positions
        return ranks
    if ties != "average":
        raise ValueError(f"ties must be 'average' or 'ordinal', got {ties!r}")
    _, group, counts = torch.unique_consecutive(sorted_vals, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)  # last 1-based position of each run
    mean_pos = ends - (counts.to(torch.float64) - 1.0) / 2.0
    ranks[order] = mean_pos[group]
    return ranks


def _square_side(r: Any) -> int | None:
    """The number of stimuli of a square RDM, or None for a condensed vector."""
    shape = tuple(r.shape) if hasattr(r, "shape") else np.shape(r)
    return int(shape[0]) if len(shape) == 2 else None


def _check_pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    # Square RDMs must cover MIN_STIMULI_RSA stimuli; condensed vectors are taken as they are (a
    # bootstrap resample compares an arbitrary subset of pairs), with at least two pairs.
    for r in (a, b):
        n = _square_side(r)
        if n is not None:
            check_min_stimuli(n, "rsa", "an RDM comparison")
    va, vb = upper_triangle(a), upper_triangle(b)
    if va.numel() != vb.numel():
        raise ValueError(
            f"the RDMs compare different numbers of stimulus pairs ({va.numel()} vs {vb.numel()}); "
            "they must be built from the same stimuli"
        )
    if va.numel() < 2:
        raise ValueError("at least two stimulus pairs (three stimuli) are needed to compare RDMs")
    for name, v in (("first", va), ("second", vb)):
        if not torch.isfinite(v).all():
            raise ValueError(f"the {name} RDM holds NaN or infinite dissimilarities")
    return va, vb.to(va.device)


def _average_ranks_cpu(x: torch.Tensor) -> torch.Tensor:
    """Average ranks through numpy's argsort (introsort): tie order does not matter for averaged
    ranks, so no stable sort is needed, and it took 2.2 s against 3.6 s for torch's stable sort on
    6.5 million float64 values (a 3,600-frame RDM; one thread, same run)."""
    a = x.detach().to(torch.float64).numpy()
    n = a.size
    order = np.argsort(a)
    ordered = a[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, n))
    mean_pos = starts + (counts + 1) / 2.0  # 1-based positions start+1 .. start+count, averaged
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_pos, counts)
    return torch.from_numpy(ranks)


def _pearson_vectors(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    ac = a - a.mean()
    bc = b - b.mean()
    na, nb = torch.linalg.vector_norm(ac), torch.linalg.vector_norm(bc)
    for name, nv, v in (("first", na, a), ("second", nb, b)):
        if nv <= 1e-13 * torch.linalg.vector_norm(v) or nv == 0:
            raise SilentLayerError(
                f"the {name} {what} is constant, so its correlation is undefined "
                "(all dissimilarities equal: a silent or saturated layer?)"
            )
    return float((ac @ bc) / (na * nb))


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two RDMs' upper triangles (or of two condensed vectors)."""
    va, vb = _check_pair(a, b)
    return _pearson_vectors(va, vb, "RDM")


def spearman(a: Any, b: Any, ties: Ties = "average") -> float:
    """Spearman correlation of two RDMs' upper triangles: Pearson r of their ranks.

    ``ties="average"`` equals ``scipy.stats.spearmanr`` and rsatoolbox's ``'spearman'``;
    ``ties="ordinal"`` reproduces Huang et al.'s code (no tie averaging).
    """
    va, vb = _check_pair(a, b)
    if ties == "average" and va.device.type == "cpu" and va.numel() >= 1 << 20 and torch.get_num_threads() > 1:
        # numpy's argsort releases the GIL: rank the two long vectors at the same time
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            ra, rb = pool.map(_average_ranks_cpu, (va, vb))
        return _pearson_vectors(ra, rb, "RDM (ranked)")
    return _pearson_vectors(rank(va, ties), rank(vb, ties), "RDM (ranked)")


def _tie_pairs(sorted_values: torch.Tensor) -> int:
    """Number of pairs tied in a sorted vector: sum over runs of t (t - 1) / 2."""
    _, counts = torch.unique_consecutive(sorted_values, return_counts=True)
    c = counts.to(torch.int64)
    return int((c * (c - 1) // 2).sum())


def _strict_inversions(values: torch.Tensor) -> int:
    """Pairs ``i < j`` with ``values[i] > values[j]`` (int64 input), by vectorised merge levels.

    Each level merges sorted blocks of ``width`` into blocks of ``2 * width``: a block-offset key
    makes all left halves one sorted array, so one ``searchsorted`` counts, for every element of a
    right half, the larger elements of its left half. O(n log^2 n), no Python loop over elements.
    """
    n = values.numel()
    if n < 2:
        return 0
    dense = torch.unique(values, return_inverse=True)[1].to(torch.int64)  # 0..n-1
    pos = torch.arange(n, device=values.device)
    keys = dense
    total = 0
    width = 1
    while width < n:
        block = pos // (2 * width)
        in_right = ((pos // width) % 2) == 1
        key = block * n + keys
        left = key[~in_right]  # sorted: blocks in order, each left half sorted at this level
        right = key[in_right]
        right_block = block[in_right]
        # elements of the same block's left half that are strictly greater than each right element
        left_end = torch.searchsorted(left, (right_block + 1) * n, right=False)
        not_greater = torch.searchsorted(left, right, right=True)
        total += int((left_end - not_greater).sum())
        keys = torch.sort(key).values - block * n  # merge: sort within each 2*width block
        width *= 2
    return total


def kendall_tau_a(a: Any, b: Any) -> float:
    """Kendall's tau-a of two RDMs' upper triangles: (concordant - discordant) / (n (n - 1) / 2).

    Tau-a does not correct for ties (unlike ``scipy.stats.kendalltau``'s default tau-b); it is the
    comparison Nili et al. (2014) recommend for models that predict tied dissimilarities.
    Computed exactly in O(n log^2 n) (n = stimulus pairs), so TSRSA-sized RDMs are feasible.
    """
    va, vb = _check_pair(a, b)
    n = va.numel()
    n0 = n * (n - 1) // 2
    # Sort lexicographically by (a, b): stable sort by b, then stable sort by a.
    ob = torch.sort(vb, stable=True).indices
    oa = torch.sort(va[ob], stable=True).indices
    order = ob[oa]
    sa, sb = va[order], vb[order]
    ties_a = _tie_pairs(sa)
    ties_b = _tie_pairs(torch.sort(vb).values)
    # pairs tied in both: runs of equal (a, b) in the lexicographic order
    same = torch.ones(n, dtype=torch.bool, device=va.device)
    same[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    run_id = torch.cumsum(same.to(torch.int64), 0)
    ties_ab = _tie_pairs(run_id)
    # With a sorted and ties in a ordered by b, the discordant pairs are the strict inversions of b.
    discordant = _strict_inversions(sb)
    con_minus_dis = n0 - ties_a - ties_b + ties_ab - 2 * discordant
    if ties_a == n0 or ties_b == n0:
        raise SilentLayerError("an RDM is constant, so Kendall's tau-a is undefined")
    return con_minus_dis / n0


def _cosine(a: Any, b: Any) -> float:
    va, vb = _check_pair(a, b)
    na, nb = torch.linalg.vector_norm(va), torch.linalg.vector_norm(vb)
    if na == 0 or nb == 0:
        raise SilentLayerError("an RDM is all zeros, so its cosine similarity is undefined")
    return float((va @ vb) / (na * nb))


def compare_rdms(a: Any, b: Any, method: CompareMethod = "spearman", *, ties: Ties = "average") -> float:
    """Similarity of two RDMs (square ``[n, n]`` or condensed upper triangles).

    Args:
        method: ``"spearman"`` (rank correlation, ``ties`` as in :func:`spearman`), ``"pearson"``,
            ``"kendall_tau_a"`` or ``"cosine"`` (rsatoolbox's ``'cosine'``, uncentred).

    Raises:
        DegenerateInputError: square RDMs of fewer than ``MIN_STIMULI_RSA`` (4) stimuli.
        SilentLayerError: a constant RDM.
    """
    if method == "spearman":
        return spearman(a, b, ties=ties)
    if method == "pearson":
        return pearson(a, b)
    if method == "kendall_tau_a":
        return kendall_tau_a(a, b)
    if method == "cosine":
        return _cosine(a, b)
    raise ValueError(
        f"unknown comparison {method!r}; use 'spearman', 'pearson', 'kendall_tau_a' or 'cosine'"
    )


def rsa(
    x: Any,
    y: Any,
    *,
    rdm_metric: RDMMetric = "correlation",
    compare: CompareMethod = "spearman",
    ties: Ties = "average",
    precision: Literal["float64", "float32"] = "float64",
    device: str | torch.device | None = None,
) -> float:
    """Representational similarity analysis between a model and a neural representation.

    Builds one RDM per matrix (default 1 - Pearson r between stimulus rows) and compares their
    upper triangles (default Spearman with averaged ties; ``ties="ordinal"`` is Huang et al.'s ranking).

    Args:
        x: model features ``[stimuli, features]``.
        y: neural responses ``[stimuli, neurons]``, rows in the same stimulus order.

    Returns:
        The comparison value as a Python float.

    Raises:
        ValueError: different stimulus counts, NaN / infinite values.
        DegenerateInputError: fewer than ``MIN_STIMULI_RSA`` (4) stimuli.
        ConstantRepresentationError: ``x`` or ``y`` is the same for every stimulus.
        SilentLayerError: a constant stimulus row or a constant RDM (instead of a silent NaN).
    """
    xm, ym = metric_inputs(x, y, family="rsa", what="RSA")
    rx = rdm(xm, rdm_metric, precision=precision, device=device)
    ry = rdm(ym, rdm_metric, precision=precision, device=device)
    return compare_rdms(rx, ry, compare, ties=ties)


def tsrsa(
    x: Any,
    y: Any,
    *,
    drop_first: bool = True,
    rdm_metric: RDMMetric = "correlation",
    compare: CompareMethod = "spearman",
    ties: Ties = "average",
    precision: Literal["float64", "float32"] = "float64",
    device: str | torch.device | None = None,
) -> float:
    """Time-series RSA (Huang et al., NeurIPS 2024): RSA with movie frames as the stimuli.

    ``x`` is ``[frames, features]`` (model output per frame, chronological) and ``y`` is
    ``[frames, neurons]``. As in Huang et al.'s code, the first frame is dropped from both (``drop_first``),
    so Movie1's 900 frames give an 899 x 899 RDM; then :func:`rsa` on the remaining frames.
    """
    xm, ym = metric_inputs(x, y, family="rsa", what="TSRSA",
                           names=("model features x (frames)", "neural responses y (frames)"))
    if drop_first:
        xm, ym = xm[1:], ym[1:]
    return rsa(xm, ym, rdm_metric=rdm_metric, compare=compare, ties=ties, precision=precision, device=device)
