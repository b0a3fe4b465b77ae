"""Representational dissimilarity matrices (RDMs) from stimulus x feature matrices.

All RDMs go through the stimuli x stimuli Gram matrix ``G = Z Z^T`` of a suitably transformed
``Z`` (row-centred and for correlation, column-centred for Euclidean distances), accumulated over
chunks of features in float64. Nothing larger than ``stimuli x stimuli`` plus one feature chunk is
ever held, so a ``[3600 x 800,000]`` float32 layer costs no float64 copy of itself.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ._checks import SilentLayerError, as_matrix, check_finite_rows, check_not_constant, resolve_device

__all__ = ["rdm", "gram", "upper_triangle", "square_rdm", "RDMMetric"]

RDMMetric = Literal["correlation", "euclidean", "sqeuclidean", "cosine"]

#: float64 elements per feature chunk (4 MiB: a chunk stays in the L2/L3 caches between its cast,
#: its centring and its product); chunks are cast to float64 one at a time.
_CHUNK_ELEMENTS = 512 * 1024
_MIN_COLUMNS = 8192
_MAX_CHUNK_ELEMENTS = 32 * 1024 * 1024


def _chunk_size(n_rows: int, n_cols: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return chunk_size
    # Cache-sized chunks for few stimuli, and at least _MIN_COLUMNS features per chunk so that the
    # products stay efficient (one thread, 1500 x 20,000: 1.60 s with 873-feature chunks, 1.32 s
    # with 8,192); at most _MAX_CHUNK_ELEMENTS unless there are more stimuli than that allows.
    target = max(_CHUNK_ELEMENTS // max(n_rows, 1), _MIN_COLUMNS)
    target = min(target, max(n_rows, _MAX_CHUNK_ELEMENTS // max(n_rows, 1)))
    return max(1, min(n_cols, target))


def gram(
    x: Any,
    *,
    center: Literal["none", "rows", "columns"] = "none",
    standardize_features: bool = False,
    precision: Literal["float64", "float32"] = "float64",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Stimuli x stimuli Gram matrix ``Z Z^T`` (float64) of a transformed copy ``Z`` of ``x``.

    Args:
        x: ``[stimuli, features]`` (numpy or torch; extra dims are flattened per stimulus).
        center: ``"rows"`` subtracts each stimulus' mean over features (the centring of a Pearson
            correlation between stimulus patterns); ``"columns"`` subtracts each feature's mean over
            stimuli (the centring of CKA / covariance; it leaves Euclidean distances unchanged).
        standardize_features: z-score every feature over stimuli first (population std, no epsilon;
            a constant feature becomes 0). This is Net2Brain's ``"pearson"`` RDM preprocessing.
        precision: ``"float64"`` casts each chunk to float64 before the product (exact to ~1e-15);
            ``"float32"`` multiplies centred float32 chunks and only accumulates in float64: about
            2x faster on CPUs, entries accurate to ~1e-6 relative.
        chunk_size: features per chunk (default: 4 MiB of float64 for few stimuli, at least 8,192
            features, at most 256 MiB unless the stimuli alone need more).
        device: where to compute (default: the input's device).

    Returns:
        ``[stimuli, stimuli]`` float64 tensor on ``device``.
    """
    return _gram_and_row_mean(x, center, standardize_features, precision, chunk_size, device)[0]


def _gram_and_row_mean(
    x: Any, center: str, standardize_features: bool, precision: str, chunk_size: int | None,
    device: str | torch.device | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    xm = as_matrix(x, "x")
    dev = resolve_device(device, x)
    n, p = xm.shape
    step = _chunk_size(n, p, chunk_size)
    work = torch.float64 if precision == "float64" else torch.float32
    if precision not in ("float64", "float32"):
        raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
    if center not in ("none", "rows", "columns"):
        raise ValueError(f"center must be 'none', 'rows' or 'columns', got {center!r}")
    if dev.type == "cpu" and xm.device.type == "cpu" and not standardize_features:
        g, row_mean, symmetric = _gram_cpu(xm.numpy(), step, center, work)
        return _checked(g if symmetric else _mirror(g), xm), row_mean
    row_mean = None
    if center == "rows":
        if standardize_features:
            row_mean = torch.zeros(n, 1, dtype=torch.float64, device=dev)
            for start in range(0, p, step):
                row_mean += _chunk(xm, start, step, dev, True).sum(dim=1, keepdim=True)
            row_mean /= p
        else:
            # float64 sums over small column blocks: torch casts before reducing, so a whole-matrix
            # sum(dtype=float64) would materialise a float64 copy of x
            if xm.device.type == "cpu":
                # numpy's reduction casts in small internal buffers: float64 sums, no copy
                sums = xm.numpy().sum(axis=1, dtype=np.float64, keepdims=True)
                row_mean = torch.from_numpy(sums).to(dev) / p
            else:
                row_mean = torch.zeros(n, 1, dtype=torch.float64, device=dev)
                block = max(1, (1 << 20) // n)
                for start in range(0, p, block):
                    row_mean += xm[:, start:start + block].sum(dim=1, keepdim=True, dtype=torch.float64).to(dev)
                row_mean /= p
    g = torch.zeros(n, n, dtype=torch.float64, device=dev)
    scratch: dict[str, np.ndarray] = {}
    shift = None if row_mean is None else row_mean.to(work)
    storage: torch.Tensor | None = None  # one chunk buffer, reused: no allocation (page faults) per chunk
    for start in range(0, p, step):
        src = xm[:, start:start + step].to(dev)
        if standardize_features:
            z = _chunk(xm, start, step, dev, True)
            z = (z - row_mean if row_mean is not None else z).to(work)
        elif shift is None and center == "none" and src.dtype == work and src.is_contiguous():
            z = src
        else:
            if storage is None:
                storage = torch.empty(n * min(step, p), dtype=work, device=dev)
            z = storage[: src.numel()].view(src.shape)
            # cast by copy_, then centre in place: torch.sub(src, offset, out=z) with mixed dtypes
            # would materialise two chunk-sized temporaries (measured)
            z.copy_(src)
            if shift is not None:
                z.sub_(shift)
            elif center == "columns":
                # Column means in the working precision: an error in them is a translation, which
                # leaves distances and double-centred (CKA) Grams unchanged.
                z.sub_(z.mean(dim=0, keepdim=True))
        _add_self_product(g, z, scratch)
    return _checked(_mirror(g), xm), row_mean


def _mirror(g: torch.Tensor) -> torch.Tensor:
    """The lower triangle mirrored: an exactly symmetric Gram matrix. (The BLAS syrk calls fill one
    triangle only; products on other devices may round ``g_ij`` and ``g_ji`` differently.)"""
    return torch.tril(g) + torch.tril(g, diagonal=-1).T


def _checked(g: torch.Tensor, xm: torch.Tensor) -> torch.Tensor:
    # |g_ij| <= sqrt(g_ii g_jj) for a Gram matrix: a finite diagonal means finite entries
    if not torch.isfinite(g.diagonal()).all():
        check_finite_rows(xm, "x")
        raise ValueError("the Gram matrix overflowed; rescale x (its values are too large)")
    return g


#: below this many stimuli, OpenBLAS's syrk barely uses a second thread (118 x 4,443 chunks: 0.091 s
#: on one thread, 0.075 s on two), so the chunks are shared among Python threads instead
_SPLIT_MAX_ROWS = 1024


def _gram_cpu(
    x: np.ndarray, step: int, center: str, work: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """The CPU path: ``(Z Z^T, row means or None, whether Z Z^T is complete and exactly symmetric)``
    (otherwise only its lower triangle is valid), in numpy + OpenBLAS.

    Casting and centring run as numpy passes into one reused cache-sized buffer per worker, and the
    products as OpenBLAS ``syrk``. torch's OpenMP threads are kept out of the loop: they and
    OpenBLAS's threads spin-wait on the same cores when their calls alternate, which made the cast
    and the centring 5-10x slower (measured on 118 x 200,000). With few stimuli the chunks are
    split among ``torch.get_num_threads()`` Python threads, each with a one-thread BLAS and its own
    accumulator (numpy and BLAS release the GIL).
    """
    n, p = x.shape
    exact = _spike_gram(x, step)
    if exact is not None:
        return (*_centred_exact(*exact, p, center), True)
    groups = _chunk_groups(n, p, step)
    row_mean = None
    if center == "rows":
        # float64 sums; numpy casts in small internal buffers, so no float64 copy of x
        sums = _run_split(lambda g: sum(x[:, s:s + step].sum(axis=1, dtype=np.float64) for s in g), groups)
        row_mean = torch.from_numpy(np.add.reduce(sums) / p).reshape(n, 1)
    shift = None if row_mean is None else row_mean.numpy().astype(np.float64 if work == torch.float64 else np.float32)
    total = _split_products(x, groups, step, shift, center, work)
    return torch.from_numpy(np.ascontiguousarray(total.T)), row_mean, False


def _chunk_groups(n: int, p: int, step: int) -> list[list[int]]:
    """The chunk starts, dealt round-robin to the workers (one worker unless there are few stimuli)."""
    starts = list(range(0, p, step))
    workers = max(1, min(torch.get_num_threads(), len(starts))) if n <= _SPLIT_MAX_ROWS else 1
    return [starts[i::workers] for i in range(workers)]


def _split_products(
    x: np.ndarray, groups: list[list[int]], step: int, shift: np.ndarray | None, center: str, work: torch.dtype,
) -> np.ndarray:
    """``sum z z^T`` over the chunks of ``x`` (one accumulator per group of chunks, summed):
    Fortran-ordered float64 ``[n, n]`` whose upper triangle is valid."""
    n = x.shape[0]

    def accumulate(group: list[int]) -> np.ndarray:
        g = np.zeros((n, n), dtype=np.float64, order="F")
        _accumulate_chunks(g, x, group, step, shift, center, work, {})
        return g

    partial = _run_split(accumulate, groups)
    total = partial[0]
    for other in partial[1:]:
        total += other
    return total


def _spike_gram(x: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x x^T, row sums)``, exact, when ``x`` holds spike counts (non-negative integers); else None.

    0/1 spikes (movie-mode features of spiking layers) go through AND + POPCNT on packed bits
    (:mod:`._bitgram`); other integers below 2**24 through float32 products, which are exact as
    long as every partial sum stays below 2**24 (chunks of at most ``2**24 / max**2`` features,
    accumulated in float64). The scan stops at the first value that is not such an integer, so
    analog features pay almost nothing for the check.
    """
    from . import _bitgram

    found = _bitgram.scan(x)
    if found is None or found.kind == "other":
        return None
    if found.kind == "binary":
        return _bitgram.bit_gram(found.bits).astype(np.float64), found.sums
    columns = (1 << 24) // int(found.top) ** 2
    if columns < 64:
        return None
    n, p = x.shape
    step = min(step, columns)
    g = _split_products(x, _chunk_groups(n, p, step), step, None, "none", torch.float32)
    return np.tril(g.T) + np.tril(g.T, -1).T, found.sums  # syrk filled the upper triangle of g


def _centred_exact(g: np.ndarray, sums: np.ndarray, p: int, center: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Centre an exact (integer-valued) Gram matrix analytically, in float64."""
    row_mean = None
    if center == "rows":
        # (x - m)(x - m)^T = x x^T - s s^T / p, with s the row sums (exact integers)
        s = sums.astype(np.float64)
        g = g - np.outer(s, s) / p
        row_mean = torch.from_numpy(s / p).reshape(-1, 1)
    elif center == "columns":
        r = g.mean(axis=1)
        g = g - (r[:, None] + r[None, :]) + r.mean()  # (r_i + r_j) keeps g exactly symmetric
    return torch.from_numpy(np.ascontiguousarray(g)), row_mean


def _run_split(fn, groups: list[list[int]]) -> list:
    """``[fn(group) for group in groups]``, on one thread each (BLAS at one thread) when several."""
    if len(groups) == 1:
        return [fn(groups[0])]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(len(groups)) as pool:
        return list(pool.map(fn, groups))


def _accumulate_chunks(
    g: np.ndarray, x: np.ndarray, starts: list[int], step: int, shift: np.ndarray | None, center: str,
    work: torch.dtype, scratch: dict[str, np.ndarray],
) -> None:
    """``g += z z^T`` (upper triangle of the Fortran-ordered ``g``) over the chunks ``z`` of ``x``
    that begin at ``starts``, cast to ``work`` and centred as asked."""
    n, p = x.shape
    dtype = np.float64 if work == torch.float64 else np.float32
    flat = np.empty(n * min(step, p), dtype=dtype)
    acc = torch.from_numpy(g.T)  # C-ordered view, the layout _add_self_product expects
    for start in starts:
        src = x[:, start:start + step]
        if shift is None and center == "none" and src.dtype == dtype and src.flags.c_contiguous:
            z = src
        else:
            z = flat[: src.size].reshape(src.shape)
            if shift is not None:
                np.subtract(src, shift, out=z)
            else:
                np.copyto(z, src)
                if center == "columns":
                    # column means in the working precision: an error in them is a translation, which
                    # leaves distances and double-centred (CKA) Grams unchanged
                    z -= z.mean(axis=0, keepdims=True)
        if n <= _SPLIT_MAX_ROWS:
            # numpy's product of z with its transpose is a syrk too, and it releases the GIL (scipy's
            # BLAS wrappers do not), so the workers of _run_split really run in parallel
            g += np.dot(z, z.T)
        else:
            _add_self_product(acc, torch.from_numpy(z), scratch)


def _add_self_product(g: torch.Tensor, z: torch.Tensor, scratch: dict[str, np.ndarray]) -> None:
    """``g += z z^T`` into the float64 accumulator ``g``.

    On the CPU: the BLAS symmetric rank-k update (``syrk``, half the multiply-adds of a general
    product; torch has none) through scipy's BLAS wrappers, zero-copy. float64 chunks are accumulated
    in place into ``g`` (``beta = 1``: no n x n temporary per chunk); float32 chunks go to a reused
    float32 n x n scratch matrix first, then are added in float64. Only one triangle is written
    (the caller mirrors it). Other devices: torch's product.
    """
    if z.device.type != "cpu":
        g += (z @ z.T).to(torch.float64)
        return
    from scipy.linalg import blas

    zt = z.contiguous().numpy().T  # [features, n], Fortran-ordered view: no copy
    g_f = g.numpy().T  # Fortran-ordered view of the accumulator
    if zt.dtype == np.float64:
        blas.dsyrk(1.0, zt, beta=1.0, c=g_f, trans=1, lower=0, overwrite_c=1)
        return
    c = scratch.get("c32")
    if c is None:
        c = scratch["c32"] = np.zeros((g.shape[0], g.shape[0]), dtype=np.float32, order="F")
    blas.ssyrk(1.0, zt, beta=0.0, c=c, trans=1, lower=0, overwrite_c=1)
    g_f += c  # the untouched triangle of c stays zero


def _chunk(xm: torch.Tensor, start: int, step: int, dev: torch.device, standardize: bool) -> torch.Tensor:
    """Columns ``start:start+step`` of ``xm`` as float64 on ``dev`` (z-scored per column if asked)."""
    z = xm[:, start:start + step].to(device=dev, dtype=torch.float64)
    if standardize:
        mu = z.mean(dim=0, keepdim=True)
        sd = z.std(dim=0, unbiased=False, keepdim=True)
        z = torch.where(sd > 0, (z - mu) / torch.where(sd > 0, sd, 1.0), torch.zeros_like(z))
    return z


def _silent_rows(sq_norms: torch.Tensor, raw_sq_norms: torch.Tensor) -> list[int]:
    # A row whose centred energy is at rounding level (1e-20) of its raw energy is constant: the
    # float64 mean subtraction leaves ~1e-32 of c^2 per element of a constant row c.
    return (sq_norms <= 1e-20 * raw_sq_norms).nonzero().flatten().tolist()


def rdm(
    x: Any,
    metric: RDMMetric = "correlation",
    *,
    standardize_features: bool = False,
    precision: Literal["float64", "float32"] = "float64",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Representational dissimilarity matrix between the stimuli (rows) of ``x``.

    Args:
        x: ``[stimuli, features]`` responses (numpy or torch); stimuli in a fixed order.
        metric: ``"correlation"`` (1 - Pearson r between stimulus patterns; rows centred over
            features), ``"euclidean"``, ``"sqeuclidean"`` (squared Euclidean) or ``"cosine"``
            (1 - cosine similarity, no centring).
        standardize_features: z-score each feature over stimuli before the distance (Net2Brain's
            ``"pearson"`` RDM is ``metric="correlation", standardize_features=True``).
        precision, chunk_size, device: see :func:`gram`.

    Returns:
        ``[stimuli, stimuli]`` float64 tensor, symmetric with an exact zero diagonal.

    Raises:
        ConstantRepresentationError: every stimulus has the same features (all rows identical,
            whatever the value): all dissimilarities would be 0 (a subclass of SilentLayerError).
        SilentLayerError: for correlation / cosine, when a stimulus row is constant (zero-norm after
            centring): its dissimilarities are undefined. ``err.rows`` lists those stimuli.
        ValueError: NaN / infinite inputs, fewer than two stimuli.
    """
    x = as_matrix(x, "x")
    check_not_constant(x, "x", "an RDM")
    row_mean = None
    if metric == "correlation":
        g, row_mean = _gram_and_row_mean(x, "rows", standardize_features, precision, chunk_size, device)
    elif metric == "cosine":
        g = gram(x, center="none", standardize_features=standardize_features, precision=precision,
                 chunk_size=chunk_size, device=device)
    elif metric in ("euclidean", "sqeuclidean"):
        # Column centring leaves distances unchanged and removes the cancellation of large means.
        g = gram(x, center="columns", standardize_features=standardize_features, precision=precision,
                 chunk_size=chunk_size, device=device)
    else:
        raise ValueError(
            f"unknown RDM metric {metric!r}; use 'correlation', 'euclidean', 'sqeuclidean' or 'cosine'"
        )
    sq = g.diagonal().clone()
    if metric in ("correlation", "cosine"):
        raw = sq if row_mean is None else sq + row_mean.flatten() ** 2 * _n_features(x)
        silent = _silent_rows(sq, raw)
        if silent:
            what = "constant over features" if metric == "correlation" else "all zero"
            raise SilentLayerError(
                f"stimulus rows {silent[:10]}{' ...' if len(silent) > 10 else ''} are {what}; their "
                f"{metric} dissimilarity is undefined (a silent layer or unit group?). Drop those stimuli, "
                "build this RDM with metric='euclidean', or score with cortexsnn.similarity.score_suite, which "
                "keeps them under a stated rule.",
                rows=silent,
            )
        inv = sq.rsqrt()
        # g_ij * (inv_i * inv_j): exactly symmetric, as g is (in place: no n x n temporaries beyond one)
        out = torch.outer(inv, inv).mul_(g).neg_().add_(1.0)
    else:
        out = (sq[:, None] + sq[None, :]).sub_(g, alpha=2.0).clamp_min_(0.0)
        if metric == "euclidean":
            out.sqrt_()
    out.fill_diagonal_(0.0)
    return out


def _n_features(x: Any) -> int:
    shape = tuple(x.shape) if hasattr(x, "shape") else tuple(as_matrix(x, "x").shape)
    n = 1
    for d in shape[1:]:
        n *= int(d)
    return n


def upper_triangle(rdm_matrix: Any) -> torch.Tensor:
    """Strict upper triangle of a square RDM, row by row (the order of ``scipy``'s ``squareform``).

    A 1-D input is taken to be condensed already and returned as a float64 tensor.
    """
    r = rdm_matrix.detach() if isinstance(rdm_matrix, torch.Tensor) else torch.as_tensor(rdm_matrix)
    if r.dim() == 1:
        return r.to(torch.float64)
    if r.dim() != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"an RDM must be square [n, n] or condensed 1-D, got shape {tuple(r.shape)}")
    n = r.shape[0]
    # a boolean mask (n^2 bytes) selects row by row, as the index pairs of triu_indices would
    # (2 x 8 bytes per entry) at a fraction of the memory traffic
    mask = torch.ones(n, n, dtype=torch.bool, device=r.device).triu_(1)
    return r.to(torch.float64).masked_select(mask)


def square_rdm(condensed: Any) -> torch.Tensor:
    """Inverse of :func:`upper_triangle`: a condensed vector back to a symmetric ``[n, n]`` RDM."""
    v = condensed.detach() if isinstance(condensed, torch.Tensor) else torch.as_tensor(condensed)
    m = v.numel()
    n = int(round((1 + (1 + 8 * m) ** 0.5) / 2))
    if n * (n - 1) // 2 != m:
        raise ValueError(f"{m} values are not the upper triangle of a square matrix")
    out = torch.zeros(n, n, dtype=torch.float64, device=v.device)
    i, j = torch.triu_indices(n, n, offset=1, device=v.device)
    out[i, j] = v.to(torch.float64)
    out[j, i] = v.to(torch.float64)
    return out
