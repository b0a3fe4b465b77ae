"""Atomic file writing: write to a temporary name beside the target, fsync, then rename.

A reader never sees a half-written file, and an interrupted write leaves any previous version
of the file intact. Files are made readable by others as the umask allows (0644 under the usual
umask 022), as a plain ``open`` would: ``mkstemp`` alone would leave them 0600.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from cortexsnn.utils.faults import fault_point

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "make_readable", "readable_mode"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), readable_mode())
            os.fsync(handle.fileno())
        fault_point(f"write:{target.name}")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# read once, at import: os.umask can only be read by setting it, which is not thread-safe
_UMASK = _read_umask()


def readable_mode(executable: bool = False) -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the umask (``0o644`` under umask 022);
    ``executable``: what a compiler gives its output, ``0o777`` less the umask (``0o755``)."""
    return (0o777 if executable else 0o666) & ~_UMASK


def make_readable(path: str | os.PathLike, executable: bool = False) -> Path:
    """Give a file this process wrote through a temporary file (``mkstemp``, ``NamedTemporaryFile``:
    mode 0600, e.g. a ``pooch`` download) the mode a plain ``open()`` would have: :func:`readable_mode`."""
    os.chmod(path, readable_mode(executable))
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)
