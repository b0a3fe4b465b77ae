"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A cortexsnn checkpoint is a dict of plain containers, tensors, numbers and strings::

    {"format": "cortexsnn-checkpoint", "version": 1, "cortexsnn_version": "...",
     "kind": "iir_mlp", "model": state_dict, "optimizer": ..., "epoch": 3, "config": {...}, ...}

``kind`` names the model family, so that a checkpoint of another model is refused with a clear
message instead of a confusing key mismatch. Loading uses ``torch.load(weights_only=True)``: only
tensors and primitive containers are accepted, never arbitrary classes.
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import atomic_write_bytes

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "cortexsnn-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(CortexSNNError, RuntimeError):
    """A checkpoint is missing, damaged, of an unknown format or of another model."""


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (an existing file is replaced only on success)."""
    from cortexsnn import __version__

    if "kind" not in payload:
        raise ValueError("checkpoint payload needs a 'kind' entry naming the model family")
    record = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "cortexsnn_version": __version__,
        **payload,
    }
    buffer = io.BytesIO()
    torch.save(record, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` when the file is missing, truncated or corrupt, contains
    objects other than tensors and plain containers, is not a cortexsnn checkpoint, or holds a
    model of another ``kind`` than the one asked for.
    """
    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {file} {what}; check the path")
    if file.stat().st_size == 0:
        raise CheckpointError(
            f"checkpoint {file} is empty (0 bytes; an interrupted copy or a full disk?); "
            "use another checkpoint (e.g. checkpoint_best.pt or an earlier copy)"
        )
    try:
        record = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(
            f"checkpoint {file} cannot be read ({describe_exception(exc)}); "
            "it is truncated, corrupt, or holds objects other than tensors and plain containers. "
            "Use another checkpoint (e.g. checkpoint_best.pt or an earlier copy)."
        ) from exc
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{file} is not a cortexsnn checkpoint (no 'format': '{CHECKPOINT_FORMAT}' entry); "
            "for other libraries' checkpoints use cortexsnn.models.checkpoints"
        )
    if kind is not None and record.get("kind") != kind:
        raise CheckpointError(
            f"checkpoint {file} holds a {record.get('kind')!r} model, but a {kind!r} model was asked for; "
            "pass a checkpoint of the same model"
        )
    return record


def describe_exception(exc: BaseException, limit: int = 200) -> str:
    """``"TypeName: first line of the message"`` (the type alone for an empty message), for error messages."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) generators, as plain data."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _python_state_to_plain(random.getstate()),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]
