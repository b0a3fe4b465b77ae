"""Scoring one model against one neural data set with any metric: :func:`score_features` and
:func:`score_model` (extraction + scoring), returning a :class:`~cortexsnn.similarity.results.ScoreTable`.

Neural targets (``neural``): a :class:`~cortexsnn.data.neural.NeuralData` (every area's
``[stimuli, neurons]`` responses), or a mapping ``area -> [stimuli, neurons]`` array or
``area -> RDMSet`` (an area known only by RDMs, e.g. 4 subjects' human IT; RDM metrics only: the
score is the mean over the set's RDMs of the comparison with each, and the ceiling the
leave-one-out lower / upper bound). An RDM given where responses are expected is refused.

Ceilings use seed 2023 (as Huang et al., NeurIPS 2024); the bootstrap uses ``bootstrap_seed`` (0),
one batched resampling for every layer (:func:`~cortexsnn.similarity.bootstrap.bootstrap_rdm_cis`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cortexsnn.errors import InvalidArgumentError

from ._checks import DegenerateInputError, SilentLayerError, as_matrix, degenerate_flag
from .ceilings import bootstrap_ci, rdm_set_ceiling, split_half_neuron_ceiling, split_half_trial_ceiling
from .cka import _rbf_kernel, cka_from_grams
from .cca import svcca, truncated_svd
from .compare import compare_rdms
from .rdm import gram, rdm, upper_triangle
from .regression import pca_ridge_r2, tsvd_regression
from .results import SEED_METRIC_NAMES, ScoreTable, canonical_metric, versions

__all__ = ["MetricOptions", "score_features", "score_model"]

_RDM_METRICS = ("rsa", "tsrsa")
_ABLATION_SEED = 2023

# ----------------------------------------------------------------------------- options and targets
@dataclass
class MetricOptions:
    """Choices of the metrics (defaults: Huang et al.'s procedures with the project's corrections).

    Attributes:
        compare, ties, rdm_metric: RSA / TSRSA (``ties="ordinal"`` = Huang et al.'s ranking).
        precision: Gram accumulation of the RDMs / CKA (``"float32"`` is ~2x faster on a CPU).
        n_components, svd_solver, svd_random_state: SVCCA / TSVD-regression (``"sklearn"`` = seed).
        reduce_neural: SVCCA: reduce the neural side too (``None``: only for allen_natural_scenes, as Huang et al., AAAI 2023).
        alpha, cv, cv_random_state: ridge penalty; PCA-ridge folds or ``"in_sample"`` (Huang et al., NeurIPS 2024).
        cka: ``"linear"``, ``"rbf"``, ``"linear-debiased"`` or ``"rbf-debiased"``; rbf_threshold.
    """

    compare: str = "spearman"
    ties: str = "average"
    rdm_metric: str = "correlation"
    precision: str = "float64"
    n_components: int = 40
    svd_solver: str = "gram"
    svd_random_state: int = 2022
    reduce_neural: bool | None = None
    alpha: float = 1.0
    cv: int | str = 5
    cv_random_state: int = 0
    cka: str = "linear"
    rbf_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.cka not in ("linear", "rbf", "linear-debiased", "rbf-debiased"):
            raise ValueError(f"cka must be 'linear', 'rbf', 'linear-debiased' or 'rbf-debiased', got {self.cka!r}")


@dataclass
class _Area:
    name: str
    y: Tensor | None = None  # [stimuli, neurons] float64
    rdms: np.ndarray | None = None  # [subjects, n, n]
    trials: np.ndarray | None = None  # [trials, stimuli, neurons]
    notes: list[str] = field(default_factory=list)


def _targets(neural: Any, metric: str, min_neurons: int = 2) -> tuple[list[_Area], dict[str, Any]]:
    from cortexsnn.data.neural import NeuralData, RDMSet

    info: dict[str, Any] = {}
    areas: list[_Area] = []
    if isinstance(neural, NeuralData):
        info = {"neural_meta": neural.meta}
        for a in neural.areas:
            r = neural.responses[a]
            areas.append(_Area(a, torch.as_tensor(neural[a], dtype=torch.float64), trials=r if r.ndim == 3 else None))
    elif isinstance(neural, Mapping):
        for a, v in neural.items():
            if isinstance(v, RDMSet):
                if metric not in _RDM_METRICS:
                    raise ValueError(f"area {a!r} is given as RDMs only; metric {metric!r} needs responses "
                                     f"(use one of {list(_RDM_METRICS)})")
                areas.append(_Area(str(a), rdms=np.asarray(v.rdms, dtype=np.float64)))
            else:
                areas.append(_Area(str(a), as_matrix(v, f"responses of {a!r}").to(torch.float64)))
    else:
        raise TypeError(f"neural must be NeuralData or a mapping area -> responses / RDMSet, got {type(neural).__name__}")
    if not areas:
        raise ValueError("no neural areas to score against")
    n = {(ar.y.shape[0] if ar.y is not None else ar.rdms.shape[1]) for ar in areas}
    if len(n) != 1:
        raise ValueError(f"the areas hold different numbers of stimuli: {sorted(n)}")
    for ar in areas:
        if ar.y is None:
            continue
        if not torch.isfinite(ar.y).all():
            raise ValueError(f"responses of {ar.name!r} hold NaN or infinite values")
        if metric in ("regression", "pca-ridge", "svcca", "cka"):
            constant = ((ar.y.max(dim=0).values - ar.y.min(dim=0).values) == 0).nonzero().flatten()
            if constant.numel():
                keep = torch.ones(ar.y.shape[1], dtype=torch.bool)
                keep[constant] = False
                ar.y = ar.y[:, keep]
                ar.notes.append(f"{constant.numel()} neurons with identical responses to every stimulus dropped")
        if ar.y.shape[1] < min_neurons:
            raise ValueError(f"area {ar.name!r} has {ar.y.shape[1]} usable neurons; at least {min_neurons} are needed "
                             "(too strict a filter?)")
    return areas, info


def _drop_first(x: Tensor, metric: str) -> Tensor:
    return x[1:] if metric == "tsrsa" else x


def _neural_rdm(area: _Area, metric: str, opt: MetricOptions, device: Any) -> Tensor:
    """The area's RDM, or the stack of its subjects' RDMs ``[S, n, n]``."""
    if area.rdms is not None:
        r = torch.as_tensor(area.rdms)
        return r[:, 1:, 1:] if metric == "tsrsa" else r
    try:
        return rdm(_drop_first(area.y, metric), opt.rdm_metric, precision=opt.precision, device=device)  # type: ignore[arg-type]
    except SilentLayerError as exc:
        raise ValueError(f"the neural RDM of {area.name!r} is undefined: {exc}") from exc


def _compare_to_area(model_rdm: Tensor, target: Tensor, opt: MetricOptions) -> float:
    if target.dim() == 3:
        return float(np.mean([compare_rdms(model_rdm, t, opt.compare, ties=opt.ties) for t in target]))  # type: ignore[arg-type]
    return compare_rdms(model_rdm, target, opt.compare, ties=opt.ties)  # type: ignore[arg-type]


def _bootstrap(model_rdm: Tensor, target: Tensor, opt: MetricOptions, n_boot: int, seed: int) -> tuple[float, float]:
    if target.dim() == 2:
        _, lo, hi = bootstrap_ci(model_rdm, target, method=opt.compare, n_boot=n_boot, random_state=seed,  # type: ignore[arg-type]
                                 statistic=None if opt.ties == "average" else
                                 (lambda a, b: compare_rdms(a, b, opt.compare, ties=opt.ties)))  # type: ignore[arg-type]
        return lo, hi
    # several subjects: one stimulus resampling shared by all, the mean over subjects per replicate.
    # The second "RDM" carries pair ids, so the statistic can pick each subject's same pairs.
    n = target.shape[1]
    subjects = torch.stack([upper_triangle(t) for t in target])
    ids = torch.zeros(n, n, dtype=torch.float64)
    iu = torch.triu_indices(n, n, offset=1)
    ids[iu[0], iu[1]] = torch.arange(1, iu.shape[1] + 1, dtype=torch.float64)
    ids = ids + ids.T

    def stat(vec_model: Tensor, vec_ids: Tensor) -> float:
        idx = vec_ids.long() - 1
        return float(np.mean([compare_rdms(vec_model, s[idx], opt.compare, ties=opt.ties) for s in subjects]))  # type: ignore[arg-type]

    _, lo, hi = bootstrap_ci(model_rdm, ids, n_boot=n_boot, random_state=seed, statistic=stat)
    return lo, hi


def _ceiling(area: _Area, metric: str, opt: MetricOptions, kind: str, n_splits: int, seed: int) -> dict | None:
    if metric not in _RDM_METRICS or kind == "none":
        return None
    if area.rdms is not None:
        if area.rdms.shape[0] < 2:
            return None
        r = area.rdms[:, 1:, 1:] if metric == "tsrsa" else area.rdms
        lo, up = rdm_set_ceiling(r, method=opt.compare)  # type: ignore[arg-type]
        return {"kind": "leave-one-subject-out", "lower": lo, "upper": up, "denominator": up,
                "method": f"leave-one-subject-out ({area.rdms.shape[0]} RDMs, rsatoolbox pooling, {opt.compare}); "
                          "normalised scores divide by the upper bound"}
    use_trials = kind == "trials" or (kind == "auto" and area.trials is not None and area.trials.shape[0] >= 2
                                      and metric == "rsa")
    if use_trials:
        if area.trials is None:
            raise ValueError(f"a trial split-half ceiling needs trials; area {area.name!r} has trial averages only")
        t = area.trials[:, 1:] if metric == "tsrsa" else area.trials
        m, s = split_half_trial_ceiling(t, n_splits=n_splits, random_state=seed, rdm_metric=opt.rdm_metric,  # type: ignore[arg-type]
                                        compare=opt.compare, ties=opt.ties)  # type: ignore[arg-type]
        return {"kind": "split-half", "mean": m, "sem": s, "denominator": m,
                "method": f"split-half over trials, Spearman-Brown corrected, mean over {n_splits} splits (sem: its "
                          "standard error)"}
    assert area.y is not None
    m, s = split_half_neuron_ceiling(area.y, n_splits=n_splits, random_state=seed, drop_first=(metric == "tsrsa"),
                                     rdm_metric=opt.rdm_metric, compare=opt.compare, ties=opt.ties)  # type: ignore[arg-type]
    return {"kind": "split-half", "mean": m, "sem": s, "denominator": m,
            "method": f"split-half over neurons (Huang et al., NeurIPS 2024), mean over {n_splits} splits (sem: its "
                      "standard error), no Spearman-Brown"}


def _is_silent(x: Tensor, chunk: int = 1 << 22) -> bool:
    """True when every feature takes the same value for every stimulus (no stimulus information)."""
    cols = max(1, chunk // max(1, x.shape[0]))
    for s in range(0, x.shape[1], cols):
        block = x[:, s:s + cols]
        if not torch.isfinite(block).all():
            return False  # not silent: broken; the metric reports it
        if (block.amax(dim=0) != block.amin(dim=0)).any():
            return False
    return True


class _LayerScorer:
    """Per-layer caches (RDM, TSVD scores, Gram) and per-area scoring for one metric."""

    def __init__(self, metric: str, areas: list[_Area], opt: MetricOptions, neural_dataset: str, device: Any,
                 n_boot: int, bootstrap_seed: int) -> None:
        self.metric, self.areas, self.opt, self.device = metric, areas, opt, device
        self.n_boot, self.bootstrap_seed = n_boot, bootstrap_seed
        # Spearman (ties averaged) and Pearson bootstraps run batched over every layer at the end
        # (bootstrap_rdm_cis: the same draws and bounds as bootstrap_ci, one resampling for all layers)
        self.batched = metric in _RDM_METRICS and opt.ties == "average" and opt.compare in ("spearman", "pearson")
        self.reduce_neural = opt.reduce_neural if opt.reduce_neural is not None else neural_dataset == "allen_natural_scenes"
        self._neural: dict[str, Any] = {}

    def neural(self, area: _Area) -> Any:
        if area.name not in self._neural:
            m, o = self.metric, self.opt
            if m in _RDM_METRICS:
                v: Any = _neural_rdm(area, m, o, self.device)
            elif m == "svcca" and self.reduce_neural and area.y.shape[1] > o.n_components:  # type: ignore[union-attr]
                v = truncated_svd(area.y, o.n_components, svd_solver=o.svd_solver,  # type: ignore[arg-type]
                                  random_state=o.svd_random_state, device=self.device)
            elif m == "cka":
                g = gram(area.y, center="columns", precision=o.precision, device=self.device)  # type: ignore[arg-type]
                v = _rbf_kernel(g, o.rbf_threshold) if o.cka.startswith("rbf") else g
            else:
                v = area.y
            self._neural[area.name] = v
        return self._neural[area.name]

    def layer(self, x: Tensor) -> Any:
        """What every area's score of this layer needs (raises SilentLayerError for a silent layer)."""
        m, o = self.metric, self.opt
        if m in _RDM_METRICS:
            return rdm(_drop_first(x, m), o.rdm_metric, precision=o.precision, device=self.device)  # type: ignore[arg-type]
        if m in ("svcca", "regression"):
            if x.shape[1] > o.n_components:
                return truncated_svd(x, o.n_components, svd_solver=o.svd_solver,  # type: ignore[arg-type]
                                     random_state=o.svd_random_state, device=self.device)
            return x.to(torch.float64)
        if m == "cka":
            g = gram(x, center="columns", precision=o.precision, device=self.device)  # type: ignore[arg-type]
            return _rbf_kernel(g, o.rbf_threshold) if o.cka.startswith("rbf") else g
        return x

    def score(self, cached: Any, area: _Area) -> tuple[float, float, float]:
        """``(score, ci_low, ci_high)`` (NaN bounds without bootstrap)."""
        m, o = self.metric, self.opt
        target = self.neural(area)
        lo = hi = math.nan
        if m in _RDM_METRICS:
            s = _compare_to_area(cached, target, o)
            if self.n_boot and not self.batched:
                lo, hi = _bootstrap(cached, target, o, self.n_boot, self.bootstrap_seed)
        elif m == "svcca":
            s = svcca(cached, target, n_components=o.n_components, reduce_y=False, device=self.device)
        elif m == "regression":
            s = float(tsvd_regression(cached, target, n_components=o.n_components, alpha=o.alpha, device=self.device))
        elif m == "pca-ridge":
            s = float(pca_ridge_r2(cached, target, n_components=o.n_components, alpha=o.alpha, cv=o.cv,  # type: ignore[arg-type]
                                   random_state=o.cv_random_state, device=self.device))
        else:
            s = cka_from_grams(cached, target, debiased=o.cka.endswith("debiased"))
        return s, lo, hi


def _header(model: str, metric: str, neural_dataset: str, opt: MetricOptions, areas: list[_Area], info: dict,
            extra: dict | None) -> dict:
    config = {"metric_options": asdict(opt), "metric_name_seed": SEED_METRIC_NAMES[metric]}
    notes = {a.name: a.notes for a in areas if a.notes}
    if notes:
        config["neural_notes"] = notes
    config["neurons"] = {a.name: (int(a.y.shape[1]) if a.y is not None else None) for a in areas}
    if info.get("neural_meta"):
        config["neural_preprocessing"] = info["neural_meta"].get("preprocessing", [])
        config["neural_source"] = info["neural_meta"].get("source")
    config.update(extra or {})
    return config


def score_features(
    features: Iterable[tuple[str, Any]],
    neural: Any,
    *,
    metric: str = "rsa",
    model: str = "model",
    neural_dataset: str = "neural",
    options: MetricOptions | None = None,
    ceiling: Literal["auto", "neurons", "trials", "none"] = "auto",
    ceiling_splits: int = 100,
    n_boot: int = 0,
    bootstrap_seed: int = 0,
    best_layer: Mapping[str, str] | None = None,
    device: str | torch.device | None = None,
    config: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScoreTable:
    """The layers x areas score matrix of one model.

    Args:
        features: ``(layer, [stimuli, F])`` pairs in layer order (e.g. from
            :func:`~cortexsnn.similarity.features.extract_features`); consumed one at a time.
        neural: targets (see the module docstring); rows in the same stimulus order as the features.
        metric: one of :data:`METRICS` (or Huang et al.'s name: ``"TSRSA"``, ``"SVCCA"``, ...).
        ceiling: RDM metrics only: ``"neurons"`` (split-half over neurons, Huang et al. (NeurIPS 2024); first frame
            dropped for TSRSA), ``"trials"`` (split-half over trials, Spearman-Brown), ``"auto"``
            (trials for RSA when the data have them, else neurons; leave-one-out for RDM sets), ``"none"``.
        ceiling_splits: random splits of the split-half ceilings (seed 2023).
        n_boot: bootstrap replicates over stimuli for the confidence intervals (RDM metrics; 0 = none).
        best_layer: ``area -> layer``: score only each area's given layer (others stay NaN).
        config: extra entries recorded in ``ScoreTable.config``.
        progress: called with a short message after each layer.

    A layer whose score against an area would mean nothing is not scored but flagged: its score is
    NaN and ``ScoreTable.flags[layer][area]`` says why (a silent layer: ``"degenerate: constant
    representation"``; CCA-family metrics with too many features: ``"cca: features >= stimuli
    (...)"``); it is never a best layer. The flags travel into ``results.json``, ``scores.csv`` (its
    ``flag`` column) and the report. A run in which no layer can be scored for such a reason (e.g.
    fewer stimuli than the metric's minimum) is refused.

    Raises:
        ValueError: stimulus counts that differ, an area with fewer than 2 usable neurons, a metric
            that needs responses for an area given as RDMs, NaN inputs.
        DegenerateInputError: every layer is degenerate (too few stimuli, or CCA with too many features).
    """
    metric = canonical_metric(metric)
    opt = options or MetricOptions()
    areas, info = _targets(neural, metric)
    n_stim = areas[0].y.shape[0] if areas[0].y is not None else areas[0].rdms.shape[1]  # type: ignore[union-attr]
    if best_layer is not None:
        unknown = [a for a in best_layer if a not in [ar.name for ar in areas]]
        if unknown:
            raise ValueError(f"best_layer names areas {unknown} that the neural data do not hold "
                             f"({[ar.name for ar in areas]})")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InvalidArgumentError(f"n_boot must be >= 0 (0: no intervals; 1000 is usual), got {n_boot!r}")
    scorer = _LayerScorer(metric, areas, opt, neural_dataset, device, n_boot, bootstrap_seed)
    layers: list[str] = []
    rows, lows, highs = [], [], []
    boot_rdms: list[tuple[int, Tensor]] = []
    silent: list[str] = []
    reasons: dict[str, str] = {}
    # layer -> area -> why its score is NaN (silent / degenerate): kept beside the NaN in JSON, CSV and report
    flags: dict[str, dict[str, str]] = {}
    degenerate: list[DegenerateInputError] = []
    for name, x in features:
        xm = as_matrix(x, f"features of layer {name!r}")
        if xm.shape[0] != n_stim:
            raise ValueError(f"stimulus counts differ: layer {name!r} has {xm.shape[0]} rows, the neural data "
                             f"{n_stim}; both must hold the same stimuli in the same order")
        wanted = [a.name for a in areas if best_layer is None or best_layer.get(a.name) == name]
        row = np.full(len(areas), math.nan)
        lo, hi = row.copy(), row.copy()
        if wanted:
            if not torch.isfinite(xm).all():
                raise ValueError(f"features of layer {name!r} hold NaN or infinite values")
            if _is_silent(xm):
                silent.append(name)
                reasons[name] = "identical features for every stimulus"
                flags[name] = dict.fromkeys(wanted, "degenerate: constant representation")
            else:
                try:
                    cached = scorer.layer(xm)
                    for j, area in enumerate(areas):
                        if area.name in wanted:
                            try:
                                row[j], lo[j], hi[j] = scorer.score(cached, area)
                            except DegenerateInputError as exc:  # this layer against this area: NaN, flagged
                                degenerate.append(exc)
                                flags.setdefault(name, {})[area.name] = degenerate_flag(exc)
                    if n_boot and scorer.batched:
                        boot_rdms.append((len(rows), cached))
                except SilentLayerError as exc:
                    row[:], lo[:], hi[:] = math.nan, math.nan, math.nan
                    silent.append(name)
                    reasons[name] = str(exc)
                    flags[name] = dict.fromkeys(wanted, degenerate_flag(exc))
                except DegenerateInputError as exc:  # the layer itself (before any area): NaN, flagged
                    row[:], lo[:], hi[:] = math.nan, math.nan, math.nan
                    degenerate.append(exc)
                    flags[name] = dict.fromkeys(wanted, degenerate_flag(exc))
        layers.append(name)
        rows.append(row)
        lows.append(lo)
        highs.append(hi)
        del xm, x
        if progress:
            shown = ", ".join(f"{a.name} {v:.4f}" for a, v in zip(areas, row) if math.isfinite(v))
            flagged = "; ".join(f"{a} flagged ({f})" for a, f in flags.get(name, {}).items()) if name not in reasons else ""
            progress(f"{name}: " + (f"silent ({reasons[name][:80]})" if name in reasons
                                    else "; ".join(filter(None, (shown, flagged))) or "not scored"))
    if not layers:
        raise ValueError("no layers were given")
    if degenerate and not np.isfinite(np.array(rows)).any():
        raise degenerate[0]  # the whole run is degenerate (e.g. too few stimuli): refused, not a table of flags
    if boot_rdms:
        from .bootstrap import bootstrap_rdm_cis

        low_all, high_all = bootstrap_rdm_cis(torch.stack([r for _, r in boot_rdms]), [scorer.neural(a) for a in areas],
                                              n_boot=n_boot, random_state=bootstrap_seed, method=opt.compare)  # type: ignore[arg-type]
        for k, (i, _) in enumerate(boot_rdms):
            scored = np.isfinite(rows[i])
            lows[i][scored], highs[i][scored] = low_all[k][scored], high_all[k][scored]
    ceilings = None
    if metric in _RDM_METRICS and ceiling != "none":
        ceilings = {}
        for area in areas:
            c = _ceiling(area, metric, opt, ceiling, ceiling_splits, _ABLATION_SEED)
            if c is not None:
                ceilings[area.name] = c
        ceilings = ceilings or None
    extra = dict(config or {})
    if best_layer is not None:
        extra["best_layer"] = dict(best_layer)
    if reasons:
        extra["silent_reasons"] = reasons
    extra.update(ceiling=ceiling, ceiling_splits=ceiling_splits, n_boot=n_boot)
    boot = n_boot > 0 and metric in _RDM_METRICS
    return ScoreTable(
        model=model, metric=metric, neural_dataset=neural_dataset, layers=layers, areas=[a.name for a in areas],
        scores=np.array(rows), ci_low=np.array(lows) if boot else None, ci_high=np.array(highs) if boot else None,
        ceiling=ceilings, silent_layers=silent, config=_header(model, metric, neural_dataset, opt, areas, info, extra),
        versions=versions(), flags=flags,
        seeds={"ceiling": _ABLATION_SEED, "bootstrap": bootstrap_seed, "svd": opt.svd_random_state,
               "cv": opt.cv_random_state},
    )


def score_model(
    model: nn.Module,
    stimuli: Tensor,
    neural: Any,
    *,
    metric: str = "rsa",
    model_name: str = "model",
    neural_dataset: str = "neural",
    layers: Sequence[str] | None = None,
    mode: Literal["static", "movie", "cnn"] = "static",
    time_steps: int = 4,
    chunk_frames: int = 16,
    batch_size: int = 16,
    zscore: bool = True,
    device: str | torch.device | None = None,
    max_bytes: int | None = None,
    front_len: int | None = None,
    best_layer: Mapping[str, str] | None = None,
    config: dict | None = None,
    **score_options: Any,
) -> ScoreTable:
    """:func:`~cortexsnn.similarity.features.extract_features` then :func:`score_features`.

    ``front_len`` (``--front-len``) scores only the first ``front_len`` stimuli / frames (the model
    sees only those: its outputs for them do not depend on later frames). ``best_layer`` extracts
    only the areas' best layers. ``max_bytes``: the extractor's memory budget (``None``: its default,
    2 GiB). ``score_options`` go to :func:`score_features`. The stimulus count is checked against
    the neural data before anything is run.
    """
    from .features import DEFAULT_MAX_BYTES, default_layers, extract_features

    areas, _ = _targets(neural, canonical_metric(metric))
    n_neural = areas[0].y.shape[0] if areas[0].y is not None else areas[0].rdms.shape[1]  # type: ignore[union-attr]
    if stimuli.shape[0] != n_neural:
        raise ValueError(f"stimulus count mismatch: {stimuli.shape[0]} stimuli for {n_neural} neural responses; both "
                         "must hold the same stimuli in the same order")
    stimuli, neural = _front(stimuli, neural, front_len)
    names = list(default_layers(model, mode) if layers is None else layers)
    if best_layer is not None:
        missing = sorted({v for v in best_layer.values() if v not in names})
        if missing:
            raise ValueError(f"best layers {missing} are not layers of this model ({names})")
        names = [n for n in names if n in set(best_layer.values())]
    feats = extract_features(model, stimuli, layers=names, mode=mode, time_steps=time_steps, chunk_frames=chunk_frames,
                             batch_size=batch_size, zscore=zscore, device=device,
                             max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes)
    extra = {"mode": mode, "time_steps": time_steps if mode == "static" else None,
             "chunk_frames": chunk_frames if mode == "movie" else None, "zscore": zscore and mode != "movie",
             "n_stimuli": int(stimuli.shape[0]), "front_len": front_len, **(config or {})}
    return score_features(feats, neural, metric=metric, model=model_name, neural_dataset=neural_dataset,
                          best_layer=best_layer, device=device, config=extra, **score_options)


def _front(stimuli: Tensor, neural: Any, front_len: int | None) -> tuple[Tensor, Any]:
    if front_len is None:
        return stimuli, neural
    n = stimuli.shape[0]
    if not 3 <= front_len <= n:
        raise ValueError(f"front_len must be in [3, {n}] (the number of frames), got {front_len}")
    return stimuli[:front_len], _select_rows(neural, np.arange(front_len), f"first {front_len} frames (front_len)")


def _select_rows(neural: Any, idx: np.ndarray, reason: str) -> Any:
    from cortexsnn.data.neural import NeuralData, RDMSet

    if isinstance(neural, NeuralData):
        return neural.select_stimuli(idx, reason)
    out = {}
    for a, v in neural.items():
        if isinstance(v, RDMSet):
            out[a] = replace(v, rdms=v.rdms[:, idx][:, :, idx],
                             stimulus_ids=None if v.stimulus_ids is None else v.stimulus_ids[idx])
        else:
            out[a] = (v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v))[idx]
    return out


