"""The model zoo: ``create_model(name, pretrained=False, **kwargs)``, ``list_models(family=...)``, ``list_pretrained()``.

One registry for every network of the toolkit, each with a family (:data:`FAMILIES`): deep SNNs of
the visual pathway (SEW-ResNet, Spiking ResNet, LoRaFB-SNet, ...; ``"deep"``, time-major on
``[T, B, C, H, W]``), EfficientNet-Lite0 (``"ann"``, on ``[B, C, H, W]``, the source network of
ANN-to-SNN conversion), the IIR synapse-filter networks of Fang et al. (IJCAI 2020; ``"iir"``) and
the STDP / R-STDP networks of Mozafari et al. (2018, 2019; ``"plastic"``). See ``docs/models.md``
for each family's input and output layout and its time-major call.
"""
from .registry import (  # noqa: F401
    FAMILIES,
    DuplicateModelError,
    ModelEntry,
    UnknownFamilyError,
    UnknownModelError,
    create_model,
    get_model_entry,
    list_models,
    register_model,
)
from . import cornet, efficientnet_lite, lorafb, sew_resnet, spiking_mobilenet  # noqa: F401  (register the families)
from . import iir_conv, iir_memory, iir_mlp  # noqa: F401  (the "iir" family)
import cortexsnn.plasticity.models.zoo  # noqa: F401,E402  (the "plastic" family)
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
