#!/usr/bin/env python
"""The MNIST anchor of the ANN-to-SNN converter: ours against SpikingJelly's ``RateCodingRecipe``.

One ReLU CNN (the architecture of SpikingJelly's sample ``ann2snn.sample_models.mnist_cnn.CNN``:
three conv-BN-ReLU-avgpool blocks and a linear read-out, same state-dict keys) is trained here on
MNIST (fixed seed, cached under ``--work-dir``), then converted by

* SpikingJelly 2's ``FXConverter(RateCodingRecipe(...))`` in its modes ``max``, ``99.9%`` and
  ``1/k`` (k chosen on the validation split from 2..5, the range of SpikingJelly's own example),
  plus its channel-wise variant with half-threshold initial potentials (its closest to ours);
* ours (:func:`cortexsnn.conversion.convert`): the default configuration, the "classic" one
  (``burst=False, signed=False``: plain IF neurons, reset by subtraction, theta/2 start, per-channel
  thresholds) and the configuration chosen on the validation split among a few candidates.

Splits: the 60,000 training digits are split 55,000 / 5,000 (seeded, ``train_val_split``); the
network is trained on the 55,000; both converters calibrate on the same 1,000 of them; every
setting is chosen on validation digits; the test digits (all 10,000, or a fixed 2,000 with
``--quick``) are used only for the reported accuracies.

Every method simulates once to ``T_max`` = 256 steps per test batch; the accuracy of the rate
read-out (SpikingJelly: the summed outputs, as in its example; ours: ``rate_readout``) is taken at
every step, reported at T in 8..256, and the smallest T at which the method is within 1 point of
the ANN's test accuracy is given on that grid and to the step. Methods run in turn on each batch
(same process, same threads), so a disturbance of the shared machine hits all alike; the time is
the total simulation time of a method over the test set (ours with its default ``time_chunk`` of
8 steps); the peak memory is the growth of the resident set's high-water mark (VmHWM) over one
batch of the method's, after the C heap's free pages are given back (``malloc_trim``).

    python benchmarks/conversion_mnist.py [--quick] [--work-dir .cache/conversion_mnist] [--threads 1]

``run_mnist_anchor(args) -> list[dict]`` runs it and returns the JSON lines (one per method of ours,
the project's benchmark fields plus the accuracies of ours and of every SpikingJelly method);
``measure(args)`` returns the rows of every method; ``add_arguments(parser)`` adds this module's
options to another script's parser (options a caller's ``args`` lacks take their defaults).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import PeakGrowth, print_json_lines, print_table  # noqa: E402

__all__ = ["MnistCNN", "Method", "add_arguments", "run_mnist_anchor", "measure", "json_lines", "train_ann",
           "load_splits", "accuracy_curves", "smallest_step_within", "main"]

STEPS = (8, 16, 32, 64, 128, 256)
TOLERANCE = 1.0  # percentage points below the ANN's accuracy
REPO = Path(__file__).resolve().parents[1]


class MnistCNN(nn.Module):
    """SpikingJelly's sample MNIST CNN (``ann2snn.sample_models.mnist_cnn.CNN``), same layers and keys."""

    def __init__(self) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Conv2d(32, 32, 3, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Conv2d(32, 32, 3, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(2, 2),
            nn.Flatten(), nn.Linear(32, 10),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)


# ---------------------------------------------------------------------------------------------
# Data and the trained ANN

@dataclass
class Splits:
    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    calib_x: Tensor
    test_x: Tensor
    test_y: Tensor


def _as_tensors(dataset) -> tuple[Tensor, Tensor]:
    images = dataset.images.to(torch.float32).div_(255.0).unsqueeze(1).contiguous()  # [N, 1, 28, 28] in [0, 1]
    return images, dataset.targets.to(torch.int64)


def load_splits(data_dir: Path, *, calibration: int = 1000, test_limit: int | None = None, seed: int = 0) -> Splits:
    """Full MNIST from the IDX files in ``data_dir``: 55,000 training / 5,000 validation digits (seeded),
    ``calibration`` training digits (a seeded choice), the test digits (the first ``test_limit`` of a
    seeded permutation when given)."""
    from cortexsnn.data.mnist import load_mnist, train_val_split

    train_set = load_mnist(data_dir, train=True)
    test_set = load_mnist(data_dir, train=False)
    images, labels = _as_tensors(train_set)
    train_part, val_part = train_val_split(train_set, 5000 / 60000, seed)
    train_idx = torch.as_tensor(train_part.indices)
    val_idx = torch.as_tensor(val_part.indices)
    gen = torch.Generator().manual_seed(seed + 1)
    calib_idx = train_idx[torch.randperm(len(train_idx), generator=gen)[:calibration]]
    test_x, test_y = _as_tensors(test_set)
    if test_limit is not None and test_limit < len(test_y):
        order = torch.randperm(len(test_y), generator=torch.Generator().manual_seed(seed + 2))[:test_limit]
        test_x, test_y = test_x[order], test_y[order]
    return Splits(images[train_idx], labels[train_idx], images[val_idx], labels[val_idx], images[calib_idx],
                  test_x, test_y)


def train_ann(splits: Splits, work_dir: Path, *, epochs: int = 5, seed: int = 0, batch_size: int = 100,
              lr: float = 2e-3, log: Callable[[str], None] = print) -> MnistCNN:
    """Train :class:`MnistCNN` with Adam (cross-entropy, batch 100, learning rate ``lr`` decayed to 0 by a
    cosine over the epochs; SpikingJelly's example uses weight decay 5e-4 and a constant 1e-3, which
    reaches only ~98.1% on validation in 4 epochs), or load the weights cached under ``work_dir`` by an
    earlier run with the same settings."""
    key = hashlib.sha1(json.dumps({"epochs": epochs, "seed": seed, "batch": batch_size, "lr": lr, "schedule": "cosine",
                                   "n": int(splits.train_y.numel()), "first": splits.train_y[:64].tolist()},
                                  sort_keys=True).encode()).hexdigest()[:10]
    path = Path(work_dir) / f"mnist_cnn_{key}.pt"
    model = MnistCNN()
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        log(f"loaded the trained ANN from {path}")
        return model.eval()
    torch.manual_seed(seed)
    model = MnistCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    n = splits.train_y.numel()
    batches = epochs * ((n + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * i / batches)))
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            index = order[i:i + batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(splits.train_x[index]), splits.train_y[index])
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * index.numel()
        val = ann_accuracy(model.eval(), splits.val_x, splits.val_y)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / n:.4f}, validation accuracy {val:.2f}% "
            f"({time.perf_counter() - start:.0f} s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()


@torch.no_grad()
def ann_accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / len(y)


# ---------------------------------------------------------------------------------------------
# The converted networks

@dataclass
class Method:
    """One converted network: ``run(x, T)`` gives the read-out after every step ``[T, B, 10]``."""

    name: str
    library: str  # "cortexsnn" or "spikingjelly"
    description: str
    run: Callable[[Tensor, int], Tensor]
    convert_s: float = 0.0
    extra: dict = field(default_factory=dict)


def ours(name: str, ann: nn.Module, calib: Tensor, description: str, **config) -> Method:
    from cortexsnn.conversion import ConversionConfig, convert, rate_readout
    from cortexsnn.neurons import reset

    start = time.perf_counter()
    snn = convert(ann, calib, ConversionConfig(**config), batch_size=100)
    elapsed = time.perf_counter() - start

    @torch.no_grad()
    def run(x: Tensor, steps: int) -> Tensor:
        reset(snn)
        out = rate_readout(snn(x.unsqueeze(0).expand(steps, *x.shape)))
        reset(snn)
        return out

    def analog(x: Tensor) -> Tensor:
        with snn.analog():
            return snn(x.unsqueeze(0))[0]

    return Method(name, "cortexsnn", description, run, elapsed,
                  {"config": config, "snn": snn, "analog": analog})


def spikingjelly(name: str, ann: nn.Module, calib: Tensor, description: str, *, batch_size: int = 100,
                 **recipe) -> Method:
    """SpikingJelly's converter, calibrated on ``calib`` in batches of 100 (its example's batch size:
    its layer-wise statistic is a momentum average over batches)."""
    from spikingjelly.activation_based import ann2snn, functional

    loader = [(calib[i:i + batch_size], None) for i in range(0, len(calib), batch_size)]
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its calibration loop prints a tqdm bar
        snn = ann2snn.FXConverter(recipe=ann2snn.RateCodingRecipe(dataloader=loader, **recipe),
                                  device="cpu").convert(copy.deepcopy(ann))
    elapsed = time.perf_counter() - start
    snn.eval()

    @torch.no_grad()
    def run(x: Tensor, steps: int) -> Tensor:
        functional.reset_net(snn)
        total = None
        outs = []
        for _ in range(steps):
            y = snn(x)
            total = y if total is None else total + y
            outs.append(total)
        functional.reset_net(snn)
        return torch.stack(outs)  # the summed outputs: the same argmax as their mean

    return Method(name, "spikingjelly", description, run, elapsed, {"recipe": recipe, "snn": snn})


def spikingjelly_fused_ann(ann: nn.Module) -> nn.Module:
    """SpikingJelly's own analog path: its traced graph with batch norm fused into the convolutions, the
    ANN its converter turns into spikes."""
    from torch import fx
    from spikingjelly.activation_based.ann2snn.recipes.rate_coding import _fuse_conv_bn

    return _fuse_conv_bn(fx.symbolic_trace(copy.deepcopy(ann).eval())).eval()


# ---------------------------------------------------------------------------------------------
# Evaluation

def _release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``), so that a method
    measured after another does not reuse pages the other freed (its peak would not show)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@torch.no_grad()
def accuracy_curves(methods: Sequence[Method], x: Tensor, y: Tensor, steps: int, batch_size: int,
                    log: Callable[[str], None] | None = print, memory: bool = False
                    ) -> tuple[dict[str, Tensor], dict[str, float], dict[str, float | None]]:
    """Per method: the accuracy (%) after every step 1..``steps`` ``[steps]``, the total seconds of
    simulation, and (``memory``) the growth of the resident set's peak during its first batch. The
    methods run in turn on each batch, after one untimed warm-up call each."""
    correct = {m.name: torch.zeros(steps, dtype=torch.float64) for m in methods}
    seconds = {m.name: 0.0 for m in methods}
    peaks: dict[str, float | None] = {m.name: None for m in methods}
    for m in methods:  # warm-up (first-call costs), untimed
        m.run(x[:2], 2)
    for i in range(0, len(y), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        for m in methods:
            if memory and i == 0:
                _release_freed_memory()
            with PeakGrowth() if memory and i == 0 else contextlib.nullcontext() as peak:
                start = time.perf_counter()
                out = m.run(xb, steps)
                seconds[m.name] += time.perf_counter() - start
            if peak is not None:
                peaks[m.name] = peak.growth
            correct[m.name] += (out.argmax(-1) == yb).sum(1).to(torch.float64)
            del out
        if log is not None and (i // batch_size) % 4 == 3:
            log(f"  {min(i + batch_size, len(y))}/{len(y)} digits")
    return {k: 100.0 * v / len(y) for k, v in correct.items()}, seconds, peaks


def smallest_step_within(curve: Tensor, target: float, tolerance: float = TOLERANCE,
                         grid: Sequence[int] | None = None) -> int | None:
    """The smallest T (on ``grid``, else any step) at which ``curve[T - 1] >= target - tolerance``, and from
    which it stays there up to the end of the grid (a transient lucky step does not count)."""
    steps = list(grid) if grid is not None else list(range(1, len(curve) + 1))
    ok = [float(curve[t - 1]) >= target - tolerance for t in steps]
    for index, t in enumerate(steps):
        if all(ok[index:]):
            return t
    return None


# ---------------------------------------------------------------------------------------------
# The run

OUR_CANDIDATES = {  # chosen among on the validation split
    "ours-default": ("ours, default: per-channel 99.99th percentile, signed spikes, bursts, theta/2 start", {}),
    "ours-max": ("ours, per-channel max, signed, bursts", {"threshold": "max"}),
    "ours-p99.9": ("ours, per-channel 99.9th percentile, signed, bursts", {"percentile": 99.9}),
    "ours-classic": ("ours, classic: per-channel 99.99th percentile, no bursts, unsigned spikes",
                     {"burst": False, "signed": False}),
}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--quick", action="store_true", help="2,000 fixed test digits instead of 10,000")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder of the MNIST IDX files (default $CORTEXSNN_DATA/mnist or ../shared/data/mnist)")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".cache" / "conversion_mnist",
                        help="where the trained ANN is cached")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (None: leave as they are)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=1000)
    parser.add_argument("--validation", type=int, default=None,
                        help="validation digits on which the settings (ours, and SpikingJelly's k) are chosen "
                             "(default 1,000; 500 with --quick)")
    parser.add_argument("--mnist-batch-size", type=int, default=50, help="test digits simulated at once")
    parser.add_argument("--max-steps", type=int, default=256)
    parser.add_argument("--test-digits", type=int, default=None, help="test digits (default 10,000; 2,000 with --quick)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    return parser


def _data_dir(args) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    env = os.environ.get("CORTEXSNN_DATA")
    return (Path(env) if env else REPO.parent / "shared" / "data") / "mnist"


def _select(methods: list[Method], curves: dict[str, Tensor], target: float, grid: Sequence[int]) -> Method:
    """The method that reaches ``target`` within 1 point at the smallest grid T (ties: the higher mean
    accuracy over the grid)."""
    def key(m: Method):
        t = smallest_step_within(curves[m.name], target, grid=grid)
        return (t if t is not None else 10**9, -float(sum(curves[m.name][s - 1] for s in grid)))
    return min(methods, key=key)


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """This module's options: ``args``'s values where it has them (a caller's parser may define only some,
    e.g. ``quick``, ``max_steps``, ``threads``), the defaults of :func:`add_arguments` otherwise."""
    resolved = add_arguments(argparse.ArgumentParser()).parse_args([])
    for name in vars(resolved):
        if getattr(args, name, None) is not None:
            setattr(resolved, name, getattr(args, name))
    if getattr(args, "threads", 1) is None:
        resolved.threads = None
    return resolved


def measure(args: argparse.Namespace, log: Callable[[str], None] = print) -> list[dict]:
    """Train (or load) the ANN, convert it both ways, simulate, and return one row per method, ours and
    SpikingJelly's (see the module docstring). ``args`` may come from another script's parser: options it
    lacks take this module's defaults (see :func:`add_arguments`)."""
    args = _resolve(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    grid = [t for t in STEPS if t <= args.max_steps]
    test_digits = args.test_digits or (2000 if args.quick else 10000)
    splits = load_splits(_data_dir(args), calibration=args.calibration, test_limit=test_digits, seed=args.seed)
    ann = train_ann(splits, args.work_dir, epochs=args.epochs, seed=args.seed, log=log)
    n_val = args.validation or (500 if args.quick else 1000)
    val_x, val_y = splits.val_x[:n_val], splits.val_y[:n_val]
    ann_test = ann_accuracy(ann, splits.test_x, splits.test_y)
    ann_val = ann_accuracy(ann, val_x, val_y)

    # the same ANN on both analog paths (ours: the converted graph in analog mode; SpikingJelly: its
    # batch-norm-fused trace)
    default = ours("ours-default", ann, splits.calib_x, OUR_CANDIDATES["ours-default"][0])
    sj_fused = spikingjelly_fused_ann(ann)
    ours_analog = ann_accuracy(default.extra["analog"], splits.test_x, splits.test_y)
    sj_analog = ann_accuracy(sj_fused, splits.test_x, splits.test_y)
    with torch.no_grad():
        probe = splits.test_x[:1000]
        reference = ann(probe)
        analog_diff = {"ours": float((default.extra["analog"](probe) - reference).abs().max()),
                       "spikingjelly": float((sj_fused(probe) - reference).abs().max())}
    log(f"ANN test accuracy {ann_test:.2f}% (analog: ours {ours_analog:.2f}%, SpikingJelly fused {sj_analog:.2f}%; "
        f"largest logit difference from the ANN on 1,000 digits: ours {analog_diff['ours']:.1e}, SpikingJelly "
        f"{analog_diff['spikingjelly']:.1e}), validation {ann_val:.2f}% on {len(val_y)} digits")
    if not (ann_test == ours_analog == sj_analog):
        log("WARNING: the analog paths do not reproduce the ANN's test accuracy")

    # settings chosen on the validation digits
    candidates = [default] + [ours(n, ann, splits.calib_x, d, **c) for n, (d, c) in OUR_CANDIDATES.items()
                              if n != "ours-default"]
    ks = [spikingjelly(f"sj-1/{k}", ann, splits.calib_x, f"SpikingJelly RateCodingRecipe(mode=1/{k})", mode=1.0 / k)
          for k in (2, 3, 4, 5)]
    log(f"choosing settings on {len(val_y)} validation digits ...")
    val_curves, _, _ = accuracy_curves(candidates + ks, val_x, val_y, args.max_steps, args.mnist_batch_size, log=None)
    chosen_ours = _select(candidates, val_curves, ann_val, grid)
    chosen_k = _select(ks, val_curves, ann_val, grid)
    for m in candidates + ks:
        log(f"  validation {m.name:14s} " + " ".join(f"T{t}:{float(val_curves[m.name][t - 1]):.2f}" for t in grid))
    log(f"chosen on validation: {chosen_ours.name}, {chosen_k.name}")

    by_name = {m.name: m for m in candidates}
    methods = [
        spikingjelly("sj-max", ann, splits.calib_x, "SpikingJelly RateCodingRecipe(mode='max')", mode="max"),
        spikingjelly("sj-99.9%", ann, splits.calib_x, "SpikingJelly RateCodingRecipe(mode='99.9%')", mode="99.9%"),
        chosen_k,
        spikingjelly("sj-channel-99.9%-half", ann, splits.calib_x,
                     "SpikingJelly RateCodingRecipe(mode='99.9%', channel_wise=True, half_threshold=True)",
                     mode="99.9%", channel_wise=True, half_threshold=True),
        by_name["ours-default"],
        by_name["ours-classic"],
    ]
    if chosen_ours.name not in ("ours-default", "ours-classic"):
        methods.append(chosen_ours)
    log(f"simulating {len(methods)} converted networks to T={args.max_steps} on {len(splits.test_y)} test digits ...")
    curves, seconds, peaks = accuracy_curves(methods, splits.test_x, splits.test_y, args.max_steps, args.mnist_batch_size,
                                             log=log, memory=not args.no_memory)

    sj_methods = [m for m in methods if m.library == "spikingjelly"]
    reference = _select(sj_methods, curves, ann_test, grid)
    rows = []
    workload = f"conversion-mnist-{len(splits.test_y) // 1000}k-T{args.max_steps}"
    for m in methods:
        curve = curves[m.name]
        row = {
            "benchmark": "conversion",
            "workload": f"{workload}-{m.name}",
            "method": m.name,
            "library": m.library,
            "description": m.description,
            "config": m.extra.get("config", m.extra.get("recipe")),
            "ours_s": round(seconds[m.name], 3) if m.library == "cortexsnn" else None,
            "reference": reference.name,
            "reference_s": round(seconds[reference.name], 3),
            "speedup": round(seconds[reference.name] / seconds[m.name], 3) if m.library == "cortexsnn" else None,
            "ours_peak_mib": None if peaks[m.name] is None or m.library != "cortexsnn" else round(peaks[m.name], 1),
            "reference_peak_mib": None if peaks[reference.name] is None else round(peaks[reference.name], 1),
            "simulation_s": round(seconds[m.name], 3),
            "peak_mib": None if peaks[m.name] is None else round(peaks[m.name], 1),
            "convert_s": round(m.convert_s, 3),
            "ann_accuracy": round(ann_test, 2),
            "ann_accuracy_analog": {"ours": round(ours_analog, 2), "spikingjelly": round(sj_analog, 2)},
            "analog_max_abs_logit_diff": analog_diff,
            "accuracy": {str(t): round(float(curve[t - 1]), 2) for t in grid},
            "smallest_T_within_1pt": smallest_step_within(curve, ann_test, grid=grid),
            "smallest_step_within_1pt": smallest_step_within(curve, ann_test),
            "chosen_on_validation": m is chosen_ours or m is chosen_k,
            "test_digits": int(len(splits.test_y)),
            "calibration_digits": int(len(splits.calib_x)),
            "threads": torch.get_num_threads(),
        }
        rows.append(row)
    return rows


JSON_FIELDS = ("benchmark", "workload", "ours_s", "reference", "reference_s", "speedup", "ours_peak_mib",
               "reference_peak_mib")


def json_lines(rows: list[dict]) -> list[dict]:
    """One line per method of ours in the project's benchmark format (``_common.summary_line``: the
    reference is the SpikingJelly method that reaches the ANN's accuracy within 1 point first), plus the
    accuracies: ours, the reference's, and every SpikingJelly method's."""
    sj = {r["method"]: r for r in rows if r["library"] == "spikingjelly"}
    lines = []
    for r in rows:
        if r["library"] != "cortexsnn":
            continue
        ref = sj[r["reference"]]
        line = {k: r[k] for k in JSON_FIELDS}
        line.update({
            "method": r["method"], "config": r["config"], "ann_accuracy": r["ann_accuracy"],
            "accuracy": r["accuracy"], "smallest_T_within_1pt": r["smallest_T_within_1pt"],
            "reference_accuracy": ref["accuracy"], "reference_smallest_T_within_1pt": ref["smallest_T_within_1pt"],
            "spikingjelly": {name: {"accuracy": x["accuracy"], "smallest_T_within_1pt": x["smallest_T_within_1pt"],
                                    "simulation_s": x["simulation_s"], "peak_mib": x["peak_mib"]}
                             for name, x in sj.items()},
            "test_digits": r["test_digits"], "threads": r["threads"],
        })
        lines.append(line)
    return lines


def run_mnist_anchor(args: argparse.Namespace, log: Callable[[str], None] = print) -> list[dict]:
    """The MNIST anchor for ``benchmarks/conversion.py``: :func:`measure`, the table (printed), and the
    JSON lines of :func:`json_lines` returned."""
    rows = measure(args, log)
    report(rows)
    return json_lines(rows)


def report(rows: list[dict]) -> None:
    grid = list(rows[0]["accuracy"])
    print_table(f"MNIST, ANN {rows[0]['ann_accuracy']:.2f}% on {rows[0]['test_digits']} test digits: accuracy (%) of the "
                "rate read-out after T steps",
                ["method", *[f"T{t}" for t in grid], "T<=1pt", "step<=1pt", "sim s", "peak MiB"],
                [[r["method"], *[f"{r['accuracy'][t]:.2f}" for t in grid], r["smallest_T_within_1pt"],
                  r["smallest_step_within_1pt"], f"{r['simulation_s']:.1f}", r["peak_mib"]] for r in rows])


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    rows = measure(args)
    report(rows)
    print_json_lines(json_lines(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
