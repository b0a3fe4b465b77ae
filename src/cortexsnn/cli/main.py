"""Entry point of the ``cortexsnn`` console command.

Each subcommand lives in its own module under :mod:`cortexsnn.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). A subcommand is listed here only once it works.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from cortexsnn.errors import CortexSNNError

# (subcommand module, in the order shown by --help)
SUBCOMMAND_MODULES: list[str] = ["train", "iir", "stdp", "similarity", "convert", "demo", "models", "configs"]  # demo also registers benchmark


class CliError(CortexSNNError):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from cortexsnn import __version__

    parser = argparse.ArgumentParser(
        prog="cortexsnn",
        description="Spiking neural networks as models of the brain.",
    )
    parser.add_argument("--version", action="version", version=f"cortexsnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"cortexsnn.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cortexsnn.models.registry import UnknownModelError
    from cortexsnn.utils.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CortexSNNError, FileNotFoundError, FileExistsError, ValueError, CheckpointError, UnknownModelError) as exc:
        print(f"cortexsnn {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cortexsnn {args.command}: interrupted", file=sys.stderr)
        return 130


def _message(exc: BaseException) -> str:
    """The exception's message; for one re-raised by a DataLoader worker (whose message holds the
    worker's traceback) the original message only, so that the user sees one line, not a traceback."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    name = type(exc).__name__
    for prefix in (f"{type(exc).__module__}.{name}: ", f"{name}: "):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
