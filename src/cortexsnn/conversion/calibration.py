"""Calibration images for a conversion when the user gives none.

Thresholds are set from a network's activations on natural images, which should not be the
images the converted network is then evaluated or scored on. In order:

1. a folder the user names;
2. the 78 natural images of the Algonauts 2019 "78images" set (``$CORTEXSNN_DATA/algonauts78/stimuli_data``)
   when present (they share no image with the 92-image set of Kriegeskorte et al. 2008);
3. otherwise, offline everywhere, the two natural photographs shipped with scikit-learn
   (``china.jpg``, ``flower.jpg``), each cut into crops at three scales and mirrored (32 images):
   few scenes, so the thresholds are a rougher estimate; the description returned says which set
   was used, and the results carry it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cortexsnn.conversion.errors import ConversionError

__all__ = ["default_calibration_images"]

log = logging.getLogger(__name__)


def _photo_crops(size: int) -> tuple[np.ndarray, list[str]]:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    crops, ids = [], []
    for photo, name in zip(photos.images, photos.filenames):
        h, w = photo.shape[:2]
        for scale in (1.0, 0.7, 0.5):
            side = int(min(h, w) * scale)
            positions = [(0, 0), (h - side, w - side)] if scale < 1.0 else [(0, 0), (0, w - side)]
            if scale == 0.5:
                positions += [((h - side) // 2, (w - side) // 2), (0, w - side)]
            for top, left in positions:
                crop = photo[top:top + side, left:left + side]
                for flipped in (False, True):
                    crops.append(crop[:, ::-1] if flipped else crop)
                    ids.append(f"{Path(name).name}:{scale}:{top},{left}{':flip' if flipped else ''}")
    return crops, ids


def default_calibration_images(size: int, normalization: Any, directory: str | Path | None = None,
                               data_dir: str | Path | None = None, *,
                               use_algonauts: bool = True) -> tuple[Tensor, str]:
    """``(images [N, 3, size, size], description)`` for :func:`~cortexsnn.conversion.convert`.

    ``normalization`` is passed to :func:`cortexsnn.data.stimuli.stimuli_from_folder` (a preset name
    or ``(mean, std)``); ``data_dir`` is the data root (default ``$CORTEXSNN_DATA``);
    ``use_algonauts=False`` skips the Algonauts images (when they are the images to be scored).
    """
    from cortexsnn.data.paths import data_dir as default_data_dir
    from cortexsnn.data.stimuli import stimuli_from_array, stimuli_from_folder

    if directory is not None:
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            raise ConversionError(f"calibration folder {folder} does not exist; give a folder of natural images")
        stimuli = stimuli_from_folder(folder, size=size, normalization=normalization)
        return stimuli.tensor, f"{len(stimuli)} images of {folder}"
    algonauts = Path(data_dir or default_data_dir()) / "algonauts78" / "stimuli_data"
    if use_algonauts and algonauts.is_dir():
        stimuli = stimuli_from_folder(algonauts, size=size, normalization=normalization, expected=78)
        return stimuli.tensor, f"the 78 Algonauts 2019 images ({algonauts})"
    crops, ids = _photo_crops(size)
    tensors = [stimuli_from_array(c[None].copy(), size=size, normalization=normalization).tensor for c in crops]
    log.warning("no calibration folder and no Algonauts images: calibrating on crops of scikit-learn's two sample "
                "photographs (give calibration images for better thresholds)")
    return torch.cat(tensors), f"{len(ids)} crops of scikit-learn's sample photographs (china.jpg, flower.jpg)"
