"""STDP / R-STDP convolutional networks: ``mozafari2018``, ``deep2024``, ``deepr2024``
(joint and greedy), ``inception2024``, ``majority2024`` and the shallow Gabor network."""
from cortexsnn.plasticity.models.network import Stage, STDPNetwork
from cortexsnn.plasticity.models.zoo import MODEL_NAMES, build_model, scale_rstdp_rates

__all__ = ["STDPNetwork", "Stage", "build_model", "MODEL_NAMES", "scale_rstdp_rates"]
