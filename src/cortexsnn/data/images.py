"""Image classification data for the deep SNNs: ImageNet-layout folders and MNIST.

* ``imagefolder``: ``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg`` read with
  torchvision's :class:`~torchvision.datasets.ImageFolder`; Huang et al.'s augmentations through
  ``torchvision.transforms.v2`` (random resized crop, flip, TrivialAugmentWide / RandAugment /
  AutoAugment, random erasing; resize + centre crop for validation).
* ``mnist``: the IDX files (or the embedded subset) with a held-out validation split of the
  training digits; the test set is kept for the final evaluation.

The training set is wrapped in :class:`SeededSamples`: the random augmentation of sample ``i`` in
epoch ``e`` is drawn from a generator seeded with ``(seed, e, i)``, so it is the same whatever the
number of loader workers and wherever an interrupted run resumes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from cortexsnn.errors import CortexSNNError

__all__ = ["ImageDataError", "ImageData", "SeededSamples", "build_image_data", "IMAGENET_MEAN", "IMAGENET_STD", "mixup_cutmix"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class ImageDataError(CortexSNNError, ValueError):
    """An image folder that cannot be used (no images, a damaged image file, mismatched class folders)."""


@dataclass
class ImageData:
    train: Dataset
    val: Dataset
    test: Dataset | None
    num_classes: int
    in_channels: int
    normalization: dict


class SeededSamples(Dataset):
    """``dataset[i]`` computed under torch's global generator seeded from ``(seed, epoch, i)``.

    The caller's random state is restored afterwards (``torch.random.fork_rng``), so drawing a
    sample never disturbs the training loop's own random numbers. Call :meth:`set_epoch` each epoch.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str):  # classes, targets, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int):
        import numpy as np

        sample_seed = int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1, np.uint64)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            return self.dataset[index]


def _auto_augment(name: str):
    from torchvision.transforms import v2

    if not name:
        return []
    if name == "ta_wide":
        return [v2.TrivialAugmentWide()]
    if name == "ra":
        return [v2.RandAugment()]
    policies = {p.value: p for p in v2.AutoAugmentPolicy}
    if name in policies:
        return [v2.AutoAugment(policies[name])]
    raise ImageDataError(f"unknown auto_augment {name!r}; choose '', 'ta_wide', 'ra' or one of {sorted(policies)}")


def _folder_transforms(image_size: int, val_resize: int, auto_augment: str, random_erase: float):
    from torchvision.transforms import v2

    train = v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(image_size, antialias=True),
        v2.RandomHorizontalFlip(),
        *_auto_augment(auto_augment),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        *([v2.RandomErasing(p=random_erase)] if random_erase > 0 else []),
    ])
    val = v2.Compose([
        v2.ToImage(), v2.Resize(val_resize, antialias=True), v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    return train, val


def _image_folder(root: Path, split: str, transform) -> Dataset:
    from torchvision.datasets import ImageFolder

    folder = root / split
    if not folder.is_dir():
        from cortexsnn.errors import PathError

        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise PathError(f"image folder {folder} {what}; expected the ImageNet layout {root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg")
    try:
        return ImageFolder(str(folder), transform=transform, loader=_load_image)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ImageDataError(f"image folder {folder} holds no usable images ({exc}); put images in one sub-folder per class") from exc


def _load_image(path: str):
    """torchvision's PIL loader (RGB), failing with the file's name when it is damaged or not an image."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            return Image.open(handle).convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        lines = str(exc).strip().splitlines()
        raise ImageDataError(
            f"image {path} cannot be read ({lines[0][:200] if lines else type(exc).__name__}); it is damaged or "
            "not an image: replace it or remove it from the folder"
        ) from exc


def build_image_data(dataset: str, root: str, image_size: int = 224, val_resize: int = 256,
                     auto_augment: str = "", random_erase: float = 0.0, val_fraction: float = 0.1,
                     seed: int = 0, augment: bool = True) -> ImageData:
    """The training, validation (and, for MNIST, test) sets of a config's ``data`` section."""
    if dataset == "imagefolder":
        if not root:
            raise ImageDataError("data.root must name a folder with train/ and val/ sub-folders")
        base = Path(root).expanduser()
        if base.exists() and not base.is_dir():
            from cortexsnn.errors import PathError

            raise PathError(f"data.root {base} is a file, not a folder; give the folder holding train/ and val/")
        train_tf, val_tf = _folder_transforms(image_size, val_resize, auto_augment, random_erase)
        if not augment:
            train_tf = val_tf
        train = _image_folder(base, "train", train_tf)
        val = _image_folder(base, "val", val_tf)
        if train.classes != val.classes:
            raise ImageDataError(f"train/ and val/ of {base} have different class folders ({len(train.classes)} and "
                                 f"{len(val.classes)}); give both the same class sub-folders")
        if len(train.classes) < 2:
            raise ImageDataError(f"{base / 'train'} holds one class folder ({train.classes[0]!r}): every prediction "
                                 "would be right and the accuracy meaningless; give at least two class sub-folders")
        return ImageData(SeededSamples(train, seed), val, None, len(train.classes), 3,
                         {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "image_size": image_size})
    if dataset == "mnist":
        from torchvision.transforms import v2

        from cortexsnn.data.mnist import load_mnist, train_val_split

        steps = [v2.Normalize(MNIST_MEAN, MNIST_STD)]
        if image_size != 28:
            steps.insert(0, v2.Resize(image_size, antialias=True))
        transform = v2.Compose(steps)
        full_train = load_mnist(root or None, train=True, transform=transform)
        train, val = train_val_split(full_train, val_fraction, seed)
        test = load_mnist(root or None, train=False, transform=transform)
        return ImageData(SeededSamples(train, seed), val, test, 10, 1, {"mean": list(MNIST_MEAN), "std": list(MNIST_STD), "image_size": image_size})
    raise ImageDataError(f"unknown dataset {dataset!r}; choose 'imagefolder', 'mnist' or 'ucf101'")


def mixup_cutmix(num_classes: int, mixup_alpha: float, cutmix_alpha: float):
    """A batch transform choosing MixUp or CutMix at random (``None`` when both are off)."""
    from torchvision.transforms import v2

    choices = []
    if mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
