"""One way to get a network by name: the zoo, torchvision, or ``package.module:factory``.

:func:`build_network` is what every command that takes a model name uses (``demo``, ``benchmark``,
``convert``): a zoo model (:func:`cortexsnn.models.create_model`, registered weights by tag), a
torchvision classifier by its builder name, or any importable factory. Weights come from a
checkpoint file (:func:`cortexsnn.models.load_weights`), a registered tag, or nowhere: then the
network is **untrained** (random initialisation, seeded), and the returned record says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cortexsnn.errors import CortexSNNError

__all__ = ["build_network", "torchvision_builder", "IMAGE_FAMILIES"]

#: the registry's families that :func:`build_network` serves (image classifiers taking ``num_classes``)
IMAGE_FAMILIES = ("deep", "ann")


def torchvision_builder(name: str) -> Callable[..., nn.Module] | None:
    """torchvision's builder function ``name`` (``resnet18``, ``vgg11_bn``, ...), or ``None``."""
    import torchvision.models as tvm

    builder = getattr(tvm, name, None)
    if builder is None or not callable(builder) or name.startswith("_") or name[:1].isupper():
        return None
    return builder


def build_network(name: str, *, checkpoint: str | Path | None = None, weights: str | None = None, seed: int = 0,
                  num_classes: int = 1000) -> tuple[nn.Module, str, dict[str, Any]]:
    """``(network in eval mode, feature mode, weights record)``.

    Args:
        name: a zoo model of the ``"deep"`` or ``"ann"`` family, a torchvision builder name, or ``package.module:factory``.
        checkpoint: a weights file for the network.
        weights: a registered pretrained tag (zoo models; see ``cortexsnn models --pretrained``).
        seed: torch seed of the random initialisation.

    The feature mode is the zoo model's ``feature_mode`` (``"static"`` for the spiking networks,
    ``"cnn"`` for ANNs such as EfficientNet-Lite0) and ``"cnn"`` for torchvision and factories.
    The record holds ``trained`` (bool), ``weights`` (where they came from) and, for registered
    weights, the ``normalization`` (mean, std) they expect.
    """
    from cortexsnn.models import create_model, get_model_entry, list_models, load_weights

    if weights and checkpoint:
        raise CortexSNNError(f"{name}: give registered weights or a checkpoint file, not both")
    torch.manual_seed(seed)
    if ":" in name:
        from cortexsnn.models.external import load_model_spec

        if weights:
            raise CortexSNNError(f"{name}: registered weights are for zoo models; give a checkpoint file")
        model = load_model_spec(name)
        mode = getattr(model, "feature_mode", "cnn")
    elif name in list_models() and get_model_entry(name).family not in IMAGE_FAMILIES:
        entry = get_model_entry(name)
        raise CortexSNNError(f"{name} is a model of the {entry.family!r} family ({entry.input_layout} -> "
                             f"{entry.output_layout}); this command takes image classifiers of the families "
                             f"{', '.join(IMAGE_FAMILIES)}; build it with cortexsnn.models.create_model")
    elif name in list_models():
        model = create_model(name, num_classes=num_classes, pretrained=weights or False)
        mode = getattr(model, "feature_mode", "static")
    else:
        builder = torchvision_builder(name)
        if builder is None:
            zoo = ", ".join(list_models(family=IMAGE_FAMILIES))
            raise CortexSNNError(f"unknown model {name!r}: neither in the zoo ({zoo}), nor in torchvision, "
                                 "nor a package.module:factory")
        if weights:
            raise CortexSNNError(f"{name}: registered weights are for zoo models; give a checkpoint file")
        model, mode = builder(weights=None, num_classes=num_classes), "cnn"
    cfg = getattr(model, "pretrained_cfg", None)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CortexSNNError(f"{name}: checkpoint {path} does not exist")
        load_weights(model, path)
        record: dict[str, Any] = {"trained": True, "weights": str(path)}
    elif cfg is not None:
        record = {"trained": True, "weights": f"{cfg.model}.{cfg.tag}: {cfg.how_made} ({cfg.citation})",
                  "normalization": [list(cfg.mean), list(cfg.std)]}
    else:
        record = {"trained": False, "weights": f"UNTRAINED: random initialisation (torch seed {seed}); no checkpoint "
                                               "or registered weights given"}
    return model.eval(), mode, record
