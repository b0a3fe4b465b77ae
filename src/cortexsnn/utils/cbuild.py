"""Building the project's small C kernels with the system compiler (loaded later through ctypes)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Sequence

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import make_readable

__all__ = ["KernelBuildError", "compile_c_library", "load_c_library"]


class KernelBuildError(CortexSNNError, RuntimeError):
    """A compiled kernel could not be built or loaded."""


def _compiler() -> str:
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        compiler = shutil.which("gcc") or shutil.which("cc") or compiler
    return compiler


def compile_c_library(source: Path, target: Path, flags: Sequence[str], libs: Sequence[str] = ()) -> None:
    """Compile ``source`` into the shared library ``target``, atomically: concurrent builders
    (e.g. DDP ranks) never see half a file."""
    compiler = _compiler()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        result = subprocess.run([compiler, *flags, "-o", tmp, str(source), *libs], capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelBuildError(f"{compiler} failed: {result.stderr.strip()[:2000]}")
        make_readable(tmp, executable=True)  # mkstemp made it 0600; a shared cache needs it readable
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_c_library(source: Path, flags: Sequence[str], name: str, libs: Sequence[str] = ()):
    """Build ``source`` (once, cached under the cortexsnn cache by a hash of source and flags) and
    load it with ``ctypes``. Raises :class:`KernelBuildError` when it cannot be built or loaded."""
    import ctypes
    import hashlib

    from cortexsnn.data.paths import cache_dir

    key = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    target = cache_dir() / "kernels" / f"{name}_{key}.so"
    if not target.is_file():
        compile_c_library(source, target, flags, libs)
    try:
        return ctypes.CDLL(str(target))
    except OSError as exc:
        raise KernelBuildError(f"could not load {target}: {exc}") from exc
