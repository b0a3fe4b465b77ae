"""Saving and loading a converted network: safetensors of its state and a JSON description.

A converted network is its ANN plus per-neuron thresholds, biases and burst sizes. The file holds
the whole state dict (the folded weights included) and, as metadata, how the network was converted
and from which ANN; :func:`load_converted` rebuilds the structure from the same ANN architecture
and loads the state, so nothing is unpickled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from cortexsnn.conversion.convert import ConversionConfig, build_snn
from cortexsnn.conversion.errors import ConversionError
from cortexsnn.conversion.network import ConvertedSNN

__all__ = ["save_converted", "load_converted", "read_converted_metadata"]

_FORMAT = "cortexsnn.converted/1"


def save_converted(snn: ConvertedSNN, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``snn`` (state dict + ``snn.info`` + ``extra``) to a safetensors file, atomically (0644)."""
    from safetensors.torch import save

    from cortexsnn.utils.io import atomic_write_bytes

    tensors = {k: v.detach().contiguous().cpu() for k, v in snn.state_dict().items()}
    meta = {"format": _FORMAT, "info": json.dumps(snn.info), "extra": json.dumps(dict(extra or {}))}
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def read_converted_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """``{"info": ..., "extra": ...}`` of a file written by :func:`save_converted`."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"converted network {file} does not exist")
    try:
        with safe_open(str(file), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as exc:
        raise ConversionError(f"{file} is not a readable safetensors file ({exc})") from exc
    if meta.get("format") != _FORMAT:
        raise ConversionError(f"{file} is not a converted network written by cortexsnn (format {meta.get('format')!r})")
    return {"info": json.loads(meta["info"]), "extra": json.loads(meta.get("extra", "{}"))}


def load_converted(path: str | os.PathLike, model: nn.Module) -> ConvertedSNN:
    """Rebuild the converted network saved at ``path`` from ``model`` (an ANN of the same architecture;
    its weights are replaced by the saved, folded ones)."""
    from safetensors.torch import load_file

    meta = read_converted_metadata(path)
    info = meta["info"]
    config = ConversionConfig(**info["config"])
    example = torch.zeros(1, *info["input_shape"])
    snn = build_snn(model, example, config)
    state = load_file(str(path))
    own = snn.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or misshaped:
        raise ConversionError(f"{path} does not fit a conversion of {type(model).__name__} (another architecture?): "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, mis-shaped {misshaped[:5]}")
    snn.load_state_dict(state)
    snn.info = info
    return snn
