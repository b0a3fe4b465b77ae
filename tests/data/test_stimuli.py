"""Stimulus tensors from arrays, image / frame folders and the seeds' .pt tensors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cortexsnn.data.stimuli import (
    find_seed_stimulus_file,
    load_stimuli,
    load_stimulus_tensor,
    stimuli_from_array,
    stimuli_from_folder,
)


def test_array_normalisation_by_hand():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    s = stimuli_from_array(imgs, size=None, normalization="imagenet")
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    expected = (imgs.transpose(0, 3, 1, 2) / 255.0 - mean) / std
    np.testing.assert_allclose(s.tensor.numpy(), expected, atol=1e-6)
    assert s.tensor.shape == (3, 3, 8, 8) and s.tensor.dtype == torch.float32
    assert s.normalization["mean"] == [0.485, 0.456, 0.406] and s.normalization["preset"] == "imagenet"
    v = stimuli_from_array(imgs, size=None, normalization="video")
    np.testing.assert_allclose(v.tensor.numpy(), (imgs.transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.5, atol=1e-6)


def test_grey_images_crop_and_squash():
    grey = np.tile(np.arange(10, dtype=np.uint8)[None, None, :] * 20, (2, 6, 1))  # [2, 6, 10], columns vary
    s = stimuli_from_array(grey, size=4, normalization="none", resize="crop")
    assert s.tensor.shape == (2, 3, 4, 4)
    assert torch.equal(s.tensor[:, 0], s.tensor[:, 2])  # grey replicated
    # centre crop: the middle columns survive, not the extremes
    assert float(s.tensor.min()) > 0.1 and float(s.tensor.max()) < 0.9
    q = stimuli_from_array(grey, size=4, normalization="none", resize="squash")
    assert q.tensor.shape == (2, 3, 4, 4) and float(q.tensor.min()) < float(s.tensor.min())


def test_folder_natural_order_and_missing_file(tmp_path):
    for i in (1, 2, 10):
        Image.fromarray(np.full((5, 7, 3), i * 20, dtype=np.uint8)).save(tmp_path / f"frame_{i}.png")
    s = stimuli_from_folder(tmp_path, size=4, normalization="none", kind="frames")
    assert s.ids == ["frame_1.png", "frame_2.png", "frame_10.png"]
    np.testing.assert_allclose(s.tensor[:, 0, 0, 0].numpy(), [20 / 255, 40 / 255, 200 / 255], atol=1e-6)
    assert s.normalization["kind"] == "frames"
    with pytest.raises(ValueError, match="4 expected"):
        stimuli_from_folder(tmp_path, expected=4)
    with pytest.raises(FileNotFoundError):
        stimuli_from_folder(tmp_path / "absent")


def test_seed_tensor(tmp_path):
    t = torch.randn(5, 3, 16, 16)
    path = tmp_path / "stimulus_allen_natural_scenes_224.pt"
    torch.save(t, path)
    assert find_seed_stimulus_file(tmp_path, "allen_natural_scenes") == path
    s = load_stimuli(path, expected=5)
    assert torch.equal(s.tensor, t) and s.normalization["preset"] == "unknown"
    torch.save(torch.randn(5, 16, 16), tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        load_stimulus_tensor(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="6 expected"):
        load_stimulus_tensor(path, expected=6)


def test_algonauts_images(shared_data):
    s = load_stimuli(shared_data / "algonauts78" / "stimuli_data", size=32, expected=78)
    assert s.tensor.shape == (78, 3, 32, 32) and s.ids[0] == "image_01.jpg" and s.ids[-1] == "image_78.jpg"
    assert torch.isfinite(s.tensor).all()
