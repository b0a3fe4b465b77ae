"""Networks from outside the zoo: ``load_model_spec("package.module:factory", **kwargs)``.

The spec names an importable module and, after the colon, a callable in it (a function or a class,
dotted for a nested attribute: ``"mypkg.nets:Builders.small"``); the callable is called with
``kwargs`` and must return an ``nn.Module``. This is what ``--model package.module:factory`` on the
command line resolves, so a network built with SpikingJelly, snnTorch, Norse, torchvision or timm
can be scored like a zoo model (:func:`cortexsnn.similarity.features.extract_features` picks the
adapter that resets and runs it, see :mod:`cortexsnn.similarity.adapters`).

The module is imported with the ordinary ``sys.path``: a module in the current folder is found
when running ``python -m cortexsnn`` from it, but not by the installed console script (put the
folder on ``PYTHONPATH``, or install the package).
"""
from __future__ import annotations

import importlib
import logging
import re
from typing import Any

from torch import nn

from cortexsnn.errors import CortexSNNError

__all__ = ["ModelSpecError", "load_model_spec", "parse_model_spec"]

logger = logging.getLogger(__name__)

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ModelSpecError(CortexSNNError, ValueError):
    """A ``package.module:factory`` spec that does not give a network: malformed, a module that
    cannot be imported, a missing or non-callable factory, a factory that fails or returns
    something other than an ``nn.Module``."""


def parse_model_spec(spec: str) -> tuple[str, str]:
    """Split ``"package.module:factory"`` into ``(module, factory)``, checking both are dotted
    Python names.

    Raises:
        ModelSpecError: not of that form.
    """
    if not isinstance(spec, str):
        raise ModelSpecError(f"a model spec is a string 'package.module:factory', got {type(spec).__name__}")
    module, sep, attr = spec.strip().partition(":")
    if not sep or not _DOTTED.match(module) or not _DOTTED.match(attr):
        raise ModelSpecError(f"model spec {spec!r} is not 'package.module:factory' (an importable module, a colon, "
                             "then the name of a function or class in it that builds the network), e.g. "
                             "'torchvision.models:resnet18' or 'mynets:build_snn'")
    return module, attr


def load_model_spec(spec: str, /, **kwargs: Any) -> nn.Module:
    """Import ``package.module``, call its ``factory(**kwargs)`` and return the network it builds.

    Args:
        spec: ``"package.module:factory"``; ``factory`` may be dotted (``"pkg.mod:Class.build"``).
        **kwargs: passed to the factory (e.g. ``num_classes=10``).

    Returns:
        the ``nn.Module`` the factory returned, unchanged (not moved, not put in evaluation mode).

    Raises:
        ModelSpecError: the spec is malformed, the module is not found or fails to import, the
            factory is missing, not callable, raises, or returns something that is not an
            ``nn.Module``. The message names the part that failed and what to do.
    """
    module_name, attr = parse_model_spec(spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise ModelSpecError(f"model spec {spec!r}: no module named {missing!r}; is it installed, or is its folder "
                                 "on PYTHONPATH (the current folder is not, for the installed console script)?") from exc
        raise ModelSpecError(f"model spec {spec!r}: importing {module_name!r} failed because it needs {missing!r}, "
                             f"which is not installed ({exc}); install it") from exc
    except Exception as exc:  # noqa: BLE001 - any error while running the module's code
        raise ModelSpecError(f"model spec {spec!r}: importing {module_name!r} failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    factory: Any = module
    for i, part in enumerate(attr.split(".")):
        if not hasattr(factory, part):
            where = module_name + "".join("." + p for p in attr.split(".")[:i])
            public = sorted(n for n in dir(factory) if not n.startswith("_") and callable(getattr(factory, n, None)))
            shown = ", ".join(public[:12]) + (", ..." if len(public) > 12 else "")
            raise ModelSpecError(f"model spec {spec!r}: {where!r} has no attribute {part!r}; its callables: "
                                 f"{shown or 'none'}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ModelSpecError(f"model spec {spec!r}: {module_name}.{attr} is a {type(factory).__name__}, not a "
                             "function or class; name the callable that builds the network")
    try:
        model = factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - report which call failed, with the cause chained
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelSpecError(f"model spec {spec!r}: calling {module_name}.{attr}({args}) failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model spec {spec!r}: {module_name}.{attr}(...) returned a {type(model).__name__}, not "
                             "a torch.nn.Module; name a factory that returns the network itself")
    logger.info("loaded %s from %r", type(model).__name__, spec)
    return model
