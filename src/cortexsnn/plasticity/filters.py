"""Front end of the STDP networks: DoG and Gabor kernels, local normalisation, and :class:`S1C1`
(image -> filter bank -> normalisation -> rank-order latencies).

Follows SpykeTorch (Mozafari et al.) as described in ``spec/plasticity.md``: every kernel is
made zero-mean and scaled to a maximum of 1; kernels of smaller windows are zero-padded to the
largest window; responses below a threshold are set to 0.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cortexsnn.encoding import intensity_to_latency

__all__ = [
    "dog_kernel",
    "gabor_kernel",
    "FilterBank",
    "mnist_dog_bank",
    "gabor_bank",
    "local_normalization",
    "S1C1",
]


def _zero_mean_unit_max(kernel: np.ndarray) -> torch.Tensor:
    kernel = kernel - kernel.mean()
    return torch.from_numpy(kernel / kernel.max())


def dog_kernel(window: int, sigma1: float, sigma2: float) -> torch.Tensor:
    """Difference-of-Gaussians kernel ``[window, window]`` (float64), zero mean, maximum 1.

    ``sigma1 < sigma2`` gives an on-centre kernel, the reverse an off-centre one.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"DoG window must be a positive odd integer, got {window}")
    half = window // 2
    x, y = np.mgrid[-half : half + 1, -half : half + 1]
    r2 = x * x + y * y
    g1 = np.exp(-0.5 * r2 / sigma1**2) / sigma1**2
    g2 = np.exp(-0.5 * r2 / sigma2**2) / sigma2**2
    return _zero_mean_unit_max((g1 - g2) / (2 * math.pi))


def gabor_kernel(window: int, orientation_deg: float, div: float = 4.0) -> torch.Tensor:
    """Gabor kernel ``[window, window]`` (float64) of SpykeTorch: wavelength ``2 window / div``,
    sigma ``0.8`` wavelength, aspect 0.3, zero mean, maximum 1."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"Gabor window must be a positive odd integer, got {window}")
    half = window // 2
    x, y = np.mgrid[-half : half + 1, -half : half + 1]
    lam = window * 2 / div
    sigma = lam * 0.8
    gamma = 0.3
    theta = orientation_deg * np.pi / 180
    yy = y * np.cos(theta) - x * np.sin(theta)
    xx = y * np.sin(theta) + x * np.cos(theta)
    g = np.exp(-(xx * xx + gamma * gamma * yy * yy) / (2 * sigma * sigma)) * np.cos(2 * np.pi * xx / lam)
    return _zero_mean_unit_max(g)


class FilterBank:
    """A bank of 2-D kernels applied to one-channel images: ``[B, 1, H, W] -> [B, K, H, W]``.

    Kernels are centred in the largest window; ``padding`` defaults to half of it (same size
    output, as Mozafari et al.'s padding 6 for 13x13). Responses ``< threshold`` become 0.

    Args:
        kernels: 2-D kernels of odd sizes.
        threshold: responses below it are zeroed (``None``: keep all).
        padding: zero padding of the convolution (default: half the largest window).
        dtype: dtype of the kernels and of the output.
    """

    def __init__(
        self,
        kernels: Sequence[torch.Tensor],
        threshold: float | None = 50.0,
        padding: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not kernels:
            raise ValueError("a filter bank needs at least one kernel")
        size = max(int(k.shape[-1]) for k in kernels)
        padded = []
        for kernel in kernels:
            if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
                raise ValueError(f"kernels must be square with odd size, got shape {tuple(kernel.shape)}")
            p = (size - kernel.shape[-1]) // 2
            padded.append(F.pad(kernel, (p, p, p, p)))
        self.weight = torch.stack(padded).unsqueeze(1).to(dtype)  # [K, 1, S, S]
        self.threshold = threshold
        self.padding = size // 2 if padding is None else padding

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(
                f"the filter bank expects one-channel images [B, 1, H, W], got shape {tuple(images.shape)}; "
                "convert colour images to grey or use a bank built for more channels"
            )
        out = F.conv2d(images.to(self.weight.dtype), self.weight.to(images.device), padding=self.padding)
        if self.threshold is not None:
            out = torch.where(out < self.threshold, torch.zeros((), dtype=out.dtype, device=out.device), out)
        return out


def mnist_dog_bank(threshold: float = 50.0, dtype: torch.dtype = torch.float32) -> FilterBank:
    """The spec's six DoG kernels (windows 3, 7, 13; on and off), padding 6, threshold 50."""
    kernels = []
    for window in (3, 7, 13):
        s1, s2 = window / 9, 2 * window / 9
        kernels += [dog_kernel(window, s1, s2), dog_kernel(window, s2, s1)]
    return FilterBank(kernels, threshold=threshold, padding=6, dtype=dtype)


def gabor_bank(window: int = 5, orientations: Sequence[float] = (22.5, 67.5, 112.5, 157.5),
               threshold: float | None = None, dtype: torch.dtype = torch.float32) -> FilterBank:
    """Gabor filters at ``orientations`` (degrees), as in the shallow Mozafari 2018 network."""
    return FilterBank([gabor_kernel(window, o) for o in orientations], threshold=threshold, dtype=dtype)


def local_normalization(x: torch.Tensor, radius: int = 8, eps: float = 1e-12) -> torch.Tensor:
    """Divide every channel by its mean over a ``(2 radius + 1)^2`` window (zero padded).

    ``x``: ``[B, C, H, W]``; the mean always divides by the full window area, as SpykeTorch does.
    """
    if x.dim() != 4:
        raise ValueError(f"local_normalization expects [B, C, H, W], got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    size = 2 * radius + 1
    kernel = torch.full((1, 1, size, size), 1.0 / size**2, dtype=x.dtype, device=x.device)
    means = F.conv2d(x.reshape(b * c, 1, h, w), kernel, padding=radius) + eps
    return (x.reshape(b * c, 1, h, w) / means).reshape(b, c, h, w)


class S1C1:
    """Preprocessing of Mozafari et al.'s code: image x 255, filter bank, local normalisation, latency coding.

    The STDP networks' own front end (their S1 and C1 stages), not a generic encoder: its coding
    step is :func:`cortexsnn.encoding.intensity_to_latency`.

    ``__call__`` maps images ``[B, 1, H, W]`` in ``[0, 1]`` to latencies ``[B, K, H, W]`` (uint8).

    Args:
        bank: the filter bank (default: the six DoG kernels of the spec, threshold 50).
        time_steps: ``T`` (15 in the spec).
        norm_radius: radius of the local normalisation (8: a 17 x 17 window); ``None`` to skip it.
        image_size: expected ``(H, W)``; other sizes are refused with a clear message.
    """

    def __init__(
        self,
        bank: FilterBank | None = None,
        time_steps: int = 15,
        norm_radius: int | None = 8,
        image_size: tuple[int, int] | None = (28, 28),
    ) -> None:
        self.bank = bank if bank is not None else mnist_dog_bank()
        self.time_steps = time_steps
        self.norm_radius = norm_radius
        self.image_size = image_size

    @property
    def out_channels(self) -> int:
        return self.bank.out_channels

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(
                f"expected grey images [B, 1, H, W] (or [B, H, W]), got shape {tuple(images.shape)}: "
                f"the filter bank has one input channel"
            )
        if self.image_size is not None and tuple(images.shape[-2:]) != tuple(self.image_size):
            raise ValueError(
                f"expected images of size {self.image_size[0]}x{self.image_size[1]}, got "
                f"{images.shape[-2]}x{images.shape[-1]}; resize them or build the model for this size"
            )
        responses = self.bank(images * 255.0)
        if self.norm_radius is not None:
            responses = local_normalization(responses, self.norm_radius)
        return intensity_to_latency(responses, self.time_steps)
