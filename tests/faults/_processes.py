"""Helpers of the fault tests: the CLI as a real process, a fault injected through ``CORTEXSNN_FAULT``
(:mod:`cortexsnn.utils.faults`), and what a run folder holds afterwards."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cortexsnn.utils.faults import ENV as FAULT_ENV


def cli(*args: Any) -> list[str]:
    return [sys.executable, "-m", "cortexsnn.cli.main", *map(str, args)]


def env(fault: str | None = None) -> dict[str, str]:
    """The test's environment on one thread, with ``fault`` (``POINT@N:SIGNAL``) injected, or none."""
    out = {**os.environ, "OMP_NUM_THREADS": "1"}
    out.pop(FAULT_ENV, None)
    if fault:
        out[FAULT_ENV] = fault
    return out


def default_sigint() -> None:
    """Give a child the default SIGINT action (``preexec_fn``): a shell starts background jobs with
    SIGINT ignored, and Python then never raises ``KeyboardInterrupt``, so a test run in the
    background would see no interrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args: list[Any], cwd: Path, fault: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI to its end (or its injected fault); returns the finished process (text output)."""
    return subprocess.run(cli(*args), env=env(fault), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=default_sigint)


def killed(done: subprocess.CompletedProcess) -> bool:
    return done.returncode == -signal.SIGKILL


def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run.json").read_text())


def rows(folder: Path, name: str = "metrics.csv") -> list[dict[str, str]]:
    """The rows of a run's CSV log, less the wall-clock columns (which no two runs share)."""
    with open(folder / name) as f:
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in csv.DictReader(f)]


def temporary(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (``.NAME.*.tmp``) anywhere in ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True, map_location="cpu")


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Bit-identical nested records (tensors with ``torch.equal``, floats with ``==``); keys or entries
    named ``*seconds*`` (wall-clock times) are left out."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        keys_a = {k for k in a if "seconds" not in str(k)}
        keys_b = {k for k in b if "seconds" not in str(k)}
        assert keys_a == keys_b, f"{where}: keys {sorted(map(str, keys_a ^ keys_b))} differ"
        for k in keys_a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def wait_stopped(process: subprocess.Popen, timeout: float = 300.0) -> None:
    """Wait until ``process`` is stopped (``SIGSTOP`` from an injected ``STOP`` fault)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before it reached its fault point")
        with open(f"/proc/{process.pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[-1].split()[0] == "T":
                return
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the run did not reach its fault point within {timeout} s")
        time.sleep(0.05)


def refused_while_another_runs(args: list[Any], cwd: Path, folder: Path) -> None:
    """Start the run of ``args`` frozen at its first step (holding ``folder``), start the same run there
    again: it must be refused (exit 2, one line naming the folder and the first run's pid); then let
    the first run go on: it must finish and leave a complete folder."""
    first = subprocess.Popen(cli(*args), env=env("step@1:STOP"), cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        wait_stopped(first)
        second = run(args, cwd)
        assert second.returncode == 2, second.stderr
        assert "in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
        assert str(folder) in second.stderr and "Traceback" not in second.stderr
        assert manifest(folder)["status"] == "running" and len(manifest(folder)["runs"]) == 1
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert manifest(folder)["status"] == "complete" and len(manifest(folder)["runs"]) == 1
    assert not temporary(folder)
