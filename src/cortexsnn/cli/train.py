"""``cortexsnn train``: surrogate-gradient training of the zoo's deep SNNs (torchrun-aware)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["register"]

#: how the run-folder messages name the resume / overwrite arguments on the command line
RUN_FLAGS = {"resume": "--resume", "overwrite": "--overwrite"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a deep SNN (SEW-ResNet, LoRaFB-SNet, ...) on images or UCF101 video clips",
        description="Train a zoo model from a YAML config (a file, or a shipped one such as configs/train/sew_resnet8_mnist.yaml; "
                    "`cortexsnn configs train` lists them); any key can be overridden as "
                    "section.key=value, e.g. run.epochs=3 data.root=/data/imagenet. Multi-GPU / multi-node: "
                    "torchrun --nproc_per_node N -m cortexsnn.cli.main train ... --out, --data-dir and --seed are aliases of "
                    "run.out_dir=, data.root= and run.seed=.",
    )
    parser.add_argument("--config", help="YAML config file, or the name of a shipped one (configs/train/...); with --resume optional (the run's stored config is used)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue the run in run.out_dir (also after Ctrl-C / SIGTERM in the middle of an epoch) "
                             "with its stored config; overrides may change only run.epochs, run.stop_after_epochs, "
                             "run.progress, run.out_dir and data.workers")
    resume.add_argument("--overwrite", action="store_true",
                        help="replace the run in run.out_dir (its checkpoints and logs are deleted first)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. run.epochs=3")
    alias = parser.add_argument_group("aliases of config keys")
    alias.add_argument("--out", default=None, help="run.out_dir=: the run's folder")
    alias.add_argument("--data-dir", default=None, help="data.root=: the data folder")
    alias.add_argument("--seed", type=int, default=None, help="run.seed=")
    parser.set_defaults(func=_run)


#: the alias flags and the config key each sets
FLAG_KEYS = {"out": "run.out_dir", "data_dir": "data.root", "seed": "run.seed"}


def _run(args: argparse.Namespace) -> int:
    from cortexsnn.cli.grammar import flag_overrides
    from cortexsnn.training.run import TrainingInterrupted
    from cortexsnn.training.trainer import load_train_config, train

    overrides = [*flag_overrides(args, FLAG_KEYS), *args.overrides]
    if args.resume and not args.config:
        cfg = _stored_config(overrides)
    else:
        cfg = load_train_config(args.config, overrides)
    if args.resume:  # before the run folder is touched: a run to resume, with the same config
        _check_resume(cfg)
    try:
        metrics = train(cfg, resume=args.resume, overwrite=args.overwrite, argument_names=RUN_FLAGS)
    except TrainingInterrupted as exc:
        print(f"cortexsnn train: interrupted: {exc}", file=sys.stderr)
        return 130
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return 0


def _stored_config(overrides: list[str]):
    """The config stored in the checkpoint of the run to resume, with ``overrides`` on top."""
    from pathlib import Path

    from cortexsnn.training.trainer import load_train_config

    out = Path(load_train_config(None, overrides).run.out_dir)
    stored = _stored(out)
    stored.setdefault("run", {})["out_dir"] = str(out)  # where the run is now (the folder may have moved)
    return load_train_config(stored, overrides)


def _stored(out) -> dict:
    """The config stored in the latest checkpoint of the run in ``out``."""
    from cortexsnn.training.run import CHECKPOINT_LATEST, find_latest_checkpoint
    from cortexsnn.training.trainer import CHECKPOINT_KIND
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint
    from cortexsnn.utils.runfolder import read_manifest

    latest = find_latest_checkpoint(out)
    if latest is None and read_manifest(out) is not None:  # a run that stopped before its first checkpoint
        raise CheckpointError(f"cannot resume: {out / CHECKPOINT_LATEST} does not exist (the run in {out} stopped "
                              "before its first epoch ended); start it anew with --overwrite")
    if latest is None:
        raise CheckpointError(f"cannot resume: {out / CHECKPOINT_LATEST} does not exist (no `cortexsnn train` run in {out}); start "
                              "without --resume, or give the run's folder (--out DIR or run.out_dir=DIR)")
    return load_checkpoint(latest, kind=CHECKPOINT_KIND).get("config") or {}


def _check_resume(cfg) -> None:
    """Refuse, before anything is written, to resume a run that is not there or with a config that
    changes it (the model, data, optimiser, seeds: only the run length and logging may change)."""
    from pathlib import Path

    from cortexsnn.config import check_resume_config
    from cortexsnn.training.trainer import RESUME_MUTABLE

    out = Path(cfg.run.out_dir)
    stored = _stored(out)
    stored.setdefault("run", {})["out_dir"] = str(out)
    check_resume_config(stored, cfg, RESUME_MUTABLE)
