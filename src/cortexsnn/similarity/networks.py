"""Networks to score, by name: what ``cortexsnn demo`` / ``cortexsnn benchmark`` score.

:func:`scoring_model` turns a name into a :class:`~cortexsnn.similarity.suite.ScoringModel`:

* a zoo model, a torchvision classifier or ``package.module:factory``
  (:func:`cortexsnn.models.resolve.build_network`), with a checkpoint, registered weights or
  untrained (said so in the record);
* ``NAME_snn``: the spiking conversion (:func:`cortexsnn.conversion.convert`) of the trained ANN
  ``NAME``, run for ``conversion_steps`` steps. Its thresholds are calibrated on natural images that
  are **not the ones scored**: for each stimulus set, on the run's other stimulus sets (e.g. the
  78 Algonauts and 118 Allen scenes when the 92 images are scored), or on a folder the user names,
  or on :func:`~cortexsnn.conversion.calibration.default_calibration_images` when the run has no
  other set.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from cortexsnn.errors import CortexSNNError

from .benchmarks import StimulusSet
from .suite import ScoringModel

__all__ = ["SNN_SUFFIX", "scoring_model", "pick_layers"]

log = logging.getLogger(__name__)

#: A model name ending in this is the spiking conversion of the model it names.
SNN_SUFFIX = "_snn"
#: At most this many calibration images per conversion (drawn evenly from the run's other sets).
CALIBRATION_IMAGES = 96


def pick_layers(layers: list[str], k: int | None) -> list[str]:
    """``k`` evenly spaced layers, first and last included (all when ``k`` is None or large)."""
    if k is None or k >= len(layers):
        return list(layers)
    if k < 1:
        raise CortexSNNError(f"the number of layers to score must be >= 1, got {k}")
    if k == 1:
        return [layers[-1]]
    idx = sorted({round(i * (len(layers) - 1) / (k - 1)) for i in range(k)})
    return [layers[i] for i in idx]


def _normalization(record: dict[str, Any]) -> Any:
    norm = record.get("normalization")
    return (tuple(norm[0]), tuple(norm[1])) if norm else "imagenet"


def scoring_model(name: str, *, checkpoint: str | Path | None = None, weights: str | None = None, seed: int = 0,
                  time_steps: int = 4, conversion_steps: int = 32, image_size: int = 224,
                  calibration_dir: str | Path | None = None, calibration_sets: Sequence[StimulusSet] = (),
                  data_dir: str | Path | None = None, max_layers: int | None = None) -> ScoringModel:
    """The :class:`ScoringModel` for ``name`` (see the module docstring).

    Args:
        time_steps: T of the zoo's spiking networks (each image repeated T steps).
        conversion_steps: T of a converted network.
        calibration_sets: the run's stimulus sets (a converted network is calibrated, for each set
            it is scored on, on the others).
        max_layers: score only this many evenly spaced layers (quick checks).
    """
    from cortexsnn.models import list_models
    from cortexsnn.models.resolve import build_network

    from .features import default_layers

    for what, v in (("time_steps", time_steps), ("conversion_steps", conversion_steps), ("image_size", image_size)):
        if v < 1:
            raise CortexSNNError(f"{what} must be >= 1, got {v}")
    if name.endswith(SNN_SUFFIX) and name not in list_models():
        return _converted(name, name.removesuffix(SNN_SUFFIX), checkpoint, weights, seed, conversion_steps, image_size,
                          calibration_dir, calibration_sets, data_dir, max_layers)
    module, mode, record = build_network(name, checkpoint=checkpoint, weights=weights, seed=seed)
    layers = pick_layers(default_layers(module, mode), max_layers)  # type: ignore[arg-type]
    return ScoringModel(name, module, mode, time_steps, _normalization(record), image_size, record, layers)


def _converted(name: str, base: str, checkpoint: Any, weights: str | None, seed: int, steps: int, size: int,
               calibration_dir: Any, calibration_sets: Sequence[StimulusSet], data_dir: Any,
               max_layers: int | None) -> ScoringModel:
    from cortexsnn.conversion import ConversionConfig, convert
    from cortexsnn.models.resolve import build_network

    from .features import default_layers

    ann, mode, record = build_network(base, checkpoint=checkpoint, weights=weights, seed=seed)
    if mode != "cnn":
        raise CortexSNNError(f"{name}: only ANNs convert to SNNs; {base} is already spiking")
    if not record["trained"]:
        log.warning("converting an UNTRAINED %s (random weights)", base)
    normalization = _normalization(record)
    calibrations: dict[str, str] = {}
    cache: dict[str, nn.Module] = {}

    def for_stimuli(scored: StimulusSet) -> nn.Module:
        images, described = _calibration(scored, calibration_sets, calibration_dir, data_dir, size, normalization)
        if described not in cache:
            with torch.no_grad():
                cache.clear()  # one converted network in memory at a time
                cache[described] = convert(ann, images, ConversionConfig())
        calibrations[scored.name] = described
        return cache[described]

    layers = pick_layers(default_layers(ann, "cnn"), max_layers)
    info = {**record, "weights": f"spiking conversion of {base} ({record['weights']})", "converted_from": base,
            "conversion": {"config": ConversionConfig().__dict__, "time_steps": steps, "calibration": calibrations}}
    return ScoringModel(name, for_stimuli, "static", steps, normalization, size, info, layers)


def _calibration(scored: StimulusSet, sets: Sequence[StimulusSet], folder: Any, data_dir: Any, size: int,
                 normalization: Any) -> tuple[torch.Tensor, str]:
    from cortexsnn.conversion.calibration import default_calibration_images

    if folder is not None:
        return default_calibration_images(size, normalization, folder)
    others = [s for s in sets if s.name != scored.name]
    if others:
        images = torch.cat([s.stimuli(size, normalization).tensor for s in others])
        if len(images) > CALIBRATION_IMAGES:  # evenly over the sets: enough samples per channel, half the time
            images = images[torch.linspace(0, len(images) - 1, CALIBRATION_IMAGES).round().long()]
        return images, (f"{len(images)} images drawn evenly from {', '.join(s.name for s in others)} (not the scored "
                        f"{scored.name})")
    return default_calibration_images(size, normalization, None, data_dir, use_algonauts=scored.name != "algonauts78")
