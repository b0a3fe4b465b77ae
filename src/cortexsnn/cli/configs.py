"""``cortexsnn configs``: list the shipped configs, or print one (to copy and edit).

::

    cortexsnn configs                 # every shipped config, e.g. iir/snn_mlp_1.yaml
    cortexsnn configs stdp            # one group: iir, stdp or train
    cortexsnn configs --show iir/snn_mlp_1 > my_mlp.yaml

The configs are package data (``cortexsnn/configs/``); ``--config configs/iir/snn_mlp_1.yaml`` (or
``iir/snn_mlp_1``) names one from any working directory (see :func:`cortexsnn.config.resolve_config`).
"""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "configs", help="list the shipped YAML configs, or print one (--show NAME)",
        description="List the configs shipped inside the package (usable as --config configs/GROUP/NAME.yaml from "
                    "any folder), or print one to copy and edit.")
    p.add_argument("group", nargs="?", default=None, help="only this group: iir, stdp or train")
    p.add_argument("--show", metavar="NAME", default=None, help="print this config, e.g. iir/snn_mlp_1")
    p.add_argument("--path", action="store_true", help="print the file paths instead of the names")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cortexsnn.cli.main import CliError
    from cortexsnn.config import resolve_config, shipped_config_dir, shipped_configs

    if args.show:
        print(resolve_config(args.show).read_text(), end="")
        return 0
    groups = sorted(p.name for p in shipped_config_dir().iterdir() if p.is_dir())
    if args.group is not None and args.group not in groups:
        raise CliError(f"no config group {args.group!r}; the groups: {', '.join(groups)}")
    for name in shipped_configs(args.group):
        print(shipped_config_dir() / name if args.path else f"configs/{name}")
    return 0
