"""``cortexsnn iir``: train and test the IIR synapse-filter SNNs of Fang et al. (IJCAI 2020).

::

    cortexsnn iir train --config configs/iir/snn_mlp_1.yaml [key=value ...] [--data-dir DIR] [--out DIR] [--resume]
    cortexsnn iir test --checkpoint runs/iir/checkpoint_best.pt [--data-dir DIR]
    cortexsnn iir memory [--config configs/iir/associative_memory.yaml] [key=value ...] [--out DIR] [--resume]

``train`` dispatches on the config's ``task`` (``mnist`` or ``associative_memory``); ``memory`` is
``train`` with the associative-memory config as default.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cortexsnn.cli.main import CliError

DEFAULT_MEMORY_CONFIG = "associative_memory.yaml"


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
    test.set_defaults(func=_test)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _add_train_arguments(parser: argparse.ArgumentParser, config_required: bool) -> None:
    parser.add_argument(
        "--config", required=config_required,
        help="YAML config file, or the name of a shipped one such as configs/iir/snn_mlp_1.yaml (`cortexsnn configs` "
             "lists them)" + ("" if config_required else "; default: configs/iir/associative_memory.yaml"),
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=3")
    parser.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files (default: config data.data_dir; none = embedded subset)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint_latest.pt")


def _train(args: argparse.Namespace) -> int:
    from cortexsnn.config import ConfigError
    from cortexsnn.training.iir import TrainingInterrupted, load_iir_config, train
    from cortexsnn.utils.checkpoint import CheckpointError

    config = args.config or find_shipped_config(args.default_config)
    overrides = list(args.overrides)
    if args.data_dir is not None:
        if not Path(args.data_dir).is_dir():
            raise CliError(f"--data-dir {args.data_dir} is not a directory; pass the folder holding the MNIST IDX files")
        overrides.append(f"data.data_dir={args.data_dir}")
    try:
        cfg = load_iir_config(config, overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.iir_command == "memory" and cfg.task != "associative_memory":
        raise CliError(f"`cortexsnn iir memory` needs an associative_memory config, {config} is for task {cfg.task!r}")
    out = Path(args.out) if args.out else Path("runs") / Path(config).stem
    try:
        results = train(cfg, out, resume=args.resume)
    except (ConfigError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    except TrainingInterrupted as exc:
        print(str(exc))
        return 130
    summary = {k: v for k, v in results.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    return 0


def _test(args: argparse.Namespace) -> int:
    from cortexsnn.config import ConfigError
    from cortexsnn.training.iir import evaluate_checkpoint
    from cortexsnn.utils.checkpoint import CheckpointError

    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise CliError(f"--data-dir {args.data_dir} is not a directory; pass the folder holding the MNIST IDX files")
    try:
        metrics = evaluate_checkpoint(args.checkpoint, args.data_dir, args.split, progress=not args.no_progress)
    except (ConfigError, CheckpointError) as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"checkpoint": args.checkpoint, "split": args.split, **metrics}, indent=2))
    return 0
