"""Score networks on brain benchmarks with statistics a reviewer accepts.

:func:`score_suite` is the scoring pipeline of ``cortexsnn demo`` and ``cortexsnn benchmark``: every
model x every :class:`~cortexsnn.similarity.benchmarks.Benchmark`, RSA of every layer. Each model
sees each stimulus set once; all benchmarks on that set share the layer RDMs.

The statistics, and why:

* **Per layer**: RSA (correlation-distance RDMs of the layer's responses, Spearman with the
  target; the mean over subjects where there are several), with a 95% percentile bootstrap
  interval over stimuli (one resampling per benchmark shared by every layer of every model, so
  scores are paired across models; :func:`~cortexsnn.similarity.bootstrap.bootstrap_rdm_samples`).
* **Per model (layer chosen out of sample)**: the stimuli are split at random in halves; the best
  layer is chosen on one half and scored on the other, both ways, for ``n_splits`` splits. The
  model's score is the mean of these held-out scores, reported with their standard deviation; the
  layer chosen most often is the model's *selected layer*. The in-sample maximum over layers
  (optimistic: the layer is chosen on the stimuli it is scored on) is kept, labelled as such.
* **Ceilings** are reported as what they are (bounds, or an estimate with its spread; see
  :class:`~cortexsnn.similarity.benchmarks.Ceiling`); the normalised score is the held-out score
  divided by ``Ceiling.denominator`` (the upper bound of a leave-one-subject-out ceiling, the
  split-half estimate otherwise). A benchmark without a ceiling is reported raw, and raw and
  normalised scores are never averaged together.
* **Paired comparisons** of every two models on a benchmark, at their selected layers: the score
  difference with its bootstrap interval over stimuli and a two-sided bootstrap p-value
  (``2 min(P(d* <= 0), P(d* >= 0))``), Holm-corrected over the benchmark's comparisons; where
  the benchmark has 3 or more subjects, also over subjects (mean difference, t interval, exact
  sign-flip permutation p-value).
* **Silent stimuli** (a stimulus to which every unit of a layer gives the same output, e.g. no
  spike at all) make correlation distances undefined. Rule: such a stimulus is at distance 1
  (uncorrelated) from every responsive stimulus and at distance 0 from other silent stimuli; the
  layer keeps every stimulus and is scored. Their number and every layer's mean output (for
  spiking layers: spikes per neuron per step) are in the results. A layer with fewer than 3
  responsive stimuli, or identical responses to all, is reported silent and not scored.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

from cortexsnn.errors import CortexSNNError

from ._checks import SilentLayerError
from cortexsnn.utils.faults import fault_point
from .benchmarks import Benchmark
from .compare import compare_rdms
from .results import _json_safe, versions

__all__ = ["ScoringModel", "SuiteOptions", "SuiteResult", "score_suite", "SILENT_RULE"]

log = logging.getLogger(__name__)

_FORMAT = "cortexsnn.similarity.SuiteResult/1"

SILENT_RULE = ("a stimulus to which every unit of a layer gives the same output (e.g. no spike) is at correlation "
               "distance 1 from every responsive stimulus and 0 from other silent stimuli; layers with fewer than 3 "
               "responsive stimuli are silent (not scored)")


@dataclass
class ScoringModel:
    """A network to score and how to present stimuli to it.

    Attributes:
        name: label in the results.
        module: the network (in evaluation mode), or a function of the
            :class:`~cortexsnn.similarity.benchmarks.StimulusSet` about to be scored that returns
            it (e.g. a converted SNN calibrated on other images than those).
        mode: ``"cnn"`` (``[B, C, H, W]``) or ``"static"`` (time-major, each image repeated
            ``time_steps`` times, outputs averaged over time); see
            :func:`~cortexsnn.similarity.features.extract_features`.
        normalization: of the stimuli (a preset name or ``(mean, std)``).
        info: where the weights came from (``trained``: bool, ``weights``: text, ...), recorded as is.
        layers: layers to score (default: the model's scoring layers).
    """

    name: str
    module: nn.Module | Callable[[Any], nn.Module]
    mode: str = "cnn"
    time_steps: int = 4
    normalization: Any = "imagenet"
    image_size: int = 224
    info: dict[str, Any] = field(default_factory=dict)
    layers: list[str] | None = None


@dataclass
class SuiteOptions:
    """Choices of :func:`score_suite` (defaults are those of the main job)."""

    n_boot: int = 1000
    n_splits: int = 50
    seed: int = 0
    confidence: float = 0.95
    batch_size: int = 16
    device: str | None = None
    precision: str = "float32"
    #: spiking models (static mode): also score each benchmark's selected layer at every time step and
    #: cumulatively over steps (one more pass over the stimuli, recording that layer's every step)
    time_course: bool = False

    def __post_init__(self) -> None:
        if self.n_boot < 100:
            raise CortexSNNError(f"n_boot must be >= 100 for a 95% interval and a p-value, got {self.n_boot}")
        if self.n_splits < 1:
            raise CortexSNNError(f"n_splits must be >= 1, got {self.n_splits}")
        if self.batch_size < 1:
            raise CortexSNNError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.confidence < 1:
            raise CortexSNNError(f"confidence must be in (0, 1), got {self.confidence}")


# ----------------------------------------------------------------------------- layer RDMs
def layer_rdm(x: torch.Tensor, precision: str = "float32") -> tuple[np.ndarray | None, dict[str, Any]]:
    """The correlation-distance RDM of one layer's ``[N, F]`` responses under :data:`SILENT_RULE`,
    and the layer's record (mean output, active fraction, silent stimuli). ``None`` for a silent layer.

    ``x`` is z-scored in place (one global mean and std, as the extractor does; it does not change
    correlation distances, and keeps the published numbers bit-identical)."""
    from .features import zscore_global
    from .rdm import rdm

    if not torch.isfinite(x).all():
        raise CortexSNNError("layer responses hold NaN or infinite values: the network's output is broken")
    record: dict[str, Any] = {"mean_output": float(x.mean(dtype=torch.float64)),
                              "active_fraction": float((x != 0).to(torch.float64).mean()), "n_features": int(x.shape[1])}
    silent_rows = (x.amax(dim=1) == x.amin(dim=1)).numpy()
    record["silent_stimuli"] = int(silent_rows.sum())
    n = x.shape[0]
    if bool((x.amax(dim=0) == x.amin(dim=0)).all()):
        record["silent"] = "identical responses to every stimulus"
        return None, record
    active = np.flatnonzero(~silent_rows)
    if active.size < 3:
        record["silent"] = f"only {active.size} of {n} stimuli evoke a response"
        return None, record
    zscore_global(x)
    try:
        sub = rdm(x if active.size == n else x[torch.as_tensor(active)], "correlation", precision=precision)  # type: ignore[arg-type]
    except SilentLayerError as exc:
        record["silent"] = str(exc)
        return None, record
    if active.size == n:
        return sub.numpy().astype(np.float64), record
    full = np.ones((n, n))
    silent = np.flatnonzero(silent_rows)
    full[np.ix_(silent, silent)] = 0.0
    full[np.ix_(active, active)] = sub.numpy()
    np.fill_diagonal(full, 0.0)
    return full, record


def _extract_rdms(model: ScoringModel, benchmark: Benchmark, options: SuiteOptions,
                  progress: Callable[[str], None] | None) -> tuple[list[str], dict[str, np.ndarray], dict[str, dict]]:
    from .features import default_layers, extract_features

    stimuli = benchmark.stimuli.stimuli(model.image_size, model.normalization)
    if model.layers is not None and not model.layers:
        raise CortexSNNError(f"{model.name}: the list of layers to score is empty; give layer names or None (the "
                             "model's scoring layers)")
    network = model.module if isinstance(model.module, nn.Module) else model.module(benchmark.stimuli)
    layers = list(model.layers if model.layers is not None else default_layers(network, model.mode))  # type: ignore[arg-type]
    rdms: dict[str, np.ndarray] = {}
    records: dict[str, dict] = {}
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.inference_mode():
        feats = extract_features(network, stimuli.tensor, layers=layers, mode=model.mode,  # type: ignore[arg-type]
                                 time_steps=model.time_steps, batch_size=options.batch_size, zscore=False, device=device)
        for name, x in feats:
            r, record = layer_rdm(x, options.precision)
            records[name] = record
            if r is not None:
                rdms[name] = r
            del x
            if progress:
                state = f"silent ({record['silent'][:70]})" if "silent" in record else \
                    f"{record['silent_stimuli']} silent stimuli" if record["silent_stimuli"] else "ok"
                progress(f"{model.name} / {benchmark.stimuli.name} / {name}: {state}")
    return layers, rdms, records


def _selected_layer(layers: list[str], rdms: dict[str, np.ndarray], benchmark: Benchmark,
                    options: SuiteOptions) -> str | None:
    """The layer this model's held-out choice picks most often on ``benchmark`` (the same draws as
    :func:`_score_benchmark`, which are independent of the other models)."""
    scored = [layer for layer in layers if layer in rdms]
    if not scored:
        return None
    _, chosen = _held_out(np.stack([rdms[layer] for layer in scored]), [0] * len(scored), benchmark.target.rdms, 1,
                          options)
    return scored[Counter(chosen[0]).most_common(1)[0][0]] if chosen[0] else None


def _time_course(model: ScoringModel, benchmarks: list[Benchmark], selected: dict[str, str], options: SuiteOptions
                 ) -> dict[str, dict[str, Any]]:
    """Per benchmark: the selected layer's score at every time step and cumulative over steps 1..t."""
    from .features import extract_features

    stimuli_set = benchmarks[0].stimuli
    stimuli = stimuli_set.stimuli(model.image_size, model.normalization)
    network = model.module if isinstance(model.module, nn.Module) else model.module(stimuli_set)
    layers = sorted(set(selected.values()))
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        steps = dict(extract_features(network, stimuli.tensor, layers=layers, mode="steps",
                                      time_steps=model.time_steps, batch_size=options.batch_size, device=device))
    for b in benchmarks:
        layer = selected.get(b.name)
        if layer is None:
            continue
        x = steps[layer]
        per_step, cumulative = [], []
        running = torch.zeros_like(x[:, 0])
        for t in range(x.shape[1]):
            running += x[:, t]
            for values, feats in ((per_step, x[:, t].clone()), (cumulative, running / (t + 1))):
                r, _ = layer_rdm(feats, options.precision)  # a fresh tensor each: layer_rdm z-scores it in place
                values.append(math.nan if r is None else float(np.mean([compare_rdms(r, s) for s in b.target.rdms])))
        out[b.name] = {"layer": layer, "per_step": per_step, "cumulative": cumulative}
    return out


# ----------------------------------------------------------------------------- statistics
def _ranked_unit_rows(matrices: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows of ``[R, n, n]`` restricted to stimuli ``idx``: condensed, average ranks, centred, unit norm."""
    from scipy.stats import rankdata

    iu0, iu1 = np.triu_indices(len(idx), k=1)
    sub = matrices[:, idx][:, :, idx][:, iu0, iu1]
    v = rankdata(sub, axis=1)
    v = v - v.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _held_out(rows: np.ndarray, owners: list[int], subjects: np.ndarray, n_models: int, options: SuiteOptions
              ) -> tuple[list[list[float]], list[list[int]]]:
    """Per model, the held-out scores and chosen rows of ``2 n_splits`` folds (choose on one half of
    the stimuli, score on the other)."""
    n = rows.shape[1]
    rng = np.random.default_rng(options.seed)
    scores: list[list[float]] = [[] for _ in range(n_models)]
    chosen: list[list[int]] = [[] for _ in range(n_models)]
    owner = np.asarray(owners)
    for _ in range(options.n_splits):
        perm = rng.permutation(n)
        halves = (np.sort(perm[: n // 2]), np.sort(perm[n // 2:]))
        per_half = []
        for idx in halves:
            with np.errstate(invalid="ignore"):
                per_half.append((_ranked_unit_rows(rows, idx) @ _ranked_unit_rows(subjects, idx).T).mean(axis=1))
        for pick, test in ((0, 1), (1, 0)):
            for m in range(n_models):
                mine = np.flatnonzero(owner == m)
                if not mine.size:
                    continue
                if not np.isfinite(per_half[pick][mine]).any():  # no layer defined on this half: undefined fold
                    scores[m].append(math.nan)
                    continue
                best = int(mine[np.nanargmax(per_half[pick][mine])])
                scores[m].append(float(per_half[test][best]))
                chosen[m].append(best)
    return scores, chosen


def _bootstrap_p(diffs: np.ndarray) -> float:
    d = diffs[np.isfinite(diffs)]
    if not d.size:
        return math.nan
    return float(min(1.0, 2.0 * min((d <= 0).mean(), (d >= 0).mean())))


def _holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    out = np.empty(len(p))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _sign_flip_p(d: np.ndarray, seed: int) -> float:
    """Two-sided exact sign-flip permutation p-value of the mean of ``d`` (random flips beyond 2^16)."""
    s = d.size
    if s <= 16:
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=s)))
    else:
        flips = np.random.default_rng(seed).choice((1.0, -1.0), size=(65536, s))
    null = np.abs((flips * d).mean(axis=1))
    return float((null >= abs(d.mean()) - 1e-12).mean())


def _subject_comparison(a: np.ndarray, b: np.ndarray, confidence: float, seed: int) -> dict[str, Any]:
    d = a - b
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return {"n_subjects": int(d.size), "difference": float(d.mean()), "ci_low": float(d.mean() - half),
            "ci_high": float(d.mean() + half), "p": _sign_flip_p(d, seed),
            "test": "exact sign-flip permutation of the per-subject differences; t interval"}


def _score_benchmark(benchmark: Benchmark, extracted: dict[str, dict], model_names: list[str],
                     options: SuiteOptions) -> dict[str, Any]:
    from .bootstrap import bootstrap_rdm_samples

    subjects = benchmark.target.rdms
    rows, owners, labels = [], [], []
    for m, name in enumerate(model_names):
        for layer in extracted[name]["layers"]:
            if layer in extracted[name]["rdms"]:
                rows.append(extracted[name]["rdms"][layer])
                owners.append(m)
                labels.append((name, layer))
    per_subject = np.array([[compare_rdms(r, s) for s in subjects] for r in rows]).reshape(len(rows), len(subjects))
    score = per_subject.mean(axis=1)
    tail = (1 - options.confidence) / 2
    if rows:
        boot = bootstrap_rdm_samples(np.stack(rows), [subjects], n_boot=options.n_boot, random_state=options.seed)[:, :, 0]
        low, high = np.quantile(boot, tail, axis=0), np.quantile(boot, 1 - tail, axis=0)
        held, chosen = _held_out(np.stack(rows), owners, subjects, len(model_names), options)
    else:
        boot, low, high = np.empty((options.n_boot, 0)), np.empty(0), np.empty(0)
        held, chosen = [[] for _ in model_names], [[] for _ in model_names]
    layer_rows = [{"model": name, "layer": layer, "score": float(score[i]), "ci_low": float(low[i]),
                   "ci_high": float(high[i]), "per_subject": per_subject[i].tolist()}
                  for i, (name, layer) in enumerate(labels)]
    ceiling = benchmark.ceiling
    summaries, selected_rows = [], {}
    for m, name in enumerate(model_names):
        if not chosen[m]:
            summaries.append({"model": name, "status": "silent: no layer with a usable response"})
            continue
        counts = Counter(chosen[m])
        best_row, freq = counts.most_common(1)[0]
        selected_rows[name] = best_row
        mine = [i for i, o in enumerate(owners) if o == m]
        in_sample = max(mine, key=lambda i: score[i] if np.isfinite(score[i]) else -np.inf)
        every = np.asarray(held[m])
        h = every[np.isfinite(every)]  # a half of mostly silent stimuli can leave a constant sub-RDM: undefined
        if not h.size:
            summaries.append({"model": name, "status": "silent: no split gives a defined score"})
            continue
        summary = {
            "model": name, "status": "scored", "score": float(h.mean()), "score_sd": float(h.std(ddof=1)) if h.size > 1 else 0.0,
            "n_folds": int(h.size), "n_folds_undefined": int(every.size - h.size),
            "selected_layer": labels[best_row][1], "selection_frequency": freq / len(chosen[m]),
            "selected_layer_score": float(score[best_row]), "selected_layer_ci": [float(low[best_row]), float(high[best_row])],
            "selected_layer_per_subject": per_subject[best_row].tolist(),
            "in_sample_best_layer": labels[in_sample][1], "in_sample_best_score": float(score[in_sample]),
        }
        if ceiling is not None:
            summary["normalized_score"] = summary["score"] / ceiling.denominator
            summary["normalized_score_sd"] = summary["score_sd"] / ceiling.denominator
        summaries.append(summary)
    comparisons = _comparisons(model_names, selected_rows, score, boot, per_subject, options)
    references = {}
    if benchmark.reference_rdms is not None:
        for rname, r in zip(benchmark.reference_rdms.names, benchmark.reference_rdms.rdms):
            references[rname] = float(np.mean([compare_rdms(r, s) for s in subjects]))
    return {"layers": layer_rows, "summary": summaries, "comparisons": comparisons, "references": references,
            "selected_rdms": {name: rows[i] for name, i in selected_rows.items()}}


def _comparisons(model_names: list[str], selected: dict[str, int], score: np.ndarray, boot: np.ndarray,
                 per_subject: np.ndarray, options: SuiteOptions) -> list[dict[str, Any]]:
    tail = (1 - options.confidence) / 2
    out = []
    for a, b in itertools.combinations([n for n in model_names if n in selected], 2):
        i, j = selected[a], selected[b]
        d = boot[:, i] - boot[:, j]
        item: dict[str, Any] = {
            "model_a": a, "model_b": b, "difference": float(score[i] - score[j]),
            "stimuli": {"ci_low": float(np.nanquantile(d, tail)), "ci_high": float(np.nanquantile(d, 1 - tail)),
                        "p": _bootstrap_p(d), "n_boot": options.n_boot,
                        "test": "paired bootstrap over stimuli (one resampling for both models)"}}
        if per_subject.shape[1] >= 3:
            item["subjects"] = _subject_comparison(per_subject[i], per_subject[j], options.confidence, options.seed)
        out.append(item)
    if out:
        for item, p in zip(out, _holm([c["stimuli"]["p"] for c in out])):
            item["stimuli"]["p_holm"] = p
    return out


# ----------------------------------------------------------------------------- the result
@dataclass
class SuiteResult:
    """Every score of a :func:`score_suite` run, as data (the report reads it and recomputes nothing).

    Attributes:
        models: ``name -> info`` (weights, mode, T, normalisation, run time).
        benchmarks: ``name -> description`` (:meth:`Benchmark.describe`: species, area, subjects, ceiling).
        layers: ``model -> stimulus set -> layer -> record`` (depth, mean output, silent stimuli).
        scores: ``benchmark -> {"layers", "summary", "comparisons", "references"}`` (see the module docstring).
        config: the options, the rules, versions.
        skipped: benchmarks left out, with the reason.
        rdms: figures' RDMs (each benchmark's mean target RDM and each model's selected layer);
            kept in memory and in ``rdms.npz``, not in the JSON.
    """

    models: dict[str, dict[str, Any]]
    benchmarks: dict[str, dict[str, Any]]
    layers: dict[str, dict[str, dict[str, dict[str, Any]]]]
    scores: dict[str, dict[str, Any]]
    config: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    rdms: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def summary(self, model: str, benchmark: str) -> dict[str, Any]:
        for s in self.scores[benchmark]["summary"]:
            if s["model"] == model:
                return s
        raise KeyError(f"no summary of {model!r} on {benchmark!r}")

    def tidy(self) -> list[dict[str, Any]]:
        """One row per model, benchmark, layer and metric (loads straight into ``pandas.DataFrame``)."""
        out = []
        for bname, b in self.benchmarks.items():
            ceiling = b["ceiling"] or {}
            selected = {s["model"]: s.get("selected_layer") for s in self.scores[bname]["summary"]}
            for row in self.scores[bname]["layers"]:
                layer_info = self.layers[row["model"]][b["stimulus_set"]][row["layer"]]
                out.append({
                    "model": row["model"], "trained": self.models[row["model"]].get("trained"),
                    "benchmark": bname, "species": b["species"], "area": b["area"], "layer": row["layer"],
                    "depth": layer_info["depth"], "metric": "rsa", "score": row["score"], "ci_low": row["ci_low"],
                    "ci_high": row["ci_high"], "ceiling_kind": ceiling.get("kind"),
                    "ceiling_denominator": ceiling.get("denominator"),
                    "normalized_score": row["score"] / ceiling["denominator"] if ceiling else None,
                    "selected_layer": selected.get(row["model"]) == row["layer"],
                    "mean_output": layer_info["mean_output"], "silent_stimuli": layer_info["silent_stimuli"],
                    "flag": "",
                })
            out.extend(self._flagged_rows(bname))
        return out

    def _flagged_rows(self, benchmark: str) -> list[dict[str, Any]]:
        """Rows of the layers not scored on ``benchmark`` (silent: no usable response), score NaN,
        with the reason in ``flag``: a flagged layer is visible in the CSV, not silently missing."""
        b = self.benchmarks[benchmark]
        rows = []
        for model in dict.fromkeys(s["model"] for s in self.scores[benchmark]["summary"]):
            for layer, info in self.layers.get(model, {}).get(b["stimulus_set"], {}).items():
                if "silent" not in info:
                    continue
                rows.append({
                    "model": model, "trained": self.models[model].get("trained"), "benchmark": benchmark,
                    "species": b["species"], "area": b["area"], "layer": layer, "depth": info["depth"],
                    "metric": "rsa", "score": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                    "ceiling_kind": (b["ceiling"] or {}).get("kind"),
                    "ceiling_denominator": (b["ceiling"] or {}).get("denominator"), "normalized_score": None,
                    "selected_layer": False, "mean_output": info["mean_output"],
                    "silent_stimuli": info["silent_stimuli"], "flag": f"silent: {info['silent']}",
                })
        return rows

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({"format": _FORMAT, "models": self.models, "benchmarks": self.benchmarks,
                           "layers": self.layers,
                           "scores": {b: {k: v for k, v in s.items() if k != "selected_rdms"}
                                      for b, s in self.scores.items()},
                           "config": self.config, "skipped": self.skipped, "categories": self.categories})

    @classmethod
    def from_dict(cls, d: dict[str, Any], rdms: dict[str, np.ndarray] | None = None) -> "SuiteResult":
        if d.get("format") != _FORMAT:
            raise CortexSNNError(f"not a suite result (format {d.get('format')!r}, {_FORMAT!r} expected)")
        return cls(d["models"], d["benchmarks"], d["layers"], d["scores"], d["config"], d.get("skipped", {}),
                   dict(rdms or {}), d.get("categories", {}))

    @classmethod
    def read(cls, folder: str | Path) -> "SuiteResult":
        folder = Path(folder)
        rdms = {}
        if (folder / "rdms.npz").is_file():
            with np.load(folder / "rdms.npz", allow_pickle=False) as f:
                rdms = {k: f[k] for k in f.files}
        return cls.from_dict(json.loads((folder / "results.json").read_text()), rdms)

    def write(self, folder: str | Path) -> list[Path]:
        """``results.json``, ``scores.csv`` (:meth:`tidy`), ``summary.csv``, ``comparisons.csv`` and
        ``rdms.npz``, each written atomically."""
        from cortexsnn.utils.io import atomic_write_bytes, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [atomic_write_text(folder / "results.json", json.dumps(self.to_dict(), indent=1) + "\n"),
                   atomic_write_text(folder / "scores.csv", _csv(self.tidy())),
                   atomic_write_text(folder / "summary.csv", _csv(self.summary_rows())),
                   atomic_write_text(folder / "comparisons.csv", _csv(self.comparison_rows()))]
        buffer = io.BytesIO()
        np.savez(buffer, **self.rdms)
        written.append(atomic_write_bytes(folder / "rdms.npz", buffer.getvalue()))
        return written

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per model and benchmark: held-out score, ceiling, normalised score, selected layer."""
        out = []
        for bname, b in self.benchmarks.items():
            ceiling = b["ceiling"] or {}
            for s in self.scores[bname]["summary"]:
                out.append({"model": s["model"], "benchmark": bname, "species": b["species"], "area": b["area"],
                            "status": s["status"], "score": s.get("score"), "score_sd": s.get("score_sd"),
                            "normalized_score": s.get("normalized_score"), "ceiling_kind": ceiling.get("kind"),
                            "ceiling_lower": ceiling.get("lower"), "ceiling_upper": ceiling.get("upper"),
                            "ceiling_estimate": ceiling.get("estimate"), "selected_layer": s.get("selected_layer"),
                            "selection_frequency": s.get("selection_frequency"),
                            "in_sample_best_layer": s.get("in_sample_best_layer"),
                            "in_sample_best_score": s.get("in_sample_best_score")})
        return out

    def comparison_rows(self) -> list[dict[str, Any]]:
        out = []
        for bname, s in self.scores.items():
            for c in s["comparisons"]:
                subj = c.get("subjects") or {}
                out.append({"benchmark": bname, "model_a": c["model_a"], "model_b": c["model_b"],
                            "difference": c["difference"], "ci_low": c["stimuli"]["ci_low"],
                            "ci_high": c["stimuli"]["ci_high"], "p": c["stimuli"]["p"],
                            "p_holm": c["stimuli"].get("p_holm"), "subjects_difference": subj.get("difference"),
                            "subjects_ci_low": subj.get("ci_low"), "subjects_ci_high": subj.get("ci_high"),
                            "subjects_p": subj.get("p")})
        return out


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and not math.isfinite(v)) else
                             (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return buffer.getvalue()


# ----------------------------------------------------------------------------- the pipeline
def _score_one(item: ScoringModel | Callable[[], ScoringModel], stimulus_sets: dict[str, Benchmark],
               benchmarks: Sequence[Benchmark], options: SuiteOptions,
               progress: Callable[[str], None] | None) -> dict[str, Any]:
    """Build one model (when given a builder), take its layer RDMs on every stimulus set (and its
    time course), and return them with its records; the network is freed on return."""
    t0 = time.perf_counter()
    model = item() if callable(item) and not isinstance(item, ScoringModel) else item
    extracted, records_by_set, courses = {}, {}, {}
    for set_name, bench in stimulus_sets.items():
        layers, rdms, records = _extract_rdms(model, bench, options, progress)
        fault_point("step")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
        for k, layer in enumerate(layers):
            records[layer]["depth"] = k / max(1, len(layers) - 1)
        extracted[set_name] = {"layers": layers, "rdms": rdms}
        records_by_set[set_name] = records
        if options.time_course and model.mode == "static":
            on_set = [b for b in benchmarks if b.stimuli.name == set_name]
            selected = {b.name: layer for b in on_set if (layer := _selected_layer(layers, rdms, b, options)) is not None}
            if selected:
                courses.update(_time_course(model, on_set, selected, options))
    info = {**model.info, "mode": model.mode, "time_steps": model.time_steps if model.mode == "static" else None,
            "image_size": model.image_size, "normalization": _json_safe(model.normalization),
            "seconds": round(time.perf_counter() - t0, 1)}
    return {"name": model.name, "info": info, "extracted": extracted, "records": records_by_set, "courses": courses}

def score_suite(
    models: Iterable[ScoringModel | Callable[[], ScoringModel]],
    benchmarks: Sequence[Benchmark],
    options: SuiteOptions | None = None,
    *,
    skipped: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Score every model on every benchmark (see the module docstring for the statistics).

    Args:
        models: :class:`ScoringModel` objects, or callables building one (built one at a time and
            freed after its features are taken: only one network is in memory at once).
        benchmarks: from :func:`~cortexsnn.similarity.benchmarks.load_benchmarks`.
        skipped: benchmarks left out by the caller, recorded with their reason.
        progress: called with one line per layer.

    Launched with torchrun (``WORLD_SIZE`` > 1), rank ``r`` builds and runs the models ``r``,
    ``r + world_size``, ...; their layer RDMs are gathered, and every rank returns the same result
    (write it from rank 0).
    """
    options = options or SuiteOptions()
    if not benchmarks:
        raise CortexSNNError("no benchmark to score on")
    from cortexsnn.training.distributed import init_distributed

    stimulus_sets: dict[str, Benchmark] = {}
    for b in benchmarks:
        stimulus_sets.setdefault(b.stimuli.name, b)
    dist_info = init_distributed(options.device or "auto")
    payloads: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(models):
        if dist_info.enabled and index % dist_info.world_size != dist_info.rank:
            continue  # under torchrun each rank scores every world_size-th model
        payloads.append((index, _score_one(item, stimulus_sets, benchmarks, options, progress)))
    if dist_info.enabled:
        import torch.distributed as dist

        gathered: list[Any] = [None] * dist_info.world_size
        dist.all_gather_object(gathered, payloads)
        payloads = [p for part in gathered for p in part]
    payloads.sort(key=lambda p: p[0])
    names = [p["name"] for _, p in payloads]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CortexSNNError(f"two models are named {duplicated[0]!r}: give each a distinct name")
    extracted: dict[str, dict[str, dict]] = {}  # stimulus set -> model -> {"layers", "rdms"}
    courses: dict[str, dict[str, dict[str, Any]]] = {}  # benchmark -> model -> time course
    for _, p in payloads:
        for set_name, e in p["extracted"].items():
            extracted.setdefault(set_name, {})[p["name"]] = e
        for bname, course in p["courses"].items():
            courses.setdefault(bname, {})[p["name"]] = course
    model_info = {p["name"]: p["info"] for _, p in payloads}
    layer_records = {p["name"]: p["records"] for _, p in payloads}
    scores, rdms_out = {}, {}
    for b in benchmarks:
        t0 = time.perf_counter()
        result = _score_benchmark(b, extracted[b.stimuli.name], names, options)
        result["time_course"] = courses.get(b.name, {})
        for model_name, r in result.pop("selected_rdms").items():
            rdms_out[f"{b.name}|{model_name}"] = r
        rdms_out[f"{b.name}|target"] = b.target.rdms.mean(axis=0)
        scores[b.name] = result
        log.info("%s scored in %.1f s", b.name, time.perf_counter() - t0)
    config = {"metric": "rsa", "rdm": "1 - Pearson correlation between stimulus rows (z-scored layer outputs)",
              "comparison": "Spearman (ties averaged) of the upper triangles; several subjects: the mean over subjects",
              "silent_rule": SILENT_RULE, "n_boot": options.n_boot, "n_splits": options.n_splits,
              "seed": options.seed, "confidence": options.confidence, "precision": options.precision,
              "time_course": "spiking models: the selected layer scored at every step (per_step) and on its "
                             "average over steps 1..t (cumulative)" if options.time_course else None,
              "layer_selection": f"best layer chosen on a random half of the stimuli, scored on the other half, both "
                                 f"ways, {options.n_splits} splits (seed {options.seed}); score = mean held-out score",
              "normalization": "held-out score / ceiling denominator (upper bound of a leave-one-subject-out ceiling, "
                               "or the split-half estimate); benchmarks without a ceiling are reported raw",
              "versions": versions()}
    return SuiteResult(model_info, {b.name: b.describe() for b in benchmarks}, layer_records, scores, config,
                       dict(skipped or {}), rdms_out,
                       {b.stimuli.name: b.stimuli.categories for b in benchmarks if b.stimuli.categories})
