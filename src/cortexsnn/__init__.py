"""cortexsnn: spiking neural networks as models of the brain."""
from __future__ import annotations

__version__ = "0.1.0"
