"""Stimulus tensors for feature extraction, built with an explicit, recorded normalisation.

Huang et al. ship preprocessed tensors ``stimulus_{dataset}_224.pt`` (``[N, 3, 224, 224]``) without
saying how they were normalised. Here a stimulus set is built from its images and carries the
recipe with it:

* :func:`stimuli_from_folder` - an image folder (stimuli) or a frame folder (a movie, frames in
  natural name order: ``frame_2`` before ``frame_10``);
* :func:`stimuli_from_array` - images already in memory (``[N, H, W]`` grey or ``[N, H, W, 3]`` /
  ``[N, 3, H, W]``, uint8 0-255 or float 0-1), e.g. the 92-image set or the Allen scenes;
* :func:`load_stimulus_tensor` - Huang et al.'s ``.pt`` tensor (read with ``weights_only=True``; its
  normalisation is recorded as unknown unless you state it);
* :func:`load_stimuli` - any of these by path.

Every image is converted to 3 channels (grey replicated), resized (``resize="crop"``: shorter side
to ``size`` then a centre crop; ``"squash"``: straight to ``size x size``), scaled to ``[0, 1]`` and
normalised with a named preset (``"imagenet"``: the ImageNet mean / std the image models were
trained with; ``"video"``: mean = std = 0.5, the UCF101 models; ``"none"``) or explicit
``(mean, std)``. :attr:`Stimuli.normalization` records all of it for the results file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from cortexsnn.errors import InvalidArgumentError, InvalidTypeError, PathError

__all__ = [
    "Stimuli",
    "NORMALIZATIONS",
    "IMAGE_SUFFIXES",
    "stimuli_from_array",
    "stimuli_from_folder",
    "load_stimulus_tensor",
    "load_stimuli",
    "find_seed_stimulus_file",
]

#: Named normalisations: ``name -> (mean, std)`` per RGB channel (``None``: images in [0, 1]).
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]] | None] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "video": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": None,
}

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

Normalization = str | tuple[Sequence[float], Sequence[float]]
ResizeMode = Literal["crop", "squash"]


@dataclass(frozen=True)
class Stimuli:
    """A stimulus tensor ``[N, 3, H, W]`` (float32, normalised) with ids and the recipe that made it.

    Attributes:
        tensor: the stimuli, in presentation order (frames chronological for a movie).
        ids: one id per stimulus (file names, or indices as strings).
        normalization: ``source``, ``kind`` (``"images"`` / ``"frames"`` / ``"tensor"``), ``size``,
            ``resize``, ``mean`` / ``std`` (or ``"unknown"`` for a tensor read as stored), ``preset``.
    """

    tensor: Tensor
    ids: list[str]
    normalization: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.tensor.shape[0]


def _mean_std(normalization: Normalization) -> tuple[str, tuple[float, ...] | None, tuple[float, ...] | None]:
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise InvalidArgumentError(f"unknown normalization {normalization!r}; choose one of {sorted(NORMALIZATIONS)} "
                             "or give (mean, std)")
        ms = NORMALIZATIONS[normalization]
        return normalization, (None if ms is None else tuple(ms[0])), (None if ms is None else tuple(ms[1]))
    mean, std = normalization
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) not in (1, 3) or len(std) != len(mean):
        raise InvalidArgumentError(f"mean and std need 1 or 3 values each, got {mean} and {std}")
    if min(std) <= 0:
        raise InvalidArgumentError(f"std must be positive, got {std}")
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    return "custom", mean, std


def _to_unit_nchw(images: Any) -> Tensor:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` (C 1 or 3), uint8 or float in [0, 1] ->
    float32 ``[N, 3, H, W]`` in [0, 1]."""
    t = images if isinstance(images, Tensor) else torch.as_tensor(np.asarray(images))
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.dim() == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise InvalidArgumentError(f"images must be [N, H, W], [N, H, W, 1|3] or [N, 1|3, H, W], got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.to(torch.float32) / 255.0
    elif t.is_floating_point():
        t = t.to(torch.float32)
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise InvalidArgumentError("float images must lie in [0, 1] (give uint8 0-255 images, or scale them first)")
    else:
        raise InvalidTypeError(f"images must be uint8 or floating point, got {t.dtype}")
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.contiguous()


def _resize(t: Tensor, size: int | None, mode: ResizeMode) -> Tensor:
    import torch.nn.functional as F

    if size is None:
        return t
    if mode not in ("crop", "squash"):
        raise InvalidArgumentError(f"resize must be 'crop' or 'squash', got {mode!r}")
    h, w = t.shape[-2:]
    if mode == "squash":
        if (h, w) != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return t.clamp(0.0, 1.0)
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[..., top:top + size, left:left + size].clamp(0.0, 1.0).contiguous()


def _normalise(t: Tensor, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> Tensor:
    if mean is None or std is None:
        return t
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (t - m) / s


def stimuli_from_array(images: Any, *, size: int | None = 224, normalization: Normalization = "imagenet",
                       resize: ResizeMode = "crop", ids: Sequence[str] | None = None,
                       source: str = "array", kind: str = "images") -> Stimuli:
    """Stimuli from images in memory (see the module docstring for the accepted layouts).

    Args:
        size: output side in pixels (``None``: keep the size; all images must then share it).
        normalization: ``"imagenet"``, ``"video"``, ``"none"`` or ``(mean, std)``.
        resize: ``"crop"`` (shorter side to ``size``, centre crop) or ``"squash"``.
    """
    preset, mean, std = _mean_std(normalization)
    t = _normalise(_resize(_to_unit_nchw(images), size, resize), mean, std)
    n = t.shape[0]
    if ids is not None and len(ids) != n:
        raise InvalidArgumentError(f"{len(ids)} ids for {n} images")
    record = {"source": source, "kind": kind, "size": size if size is not None else list(t.shape[-2:]),
              "resize": resize if size is not None else "none", "preset": preset,
              "mean": list(mean) if mean else None, "std": list(std) if std else None,
              "scale": "pixel / 255 before normalisation"}
    return Stimuli(t, [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)], record)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def stimuli_from_folder(folder: str | Path, *, size: int | None = 224, normalization: Normalization = "imagenet",
                        resize: ResizeMode = "crop", kind: Literal["images", "frames"] = "images",
                        expected: int | None = None) -> Stimuli:
    """Every image file of ``folder`` (not recursive), in natural name order, as :class:`Stimuli`.

    ``kind="frames"`` marks a movie (the order is then the frame order: name frames so that it is).
    ``expected``: the number of images there must be (a missing file is an error, not a shorter set).
    """
    from PIL import Image

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PathError(f"stimulus folder {folder} does not exist")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: _natural_key(p.name))
    if not files:
        raise PathError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if expected is not None and len(files) != expected:
        raise InvalidArgumentError(f"{folder} holds {len(files)} images, {expected} expected (a missing or extra file?)")
    preset, mean, std = _mean_std(normalization)
    out = []
    for p in files:
        with Image.open(p) as im:
            arr = np.array(im.convert("RGB"), dtype=np.uint8)
        out.append(_normalise(_resize(_to_unit_nchw(arr[None]), size, resize), mean, std)[0])
        if size is None and out[0].shape != out[-1].shape:
            raise InvalidArgumentError(f"{p.name} is {tuple(out[-1].shape[-2:])} px, {out[0].shape[-2:]} expected; give size=")
    record = {"source": str(folder), "kind": kind, "size": size if size is not None else list(out[0].shape[-2:]),
              "resize": resize if size is not None else "none", "preset": preset,
              "mean": list(mean) if mean else None, "std": list(std) if std else None,
              "scale": "pixel / 255 before normalisation", "order": "natural sort of file names"}
    return Stimuli(torch.stack(out), [p.name for p in files], record)


def load_stimulus_tensor(path: str | Path, *, expected: int | None = None,
                         normalization: Normalization | None = None) -> Stimuli:
    """Huang et al.'s stimulus tensor (``stimulus_{dataset}_224.pt``): ``[N, 3, H, W]`` floating point.

    Read with ``torch.load(weights_only=True)`` (no code in the file is run). A dict holding one
    tensor (e.g. under ``"stimulus"``) is accepted. Huang et al.'s code did not record the normalisation: it
    is stored as ``"unknown"`` unless ``normalization`` states what the tensor holds (nothing is
    applied to it either way).

    Raises:
        ValueError: not a 4-D ``[N, 3, H, W]`` floating tensor, non-finite values, or not
            ``expected`` stimuli.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise PathError(f"stimulus tensor {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise InvalidArgumentError(
            f"stimulus tensor {path} cannot be read ({detail}); it is "
            "empty, truncated, or holds objects other than tensors (refused, never unpickled). Save it again with "
            "torch.save(tensor, path)") from exc
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, Tensor)]
        if len(tensors) != 1:
            raise InvalidArgumentError(f"{path} holds a dict with {len(tensors)} tensors; expected one [N, 3, H, W] tensor")
        obj = tensors[0]
    if not isinstance(obj, Tensor):
        raise InvalidArgumentError(f"{path} holds {type(obj).__name__}, not a tensor [N, 3, H, W]")
    if obj.dim() != 4 or obj.shape[1] != 3:
        raise InvalidArgumentError(f"{path} holds a tensor of shape {tuple(obj.shape)}; expected [N, 3, H, W] stimuli")
    if not obj.is_floating_point():
        raise InvalidArgumentError(f"{path} holds a {obj.dtype} tensor; expected normalised floating-point images")
    if not torch.isfinite(obj).all():
        raise InvalidArgumentError(f"{path} holds NaN or infinite values")
    if expected is not None and obj.shape[0] != expected:
        raise InvalidArgumentError(f"{path} holds {obj.shape[0]} stimuli, {expected} expected")
    record: dict[str, Any] = {"source": str(path), "kind": "tensor", "size": list(obj.shape[-2:]), "resize": "as stored"}
    if normalization is None:
        record.update(preset="unknown", mean=None, std=None,
                      note="read as stored; the file does not record its normalisation")
    else:
        preset, mean, std = _mean_std(normalization)
        record.update(preset=preset, mean=list(mean) if mean else None, std=list(std) if std else None,
                      note="read as stored; normalisation as stated by the user")
    return Stimuli(obj.to(torch.float32).contiguous(), [str(i) for i in range(obj.shape[0])], record)


def find_seed_stimulus_file(directory: str | Path, dataset: str, size: int = 224) -> Path | None:
    """``{directory}/stimulus_{dataset}_{size}.pt`` if it exists (Huang et al.'s naming), else ``None``."""
    p = Path(directory).expanduser() / f"stimulus_{dataset}_{size}.pt"
    return p if p.is_file() else None


def load_stimuli(path: str | Path, *, size: int | None = 224, normalization: Normalization = "imagenet",
                 resize: ResizeMode = "crop", kind: Literal["images", "frames"] = "images",
                 expected: int | None = None) -> Stimuli:
    """Stimuli from a ``.pt`` tensor, a ``.npy`` image array or an image / frame folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        return stimuli_from_folder(p, size=size, normalization=normalization, resize=resize, kind=kind,
                                   expected=expected)
    if not p.exists():
        raise PathError(f"stimuli {p} do not exist")
    if p.suffix == ".pt":
        return load_stimulus_tensor(p, expected=expected)
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
        if expected is not None and arr.shape[0] != expected:
            raise InvalidArgumentError(f"{p} holds {arr.shape[0]} images, {expected} expected")
        return stimuli_from_array(arr, size=size, normalization=normalization, resize=resize, source=str(p), kind=kind)
    raise InvalidArgumentError(f"unknown stimulus format {p.suffix!r} of {p}; give a folder of images, a .pt tensor or a .npy array")
