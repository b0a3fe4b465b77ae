"""Configuration files: YAML checked against a typed schema, overridable from the command line.

A schema is a (nested) dataclass; :func:`load_config` merges, in order, the schema's defaults,
a YAML file and ``key=value`` overrides (OmegaConf dot-list syntax, e.g. ``train.epochs=3``).
An unknown key, a value of the wrong type or a missing file raises :class:`ConfigError` naming
the key and what is accepted.

The shipped configs are package data (``src/cortexsnn/configs/`` in a checkout, ``cortexsnn/configs/``
inside an installed package). A config path that is not a file is looked up among them, so
``configs/iir/snn_mlp_1.yaml``, ``iir/snn_mlp_1.yaml`` and ``iir/snn_mlp_1`` name the same shipped
file from any working directory; a file at the given path always wins. :func:`shipped_configs`
lists them (``cortexsnn configs`` on the command line).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cortexsnn.errors import CortexSNNError

__all__ = ["ConfigError", "load_config", "resolve_config", "shipped_config_dir", "shipped_configs", "to_container",
           "valid_keys", "check_resume_config", "flatten"]


class ConfigError(CortexSNNError, ValueError):
    """A configuration file or override is wrong (unknown key, wrong type, unreadable file)."""


def shipped_config_dir() -> Path:
    """The folder of the shipped configs (``cortexsnn/configs`` inside the package)."""
    return Path(__file__).resolve().parent / "configs"


def shipped_configs(group: str | None = None) -> list[str]:
    """Names of the shipped configs, ``"iir/snn_mlp_1.yaml"`` style, sorted (one ``group`` such as
    ``"iir"``, ``"stdp"`` or ``"train"``, or all)."""
    root = shipped_config_dir()
    base = root / group if group else root
    return sorted(p.relative_to(root).as_posix() for p in base.rglob("*.yaml"))


def resolve_config(path: str | Path) -> Path:
    """The config file ``path`` names: the file itself when it exists, else the shipped config of that
    name (a leading ``configs/`` and the ``.yaml`` suffix may be left out). Raises :class:`ConfigError`
    listing the shipped configs when neither exists."""
    file = Path(path).expanduser()
    if file.is_file():
        return file
    if not file.is_absolute():
        parts = file.parts[1:] if file.parts[:1] == ("configs",) else file.parts
        if parts:
            candidate = shipped_config_dir().joinpath(*parts)
            for option in (candidate, candidate.with_name(candidate.name + ".yaml")):
                if option.is_file():
                    return option
    raise ConfigError(f"config file {path} not found: it does not exist, and no shipped config has that name; "
                      f"the shipped ones: {', '.join(shipped_configs())} (`cortexsnn configs` lists them)")


def valid_keys(schema: type, prefix: str = "") -> list[str]:
    """All dotted keys a schema accepts (for error messages)."""
    keys: list[str] = []
    for field in dataclasses.fields(schema):
        name = f"{prefix}{field.name}"
        field_type = field.type if isinstance(field.type, type) else None
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if dataclasses.is_dataclass(field_type) or dataclasses.is_dataclass(default):
            keys.extend(valid_keys(type(default) if dataclasses.is_dataclass(default) else field_type, f"{name}."))
        else:
            keys.append(name)
    return keys


def _explain(exc: OmegaConfBaseException, schema: type, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    message = (str(exc).splitlines() or [''])[0]
    hint = ", ".join(valid_keys(schema))
    if "not in struct" in message or "Key '" in message and "not" in message:
        return ConfigError(f"{source}: unknown config key {key!r}. Valid keys: {hint}")
    if "is not a ListConfig" in message:
        return ConfigError(f"{source}: bad value for config key {key!r}: expected a list, e.g. {key}=[1,2]")
    return ConfigError(f"{source}: bad value for config key {key!r}: {message}")


def load_config(
    path: str | Path | Mapping[str, Any] | None, overrides: Sequence[str] = (), schema: type | None = None
) -> DictConfig:
    """Load a config: schema defaults <- YAML file ``path`` <- ``overrides`` (``key=value``).

    ``path`` may also be a mapping, e.g. the config stored in a checkpoint (a resumed run).
    """
    if schema is None:
        raise ValueError("load_config needs a dataclass schema")
    base = OmegaConf.structured(schema)
    OmegaConf.set_struct(base, True)
    if isinstance(path, Mapping):
        try:
            base = OmegaConf.merge(base, OmegaConf.create(dict(path)))
        except OmegaConfBaseException as exc:
            raise _explain(exc, schema, "the stored config") from None
        path = None
    if path is not None:
        file = resolve_config(path)
        try:
            loaded = OmegaConf.load(file)
        except Exception as exc:
            raise ConfigError(f"config file {file} is not valid YAML ({' '.join(str(exc).split())}); fix the "
                              "file (key: value lines)") from exc
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"config file {file} must hold a mapping of keys, not {type(loaded).__name__}")
        try:
            base = OmegaConf.merge(base, loaded)
        except OmegaConfBaseException as exc:
            raise _explain(exc, schema, str(file)) from None
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}")
    if overrides:
        try:
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as exc:
            raise _explain(exc, schema, "command-line override") from None
    try:
        OmegaConf.to_container(base, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config value missing: {getattr(exc, 'full_key', exc)}; set it in the file or as an override") from None
    return base


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """A plain ``dict`` copy of a config (safe to store in checkpoints and JSON)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume_config(stored: Mapping[str, Any], cfg: DictConfig | Mapping[str, Any],
                        mutable: Sequence[str]) -> None:
    """Refuse to resume a run with a config that differs from its stored one in a key not in ``mutable``.

    ``mutable`` lists the keys a resumed run may change (the run length, logging); every other
    change (model, data, optimiser, batch size, seeds) would silently give another run than the
    one resumed. Raises :class:`ConfigError` listing each changed key with its stored and new value.
    """
    flat_stored = flatten(stored)
    flat_new = flatten(to_container(cfg) if isinstance(cfg, DictConfig) else cfg)
    # keys the stored config lacks are newer than the run (their defaults keep its behaviour)
    changed = [k for k in flat_new if k in flat_stored and k not in mutable and flat_stored[k] != flat_new[k]]
    if changed:
        details = ", ".join(f"{k}: {flat_stored[k]!r} -> {flat_new[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume with a different config ({details}); only {list(mutable)} may change. Resume with the "
            "run's own config (it is stored in the checkpoint) or start the changed run in a new output folder."
        )
