"""Input validation shared by the similarity metrics.

Every public metric passes its inputs through :func:`as_matrix` (numpy arrays or torch tensors in, a
2-D torch tensor out, without copying when possible) and :func:`check_same_stimuli`. Problems that
would otherwise surface as a silent ``NaN`` score raise an exception that says what was wrong.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cortexsnn.errors import CortexSNNError

__all__ = ["SilentLayerError", "as_matrix", "as_vector", "check_same_stimuli", "resolve_device"]


class SilentLayerError(CortexSNNError, ValueError):
    """A representation carries no usable signal (constant rows, a constant RDM, a silent layer).

    Raised instead of returning ``NaN``: a correlation with a constant pattern is undefined, and
    averaging such a ``NaN`` away would hide a dead layer. ``rows`` holds the offending row indices
    where they are known.
    """

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows or []


def resolve_device(device: str | torch.device | None, *tensors: Any) -> torch.device:
    """The device to compute on: ``device`` if given, else that of the first torch input, else CPU."""
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


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
        raise ValueError(f"{name} must be a [stimuli x features] matrix, got shape {tuple(t.shape)}")
    if t.dim() > 2:
        t = t.reshape(t.shape[0], -1)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} has {t.shape[0]} stimuli (rows); at least {min_rows} are needed")
    if t.shape[1] < 1:
        raise ValueError(f"{name} has no features (shape {tuple(t.shape)})")
    return t


def as_vector(x: Any, name: str) -> torch.Tensor:
    """``x`` as a 1-D float64 tensor (e.g. an RDM's condensed upper triangle)."""
    t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def check_same_stimuli(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("X", "Y")) -> None:
    """Raise if the two matrices do not have the same number of stimuli (rows)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"stimulus counts differ: {names[0]} has {x.shape[0]} rows, {names[1]} has {y.shape[0]}; "
            "both must hold the same stimuli in the same order"
        )


def check_finite_rows(x: torch.Tensor, name: str) -> None:
    """Raise a ``ValueError`` naming the rows of ``x`` that hold NaN or infinite values."""
    bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        shown = bad[:10]
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise ValueError(
            f"{name} holds NaN or infinite values in rows {shown}{more}; remove or impute them first"
        )
