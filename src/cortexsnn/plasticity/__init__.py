"""Plasticity-trained convolutional SNNs (STDP / R-STDP, SpykeTorch semantics), batched.

The networks are registered in :mod:`cortexsnn.models` (family ``"plastic"``); the latency coding
they use lives with the other encoders in :mod:`cortexsnn.encoding`.
"""
from cortexsnn.plasticity.filters import S1C1, FilterBank, dog_kernel, gabor_kernel, local_normalization, mnist_dog_bank
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.models import MODEL_NAMES, STDPNetwork, build_model
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule

__all__ = [
    "S1C1",
    "FilterBank", "dog_kernel", "gabor_kernel", "local_normalization", "mnist_dog_bank",
    "SpikeConv", "STDPNetwork", "build_model", "MODEL_NAMES", "STDPRule", "RSTDPRule",
]
