"""Shared fixtures: deterministic seeds, the real-data folder, an isolated cache, the previous
tiny-map convolution."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


class UnfoldMatmulFold(torch.autograd.Function):
    """The tiny-map convolution of SEW-ResNet as it was until issue 15's last change: ``F.unfold`` +
    ``torch.matmul`` + ``F.fold`` (commit 00f1a0a; the gather-based version that followed was
    bit-identical to it). Kept verbatim, with ``layers._TinyMapConv2d``'s call signature, so that
    results pinned before the zero-skipping convolution can still be checked bit for bit."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, pack):
        n, _, h, w = x.shape
        co, _, kh, kw = weight.shape
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (w + 2 * padding[1] - kw) // stride[1] + 1
        cols = F.unfold(x, (kh, kw), padding=padding, stride=stride)
        out = torch.matmul(weight.reshape(co, -1), cols)
        if bias is not None:
            out = out + bias.view(1, co, 1)
        ctx.save_for_backward(x.to(torch.uint8) if pack else x, weight)
        ctx.config = (tuple(stride), tuple(padding), (h, w), x.dtype, bias is not None)
        return out.view(n, co, oh, ow)

    @staticmethod
    def backward(ctx, grad_out):
        saved, weight = ctx.saved_tensors
        stride, padding, size, dtype, has_bias = ctx.config
        n, co = grad_out.shape[:2]
        kernel = tuple(weight.shape[2:])
        grad = grad_out.reshape(n, co, -1)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            cols = F.unfold(saved.to(dtype), kernel, padding=padding, stride=stride)
            grad_w = torch.matmul(grad.permute(1, 0, 2).reshape(co, -1),
                                  cols.permute(0, 2, 1).reshape(-1, cols.shape[1])).view_as(weight)
        if ctx.needs_input_grad[0]:
            grad_cols = torch.matmul(weight.reshape(co, -1).t(), grad)
            grad_x = F.fold(grad_cols, size, kernel, padding=padding, stride=stride)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2))
        return grad_x, grad_w, grad_b, None, None, None


@pytest.fixture
def previous_tiny_map_conv(monkeypatch):
    """Run tiny-map convolutions as before the zero-skipping ``_TinyMapConv2d``: unfold + matmul + fold
    on weights kept as they are (NCHW; torch.matmul rounds differently on a channels-last copy)."""
    from cortexsnn.models import layers

    monkeypatch.setattr(layers, "_TinyMapConv2d", UnfoldMatmulFold)
    monkeypatch.setattr(layers, "_stored_channels_last", lambda weight: True)
    return UnfoldMatmulFold
