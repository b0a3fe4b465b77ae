"""Glyph spike patterns of the associative-memory task."""
from __future__ import annotations

import pytest
import torch

from cortexsnn.data.glyph_patterns import (
    GlyphPatternDataset,
    augment_pattern,
    delay_pattern,
    make_glyph_patterns,
    render_glyph,
)


@pytest.fixture(scope="module")
def patterns():
    return make_glyph_patterns(10, 300, 300)


def test_patterns_are_sparse_binary_and_distinct(patterns):
    assert patterns.shape == (10, 300, 300)
    assert set(patterns.unique().tolist()) == {0.0, 1.0}
    t, n = patterns.sum(0).nonzero(as_tuple=True)
    assert (t % 5 == 0).all() and (n % 3 == 0).all()  # every 5th step, every 3rd row
    counts = patterns.sum((1, 2))
    assert (counts > 500).all() and (counts < 3000).all()
    flat = patterns.flatten(1)
    overlap = flat @ flat.T
    assert (overlap.diag() > overlap.fill_diagonal_(0).max(1).values).all()


def test_render_glyph_letters_and_shapes():
    assert render_glyph("A", 60, 80).shape == (60, 80)
    assert render_glyph("circle").sum() > 0 and render_glyph("X").sum() > 0
    with pytest.raises(ValueError, match="unknown glyph"):
        render_glyph("hexagon")


def test_noise_only_augmentation_adds_spikes_at_the_given_rate(patterns):
    g = torch.Generator().manual_seed(0)
    empty = torch.zeros(300, 300)
    noisy = augment_pattern(empty, g, augment_p=0.0, noise_p=0.005)
    assert noisy.mean().item() == pytest.approx(0.005, abs=0.001)
    clean = augment_pattern(patterns[0], g, augment_p=0.0, noise_p=0.0)
    torch.testing.assert_close(clean, patterns[0])


def test_jitter_moves_spikes_by_about_one_step(patterns):
    g = torch.Generator().manual_seed(1)
    jittered = augment_pattern(patterns[0], g, augment_p=1.0, jitter_p=1.0, erase_p=0.0, noise_p=0.0)
    assert not torch.equal(jittered, patterns[0])
    # the rows (inputs) are kept; spikes move along time only, at most a few steps
    assert torch.equal(jittered.sum(0) > 0, patterns[0].sum(0) > 0) or jittered.sum() <= patterns[0].sum()
    blurred = torch.nn.functional.max_pool1d(patterns[0].T.unsqueeze(0), 9, stride=1, padding=4)[0].T
    assert (jittered <= blurred).all()


def test_erasure_zeroes_a_block_or_a_band():
    g = torch.Generator().manual_seed(2)
    full = torch.ones(300, 300)
    removed = set()
    for _ in range(12):
        erased = augment_pattern(full, g, augment_p=1.0, jitter_p=0.0, erase_p=1.0, erase_size=40, noise_p=0.0)
        missing = int((erased == 0).sum())
        assert missing in (40 * 40, 40 * 300)  # a 40x40 block of inputs x steps, or 40 input rows
        if missing == 40 * 300:
            rows = (erased == 0).all(0).nonzero().flatten()
            assert rows.numel() == 40 and (rows.diff() == 1).all()
        removed.add(missing)
    assert removed == {40 * 40, 40 * 300}


def test_dataset_items_fixed_seed_and_delay(patterns):
    data = GlyphPatternDataset(patterns, repeats=3, delay=4, fixed_seed=5)
    assert len(data) == 30
    noisy, target = data[12]
    torch.testing.assert_close(target, delay_pattern(patterns[2], 4))
    assert torch.equal(target[4:], patterns[2][:-4]) and target[:4].sum() == 0
    again = GlyphPatternDataset(patterns, repeats=3, delay=4, fixed_seed=5)
    assert torch.equal(again[12][0], noisy)
    other = GlyphPatternDataset(patterns, repeats=3, delay=4, fixed_seed=6)
    assert not torch.equal(other[12][0], noisy)
    with pytest.raises(IndexError):
        data[30]
