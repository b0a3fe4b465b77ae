"""Score tables and their files: :class:`ScoreTable` (one model, one metric, one neural data set;
``[layers, areas]`` scores with intervals, ceilings, silent layers, config, versions, seeds), its
JSON / CSV / Huang et al.'s ``.npy`` layout, and the metric names.

A model's score (:attr:`ScoreTable.model_score`) is, as in both of Huang et al.'s papers, the max over
layers per area (chosen in sample) then the mean over areas; silent layers are never part of that max,
an area with no usable layer makes it NaN, and areas with and without a noise ceiling are never
averaged. For held-out layer choice and normalised scores see :mod:`cortexsnn.similarity.suite`.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from cortexsnn.errors import CortexSNNError, PathError
from cortexsnn.utils.io import atomic_write, atomic_write_text
from cortexsnn.utils.jsonable import json_safe as _json_safe, versions

__all__ = ["ResultsFileError", "ScoreTable", "METRICS", "SEED_METRIC_NAMES", "canonical_metric", "best_layers_from_results", "versions"]

#: Metrics of :func:`~cortexsnn.similarity.scoring.score_features` (canonical names).
METRICS = ("rsa", "tsrsa", "svcca", "regression", "pca-ridge", "cka")
#: Huang et al.'s spelling of each metric (``--metric`` and Huang et al.'s output folders).
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
                         f"(or Huang et al.'s names {sorted(SEED_METRIC_NAMES.values())})")
    return key



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


class ResultsFileError(CortexSNNError, ValueError):
    """A results file that is not a score table (invalid JSON, a list, missing entries)."""


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
        flags: ``layer -> area -> reason`` for scores that are NaN because they would mean nothing
            (``"degenerate: constant representation"``, ``"cca: features >= stimuli (...)"``); written
            into ``results.json``, the ``flag`` column of ``scores.csv`` and the report.
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
    flags: dict[str, dict[str, str]] = field(default_factory=dict)

    def flag(self, layer: str, area: str) -> str | None:
        """Why the score of ``layer`` against ``area`` is NaN and not a number, or ``None``."""
        return (self.flags.get(layer) or {}).get(area)

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
        """Max over layers per area (chosen in sample, as Huang et al.), then the mean over areas.

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
            "flags": {layer: dict(by_area) for layer, by_area in self.flags.items()},
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
            raise ResultsFileError(f"not a ScoreTable record (format {fmt!r})")
        missing = [k for k in ("model", "metric", "neural_dataset", "layers", "areas", "scores") if k not in d]
        if missing:
            raise ResultsFileError(f"a ScoreTable record needs {missing}; give the results.json of a scoring run")
        return cls(
            model=d["model"], metric=d["metric"], neural_dataset=d["neural_dataset"], layers=list(d["layers"]),
            areas=list(d["areas"]), scores=_from_list(d["scores"]), ci_low=_from_list(d.get("ci_low")),
            ci_high=_from_list(d.get("ci_high")), ceiling=d.get("ceiling"),
            silent_layers=list(d.get("silent_layers") or []), config=dict(d.get("config") or {}),
            versions=dict(d.get("versions") or {}), seeds=dict(d.get("seeds") or {}),
            trial_scores=_from_list(d.get("trial_scores")), trials=list(d.get("trials") or []),
            flags={str(k): dict(v) for k, v in (d.get("flags") or {}).items()},
        )

    @classmethod
    def read(cls, path: str | Path) -> "ScoreTable":
        """A ``results.json`` written by :meth:`write` (or its folder)."""
        p = Path(path)
        if p.is_dir():
            p = p / "results.json"
        if not p.is_file():
            raise PathError(f"no results file {p}; give a results.json written by a scoring run (or its folder)")
        try:
            d = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResultsFileError(f"{p} is not valid JSON ({exc}); give a results.json written by a scoring run") from exc
        if isinstance(d, dict) and "tables" in d:
            if not isinstance(d["tables"], list) or len(d["tables"]) != 1:
                raise ResultsFileError(f"{p} does not hold exactly one score table; read it with json and from_dict")
            d = d["tables"][0]
        if not isinstance(d, dict):
            raise ResultsFileError(f"{p} holds a JSON {type(d).__name__}, not a score table (a JSON object written "
                                   "by ScoreTable.write); give the results.json of a scoring run")
        try:
            return cls.from_dict(d)
        except ResultsFileError as exc:
            raise ResultsFileError(f"{p}: {exc}") from exc

    def csv_text(self) -> str:
        """``layer, area, score, ci_low, ci_high, flag`` rows (empty cells for missing values; ``flag``
        says why a score is missing where it would mean nothing, see :attr:`flags`)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "area", "score", "ci_low", "ci_high", "flag"])
        fmt = lambda v: "" if v is None or not math.isfinite(v) else repr(float(v))  # noqa: E731
        for i, layer in enumerate(self.layers):
            for j, area in enumerate(self.areas):
                lo = None if self.ci_low is None else self.ci_low[i, j]
                hi = None if self.ci_high is None else self.ci_high[i, j]
                w.writerow([layer, area, fmt(self.scores[i, j]), fmt(lo), fmt(hi), self.flag(layer, area) or ""])
        return buf.getvalue()

    def write(self, output_dir: str | Path, *, save_npy: bool = False) -> list[Path]:
        """Write ``results.json`` and ``scores.csv`` into ``output_dir`` (each atomically: a
        temporary name, then a rename), and with ``save_npy`` Huang et al.'s ``.npy`` file under
        :meth:`seed_npy_path`. Returns the paths written."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [atomic_write_text(out / "results.json", json.dumps(self.to_dict(), indent=2) + "\n"),
                   atomic_write_text(out / "scores.csv", self.csv_text())]
        if save_npy:
            written.append(self.write_seed_npy(out))
        return written

    def write_seed_npy(self, root: str | Path) -> Path:
        """:meth:`seed_array` saved (atomically) at ``root /`` :meth:`seed_npy_path`, Huang et al.'s layout."""
        path = Path(root) / self.seed_npy_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            np.save(handle, self.seed_array())
        return path

    def seed_array(self) -> np.ndarray:
        """Huang et al.'s array: ``(layers, areas)``, ``(trials, layers, areas)`` for repeats, and for a
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



def best_layers_from_results(path: str | Path | ScoreTable) -> dict[str, str]:
    """``area -> best layer`` of a previous run (its ``results.json``, folder, or :class:`ScoreTable`)."""
    table = path if isinstance(path, ScoreTable) else ScoreTable.read(path)
    best = table.best_layer
    if not best:
        raise ResultsFileError(f"the results of {table.model} hold no scored layer to take best layers from; give "
                               "the results of a run that scored layers")
    return best


