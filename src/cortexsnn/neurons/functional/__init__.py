"""Pure neuron and synapse dynamics: one function per model, state in, state out."""
from .lif import *  # noqa: F401,F403
from .iir import *  # noqa: F401,F403
from .generic import *  # noqa: F401,F403
