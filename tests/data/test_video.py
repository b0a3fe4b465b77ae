"""UCF101 clips from videos and frame folders: split files, sampling, transforms, bad videos."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

sys.path.insert(0, str(Path(__file__).parent))
from _ucf101_fixture import CLASSES, H, W, frame_value, make_ucf101  # noqa: E402

from cortexsnn.data.video import (  # noqa: E402
    VideoClips,
    build_ucf101,
    clip_transforms,
    collate_clips,
    index_videos,
    read_ucf101_split,
)


@pytest.fixture(scope="module")
def ucf_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf_videos") / "UCF-101"
    return root, make_ucf101(root, as_frames=False)


@pytest.fixture(scope="module")
def ucf_frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("ucf_frames") / "UCF-101"
    return root, make_ucf101(root, as_frames=True)


def test_split_files(ucf_videos, tmp_path):
    root, lengths = ucf_videos
    classes, items = read_ucf101_split(root / "ucfTrainTestlist", 1, train=True)
    assert classes == CLASSES
    assert len(items) == 7 and items[0] == ("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi", 0)
    _, test_items = read_ucf101_split(root / "ucfTrainTestlist", 1, train=False)
    assert [label for _, label in test_items] == [0, 1, 2]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "classInd.txt").write_text("1 A\n2 B\n")
    (bad / "trainlist01.txt").write_text("A/x.avi 2\n")
    with pytest.raises(ValueError, match="disagrees with classInd"):
        read_ucf101_split(bad, 1, True)
    with pytest.raises(FileNotFoundError, match="testlist01.txt"):
        read_ucf101_split(bad, 1, False)


def test_index_skips_corrupt_video_and_counts_frames(ucf_videos, tmp_path):
    root, lengths = ucf_videos
    _, items = read_ucf101_split(root / "ucfTrainTestlist", 1, True)
    cache = tmp_path / "index.json"
    entries, skipped = index_videos(root, items, cache)
    assert [rel for rel, _ in skipped] == ["Biking/v_Biking_g09_c01.avi"]
    assert "cannot be opened" in skipped[0][1]
    for entry in entries:
        rel = f"{entry.path.parent.name}/{entry.path.name}"
        assert entry.num_frames == lengths[rel][1]
    assert cache.is_file()
    again, _ = index_videos(root, items, cache)  # from the cache
    assert again == entries


def test_all_clips_decode_the_right_frames(ucf_videos):
    root, lengths = ucf_videos
    _, items = read_ucf101_split(root / "ucfTrainTestlist", 1, True)
    entries, _ = index_videos(root, items)
    frames, step = 4, 3
    data = VideoClips(entries, frames, step, "all")
    assert len(data) == sum((e.num_frames - frames) // step + 1 for e in entries)
    for index in (0, 1, len(data) - 1):
        entry, numbers, _ = data.clip_indices(index)
        clip, label = data[index]
        assert clip.dtype == torch.uint8 and clip.shape == (frames, 3, H, W)
        video, _ = lengths[f"{entry.path.parent.name}/{entry.path.name}"]
        expected = torch.tensor([frame_value(video, int(n)) for n in numbers], dtype=torch.float32)
        assert torch.allclose(clip.float().mean((1, 2, 3)), expected, atol=4), (index, numbers)
        assert label == CLASSES.index(entry.path.parent.name)
    first, numbers, _ = data.clip_indices(1)
    assert numbers.tolist() == [3, 4, 5, 6]


def test_continuous_and_discontinuous_sampling(ucf_frames):
    root, _ = ucf_frames
    _, items = read_ucf101_split(root / "ucfTrainTestlist", 1, True)
    entries, _ = index_videos(root, items)
    cont = VideoClips(entries, 5, 16, "continuous", seed=3)
    disc = VideoClips(entries, 5, 16, "discontinuous", seed=3)
    assert len(cont) == len(disc) == len(entries)
    starts = set()
    for index in range(len(cont)):
        entry, numbers, _ = cont.clip_indices(index)
        assert np.array_equal(numbers, numbers[0] + np.arange(5)) and numbers[-1] < entry.num_frames
        starts.add(int(numbers[0]))
        entry, picked, _ = disc.clip_indices(index)
        assert len(set(picked.tolist())) == 5 and picked.max() < entry.num_frames
    assert len(starts) > 1
    # a function of (seed, epoch, index): repeatable, new each epoch
    assert np.array_equal(disc.clip_indices(2)[1], disc.clip_indices(2)[1])
    before = [disc.clip_indices(i)[1].tolist() for i in range(len(disc))]
    disc.set_epoch(1)
    assert before != [disc.clip_indices(i)[1].tolist() for i in range(len(disc))]
    # the frames returned are the ones drawn, in the drawn order (marked pixel = frame number)
    disc.set_epoch(0)
    clip, _ = disc[0]
    assert clip[:, 0, 0, 0].tolist() == disc.clip_indices(0)[1].tolist()


def test_frame_folders_natural_order_and_corrupt_frame(ucf_frames):
    root, lengths = ucf_frames
    _, items = read_ucf101_split(root / "ucfTrainTestlist", 1, True)
    entries, skipped = index_videos(root, items)
    assert all(e.is_frames for e in entries) and len(skipped) == 1
    data = VideoClips(entries, 12, 12, "all")
    clip, _ = data[0]
    assert clip[:, 0, 0, 0].tolist() == list(range(12))  # 1.png, 2.png, ..., 10.png, 11.png, 12.png
    _, test_items = read_ucf101_split(root / "ucfTrainTestlist", 1, False)
    test_entries, _ = index_videos(root, test_items)
    test = VideoClips(test_entries, 4, 4, "all")
    outcomes = []
    for index in range(len(test)):
        entry, numbers, _ = test.clip_indices(index)
        broken = entry.path.name == "v_Diving_g01_c01" and 2 in numbers.tolist()  # 3.png is frame 2
        if broken:
            with pytest.warns(RuntimeWarning, match="3.png cannot be decoded"):
                outcomes.append(test[index] is None)
        else:
            outcomes.append(test[index] is None)
    assert sum(outcomes) == 1  # only the clip holding the corrupt frame fails, without an exception


def test_clip_transform_same_crop_for_every_frame():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, 60, 70), dtype=torch.uint8)
    clip = frame.expand(6, 3, 60, 70).clone()
    from torchvision import tv_tensors

    transform = clip_transforms(True, image_size=24, resize=(40, 50), crop=32)
    out = transform(tv_tensors.Video(clip))
    assert out.shape == (6, 3, 24, 24) and out.dtype == torch.float32
    assert all(torch.equal(out[0], out[t]) for t in range(6))
    assert -1.0 <= float(out.min()) and float(out.max()) <= 1.0  # Normalize(0.5, 0.5) of [0, 1]
    crops = {tuple(transform(tv_tensors.Video(clip))[0, 0, 0, :4].tolist()) for _ in range(8)}
    assert len(crops) > 1  # the crop is random between clips


def test_collate_time_major_and_drops_failures():
    a, b = torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 8, 8)
    clips, labels, skipped = collate_clips([(a, 1), None, (b, 2)])
    assert clips.shape == (4, 2, 3, 8, 8) and clips.is_contiguous()
    assert torch.equal(clips[:, 1], b) and labels.tolist() == [1, 2] and skipped == 1
    assert collate_clips([None, None]) == (None, None, 2)


def test_build_ucf101_both_layouts(ucf_videos, ucf_frames):
    for root, _ in (ucf_videos, ucf_frames):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = build_ucf101(str(root), frames=4, f_steps=4, image_size=24, resize=(32, 36), crop=28, seed=1)
        assert any("skipped 1 of 7 videos" in str(w.message) for w in caught)
        assert data.num_classes == 3 and len(data.train.skipped) == 1
        clip, label = data.train[0]
        assert clip.shape == (4, 3, 24, 24) and clip.dtype == torch.float32
        assert torch.equal(clip, data.train[0][0])  # same sample, same crop
    with pytest.raises(ValueError, match="clip_resize"):
        build_ucf101(str(ucf_videos[0]), resize=(32, 36), crop=40)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_ucf101(str(ucf_videos[0]) + "-missing")
