"""The conversion's exception."""
from __future__ import annotations

from cortexsnn.errors import CortexSNNError

__all__ = ["ConversionError"]


class ConversionError(CortexSNNError, ValueError):
    """A network, calibration set or option the ANN-to-SNN converter cannot use; the message says why."""
