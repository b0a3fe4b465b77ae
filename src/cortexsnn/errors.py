"""The toolkit's exception base class.

Every error the toolkit raises on purpose derives from :class:`CortexSNNError`, so a caller can catch
them all with one clause. Each class also keeps the builtin base it had before (``KeyError`` for an
unknown model, ``RuntimeError`` for unreadable weights, ``ValueError`` for a bad config, ...), so code
that caught those keeps working.
"""
from __future__ import annotations

__all__ = ["CortexSNNError", "PathError", "InvalidArgumentError", "InvalidTypeError"]


class CortexSNNError(Exception):
    """Base class of the errors raised by cortexsnn; the message says what was wrong and what to do."""


class PathError(CortexSNNError, FileNotFoundError):
    """A file or folder that was given does not exist, or is a file where a folder is expected (or the reverse)."""


class InvalidArgumentError(CortexSNNError, ValueError):
    """An argument or setting outside its range (``T = 0``, a negative memory budget, ``n_boot = 0``, ...)."""


class InvalidTypeError(CortexSNNError, TypeError):
    """An argument of the wrong type or dtype (integer images where normalised floats are expected, ...)."""
