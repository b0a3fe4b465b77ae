"""Model registry in the style of timm: ``create_model(name, **kwargs)``, ``list_models()``.

Every network of the toolkit is registered here, whatever trains it; each entry has a **family**:

* ``"deep"``: gradient-trained deep SNNs of the visual pathway (SEW/Spiking ResNet, LoRaFB-SNet,
  Spiking MobileNet, CORnet): time-major ``[T, B, C, H, W]`` -> ``[T, B, classes]``.
* ``"ann"``: conventional networks (EfficientNet-Lite0, the source of ANN-to-SNN conversion):
  ``[B, C, H, W]`` -> ``[B, classes]``.
* ``"iir"``: the IIR synapse-filter SNNs of Fang et al. (IJCAI 2020), trained by BPTT
  (:mod:`cortexsnn.training.iir`). The classifiers take images ``[B, ...]`` and return spike
  counts ``[B, classes]``; their ``forward_time_major`` is the time-major view.
* ``"plastic"``: the STDP / R-STDP networks of Mozafari et al. (2018, 2019) and their 2024
  variants (:mod:`cortexsnn.plasticity`): images -> first-spike latencies -> decisions; their
  ``forward_time_major`` takes spike trains ``[T, B, C, H, W]``.

Each family lives in its own modules and registers its constructors with :func:`register_model`;
importing :mod:`cortexsnn.models` imports them all. Registered pretrained weights
(:mod:`cortexsnn.models.pretrained`) load with ``create_model(name, pretrained=True)``. The
layouts are tabulated in ``docs/models.md`` ("Time convention").
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar, overload

from torch import nn

from cortexsnn.errors import CortexSNNError

__all__ = [
    "register_model", "create_model", "list_models", "get_model_entry", "ModelEntry", "FAMILIES",
    "UnknownModelError", "UnknownFamilyError", "DuplicateModelError",
]

#: family -> (what it is, input layout, output layout); the defaults of its entries
FAMILIES: dict[str, tuple[str, str, str]] = {
    "deep": ("gradient-trained deep SNNs (surrogate gradients)", "[T, B, C, H, W]", "[T, B, classes]"),
    "ann": ("conventional ANNs (source networks of ANN-to-SNN conversion)", "[B, C, H, W]", "[B, classes]"),
    "iir": ("IIR synapse-filter SNNs of Fang et al. (IJCAI 2020), trained by BPTT", "[B, 1, 28, 28]",
            "spike counts [B, classes]"),
    "plastic": ("STDP / R-STDP networks of Mozafari et al. (2018, 2019)", "[B, 1, 28, 28] images",
                "decisions [B], scores [B, classes] (predict)"),
}

F = TypeVar("F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """A registered network: its name, constructor, family and the layouts of its native call."""

    name: str
    fn: Callable[..., nn.Module]
    family: str
    input_layout: str
    output_layout: str


_REGISTRY: dict[str, ModelEntry] = {}


class UnknownModelError(CortexSNNError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class UnknownFamilyError(CortexSNNError, ValueError):
    """A model family that does not exist (see :data:`FAMILIES`)."""


class DuplicateModelError(CortexSNNError, ValueError):
    """Two different constructors registered under one name."""


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise UnknownFamilyError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


@overload
def register_model(fn: F, *, name: str | None = None, family: str = "deep",
                   input_layout: str | None = None, output_layout: str | None = None) -> F: ...
@overload
def register_model(fn: None = None, *, name: str | None = None, family: str = "deep",
                   input_layout: str | None = None, output_layout: str | None = None) -> Callable[[F], F]: ...


def register_model(fn: Any = None, *, name: str | None = None, family: str = "deep",
                   input_layout: str | None = None, output_layout: str | None = None) -> Any:
    """Register a model constructor; a decorator, bare or with options.

    ``@register_model`` registers ``fn`` under its function name in the ``"deep"`` family;
    ``@register_model(family="iir")`` (optionally ``name=...`` for names that are not identifiers,
    e.g. ``"deepr2024-greedy"``, and ``input_layout`` / ``output_layout`` where a model differs
    from its family's defaults in :data:`FAMILIES`) registers it elsewhere.

    Raises:
        DuplicateModelError: another constructor is registered under the same name.
        UnknownFamilyError: ``family`` is not one of :data:`FAMILIES`.
    """
    _check_family(family)

    def decorate(f: F) -> F:
        key = name or f.__name__
        if key in _REGISTRY and _REGISTRY[key].fn is not f:
            raise DuplicateModelError(f"model {key!r} is registered twice")
        _, default_in, default_out = FAMILIES[family]
        _REGISTRY[key] = ModelEntry(key, f, family, input_layout or default_in, output_layout or default_out)
        return f

    return decorate(fn) if fn is not None else decorate


def list_models(pattern: str | None = None, family: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of the registered models.

    Args:
        pattern: a glob on the names (``"sew_*"``).
        family: keep only this family, or these families (``"iir"``, ``("deep", "ann")``).
    """
    names = sorted(_REGISTRY)
    if family is not None:
        wanted = {_check_family(f) for f in ([family] if isinstance(family, str) else family)}
        names = [n for n in names if _REGISTRY[n].family in wanted]
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def get_model_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of a registered model (family, layouts, constructor)."""
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a registered model; ``kwargs`` go to its constructor (e.g. ``num_classes``, ``neuron``).

    ``pretrained=True`` loads the model's default registered weights, ``pretrained="tag"`` the weights
    of that tag (:mod:`cortexsnn.models.pretrained`; the cfg's ``model_kwargs`` are passed to the
    constructor unless ``kwargs`` override them). The model's ``pretrained_cfg`` attribute is the
    :class:`~cortexsnn.models.pretrained.PretrainedCfg` of the loaded weights, ``None`` for random ones.
    The constructor draws its initial weights from the current torch RNG, so the same seed gives the
    same network whichever function (``create_model``, ``cortexsnn.training.iir.build_model``,
    ``cortexsnn.plasticity.build_model``) is called.
    """
    entry = get_model_entry(name)
    if not isinstance(pretrained, (bool, str)) or pretrained == "":
        raise TypeError(f"pretrained must be True, False or a weight tag, got {pretrained!r}")
    cfg = None
    if pretrained:
        from cortexsnn.models.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(name, None if pretrained is True else pretrained)
        kwargs = {**cfg.model_kwargs, **kwargs}
    model = entry.fn(**kwargs)
    model.pretrained_cfg = None  # type: ignore[assignment]
    if cfg is not None:
        from cortexsnn.models.pretrained import load_pretrained

        load_pretrained(model, cfg)
    return model
