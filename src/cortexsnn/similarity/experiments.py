"""Layers x areas score tables, best layers, model scores, and the movie ablations of Huang et al. (NeurIPS 2024).

The unit of work is a :class:`ScoreTable`: one metric, one model, one neural dataset; ``scores``
is ``[layers, areas]`` (NaN where a layer was not scored, e.g. a silent layer or a ``--best-layer``
run), with optional bootstrap confidence intervals, noise ceilings per area, the layers flagged as
silent, and everything needed to reproduce it (config, versions, seeds). A model's score is, as in
both seeds, the **max over layers per area, then the mean over areas** (:attr:`ScoreTable.model_score`);
silent layers are never part of that max, and an area with no usable layer makes the model score
NaN rather than being averaged away.

Functions:

* :func:`score_features` - the score matrix from ``(layer, features)`` pairs (what
  :func:`cortexsnn.similarity.features.extract_features` yields) and neural targets.
* :func:`score_model` - extraction + scoring in one call.
* :func:`clip_ablation` (``--trial-for-clip K --clip-len L``), :func:`shuffle_ablation`
  (``--shuffle --window W``), :func:`replace_ablation` (``--replace --replace-type T --window W``),
  all with ``trials`` repeats (``--trial-for-ablation``), optional ``front_len`` (``--front-len``)
  and ``best_layer`` (``--best-layer``, see :func:`best_layers_from_results`).

Neural targets (``neural``): a :class:`~cortexsnn.data.neural.NeuralData` (every area's
``[stimuli, neurons]`` responses), or a mapping ``area -> [stimuli, neurons]`` array or
``area -> RDMSet`` (an area known only by RDMs, e.g. 4 subjects' human IT; RDM metrics only: the
score is the mean over the set's RDMs of the comparison with each, and the ceiling the
leave-one-out lower / upper bound).

Random draws are reproducible: ablations use ``numpy.random.RandomState(seed)`` with seed 2023 as
Huang et al. (NeurIPS 2024) (the draws are made once and shared by every layer, which is what the seed's re-seeding
before each layer achieves); ceilings use 2023 as well; bootstrap uses ``bootstrap_seed`` (0).
"""
from __future__ import annotations

import csv
import io
import json
import math
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cortexsnn.utils.io import atomic_write, atomic_write_text

from ._checks import SilentLayerError, as_matrix
from .ceilings import bootstrap_ci, rdm_set_ceiling, split_half_neuron_ceiling, split_half_trial_ceiling
from .cka import _rbf_kernel, cka_from_grams
from .cca import svcca, truncated_svd
from .compare import compare_rdms
from .rdm import gram, rdm, upper_triangle
from .regression import pca_ridge_r2, tsvd_regression

__all__ = [
    "ScoreTable",
    "MetricOptions",
    "METRICS",
    "SEED_METRIC_NAMES",
    "canonical_metric",
    "score_features",
    "score_model",
    "clip_ablation",
    "shuffle_ablation",
    "replace_ablation",
    "shuffle_within_windows",
    "chaos_level",
    "replacement_frames",
    "best_layers_from_results",
    "versions",
]

#: Metrics of :func:`score_features` (canonical names).
METRICS = ("rsa", "tsrsa", "svcca", "regression", "pca-ridge", "cka")
#: The seeds' spelling of each metric (``--metric`` and the seeds' output folders).
SEED_METRIC_NAMES = {"rsa": "RSA", "tsrsa": "TSRSA", "svcca": "SVCCA", "regression": "TSVD-Regression",
                     "pca-ridge": "Regression", "cka": "CKA"}
_ALIASES = {"tsvd-regression": "regression", "tsvd_regression": "regression", "tsvd-reg": "regression",
            "pca_ridge": "pca-ridge", "pca-regression": "pca-ridge", "linear-cka": "cka", "cka-linear": "cka"}
_RDM_METRICS = ("rsa", "tsrsa")
_ABLATION_SEED = 2023
_FORMAT = "cortexsnn.similarity.ScoreTable/1"


def canonical_metric(name: str) -> str:
    """``"SVCCA"`` -> ``"svcca"``, ``"TSVD-Regression"`` -> ``"regression"``, ... (case-insensitive)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {list(METRICS)} "
                         f"(or the seeds' names {sorted(SEED_METRIC_NAMES.values())})")
    return key


def versions() -> dict[str, str]:
    """Versions of the software that produced a result."""
    import scipy
    import sklearn

    from cortexsnn import __version__

    return {"cortexsnn": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "python": platform.python_version()}


# ----------------------------------------------------------------------------- the result object
def _nan_list(a: np.ndarray | None) -> Any:
    if a is None:
        return None
    return [_nan_list(x) for x in a] if a.ndim > 1 else [None if not math.isfinite(float(v)) else float(v) for v in a]


def _from_list(v: Any) -> np.ndarray | None:
    if v is None:
        return None
    return np.array(v, dtype=np.float64) if not _has_none(v) else np.array(_none_to_nan(v), dtype=np.float64)


def _has_none(v: Any) -> bool:
    return v is None or (isinstance(v, list) and any(_has_none(x) for x in v))


def _none_to_nan(v: Any) -> Any:
    if isinstance(v, list):
        return [_none_to_nan(x) for x in v]
    return math.nan if v is None else v


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return _json_safe(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, torch.device):
        return str(v)
    return v


@dataclass
class ScoreTable:
    """Scores of one model's layers against the areas of one neural dataset, with one metric.

    Attributes:
        model, metric, neural_dataset: what was compared (``metric`` canonical, see :data:`METRICS`).
        layers, areas: row and column names of ``scores``.
        scores: ``[L, A]`` float64; NaN where a layer was not scored (silent, or not the area's best
            layer in a ``best_layer`` run). For ablations with repeats, the mean over trials.
        ci_low, ci_high: ``[L, A]`` bootstrap percentile bounds, or ``None``.
        ceiling: ``area -> {"mean", "std", "method", ...}`` (leave-one-out ceilings of RDM sets add
            ``"lower"`` and ``"upper"``, with ``mean +- std`` spanning them), or ``None``.
        silent_layers: layers that carry no stimulus information (reasons in ``config["silent_reasons"]``).
        config, versions, seeds: how it was made.
        trial_scores: ``[K, L, A]`` per-trial scores of an ablation with ``K`` repeats, else ``None``.
        trials: per-trial details (clip starts, permutation chaos, replaced frames).
    """

    model: str
    metric: str
    neural_dataset: str
    layers: list[str]
    areas: list[str]
    scores: np.ndarray
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    ceiling: dict[str, dict] | None = None
    silent_layers: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    seeds: dict = field(default_factory=dict)
    trial_scores: np.ndarray | None = None
    trials: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float64)
        shape = (len(self.layers), len(self.areas))
        if self.scores.shape != shape:
            raise ValueError(f"scores have shape {self.scores.shape}, {shape} (layers x areas) expected")
        for name in ("ci_low", "ci_high"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float64)
                if v.shape != shape:
                    raise ValueError(f"{name} has shape {v.shape}, {shape} expected")
                setattr(self, name, v)
        if self.trial_scores is not None:
            self.trial_scores = np.asarray(self.trial_scores, dtype=np.float64)
            if self.trial_scores.shape[1:] != shape:
                raise ValueError(f"trial_scores have shape {self.trial_scores.shape}, [trials, {shape}] expected")

    @property
    def best_layer(self) -> dict[str, str]:
        """``area -> layer`` with the highest score (silent / unscored layers excluded; areas without
        any scored layer are left out)."""
        out = {}
        for j, area in enumerate(self.areas):
            col = self.scores[:, j]
            if np.isfinite(col).any():
                out[area] = self.layers[int(np.nanargmax(col))]
        return out

    @property
    def best_score(self) -> dict[str, float]:
        """``area -> max over layers`` (NaN for an area without any scored layer)."""
        return {a: (float(np.nanmax(self.scores[:, j])) if np.isfinite(self.scores[:, j]).any() else math.nan)
                for j, a in enumerate(self.areas)}

    @property
    def model_score(self) -> float:
        """Max over layers per area (chosen in sample, as the seeds), then the mean over areas.

        NaN if an area has no scored layer, or if some areas have a noise ceiling and others do not
        (their raw scores do not share a scale: compare each area on its own, or use
        :func:`~cortexsnn.similarity.suite.score_suite` for held-out, normalised scores)."""
        best = list(self.best_score.values())
        if self.ceiling and 0 < len(self.ceiling) < len(self.areas):
            return math.nan
        return float(np.mean(best)) if best and all(math.isfinite(b) for b in best) else math.nan

    def percent_of_ceiling(self) -> dict[str, float] | None:
        """``area -> 100 * best score / ceiling denominator`` (the upper bound of a leave-one-out
        ceiling, the split-half mean otherwise; ``None`` without ceilings)."""
        if not self.ceiling:
            return None
        best = self.best_score
        return {a: 100.0 * best[a] / _denominator(c) if _denominator(c) else math.nan
                for a, c in self.ceiling.items() if a in best}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN -> ``None``); :meth:`from_dict` reads it back. Derived values
        (``best_layer``, ``best_score``, ``model_score``) are included for readers and ignored on reading."""
        return _json_safe({
            "format": _FORMAT,
            "model": self.model,
            "metric": self.metric,
            "neural_dataset": self.neural_dataset,
            "layers": list(self.layers),
            "areas": list(self.areas),
            "scores": _nan_list(self.scores),
            "ci_low": _nan_list(self.ci_low),
            "ci_high": _nan_list(self.ci_high),
            "ceiling": self.ceiling,
            "silent_layers": list(self.silent_layers),
            "best_layer": self.best_layer,
            "best_score": self.best_score,
            "model_score": self.model_score,
            "config": self.config,
            "versions": self.versions,
            "seeds": self.seeds,
            "trial_scores": _nan_list(self.trial_scores),
            "trials": self.trials,
        })

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ScoreTable":
        """Inverse of :meth:`to_dict`."""
        fmt = d.get("format", _FORMAT)
        if not str(fmt).startswith("cortexsnn.similarity.ScoreTable/"):
            raise ValueError(f"not a ScoreTable record (format {fmt!r})")
        missing = [k for k in ("model", "metric", "neural_dataset", "layers", "areas", "scores") if k not in d]
        if missing:
            raise ValueError(f"a ScoreTable record needs {missing}")
        return cls(
            model=d["model"], metric=d["metric"], neural_dataset=d["neural_dataset"], layers=list(d["layers"]),
            areas=list(d["areas"]), scores=_from_list(d["scores"]), ci_low=_from_list(d.get("ci_low")),
            ci_high=_from_list(d.get("ci_high")), ceiling=d.get("ceiling"),
            silent_layers=list(d.get("silent_layers") or []), config=dict(d.get("config") or {}),
            versions=dict(d.get("versions") or {}), seeds=dict(d.get("seeds") or {}),
            trial_scores=_from_list(d.get("trial_scores")), trials=list(d.get("trials") or []),
        )

    @classmethod
    def read(cls, path: str | Path) -> "ScoreTable":
        """A ``results.json`` written by :meth:`write` (or its folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / "results.json"
        if not p.is_file():
            raise FileNotFoundError(f"no results file {p}")
        d = json.loads(p.read_text())
        if isinstance(d, dict) and "tables" in d:
            if len(d["tables"]) != 1:
                raise ValueError(f"{p} holds {len(d['tables'])} score tables; read it with json and from_dict")
            d = d["tables"][0]
        return cls.from_dict(d)

    def csv_text(self) -> str:
        """``layer, area, score, ci_low, ci_high`` rows (empty cells for missing values)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "area", "score", "ci_low", "ci_high"])
        fmt = lambda v: "" if v is None or not math.isfinite(v) else repr(float(v))  # noqa: E731
        for i, layer in enumerate(self.layers):
            for j, area in enumerate(self.areas):
                lo = None if self.ci_low is None else self.ci_low[i, j]
                hi = None if self.ci_high is None else self.ci_high[i, j]
                w.writerow([layer, area, fmt(self.scores[i, j]), fmt(lo), fmt(hi)])
        return buf.getvalue()

    def write(self, output_dir: str | Path, *, save_npy: bool = False) -> list[Path]:
        """Write ``results.json`` and ``scores.csv`` into ``output_dir`` (each atomically: a
        temporary name, then a rename), and with ``save_npy`` the seeds' ``.npy`` file under
        :meth:`seed_npy_path`. Returns the paths written."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [atomic_write_text(out / "results.json", json.dumps(self.to_dict(), indent=2) + "\n"),
                   atomic_write_text(out / "scores.csv", self.csv_text())]
        if save_npy:
            written.append(self.write_seed_npy(out))
        return written

    def write_seed_npy(self, root: str | Path) -> Path:
        """:meth:`seed_array` saved (atomically) at ``root /`` :meth:`seed_npy_path`, the seeds' layout."""
        path = Path(root) / self.seed_npy_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            np.save(handle, self.seed_array())
        return path

    def seed_array(self) -> np.ndarray:
        """The seeds' array: ``(layers, areas)``, ``(trials, layers, areas)`` for repeats, and for a
        ``best_layer`` run ``(areas,)`` or ``(trials, areas)`` (each area's best layer)."""
        if self.config.get("best_layer"):
            best = self.config["best_layer"]
            rows = [self.layers.index(best[a]) for a in self.areas]
            cols = np.arange(len(self.areas))
            if self.trial_scores is not None:
                return self.trial_scores[:, rows, cols]
            return self.scores[rows, cols]
        return self.trial_scores if self.trial_scores is not None else self.scores

    def seed_npy_path(self) -> Path:
        """``{metric}/{neural_dataset}/{train_dataset}[/stimulus_shuffle|/stimulus_replace_{type}]
        [/best_layer][/stimulus_clip][/stimulus_front]/{model}{_window}{_clip_len}{_front_len}.npy``."""
        c = self.config
        parts = [SEED_METRIC_NAMES.get(self.metric, self.metric), self.neural_dataset, c.get("train_dataset") or "unknown"]
        ablation = c.get("ablation") or {}
        kind = ablation.get("kind")
        suffix = ""
        if kind == "shuffle":
            parts.append("stimulus_shuffle")
        elif kind == "replace":
            parts.append(f"stimulus_replace_{ablation['replace_type']}")
        if c.get("best_layer"):
            parts.append("best_layer")
        if kind in ("shuffle", "replace"):
            suffix += f"_{ablation['window']}"
        if kind == "clip":
            parts.append("stimulus_clip")
            suffix += f"_{ablation['clip_len']}"
        if c.get("front_len"):
            parts.append("stimulus_front")
            suffix += f"_{c['front_len']}"
        return Path(*parts) / f"{self.model}{suffix}.npy"


def _denominator(c: Mapping[str, Any]) -> float | None:
    """What a normalised score divides by (records written before the ``denominator`` key: the
    upper bound of a leave-one-out ceiling, else its mean)."""
    if c.get("denominator") is not None:
        return float(c["denominator"])
    if c.get("upper") is not None:
        return float(c["upper"])
    return None if c.get("mean") is None else float(c["mean"])


# ----------------------------------------------------------------------------- options and targets
@dataclass
class MetricOptions:
    """Choices of the metrics (defaults: the seeds' procedures with the project's corrections).

    Attributes:
        compare, ties, rdm_metric: RSA / TSRSA (``ties="ordinal"`` = the seeds' ranking).
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
        metric: one of :data:`METRICS` (or a seed's name: ``"TSRSA"``, ``"SVCCA"``, ...).
        ceiling: RDM metrics only: ``"neurons"`` (split-half over neurons, Huang et al. (NeurIPS 2024); first frame
            dropped for TSRSA), ``"trials"`` (split-half over trials, Spearman-Brown), ``"auto"``
            (trials for RSA when the data have them, else neurons; leave-one-out for RDM sets), ``"none"``.
        ceiling_splits: random splits of the split-half ceilings (seed 2023).
        n_boot: bootstrap replicates over stimuli for the confidence intervals (RDM metrics; 0 = none).
        best_layer: ``area -> layer``: score only each area's given layer (others stay NaN).
        config: extra entries recorded in ``ScoreTable.config``.
        progress: called with a short message after each layer.

    Raises:
        ValueError: stimulus counts that differ, an area with fewer than 2 usable neurons, a metric
            that needs responses for an area given as RDMs, NaN inputs.
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
    scorer = _LayerScorer(metric, areas, opt, neural_dataset, device, n_boot, bootstrap_seed)
    layers: list[str] = []
    rows, lows, highs = [], [], []
    boot_rdms: list[tuple[int, Tensor]] = []
    silent: list[str] = []
    reasons: dict[str, str] = {}
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
            else:
                try:
                    cached = scorer.layer(xm)
                    for j, area in enumerate(areas):
                        if area.name in wanted:
                            row[j], lo[j], hi[j] = scorer.score(cached, area)
                    if n_boot and scorer.batched:
                        boot_rdms.append((len(rows), cached))
                except SilentLayerError as exc:
                    row[:], lo[:], hi[:] = math.nan, math.nan, math.nan
                    silent.append(name)
                    reasons[name] = str(exc)
        layers.append(name)
        rows.append(row)
        lows.append(lo)
        highs.append(hi)
        del xm, x
        if progress:
            shown = ", ".join(f"{a.name} {v:.4f}" for a, v in zip(areas, row) if math.isfinite(v))
            progress(f"{name}: " + (f"silent ({reasons[name][:80]})" if name in reasons else shown or "not scored"))
    if not layers:
        raise ValueError("no layers were given")
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
        versions=versions(),
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
    return stimuli[:front_len], _select_rows(neural, np.arange(front_len), f"first {front_len} frames (--front-len)")


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


# ----------------------------------------------------------------------------- movie ablations
def best_layers_from_results(path: str | Path | ScoreTable) -> dict[str, str]:
    """``area -> best layer`` of a previous run (its ``results.json``, folder, or :class:`ScoreTable`)."""
    table = path if isinstance(path, ScoreTable) else ScoreTable.read(path)
    best = table.best_layer
    if not best:
        raise ValueError(f"the results of {table.model} hold no scored layer to take best layers from")
    return best


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
                res[:] = math.nan
        layers.append(name)
        per_layer.append(res)
    trial_scores = np.stack(per_layer, axis=1)  # [K, L, A]
    extra = {**(config or {}), "ablation": {"kind": "clip", "clip_len": clip_len, "trials": trials},
             **({"best_layer": dict(best_layer)} if best_layer else {}), **({"silent_reasons": reasons} if reasons else {})}
    return ScoreTable(model=model, metric=metric, neural_dataset=neural_dataset, layers=layers,
                      areas=[a.name for a in areas], scores=_mean_trials(trial_scores), silent_layers=silent,
                      config=_header(model, metric, neural_dataset, opt, areas, info, extra), versions=versions(),
                      seeds={"ablation": seed}, trial_scores=trial_scores,
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
    return ScoreTable(model=model_name, metric=metric, neural_dataset=neural_dataset, layers=first.layers,
                      areas=first.areas, scores=_mean_trials(trial_scores), silent_layers=silent, config=extra,
                      versions=versions(), seeds={"ablation": seed}, trial_scores=trial_scores, trials=details)


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
