"""Run folders: lock, stale locks, manifest statuses, one run per folder, temporary files, bad paths."""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cortexsnn.errors import CortexSNNError
from cortexsnn.training.logging import RunLogger
from cortexsnn.utils.io import atomic_write_text
from cortexsnn.utils.runfolder import (
    LOCK_NAME,
    MANIFEST_NAME,
    RunFolder,
    RunFolderError,
    RunFolderExistsError,
    RunFolderLockedError,
    check_output_folder,
    read_manifest,
)

SRC = Path(__file__).resolve().parents[2] / "src"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_complete_run_leaves_a_manifest_and_no_lock(tmp_path):
    with RunFolder(tmp_path / "run", "demo", {"a": 1}, outputs=("results.json",)) as folder:
        assert (tmp_path / "run" / LOCK_NAME).is_file()
        assert read_manifest(tmp_path / "run")["status"] == "running"
        atomic_write_text(tmp_path / "run" / "results.json", "{}")
        folder.record(tmp_path / "run" / "results.json")
    manifest = read_manifest(tmp_path / "run")
    assert manifest["status"] == "complete" and manifest["command"] == "demo" and manifest["files"] == ["results.json"]
    assert manifest["config_hash"] and manifest["started"] and manifest["ended"]
    assert manifest["pid"] == os.getpid() and manifest["host"] == socket.gethostname()
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    assert stat.S_IMODE((tmp_path / "run" / MANIFEST_NAME).stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_a_second_run_on_the_same_folder_is_refused_with_the_other_run(tmp_path):
    with RunFolder(tmp_path, "iir train"):
        with pytest.raises(RunFolderLockedError) as info:
            RunFolder(tmp_path, "iir train", resume=True).start()
    message = str(info.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert "started 20" in message and isinstance(info.value, CortexSNNError)


def test_a_run_in_another_process_is_refused(tmp_path):
    code = ("import sys, time; from cortexsnn.utils.runfolder import RunFolder\n"
            f"with RunFolder({str(tmp_path)!r}, 'train'):\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderLockedError, match=f"pid {child.pid}"):
            RunFolder(tmp_path, "train", resume=True).start()
    finally:
        child.kill()
        child.wait()
    # killed (as kill -9): its lock is stale now and taken over; the manifest still said 'running'
    assert read_manifest(tmp_path)["status"] == "running"
    with RunFolder(tmp_path, "train", resume=True):
        pass
    assert read_manifest(tmp_path)["status"] == "complete"


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    owner = {"pid": _dead_pid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(owner))
    with caplog.at_level(logging.WARNING, logger="cortexsnn.utils.runfolder"):
        with RunFolder(tmp_path, "train"):
            assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text and str(owner["pid"]) in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_of_a_live_process_or_another_host_is_refused(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                      "started": "then"}))
        with pytest.raises(RunFolderLockedError, match=f"pid {sleeper.pid}"):
            RunFolder(tmp_path, "train").start()
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "then"}))
    with pytest.raises(RunFolderLockedError, match=f"another host.*delete {tmp_path / LOCK_NAME}"):
        RunFolder(tmp_path, "train").start()


@pytest.mark.parametrize("error,status", [(KeyboardInterrupt, "interrupted"), (RuntimeError, "failed"),
                                          (TimeoutError, "interrupted")])
def test_the_manifest_says_how_the_run_ended(tmp_path, error, status):
    with pytest.raises(error):
        with RunFolder(tmp_path, "train", interrupts=(TimeoutError,)):
            raise error("stopped here")
    manifest = read_manifest(tmp_path)
    assert manifest["status"] == status and "stopped here" in manifest["error"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_mark_interrupted_without_an_exception(tmp_path):
    with RunFolder(tmp_path, "train") as folder:
        folder.mark_interrupted()
    assert read_manifest(tmp_path)["status"] == "interrupted"


def test_temporary_files_are_removed_at_start_and_on_every_exit(tmp_path):
    (tmp_path / ".checkpoint_latest.pt.abc123.tmp").write_bytes(b"x" * 100)
    nested = tmp_path / "figures"
    nested.mkdir()
    (nested / ".a.png.x.tmp").write_bytes(b"x")
    other_run = tmp_path / "sub"
    other_run.mkdir()
    (other_run / MANIFEST_NAME).write_text("{}")
    (other_run / ".theirs.tmp").write_bytes(b"x")  # another run folder's: left alone
    with pytest.raises(RuntimeError):
        with RunFolder(tmp_path, "demo", resume=True):
            assert not (tmp_path / ".checkpoint_latest.pt.abc123.tmp").exists()
            assert not (nested / ".a.png.x.tmp").exists()
            (tmp_path / ".results.json.def.tmp").write_text("half")  # a write cut short
            raise RuntimeError("killed while writing")
    assert not (tmp_path / ".results.json.def.tmp").exists()
    assert (other_run / ".theirs.tmp").exists()


def test_a_folder_with_another_run_is_refused_unless_resume_or_overwrite(tmp_path):
    outputs = ("metrics.csv", "results.json", "tensorboard")
    with RunFolder(tmp_path, "iir train", outputs=outputs):
        (tmp_path / "metrics.csv").write_text("step,split\n1,train\n")
        (tmp_path / "tensorboard").mkdir()
        (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderExistsError, match="resume=True.*overwrite=True") as info:
        RunFolder(tmp_path, "iir train", outputs=outputs).start()
    assert "nothing was changed" in str(info.value).lower() and (tmp_path / "metrics.csv").exists()
    with pytest.raises(RunFolderExistsError, match="cannot be resumed by this command"):
        RunFolder(tmp_path, "train", outputs=outputs, resume=True).start()
    with RunFolder(tmp_path, "iir train", outputs=outputs, resume=True) as folder:
        assert len(folder.manifest["runs"]) == 2 and folder.manifest["runs"][1]["resumed"]
    with RunFolder(tmp_path, "iir train", outputs=outputs, overwrite=True,
                   argument_names={"overwrite": "--overwrite"}):
        assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "tensorboard").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not an output of the run: kept
    assert len(read_manifest(tmp_path)["runs"]) == 1
    outside = tmp_path.parent / f"{tmp_path.name}_outside.txt"
    outside.write_text("not in the folder")
    with RunFolder(tmp_path, "iir train", resume=True) as folder:
        folder.record(tmp_path, tmp_path / "..", outside)  # never deleted by an overwrite
    with RunFolder(tmp_path, "iir train", overwrite=True):
        pass
    assert (tmp_path / "notes.txt").exists() and outside.exists()


def test_files_of_a_run_without_manifest_count_and_flags_are_named(tmp_path):
    (tmp_path / "checkpoint_latest.pt").write_bytes(b"old")
    with pytest.raises(RunFolderExistsError, match="--resume.*--overwrite") as info:
        RunFolder(tmp_path, "train", outputs=("checkpoint_latest.pt",),
                  argument_names={"resume": "--resume", "overwrite": "--overwrite"}).start()
    assert "checkpoint_latest.pt" in str(info.value)
    with pytest.raises(ValueError, match="exclude each other"):
        RunFolder(tmp_path, "train", resume=True, overwrite=True)


def test_a_file_or_an_unwritable_folder_is_refused_before_anything(tmp_path, monkeypatch):
    file = tmp_path / "results"
    file.write_text("not a folder")
    for path in (file, file / "run"):
        with pytest.raises(RunFolderError, match="is a file"):
            check_output_folder(path)
        with pytest.raises(RunFolderError, match="is a file"):
            RunFolder(path, "demo").start()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: pretend the permission bits hold
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and not str(p).startswith(str(locked)))
    try:
        for path in (locked, locked / "new"):
            with pytest.raises(RunFolderError, match="writ"):
                check_output_folder(path)
            with pytest.raises(RunFolderError, match="writ"):
                RunFolder(path, "demo").start()
    finally:
        locked.chmod(0o700)
    assert not (locked / "new").exists()


def test_disabled_folder_does_nothing(tmp_path):
    with RunFolder(tmp_path / "rank1", "train", enabled=False) as folder:
        folder.record(tmp_path / "x")
    assert not (tmp_path / "rank1").exists()


def test_run_logger_keep_rows_cuts_rows_after_a_checkpoint(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as logger:
        for step in range(1, 6):
            logger.log(step, "train", loss=float(step))
        assert logger.rows == 5
    with RunLogger(tmp_path, tensorboard=False, keep_rows=3) as logger:
        assert logger.rows == 3
        logger.log(4, "train", loss=4.0)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,split,loss" and [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3", "4"]


def test_lock_file_holds_pid_host_and_start(tmp_path):
    with RunFolder(tmp_path, "train"):
        owner = json.loads((tmp_path / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert time.strptime(owner["started"][:19], "%Y-%m-%dT%H:%M:%S")
        assert stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode) == 0o644 & ~_umask()
