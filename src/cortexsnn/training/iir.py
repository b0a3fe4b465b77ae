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
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from cortexsnn.config import ConfigError, load_config, to_container
from cortexsnn.training import run as _run
from cortexsnn.training.run import TrainingInterrupted
from cortexsnn.utils.checkpoint import CheckpointError, describe_exception, load_checkpoint, restore_rng_state

_log = logging.getLogger(__name__)

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


#: what ``train`` writes into its folder (a folder holding any of them holds a run): the substrate's outputs
RUN_OUTPUTS = _run.RUN_OUTPUTS


def train(
    cfg: DictConfig,
    out_dir: str | Path,
    resume: bool = False,
    stop_after_batches: int | None = None,
    log: Callable[[str], None] | None = None,
    overwrite: bool = False,
    argument_names: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """Train per ``cfg``, writing checkpoints, ``metrics.csv``, TensorBoard and ``results.json`` to ``out_dir``.

    The run substrate (:class:`~cortexsnn.training.run.TrainingRun`) owns the folder: it is
    checked before anything is computed and locked while the run lasts, ``run.json`` says how it
    ended. ``resume=True`` continues from ``out_dir/checkpoint_latest.pt`` (its stored model,
    optimiser, position and random states; ``cfg`` may only change :data:`RESUME_MUTABLE`); rows
    that ``metrics.csv`` got after that checkpoint (a run killed with ``kill -9``) are dropped first.
    ``overwrite=True`` deletes the outputs of a run already in ``out_dir`` and starts anew; without
    either, a folder holding a run is refused. ``stop_after_batches`` simulates an interruption
    after that many training batches (tests). ``log`` receives the progress lines (default: the
    module's logger). ``argument_names`` names ``resume`` / ``overwrite`` in messages (a command
    line passes its flags). Returns the results (best validation score, test metrics of the best
    model, the epochs' history).
    """
    threads = cfg.train.threads or os.cpu_count() or 1
    torch.set_num_threads(int(threads))
    run = _run.TrainingRun(out_dir, "iir train", to_container(cfg), kind=cfg.model.name, resume=resume,
                           overwrite=overwrite, mutable=RESUME_MUTABLE, progress=cfg.train.progress,
                           stop_after_batches=stop_after_batches, argument_names=argument_names)
    with run:
        return _IIRTraining(cfg, run, log or _log.info, threads).fit()


class _IIRTraining:
    """The IIR trainer on the run substrate: its data, objective, step and evaluation."""

    def __init__(self, cfg: DictConfig, run: "_run.TrainingRun", log: Callable[[str], None], threads: int) -> None:
        self.cfg, self.run, self.log = cfg, run, log
        _run.seed_everything(int(cfg.train.seed))
        self.splits = build_splits(cfg)
        self.model = build_model(cfg)
        self.optimizer, self.scheduler = _optimizer(cfg, self.model)
        self.objective = _objective(cfg)
        self.start_epoch, self.start_batch, self.running = 0, 0, {}
        self.best: dict[str, Any] = {"score": None, "epoch": -1}
        self.history: list[dict[str, float]] = []
        state = run.record
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            _load_scheduler_state(self.scheduler, state["scheduler"])
            self.start_epoch, self.start_batch = state["epoch"], state["batch"]
            self.running, self.best, self.history = dict(state["running"]), dict(state["best"]), list(state["history"])
            restore_rng_state(state["rng"])
            log(f"resuming {run.latest} at epoch {self.start_epoch + 1}, batch {self.start_batch}")
        n_params = sum(p.numel() for p in self.model.parameters())
        log(f"{cfg.model.name} ({cfg.model.synapse_type}, {n_params:,} parameters), task {cfg.task}: "
            f"{len(self.splits['train'])} train / {len(self.splits['val'])} validation / {len(self.splits['test'])} "
            f"test samples, {threads} threads, output {run.out}")
        self.steps_per_epoch = math.ceil(len(self.splits["train"]) / cfg.train.batch_size)
        self.epoch_start = 0.0

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.run.fit_epochs(self, self.start_epoch, self.start_batch, cfg.train.epochs, self.steps_per_epoch,
                            cfg.train.epochs)
        results = self._final_test()
        results["history"] = self.history
        self.run.write_results(
            metrics={k: v for k, v in results.items() if k.startswith(("test_", "best_val_"))},
            best={"epoch": results["best_epoch"], self.objective.score_name: results[f"best_val_{self.objective.score_name}"],
                  "checkpoint": results["checkpoint"]},
            epochs=self.history)
        return results

    # ---------------------------------------------------------------- EpochTrainer
    def batches(self, epoch: int, start: int):
        self.model.train()
        self.epoch_start = time.perf_counter() - self.running.get("seconds", 0.0)
        return _Batches(self.splits["train"], self.cfg.train.batch_size, True, self.cfg.train.seed, epoch, start)

    def step(self, epoch: int, index: int, batch) -> dict[str, str] | None:
        loss, metrics, n = self.objective(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if hasattr(self.model, "project_"):
            self.model.project_()
        position = index + 1
        running = self.running
        running["n"] = running.get("n", 0) + n
        for key, value in metrics.items():
            running[key] = running.get(key, 0.0) + value
        if position % self.cfg.train.log_every == 0:
            self.run.logger.log(epoch * self.steps_per_epoch + position, "train_batch", loss=loss.item(),
                                lr=self.optimizer.param_groups[0]["lr"])
        return {k: f"{v / running['n']:.4f}" for k, v in running.items() if k not in ("n", "seconds")}

    def _payload(self, epoch: int, batch: int) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": _scheduler_state(self.scheduler), "epoch": int(epoch), "batch": int(batch),
                "running": dict(self.running), "best": dict(self.best), "history": list(self.history)}

    def save_position(self, epoch: int, batches_done: int) -> None:
        self.running["seconds"] = time.perf_counter() - self.epoch_start
        self.run.save(self._payload(epoch, batches_done))

    def end_epoch(self, epoch: int) -> None:
        cfg, run = self.cfg, self.run
        self.scheduler.step()
        train_seconds = time.perf_counter() - self.epoch_start
        train_metrics = {k: v / self.running["n"] for k, v in self.running.items() if k not in ("n", "seconds")}
        val = evaluate(self.model, self.splits["val"], self.objective, cfg.train.eval_batch_size, cfg.train.progress,
                       "validation")
        self.history.append({"epoch": epoch + 1, "seconds": train_seconds,
                             **{f"train_{k}": v for k, v in train_metrics.items()},
                             **{f"val_{k}": v for k, v in val.items()}})
        run.logger.log(epoch + 1, "train", **train_metrics, seconds=train_seconds, lr=self.optimizer.param_groups[0]["lr"])
        run.logger.log(epoch + 1, "val", **val)
        run.logger.flush()
        self.running = {}
        score = val[self.objective.score_name]
        previous = self.best["score"]
        improved = previous is None or (score > previous if self.objective.higher_is_better else score < previous)
        if improved:
            self.best = {"score": score, "epoch": epoch + 1}
        run.save(self._payload(epoch + 1, 0), best=improved)
        self.log(f"epoch {epoch + 1}/{cfg.train.epochs}: train loss {train_metrics['loss']:.4f}, "
                 f"val {self.objective.score_name} {score:.4f}{' (best)' if improved else ''}, {train_seconds:.0f} s")

    def _final_test(self) -> dict[str, Any]:
        cfg, run = self.cfg, self.run
        path = run.best if run.best.is_file() else run.latest
        record = run.load_best()
        model = build_model(cfg)
        model.load_state_dict(record["model"])
        test = evaluate(model, self.splits["test"], self.objective, cfg.train.eval_batch_size, cfg.train.progress, "test")
        run.logger.log(record["epoch"], "test", **test)
        return {
            "model": cfg.model.name,
            "task": cfg.task,
            "checkpoint": str(path),
            "best_epoch": record["best"]["epoch"],
            "best_val_" + self.objective.score_name: record["best"]["score"],
            **{f"test_{k}": v for k, v in test.items()},
        }


#: keys a resumed run may change (run length, logging); `cortexsnn train` has the same rule
RESUME_MUTABLE = ("train.epochs", "train.progress", "train.log_every", "train.threads", "train.eval_batch_size")


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
