"""One command-line grammar for every command: ``--config FILE`` and ``key=value`` overrides on an
OmegaConf schema, with flags as the readable form of the keys they set.

Two ways a command gets it:

* A command whose options are a documented config schema (``train``, ``iir``, ``stdp train``) keeps
  its schema and maps each flag to a key with :func:`flag_overrides` (``--seed 3`` is ``train.seed=3``).
* A command whose options are its flags (``similarity``, ``demo``, ``benchmark``, ``stdp evaluate``)
  calls :func:`add_option_grammar` after adding them: the flags become the fields of a schema built
  from the parser (``--max-memory-gb 2`` is ``max_memory_gb=2``; types, defaults and choices are the
  flags'), ``--config`` reads a YAML file of such keys, and :func:`resolve_options` merges, in this
  order, the flags' defaults, the config file, the flags given and the ``key=value`` overrides, then
  writes the result back onto the parsed arguments.

An unknown key lists the valid ones and a value of the wrong type names the expected type (both a
:class:`~cortexsnn.config.ConfigError`, which the CLI turns into exit code 2 and one line).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any, List, Mapping, Optional, Sequence

from omegaconf import MISSING, OmegaConf

from cortexsnn.config import ConfigError, load_config

__all__ = ["add_option_grammar", "resolve_options", "flag_overrides", "dotlist_value", "OptionGrammar"]

#: parser entries that are not options of the command
_NOT_OPTIONS = ("help", "config", "overrides", "version")


def dotlist_value(value: Any) -> str:
    """``value`` as the right-hand side of a ``key=value`` override (a YAML literal)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dotlist_value(v) for v in value) + "]"
    return json.dumps(value)  # strings quoted (paths with ':' or spaces stay strings), None -> null


def flag_overrides(args: argparse.Namespace, keys: Mapping[str, str]) -> list[str]:
    """``key=value`` overrides for the flags given on the command line: ``keys`` maps a flag's
    destination (``data_dir``) to the config key it sets (``data.data_dir``); a flag left out
    (``None``) sets nothing. A ``store_true`` flag whose key is the negation (``no_progress`` ->
    ``run.progress``) is written as ``"!run.progress"``."""
    overrides = []
    for dest, key in keys.items():
        value = getattr(args, dest, None)
        if value is None or value is False and key.startswith("!"):
            continue
        if key.startswith("!"):
            key, value = key[1:], not value
        overrides.append(f"{key}={dotlist_value(value)}")
    return overrides


@dataclasses.dataclass
class OptionGrammar:
    """What :func:`add_option_grammar` learnt of a parser: the schema and each key's flag and choices."""

    command: str
    schema: type
    flags: dict[str, str]
    choices: dict[str, tuple]


def _field_type(action: argparse.Action) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return bool
    if isinstance(action, argparse._AppendAction):
        return List[str]
    base = action.type if action.type in (int, float) else str
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        return List[base]  # type: ignore[valid-type]
    return base if (action.default is not None or action.required) else Optional[base]


def add_option_grammar(parser: argparse.ArgumentParser, command: str, config_help: str | None = None) -> None:
    """Give ``parser`` (whose options are already added) ``--config`` and ``key=value`` overrides on a
    schema of its options; :func:`resolve_options` applies them once the arguments are parsed."""
    fields, flags, choices = [], {}, {}
    for action in parser._actions:
        if action.dest in _NOT_OPTIONS or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        kind = _field_type(action)
        if action.required:
            default = dataclasses.field(default=MISSING)
            action.required = False
        elif isinstance(action.default, list):
            default = dataclasses.field(default_factory=lambda d=list(action.default): list(d))
        else:
            default = dataclasses.field(default=action.default)
        fields.append((action.dest, kind, default))
        flags[action.dest] = action.option_strings[0] if action.option_strings else action.dest
        if action.choices is not None:
            choices[action.dest] = tuple(action.choices)
        action.default = argparse.SUPPRESS  # absent from the parsed arguments unless given
    schema = dataclasses.make_dataclass(f"{command.title().replace(' ', '')}Options", fields)
    parser.add_argument("--config", default=None,
                        help=config_help or "YAML file of option values (keys: the long option names with _, e.g. "
                                            "batch_size: 8); flags and key=value overrides win over it")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="option overrides, e.g. seed=3 (the key of --foo-bar is foo_bar)")
    parser.set_defaults(_grammar=OptionGrammar(command, schema, flags, choices))


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Merge the command's option defaults, ``--config``, the flags given and the ``key=value``
    overrides, check them and set every option on ``args`` (which is returned)."""
    grammar: OptionGrammar = args._grammar
    given = [f"{dest}={dotlist_value(getattr(args, dest))}" for dest in grammar.flags if hasattr(args, dest)]
    try:
        cfg = load_config(args.config, [*given, *args.overrides], grammar.schema)
    except ConfigError as exc:
        if not str(exc).startswith("config value missing"):
            raise
        missing = [d for d in grammar.flags if OmegaConf.is_missing(_merged_without_check(args, grammar, given), d)]
        raise ConfigError("the following arguments are required: " + ", ".join(
            f"{grammar.flags[d]} (or {d}=...)" for d in missing)) from None
    values = OmegaConf.to_container(cfg, resolve=True)
    for dest, allowed in grammar.choices.items():
        value = values[dest]
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item not in allowed:
                raise ConfigError(f"{grammar.flags[dest]} ({dest}) is {item!r}; choose one of {list(allowed)}")
    for dest, value in values.items():
        setattr(args, dest, value)
    for name in ("_grammar", "overrides"):
        if hasattr(args, name):
            delattr(args, name)
    return args


def _merged_without_check(args: argparse.Namespace, grammar: OptionGrammar, given: Sequence[str]):
    """The merged options with missing values left in (to name the missing ones)."""
    base = OmegaConf.structured(grammar.schema)
    if args.config:
        from cortexsnn.config import resolve_config

        base = OmegaConf.merge(base, OmegaConf.load(resolve_config(args.config)))
    return OmegaConf.merge(base, OmegaConf.from_dotlist([*given, *args.overrides]))
