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
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Sequence

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from cortexsnn.config import ConfigError, check_resume_config, load_config, to_container
from cortexsnn.data.images import build_image_data, mixup_cutmix
from cortexsnn.models import create_model
from cortexsnn.training.distributed import DistInfo, cleanup_distributed, init_distributed
from cortexsnn.training.logging import RunLogger
from cortexsnn.training.signals import StopFlag
from cortexsnn.training.schedules import build_scheduler
from cortexsnn.utils.faults import fault_point
from cortexsnn.utils.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)

if TYPE_CHECKING:
    from cortexsnn.utils.runfolder import RunFolder

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
    seed: int = 2022
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


def _seed(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


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


#: what ``train`` writes into ``run.out_dir`` (a folder holding any of them holds a run)
RUN_OUTPUTS = ("checkpoint_latest.pt", "checkpoint_best.pt", "metrics.csv", "tensorboard")
#: keys a resumed run may change: its length and housekeeping that does not touch the results
#: (``cortexsnn iir train`` has the same rule, with its own keys)
RESUME_MUTABLE = ("run.epochs", "run.stop_after_epochs", "run.progress", "run.out_dir", "data.workers")


def train(cfg: DictConfig, resume: bool = False, step_callback=None, overwrite: bool = False,
          argument_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Run (or resume) the training described by ``cfg``; returns the final metrics.

    ``run.out_dir`` is a :class:`~cortexsnn.utils.runfolder.RunFolder` (locked while the run
    lasts, ``run.json`` saying how it ended), checked before anything is computed. ``resume=True``
    continues the run there; ``cfg`` must equal the config stored in its checkpoint except for
    :data:`RESUME_MUTABLE` (else :class:`~cortexsnn.config.ConfigError` lists the changed keys),
    and rows that ``metrics.csv`` got after that checkpoint are dropped first. ``overwrite=True``
    deletes the outputs of a run already there and starts anew; without either, a folder holding
    a run is refused. ``argument_names`` names ``resume`` / ``overwrite`` in messages (a command
    line passes its flags).

    ``step_callback(epoch, batch, loss)`` (optional) is called after every optimiser step with the
    0-based epoch and batch numbers and the batch loss (a float), e.g. to record loss curves.
    """
    from cortexsnn.utils.runfolder import RunFolder

    dist_info = init_distributed(cfg.run.device)
    try:
        folder = RunFolder(cfg.run.out_dir, "train", to_container(cfg), outputs=RUN_OUTPUTS, resume=resume,
                           overwrite=overwrite, enabled=dist_info.is_main, argument_names=argument_names)
        with folder:
            return _train(cfg, resume, dist_info, step_callback, folder)
    finally:
        cleanup_distributed(dist_info)


def _train(cfg: DictConfig, resume: bool, dist_info: DistInfo, step_callback, folder: "RunFolder") -> dict[str, Any]:
    _seed(cfg.run.seed, cfg.run.deterministic)
    device = _device(cfg.run.device, dist_info)
    out = Path(cfg.run.out_dir)
    latest, best_path = out / "checkpoint_latest.pt", out / "checkpoint_best.pt"
    record = None
    if resume:
        if not latest.is_file():
            raise CheckpointError(f"cannot resume: {latest} does not exist (no epoch of a run there ended); start "
                                  f"without resume, or anew with {folder.overwrite_argument} if the folder holds a run")
        record = load_checkpoint(latest, kind=CHECKPOINT_KIND)
        if record.get("config") is not None:
            check_resume_config(record["config"], cfg, RESUME_MUTABLE)
    data = _build_data(cfg)
    video = cfg.data.dataset == "ucf101"
    model = _build_model(cfg, data.num_classes, data.in_channels).to(device)
    if cfg.model.pretrained:
        _load_pretrained(model, cfg.model.pretrained)
    if cfg.model.channels_last:  # NHWC: faster oneDNN convolutions on CPUs (SEW-ResNets pick per stage)
        if hasattr(model, "set_channels_last"):
            model.set_channels_last(cfg.data.image_size)
        else:
            model = model.to(memory_format=torch.channels_last)
    sampler, train_loader, val_loader, test_loader = _loaders(cfg, data, dist_info)
    steps_per_epoch = len(train_loader) if not cfg.run.max_batches_per_epoch else min(len(train_loader), cfg.run.max_batches_per_epoch)
    optimizer = _optimizer(cfg, model)
    o = cfg.optim
    scheduler = build_scheduler(optimizer, o.schedule, cfg.run.epochs, steps_per_epoch, o.per_iteration,
                                o.warmup_epochs, o.warmup_factor, o.step_size, o.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp and device.type == "cuda")
    ema = WeightEMA(model, cfg.run.ema_decay) if cfg.run.ema_decay > 0 else None
    net: nn.Module = model
    if dist_info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  broadcast_buffers=False)
    batch_mix = None if video else mixup_cutmix(cfg.model.num_classes or data.num_classes, cfg.data.mixup_alpha,
                                                cfg.data.cutmix_alpha)
    start_epoch, best_top1, history, partial = 0, -1.0, [], None
    if record is not None:
        model.load_state_dict(record["model"])
        optimizer.load_state_dict(record["optimizer"])
        scheduler.load_state_dict(record["scheduler"])
        scaler.load_state_dict(record["scaler"])
        if ema is not None and record.get("ema") is not None:
            ema.load_state_dict(record["ema"])
        start_epoch, best_top1, history = record["epoch"] + 1, record["best_top1"], record["history"]
        partial = record.get("partial")
        if partial is not None:
            start_epoch = partial["epoch"]
        restore_rng_state(record["rng"])
    main = dist_info.is_main
    keep_rows = None if record is None else record.get("log_rows")
    logger = RunLogger(out, enabled=main, keep_rows=keep_rows)
    if main and video and data.train.skipped:
        print(f"{len(data.train.skipped)} training videos skipped (unreadable or too short), "
              f"{len(data.val.skipped)} test videos", flush=True)
    metrics: dict[str, Any] = {}
    with logger, StopFlag() as stop:
        last_epoch = cfg.run.epochs
        if cfg.run.stop_after_epochs:
            last_epoch = min(last_epoch, start_epoch + cfg.run.stop_after_epochs)
        for epoch in range(start_epoch, last_epoch):
            sampler.set_epoch(epoch)
            for dataset in (data.train, data.val):
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch if dataset is data.train else 0)
            net.train()
            started = time.time()
            done = {"epoch": epoch, "batches": 0, "seen": 0, "loss_sum": 0.0, "correct": 0, "skipped": 0, "seconds": 0.0}
            if partial is not None and partial["epoch"] == epoch:
                done.update(partial)
                partial = None
            sampler.start = done["batches"] * cfg.run.batch_size
            remaining = steps_per_epoch - done["batches"]
            batches = train_loader
            if main and cfg.run.progress:
                from tqdm import tqdm

                batches = tqdm(train_loader, total=remaining, desc=f"epoch {epoch + 1}/{cfg.run.epochs}", leave=False)
            for index, batch in enumerate(batches, start=done["batches"]):
                if index >= steps_per_epoch:
                    break
                images, labels, dropped = _unpack(batch)
                done["skipped"] += dropped
                done["batches"] = index + 1
                if not every_rank_has_batch(images is not None, dist_info, device):
                    continue  # every clip of the batch failed to decode (here or in another process)
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                hard_labels = labels
                if batch_mix is not None:
                    images, labels = batch_mix(images, labels)
                if not torch.isfinite(images).all():
                    raise ValueError(f"batch {index} of epoch {epoch + 1} contains NaN or infinite pixels")
                with _autocast(device, cfg.run.amp):
                    logits = net(_time_major(images, cfg.model.T)).mean(0).float()
                loss = nn.functional.cross_entropy(logits, labels, label_smoothing=o.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(model)
                if o.per_iteration:
                    scheduler.step()
                batch_loss = float(loss.detach())
                done["seen"] += labels.shape[0]
                done["loss_sum"] += batch_loss * labels.shape[0]
                done["correct"] += int((logits.argmax(-1) == hard_labels).sum())
                if step_callback is not None:
                    step_callback(epoch, index, batch_loss)
                fault_point("step")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
                if _stop_everywhere(stop, dist_info, device):
                    break
            done["seconds"] += time.time() - started
            if stop.requested:
                if main:
                    _save(latest, cfg, model, optimizer, scheduler, scaler, ema, epoch - 1, best_top1, history, done,
                          logger.rows)
                print(f"stopped by signal {stop.signal} after batch {done['batches']} of {steps_per_epoch} of epoch "
                      f"{epoch + 1}; {latest} holds that position (continue with --resume)", flush=True)
                raise KeyboardInterrupt(f"stopped after batch {done['batches']} of epoch {epoch + 1}; "
                                        f"resume from {latest} with --resume")
            if not o.per_iteration:
                scheduler.step()
            val = evaluate(model, val_loader, cfg.model.T, device, cfg.run.amp, cfg.run.eval_batches)
            seen = max(done["seen"], 1)
            row = {"epoch": epoch + 1, "train_loss": done["loss_sum"] / seen, "train_top1": 100.0 * done["correct"] / seen,
                   "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
                   "lr": optimizer.param_groups[0]["lr"], "seconds": done["seconds"] + time.time() - started}
            if video:
                row.update({"skipped_clips": done["skipped"], "val_skipped_clips": val["skipped"],
                            "skipped_videos": len(data.train.skipped) + len(data.val.skipped)})
            if ema is not None:
                row["ema_val_top1"] = evaluate(ema.module, val_loader, cfg.model.T, device, cfg.run.amp, cfg.run.eval_batches)["top1"]
            history.append(row)
            if main:
                logger.log(epoch + 1, "epoch", **{k: v for k, v in row.items() if k != "epoch"})
                skipped = f", {done['skipped'] + val['skipped']} clips skipped" if video else ""
                print(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, val top-1 {val['top1']:.2f}%, "
                      f"top-5 {val['top5']:.2f}% ({row['seconds']:.0f} s{skipped})", flush=True)
                if val["top1"] > best_top1:
                    best_top1 = val["top1"]
                    _save(best_path, cfg, model, optimizer, scheduler, scaler, ema, epoch, best_top1, history,
                          log_rows=logger.rows)
                _save(latest, cfg, model, optimizer, scheduler, scaler, ema, epoch, best_top1, history, log_rows=logger.rows)
        metrics = {"best_val_top1": best_top1, "epochs": len(history)}
        if test_loader is not None and main and best_path.exists() and len(history) == cfg.run.epochs:
            record = load_checkpoint(best_path, kind=CHECKPOINT_KIND)
            model.load_state_dict(record["model"])
            test = evaluate(model, test_loader, cfg.model.T, device, cfg.run.amp)
            metrics.update({f"test_{k}": v for k, v in test.items() if k != "skipped"})
            logger.log(len(history), "test", **{k: v for k, v in metrics.items() if k.startswith("test_")})
            print(f"test top-1 {metrics['test_top1']:.2f}% (best validation epoch)", flush=True)
    if len(history) < cfg.run.epochs:
        folder.mark_interrupted()  # run.stop_after_epochs: to be resumed
    folder.record(*(out / n for n in RUN_OUTPUTS if (out / n).exists()))
    return metrics


def _save(path: Path, cfg, model, optimizer, scheduler, scaler, ema, epoch, best_top1, history, partial=None,
          log_rows: int = 0) -> None:
    """Write a checkpoint; ``epoch`` is the last completed epoch, ``partial`` the position inside the next one,
    ``log_rows`` the rows of ``metrics.csv`` so far (a resume cuts the file there)."""
    save_checkpoint(path, {
        "kind": CHECKPOINT_KIND, "model_name": cfg.model.name, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
        "ema": None if ema is None else ema.state_dict(), "epoch": epoch, "best_top1": best_top1,
        "history": history, "config": to_container(cfg), "rng": capture_rng_state(), "partial": partial,
        "log_rows": int(log_rows),
    })
