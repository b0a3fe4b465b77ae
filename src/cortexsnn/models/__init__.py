"""The model zoo: ``create_model(name, pretrained=False, **kwargs)``, ``list_models()``, ``list_pretrained()``.

Deep SNNs of the visual pathway (SEW-ResNet, Spiking ResNet, LoRaFB-SNet, ...) are multi-step on
``[T, B, C, H, W]``; the IIR synapse-filter networks of Fang et al. (IJCAI 2020) live beside them, and EfficientNet-Lite0, an ANN on
``[B, C, H, W]`` (the source network of ANN-to-SNN conversion). See
``docs/models.md``.
"""
from .registry import UnknownModelError, create_model, list_models, register_model  # noqa: F401
from . import cornet, efficientnet_lite, lorafb, sew_resnet, spiking_mobilenet  # noqa: F401  (register the families)
from .checkpoints import (  # noqa: F401
    CheckpointLayoutError,
    load_safetensors,
    load_weights,
    read_checkpoint,
    save_safetensors,
)
from .layers import make_neuron, record_layers  # noqa: F401
from .pretrained import (  # noqa: F401
    PretrainedCfg,
    PretrainedWeightsError,
    UnknownPretrainedError,
    WeightsChecksumError,
    WeightsUnavailableError,
    fetch_pretrained,
    get_pretrained_cfg,
    list_pretrained,
    load_pretrained,
)
