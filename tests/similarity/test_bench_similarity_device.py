"""benchmarks/similarity.py's GPU mode, exercised without a GPU: the refusal without CUDA and the
device code path itself run with the CPU as the device (same functions, tiny matrices)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
STANDARD_KEYS = {"benchmark", "workload", "ours_s", "reference", "reference_s", "speedup", "ours_peak_mib",
                 "reference_peak_mib"}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import similarity

    monkeypatch.setattr(similarity, "QUICK", {"static": (48, 1000, 100), "movie": (40, 800, 60),
                                              "movie-spikes": (40, 800, 60)})
    return similarity


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_without_a_gpu_is_one_clear_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "similarity.py"), "--device", "cuda"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "CUDA is not available" in lines[0], result.stderr


def test_device_mode_runs_and_matches_the_references(bench, capsys):
    bench.device_main(argparse.Namespace(device="cpu", quick=True, reps=1, threads=1,
                                         workloads="rsa,cka,regression,tsrsa"))
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    # rsa, cka, tsrsa: cuda, cuda-f32, cuda-resident; regression (float64 only): cuda, cuda-resident
    assert len(lines) == 3 + 3 + 2 + 3
    assert "!!" not in out
    for line in lines:
        assert STANDARD_KEYS <= set(line), line
        assert line["reference"] == "cpu" and line["ours_s"] > 0 and line["reference_s"] > 0
        assert line["ours_abs_err_vs_reference"] <= 1e-6, line
    assert {line["workload"].split()[0] for line in lines} == {"rsa", "cka", "regression", "tsrsa"}
