from .iir import DualExpPSP, FirstOrderPSP, ResetTraceNeuron  # noqa: F401
