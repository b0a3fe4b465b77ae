"""The movie ablations of Huang et al. (NeurIPS 2024), scored with :mod:`cortexsnn.similarity.scoring`.

* :func:`clip_ablation` (``--trial-for-clip K --clip-len L``), :func:`shuffle_ablation`
  (``--shuffle --window W``), :func:`replace_ablation` (``--replace --replace-type T --window W``),
  all with ``trials`` repeats (``--trial-for-ablation``), optional ``front_len`` (``--front-len``)
  and ``best_layer`` (``--best-layer``, see :func:`~cortexsnn.similarity.results.best_layers_from_results`).

Random draws are reproducible: ablations use ``numpy.random.RandomState(seed)`` with seed 2023 as
Huang et al. (NeurIPS 2024) (the draws are made once and shared by every layer, which is what their
re-seeding before each layer achieves). Each returns a :class:`~cortexsnn.similarity.results.ScoreTable`
with the per-trial scores.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ._checks import SilentLayerError, as_matrix, degenerate_flag
from .results import ScoreTable, canonical_metric, versions
from .scoring import (
    _ABLATION_SEED,
    _RDM_METRICS,
    MetricOptions,
    _compare_to_area,
    _header,
    _LayerScorer,
    _select_rows,
    _targets,
    score_model,
)

__all__ = ["clip_ablation", "shuffle_ablation", "replace_ablation", "shuffle_within_windows", "chaos_level",
           "replacement_frames"]


def chaos_level(perm: np.ndarray) -> float:
    """SNN-Neural-Similarity-Movie's level of chaos of a frame order: ``1 - Spearman(perm, identity)``."""
    from scipy.stats import spearmanr

    p = np.asarray(perm)
    return float(1.0 - spearmanr(p, np.arange(p.size)).statistic)


def shuffle_within_windows(n: int, window: int, rng: np.random.RandomState) -> np.ndarray:
    """A permutation of ``range(n)`` that shuffles frames within consecutive windows of ``window``
    (the last, shorter window too)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    perm = np.arange(n)
    for s in range(0, n, window):
        perm[s:s + window] = perm[s:s + window][rng.permutation(min(window, n - s))]
    return perm


def replacement_frames(kind: str, indices: Sequence[int], frame_shape: Sequence[int], *,
                       normalization: tuple[Sequence[float], Sequence[float]] | None,
                       scenes: Tensor | None = None, seed: int = _ABLATION_SEED) -> Tensor:
    """The frames that replace movie frames ``indices`` in the replacement ablation, ``[k, C, H, W]``.

    * ``"gaussian"``: standard normal values in the (normalised) input space, the noise image of
      ``torch.randn``; frame ``i`` from a generator seeded with ``seed + i`` (the same frame for the
      same index in every trial, as a fixed noise stimulus set would be).
    * ``"uniform"``: pixels uniform in [0, 1], then normalised with ``normalization``.
    * ``"black"``: pixel value 0, normalised.
    * ``"static"``: ``scenes[i % len(scenes)]`` (a natural-scene stimulus set, already normalised).
    """
    c, h, w = (int(v) for v in frame_shape)
    out = []
    if kind in ("uniform", "black") and normalization is None:
        raise ValueError(f"replace type {kind!r} needs the movie's normalisation (mean, std) to build its frames")
    if kind == "static" and (scenes is None or scenes.dim() != 4 or tuple(scenes.shape[1:]) != (c, h, w)):
        raise ValueError(f"replace type 'static' needs natural-scene stimuli [N, {c}, {h}, {w}]"
                         + ("" if scenes is None else f", got {tuple(scenes.shape)}"))
    if normalization is not None:
        mean = torch.tensor([float(v) for v in normalization[0]]).view(-1, 1, 1)
        std = torch.tensor([float(v) for v in normalization[1]]).view(-1, 1, 1)
    for i in indices:
        if kind == "gaussian":
            g = torch.Generator().manual_seed(seed + int(i))
            out.append(torch.randn(c, h, w, generator=g))
        elif kind == "uniform":
            g = torch.Generator().manual_seed(seed + int(i))
            out.append((torch.rand(c, h, w, generator=g) - mean) / std)
        elif kind == "black":
            out.append((torch.zeros(c, h, w) - mean) / std)
        elif kind == "static":
            out.append(scenes[int(i) % scenes.shape[0]].to(torch.float32))  # type: ignore[index]
        else:
            raise ValueError(f"unknown replace type {kind!r}; choose gaussian, uniform, black or static")
    return torch.stack(out) if out else torch.empty(0, c, h, w)


def _check_rdm_metric(metric: str, what: str) -> str:
    metric = canonical_metric(metric)
    if metric not in _RDM_METRICS:
        raise ValueError(f"the {what} ablation scores sub-RDMs of frames: use metric 'tsrsa' (or 'rsa'), got {metric!r}")
    return metric


def clip_ablation(
    features: Iterable[tuple[str, Any]],
    neural: Any,
    *,
    clip_len: int,
    trials: int = 10,
    metric: str = "tsrsa",
    model: str = "model",
    neural_dataset: str = "neural",
    options: MetricOptions | None = None,
    best_layer: Mapping[str, str] | None = None,
    seed: int = _ABLATION_SEED,
    device: str | torch.device | None = None,
    config: dict | None = None,
) -> ScoreTable:
    """``--trial-for-clip K --clip-len L``: score sub-RDMs of ``L`` consecutive frames.

    Features come from the full continuous run; after the first frame is dropped (TSRSA), ``trials``
    distinct start indices are drawn from ``range(frames - 1 - L + 1)`` (``RandomState(seed).choice``,
    without replacement; the same starts for every layer), and each trial compares the model and
    neural RDMs restricted to frames ``[s, s + L)``. ``trial_scores`` is ``[K, L, A]``; ``scores``
    their mean.
    """
    metric = _check_rdm_metric(metric, "clip")
    opt = options or MetricOptions()
    areas, info = _targets(neural, metric)
    n = areas[0].y.shape[0] if areas[0].y is not None else areas[0].rdms.shape[1]  # type: ignore[union-attr]
    m = n - 1 if metric == "tsrsa" else n
    if not 3 <= clip_len <= m:
        raise ValueError(f"clip_len must be in [3, {m}], got {clip_len}")
    if not 1 <= trials <= m - clip_len + 1:
        raise ValueError(f"trials must be in [1, {m - clip_len + 1}] (distinct starts), got {trials}")
    starts = np.random.RandomState(seed).choice(m - clip_len + 1, trials, replace=False)
    scorer = _LayerScorer(metric, areas, opt, neural_dataset, device, 0, 0)
    layers, per_layer, silent, reasons = [], [], [], {}
    flags: dict[str, dict[str, str]] = {}
    for name, x in features:
        xm = as_matrix(x, f"features of layer {name!r}")
        if xm.shape[0] != n:
            raise ValueError(f"stimulus counts differ: layer {name!r} has {xm.shape[0]} frames, the neural data {n}")
        res = np.full((trials, len(areas)), math.nan)
        wanted = [a.name for a in areas if best_layer is None or best_layer.get(a.name) == name]
        if wanted:
            try:
                full = scorer.layer(xm)
                for j, area in enumerate(areas):
                    if area.name not in wanted:
                        continue
                    target = scorer.neural(area)
                    for k, s in enumerate(starts):
                        sl = slice(int(s), int(s) + clip_len)
                        sub_t = target[..., sl, sl]
                        res[k, j] = _compare_to_area(full[sl, sl], sub_t, opt)
            except SilentLayerError as exc:
                silent.append(name)
                reasons[name] = str(exc)
                flags[name] = dict.fromkeys(wanted, degenerate_flag(exc))
                res[:] = math.nan
        layers.append(name)
        per_layer.append(res)
    trial_scores = np.stack(per_layer, axis=1)  # [K, L, A]
    extra = {**(config or {}), "ablation": {"kind": "clip", "clip_len": clip_len, "trials": trials},
             **({"best_layer": dict(best_layer)} if best_layer else {}), **({"silent_reasons": reasons} if reasons else {})}
    return ScoreTable(model=model, metric=metric, neural_dataset=neural_dataset, layers=layers,
                      areas=[a.name for a in areas], scores=_mean_trials(trial_scores), silent_layers=silent,
                      config=_header(model, metric, neural_dataset, opt, areas, info, extra), versions=versions(),
                      seeds={"ablation": seed}, trial_scores=trial_scores, flags=flags,
                      trials=[{"start": int(s), "frames": [int(s) + 1, int(s) + 1 + clip_len] if metric == "tsrsa"
                               else [int(s), int(s) + clip_len]} for s in starts])


def _mean_trials(trial_scores: np.ndarray) -> np.ndarray:
    out = np.full(trial_scores.shape[1:], math.nan)
    ok = np.isfinite(trial_scores).all(axis=0)
    out[ok] = trial_scores[:, ok].mean(axis=0)
    return out


def _ablation(
    model: nn.Module,
    movie: Tensor,
    neural: Any,
    make_trial: Callable[[np.random.RandomState, int], tuple[Callable[[], Tensor], np.ndarray | None, dict]],
    *,
    trials: int,
    kind_config: dict,
    metric: str,
    model_name: str,
    neural_dataset: str,
    layers: Sequence[str] | None,
    best_layer: Mapping[str, str] | None,
    front_len: int | None,
    mode: Literal["static", "movie", "cnn"],
    time_steps: int,
    chunk_frames: int,
    batch_size: int,
    device: str | torch.device | None,
    options: MetricOptions | None,
    seed: int,
    config: dict | None,
) -> ScoreTable:
    metric = _check_rdm_metric(metric, kind_config["kind"])
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    rng = np.random.RandomState(seed)
    # all random draws first (cheap), the modified movies built one trial at a time (each is a full copy)
    drawn = [make_trial(rng, k) for k in range(trials)]
    tables, details = [], []
    for build, rows, detail in drawn:
        stim = build()
        target = _select_rows(neural, rows, f"{kind_config['kind']} ablation order") if rows is not None else neural
        t = score_model(model, stim, target, metric=metric, model_name=model_name, neural_dataset=neural_dataset,
                        layers=layers, mode=mode, time_steps=time_steps, chunk_frames=chunk_frames,
                        batch_size=batch_size, device=device, front_len=front_len, best_layer=best_layer,
                        options=options, ceiling="none")
        tables.append(t)
        details.append(detail)
        del stim
    first = tables[0]
    trial_scores = np.stack([t.scores for t in tables])
    silent = sorted({s for t in tables for s in t.silent_layers}, key=first.layers.index)
    extra = {**first.config, **(config or {}), "ablation": {**kind_config, "trials": trials}}
    flags: dict[str, dict[str, str]] = {}
    for t in tables:  # a cell flagged in any trial has no mean over the trials (NaN): keep why
        for layer, by_area in t.flags.items():
            for area, why in by_area.items():
                flags.setdefault(layer, {}).setdefault(area, why)
    return ScoreTable(model=model_name, metric=metric, neural_dataset=neural_dataset, layers=first.layers,
                      areas=first.areas, scores=_mean_trials(trial_scores), silent_layers=silent, config=extra,
                      versions=versions(), seeds={"ablation": seed}, trial_scores=trial_scores, trials=details,
                      flags=flags)


def shuffle_ablation(model: nn.Module, movie: Tensor, neural: Any, *, window: int, trials: int = 10,
                     metric: str = "tsrsa", model_name: str = "model", neural_dataset: str = "neural",
                     layers: Sequence[str] | None = None, best_layer: Mapping[str, str] | None = None,
                     front_len: int | None = None, mode: Literal["static", "movie", "cnn"] = "movie",
                     time_steps: int = 4, chunk_frames: int = 16, batch_size: int = 16,
                     device: str | torch.device | None = None, options: MetricOptions | None = None,
                     seed: int = _ABLATION_SEED, config: dict | None = None) -> ScoreTable:
    """``--shuffle --window W``: frames permuted within consecutive windows of ``W``; the shuffled
    movie is fed to the model (one continuous run) and the neural rows are indexed by the same
    permutation (each row stays paired with its frame); TSRSA then drops the first position.
    Each trial records its ``chaos`` (``1 - Spearman(permutation, identity)``)."""
    n = movie.shape[0]

    def make(rng: np.random.RandomState, k: int) -> tuple[Callable[[], Tensor], np.ndarray, dict]:
        perm = shuffle_within_windows(n, window, rng)
        return (lambda: movie[torch.as_tensor(perm)]), perm, {"trial": k, "chaos": chaos_level(perm)}

    return _ablation(model, movie, neural, make, trials=trials, kind_config={"kind": "shuffle", "window": window},
                     metric=metric, model_name=model_name, neural_dataset=neural_dataset, layers=layers,
                     best_layer=best_layer, front_len=front_len, mode=mode, time_steps=time_steps,
                     chunk_frames=chunk_frames, batch_size=batch_size, device=device, options=options, seed=seed,
                     config=config)


def replace_ablation(model: nn.Module, movie: Tensor, neural: Any, *, window: int, replace_type: str,
                     trials: int = 10, normalization: tuple[Sequence[float], Sequence[float]] | None = None,
                     scenes: Tensor | None = None, metric: str = "tsrsa", model_name: str = "model",
                     neural_dataset: str = "neural", layers: Sequence[str] | None = None,
                     best_layer: Mapping[str, str] | None = None, front_len: int | None = None,
                     mode: Literal["static", "movie", "cnn"] = "movie", time_steps: int = 4,
                     chunk_frames: int = 16, batch_size: int = 16, device: str | torch.device | None = None,
                     options: MetricOptions | None = None, seed: int = _ABLATION_SEED,
                     config: dict | None = None) -> ScoreTable:
    """``--replace --replace-type T --window W``: in every window of ``W`` frames one frame, at a
    uniformly random offset, is replaced by the same-index frame of a noise / black / natural-scene
    set (:func:`replacement_frames`); the neural data are unchanged; replacement ratio ``1 / W``."""
    n = movie.shape[0]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    replacement_frames(replace_type, [], movie.shape[1:], normalization=normalization, scenes=scenes)  # validate

    def make(rng: np.random.RandomState, k: int) -> tuple[Callable[[], Tensor], None, dict]:
        idx = np.array([s + rng.randint(min(window, n - s)) for s in range(0, n, window)])

        def build() -> Tensor:
            changed = movie.clone()
            changed[torch.as_tensor(idx)] = replacement_frames(replace_type, idx.tolist(), movie.shape[1:],
                                                               normalization=normalization, scenes=scenes, seed=seed)
            return changed

        return build, None, {"trial": k, "replaced": idx.tolist()}

    cfg = {"kind": "replace", "window": window, "replace_type": replace_type, "ratio": 1.0 / window,
           "normalization": None if normalization is None else [list(map(float, normalization[0])),
                                                                list(map(float, normalization[1]))]}
    return _ablation(model, movie, neural, make, trials=trials, kind_config=cfg, metric=metric, model_name=model_name,
                     neural_dataset=neural_dataset, layers=layers, best_layer=best_layer, front_len=front_len,
                     mode=mode, time_steps=time_steps, chunk_frames=chunk_frames, batch_size=batch_size,
                     device=device, options=options, seed=seed, config=config)
