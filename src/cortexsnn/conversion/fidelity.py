"""How close a converted network comes to its ANN, as a function of the number of steps.

:func:`measure_fidelity` runs the ANN once and the SNN once up to the largest ``T`` (the read-out
after ``t`` steps is the running mean of the first ``t`` outputs, so one simulation serves every
``T``), and reports at each ``T``: top-1 agreement with the ANN, the correlation of the SNN's logits
with the ANN's, the SNN's own top-1 accuracy when labels are given, and for every recorded layer the
correlation of its time-averaged output with the ANN's output at the same place. Evaluate on images
that were *not* used for calibration. A recurrent time-major ANN (``lorafb_cnet18``) is compared
through its unrolled form, over the steps the SNN was converted from (its time-averaged output and
layers).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cortexsnn.conversion.errors import ConversionError
from cortexsnn.conversion.network import ConvertedSNN
from cortexsnn.conversion.unrolling import is_time_major, unroll
from cortexsnn.neurons.base import reset

__all__ = ["FidelityResult", "measure_fidelity"]

log = logging.getLogger(__name__)


@dataclass
class FidelityResult:
    """Fidelity of a conversion at each number of steps (lists aligned with ``steps``).

    Attributes:
        steps: the ``T`` values.
        agreement: fraction of images whose SNN top-1 class is the ANN's.
        logit_correlation: Pearson correlation of the SNN's and the ANN's logits over all images and classes.
        accuracy / ann_accuracy: top-1 accuracy with ``labels`` (``None`` without).
        layer_correlation: ``{layer: [r at each T]}``, time-averaged SNN output vs ANN output.
        ann_seconds / snn_seconds: wall time of the ANN pass and of the whole simulation.
        n_images: images evaluated.
    """

    steps: list[int]
    agreement: list[float]
    logit_correlation: list[float]
    accuracy: list[float] | None
    ann_accuracy: float | None
    layer_correlation: dict[str, list[float]] = field(default_factory=dict)
    ann_seconds: float = 0.0
    snn_seconds: float = 0.0
    n_images: int = 0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Moments:
    """Running sums for a Pearson correlation over many batches (float64)."""

    def __init__(self) -> None:
        self.n = 0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, x: Tensor, y: Tensor) -> None:
        x, y = x.double().flatten(), y.double().flatten()
        self.n += x.numel()
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())
        self.sxy += float((x * y).sum())

    def r(self) -> float:
        if self.n == 0:
            return float("nan")
        cov = self.sxy - self.sx * self.sy / self.n
        var = (self.sxx - self.sx ** 2 / self.n) * (self.syy - self.sy ** 2 / self.n)
        return float(cov / np.sqrt(var)) if var > 0 else float("nan")


def _record(module: nn.Module, names: Sequence[str], store: dict[str, Tensor], time_major: bool):
    paths = getattr(module, "recorded_paths", {})  # an unrolled ANN: the layers' means over its steps
    handles = []
    for name in names:
        def hook(mod, inputs, output, name=name):
            value = output.detach()
            if time_major:  # [k, B, ...]: accumulate the sum over steps
                value = value.sum(0, dtype=torch.float32)
                store[name] = value if name not in store else store[name] + value
            else:
                store[name] = value.float()
        handles.append(module.get_submodule(paths.get(name, name)).register_forward_hook(hook))
    return handles


@torch.no_grad()
def measure_fidelity(ann: nn.Module, snn: ConvertedSNN, images: Tensor, *, steps: Sequence[int] = (8, 16, 32, 64),
                     labels: Tensor | None = None, layers: Sequence[str] | None = None,
                     batch_size: int = 8) -> FidelityResult:
    """Compare ``snn`` with ``ann`` on ``images`` ``[N, C, H, W]`` at each ``T`` in ``steps``.

    ``layers`` (default: ``snn.scoring_layers``) are compared by the correlation of their outputs;
    they must be module paths of ``ann`` too. The simulation runs ``max(steps)`` steps in chunks of
    ``snn.time_chunk``; every ``T`` must be a multiple of the chunk. A time-major ``ann`` is unrolled
    over the steps recorded in ``snn.info["unrolled_steps"]``.
    """
    steps = sorted({int(t) for t in steps})
    if not steps or steps[0] < 1:
        raise ConversionError(f"steps must be positive integers, got {steps}")
    chunk = snn.time_chunk
    if any(t % chunk for t in steps):
        raise ConversionError(f"every T in {steps} must be a multiple of the SNN's time_chunk ({chunk})")
    if images.dim() != 4 or images.shape[0] < 1:
        raise ConversionError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    if labels is not None and labels.shape[0] != images.shape[0]:
        raise ConversionError(f"{labels.shape[0]} labels for {images.shape[0]} images")
    layers = list(snn.scoring_layers if layers is None else layers)
    if is_time_major(ann):
        unrolled_steps = snn.info.get("unrolled_steps")
        if not unrolled_steps:
            raise ConversionError(f"{type(ann).__name__} is time-major but the SNN was not converted from an "
                                  "unrolled network (snn.info['unrolled_steps'] is not set); compare the SNN with "
                                  "its source ANN")
        ann = unroll(ann, unrolled_steps)
    ann = ann.eval()
    snn = snn.eval()
    agree = np.zeros(len(steps))
    correct = np.zeros(len(steps))
    ann_correct = 0
    logit_moments = [_Moments() for _ in steps]
    layer_moments = {name: [_Moments() for _ in steps] for name in layers}
    ann_seconds = snn_seconds = 0.0
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size]
        ann_store: dict[str, Tensor] = {}
        handles = _record(ann, layers, ann_store, time_major=False)
        t0 = time.perf_counter()
        try:
            ann_logits = ann(batch).float()
        finally:
            for h in handles:
                h.remove()
        ann_seconds += time.perf_counter() - t0
        top = ann_logits.argmax(1)
        if labels is not None:
            ann_correct += int((top == labels[start:start + batch_size]).sum())
        snn_store: dict[str, Tensor] = {}
        handles = _record(snn, layers, snn_store, time_major=True)
        reset(snn)
        total = torch.zeros_like(ann_logits)
        done = 0
        t0 = time.perf_counter()
        try:
            for index, target in enumerate(steps):
                while done < target:
                    out = snn(batch.unsqueeze(0).expand(chunk, *batch.shape))
                    total += out.float().sum(0)
                    done += chunk
                readout = total / done
                snn_top = readout.argmax(1)
                agree[index] += int((snn_top == top).sum())
                if labels is not None:
                    correct[index] += int((snn_top == labels[start:start + batch_size]).sum())
                logit_moments[index].add(readout, ann_logits)
                for name in layers:
                    layer_moments[name][index].add(snn_store[name] / done, ann_store[name])
        finally:
            for h in handles:
                h.remove()
            reset(snn)
        snn_seconds += time.perf_counter() - t0
        log.info("fidelity: %d / %d images", min(start + batch_size, images.shape[0]), images.shape[0])
    n = images.shape[0]
    return FidelityResult(
        steps=steps, agreement=list(agree / n), logit_correlation=[m.r() for m in logit_moments],
        accuracy=list(correct / n) if labels is not None else None,
        ann_accuracy=ann_correct / n if labels is not None else None,
        layer_correlation={name: [m.r() for m in ms] for name, ms in layer_moments.items()},
        ann_seconds=ann_seconds, snn_seconds=snn_seconds, n_images=n)
