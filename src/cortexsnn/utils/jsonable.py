"""Plain JSON values and provenance for the results files of every command (scoring and training)."""
from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["json_safe", "versions"]


def json_safe(v: Any) -> Any:
    """``v`` as plain JSON values: NumPy arrays / scalars and tensors as lists and numbers, paths and
    devices as strings, non-finite floats as ``None`` (JSON has no NaN)."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.ndarray, torch.Tensor)):
        return json_safe(v.tolist())
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, torch.device):
        return str(v)
    return v


def versions() -> dict[str, str]:
    """Versions of the software that produced a result."""
    import scipy
    import sklearn

    from cortexsnn import __version__

    return {"cortexsnn": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "python": platform.python_version()}
