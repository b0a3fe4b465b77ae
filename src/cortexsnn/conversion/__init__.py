"""ANN-to-SNN conversion: a trained CNN becomes a multi-step spiking network of integrate-and-fire neurons.

``snn = convert(ann, calibration_images)`` then ``rate_readout(snn(x_seq))``; a recurrent time-major
ANN (``lorafb_cnet18``) is unrolled over K steps first (:func:`unroll`); see
:mod:`cortexsnn.conversion.convert` for the method and ``docs/conversion.md`` for measured fidelity.
"""
from cortexsnn.conversion.convert import (  # noqa: F401
    ConversionConfig,
    activation_statistics,
    build_snn,
    calibrate_bias,
    convert,
    set_thresholds,
)
from cortexsnn.conversion.errors import ConversionError  # noqa: F401
from cortexsnn.conversion.fidelity import FidelityResult, measure_fidelity  # noqa: F401
from cortexsnn.conversion.io import load_converted, read_converted_metadata, save_converted  # noqa: F401
from cortexsnn.conversion.modules import GatedMaxPool, Probe, RateIFNeuron  # noqa: F401
from cortexsnn.conversion.network import ConvertedSNN, rate_readout  # noqa: F401
from cortexsnn.conversion.unrolling import Unrolled, is_time_major, register_unroller, unroll  # noqa: F401

__all__ = [
    "ConversionConfig", "ConversionError", "ConvertedSNN", "FidelityResult", "GatedMaxPool", "Probe", "RateIFNeuron",
    "activation_statistics", "build_snn", "calibrate_bias", "convert", "load_converted", "measure_fidelity",
    "rate_readout", "read_converted_metadata", "save_converted", "set_thresholds", "Unrolled", "is_time_major",
    "register_unroller", "unroll",
]
