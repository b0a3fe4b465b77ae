"""The exact spike-count Gram paths (packed bits + POPCNT, exact float32 products) against float64."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from cortexsnn import similarity as S
from cortexsnn.similarity import _bitgram

rdm_module = importlib.import_module("cortexsnn.similarity.rdm")

needs_kernel = pytest.mark.skipif(_bitgram.kernel() is None, reason="no C compiler for the spike Gram kernel")


def _spikes(n: int, p: int, top: int = 1, seed: int = 0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.02, 0.4, size=(n, 1))  # rows with different firing rates
    x = (rng.random((n, p)) < rate).astype(dtype)
    for _ in range(top - 1):  # SEW ADD-like counts
        x += rng.random((n, p)) < rate
    return x


def _reference_rdm(x: np.ndarray, metric: str) -> np.ndarray:
    z = x.astype(np.float64)
    if metric == "correlation":
        return 1.0 - np.corrcoef(z)
    sq = (z * z).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0)
    return d2 if metric == "sqeuclidean" else np.sqrt(d2)


@needs_kernel
@pytest.mark.parametrize("shape", [(3, 1), (5, 63), (40, 64), (70, 65), (33, 1000), (130, 5000)])
def test_bit_gram_counts_common_spikes_exactly(shape):
    x = _spikes(*shape, seed=shape[0])
    found = _bitgram.scan(x)
    assert found.kind == "binary"
    assert np.array_equal(found.sums, x.sum(1).astype(np.int64))
    xi = x.astype(np.int64)
    assert np.array_equal(_bitgram.bit_gram(found.bits, threads=2), xi @ xi.T)
    assert np.array_equal(_bitgram.bit_gram(found.bits, threads=1), xi @ xi.T)


@needs_kernel
def test_scan_classifies_values():
    assert _bitgram.scan(_spikes(6, 100, top=3)).kind == "integer"
    assert _bitgram.scan(_spikes(6, 100, top=3)).top == float(_spikes(6, 100, top=3).max())
    for bad in (np.full((4, 9), 0.5), -np.ones((4, 9)), np.array([[0.0, np.nan], [1.0, 0.0]]),
                np.array([[0.0, 2.0**25], [1.0, 0.0]])):
        assert _bitgram.scan(bad).kind == "other"
    # a strided (non-contiguous) view is left to the BLAS path
    assert _bitgram.scan(_spikes(6, 100)[:, ::2]) is None


@needs_kernel
@pytest.mark.parametrize("top", [1, 3])
@pytest.mark.parametrize("metric", ["correlation", "euclidean", "sqeuclidean", "cosine"])
def test_rdm_of_spike_counts_matches_float64(metric, top):
    x = _spikes(90, 3000, top=top, seed=top)
    ours = S.rdm(x, metric).numpy()
    if metric == "cosine":
        z = x.astype(np.float64)
        nz = z / np.linalg.norm(z, axis=1, keepdims=True)
        ref = 1 - nz @ nz.T
        np.fill_diagonal(ref, 0)
    else:
        ref = _reference_rdm(x, metric)
        np.fill_diagonal(ref, 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-14, atol=1e-12)


@needs_kernel
def test_spike_path_is_taken_and_analog_input_is_not(monkeypatch):
    calls = []
    real = _bitgram.bit_gram
    monkeypatch.setattr(_bitgram, "bit_gram", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = _spikes(20, 500)
    S.rdm(x)
    assert calls == [1]
    S.rdm(x + 0.25)  # analog values: the BLAS path
    assert calls == [1]


@needs_kernel
def test_tsrsa_on_spikes_equals_float64_procedure():
    x = _spikes(300, 4000, seed=3)
    rng = np.random.default_rng(4)
    y = x[:, :50] @ rng.random((50, 40)) + rng.random((300, 40))
    iu = np.triu_indices(299, 1)
    from scipy.stats import spearmanr

    ref = spearmanr(_reference_rdm(x[1:], "correlation")[iu], _reference_rdm(y[1:], "correlation")[iu])[0]
    # spike RDMs hold mathematically tied values that float64 rounding in the reference splits
    # (ours computes the same ties from exact integer products), hence 1e-6 and not 1e-12
    assert S.tsrsa(x, y) == pytest.approx(ref, abs=1e-6)
    ours_rdm = S.rdm(x[1:]).numpy()[iu]
    assert S.tsrsa(x, y) == pytest.approx(spearmanr(ours_rdm, S.rdm(y[1:]).numpy()[iu])[0], abs=1e-12)
    # the spike path is exact in either precision
    assert torch.equal(S.rdm(x, precision="float32"), S.rdm(x))


def test_fallback_without_kernel(monkeypatch):
    monkeypatch.setattr(_bitgram, "kernel", lambda: None)
    x = _spikes(30, 700)
    ref = _reference_rdm(x, "correlation")
    np.fill_diagonal(ref, 0)
    np.testing.assert_allclose(S.rdm(x).numpy(), ref, atol=1e-12)
    assert torch.is_tensor(S.rdm(x))
