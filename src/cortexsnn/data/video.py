"""Video clips for the deep SNNs: UCF101 from videos (official split files) or from frame folders.

Layout (the official UCF101 release)::

    root/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi       # videos ...
    root/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01/0001.jpg  # ... or one folder of frames per video
    annotations/classInd.txt      "1 ApplyEyeMakeup"
    annotations/trainlist01.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    annotations/testlist01.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

A split line ``Class/name.avi`` is served from the video file when it exists, else from the frame
folder ``Class/name/`` (JPEG or PNG frames in natural name order), so both layouts, or a mix, work
with the unmodified split files. Videos are decoded with PyAV (``pip install av``).

Clip sampling (Huang et al., NeurIPS 2024, ``--frames F --f-steps S``):

* ``all``: every clip of ``F`` consecutive frames whose starts are ``S`` frames apart is one
  sample (torchvision's ``UCF101(frames_per_clip=F, step_between_clips=S)``, the published run);
* ``continuous``: one sample per video, ``F`` consecutive frames from a random start;
* ``discontinuous``: one sample per video, ``F`` distinct frames drawn without replacement, in the
  order drawn (the temporal order is destroyed as well, as in Huang et al.'s code).

The random choices (start frame, frames drawn, random crop) of sample ``i`` are a function of
``(seed, epoch, i)`` only, so they do not depend on the number of loader workers, and a run
resumed in the middle of an epoch sees the same clips. Transforms are ``torchvision.transforms.v2``
applied to the whole clip as one :class:`~torchvision.tv_tensors.Video`, so every frame gets the
same crop. Huang et al.'s transforms: ``[0, 1]`` floats, Resize (256, 340), RandomCrop 256 (CenterCrop
for evaluation), Resize 224, Normalize(0.5, 0.5), no flip.

A video that cannot be read is skipped with a warning and counted, never fatal: at indexing time
(:attr:`VideoClips.skipped`), and when decoding a clip fails during an epoch the sample is
dropped from its batch by :func:`collate_clips`, which reports the count with the batch.
Batches are time-major: ``(clips [T, B, C, H, W], labels [B], skipped)``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cortexsnn.data.paths import cache_dir
from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import atomic_write_text

__all__ = [
    "VideoDecodeError",
    "VideoEntry",
    "VideoClips",
    "read_ucf101_split",
    "clip_transforms",
    "collate_clips",
    "build_ucf101",
    "SAMPLING",
    "VIDEO_EXTENSIONS",
    "FRAME_EXTENSIONS",
]

SAMPLING = ("all", "continuous", "discontinuous")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
UCF101_MEAN = (0.5, 0.5, 0.5)
UCF101_STD = (0.5, 0.5, 0.5)


class VideoDecodeError(CortexSNNError, RuntimeError):
    """A video or frame folder that cannot be read (missing, corrupt, too short)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video of a split: a file or a folder of frames, its label and its number of frames."""

    path: Path
    label: int
    num_frames: int
    is_frames: bool


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def list_frames(folder: Path) -> list[str]:
    """The frame files (JPEG / PNG) of ``folder``, in natural name order (``2.jpg`` before ``10.jpg``)."""
    return sorted((n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTENSIONS)), key=_natural_key)


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise ImportError("decoding video files needs PyAV: pip install av (or extract the frames into one "
                          "folder per video, which needs no decoder)") from exc
    return av


def count_video_frames(path: Path) -> int:
    """Number of frames of a video file: the container's count, else counted by demuxing packets."""
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            return sum(1 for packet in container.demux(stream) if packet.size > 0)
    except VideoDecodeError:
        raise
    except Exception as exc:  # PyAV raises many FFmpeg error classes
        raise VideoDecodeError(f"{path} cannot be opened as a video ({type(exc).__name__}: {exc})") from exc


def decode_video_frames(path: Path, indices: Sequence[int]) -> Tensor:
    """Frames ``indices`` of a video file as ``uint8 [len(indices), 3, H, W]`` (RGB), in that order."""
    av = _import_av()
    wanted, last = set(int(i) for i in indices), max(indices)
    found: dict[int, np.ndarray] = {}
    decoded = 0
    try:
        with av.open(str(path)) as container:
            for position, frame in enumerate(container.decode(video=0)):
                decoded = position + 1
                if position in wanted:
                    found[position] = frame.to_ndarray(format="rgb24")
                if position >= last:
                    break
    except Exception as exc:
        raise VideoDecodeError(f"{path} cannot be decoded ({type(exc).__name__}: {exc})") from exc
    if len(found) != len(wanted):
        raise VideoDecodeError(f"{path}: only {decoded} frames could be decoded, frame {last} was asked for")
    return torch.from_numpy(np.stack([found[int(i)] for i in indices])).permute(0, 3, 1, 2)


def read_frame_folder(folder: Path, indices: Sequence[int]) -> Tensor:
    """Frames ``indices`` of a frame folder as ``uint8 [len(indices), 3, H, W]`` (RGB)."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    names = list_frames(folder)
    if not names or max(indices) >= len(names):
        raise VideoDecodeError(f"frame folder {folder} holds {len(names)} frames, frame {max(indices)} was asked for")
    frames = []
    for index in indices:
        file = folder / names[int(index)]
        try:
            frames.append(decode_image(read_file(str(file)), mode=ImageReadMode.RGB))
        except Exception as exc:
            raise VideoDecodeError(f"frame {file} cannot be decoded ({type(exc).__name__}: {exc})") from exc
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) != 1:
        raise VideoDecodeError(f"frame folder {folder} mixes frame sizes {sorted(shapes)}")
    return torch.stack(frames)


def read_ucf101_split(annotation_root: str | os.PathLike, fold: int = 1, train: bool = True
                      ) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (``classInd.txt`` order) and ``(relative path, label)`` of a split file."""
    base = Path(annotation_root)
    ind = base / "classInd.txt"
    split = base / f"{'train' if train else 'test'}list{fold:02d}.txt"
    for file in (ind, split):
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist; data.annotation_root must hold UCF101's classInd.txt, "
                                    f"trainlist0N.txt and testlist0N.txt (N = data.fold, 1 to 3)")
    classes: dict[int, str] = {}
    for number, line in enumerate(ind.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{ind}:{number}: expected '<index> <ClassName>', got {line!r}")
        classes[int(parts[0])] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"{ind}: class indices must be 1..N without gaps, got {sorted(classes)[:10]}...")
    names = [classes[i] for i in range(1, len(classes) + 1)]
    label_of = {name: i for i, name in enumerate(names)}
    items: list[tuple[str, int]] = []
    for number, line in enumerate(split.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rel = parts[0].replace("\\", "/")
        folder = rel.split("/")[0]
        if folder not in label_of:
            raise ValueError(f"{split}:{number}: class folder {folder!r} is not in {ind}")
        label = label_of[folder]
        if len(parts) > 1 and int(parts[1]) - 1 != label:
            raise ValueError(f"{split}:{number}: label {parts[1]} disagrees with classInd.txt ({folder} is {label + 1})")
        items.append((rel, label))
    if not items:
        raise ValueError(f"{split} lists no videos")
    return names, items


def _index_cache_file(root: Path, split_name: str) -> Path:
    key = hashlib.sha1(f"{root.resolve()}|{split_name}".encode()).hexdigest()[:16]
    return cache_dir() / "video_index" / f"{key}.json"


def index_videos(root: str | os.PathLike, items: Sequence[tuple[str, int]], cache: str | os.PathLike | None = None,
                 ) -> tuple[list[VideoEntry], list[tuple[str, str]]]:
    """Find each split item as a video file or frame folder under ``root`` and count its frames.

    Returns the usable entries and ``(relative path, reason)`` of the skipped ones. Frame counts of
    video files are cached in ``cache`` (JSON, keyed by path, size and modification time), since
    counting the frames of 13,000 videos takes a while.
    """
    base = Path(root)
    cached: dict[str, list] = {}
    if cache is not None and Path(cache).is_file():
        try:
            cached = json.loads(Path(cache).read_text())
        except (OSError, ValueError):
            cached = {}
    entries: list[VideoEntry] = []
    skipped: list[tuple[str, str]] = []
    fresh: dict[str, list] = {}
    for rel, label in items:
        file = base / rel
        folder = file.with_suffix("") if file.suffix else file
        try:
            if file.is_file():
                stat = file.stat()
                hit = cached.get(rel)
                if hit is not None and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
                    count = int(hit[2])
                else:
                    count = count_video_frames(file)
                fresh[rel] = [stat.st_size, stat.st_mtime_ns, count]
                entries.append(VideoEntry(file, label, count, False))
            elif folder.is_dir():
                entries.append(VideoEntry(folder, label, len(list_frames(folder)), True))
            else:
                skipped.append((rel, f"neither the video {file} nor the frame folder {folder} exists"))
        except VideoDecodeError as exc:
            skipped.append((rel, str(exc)))
    if cache is not None and fresh and fresh != {k: cached.get(k) for k in fresh}:
        try:
            atomic_write_text(cache, json.dumps(fresh))
        except OSError:  # a read-only cache is only slower
            pass
    return entries, skipped


class VideoClips(Dataset):
    """Clips of ``frames`` frames from a list of videos (see the module docstring for ``sampling``).

    Items are ``(clip, label)`` with ``clip`` the transformed ``[frames, C, H, W]`` float tensor,
    or ``None`` when the video cannot be decoded (a warning names it; :func:`collate_clips` drops
    and counts it). Call :meth:`set_epoch` before each epoch for fresh random draws.
    """

    def __init__(self, entries: Sequence[VideoEntry], frames: int = 16, f_steps: int = 16, sampling: str = "all",
                 transform: Callable[[Any], Tensor] | None = None, seed: int = 0,
                 classes: Sequence[str] = (), skipped: Sequence[tuple[str, str]] = ()) -> None:
        if frames < 1 or f_steps < 1:
            raise ValueError(f"frames and f_steps must be >= 1, got {frames} and {f_steps}")
        if sampling not in SAMPLING:
            raise ValueError(f"unknown clip sampling {sampling!r}; choose one of {SAMPLING}")
        self.frames, self.f_steps, self.sampling = frames, f_steps, sampling
        self.transform, self.seed, self.epoch = transform, seed, 0
        self.classes = list(classes)
        self.skipped = list(skipped)
        short = [e for e in entries if e.num_frames < frames]
        self.skipped += [(str(e.path), f"{e.num_frames} frames, fewer than a clip of {frames}") for e in short]
        self.videos = [e for e in entries if e.num_frames >= frames]
        if sampling == "all":
            counts = np.array([(e.num_frames - frames) // f_steps + 1 for e in self.videos], dtype=np.int64)
        else:
            counts = np.ones(len(self.videos), dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        if not len(self):
            raise ValueError(f"no usable clips: {len(self.videos)} videos with at least {frames} frames "
                             f"({len(self.skipped)} skipped); check data.root and the split files")

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Draw the random clips and crops of epoch ``epoch``."""
        self.epoch = int(epoch)

    def clip_indices(self, index: int) -> tuple[VideoEntry, np.ndarray, np.random.Generator]:
        """The video of sample ``index``, its frame numbers, and the sample's random generator."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        video = int(np.searchsorted(self._offsets, index, side="right") - 1)
        entry = self.videos[video]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.sampling == "all":
            start = (index - int(self._offsets[video])) * self.f_steps
            frames = start + np.arange(self.frames)
        elif self.sampling == "continuous":
            start = int(rng.integers(0, entry.num_frames - self.frames + 1))
            frames = start + np.arange(self.frames)
        else:
            frames = rng.choice(entry.num_frames, size=self.frames, replace=False)
        return entry, frames, rng

    def __getitem__(self, index: int):
        entry, frames, rng = self.clip_indices(index)
        try:
            reader = read_frame_folder if entry.is_frames else decode_video_frames
            clip = reader(entry.path, frames.tolist())
        except (VideoDecodeError, OSError) as exc:
            warnings.warn(f"skipping clip {index}: {exc}", RuntimeWarning, stacklevel=2)
            return None
        if self.transform is not None:
            from torchvision import tv_tensors

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(0, 2**62)))
                clip = self.transform(tv_tensors.Video(clip))
        return clip.as_subclass(Tensor), entry.label


def clip_transforms(train: bool, image_size: int = 224, resize: Sequence[int] = (256, 340), crop: int = 256,
                    mean: Sequence[float] = UCF101_MEAN, std: Sequence[float] = UCF101_STD):
    """Huang et al.'s clip transforms: to ``[0, 1]``, Resize ``resize``, RandomCrop ``crop`` (CenterCrop
    when not ``train``), Resize ``image_size``, Normalize; one set of random parameters per clip."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        v2.Resize(tuple(resize), antialias=True),
        v2.RandomCrop(crop) if train else v2.CenterCrop(crop),
        v2.Resize((image_size, image_size), antialias=True),
        v2.Normalize(list(mean), list(std)),
    ])


def collate_clips(batch: Sequence[tuple[Tensor, int] | None]) -> tuple[Tensor | None, Tensor | None, int]:
    """Stack clips time-major: ``(clips [T, B, C, H, W], labels [B], number of dropped samples)``.

    Samples that failed to decode (``None``) are dropped and counted; a batch of only failures
    gives ``(None, None, count)``.
    """
    good = [item for item in batch if item is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, None, skipped
    clips = torch.stack([clip for clip, _ in good], dim=1).contiguous()
    labels = torch.tensor([label for _, label in good], dtype=torch.long)
    return clips, labels, skipped


def build_ucf101(root: str, annotation_root: str = "", fold: int = 1, frames: int = 16, f_steps: int = 16,
                 sampling: str = "all", image_size: int = 224, resize: Sequence[int] = (256, 340), crop: int = 256,
                 seed: int = 0, augment: bool = True, index_cache: bool = True):
    """UCF101 (fold ``fold``) as :class:`~cortexsnn.data.images.ImageData` of :class:`VideoClips`:
    ``train`` from ``trainlist0N.txt``, ``val`` from ``testlist0N.txt`` (as Huang et al. evaluate), no ``test``.

    ``annotation_root`` defaults to ``root`` itself, else ``root/ucfTrainTestlist``.
    """
    from cortexsnn.data.images import ImageData

    if not root:
        raise ValueError("data.root must name the UCF101 folder (one sub-folder of videos or frame folders per class)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"UCF101 folder {base} does not exist")
    if annotation_root:
        notes = Path(annotation_root).expanduser()
    else:
        candidates = [base, base / "ucfTrainTestlist", base.parent / "ucfTrainTestlist"]
        notes = next((c for c in candidates if (c / "classInd.txt").is_file()), candidates[0])
    if not 1 <= fold <= 3:
        raise ValueError(f"data.fold must be 1, 2 or 3 (UCF101's three splits), got {fold}")
    if len(resize) != 2 or crop > min(resize) or image_size < 1:
        raise ValueError(f"data.clip_resize must be [height, width] at least data.clip_crop ({crop}), got {list(resize)}")
    splits = {}
    for train in (True, False):
        classes, items = read_ucf101_split(notes, fold, train)
        split_name = f"{'train' if train else 'test'}list{fold:02d}"
        entries, skipped = index_videos(base, items, _index_cache_file(base, split_name) if index_cache else None)
        transform = clip_transforms(train and augment, image_size, resize, crop)
        dataset = VideoClips(entries, frames, f_steps, sampling, transform, seed, classes, skipped)
        if dataset.skipped:
            shown = "; ".join(f"{path}: {why}" for path, why in dataset.skipped[:5])
            warnings.warn(f"{split_name}: skipped {len(dataset.skipped)} of {len(items)} videos ({shown}"
                          f"{'; ...' if len(dataset.skipped) > 5 else ''})", RuntimeWarning, stacklevel=2)
        splits[train] = dataset
    return ImageData(splits[True], splits[False], None, len(splits[True].classes), 3,
                     {"mean": list(UCF101_MEAN), "std": list(UCF101_STD), "image_size": image_size,
                      "frames": frames})
