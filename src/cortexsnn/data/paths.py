"""Where data and caches live: ``CORTEXSNN_DATA`` and ``CORTEXSNN_CACHE``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "cache_dir"]


def data_dir() -> Path:
    """The data directory: ``$CORTEXSNN_DATA``, else ``~/.cache/cortexsnn/data``."""
    env = os.environ.get("CORTEXSNN_DATA")
    return Path(env).expanduser() if env else cache_dir() / "data"


def cache_dir() -> Path:
    """The cache directory: ``$CORTEXSNN_CACHE``, else ``$XDG_CACHE_HOME/cortexsnn``."""
    env = os.environ.get("CORTEXSNN_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cortexsnn"
