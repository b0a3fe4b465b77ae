"""Evaluation of STDP networks: metrics (silent samples count as errors), confusion matrix,
one-vs-rest ROC AUC from the decision layer's potentials, and activation maps as images."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

__all__ = ["classification_metrics", "confusion_figure", "save_activation_maps", "write_metrics"]


def classification_metrics(labels: torch.Tensor, decisions: torch.Tensor, scores: torch.Tensor, n_classes: int) -> dict:
    """Accuracy, silent rate, confusion matrix, macro precision / recall / F1 and ROC AUC.

    ``decisions`` holds -1 for silent samples: they count as errors in accuracy and recall (the
    seed dropped them), and are reported as ``silent_rate`` and as the last confusion column.
    ``roc_auc_ovr`` is scikit-learn's one-vs-rest macro AUC of each sample's share of evidence
    per class, ``scores[:, c] / sum(scores)`` (a class's score: the largest last-step
    potential of its decision neurons); with classes absent from ``labels`` the mean of the
    defined per-class AUCs.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    y = labels.long().cpu().numpy()
    d = decisions.long().cpu().numpy()
    if y.shape != d.shape:
        raise ValueError(f"labels {y.shape} and decisions {d.shape} differ in shape")
    n = len(y)
    silent = d < 0
    pred = np.where(silent, n_classes, d)  # silent -> an extra "no decision" class
    confusion = confusion_matrix(y, pred, labels=list(range(n_classes + 1)))[:n_classes]
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, labels=list(range(n_classes)), average="macro", zero_division=0
    )
    # A potential's scale follows the image's overall activity, so raw potentials are not
    # comparable across samples; each sample's evidence is turned into shares over the classes
    # (non-negative potentials), which sklearn's one-vs-rest AUC then ranks per class.
    s = scores.double().clamp(min=0).cpu().numpy()
    totals = s.sum(axis=1, keepdims=True)
    shares = np.where(totals > 0, s / np.where(totals > 0, totals, 1), 1.0 / n_classes)
    present = np.unique(y)
    auc = math.nan
    if len(present) == n_classes:
        auc = float(roc_auc_score(y, shares, multi_class="ovr", labels=list(range(n_classes))))
    elif len(present) >= 2:  # some classes absent: mean of the per-class AUCs that are defined
        auc = float(np.mean([roc_auc_score(y == c, shares[:, c]) for c in present]))
    return {
        "n_samples": int(n),
        "accuracy": float((d == y).mean()) if n else math.nan,
        "error_rate": float((d != y).mean()) if n else math.nan,
        "silent_rate": float(silent.mean()) if n else math.nan,
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "roc_auc_ovr": auc,
        "confusion_matrix": confusion.tolist(),
        "confusion_columns": [str(c) for c in range(n_classes)] + ["silent"],
    }


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write metrics as JSON (atomically)."""
    from cortexsnn.utils.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as handle:
        json.dump(metrics, handle, indent=2)
    return path


def confusion_figure(confusion: Sequence[Sequence[int]], columns: Sequence[str], title: str = "confusion matrix"):
    """A matplotlib figure of the confusion matrix (rows: true class, columns: decision)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(matrix.shape[1]), columns, rotation=45)
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in range(matrix.shape[0])])
    ax.set_xlabel("decision")
    ax.set_ylabel("true class")
    ax.set_title(title)
    limit = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, str(value), ha="center", va="center", fontsize=6, color="white" if value > limit else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def _grid(maps: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` -> one image tiling the channels (separated by a 1-pixel border)."""
    c, h, w = maps.shape
    cols = int(math.ceil(math.sqrt(c)))
    rows = int(math.ceil(c / cols))
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan)
    for i in range(c):
        r, q = divmod(i, cols)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = maps[i]
    return canvas


def save_activation_maps(model, latencies: torch.Tensor, out_dir: str | Path, labels: Sequence[int] | None = None,
                         indices: Sequence[int] | None = None) -> list[Path]:
    """Save, for every sample, one PNG per layer: each feature map as a tile.

    Spike maps show earliness ``(T - latency) / T`` (1 = first step, 0 = silent); decision
    layers show their last-step potentials. Returns the written files.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    activations = model.activations(latencies)
    heads = set(model.heads)
    written = []
    time_steps = model.time_steps
    for i in range(latencies.shape[0]):
        tag = f"sample{indices[i] if indices is not None else i}"
        if labels is not None:
            tag += f"_label{int(labels[i])}"
        for order, (name, tensor) in enumerate(activations.items()):
            maps = tensor[i].double().cpu().numpy()
            if name in heads:
                shown, what = maps, "last-step potential"
            else:
                shown, what = (time_steps - np.minimum(maps, time_steps)) / time_steps, "earliness (T - latency) / T"
            fig, ax = plt.subplots(figsize=(6, 6))
            im = ax.imshow(_grid(shown), cmap="viridis", interpolation="nearest")
            ax.set_title(f"{model.name} {tag}: {name} ({maps.shape[0]} maps, {what})", fontsize=8)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046)
            path = out_dir / f"{tag}_{order:02d}_{name.replace('+', '_')}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            written.append(path)
    return written
