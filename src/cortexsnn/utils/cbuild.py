"""Building the project's small C kernels with the system compiler (loaded later through ctypes).

The kernels are compiled with ``-march=native``: a binary uses the instructions of the machine that
built it and may die with SIGILL on another (a cluster whose nodes share a home directory, and with it
the cache, but differ in CPU). So a cached binary is keyed by everything it depends on:

* the machine: the CPU architecture, the ``flags`` line of ``/proc/cpuinfo`` and, for a compiler that
  can tell (gcc), what ``-march=native`` resolves to (``-Q --help=target``);
* the compiler: its resolved path and its ``--version``;
* the flags, the libraries and the source.

The key's SHA-256 names the file and is also compiled into the binary (a data symbol,
``cortexsnn_build_key``). Before a cached binary is loaded, its bytes must hold exactly this key;
one that does not (another machine's binary copied or synced in, a damaged or truncated file) is
rebuilt, never loaded, and one that fails to load (``dlopen``) is rebuilt once. Without a compiler
(``$CC`` names one that does not exist, or none is installed) nothing is built or loaded:
:class:`KernelBuildError`, and the callers fall back to their PyTorch paths with one warning.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Callable, Sequence

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import make_readable

__all__ = ["KernelBuildError", "CKernel", "compile_c_library", "load_c_library", "build_key"]

log = logging.getLogger(__name__)

# the key is compiled into every binary behind this prefix, so that a cached file can be checked
# before it is loaded (reading bytes executes nothing)
_KEY_PREFIX = "cortexsnn-build-key:"


class KernelBuildError(CortexSNNError, RuntimeError):
    """A compiled kernel could not be built or loaded."""


def _compiler() -> str:
    """The C compiler: ``$CC`` when set (respected: a ``$CC`` that does not exist means no compiler,
    not another one), else Python's own compiler, else ``gcc`` or ``cc``."""
    explicit = os.environ.get("CC", "").split()
    if explicit:
        found = shutil.which(explicit[0])
        if found is None:
            raise KernelBuildError(f"the C compiler $CC={explicit[0]!r} does not exist; set CC to an installed "
                                   "compiler (e.g. gcc) or unset it")
        return found
    configured = (sysconfig.get_config_var("CC") or "cc").split()[0]
    found = shutil.which(configured) or shutil.which("gcc") or shutil.which("cc")
    if found is None:
        raise KernelBuildError("no C compiler found (tried the CC variable, Python's compiler "
                               f"{configured!r}, gcc, cc); install gcc to build the compiled kernels")
    return found


@functools.lru_cache(maxsize=None)
def _compiler_identity(compiler: str) -> str:
    """The compiler's resolved path and ``--version`` output."""
    try:
        result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise KernelBuildError(f"the C compiler {compiler} cannot be run ({exc}); install gcc or set CC") from exc
    return f"{os.path.realpath(compiler)}\n{result.stdout.strip()}"


def _cpuinfo_flags() -> str:
    """The instruction-set flags of this CPU (``/proc/cpuinfo``; empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):  # x86 / ARM
                    return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return ""


@functools.lru_cache(maxsize=None)
def _native_target(compiler: str, flags: tuple[str, ...]) -> str:
    """What the compiler's target options resolve to with these flags (``-march=native``: the CPU's
    model and every instruction-set extension it enables); empty for a compiler that cannot say."""
    try:
        result = subprocess.run([compiler, *[f for f in flags if f.startswith("-m")], "-Q", "--help=target"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout if result.returncode == 0 else ""


def _machine_features(compiler: str, flags: tuple[str, ...]) -> str:
    """What a binary built with ``flags`` needs from the machine that runs it."""
    return "\n".join((platform.machine(), _cpuinfo_flags(), _native_target(compiler, flags)))


def build_key(source: Path, flags: Sequence[str], libs: Sequence[str] = (), compiler: str | None = None) -> str:
    """The SHA-256 (hex) of everything a binary built from ``source`` depends on: the machine's CPU
    features, the compiler and its version, the flags and libraries, the source."""
    compiler = compiler or _compiler()
    parts = [
        "machine", _machine_features(compiler, tuple(flags)),
        "compiler", _compiler_identity(compiler),
        "flags", " ".join(flags), "libs", " ".join(libs),
        "source", hashlib.sha256(Path(source).read_bytes()).hexdigest(),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def compile_c_library(source: Path, target: Path, flags: Sequence[str], libs: Sequence[str] = (),
                      key: str | None = None) -> None:
    """Compile ``source`` into the shared library ``target``, atomically: concurrent builders
    (e.g. DDP ranks) never see half a file. ``key`` (see :func:`build_key`) is compiled in as the
    string ``cortexsnn_build_key``, which :func:`load_c_library` checks before it loads a cached file."""
    compiler = _compiler()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    stub = None
    try:
        extra = []
        if key is not None:
            fd, stub = tempfile.mkstemp(suffix=".c", dir=target.parent)
            with os.fdopen(fd, "w") as handle:
                handle.write(f'const char cortexsnn_build_key[] = "{_KEY_PREFIX}{key}";\n')
            extra = [stub]
        try:
            result = subprocess.run([compiler, *flags, "-o", tmp, str(source), *extra, *libs], capture_output=True,
                                    text=True)
        except OSError as exc:  # the compiler vanished or cannot be executed
            raise KernelBuildError(f"{compiler} could not be run: {exc}") from exc
        if result.returncode != 0:
            raise KernelBuildError(f"{compiler} failed: {result.stderr.strip()[:2000]}")
        make_readable(tmp, executable=True)  # mkstemp made it 0600; a shared cache needs it readable
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, stub):
            if leftover is not None and os.path.exists(leftover):
                os.unlink(leftover)


def _marked_for(target: Path, key: str) -> bool:
    """Whether the binary ``target`` was built for ``key`` (holds its marker)."""
    try:
        return f"{_KEY_PREFIX}{key}".encode() in target.read_bytes()
    except OSError:
        return False


def load_c_library(source: Path, flags: Sequence[str], name: str, libs: Sequence[str] = ()):
    """Build ``source`` (once per machine, compiler and source: see the module docstring) into the
    cortexsnn cache and load it with ``ctypes``. A cached binary not marked with this build's key,
    or one that fails to load, is rebuilt. Raises :class:`KernelBuildError` when it cannot be
    built or loaded."""
    import ctypes

    from cortexsnn.data.paths import cache_dir

    key = build_key(source, flags, libs)
    target = cache_dir() / "kernels" / f"{name}_{key[:16]}.so"
    if target.is_file() and not _marked_for(target, key):
        log.warning("the cached kernel %s was not built for this machine and compiler (or is damaged); "
                    "rebuilding it", target)
    if not (target.is_file() and _marked_for(target, key)):
        compile_c_library(source, target, flags, libs, key=key)
    try:
        return ctypes.CDLL(str(target))
    except OSError as exc:
        log.warning("the cached kernel %s could not be loaded (%s); rebuilding it", target, exc)
    compile_c_library(source, target, flags, libs, key=key)
    try:
        return ctypes.CDLL(str(target))
    except OSError as exc:
        raise KernelBuildError(f"could not load {target}, even after rebuilding it: {exc}") from exc


class CKernel:
    """A C kernel library built and loaded on first use, once per process and thread-safely.

    Calling it returns the loaded library, or ``None`` where it cannot be built or loaded: then
    one ``RuntimeWarning`` says what is unavailable, why, and what the callers do instead
    (``fallback``), and :attr:`failure` keeps the reason for messages of callers that needed it.

    Args:
        source: the C file.
        flags: compiler flags (part of the cache key).
        name: the library's name in the cache.
        declare: sets the ``argtypes`` / ``restype`` of the library's functions.
        what: what the library is, for the warning (e.g. ``"the fused CPU neuron kernel"``).
        fallback: what happens without it (e.g. ``"using the torch backend"``).
        libs: libraries to link (``("-lm",)``).
    """

    def __init__(self, source: Path, flags: Sequence[str], name: str, declare: Callable[[object], None],
                 what: str, fallback: str, libs: Sequence[str] = ()) -> None:
        self.source, self.flags, self.name, self.libs = Path(source), list(flags), name, tuple(libs)
        self.declare, self.what, self.fallback = declare, what, fallback
        self._lock = threading.Lock()
        self._library = None
        self._failure: str | None = None

    @property
    def failure(self) -> str | None:
        """Why the library could not be built or loaded (``None`` if it was, or was not tried yet)."""
        return self._failure

    def __call__(self):
        if self._library is not None or self._failure is not None:
            return self._library
        with self._lock:
            if self._library is None and self._failure is None:
                try:
                    library = load_c_library(self.source, self.flags, self.name, libs=self.libs)
                    self.declare(library)
                    self._library = library
                except (OSError, KernelBuildError) as exc:
                    self._failure = str(exc)
                    warnings.warn(f"cortexsnn: {self.what} is unavailable ({exc}); {self.fallback}",
                                  RuntimeWarning, stacklevel=3)
        return self._library
