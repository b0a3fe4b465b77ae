"""Model registry in the style of timm: ``create_model(name, **kwargs)``, ``list_models()``.

Each model family lives in its own module and registers its constructors with
:func:`register_model`; importing :mod:`cortexsnn.models` imports them all. Registered pretrained
weights (:mod:`cortexsnn.models.pretrained`) load with ``create_model(name, pretrained=True)``.
"""
from __future__ import annotations

import fnmatch
from typing import Callable

from torch import nn

from cortexsnn.errors import CortexSNNError

__all__ = ["register_model", "create_model", "list_models", "UnknownModelError"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


class UnknownModelError(CortexSNNError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` under its function name."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a glob ``pattern``."""
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def create_model(name: str, pretrained: bool | str = False, **kwargs) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its constructor (e.g. ``num_classes``, ``neuron``).

    ``pretrained=True`` loads the model's default registered weights, ``pretrained="tag"`` the weights
    of that tag (:mod:`cortexsnn.models.pretrained`; the cfg's ``model_kwargs`` are passed to the
    constructor unless ``kwargs`` override them). The model's ``pretrained_cfg`` attribute is the
    :class:`~cortexsnn.models.pretrained.PretrainedCfg` of the loaded weights, ``None`` for random ones.
    """
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    if not isinstance(pretrained, (bool, str)) or pretrained == "":
        raise TypeError(f"pretrained must be True, False or a weight tag, got {pretrained!r}")
    cfg = None
    if pretrained:
        from cortexsnn.models.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(name, None if pretrained is True else pretrained)
        kwargs = {**cfg.model_kwargs, **kwargs}
    model = _REGISTRY[name](**kwargs)
    model.pretrained_cfg = None  # type: ignore[assignment]
    if cfg is not None:
        from cortexsnn.models.pretrained import load_pretrained

        load_pretrained(model, cfg)
    return model
