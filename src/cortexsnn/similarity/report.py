"""Figures and a self-contained HTML report of brain-similarity score tables.

Input: score tables as dicts (:meth:`cortexsnn.similarity.results.ScoreTable.to_dict`, the
``results.json`` records) or :class:`~cortexsnn.similarity.results.ScoreTable` objects.

Figures (matplotlib, drawn on the Agg canvas without touching pyplot's global backend):

* :func:`heatmap_figure` - one table's layers x areas matrix, values written in the cells, layers
  not scored (silent, or outside a ``best_layer`` run) hatched grey.
* :func:`depth_figure` - one panel per area: score against layer depth for every model scored with
  the same metric on the same neural data, bootstrap confidence intervals as error bars, the noise
  ceiling as a band (leave-one-out lower to upper bound, or mean +- std).
* :func:`rdm_figure` - RDMs side by side, coloured by the percentile of each dissimilarity among the
  RDM's off-diagonal entries (rank-transformed, as is customary, so that RDMs on different scales
  compare by their geometry).

:func:`write_report` writes ``report.html`` and its PNG figures (linked, beside it) in one folder:
every figure is rendered in memory first, then each file is written atomically (temporary name,
rename), the HTML last, so a failure leaves no half-written file behind. The page has no scripts
and no external resources.
"""
from __future__ import annotations

import datetime as _dt
import html
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cortexsnn.utils.io import atomic_write_bytes, atomic_write_text

from .results import _denominator

__all__ = ["write_report", "write_suite_report", "heatmap_figure", "depth_figure", "rdm_figure", "rank_transform",
           "weights_status", "suite_score_figure", "suite_depth_figure", "suite_activity_figure", "suite_mds_figure",
           "suite_time_figure"]

_REQUIRED = ("model", "metric", "neural_dataset", "layers", "areas", "scores")
_METRIC_LABEL = {"rsa": "RSA (Spearman)", "tsrsa": "TSRSA (Spearman)", "svcca": "SVCCA", "regression":
                 "TSVD-regression (Pearson r)", "pca-ridge": "PCA-ridge (R^2)", "cka": "CKA"}


# ----------------------------------------------------------------------------- inputs
def _as_record(table: Any, k: int) -> dict[str, Any]:
    """A checked copy of one table record with ``scores`` / ``ci_low`` / ``ci_high`` as float arrays."""
    d = table.to_dict() if hasattr(table, "to_dict") else table
    if not isinstance(d, Mapping):
        raise TypeError(f"table {k}: expected a ScoreTable or its to_dict() record, got {type(table).__name__}")
    missing = [key for key in _REQUIRED if key not in d]
    if missing:
        raise ValueError(f"table {k} ({d.get('model', '?')}) lacks {missing}: pass ScoreTable.to_dict() records")
    rec = dict(d)
    shape = (len(rec["layers"]), len(rec["areas"]))
    for key in ("scores", "ci_low", "ci_high"):
        v = rec.get(key)
        if v is None:
            rec[key] = None
            continue
        a = np.array([[math.nan if x is None else x for x in row] for row in v], dtype=np.float64).reshape(-1)
        if a.size != shape[0] * shape[1]:
            raise ValueError(f"table {k} ({rec['model']}): {key} holds {a.size} values for {shape[0]} layers x "
                             f"{shape[1]} areas")
        rec[key] = a.reshape(shape)
    rec["config"] = dict(rec.get("config") or {})
    rec["ceiling"] = dict(rec.get("ceiling") or {})
    rec["silent_layers"] = list(rec.get("silent_layers") or [])
    rec["flags"] = {str(k): dict(v) for k, v in (rec.get("flags") or {}).items()}
    return rec


def _flag(rec: dict, layer: str, area: str) -> str | None:
    """Why a score is NaN and not a number (``ScoreTable.flags``), or ``None``."""
    return (rec["flags"].get(layer) or {}).get(area)


def weights_status(table: Mapping[str, Any]) -> tuple[bool | None, str]:
    """``(trained, description)`` of a table's model: ``config["trained"]`` when recorded, else
    read from ``config["weights"]`` (``"UNTRAINED ..."`` means random initialisation);
    ``None`` when the record does not say."""
    config = dict(table.get("config") or {})
    weights = config.get("weights")
    trained = config.get("trained")
    if not isinstance(trained, bool):
        trained = None if weights is None else "UNTRAINED" not in str(weights).upper()
    if weights is None:
        weights = {True: "trained weights", False: "random initialisation", None: "not recorded"}[trained]
    return trained, str(weights)


def _best(rec: dict) -> dict[str, tuple[str, float, int]]:
    out = {}
    for j, area in enumerate(rec["areas"]):
        col = rec["scores"][:, j]
        if np.isfinite(col).any():
            i = int(np.nanargmax(col))
            out[area] = (rec["layers"][i], float(col[i]), i)
    return out


def _model_score(rec: dict) -> float:
    best = _best(rec)
    if len(best) != len(rec["areas"]) or 0 < len(rec["ceiling"]) < len(rec["areas"]):
        return math.nan
    return float(np.mean([v[1] for v in best.values()]))


def _ceiling_band(c: Mapping[str, Any]) -> tuple[float, float] | None:
    if c.get("lower") is not None and c.get("upper") is not None:
        return float(c["lower"]), float(c["upper"])
    if c.get("mean") is None:
        return None
    m, s = float(c["mean"]), float(c.get("sem", c.get("std")) or 0.0)
    return m - s, m + s


def _label(rec: dict) -> str:
    trained, _ = weights_status(rec)
    return rec["model"] + ("" if trained else " (untrained)" if trained is False else "")


# ----------------------------------------------------------------------------- figures
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor="white")
    return buf.getvalue()


def heatmap_figure(table: Any):
    """The layers x areas score matrix of one table (a matplotlib ``Figure``)."""
    rec = _as_record(table, 0)
    scores = rec["scores"]
    n_layers, n_areas = scores.shape
    fig = _figure(max(4.0, 1.6 + 1.3 * n_areas), max(3.0, 1.2 + 0.32 * n_layers))
    ax = fig.add_subplot()
    finite = scores[np.isfinite(scores)]
    span = float(np.abs(finite).max()) if finite.size else 1.0
    span = span if span > 0 else 1.0
    im = ax.imshow(np.ma.masked_invalid(scores), cmap="viridis", aspect="auto", vmin=min(0.0, float(finite.min()) if
                                                                                         finite.size else 0.0),
                   vmax=span, interpolation="nearest")
    best_cells = {(v[2], rec["areas"].index(a)) for a, v in _best(rec).items()}
    for i in range(n_layers):
        for j in range(n_areas):
            v = scores[i, j]
            if math.isfinite(v):
                bold = (i, j) in best_cells
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 * span else "black", fontweight="bold" if bold else "normal")
            else:
                ax.add_patch(_hatch(i, j))
                if _flag(rec, rec["layers"][i], rec["areas"][j]) and rec["layers"][i] not in rec["silent_layers"]:
                    ax.text(j, i, "flagged", ha="center", va="center", fontsize=7, color="#b35900")
    ax.set_xticks(range(n_areas), rec["areas"])
    ax.set_yticks(range(n_layers), [f"{name}  (silent)" if name in rec["silent_layers"] else name
                                    for name in rec["layers"]], fontsize=7)
    ax.set_xlabel("area")
    ax.set_ylabel("layer (input to output)")
    ax.set_title(f"{_label(rec)}: {_METRIC_LABEL.get(rec['metric'], rec['metric'])}\nvs {rec['neural_dataset']}",
                 fontsize=9)
    fig.colorbar(im, ax=ax, label="score", shrink=0.8)
    return fig


def _hatch(i: int, j: int):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#dddddd", edgecolor="#999999", hatch="///", linewidth=0)


def depth_figure(tables: Sequence[Any]):
    """Score by layer depth, one panel per area, every table overlaid (same metric and neural data),
    with bootstrap CIs as error bars and the noise ceiling as a band."""
    recs = [_as_record(t, k) for k, t in enumerate(tables)]
    if not recs:
        raise ValueError("depth_figure needs at least one table")
    areas = list(dict.fromkeys(a for r in recs for a in r["areas"]))
    same_layers = all(r["layers"] == recs[0]["layers"] for r in recs)
    same_depth = all(len(r["layers"]) == len(recs[0]["layers"]) for r in recs)
    cols = min(3, len(areas))
    rows = math.ceil(len(areas) / cols)
    fig = _figure(4.6 * cols + 0.4, 3.6 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for k, area in enumerate(areas):
        ax = axes[k // cols][k % cols]
        shown_ceiling = False
        for m, rec in enumerate(recs):
            if area not in rec["areas"]:
                continue
            j = rec["areas"].index(area)
            y = rec["scores"][:, j]
            n = len(y)
            x = np.arange(n, dtype=float) if same_depth else np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
            colour = colours[m % len(colours)]
            yerr = None
            if rec["ci_low"] is not None and rec["ci_high"] is not None:
                lo, hi = rec["ci_low"][:, j], rec["ci_high"][:, j]
                yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
                yerr = np.where(np.isfinite(yerr), yerr, 0.0)
            ax.errorbar(x, y, yerr=yerr, marker="o", markersize=3.5, linewidth=1.4, capsize=2.5, color=colour,
                        label=_label(rec))
            c = rec["ceiling"].get(area)
            band = _ceiling_band(c) if c else None
            if band and not shown_ceiling:
                ax.axhspan(band[0], band[1], color="#999999", alpha=0.28, linewidth=0,
                           label=f"noise ceiling [{band[0]:.3f}, {band[1]:.3f}]")
                shown_ceiling = True
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title(area, fontsize=10)
        if same_layers:
            ax.set_xticks(range(len(recs[0]["layers"])), recs[0]["layers"], rotation=60, ha="right", fontsize=7)
        elif same_depth:
            ax.set_xticks(range(len(recs[0]["layers"])), [str(i + 1) for i in range(len(recs[0]["layers"]))])
            ax.set_xlabel("layer (1 = first scored layer)")
        else:
            ax.set_xlabel("relative depth (first to last scored layer)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for k in range(len(areas), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    for r in range(rows):
        axes[r][0].set_ylabel(_METRIC_LABEL.get(recs[0]["metric"], recs[0]["metric"]))
    fig.suptitle(f"{_METRIC_LABEL.get(recs[0]['metric'], recs[0]['metric'])} by layer vs {recs[0]['neural_dataset']}"
                 " (error bars: bootstrap CI over stimuli)", fontsize=10)
    return fig


def rank_transform(rdm: Any) -> np.ndarray:
    """An RDM's off-diagonal entries replaced by their percentile (0-100, ties averaged); diagonal 0."""
    from scipy.stats import rankdata

    a = np.asarray(rdm.detach().cpu().numpy() if hasattr(rdm, "detach") else rdm, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"an RDM must be square [n, n], got shape {a.shape}")
    n = a.shape[0]
    iu = np.triu_indices(n, k=1)
    v = a[iu]
    if not np.isfinite(v).all():
        raise ValueError("the RDM holds NaN or infinite dissimilarities")
    out = np.zeros_like(a)
    if v.size:
        r = rankdata(v)
        r = 100.0 * (r - 1) / max(v.size - 1, 1)
        out[iu] = r
        out[(iu[1], iu[0])] = r
    return out


def rdm_figure(rdms: Mapping[str, Any], *, boundaries: Sequence[int] | None = None):
    """RDMs side by side (up to 4 a row), rank-transformed colour (percentiles). ``boundaries``:
    stimulus indices where a new category starts (drawn as thin lines)."""
    if not rdms:
        raise ValueError("rdm_figure needs at least one RDM")
    items = [(str(name), rank_transform(m)) for name, m in rdms.items()]
    n = {m.shape[0] for _, m in items}
    if len(n) != 1:
        raise ValueError(f"the RDMs hold different numbers of stimuli: {sorted(n)}")
    cols = min(4, len(items))
    rows = math.ceil(len(items) / cols)
    fig = _figure(3.3 * cols + 0.9, 3.4 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False)
    im = None
    for k, (name, m) in enumerate(items):
        ax = axes[k // cols][k % cols]
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
        for b in boundaries or ():
            ax.axhline(b - 0.5, color="white", linewidth=0.5)
            ax.axvline(b - 0.5, color="white", linewidth=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for k in range(len(items), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.colorbar(im, ax=axes, label="dissimilarity (percentile)", shrink=0.8)
    return fig


# ----------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.untrained { color: #a40000; font-weight: bold; } .trained { color: #006400; font-weight: bold; }
.unknown { color: #8a6d00; font-weight: bold; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.4em 0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.8em; }
.best { font-weight: bold; } .silent { color: #888; } .flagged { color: #b35900; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any, digits: int = 4) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "&ndash;"
    return f"{f:.{digits}f}" if math.isfinite(f) else "&ndash;"


def _status_html(rec: dict) -> str:
    trained, text = weights_status(rec)
    if trained is True:
        return f'<span class="trained">trained</span><br><small>{_e(text)}</small>'
    if trained is False:
        return f'<span class="untrained">UNTRAINED (random weights)</span><br><small>{_e(text)}</small>'
    return f'<span class="unknown">not recorded</span><br><small>{_e(text)}</small>'


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60] or "table"


def _summary_table(recs: list[dict]) -> str:
    areas = list(dict.fromkeys(a for r in recs for a in r["areas"]))
    head = "".join(f"<th>{_e(a)}: best layer (in sample), score (% of ceiling)</th>" for a in areas)
    rows = []
    for rec in recs:
        best = _best(rec)
        cells = []
        for a in areas:
            if a not in best:
                why = "every layer silent" if set(rec["layers"]) <= set(rec["silent_layers"]) else "no scored layer"
                cells.append(f'<td class="silent">{why}</td>')
                continue
            layer, score, _ = best[a]
            c = rec["ceiling"].get(a)
            denominator = _denominator(c) if c else None
            pct = f" ({100.0 * score / denominator:.0f}%)" if denominator else " (raw: no ceiling)"
            cells.append(f'<td class="num">{_e(layer)}<br>{_fmt(score)}{pct}</td>')
        rows.append(f"<tr><td><b>{_e(rec['model'])}</b></td><td>{_status_html(rec)}</td>"
                    f"<td>{_e(_METRIC_LABEL.get(rec['metric'], rec['metric']))}</td><td>{_e(rec['neural_dataset'])}</td>"
                    f'<td class="num"><b>{_fmt(_model_score(rec))}</b></td>{"".join(cells)}</tr>')
    return ("<table><tr><th>model</th><th>weights</th><th>metric</th><th>neural data</th>"
            f"<th>model score<br><small>max over layers (in sample), mean over areas; &ndash; when areas with and "
            f"without a ceiling would be averaged</small></th>{head}</tr>"
            + "".join(rows) + "</table>")


def _ceiling_table(recs: list[dict]) -> str:
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for rec in recs:
        for area, c in rec["ceiling"].items():
            seen.setdefault((rec["neural_dataset"], area), c)
    if not seen:
        return "<p>No noise ceiling was computed for these data.</p>"
    rows = "".join(
        f"<tr><td>{_e(ds)}</td><td>{_e(area)}</td><td class='num'>{_fmt(c.get('lower'))}</td>"
        f"<td class='num'>{_fmt(c.get('upper'))}</td><td class='num'>{_fmt(c.get('mean'))}</td>"
        f"<td class='num'>{_fmt(c.get('sem', c.get('std')))}</td><td class='num'>{_fmt(_denominator(c))}</td>"
        f"<td>{_e(c.get('method', ''))}</td></tr>"
        for (ds, area), c in seen.items())
    return ("<table><tr><th>neural data</th><th>area</th><th>lower bound</th><th>upper bound</th>"
            "<th>split-half estimate</th><th>its standard error</th><th>normalised by</th><th>method</th></tr>"
            + rows + "</table>")


def _scores_table(rec: dict) -> str:
    best = {a: v[2] for a, v in _best(rec).items()}
    ci = rec["ci_low"] is not None and rec["ci_high"] is not None
    head = "".join(f"<th>{_e(a)}{' [95% CI]' if ci else ''}</th>" for a in rec["areas"])
    rows = []
    for i, layer in enumerate(rec["layers"]):
        silent = layer in rec["silent_layers"]
        cells = []
        for j, area in enumerate(rec["areas"]):
            v = rec["scores"][i, j]
            flag = None if math.isfinite(v) or silent else _flag(rec, layer, area)
            if flag:  # not a number but a degenerate score: say so where the number would be
                cells.append(f'<td class="flagged" title="{_e(flag)}">&#9873; flagged: {_e(flag)}</td>')
                continue
            text = _fmt(v)
            if ci and math.isfinite(v):
                text += f" [{_fmt(rec['ci_low'][i, j], 3)}, {_fmt(rec['ci_high'][i, j], 3)}]"
            cls = "num best" if best.get(area) == i else "num"
            cells.append(f'<td class="{cls}">{text}</td>')
        name = f'<span class="silent">{_e(layer)} (silent: not scored)</span>' if silent else _e(layer)
        rows.append(f"<tr><td>{name}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>layer</th>{head}</tr>{''.join(rows)}</table>"


def _json_block(value: Any) -> str:
    return f"<pre>{_e(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>"


def write_report(
    tables: Sequence[Any],
    output_dir: str | Path,
    rdms: Mapping[str, Any] | None = None,
    title: str = "cortexsnn: brain-similarity report",
    *,
    notes: Sequence[str] = (),
    rdm_boundaries: Sequence[int] | None = None,
) -> Path:
    """Write ``report.html`` and its figures into ``output_dir``; return the HTML path.

    Args:
        tables: ``ScoreTable.to_dict()`` records (or ``ScoreTable`` objects); tables with the same
            metric and neural dataset share one score-by-depth figure.
        output_dir: created if needed; ``report.html``, ``depth_*.png``, ``heatmap_*.png`` and
            ``rdms.png`` are (over)written there, each atomically, the HTML last.
        rdms: optional ``name -> [n, n]`` RDMs (model and neural) drawn side by side.
        title: page title. notes: paragraphs shown under the title (plain text, escaped).
        rdm_boundaries: category boundaries drawn on the RDMs.

    Raises:
        ValueError / TypeError: a record without the ScoreTable fields, scores of the wrong shape,
            RDMs of different sizes. Nothing is written then.
    """
    if not tables:
        raise ValueError("write_report needs at least one score table")
    recs = [_as_record(t, k) for k, t in enumerate(tables)]
    out = Path(output_dir)

    # Render everything in memory first: nothing is written unless every figure could be drawn.
    files: dict[str, bytes] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for k, rec in enumerate(recs):
        groups.setdefault((rec["neural_dataset"], rec["metric"]), []).append(k)
    depth_names = {}
    for (dataset, metric), members in groups.items():
        name = f"depth_{_slug(dataset)}_{_slug(metric)}.png"
        files[name] = _png(depth_figure([recs[k] for k in members]))
        depth_names[(dataset, metric)] = name
    heat_names = []
    for k, rec in enumerate(recs):
        name = f"heatmap_{k + 1:02d}_{_slug(rec['model'])}_{_slug(rec['metric'])}_{_slug(rec['neural_dataset'])}.png"
        files[name] = _png(heatmap_figure(rec))
        heat_names.append(name)
    if rdms:
        files["rdms.png"] = _png(rdm_figure(rdms, boundaries=rdm_boundaries))

    from cortexsnn import __version__

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    untrained = [r["model"] for r in recs if weights_status(r)[0] is False]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p><small>cortexsnn {_e(__version__)} &middot; written {_e(now)}</small></p>",
    ]
    parts += [f"<p>{_e(n)}</p>" for n in notes]
    if untrained:
        parts.append('<p class="note"><b>Untrained (random weights, no checkpoint given):</b> '
                     + _e(", ".join(dict.fromkeys(untrained)))
                     + ". Such scores describe an architecture with random weights, not a trained network.</p>")
    parts += ["<h2>Summary</h2>", _summary_table(recs), "<h2>Noise ceilings</h2>", _ceiling_table(recs)]
    parts.append("<h2>Score by layer</h2>")
    for (dataset, metric), name in depth_names.items():
        parts.append(f'<p><img src="{_e(name)}" alt="{_e(metric)} by layer against {_e(dataset)}"></p>')
    if rdms:
        parts += ["<h2>Representational dissimilarity matrices</h2>",
                  "<p>Colour: percentile of each dissimilarity among the RDM's off-diagonal entries "
                  "(rank-transformed).</p>", '<p><img src="rdms.png" alt="RDMs side by side"></p>']
    parts.append("<h2>Per model</h2>")
    for rec, name in zip(recs, heat_names):
        trained, weights = weights_status(rec)
        parts += [f"<h3>{_e(rec['model'])} &middot; {_e(rec['metric'])} &middot; {_e(rec['neural_dataset'])}</h3>",
                  f"<p>Weights: {_status_html(rec)}</p>",
                  f'<p><img src="{_e(name)}" alt="{_e(rec["model"])} layers by areas"></p>',
                  _scores_table(rec)]
        if rec["silent_layers"]:
            reasons = rec["config"].get("silent_reasons") or {}
            items = "".join(f"<li>{_e(layer)}: {_e(reasons.get(layer, 'no stimulus information'))}</li>"
                            for layer in rec["silent_layers"])
            parts.append(f"<p>Silent layers ({len(rec['silent_layers'])} of {len(rec['layers'])}; not scored, "
                         f"excluded from the best layer):</p><ul>{items}</ul>")
        flagged = [(layer, area, why) for layer, by_area in rec["flags"].items() if layer not in rec["silent_layers"]
                   for area, why in by_area.items()]
        if flagged:
            items = "".join(f"<li>{_e(layer)} vs {_e(area)}: {_e(why)}</li>" for layer, area, why in flagged)
            parts.append(f'<p class="flagged">&#9873; Flagged scores ({len(flagged)}; degenerate: not a meaningful '
                         f"number, left out (NaN) and excluded from the best layer):</p><ul>{items}</ul>")
        parts += ["<details><summary>configuration, versions and seeds</summary>",
                  "<h4>config</h4>", _json_block(rec["config"]),
                  "<h4>versions</h4>", _json_block(rec.get("versions") or {}),
                  "<h4>seeds</h4>", _json_block(rec.get("seeds") or {}), "</details>"]
    versions = recs[0].get("versions") or {}
    if versions:
        parts += ["<h2>Software</h2>", "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                                                           for k, v in versions.items()) + "</table>"]
    parts.append("</body></html>")
    page = "\n".join(parts) + "\n"

    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_bytes(out / name, data) for name, data in files.items()]
    written.append(atomic_write_text(out / "report.html", page))
    mode = _file_mode()
    for path in written:  # temporary files are created 0600; a report is meant to be read
        os.chmod(path, mode)
    return written[-1]


def _file_mode() -> int:
    """``0o666`` less the process umask (what ``open()`` would have given)."""
    current = os.umask(0o022)
    os.umask(current)
    return 0o666 & ~current


# ----------------------------------------------------------------------------- benchmark-suite report
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#7f7f7f")


def _colours(models: Sequence[str]) -> dict[str, str]:
    """One colour per model, the same in every figure."""
    return {m: _PALETTE[k % len(_PALETTE)] for k, m in enumerate(models)}


def _model_label(result: Any, model: str) -> str:
    return model + ("" if result.models[model].get("trained") else " (untrained)")


def _panels(n: int, panel_height: float, margin: float = 0.9):
    """A figure of ``n`` panels, three a row; returns ``(figure, the n axes)`` (spare cells hidden)."""
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _figure(4.2 * cols, panel_height * rows + margin)
    grid = fig.subplots(rows, cols, squeeze=False)
    axes = [grid[k // cols][k % cols] for k in range(rows * cols)]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _ceiling_span(ax, c: Mapping[str, Any] | None, label: str):
    """The benchmark's noise ceiling as a grey band: its bounds, or the split-half estimate +- SD."""
    if not c:
        return None
    lo, hi = (c["lower"], c["upper"]) if c["kind"] == "leave-one-subject-out" else \
        (c["estimate"] - c["spread"], c["estimate"] + c["spread"])
    return ax.axhspan(lo, hi, color="#cccccc", alpha=0.6, zorder=0, label=label)


def suite_score_figure(result: Any):
    """One panel per benchmark: each model's held-out score (mean over splits, error bar: SD over
    splits), the per-subject scores at its selected layer (dots), the noise ceiling (band) and the
    data set's reference model RDMs (grey ticks). The legend sits below the panels."""
    benchmarks = list(result.benchmarks)
    models = list(result.models)
    colours = _colours(models)
    fig, axes = _panels(len(benchmarks), 3.4)
    handles = {}
    for ax, bname in zip(axes, benchmarks):
        b = result.benchmarks[bname]
        span = _ceiling_span(ax, b["ceiling"], "noise ceiling (bounds, or estimate +- SD)")
        if span is not None:
            handles["ceiling"] = span
        for x, model in enumerate(models):
            s = result.summary(model, bname)
            if s["status"] != "scored":
                ax.text(x, 0, "silent", rotation=90, ha="center", va="bottom", fontsize=7, color="#888")
                continue
            handles[model] = ax.bar(x, s["score"], yerr=s["score_sd"], color=colours[model], alpha=0.85,
                                    capsize=3, label=_model_label(result, model))
            subj = s["selected_layer_per_subject"]
            if len(subj) > 1:
                jitter = np.linspace(-0.2, 0.2, len(subj))
                ax.scatter(x + jitter, subj, s=9, color="black", zorder=3)
        refs = result.scores[bname].get("references") or {}
        for rname, v in refs.items():
            ax.axhline(v, color="#555", linewidth=0.6, linestyle=":", zorder=1)
            ax.text(len(models) - 0.5, v, rname, fontsize=6, color="#555", va="center")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([m for m in models], rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{b['species']} {b['area']} ({b['dataset']}, {b['n_subjects']} subj.)", fontsize=9)
        ax.set_ylabel("RSA, held-out layer (Spearman)", fontsize=8)
    fig.legend(list(handles.values()), [h.get_label() for h in handles.values()], loc="outside lower center",
               ncol=min(4, len(handles)), fontsize=8)
    return fig


def suite_depth_figure(result: Any):
    """One panel per benchmark: every layer's score against its relative depth (0 = first scored
    layer, 1 = last), the 95% bootstrap interval as a band, the selected layer circled, the
    ceiling as a grey band. Legend below the panels."""
    benchmarks = list(result.benchmarks)
    models = list(result.models)
    colours = _colours(models)
    fig, axes = _panels(len(benchmarks), 3.2)
    handles = {}
    for ax, bname in zip(axes, benchmarks):
        b = result.benchmarks[bname]
        span = _ceiling_span(ax, b["ceiling"], "noise ceiling")
        if span is not None:
            handles["ceiling"] = span
        for model in models:
            rows_m = [r for r in result.scores[bname]["layers"] if r["model"] == model]
            if not rows_m:
                continue
            info = result.layers[model][b["stimulus_set"]]
            depth = np.array([info[r["layer"]]["depth"] for r in rows_m])
            score = np.array([r["score"] for r in rows_m])
            ax.fill_between(depth, [r["ci_low"] for r in rows_m], [r["ci_high"] for r in rows_m],
                            color=colours[model], alpha=0.15, linewidth=0)
            (line,) = ax.plot(depth, score, "-o", color=colours[model], markersize=2.5, linewidth=1,
                              label=_model_label(result, model))
            handles[model] = line
            s = result.summary(model, bname)
            if s.get("selected_layer"):
                i = [r["layer"] for r in rows_m].index(s["selected_layer"])
                ax.plot(depth[i], score[i], "o", markersize=8, markerfacecolor="none", markeredgecolor=colours[model])
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel("relative depth (first to last scored layer)", fontsize=8)
        ax.set_ylabel("RSA (Spearman)", fontsize=8)
        ax.set_title(f"{b['species']} {b['area']} ({b['dataset']})", fontsize=9)
    fig.legend(list(handles.values()), [h.get_label() for h in handles.values()], loc="outside lower center",
               ncol=min(4, len(handles)), fontsize=8)
    return fig


def suite_activity_figure(result: Any):
    """Mean output of every layer (spiking layers: spikes per neuron per step) against relative depth,
    one line per model and stimulus set; layers that are silent are marked with an x."""
    models = list(result.models)
    colours = _colours(models)
    fig = _figure(6.5, 3.4)
    ax = fig.subplots()
    for model in models:
        for k, (set_name, layers) in enumerate(result.layers[model].items()):
            depth = [v["depth"] for v in layers.values()]
            mean = [max(abs(v["mean_output"]), 1e-6) for v in layers.values()]
            ax.plot(depth, mean, ("-", "--", ":", "-.")[k % 4], color=colours[model], linewidth=1,
                    label=f"{_model_label(result, model)}, {set_name}")
            silent = [(d, m) for d, m, v in zip(depth, mean, layers.values()) if "silent" in v]
            if silent:
                ax.plot(*zip(*silent), "x", color=colours[model], markersize=6)
    ax.set_yscale("log")
    ax.set_xlabel("relative depth", fontsize=8)
    ax.set_ylabel("|mean layer output|", fontsize=8)
    fig.legend(fontsize=6, loc="outside right upper")
    return fig


def suite_time_figure(result: Any):
    """Spiking models' selected layers over time: the score at each step (dashed) and on the average
    of steps 1..t (solid), one panel per benchmark that has a time course."""
    courses = {b: s["time_course"] for b, s in result.scores.items() if s.get("time_course")}
    colours = _colours(list(result.models))
    fig, axes = _panels(len(courses), 3.0, margin=0.6)
    for ax, (bname, per_model) in zip(axes, courses.items()):
        for model, c in per_model.items():
            t = np.arange(1, len(c["per_step"]) + 1)
            to_float = lambda v: [math.nan if x is None else x for x in v]  # noqa: E731
            ax.plot(t, to_float(c["cumulative"]), "-", color=colours[model], label=f"{model} ({c['layer']})")
            ax.plot(t, to_float(c["per_step"]), "--", color=colours[model], linewidth=0.8)
        b = result.benchmarks[bname]
        ax.set_title(f"{b['species']} {b['area']} ({b['dataset']})", fontsize=9)
        ax.set_xlabel("time step", fontsize=8)
        ax.set_ylabel("RSA", fontsize=8)
        ax.legend(fontsize=6)
    return fig


def suite_mds_figure(result: Any, key: str, categories: Sequence[str] | None, title: str):
    """2-D metric MDS (scikit-learn >= 1.8, precomputed dissimilarities, seed 0) of one RDM, stimuli
    coloured by category."""
    from sklearn.manifold import MDS

    d = np.asarray(result.rdms[key], dtype=np.float64)
    xy = MDS(n_components=2, metric="precomputed", init="random", random_state=0, n_init=4).fit_transform(d)
    fig = _figure(4.2, 3.8)
    ax = fig.subplots()
    labels = list(categories) if categories is not None else ["stimulus"] * len(d)
    for k, cat in enumerate(dict.fromkeys(labels)):
        idx = [i for i, c in enumerate(labels) if c == cat]
        ax.scatter(xy[idx, 0], xy[idx, 1], s=12, color=_PALETTE[k % len(_PALETTE)], label=cat)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if categories is not None:
        fig.legend(fontsize=6, loc="outside right upper")
    return fig


def _p(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "&ndash;"
    return "&lt; 0.001" if f < 0.001 else f"{f:.3f}"


def _suite_summary_table(result: Any) -> str:
    benchmarks = list(result.benchmarks)
    head = "".join(f"<th>{_e(result.benchmarks[b]['species'])} {_e(result.benchmarks[b]['area'])}<br>"
                   f"<small>{_e(result.benchmarks[b]['dataset'])}</small></th>" for b in benchmarks)
    rows = ["<tr><th>ceiling</th>" + "".join(f"<td>{_ceiling_text(result.benchmarks[b]['ceiling'])}</td>"
                                              for b in benchmarks) + "</tr>"]
    for model in result.models:
        cells = []
        for b in benchmarks:
            s = result.summary(model, b)
            if s["status"] != "scored":
                cells.append(f'<td class="silent">{_e(s["status"])}</td>')
                continue
            norm = (f"<br>normalised {_fmt(s['normalized_score'], 3)} &plusmn; {_fmt(s['normalized_score_sd'], 3)}"
                    if "normalized_score" in s else "<br><small>raw (no ceiling)</small>")
            cells.append(f'<td class="num">{_fmt(s["score"], 3)} &plusmn; {_fmt(s["score_sd"], 3)}{norm}<br>'
                         f'<small>{_e(s["selected_layer"])} ({100 * s["selection_frequency"]:.0f}% of folds); '
                         f'in-sample best {_e(s["in_sample_best_layer"])} {_fmt(s["in_sample_best_score"], 3)}'
                         f'</small></td>')
        rows.append(f"<tr><th>{_e(_model_label(result, model))}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>model</th>{head}</tr>{''.join(rows)}</table>"


def _ceiling_text(c: Mapping[str, Any] | None) -> str:
    if not c:
        return "none (one RDM): raw scores"
    if c["kind"] == "leave-one-subject-out":
        return f"[{_fmt(c['lower'], 3)}, {_fmt(c['upper'], 3)}]<br><small>leave-one-subject-out lower, upper</small>"
    return f"{_fmt(c['estimate'], 3)} (SD {_fmt(c['spread'], 3)})<br><small>split-half, Spearman-Brown</small>"


def _suite_comparison_table(result: Any) -> str:
    rows = []
    for bname, s in result.scores.items():
        for c in s["comparisons"]:
            st, sub = c["stimuli"], c.get("subjects")
            subj = (f"{_fmt(sub['difference'], 3)} [{_fmt(sub['ci_low'], 3)}, {_fmt(sub['ci_high'], 3)}], "
                    f"p {_p(sub['p'])} (n = {sub['n_subjects']})") if sub else "&ndash;"
            rows.append(f"<tr><td>{_e(bname)}</td><td>{_e(c['model_a'])} &minus; {_e(c['model_b'])}</td>"
                        f"<td class='num'>{_fmt(c['difference'], 3)} [{_fmt(st['ci_low'], 3)}, {_fmt(st['ci_high'], 3)}]</td>"
                        f"<td class='num'>{_p(st['p'])}</td><td class='num'>{_p(st.get('p_holm'))}</td>"
                        f"<td>{subj}</td></tr>")
    if not rows:
        return "<p>Fewer than two scored models: no comparison.</p>"
    return ("<table><tr><th>benchmark</th><th>difference (selected layers)</th><th>over stimuli: "
            "difference [95% CI]</th><th>p</th><th>p (Holm)</th><th>over subjects: mean difference [95% CI], p</th></tr>"
            + "".join(rows) + "</table>")


def _suite_activity_table(result: Any) -> str:
    rows = []
    for model, sets in result.layers.items():
        for set_name, layers in sets.items():
            silent = [name for name, v in layers.items() if "silent" in v]
            partial = {name: v["silent_stimuli"] for name, v in layers.items() if v["silent_stimuli"] and "silent" not in v}
            rows.append(f"<tr><td>{_e(model)}</td><td>{_e(set_name)}</td><td class='num'>{len(layers)}</td>"
                        f"<td>{_e(', '.join(silent)) or '&ndash;'}</td>"
                        f"<td>{_e(', '.join(f'{k} ({v})' for k, v in partial.items())) or '&ndash;'}</td></tr>")
    return ("<table><tr><th>model</th><th>stimuli</th><th>layers</th><th>silent layers (not scored)</th>"
            "<th>layers with silent stimuli (count)</th></tr>" + "".join(rows) + "</table>")


def write_suite_report(result: Any, output_dir: str | Path, *, title: str = "cortexsnn: brain benchmarks",
                       notes: Sequence[str] = ()) -> Path:
    """Write ``report.html`` and its figures for a :class:`~cortexsnn.similarity.suite.SuiteResult`
    (read as it is: nothing is recomputed but the figures' MDS layout). Every figure is rendered
    in memory first, each file is written atomically, the HTML last."""
    from cortexsnn import __version__

    files: dict[str, bytes] = {"suite_scores.png": _png(suite_score_figure(result)),
                               "suite_depth.png": _png(suite_depth_figure(result)),
                               "suite_activity.png": _png(suite_activity_figure(result))}
    timed = any(s.get("time_course") for s in result.scores.values())
    if timed:
        files["suite_time.png"] = _png(suite_time_figure(result))
    rdm_sections = []
    for set_name in dict.fromkeys(b["stimulus_set"] for b in result.benchmarks.values()):
        shown = {}
        for bname, b in result.benchmarks.items():
            if b["stimulus_set"] == set_name and f"{bname}|target" in result.rdms:
                shown[f"{b['species']} {b['area']} (mean of {b['n_subjects']})"] = result.rdms[f"{bname}|target"]
        first = next(b for b, v in result.benchmarks.items() if v["stimulus_set"] == set_name)
        for model in result.models:
            key = f"{first}|{model}"
            if key in result.rdms:
                layer = result.summary(model, first)["selected_layer"]
                shown[f"{_model_label(result, model)}: {layer}"] = result.rdms[key]
        categories = result.categories.get(set_name)
        boundaries = None
        if categories:
            boundaries = [i for i in range(1, len(categories)) if categories[i] != categories[i - 1]]
        name = f"rdms_{_slug(set_name)}.png"
        files[name] = _png(rdm_figure(shown, boundaries=boundaries))
        mds = f"mds_{_slug(set_name)}.png"
        files[mds] = _png(suite_mds_figure(result, f"{first}|target", categories,
                                           f"{result.benchmarks[first]['species']} "
                                           f"{result.benchmarks[first]['area']}: MDS of the target RDM"))
        rdm_sections.append((set_name, name, mds))

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    untrained = [m for m, info in result.models.items() if not info.get("trained")]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
             f"<p><small>cortexsnn {_e(__version__)} &middot; written {_e(now)}</small></p>"]
    parts += [f"<p>{_e(n)}</p>" for n in notes]
    if untrained:
        parts.append('<p class="note"><b>Untrained (random weights):</b> ' + _e(", ".join(untrained))
                     + ". Their scores describe an architecture with random weights, not a trained network.</p>")
    if result.skipped:
        parts.append('<p class="note"><b>Benchmarks left out</b> (their data are not on this machine): '
                     + "; ".join(f"{_e(k)}: {_e(v.splitlines()[0])}" for k, v in result.skipped.items()) + "</p>")
    c = result.config
    parts += ["<h2>Models</h2>", "<table><tr><th>model</th><th>weights</th><th>presentation</th><th>time (s)</th></tr>"
              + "".join(f"<tr><td>{_e(m)}</td><td>{_status_html({'config': info})}</td><td>{_e(info['mode'])}"
                        + (f", T = {info['time_steps']}" if info.get('time_steps') else "")
                        + f", {info['image_size']} px</td><td class='num'>{_fmt(info.get('seconds'), 0)}</td></tr>"
                        for m, info in result.models.items()) + "</table>",
              "<h2>Scores</h2>",
              f"<p>Each cell: the held-out RSA (mean &plusmn; SD over {2 * c['n_splits']} folds: {_e(c['layer_selection'])}); "
              f"normalised: {_e(c['normalization'])}. Below: the layer chosen most often, and the in-sample best "
              "layer (chosen on the stimuli it is scored on: optimistic, shown for reference only).</p>",
              _suite_summary_table(result),
              '<p><img src="suite_scores.png" alt="held-out scores per benchmark"></p>',
              "<p>Bars: held-out score (error bar: SD over folds); dots: each subject's score at the selected layer; "
              "grey band: noise ceiling; dotted lines: the data set's reference model RDMs.</p>",
              "<h2>Paired comparisons</h2>",
              f"<p>At each model's selected layer. Over stimuli: paired bootstrap ({c['n_boot']} resamples, one "
              "resampling shared by both models), two-sided p, Holm-corrected within each benchmark. Over subjects: "
              "exact sign-flip permutation test of the per-subject differences.</p>",
              _suite_comparison_table(result),
              "<h2>Score by layer</h2>", '<p><img src="suite_depth.png" alt="score by relative depth"></p>',
              "<h2>Activity</h2>", f"<p>Silent stimuli: {_e(c['silent_rule'])}.</p>",
              '<p><img src="suite_activity.png" alt="mean output by depth"></p>', _suite_activity_table(result)]
    if timed:
        parts += ["<h2>Over time</h2>", "<p>Spiking models, at each benchmark's selected layer: the score of each "
                  "time step alone (dashed) and of the average over steps 1..t (solid); gaps: steps with no response."
                  "</p>", '<p><img src="suite_time.png" alt="scores over time steps"></p>']
    refs = {b: s["references"] for b, s in result.scores.items() if s.get("references")}
    if refs:
        parts.append("<h2>Reference model RDMs</h2><table><tr><th>benchmark</th>"
                     + "".join(f"<th>{_e(r)}</th>" for r in next(iter(refs.values()))) + "</tr>"
                     + "".join(f"<tr><td>{_e(b)}</td>" + "".join(f"<td class='num'>{_fmt(v, 3)}</td>" for v in r.values())
                               + "</tr>" for b, r in refs.items()) + "</table>")
    parts.append("<h2>Representational dissimilarity matrices</h2><p>Colour: percentile of each dissimilarity "
                 "(rank-transformed); lines: category boundaries.</p>")
    for set_name, name, mds in rdm_sections:
        parts += [f"<h3>{_e(set_name)}</h3>", f'<p><img src="{_e(name)}" alt="RDMs of {_e(set_name)}">',
                  f'<img src="{_e(mds)}" alt="MDS of {_e(set_name)}"></p>']
    parts += ["<details><summary>configuration and versions</summary>", _json_block(c), "</details>", "</body></html>"]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_bytes(out / name, data) for name, data in files.items()]
    written.append(atomic_write_text(out / "report.html", "\n".join(parts) + "\n"))
    return written[-1]
