"""``cortexsnn iir``: train and test the IIR synapse-filter SNNs of Fang et al. (IJCAI 2020).

::

    cortexsnn iir train --config configs/iir/snn_mlp_1.yaml [key=value ...] [--data-dir DIR] [--out DIR] [--resume | --overwrite]
    cortexsnn iir train --out DIR --resume [key=value ...]   # the config stored in DIR's checkpoint
    cortexsnn iir test --checkpoint runs/iir/checkpoint_best.pt [--data-dir DIR] [key=value ...]
    cortexsnn iir memory [--config configs/iir/associative_memory.yaml] [key=value ...] [--out DIR] [--resume]

``train`` dispatches on the config's ``task`` (``mnist`` or ``associative_memory``); ``memory`` is
``train`` with the associative-memory config as default. ``--resume`` without ``--config`` continues
with the config stored in the run's checkpoint (overrides may change only the run length and
logging); an output folder holding another run is refused unless ``--resume`` or ``--overwrite``.
"""
from __future__ import annotations

import argparse
import sys
import json
from pathlib import Path

from cortexsnn.cli.main import CliError

DEFAULT_MEMORY_CONFIG = "associative_memory.yaml"
#: how the run-folder messages name the resume / overwrite arguments on the command line
RUN_FLAGS = {"resume": "--resume", "overwrite": "--overwrite"}


def find_shipped_config(name: str) -> Path:
    """The shipped config ``iir/<name>`` (package data: ``cortexsnn/configs/iir/``), found from any
    working directory, in a checkout and in an installed wheel alike."""
    from cortexsnn.config import ConfigError, resolve_config

    try:
        return resolve_config(Path("iir") / name)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def register(subparsers) -> None:
    parser = subparsers.add_parser("iir", help="IIR synapse-filter SNNs (Fang et al. 2020): train, test, associative memory")
    commands = parser.add_subparsers(dest="iir_command", metavar="ACTION")

    train = commands.add_parser("train", help="train a model from a YAML config (MNIST or associative memory)")
    _add_train_arguments(train, config_required=True)
    train.set_defaults(func=_train, default_config=None)

    memory = commands.add_parser("memory", help="train the associative-memory network")
    _add_train_arguments(memory, config_required=False)
    memory.set_defaults(func=_train, default_config=DEFAULT_MEMORY_CONFIG)

    test = commands.add_parser("test", help="evaluate a checkpoint on its test set")
    test.add_argument("--checkpoint", required=True, help="checkpoint file written by `cortexsnn iir train`")
    test.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files (default: the one used in training)")
    test.add_argument("--split", choices=("test", "val"), default="test")
    test.add_argument("--no-progress", action="store_true", help="no progress bar")
    from cortexsnn.cli.grammar import add_option_grammar

    add_option_grammar(test, "iir test")
    test.set_defaults(func=_test)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _add_train_arguments(parser: argparse.ArgumentParser, config_required: bool) -> None:
    parser.add_argument(
        "--config", default=None,
        help="YAML config file, or the name of a shipped one such as configs/iir/snn_mlp_1.yaml (`cortexsnn configs` "
             "lists them)" + ("; required unless --resume (then: the run's stored config)"
                             if config_required else "; default: configs/iir/associative_memory.yaml"),
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=3")
    parser.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files (default: config data.data_dir; none = embedded subset)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/<config name>)")
    parser.add_argument("--seed", type=int, default=None, help="train.seed= (the shipped configs set their own)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint_latest.pt")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out (its checkpoints, logs and results are deleted first)")


def _train(args: argparse.Namespace) -> int:
    from cortexsnn.cli.grammar import dotlist_value
    from cortexsnn.config import ConfigError
    from cortexsnn.training.iir import TrainingInterrupted, load_iir_config, train
    from cortexsnn.utils.checkpoint import CheckpointError

    if args.resume and args.overwrite:
        raise CliError("--resume continues the run in --out, --overwrite replaces it: give one of them")
    overrides = list(args.overrides)
    if args.data_dir is not None:
        if not Path(args.data_dir).is_dir():
            raise CliError(f"--data-dir {args.data_dir} is not a directory; pass the folder holding the MNIST IDX files")
        overrides.insert(0, f"data.data_dir={dotlist_value(args.data_dir)}")
    if args.seed is not None:
        overrides.insert(0, f"train.seed={args.seed}")
    if args.config is None and args.default_config is None and not args.resume:
        raise CliError("give --config (see configs/iir/), or --resume --out DIR to continue a run")
    if args.config is None and args.resume and args.default_config is None and not args.out:
        raise CliError("--resume without --config needs --out: the folder of the run to continue")
    try:
        if args.config is None and args.resume and args.out:
            config = Path(args.out)
            cfg = _stored_config(config / "checkpoint_latest.pt", overrides)
        else:
            config = args.config or find_shipped_config(args.default_config)
            cfg = load_iir_config(config, overrides)
    except (ConfigError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    if args.iir_command == "memory" and cfg.task != "associative_memory":
        raise CliError(f"`cortexsnn iir memory` needs an associative_memory config, {config} is for task {cfg.task!r}")
    out = Path(args.out) if args.out else Path("runs") / Path(config).stem
    try:
        if args.resume:  # before the run folder is touched: a run to resume, with the same config
            _check_resume(out / "checkpoint_latest.pt", cfg)
        results = train(cfg, out, resume=args.resume, overwrite=args.overwrite, argument_names=RUN_FLAGS)
    except (ConfigError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    except TrainingInterrupted as exc:
        print(f"cortexsnn iir train: interrupted: {exc}", file=sys.stderr)
        return 130
    summary = {k: v for k, v in results.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


def _stored_config(checkpoint: Path, overrides: list[str]):
    """The config stored in a run's checkpoint with ``overrides`` on top (a resume without --config)."""
    from cortexsnn.config import load_config
    from cortexsnn.training.iir import IIRConfig, _check_choices
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    if not checkpoint.is_file():
        raise CheckpointError(f"cannot resume: {checkpoint} does not exist (no `iir train` run in {checkpoint.parent}); "
                              "start without --resume, or give --out the folder of the run to continue")
    record = load_checkpoint(checkpoint)
    cfg = load_config(record.get("config") or {}, overrides, IIRConfig)
    _check_choices(cfg)
    return cfg


def _check_resume(checkpoint: Path, cfg) -> None:
    """Refuse to resume a run that is not there, or with a config that changes it."""
    from cortexsnn.config import check_resume_config
    from cortexsnn.training.iir import RESUME_MUTABLE
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    if not checkpoint.is_file():
        raise CheckpointError(f"cannot resume: {checkpoint} does not exist (no `iir train` run in {checkpoint.parent}); "
                              "start without --resume, or give --out the folder of the run to continue")
    check_resume_config(load_checkpoint(checkpoint).get("config") or {}, cfg, RESUME_MUTABLE)


def _test(args: argparse.Namespace) -> int:
    from cortexsnn.cli.grammar import resolve_options
    from cortexsnn.config import ConfigError
    from cortexsnn.training.iir import evaluate_checkpoint
    from cortexsnn.utils.checkpoint import CheckpointError

    resolve_options(args)  # --config and key=value overrides (checkpoint=..., split=val)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise CliError(f"--data-dir {args.data_dir} is not a directory; pass the folder holding the MNIST IDX files")
    try:
        metrics = evaluate_checkpoint(args.checkpoint, args.data_dir, args.split, progress=not args.no_progress)
    except (ConfigError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"checkpoint": args.checkpoint, "split": args.split, **metrics}, indent=2))
    return 0
