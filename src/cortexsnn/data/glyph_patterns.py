"""Spike patterns for the associative-memory task of Fang et al. (IJCAI 2020), rendered from glyphs.

A pattern is a binary image of a letter or a simple shape, rendered at ``inputs x steps``
(300 x 300), read as ``spikes[t, n] = image[n, t]`` (rows = input neurons, columns = time steps) and
sparsified to every 5th step and every 3rd row, as in Fang et al.'s code. Letters are drawn with the
DejaVu Sans Bold font that ships with matplotlib (Pillow's own scalable default font when
matplotlib is absent); shapes with Pillow's drawing functions. Nothing is read from Fang et al.'s code.

Augmentation of a training sample (Fang et al.'s): with probability ``augment_p`` (0.4) the pattern is
(a) with probability ``jitter_p`` (0.7) jittered, every spike moved by ``round(N(0, jitter_sigma))``
steps (clipped to the sequence), then (b) with probability ``erase_p`` (0.5) partly erased: either a
``erase_size x erase_size`` block of inputs x steps or a band of ``erase_size`` consecutive input rows
over all steps, each with probability 1/2; noise spikes with probability ``noise_p`` (0.005) per bin
are always added. The target is the clean pattern delayed by ``delay`` steps.
"""
from __future__ import annotations

import string
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["render_glyph", "make_glyph_patterns", "augment_pattern", "delay_pattern", "GlyphPatternDataset", "SHAPES"]

SHAPES = ("circle", "square", "triangle", "cross", "diamond")
_DEFAULT_LETTERS = ("A", "E", "K", "S", "X")


def _font(size: int):
    from PIL import ImageFont

    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans:bold", fallback_to_default=True), size)
    except Exception:  # matplotlib missing: Pillow's bundled scalable font
        return ImageFont.load_default(size=size)


def render_glyph(name: str, height: int = 300, width: int = 300) -> np.ndarray:
    """Binary image ``[height, width]`` (bool) of a letter/digit (one character) or a shape of :data:`SHAPES`."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    side = min(height, width)
    pad = side // 8
    box = (pad + (width - side) // 2, pad + (height - side) // 2, width - pad - (width - side) // 2, height - pad - (height - side) // 2)
    stroke = max(2, side // 10)
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if name == "circle":
        draw.ellipse(box, outline=255, width=stroke)
    elif name == "square":
        draw.rectangle(box, outline=255, width=stroke)
    elif name == "triangle":
        draw.line([(cx, y0), (x1, y1), (x0, y1), (cx, y0)], fill=255, width=stroke, joint="curve")
    elif name == "cross":
        draw.line([(x0, y0), (x1, y1)], fill=255, width=stroke)
        draw.line([(x0, y1), (x1, y0)], fill=255, width=stroke)
    elif name == "diamond":
        draw.line([(cx, y0), (x1, cy), (cx, y1), (x0, cy), (cx, y0)], fill=255, width=stroke, joint="curve")
    elif len(name) == 1 and name.strip():
        font = _font(int(side * 0.85))
        draw.text((width / 2, height / 2), name, fill=255, font=font, anchor="mm")
    else:
        raise ValueError(f"unknown glyph {name!r}: use one character or one of {SHAPES}")
    return np.asarray(image) >= 128


def default_glyphs(count: int) -> list[str]:
    """The glyph names of the first ``count`` patterns: 5 letters and 5 shapes, then more letters/digits."""
    pool = [*_DEFAULT_LETTERS, *SHAPES]
    extra = [c for c in string.ascii_uppercase + string.digits if c not in _DEFAULT_LETTERS]
    pool += extra
    if not 1 <= count <= len(pool):
        raise ValueError(f"between 1 and {len(pool)} glyph patterns can be made, {count} were asked for")
    return pool[:count]


def make_glyph_patterns(
    count: int = 10,
    inputs: int = 300,
    steps: int = 300,
    every_step: int = 5,
    every_row: int = 3,
    glyphs: Sequence[str] | None = None,
) -> Tensor:
    """``count`` binary spike patterns ``[count, steps, inputs]`` (float 0/1)."""
    names = list(glyphs) if glyphs is not None else default_glyphs(count)
    keep = np.zeros((inputs, steps), dtype=bool)
    keep[::every_row, ::every_step] = True
    patterns = [render_glyph(name, inputs, steps) & keep for name in names]
    return torch.from_numpy(np.stack(patterns).transpose(0, 2, 1).astype(np.float32))


def delay_pattern(pattern: Tensor, delay: int) -> Tensor:
    """Shift ``[T, ...]`` later by ``delay`` steps (zeros first, the end drops out)."""
    if delay == 0:
        return pattern.clone()
    out = torch.zeros_like(pattern)
    out[delay:] = pattern[:-delay]
    return out


def augment_pattern(
    pattern: Tensor,
    generator: torch.Generator | None = None,
    augment_p: float = 0.4,
    jitter_p: float = 0.7,
    jitter_sigma: float = 1.0,
    erase_p: float = 0.5,
    erase_size: int = 40,
    noise_p: float = 0.005,
) -> Tensor:
    """A noisy copy of a ``[T, N]`` spike pattern (see the module docstring)."""
    steps, inputs = pattern.shape
    out = pattern.clone()

    def chance(p: float) -> bool:
        return bool(torch.rand((), generator=generator) < p)

    if chance(augment_p):
        if chance(jitter_p):
            t, n = out.nonzero(as_tuple=True)
            shift = torch.round(torch.randn(t.shape, generator=generator) * jitter_sigma).long()
            out = torch.zeros_like(pattern)
            out[(t + shift).clamp(0, steps - 1), n] = 1.0
        if chance(erase_p):
            size_n, size_t = min(erase_size, inputs), min(erase_size, steps)
            n0 = int(torch.randint(0, inputs - size_n + 1, (), generator=generator))
            if chance(0.5):  # a block of inputs x steps
                t0 = int(torch.randint(0, steps - size_t + 1, (), generator=generator))
                out[t0 : t0 + size_t, n0 : n0 + size_n] = 0.0
            else:  # a band of input rows, all steps
                out[:, n0 : n0 + size_n] = 0.0
    noise = torch.rand(out.shape, generator=generator) < noise_p
    return torch.maximum(out, noise.to(out.dtype))


class GlyphPatternDataset(Dataset):
    """``len = patterns x repeats`` items ``(noisy input [T, N], clean target delayed [T, N])``.

    Items are drawn afresh from the global torch generator at every access (training); with
    ``fixed_seed`` every item is a fixed noisy sample (validation and test sets).
    """

    def __init__(
        self,
        patterns: Tensor,
        repeats: int,
        delay: int = 4,
        fixed_seed: int | None = None,
        **augment: float,
    ) -> None:
        if patterns.dim() != 3:
            raise ValueError(f"patterns must be [count, T, N], got shape {tuple(patterns.shape)}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        if not 0 <= delay < patterns.shape[1]:
            raise ValueError(f"delay must lie in [0, {patterns.shape[1]}), got {delay}")
        self.patterns, self.repeats, self.delay = patterns, int(repeats), int(delay)
        self.augment = augment
        self.targets = torch.stack([delay_pattern(p, delay) for p in patterns])
        self.fixed = None
        if fixed_seed is not None:
            self.fixed = [self._draw(i, torch.Generator().manual_seed(int(fixed_seed) * 1_000_003 + i)) for i in range(len(self))]

    def __len__(self) -> int:
        return self.patterns.shape[0] * self.repeats

    def _draw(self, index: int, generator: torch.Generator | None) -> Tensor:
        return augment_pattern(self.patterns[index % self.patterns.shape[0]], generator, **self.augment)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        noisy = self.fixed[index] if self.fixed is not None else self._draw(index, None)
        return noisy, self.targets[index % self.patterns.shape[0]]
