"""Run folders: one run per folder, locked while it runs, with a manifest that says how it ended.

Every command that writes a run folder (``cortexsnn train``, ``iir train``, ``stdp train`` /
``evaluate``, ``similarity``, ``demo`` / ``benchmark``) enters a :class:`RunFolder` before any
computing::

    with RunFolder(out, "iir train", config=cfg_dict, outputs=("checkpoint_latest.pt", ...),
                   resume=resume, overwrite=overwrite) as folder:
        ...  # compute, write files
        folder.record(out / "results.json")

What it guarantees:

* **Checked first.** The path must not be a file and the folder must be writable; both are checked
  (by creating the lock file) before anything is computed.
* **Lock.** ``run.lock`` holds the pid, host name and start time of the run and an ``flock`` for the
  run's life. A second run on the same folder is refused with :class:`RunFolderLockedError`, which
  names the folder and the other run. A lock left by a dead process on this host (``kill -9``, a
  crash) is stale: it is taken over with a logged warning. A lock of another host is never taken
  over (its process cannot be checked); delete ``run.lock`` by hand once that run is gone.
* **Manifest.** ``run.json`` records the command, a hash of the config, the status (``running``,
  then ``complete``, ``interrupted`` or ``failed``), the files written and the times. A folder
  whose manifest does not say ``complete`` holds an unfinished run; a ``running`` manifest without
  a live lock is a run that was killed.
* **One run per folder.** Starting a run in a folder that holds another run's files (a manifest,
  or one of the command's ``outputs``) is refused with :class:`RunFolderExistsError`, unless the
  run is resumed (``resume=True``, same command) or replaced (``overwrite=True``, which first
  deletes the outputs of the command and the files the old manifest lists).
* **No litter.** Temporary files of :func:`cortexsnn.utils.io.atomic_write` (``.NAME.*.tmp``) are
  removed at the start and on every exit path.

Files are written 0644 (as the umask allows).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Sequence

from cortexsnn.errors import CortexSNNError
from cortexsnn.utils.io import atomic_write_text

__all__ = [
    "RunFolder",
    "RunFolderError",
    "RunFolderLockedError",
    "RunFolderExistsError",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "check_output_folder",
    "config_hash",
    "read_manifest",
    "remove_temporary_files",
]

LOCK_NAME = "run.lock"
MANIFEST_NAME = "run.json"
STATUSES = ("running", "complete", "interrupted", "failed")

_log = logging.getLogger(__name__)


class RunFolderError(CortexSNNError, OSError):
    """A run folder cannot be used: the path is a file, or the folder is not writable."""


class RunFolderLockedError(RunFolderError):
    """Another run holds the folder's lock."""


class RunFolderExistsError(RunFolderError, FileExistsError):
    """The folder holds another run's files and the run is neither resumed nor overwriting them."""


def config_hash(config: Any) -> str | None:
    """A short SHA-256 of a config (mapping of plain values), stable across key order; ``None`` for none."""
    if config is None:
        return None
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_output_folder(path: str | os.PathLike) -> Path:
    """Check, without creating anything, that ``path`` can be a run folder: not a file, and it (or,
    when it does not exist yet, its nearest existing parent) a writable folder.

    Call it before the computing when the folder itself should only be created once the inputs
    are known to be good. Raises :class:`RunFolderError` saying what is wrong; returns ``path``.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"the output folder {folder} is a file; give the path of a folder (new or holding "
                             "this run)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"the output folder {folder} cannot be created: {existing} is a file; choose another "
                             "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == folder else f"cannot be created ({existing} is not writable)"
        raise RunFolderError(f"the output folder {folder} {what}; choose a folder you can write to or change its "
                             "permissions")
    return folder


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest (``run.json``) of a run folder, ``None`` when there is none or it is unreadable."""
    path = Path(folder) / MANIFEST_NAME
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the ``.*.tmp`` files of interrupted atomic writes in ``folder`` and its subfolders.

    Subfolders that are run folders of their own (holding a ``run.json`` or ``run.lock``) are left
    alone. Returns the deleted paths.
    """
    root = Path(folder)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames
                       if not ((here / d / MANIFEST_NAME).exists() or (here / d / LOCK_NAME).exists())]
        for name in filenames:
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    (here / name).unlink()
                    removed.append(here / name)
    return removed


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # a zombie (exited, not yet reaped) counts as dead
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    return True


def _describe(owner: Mapping[str, Any]) -> str:
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {owner.get('started', '?')}"
            + (f" ({owner['command']})" if owner.get("command") else ""))


class RunFolder:
    """A locked run folder with a manifest; use as a context manager (see the module docstring).

    Args:
        path: the run folder (created with its parents when missing).
        command: what runs, e.g. ``"iir train"``; a resumed run must have the same command.
        config: the run's config as plain data; its hash goes into the manifest.
        outputs: names (relative to ``path``; files or folders; glob patterns such as ``depth_*.png``
            allowed) that this command writes. Any of them present marks the folder as holding a run;
            ``overwrite`` deletes them.
        resume: continue the run in the folder (allowed only for the same command).
        overwrite: replace the run in the folder: delete its outputs first.
        interrupts: exception types that mean "interrupted" (resumable) rather than "failed";
            ``KeyboardInterrupt`` always does.
        enabled: ``False`` makes every method a no-op (e.g. the non-zero ranks of a distributed run).
        argument_names: how the messages name the ``resume`` and ``overwrite`` arguments (a command
            line passes its flags, e.g. ``{"resume": "--resume", "overwrite": "--overwrite"}``;
            ``"resume": None`` for a command that cannot resume, whose messages then offer only
            ``overwrite``).

    Raises (on entering):
        RunFolderError: ``path`` is a file, or the folder cannot be created or written.
        RunFolderLockedError: another live run holds the folder.
        RunFolderExistsError: the folder holds another run and neither ``resume`` nor ``overwrite``
            was given (or ``resume`` for a run of another command).
    """

    def __init__(self, path: str | os.PathLike, command: str, config: Any = None, *,
                 outputs: Sequence[str] = (), resume: bool = False, overwrite: bool = False,
                 interrupts: tuple[type[BaseException], ...] = (), enabled: bool = True,
                 argument_names: Mapping[str, str | None] | None = None) -> None:
        if resume and overwrite:
            raise ValueError("resume and overwrite exclude each other: resume continues the run, overwrite replaces it")
        self.path = Path(path).expanduser()
        self.command = command
        self.config_hash = config_hash(config)
        self.outputs = tuple(outputs)
        self.resume = resume
        self.overwrite = overwrite
        self.interrupts = (KeyboardInterrupt, *interrupts)
        self.enabled = enabled
        names: dict[str, str | None] = {"resume": "resume=True", "overwrite": "overwrite=True",
                                        **(argument_names or {})}
        self._resume_arg, self._overwrite_arg = names["resume"], names["overwrite"]
        self._fd: int | None = None
        self._owner: dict[str, Any] = {}
        self._files: list[str] = []
        self._manifest: dict[str, Any] = {}
        self._final_status: str | None = None

    # ------------------------------------------------------------------ public
    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as last written (a copy)."""
        return dict(self._manifest)

    @property
    def overwrite_argument(self) -> str:
        """How messages name the ``overwrite`` argument (e.g. ``--overwrite`` on a command line)."""
        return str(self._overwrite_arg)

    def record(self, *paths: str | os.PathLike) -> None:
        """Note files (or folders) written by the run; they are listed in the manifest."""
        if not self.enabled:
            return
        changed = False
        for p in paths:
            name = self._relative(Path(p))
            if name not in self._files:
                self._files.append(name)
                changed = True
        if changed and self._fd is not None:
            self._write_manifest()

    def mark_interrupted(self) -> None:
        """End with status ``interrupted`` even without an exception (a run that stopped early, to resume)."""
        self._final_status = "interrupted"

    def start(self) -> "RunFolder":
        """Check the folder, take the lock, clean up and write the ``running`` manifest (``__enter__``)."""
        if not self.enabled:
            return self
        self._check_path()
        self._lock()
        try:
            self._check_previous_run()
            removed = remove_temporary_files(self.path)
            if removed:
                _log.warning("removed %d temporary file(s) of an interrupted write in %s: %s", len(removed), self.path,
                             ", ".join(p.name for p in removed[:5]))
            self._write_manifest(status="running")
        except BaseException:
            self._unlock()
            raise
        return self

    def finish(self, status: str, error: str | None = None) -> None:
        """Write the final manifest with ``status``, remove temporary files and release the lock (``__exit__``)."""
        if not self.enabled or self._fd is None:
            return
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        try:
            remove_temporary_files(self.path)
            for name in self.outputs:
                found = (sorted(str(p.relative_to(self.path)) for p in self.path.glob(name))
                         if any(c in name for c in "*?[") else [name] if (self.path / name).exists() else [])
                self._files += [n for n in found if n not in self._files]
            extra = {"ended": _now()}
            if error:
                extra["error"] = error
            self._write_manifest(status=status, **extra)
        finally:
            self._unlock()

    def __enter__(self) -> "RunFolder":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.finish(self._final_status or "complete")
        elif issubclass(exc_type, self.interrupts):
            self.finish("interrupted", error=f"{exc_type.__name__}: {exc}".rstrip(": "))
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}"[:2000])

    # ------------------------------------------------------------------ internals
    def _relative(self, p: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(p.resolve().relative_to(self.path.resolve()))
        return str(p)

    def _check_path(self) -> None:
        check_output_folder(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise RunFolderError(f"the output folder {self.path} cannot be created: a part of its path is a file "
                                 f"({exc.filename}); choose another folder") from None
        except OSError as exc:
            raise RunFolderError(f"the output folder {self.path} cannot be created ({exc.strerror}); "
                                 "choose a folder you can write to") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunFolderError(f"the output folder {self.path} is not writable; choose a folder you can write to "
                                 "or change its permissions")

    def _lock(self) -> None:
        lock = self.path / LOCK_NAME
        for _ in range(10):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise RunFolderError(f"the output folder {self.path} is not writable ({exc.strerror}); choose a "
                                     "folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = self._read_owner(fd)
                os.close(fd)
                raise RunFolderLockedError(
                    f"{self.path} is in use by another run ({_describe(owner)}); wait for it to end or choose another "
                    "folder") from None
            try:  # the file may have been deleted (and recreated) by the run that held it meanwhile
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            owner = self._read_owner(fd)
            if owner:
                self._judge_owner(owner, fd)
            self._fd = fd
            self._write_lock()
            return
        raise RunFolderLockedError(f"{self.path}: could not take the lock {lock} (it keeps changing); another run is "
                                   "starting there, choose another folder")

    def _judge_owner(self, owner: dict[str, Any], fd: int) -> None:
        """Refuse a lock that may be live; warn and go on for a stale one."""
        host = socket.gethostname()
        pid = owner.get("pid")
        if owner.get("host") != host:
            os.close(fd)
            raise RunFolderLockedError(
                f"{self.path} is locked by a run on another host ({_describe(owner)}), which cannot be checked from "
                f"here; if that run has ended, delete {self.path / LOCK_NAME} and start again")
        if isinstance(pid, int) and pid != os.getpid() and _pid_alive(pid):
            os.close(fd)
            raise RunFolderLockedError(
                f"{self.path} is in use by another run ({_describe(owner)}); wait for it to end or choose another "
                "folder")
        _log.warning("%s: taking over the stale lock of a run that is gone (%s)", self.path, _describe(owner))

    @staticmethod
    def _read_owner(fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, 65536)
            owner = json.loads(data.decode()) if data.strip() else {}
        except (OSError, ValueError):
            return {"pid": "?", "host": "?", "started": "? (unreadable lock file)"}
        return owner if isinstance(owner, dict) else {}

    def _write_lock(self) -> None:
        assert self._fd is not None
        self._owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "command": self.command}
        data = (json.dumps(self._owner) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data)
        os.fsync(self._fd)

    def _unlock(self) -> None:
        if self._fd is None:
            return
        lock = self.path / LOCK_NAME
        with contextlib.suppress(OSError):
            if os.fstat(self._fd).st_ino == os.stat(lock).st_ino:
                lock.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _present_outputs(self, previous: Mapping[str, Any] | None) -> list[str]:
        names: list[str] = []
        for name in self.outputs:
            if any(c in name for c in "*?["):
                names += sorted(str(p.relative_to(self.path)) for p in self.path.glob(name))
            else:
                names.append(name)
        if previous:
            names += [n for n in previous.get("files", []) if isinstance(n, str)]
        seen: list[str] = []
        for name in names:
            if name in seen or name in (LOCK_NAME, MANIFEST_NAME):
                continue
            p = self.path / name
            if p.exists() and self.path.resolve() in p.resolve().parents:  # inside the folder, never the folder
                seen.append(name)
        return seen

    def _check_previous_run(self) -> None:
        previous = read_manifest(self.path)
        present = self._present_outputs(previous)
        if not present and not self.resume:
            # nothing of a run here (or only the manifest of one that wrote nothing, e.g. failed at once)
            self._manifest = {}
            return
        if previous is None and not present:
            self._manifest = {}
            return
        if previous is not None and previous.get("status") == "running":
            _log.warning("%s: the previous run (%s) ended without a word (killed?); its status was 'running'",
                         self.path, _describe(previous))
        what = (f"a run of '{previous.get('command')}' (status {previous.get('status')}, started "
                f"{previous.get('started')})" if previous else f"another run's files ({', '.join(present[:6])})")
        if self.resume:
            if previous is not None and previous.get("command") != self.command:
                raise RunFolderExistsError(
                    f"{self.path} holds {what}, not a run of '{self.command}': it cannot be resumed by this command; "
                    "choose another folder")
            self._manifest = dict(previous or {})
            self._files = [n for n in self._manifest.get("files", []) if isinstance(n, str)]
            return
        if not self.overwrite:
            raise RunFolderExistsError(
                f"{self.path} already holds {what}; pass "
                + (f"{self._resume_arg} to continue it, " if self._resume_arg else "")
                + f"{self._overwrite_arg} to replace it (its outputs are deleted first), or choose another folder. "
                "Nothing was changed.")
        for name in present:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.path / MANIFEST_NAME).unlink()
        _log.warning("%s: deleted the outputs of the run that was there (%s) to start anew", self.path,
                     ", ".join(present) or "its manifest")
        self._manifest = {}

    def _write_manifest(self, status: str | None = None, **extra: Any) -> None:
        m = self._manifest
        if status == "running":
            runs = list(m.get("runs", []))
            runs.append({"started": self._owner["started"], "pid": self._owner["pid"], "host": self._owner["host"],
                         "resumed": bool(self.resume and m)})
            m.update({"command": self.command, "config_hash": self.config_hash, "status": "running",
                      "started": m.get("started", self._owner["started"]), "runs": runs,
                      "pid": self._owner["pid"], "host": self._owner["host"]})
            m.pop("ended", None)
            m.pop("error", None)
        elif status is not None:
            m["status"] = status
            if m.get("runs"):
                m["runs"][-1].update({"ended": extra.get("ended"), "status": status})
        m.update(extra)
        m["files"] = list(self._files)
        atomic_write_text(self.path / MANIFEST_NAME, json.dumps(m, indent=1) + "\n")

