"""The conversion's exception."""
from __future__ import annotations

__all__ = ["ConversionError"]


class ConversionError(ValueError):
    """A network, calibration set or option the ANN-to-SNN converter cannot use; the message says why."""
