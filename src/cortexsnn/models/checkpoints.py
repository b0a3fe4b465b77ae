"""Loading the weights users already have, safely, into the zoo; safetensors export and import.

* :func:`read_checkpoint` reads a seed training checkpoint (``{model, optimizer, lr_scheduler,
  epoch, args, ...}`` with an ``argparse.Namespace`` inside) or a plain state dict with
  ``torch.load(weights_only=True)``; the only class allowed besides tensors and containers is
  ``argparse.Namespace``. Nothing else is ever unpickled.
* :func:`convert_state_dict` maps the three SEW-ResNet key layouts found in the wild (torchvision /
  SpikingJelly, the original SEW release with ``SeqToANNContainer.module``, and the later
  ``name.0`` / ``name.1`` containers) and DataParallel's ``module.`` prefix to ours.
* :func:`load_weights` does both and loads into a model, failing with the missing and unexpected
  keys listed.
* :func:`save_safetensors` / :func:`load_safetensors`: our own format for sharing weights.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.checkpoint import describe_exception

__all__ = [
    "CheckpointLayoutError",
    "CheckpointMissingError",
    "read_checkpoint",
    "extract_state_dict",
    "detect_layout",
    "convert_state_dict",
    "load_weights",
    "save_safetensors",
    "load_safetensors",
]


class CheckpointLayoutError(CortexSNNError, RuntimeError):
    """Weights that do not fit the model (another architecture, unknown key layout), or an unreadable file."""


class CheckpointMissingError(CortexSNNError, FileNotFoundError):
    """A weights file that does not exist."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``.pth`` checkpoint without unpickling arbitrary objects."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointMissingError(
            f"checkpoint {file} {'is a folder, not a file' if file.is_dir() else 'does not exist'}; check the path")
    if file.stat().st_size == 0:
        raise CheckpointLayoutError(f"checkpoint {file} is empty (0 bytes; an interrupted copy?); use another copy "
                                    "of the weights")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            record = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointLayoutError(
            f"{file} cannot be read safely ({describe_exception(exc, 300)}). It is truncated or corrupt, or needs "
            "classes other than tensors, containers and argparse.Namespace: such a file is refused rather than "
            "unpickled. Re-save its state dict with torch.save(model.state_dict(), ...)."
        ) from exc
    if not isinstance(record, dict):
        raise CheckpointLayoutError(f"{file} holds a {type(record).__name__}, not a dict of weights")
    return record


def extract_state_dict(record: Mapping[str, Any], prefer_ema: bool = False) -> dict[str, Tensor]:
    """The model weights of a checkpoint dict: ``model`` (or ``model_ema``), ``state_dict``, or the dict itself."""
    for key in (("model_ema", "model") if prefer_ema else ("model", "state_dict", "model_state_dict")):
        if isinstance(record.get(key), Mapping):
            record = record[key]
            break
    weights = {k: v for k, v in record.items() if isinstance(v, Tensor)}
    if not weights:
        raise CheckpointLayoutError("the checkpoint holds no tensors under 'model', 'state_dict' or at its top level")
    return weights


_ORIGINAL_SEW = re.compile(r"\.module\.[01]\.")
_CONTAINER = re.compile(r"(^|\.)(conv\d)\.[01]\.")


def detect_layout(state_dict: Mapping[str, Tensor]) -> str:
    """``"torchvision"``, ``"sew-original"`` (``.module.0``) or ``"sew-container"`` (``conv1.0``)."""
    keys = list(state_dict)
    if any(_ORIGINAL_SEW.search(k) for k in keys):
        return "sew-original"
    if any(_CONTAINER.search(k) for k in keys):
        return "sew-container"
    return "torchvision"


def _map_container_key(key: str, marker: str) -> str:
    # convN<marker>0.* -> convN.*, convN<marker>1.* -> bnN.*
    key = re.sub(rf"(^|\.)conv(\d){re.escape(marker)}0\.", r"\1conv\2.", key)
    key = re.sub(rf"(^|\.)conv(\d){re.escape(marker)}1\.", r"\1bn\2.", key)
    # downsample.0<marker>{0,1}.* -> downsample.{0,1}.*
    key = re.sub(rf"downsample\.0{re.escape(marker)}([01])\.", r"downsample.\1.", key)
    return key


def convert_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map any supported layout (and a ``module.`` prefix) to the zoo's torchvision-style keys."""
    items = dict(state_dict)
    if items and all(k.startswith("module.") for k in items):
        items = {k[len("module."):]: v for k, v in items.items()}
    layout = detect_layout(items)
    if layout == "torchvision":
        return items
    marker = ".module." if layout == "sew-original" else "."
    return {_map_container_key(k, marker): v for k, v in items.items()}


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, Tensor], strict: bool = True,
                 skip: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Load a checkpoint file or state dict into ``model``, mapping key layouts automatically.

    ``skip`` drops keys with these prefixes (e.g. ``("fc.",)`` to fine-tune on other classes).
    Raises :class:`CheckpointLayoutError` listing missing / unexpected / mis-shaped keys.
    """
    record = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source
    weights = convert_state_dict(extract_state_dict(record))
    if skip:
        weights = {k: v for k, v in weights.items() if not k.startswith(skip)}
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not (skip and k.startswith(skip))]
    unexpected = [k for k in weights if k not in own]
    misshaped = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in weights if k in own and weights[k].shape != own[k].shape]
    if misshaped or (strict and (missing or unexpected)):
        raise CheckpointLayoutError(
            f"the weights do not fit {type(model).__name__} (a checkpoint of another architecture?):\n"
            + _listing("missing keys", missing) + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", misshaped)
        )
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)
    return {"missing": missing, "unexpected": unexpected}


def _listing(title: str, keys: list[str], limit: int = 12) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"  {title} ({len(keys)}): {shown}\n"


def save_safetensors(model: nn.Module, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write the model's state dict as safetensors (atomically), with JSON-able ``metadata``."""
    from safetensors.torch import save

    from cortexsnn import __version__
    from cortexsnn.utils.io import atomic_write_bytes

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": "cortexsnn", "cortexsnn_version": __version__, "architecture": type(model).__name__}
    meta.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in (metadata or {}).items()})
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_safetensors(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> dict[str, str]:
    """Load safetensors weights into ``model``; returns the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    file = Path(path)
    if not file.is_file():
        raise CheckpointMissingError(f"weights file {file} does not exist; check the path")
    try:
        weights = load_file(str(file))
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:
        raise CheckpointLayoutError(f"{file} is not a readable safetensors file ({exc})") from exc
    load_weights(model, weights, strict=strict)
    return metadata
