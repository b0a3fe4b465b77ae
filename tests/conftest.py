"""Shared fixtures: deterministic seeds, the real-data folder, an isolated cache."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$CORTEXSNN_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("CORTEXSNN_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set CORTEXSNN_DATA)")
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep unpacked datasets and kernels out of the user's cache unless one is set."""
    if "CORTEXSNN_CACHE" not in os.environ:
        os.environ["CORTEXSNN_CACHE"] = str(tmp_path_factory.mktemp("cortexsnn-cache"))
    yield


@pytest.fixture(autouse=True)
def _pooch_logs_to_this_tests_stderr(monkeypatch):
    """pooch's logger keeps the sys.stderr of the moment pooch was first imported, which under pytest
    may be an earlier test's captured (now closed) stream: point it at this test's stderr."""
    import logging
    import sys

    try:
        import pooch
    except ImportError:  # not installed (a bare GPU machine running only `-m gpu`): nothing to redirect
        return

    for handler in pooch.get_logger().handlers:
        if isinstance(handler, logging.StreamHandler):
            monkeypatch.setattr(handler, "stream", sys.stderr)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A tiny three-class image folder (train: 8, val: 4 images per class, 40x48 RGB; the classes
    differ in brightness so that a network can learn them), for `cortexsnn train` tests."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.RandomState(0)
    for split, count in (("train", 8), ("val", 4)):
        for label in range(3):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = (rng.rand(40, 48, 3) * 80 + label * 60).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root
