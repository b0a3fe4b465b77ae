"""Plasticity-trained convolutional SNNs (STDP / R-STDP, SpykeTorch semantics), batched."""
from cortexsnn.plasticity.coding import S1C1, intensity_to_latency, latencies_to_waves, waves_to_latencies
from cortexsnn.plasticity.filters import FilterBank, dog_kernel, gabor_kernel, local_normalization, mnist_dog_bank
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.models import MODEL_NAMES, STDPNetwork, build_model
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule

__all__ = [
    "S1C1", "intensity_to_latency", "latencies_to_waves", "waves_to_latencies",
    "FilterBank", "dog_kernel", "gabor_kernel", "local_normalization", "mnist_dog_bank",
    "SpikeConv", "STDPNetwork", "build_model", "MODEL_NAMES", "STDPRule", "RSTDPRule",
]
