"""Spiking neurons and synapse filters.

* :mod:`~cortexsnn.neurons.surrogate`: surrogate gradients (ATan, Sigmoid, FastSigmoid, Gaussian,
  Triangle).
* :mod:`~cortexsnn.neurons.functional`: the pure dynamics, one function per model.
* :mod:`~cortexsnn.neurons.modules`: stateful layers (IF, LIF, PLIF, and :class:`GenericNeuron`
  for a neuron model given by its charge, fire and reset functions), multi-step ``[T, B, ...]`` or
  single-step.
* :mod:`~cortexsnn.neurons.iir`: the IIR synapse filters and reset-trace neuron of Fang et al. 2020.
* :func:`reset` puts every neuron of a network back to its initial state.
"""
from .surrogate import ATan, FastSigmoid, Gaussian, Sigmoid, Surrogate, Triangle, get_surrogate, heaviside  # noqa: F401
from .base import MemoryModule, reset, set_step_mode  # noqa: F401
from .modules import BaseNode, GenericNeuron, IFNode, LIFNode, PLIFNode  # noqa: F401
from .functional.generic import NeuronDefinitionError  # noqa: F401
from . import functional  # noqa: F401
from .iir import DualExpPSP, FirstOrderPSP, ResetTraceNeuron  # noqa: F401
