"""Entry point of the ``cortexsnn`` console command.

Each subcommand lives in its own module under :mod:`cortexsnn.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments, returning an exit code). A subcommand is listed here only once it works.

User errors (a :class:`~cortexsnn.errors.CortexSNNError`, a bad config key or value, a missing
file, a misused flag) end with exit code 2 and one line ``cortexsnn COMMAND: error: ...``, never a
traceback. The library's log records (progress, notices) go to stderr, one line each: INFO and
above by default, DEBUG with ``-v``, warnings and errors only with ``-q``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn, Sequence

from cortexsnn.errors import CortexSNNError

# (subcommand module, in the order shown by --help)
SUBCOMMAND_MODULES: list[str] = ["train", "iir", "stdp", "similarity", "convert", "demo", "models", "configs"]  # demo also registers benchmark


class CliError(CortexSNNError):
    """A user-facing error: printed without a traceback, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose misuse errors (unknown flag, bad int, missing argument) are one line."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class _StderrHandler(logging.Handler):
    """Writes each record as one line to the current ``sys.stderr`` (looked up at every record, so that
    a redirected stderr is honoured), through ``tqdm.write``: an open progress bar is cleared first
    and drawn again below the line, instead of the two running into each other."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            text = " ".join(self.format(record).split("\n"))
            prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
            tqdm.write(f"{prefix}{text}", file=sys.stderr)
            sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never end the run
            self.handleError(record)


def setup_logging(verbosity: int) -> None:
    """Send the ``cortexsnn`` loggers' records to stderr: ``verbosity`` -1 warnings only, 0 INFO, 1 DEBUG."""
    logger = logging.getLogger("cortexsnn")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        logger.addHandler(handler)
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logger.setLevel(level)
    handler.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    from cortexsnn import __version__

    parser = OneLineParser(
        prog="cortexsnn",
        description="Spiking neural networks as models of the brain.",
    )
    parser.add_argument("--version", action="version", version=f"cortexsnn {__version__}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", help="also debug messages")
    noise.add_argument("-q", "--quiet", dest="quiet_log", action="store_true",
                       help="only warnings and errors from the library (no progress notices)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"cortexsnn.cli.{name}").register(subparsers)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's errors (one line, exit 2), not the toolkit's."""
    from omegaconf.errors import OmegaConfBaseException

    from cortexsnn.models.registry import UnknownModelError
    from cortexsnn.utils.checkpoint import CheckpointError

    return (CortexSNNError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError, ValueError, CheckpointError, UnknownModelError, OmegaConfBaseException)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet_log else 1 if args.verbose else 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except user_errors() as exc:
        print(f"cortexsnn {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cortexsnn {args.command}: interrupted", file=sys.stderr)
        return 130


def _message(exc: BaseException) -> str:
    """The exception's message on one line; for one re-raised by a DataLoader worker (whose message
    holds the worker's traceback) the original message only."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name = type(exc).__name__
        for prefix in (f"{type(exc).__module__}.{name}: ", f"{name}: "):
            if last.startswith(prefix):
                return last[len(prefix):]
        return last
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, OmegaConfBaseException):  # its message is a multi-line report (key, type, ...)
        text = (text.strip().splitlines() or [type(exc).__name__])[0]
        key = getattr(exc, "full_key", None)
        text = f"config key {key!r}: {text}" if key else text
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
