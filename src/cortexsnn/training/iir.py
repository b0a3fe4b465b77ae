"""Training and evaluation of the IIR synapse-filter SNNs of Fang et al. (IJCAI 2020).

Two tasks share one loop:

* ``"mnist"``: classification with the MLP (``iir_mlp``) or the conv net (``iir_conv``); loss =
  cross-entropy of the output spike counts used as logits; a held-out validation split of the
  training digits (never the test set) selects the best epoch; the test set is evaluated once at
  the end with the best model.
* ``"associative_memory"``: the 300-500-200-500-300 network (``iir_memory``) reproduces the clean
  glyph pattern at its output, delayed by ``memory.delay`` steps; loss = MSE between the output
  spikes and the delayed pattern, both passed through a normalised dual-exponential filter.

Checkpoints (``checkpoint_latest.pt`` every epoch, ``checkpoint_best.pt`` on a better validation
score) hold the model, optimiser, scheduler, epoch, position inside the epoch, running sums and the
random-number states, so that ``resume`` continues bit for bit as if never interrupted; SIGINT /
SIGTERM write a final checkpoint at the current batch and stop. Data order is a permutation drawn
from a private generator seeded by ``(seed, epoch)``, so it is reproducible without any saved state.
"""
from __future__ import annotations

import functools
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from cortexsnn.config import ConfigError, check_resume_config, load_config, to_container
from cortexsnn.errors import CortexSNNError
from cortexsnn.training.logging import RunLogger
from cortexsnn.training.signals import StopFlag as _StopFlag
from cortexsnn.utils.io import atomic_write_text
from cortexsnn.utils.checkpoint import (
    CheckpointError,
    capture_rng_state,
    describe_exception,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

if TYPE_CHECKING:
    from cortexsnn.utils.runfolder import RunFolder

__all__ = [
    "IIRConfig",
    "IIRModelConfig",
    "IIRDataConfig",
    "IIRTrainConfig",
    "MemoryTaskConfig",
    "load_iir_config",
    "build_model",
    "train",
    "evaluate_checkpoint",
    "TrainingInterrupted",
    "MODEL_KINDS",
]

MODEL_KINDS = ("iir_mlp", "iir_conv", "iir_memory")
TASKS = ("mnist", "associative_memory")


# ---------------------------------------------------------------------------------------------
# configuration schema
# ---------------------------------------------------------------------------------------------
@dataclass
class IIRModelConfig:
    """Model: ``name`` one of ``iir_mlp``, ``iir_conv``, ``iir_memory``."""

    name: str = "iir_mlp"
    synapse_type: str = "dual_exp"  # dual_exp | first_order
    tau_m: float = 4.0
    tau_s: float = 1.0
    train_coefficients: bool = True
    train_bias: bool = True
    membrane_filter: bool = False
    dropout: float = 0.3
    input_encoding: str = "constant"  # constant | poisson
    max_rate: float = 1.0
    threshold: float = 1.0
    surrogate_sigma: float = 0.4
    # iir_conv only (defaults: Fang et al.'s 32c3-32c3-64c3-pool-64c3-pool-FC512-10)
    channels: List[int] = field(default_factory=lambda: [32, 32, 64, 64])
    pool_after: List[int] = field(default_factory=lambda: [2, 3])
    kernel_size: int = 3
    hidden: int = 512


@dataclass
class IIRDataConfig:
    """Data: ``data_dir`` of the MNIST IDX files (``None``: the embedded 5,000-digit subset)."""

    data_dir: Optional[str] = None
    val_size: int = 5000
    augment: bool = True
    augment_p: float = 0.5
    crop_scale: List[float] = field(default_factory=lambda: [0.85, 1.0])
    crop_ratio: List[float] = field(default_factory=lambda: [0.75, 4.0 / 3.0])
    rotation: float = 15.0
    train_limit: Optional[int] = None  # keep only the first N training digits (quick runs)
    test_limit: Optional[int] = None


@dataclass
class IIRTrainConfig:
    """Optimisation (Fang et al., IJCAI 2020: Adam lr 1e-4, MultiStepLR [50, 100] x 0.1, 100 epochs)."""

    seed: int = 0  # the shipped configs set the seed of their published results (2)
    length: int = 25
    batch_size: int = 64
    eval_batch_size: int = 256
    epochs: int = 100
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-4
    weight_decay: float = 0.0
    milestones: List[int] = field(default_factory=lambda: [50, 100])
    gamma: float = 0.1
    log_every: int = 50
    threads: int = 0  # 0: all cores
    progress: bool = True


@dataclass
class MemoryTaskConfig:
    """Associative-memory task (SNN-IIR's ``associative_memory.py``)."""

    n_patterns: int = 10
    size: int = 300
    repeats: int = 100
    dev_repeats: int = 10
    test_repeats: int = 10
    delay: int = 4
    augment_p: float = 0.4
    jitter_p: float = 0.7
    jitter_sigma: float = 1.0
    erase_p: float = 0.5
    erase_size: int = 40
    noise_p: float = 0.005
    loss_tau_m: float = 8.0
    loss_tau_s: float = 2.0
    hidden: List[int] = field(default_factory=lambda: [500, 200, 500])


@dataclass
class IIRConfig:
    """Top-level config of ``cortexsnn iir``."""

    task: str = "mnist"
    model: IIRModelConfig = field(default_factory=IIRModelConfig)
    data: IIRDataConfig = field(default_factory=IIRDataConfig)
    train: IIRTrainConfig = field(default_factory=IIRTrainConfig)
    memory: MemoryTaskConfig = field(default_factory=MemoryTaskConfig)


def load_iir_config(path: str | Path | None, overrides: Sequence[str] = ()) -> DictConfig:
    """Load and check an IIR config (YAML file + ``key=value`` overrides)."""
    cfg = load_config(path, overrides, IIRConfig)
    _check_choices(cfg)
    return cfg


def _check_choices(cfg: DictConfig) -> None:
    choices = {
        "task": (cfg.task, TASKS),
        "model.name": (cfg.model.name, MODEL_KINDS),
        "model.synapse_type": (cfg.model.synapse_type, ("dual_exp", "first_order")),
        "model.input_encoding": (cfg.model.input_encoding, ("constant", "poisson")),
        "train.optimizer": (cfg.train.optimizer, ("adam", "adamw")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(f"config key {key!r} is {value!r}; choose one of {list(allowed)}")
    if (cfg.task == "associative_memory") != (cfg.model.name == "iir_memory"):
        raise ConfigError(
            f"task {cfg.task!r} does not fit model {cfg.model.name!r}: associative_memory needs iir_memory, "
            "mnist needs iir_mlp or iir_conv"
        )
    positive = {
        "train.epochs": cfg.train.epochs, "train.batch_size": cfg.train.batch_size,
        "train.length": cfg.train.length, "train.eval_batch_size": cfg.train.eval_batch_size,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {value}")
    if not cfg.train.lr > 0:
        raise ConfigError(f"config key 'train.lr' must be > 0, got {cfg.train.lr}")
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError(f"config key 'model.dropout' must lie in [0, 1), got {cfg.model.dropout}")


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def build_model(cfg: DictConfig) -> nn.Module:
    """The model a config names, from the registry (``create_model``, family ``"iir"``)."""
    from cortexsnn.models import create_model

    m, steps = cfg.model, cfg.train.length
    common = dict(
        steps=steps, synapse_type=m.synapse_type, tau_m=m.tau_m, tau_s=m.tau_s,
        train_coefficients=m.train_coefficients, train_bias=m.train_bias, membrane_filter=m.membrane_filter,
        threshold=m.threshold, surrogate_sigma=m.surrogate_sigma,
    )
    if m.name == "iir_mlp":
        return create_model("iir_mlp", dropout=m.dropout, input_encoding=m.input_encoding, max_rate=m.max_rate, **common)
    if m.name == "iir_conv":
        return create_model(
            "iir_conv", channels=tuple(m.channels), pool_after=tuple(m.pool_after), kernel_size=m.kernel_size, hidden=m.hidden,
            dropout=m.dropout, input_encoding=m.input_encoding, max_rate=m.max_rate, **common,
        )
    size = cfg.memory.size
    common.pop("steps")
    return create_model("iir_memory", sizes=(size, *cfg.memory.hidden, size), dropout=m.dropout, **common)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
class _Batches:
    """Batches of a map-style dataset, in a (seed, epoch)-determined order, from batch ``start``."""

    def __init__(self, dataset, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0, start: int = 0) -> None:
        n = len(dataset)
        if shuffle:
            generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        self.dataset = dataset
        self.batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        self.start = start

    def __len__(self) -> int:
        return len(self.batches) - self.start

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        for indices in self.batches[self.start :]:
            items = [self.dataset[i] for i in indices]
            yield tuple(_stack([item[k] for item in items]) for k in range(len(items[0])))


def _stack(values: list) -> Tensor:
    if isinstance(values[0], Tensor):
        return torch.stack(values)
    return torch.tensor(values)


def _mnist_transform(cfg: DictConfig):
    if not cfg.data.augment:
        return None
    from torchvision.transforms import v2

    d = cfg.data
    return v2.Compose(
        [
            v2.RandomApply(
                [v2.RandomResizedCrop(28, scale=tuple(d.crop_scale), ratio=tuple(d.crop_ratio), antialias=True)],
                p=d.augment_p,
            ),
            v2.RandomApply([v2.RandomRotation(d.rotation)], p=d.augment_p),
        ]
    )


def _limit(dataset, limit: Optional[int]):
    if limit is None or limit >= len(dataset):
        return dataset
    from torch.utils.data import Subset

    return Subset(dataset, list(range(limit)))


class _Transformed:
    """A dataset view applying ``transform`` to the image of each ``(image, label)`` item."""

    def __init__(self, dataset, transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, label = self.dataset[index]
        return (image if self.transform is None else self.transform(image)), label


@functools.lru_cache(maxsize=4)
def _cached_mnist(root: Optional[str], train: bool):
    """MNIST split without transform, read once per process (the embedded subset parses a CSV: ~10 s)."""
    from cortexsnn.data.mnist import load_mnist

    return load_mnist(root, train=train, transform=None)


def _mnist_splits(cfg: DictConfig) -> dict[str, Any]:
    from torch.utils.data import Subset

    root = cfg.data.data_dir
    plain_full = _limit(_cached_mnist(root, True), cfg.data.train_limit)
    n = len(plain_full)
    val_size = int(cfg.data.val_size)
    if not 0 < val_size < n:
        raise ConfigError(
            f"config key 'data.val_size' is {val_size}, but the training set has {n} digits; "
            f"choose 0 < val_size < {n} (e.g. data.val_size={max(1, n // 12)})"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(cfg.train.seed))).tolist()
    return {
        "train": _Transformed(Subset(plain_full, order[val_size:]), _mnist_transform(cfg)),
        "val": Subset(plain_full, order[:val_size]),
        "test": _limit(_cached_mnist(root, False), cfg.data.test_limit),
    }


def _memory_splits(cfg: DictConfig) -> dict[str, Any]:
    from cortexsnn.data.glyph_patterns import GlyphPatternDataset, make_glyph_patterns

    mem = cfg.memory
    patterns = make_glyph_patterns(mem.n_patterns, mem.size, mem.size)
    kwargs = dict(
        delay=mem.delay, augment_p=mem.augment_p, jitter_p=mem.jitter_p, jitter_sigma=mem.jitter_sigma,
        erase_p=mem.erase_p, erase_size=mem.erase_size, noise_p=mem.noise_p,
    )
    seed = int(cfg.train.seed)
    return {
        "train": GlyphPatternDataset(patterns, mem.repeats, **kwargs),
        "val": GlyphPatternDataset(patterns, mem.dev_repeats, fixed_seed=seed + 1, **kwargs),
        "test": GlyphPatternDataset(patterns, mem.test_repeats, fixed_seed=seed + 2, **kwargs),
    }


def build_splits(cfg: DictConfig) -> dict[str, Any]:
    """``{"train", "val", "test"}`` datasets of the config's task."""
    return _mnist_splits(cfg) if cfg.task == "mnist" else _memory_splits(cfg)


# ---------------------------------------------------------------------------------------------
# objectives
# ---------------------------------------------------------------------------------------------
class _Objective:
    """Loss and metrics of one task; ``__call__(model, batch) -> (loss, {metric sums}, n)``."""

    higher_is_better = True
    score_name = "accuracy"

    def __call__(self, model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, float], int]:
        raise NotImplementedError


class _Classification(_Objective):
    def __call__(self, model, batch):
        images, labels = batch
        counts = model(images)
        loss = nn.functional.cross_entropy(counts, labels)
        n = labels.shape[0]
        correct = (counts.argmax(1) == labels).sum().item()
        return loss, {"loss": loss.item() * n, "accuracy": float(correct)}, n


class _FilteredMSE(_Objective):
    higher_is_better = False
    score_name = "mse"

    def __init__(self, tau_m: float, tau_s: float) -> None:
        self.tau_m, self.tau_s = tau_m, tau_s

    def __call__(self, model, batch):
        from cortexsnn.models.iir_memory import normalised_dual_exp

        inputs, targets = batch  # [B, T, N] each
        outputs = model(inputs.transpose(0, 1))  # [T, B, N]
        filtered_out = normalised_dual_exp(outputs, self.tau_m, self.tau_s)
        filtered_target = normalised_dual_exp(targets.transpose(0, 1).to(outputs.dtype), self.tau_m, self.tau_s)
        loss = nn.functional.mse_loss(filtered_out, filtered_target)
        n = inputs.shape[0]
        return loss, {"loss": loss.item() * n, "mse": loss.item() * n}, n


def _objective(cfg: DictConfig) -> _Objective:
    if cfg.task == "mnist":
        return _Classification()
    return _FilteredMSE(cfg.memory.loss_tau_m, cfg.memory.loss_tau_s)


@torch.no_grad()
def evaluate(model: nn.Module, dataset, objective: _Objective, batch_size: int, progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Mean loss and score of ``model`` over ``dataset``."""
    model.eval()
    sums: dict[str, float] = {}
    total = 0
    batches = _Batches(dataset, batch_size, shuffle=False)
    for batch in _progress(batches, progress, desc):
        _, metrics, n = objective(model, batch)
        total += n
        for key, value in metrics.items():
            sums[key] = sums.get(key, 0.0) + value
    return {key: value / max(total, 1) for key, value in sums.items()}


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
class TrainingInterrupted(CortexSNNError, RuntimeError):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint to resume from."""


def _optimizer(cfg: DictConfig, model: nn.Module):
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.Adam if cfg.train.optimizer == "adam" else torch.optim.AdamW
    kwargs: dict[str, Any] = {"lr": cfg.train.lr}
    if cfg.train.optimizer == "adamw" or cfg.train.weight_decay:
        kwargs["weight_decay"] = cfg.train.weight_decay
    optimizer = opt_cls(params, **kwargs)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.train.milestones), cfg.train.gamma)
    return optimizer, scheduler


def _scheduler_state(scheduler) -> dict[str, Any]:
    state = dict(scheduler.state_dict())
    state["milestones"] = dict(state["milestones"])  # a Counter is not a plain container
    return state


def _load_scheduler_state(scheduler, state: dict[str, Any]) -> None:
    from collections import Counter

    state = dict(state)
    state["milestones"] = Counter(state["milestones"])
    scheduler.load_state_dict(state)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _payload(cfg, model, optimizer, scheduler, epoch, batch, running, best, history, log_rows) -> dict[str, Any]:
    return {
        "kind": cfg.model.name,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": _scheduler_state(scheduler),
        "epoch": int(epoch),
        "batch": int(batch),
        "running": dict(running),
        "best": dict(best),
        "history": list(history),
        "config": to_container(cfg),
        "rng": capture_rng_state(),
        "log_rows": int(log_rows),  # rows of metrics.csv up to this checkpoint (a resume cuts the file there)
    }


#: what ``train`` writes into its folder (a folder holding any of them holds a run)
RUN_OUTPUTS = ("checkpoint_latest.pt", "checkpoint_best.pt", "metrics.csv", "results.json", "tensorboard")


def train(
    cfg: DictConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_after_batches: int | None = None,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    argument_names: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """Train per ``cfg``, writing checkpoints, ``metrics.csv``, TensorBoard and ``results.json`` to ``out_dir``.

    ``out_dir`` is a :class:`~cortexsnn.utils.runfolder.RunFolder` (locked while the run lasts,
    ``run.json`` saying how it ended), checked before anything is computed. ``resume=True``
    continues from ``out_dir/checkpoint_latest.pt`` (its stored model, optimiser, position and
    random states; ``cfg`` may only change ``train.epochs`` and logging options); rows that
    ``metrics.csv`` got after that checkpoint (a run killed with ``kill -9``) are dropped first.
    ``overwrite=True`` deletes the outputs of a run already in ``out_dir`` and starts anew; without
    either, a folder holding a run is refused. ``stop_after_batches`` simulates an interruption
    after that many training batches (tests). ``argument_names`` names ``resume`` / ``overwrite``
    in messages (a command line passes its flags). Returns the results (best validation score,
    test metrics of the best model, timings).
    """
    from cortexsnn.utils.runfolder import RunFolder

    folder = RunFolder(out_dir, "iir train", to_container(cfg), outputs=RUN_OUTPUTS, resume=resume,
                       overwrite=overwrite, interrupts=(TrainingInterrupted,), argument_names=argument_names)
    with folder:
        return _train(cfg, Path(out_dir), resume, stop_after_batches, log, folder)


def _train(cfg: DictConfig, out: Path, resume: bool, stop_after_batches: int | None, log: Callable[[str], None],
           folder: "RunFolder") -> dict[str, Any]:
    threads = cfg.train.threads or os.cpu_count() or 1
    torch.set_num_threads(int(threads))
    latest, best_path = out / "checkpoint_latest.pt", out / "checkpoint_best.pt"

    state = None
    if resume:
        if not latest.is_file():
            raise CheckpointError(f"cannot resume: {latest} does not exist; start without --resume")
        state = load_checkpoint(latest, kind=cfg.model.name)
        _check_resume_config(state["config"], cfg)
    _seed_everything(int(cfg.train.seed))
    splits = build_splits(cfg)
    model = build_model(cfg)
    optimizer, scheduler = _optimizer(cfg, model)
    objective = _objective(cfg)
    start_epoch, start_batch, running = 0, 0, {}
    best = {"score": None, "epoch": -1}
    history: list[dict[str, float]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _load_scheduler_state(scheduler, state["scheduler"])
        start_epoch, start_batch = state["epoch"], state["batch"]
        running, best, history = dict(state["running"]), dict(state["best"]), list(state["history"])
        restore_rng_state(state["rng"])
        log(f"resuming {latest} at epoch {start_epoch + 1}, batch {start_batch}")

    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"{cfg.model.name} ({cfg.model.synapse_type}, {n_params:,} parameters), task {cfg.task}: "
        f"{len(splits['train'])} train / {len(splits['val'])} validation / {len(splits['test'])} test samples, "
        f"{threads} threads, output {out}"
    )
    better = (lambda a, b: b is None or a > b) if objective.higher_is_better else (lambda a, b: b is None or a < b)
    steps_per_epoch = math.ceil(len(splits["train"]) / cfg.train.batch_size)
    batches_done = 0
    keep_rows = None if state is None else state.get("log_rows")
    if state is not None and keep_rows is None:
        log(f"note: {latest.name} predates row counts; metrics.csv may repeat rows logged after it")
    with RunLogger(out, tensorboard=True, keep_rows=keep_rows) as logger, _StopFlag() as stop:
        for epoch in range(start_epoch, cfg.train.epochs):
            model.train()
            batches = _Batches(splits["train"], cfg.train.batch_size, True, cfg.train.seed, epoch, start_batch)
            position, start_batch = batches.start, 0
            epoch_start = time.perf_counter() - running.get("seconds", 0.0)
            bar = _progress(batches, cfg.train.progress, f"epoch {epoch + 1}/{cfg.train.epochs}")
            for batch in bar:
                loss, metrics, n = objective(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if hasattr(model, "project_"):
                    model.project_()
                position += 1
                batches_done += 1
                running["n"] = running.get("n", 0) + n
                for key, value in metrics.items():
                    running[key] = running.get(key, 0.0) + value
                step = epoch * steps_per_epoch + position
                if position % cfg.train.log_every == 0:
                    logger.log(step, "train_batch", loss=loss.item(), lr=optimizer.param_groups[0]["lr"])
                if cfg.train.progress:
                    bar.set_postfix({k: f"{v / running['n']:.4f}" for k, v in running.items() if k not in ("n", "seconds")})
                interrupted = stop.signal is not None or (stop_after_batches is not None and batches_done >= stop_after_batches)
                if interrupted and position < len(batches.batches):
                    running["seconds"] = time.perf_counter() - epoch_start
                    save_checkpoint(latest, _payload(cfg, model, optimizer, scheduler, epoch, position, running, best, history, logger.rows))
                    raise TrainingInterrupted(
                        f"training stopped at epoch {epoch + 1}, batch {position}; checkpoint written to {latest}. "
                        "Continue with --resume."
                    )
            scheduler.step()
            train_seconds = time.perf_counter() - epoch_start
            train_metrics = {k: v / running["n"] for k, v in running.items() if k not in ("n", "seconds")}
            val = evaluate(model, splits["val"], objective, cfg.train.eval_batch_size, cfg.train.progress, "validation")
            record = {"epoch": epoch + 1, "seconds": train_seconds, **{f"train_{k}": v for k, v in train_metrics.items()}, **{f"val_{k}": v for k, v in val.items()}}
            history.append(record)
            logger.log(epoch + 1, "train", **train_metrics, seconds=train_seconds, lr=optimizer.param_groups[0]["lr"])
            logger.log(epoch + 1, "val", **val)
            logger.flush()
            running = {}
            score = val[objective.score_name]
            improved = better(score, best["score"])
            if improved:
                best = {"score": score, "epoch": epoch + 1}
            payload = _payload(cfg, model, optimizer, scheduler, epoch + 1, 0, running, best, history, logger.rows)
            # the best checkpoint first: a kill between the two writes must never leave a latest
            # checkpoint that names a best epoch whose file is not on disk (found by tests/faults)
            if improved:
                save_checkpoint(best_path, payload)
            save_checkpoint(latest, payload)
            log(
                f"epoch {epoch + 1}/{cfg.train.epochs}: train loss {train_metrics['loss']:.4f}, "
                f"val {objective.score_name} {score:.4f}{' (best)' if improved else ''}, {train_seconds:.0f} s"
            )
            interrupted = stop.signal is not None or (stop_after_batches is not None and batches_done >= stop_after_batches)
            if interrupted and epoch + 1 < cfg.train.epochs:
                raise TrainingInterrupted(
                    f"training stopped after epoch {epoch + 1}; checkpoint written to {latest}. Continue with --resume."
                )
        results = _final_test(cfg, out, best_path, latest, splits, objective, logger)
    results["history"] = history
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    folder.record(*(out / n for n in RUN_OUTPUTS if (out / n).exists()))
    return results


def _final_test(cfg, out, best_path, latest, splits, objective, logger) -> dict[str, Any]:
    path = best_path if best_path.is_file() else latest
    record = load_checkpoint(path, kind=cfg.model.name)
    model = build_model(cfg)
    model.load_state_dict(record["model"])
    test = evaluate(model, splits["test"], objective, cfg.train.eval_batch_size, cfg.train.progress, "test")
    logger.log(record["epoch"], "test", **test)
    return {
        "model": cfg.model.name,
        "task": cfg.task,
        "checkpoint": str(path),
        "best_epoch": record["best"]["epoch"],
        "best_val_" + objective.score_name: record["best"]["score"],
        **{f"test_{k}": v for k, v in test.items()},
    }


#: keys a resumed run may change (run length, logging); `cortexsnn train` has the same rule
RESUME_MUTABLE = ("train.epochs", "train.progress", "train.log_every", "train.threads", "train.eval_batch_size")


def _check_resume_config(stored: dict[str, Any], cfg: DictConfig) -> None:
    check_resume_config(stored, cfg, RESUME_MUTABLE)


def config_from_checkpoint(record: dict[str, Any]) -> DictConfig:
    """The config stored in a checkpoint, re-checked against the schema."""
    base = OmegaConf.structured(IIRConfig)
    OmegaConf.set_struct(base, True)
    if not isinstance(record.get("config"), dict):
        raise CheckpointError("the checkpoint stores no config (a 'config' mapping); pass a checkpoint written by "
                              "`cortexsnn iir train`")
    try:
        merged = OmegaConf.merge(base, OmegaConf.create(record["config"]))
    except Exception as exc:
        raise CheckpointError(f"the config stored in the checkpoint does not fit this version of cortexsnn: {exc}") from exc
    _check_choices(merged)
    return merged


def evaluate_checkpoint(path: str | Path, data_dir: str | None = None, split: str = "test", progress: bool = True) -> dict[str, float]:
    """Evaluate a checkpoint of any IIR model on its task's ``split`` (``test`` or ``val``)."""
    record = load_checkpoint(path)
    if record.get("kind") not in MODEL_KINDS:
        raise CheckpointError(
            f"checkpoint {path} holds a {record.get('kind')!r} model, not an IIR model ({', '.join(MODEL_KINDS)}); "
            "pass a checkpoint written by `cortexsnn iir train`"
        )
    cfg = config_from_checkpoint(record)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    torch.set_num_threads(int(cfg.train.threads or os.cpu_count() or 1))
    model = build_model(cfg)
    try:
        model.load_state_dict(record["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit its model ({describe_exception(exc)}); pass a "
                              "checkpoint written by `cortexsnn iir train` with this version") from exc
    splits = build_splits(cfg)
    return evaluate(model, splits[split], _objective(cfg), cfg.train.eval_batch_size, progress, split)
