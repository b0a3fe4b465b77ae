"""Surrogate-gradient training of the deep SNNs (``cortexsnn train``), single- or multi-process.

The recipe of Huang et al.'s code: an image repeated over ``T`` steps (``[T, B, C, H, W]``), cross-entropy on
the time-averaged logits (with label smoothing, MixUp / CutMix), SGD or AdamW with the ``cosa`` /
``step`` / ``exp`` schedules, optional AMP and EMA of the weights, top-1 / top-5 accuracy on a
validation set. Video (``data.dataset=ucf101``): clips of ``data.frames`` frames, one frame per
time step (``[T, B, C, H, W]`` from the loader, ``model.T`` unused), see :mod:`cortexsnn.data.video`.

Checkpoints ``checkpoint_latest.pt`` (every epoch) and ``checkpoint_best.pt`` (best validation
top-1) are written atomically by rank 0 and hold everything needed for an exact resume (model,
optimiser, scheduler, scaler, EMA, epoch, random states). The data order is a function of
``(seed, epoch)`` and every sample's random augmentation a function of ``(seed, epoch, index)``, so
the data do not depend on the loader workers nor on where a run was interrupted.

SIGINT / SIGTERM end the run after the current batch with a final checkpoint that records the
position inside the epoch (batches done, partial sums of the epoch's metrics); ``--resume`` then
continues with the next batch and gives the same losses and weights as an uninterrupted run.

The run folder, loop skeleton, checkpoints, resume, logs and ``results.json`` are the run
substrate's (:mod:`cortexsnn.training.run`); this module holds what is gradient training's own.
TensorBoard / ``metrics.csv``: ``train/loss``, ``train/top1``, ``train/lr``, ``val/loss``, ``val/top1``,
``val/top5`` per epoch, ``test/top1`` ... once at the end (best validation checkpoint).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from cortexsnn.config import ConfigError, load_config, to_container
from cortexsnn.data.images import build_image_data, mixup_cutmix
from cortexsnn.models import create_model
from cortexsnn.training.distributed import DistInfo, cleanup_distributed, init_distributed
from cortexsnn.training.run import RUN_OUTPUTS, TrainingRun, seed_everything
from cortexsnn.training.schedules import build_scheduler
from cortexsnn.training.signals import StopFlag
from cortexsnn.utils.checkpoint import restore_rng_state
from cortexsnn.utils.faults import fault_point

_log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "load_train_config", "train", "evaluate", "accuracy_topk", "WeightEMA"]

CHECKPOINT_KIND = "cortexsnn-train"


@dataclass
class DataSection:
    dataset: str = "imagefolder"  # imagefolder | mnist | ucf101
    root: str = ""  # folder with train/ and val/, the MNIST IDX folder ('' = embedded subset), or UCF-101/
    image_size: int = 224
    val_resize: int = 256
    val_fraction: float = 0.1  # MNIST: training digits held out for validation
    workers: int = 2
    augment: bool = True  # random crops / flips for training (off: the validation transform)
    auto_augment: str = ""  # '' | ta_wide | ra | imagenet | cifar10 | svhn
    random_erase: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    # video (ucf101): clips of `frames` frames, clip starts `f_steps` apart (sampling 'all')
    annotation_root: str = ""  # classInd.txt, trainlist0N.txt, testlist0N.txt ('' = root or root/ucfTrainTestlist)
    fold: int = 1
    frames: int = 16
    f_steps: int = 16
    clip_sampling: str = "all"  # all | continuous | discontinuous
    clip_resize: List[int] = field(default_factory=lambda: [256, 340])
    clip_crop: int = 256


@dataclass
class ModelSection:
    name: str = "sew_resnet18"
    T: int = 4
    cnf: str = "ADD"
    neuron: str = ""  # '' = the model's default
    num_classes: int = 0  # 0 = from the dataset
    channels_last: bool = False
    pretrained: str = ""  # checkpoint whose weights (all but the classifier fc.*) initialise the model


@dataclass
class OptimSection:
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosa"  # cosa | step | exp | constant
    per_iteration: bool = False
    warmup_epochs: int = 5
    warmup_factor: float = 0.01
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0


@dataclass
class RunSection:
    epochs: int = 320
    batch_size: int = 32  # per process
    amp: bool = False
    ema_decay: float = 0.0  # 0 = off
    seed: int = 0  # the shipped configs set the seed of their published results (2022)
    deterministic: bool = True
    out_dir: str = "runs/train"
    max_batches_per_epoch: int = 0  # 0 = the whole epoch
    stop_after_epochs: int = 0  # end this invocation after so many epochs (resume later); 0 = run to the end
    eval_batches: int = 0  # 0 = the whole validation set
    progress: bool = True
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class TrainConfig:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> DictConfig:
    """A training config: defaults <- YAML <- ``key=value`` overrides, checked against :class:`TrainConfig`."""
    cfg = load_config(path, overrides, TrainConfig)
    if cfg.model.T < 1:
        raise ConfigError(f"model.T must be >= 1, got {cfg.model.T}")
    if cfg.optim.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"optim.optimizer must be 'sgd' or 'adamw', got {cfg.optim.optimizer!r}")
    if cfg.run.batch_size < 1 or cfg.run.epochs < 1:
        raise ConfigError("run.batch_size and run.epochs must be >= 1")
    if cfg.data.dataset == "ucf101" and (cfg.data.mixup_alpha > 0 or cfg.data.cutmix_alpha > 0):
        raise ConfigError("data.mixup_alpha / data.cutmix_alpha apply to images only; set them to 0 for video")
    return cfg


def accuracy_topk(logits: Tensor, target: Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k."""
    top = logits.topk(min(max(ks), logits.shape[-1]), dim=-1).indices
    hits = top == target.unsqueeze(-1)
    return [int(hits[:, :k].any(-1).sum()) for k in ks]


def _device(name: str, dist_info: DistInfo) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("run.device=cuda but no GPU is available; use run.device=cpu")
    return torch.device("cuda", dist_info.local_rank)


def _build_model(cfg: DictConfig, num_classes: int, in_channels: int) -> nn.Module:
    if cfg.model.num_classes < 0 or 0 < cfg.model.num_classes < num_classes:
        raise ConfigError(
            f"model.num_classes={cfg.model.num_classes} but the {cfg.data.dataset} data ({cfg.data.root or 'built in'}) "
            f"hold {num_classes} classes (labels 0..{num_classes - 1}); set model.num_classes=0 (from the data) or >= "
            f"{num_classes}")
    kwargs: dict[str, Any] = {"num_classes": cfg.model.num_classes or num_classes, "in_channels": in_channels}
    if cfg.model.neuron:
        kwargs["neuron"] = cfg.model.neuron
    if cfg.model.name.startswith(("sew_", "lorafb_snet", "wide_sew")):
        kwargs["cnf"] = cfg.model.cnf
    return create_model(cfg.model.name, **kwargs)


def _optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)


def _autocast(device: torch.device, enabled: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _unpack(batch) -> tuple[Tensor | None, Tensor | None, int]:
    """``(inputs, labels, dropped samples)`` of an image batch ``(x, y)`` or a clip batch ``(x, y, dropped)``."""
    if len(batch) == 3:
        return batch
    return batch[0], batch[1], 0


def _time_major(x: Tensor, steps: int) -> Tensor:
    """Clips ``[T, B, C, H, W]`` as they are; images ``[B, C, H, W]`` repeated over ``steps``."""
    return x if x.dim() == 5 else x.unsqueeze(0).expand(steps, *x.shape)


@torch.no_grad()
def evaluate(model: nn.Module, loader, steps: int, device: torch.device, amp: bool = False,
             max_batches: int = 0) -> dict[str, float]:
    """Loss, top-1 and top-5 (%) of ``model`` on ``loader`` (images repeated over ``steps``, clips as
    they are); ``skipped`` counts clips that could not be decoded."""
    model.eval()
    total = loss_sum = top1 = top5 = skipped = 0
    for index, batch in enumerate(loader):
        if max_batches and index >= max_batches:
            break
        images, labels, dropped = _unpack(batch)
        skipped += dropped
        if images is None:
            continue
        images, labels = images.to(device), labels.to(device)
        with _autocast(device, amp):
            logits = model(_time_major(images, steps)).mean(0).float()
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        c1, c5 = accuracy_topk(logits, labels)
        top1, top5, total = top1 + c1, top5 + c5, total + labels.shape[0]
    if total == 0:
        raise ValueError("the evaluation set is empty")
    return {"loss": loss_sum / total, "top1": 100.0 * top1 / total, "top5": 100.0 * top5 / total, "skipped": skipped}


def every_rank_has_batch(has_batch: bool, dist_info: DistInfo, device: torch.device) -> bool:
    """Whether every process has a usable batch for this step.

    A process whose clips all failed to decode must not skip the step alone: the others would wait
    forever in the gradient all-reduce of the backward pass. Under DDP all processes therefore
    skip the step together (one tiny all-reduce per step); a single process just checks its own.
    """
    if not dist_info.enabled:
        return has_batch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if has_batch else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return flag.item() > 0


def _stop_everywhere(stop: StopFlag, dist_info: DistInfo, device: torch.device) -> bool:
    """Whether a stop was requested in any process (all ranks must stop after the same batch)."""
    if not dist_info.enabled:
        return stop.requested
    import torch.distributed as dist

    flag = torch.tensor([1.0 if stop.requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() > 0 and not stop.requested:
        stop.signal = -1  # stopped because another rank was signalled
    return flag.item() > 0


class WeightEMA:
    """Exponential moving average of a model's state dict: ``ema = decay * ema + (1 - decay) * value``.

    It averages the parameters and the persistent buffers (batch-norm statistics; integer buffers
    are copied), never the neurons' membrane state, which is not part of a state dict and changes
    shape with the batch. The first update copies the model. ``state_dict()`` has the layout of
    ``torch.optim.swa_utils.AveragedModel`` (``n_averaged``, ``module.<key>``), as Huang et al.'
    ``model_ema`` entries. Creating it resets ``model``'s neuron state.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        from cortexsnn.neurons import reset

        if not 0.0 < decay < 1.0:
            raise ValueError(f"run.ema_decay must be in (0, 1), got {decay}")
        reset(model)  # membrane state left by a forward pass may be part of an autograd graph: not copyable
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = float(decay)
        self.n_averaged = 0

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        own = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if self.n_averaged == 0 or not target.is_floating_point():
                target.copy_(value)
            else:
                target.lerp_(value.to(target.dtype), 1.0 - self.decay)
        self.n_averaged += 1

    def state_dict(self) -> dict[str, Any]:
        return {"n_averaged": torch.tensor(self.n_averaged),
                **{f"module.{k}": v for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_averaged = int(state["n_averaged"])
        self.module.load_state_dict({k[len("module."):]: v for k, v in state.items() if k.startswith("module.")})


class _ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch after its first ``start`` samples (a resumed epoch)."""

    start = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def _build_data(cfg: DictConfig):
    d = cfg.data
    if d.dataset == "ucf101":
        from cortexsnn.data.video import build_ucf101

        return build_ucf101(d.root, d.annotation_root, d.fold, d.frames, d.f_steps, d.clip_sampling, d.image_size,
                            list(d.clip_resize), d.clip_crop, cfg.run.seed, augment=d.augment)
    return build_image_data(d.dataset, d.root, d.image_size, d.val_resize, d.auto_augment, d.random_erase,
                            d.val_fraction, cfg.run.seed, augment=d.augment)


def _loaders(cfg: DictConfig, data, dist_info: DistInfo):
    sampler = _ResumableSampler(data.train, num_replicas=dist_info.world_size, rank=dist_info.rank,
                                shuffle=True, seed=cfg.run.seed, drop_last=False)
    generator = torch.Generator().manual_seed(cfg.run.seed)
    collate = None
    if cfg.data.dataset == "ucf101":
        from cortexsnn.data.video import collate_clips as collate
    workers = cfg.data.workers
    train = DataLoader(data.train, batch_size=cfg.run.batch_size, sampler=sampler, num_workers=workers,
                       generator=generator, persistent_workers=False, drop_last=False, collate_fn=collate)
    val = DataLoader(data.val, batch_size=cfg.run.batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    test = None if data.test is None else DataLoader(data.test, batch_size=cfg.run.batch_size, shuffle=False,
                                                     num_workers=workers, collate_fn=collate)
    return sampler, train, val, test


def _load_pretrained(model: nn.Module, path: str) -> None:
    from cortexsnn.models.checkpoints import load_weights

    result = load_weights(model, path, strict=False, skip=("fc.",))
    missing = [k for k in result["missing"] if not k.startswith("fc.")]
    if missing or result["unexpected"]:
        raise ValueError(f"model.pretrained={path} does not fit {type(model).__name__}: missing {missing[:8]}, "
                         f"unexpected {result['unexpected'][:8]}; use a checkpoint of the same architecture")


#: what ``train`` writes into ``run.out_dir`` (a folder holding any of them holds a run): the substrate's outputs
__all__ += ["RUN_OUTPUTS"]
#: keys a resumed run may change: its length and housekeeping that does not touch the results
#: (``cortexsnn iir train`` has the same rule, with its own keys)
RESUME_MUTABLE = ("run.epochs", "run.stop_after_epochs", "run.progress", "run.out_dir", "data.workers")


def train(cfg: DictConfig, resume: bool = False, step_callback=None, overwrite: bool = False,
          argument_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``cfg``; returns the final metrics.

    The run substrate (:class:`~cortexsnn.training.run.TrainingRun`) owns ``run.out_dir``: it is
    checked before anything is computed and locked while the run lasts, ``run.json`` says how it
    ended. ``resume=True`` continues the run there; ``cfg`` must equal the config stored in its
    checkpoint except for :data:`RESUME_MUTABLE` (else :class:`~cortexsnn.config.ConfigError` lists
    the changed keys), and rows that ``metrics.csv`` got after that checkpoint are dropped first.
    ``overwrite=True`` deletes the outputs of a run already there and starts anew; without either,
    a folder holding a run is refused. ``argument_names`` names ``resume`` / ``overwrite`` in
    messages (a command line passes its flags). SIGINT / SIGTERM end the run after the current
    batch with a checkpoint of that position and :class:`~cortexsnn.training.run.TrainingInterrupted`.

    ``step_callback(epoch, batch, loss)`` (optional) is called after every optimiser step with the
    0-based epoch and batch numbers and the batch loss (a float), e.g. to record loss curves.
    """
    dist_info = init_distributed(cfg.run.device)
    try:
        run = TrainingRun(cfg.run.out_dir, "train", to_container(cfg), kind=CHECKPOINT_KIND, resume=resume,
                          overwrite=overwrite, mutable=RESUME_MUTABLE, progress=cfg.run.progress,
                          enabled=dist_info.is_main, argument_names=argument_names)
        with run:
            return _GradientTraining(cfg, run, dist_info, step_callback).fit()
    finally:
        cleanup_distributed(dist_info)


class _GradientTraining:
    """Surrogate-gradient training on the run substrate: its data, model, step and evaluation."""

    def __init__(self, cfg: DictConfig, run: TrainingRun, dist_info: DistInfo, step_callback) -> None:
        self.cfg, self.run, self.dist_info, self.step_callback = cfg, run, dist_info, step_callback
        seed_everything(cfg.run.seed, cfg.run.deterministic)
        self.device = device = _device(cfg.run.device, dist_info)
        # all processes stop after the same batch
        run.should_stop = lambda: _stop_everywhere(run.stop, dist_info, device)
        self.data = data = _build_data(cfg)
        self.video = cfg.data.dataset == "ucf101"
        model = _build_model(cfg, data.num_classes, data.in_channels).to(device)
        if cfg.model.pretrained:
            _load_pretrained(model, cfg.model.pretrained)
        if cfg.model.channels_last:  # NHWC: faster oneDNN convolutions on CPUs (SEW-ResNets pick per stage)
            if hasattr(model, "set_channels_last"):
                model.set_channels_last(cfg.data.image_size)
            else:
                model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.sampler, self.train_loader, self.val_loader, self.test_loader = _loaders(cfg, data, dist_info)
        self.steps_per_epoch = (len(self.train_loader) if not cfg.run.max_batches_per_epoch
                                else min(len(self.train_loader), cfg.run.max_batches_per_epoch))
        self.optimizer = _optimizer(cfg, model)
        o = cfg.optim
        self.scheduler = build_scheduler(self.optimizer, o.schedule, cfg.run.epochs, self.steps_per_epoch,
                                         o.per_iteration, o.warmup_epochs, o.warmup_factor, o.step_size, o.gamma)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp and device.type == "cuda")
        self.ema = WeightEMA(model, cfg.run.ema_decay) if cfg.run.ema_decay > 0 else None
        self.net: nn.Module = model
        if dist_info.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
        self.batch_mix = None if self.video else mixup_cutmix(cfg.model.num_classes or data.num_classes,
                                                              cfg.data.mixup_alpha, cfg.data.cutmix_alpha)
        self.start_epoch, self.best_top1, self.history, self.partial = 0, -1.0, [], None
        record = run.record
        if record is not None:
            model.load_state_dict(record["model"])
            self.optimizer.load_state_dict(record["optimizer"])
            self.scheduler.load_state_dict(record["scheduler"])
            self.scaler.load_state_dict(record["scaler"])
            if self.ema is not None and record.get("ema") is not None:
                self.ema.load_state_dict(record["ema"])
            self.start_epoch, self.best_top1, self.history = record["epoch"] + 1, record["best_top1"], record["history"]
            self.partial = record.get("partial")
            if self.partial is not None:
                self.start_epoch = self.partial["epoch"]
            restore_rng_state(record["rng"])
        if dist_info.is_main and self.video and data.train.skipped:
            _log.warning("%d training videos skipped (unreadable or too short), %d test videos",
                         len(data.train.skipped), len(data.val.skipped))
        self.done: dict[str, Any] = {}
        self.started = 0.0

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        last_epoch = cfg.run.epochs
        if cfg.run.stop_after_epochs:
            last_epoch = min(last_epoch, self.start_epoch + cfg.run.stop_after_epochs)
        start_batch = self.partial["batches"] if self.partial is not None else 0
        self.run.fit_epochs(self, self.start_epoch, start_batch, last_epoch, self.steps_per_epoch, cfg.run.epochs)
        metrics: dict[str, Any] = {"best_val_top1": self.best_top1, "epochs": len(self.history)}
        run = self.run
        if (self.test_loader is not None and self.dist_info.is_main and run.best.is_file()
                and len(self.history) == cfg.run.epochs):
            self.model.load_state_dict(run.load_best()["model"])
            test = evaluate(self.model, self.test_loader, cfg.model.T, self.device, cfg.run.amp)
            metrics.update({f"test_{k}": v for k, v in test.items() if k != "skipped"})
            run.logger.log(len(self.history), "test", **{k: v for k, v in test.items() if k != "skipped"})
            _log.info("test top-1 %.2f%% (best validation epoch)", metrics["test_top1"])
        best_epoch = next((row["epoch"] for row in self.history if row["val_top1"] == self.best_top1), None)
        run.write_results(metrics={k: v for k, v in metrics.items() if k != "epochs"},
                          best={"epoch": best_epoch, "val_top1": self.best_top1}, epochs=self.history)
        return metrics

    # ---------------------------------------------------------------- EpochTrainer
    def batches(self, epoch: int, start: int):
        data = self.data
        self.sampler.set_epoch(epoch)
        for dataset in (data.train, data.val):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch if dataset is data.train else 0)
        self.net.train()
        self.started = time.time()
        self.done = {"epoch": epoch, "batches": 0, "seen": 0, "loss_sum": 0.0, "correct": 0, "skipped": 0,
                     "seconds": 0.0}
        if self.partial is not None and self.partial["epoch"] == epoch:
            self.done.update(self.partial)
            self.partial = None
        self.sampler.start = self.done["batches"] * self.cfg.run.batch_size
        return self.train_loader

    def step(self, epoch: int, index: int, batch) -> None:
        cfg, done, device = self.cfg, self.done, self.device
        images, labels, dropped = _unpack(batch)
        done["skipped"] += dropped
        done["batches"] = index + 1
        if not every_rank_has_batch(images is not None, self.dist_info, device):
            return None  # every clip of the batch failed to decode (here or in another process)
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        hard_labels = labels
        if self.batch_mix is not None:
            images, labels = self.batch_mix(images, labels)
        if not torch.isfinite(images).all():
            raise ValueError(f"batch {index} of epoch {epoch + 1} contains NaN or infinite pixels")
        with _autocast(device, cfg.run.amp):
            logits = self.net(_time_major(images, cfg.model.T)).mean(0).float()
        loss = nn.functional.cross_entropy(logits, labels, label_smoothing=cfg.optim.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if cfg.optim.per_iteration:
            self.scheduler.step()
        batch_loss = float(loss.detach())
        done["seen"] += labels.shape[0]
        done["loss_sum"] += batch_loss * labels.shape[0]
        done["correct"] += int((logits.argmax(-1) == hard_labels).sum())
        if self.step_callback is not None:
            self.step_callback(epoch, index, batch_loss)
        fault_point("step")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
        return None

    def _payload(self, epoch: int, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        """The trainer's checkpoint entries; ``epoch`` is the last completed epoch, ``partial`` the
        position inside the next one."""
        return {"model_name": self.cfg.model.name, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
                "epoch": epoch, "best_top1": self.best_top1, "history": self.history, "partial": partial}

    def save_position(self, epoch: int, batches_done: int) -> None:
        self.done["seconds"] += time.time() - self.started
        self.run.save(self._payload(epoch - 1, dict(self.done)))

    def end_epoch(self, epoch: int) -> None:
        cfg, run, done = self.cfg, self.run, self.done
        if not cfg.optim.per_iteration:
            self.scheduler.step()
        val = evaluate(self.model, self.val_loader, cfg.model.T, self.device, cfg.run.amp, cfg.run.eval_batches)
        seen = max(done["seen"], 1)
        row = {"epoch": epoch + 1, "train_loss": done["loss_sum"] / seen, "train_top1": 100.0 * done["correct"] / seen,
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
               "lr": self.optimizer.param_groups[0]["lr"], "seconds": done["seconds"] + time.time() - self.started}
        if self.video:
            row.update({"skipped_clips": done["skipped"], "val_skipped_clips": val["skipped"],
                        "skipped_videos": len(self.data.train.skipped) + len(self.data.val.skipped)})
        if self.ema is not None:
            row["ema_val_top1"] = evaluate(self.ema.module, self.val_loader, cfg.model.T, self.device, cfg.run.amp,
                                           cfg.run.eval_batches)["top1"]
        self.history.append(row)
        if not self.dist_info.is_main:
            return
        train_part = {"loss": row["train_loss"], "top1": row["train_top1"], "lr": row["lr"], "seconds": row["seconds"]}
        val_part = {k[len("val_"):]: v for k, v in row.items() if k.startswith("val_")}
        if "ema_val_top1" in row:
            val_part["ema_top1"] = row["ema_val_top1"]
        if self.video:
            train_part.update(skipped_clips=row["skipped_clips"], skipped_videos=row["skipped_videos"])
        run.logger.log(epoch + 1, "train", **train_part)
        run.logger.log(epoch + 1, "val", **val_part)
        skipped = f", {done['skipped'] + val['skipped']} clips skipped" if self.video else ""
        _log.info("epoch %d: train loss %.4f, val top-1 %.2f%%, top-5 %.2f%% (%.0f s%s)", epoch + 1,
                  row["train_loss"], val["top1"], val["top5"], row["seconds"], skipped)
        improved = val["top1"] > self.best_top1
        if improved:
            self.best_top1 = val["top1"]
        run.save(self._payload(epoch), best=improved)
