"""benchmarks/neurons.py's GPU path, exercised without a GPU: the refusal without CUDA, the GPU
workloads at tiny size on the CPU through the same worker code, the equality check's tolerances,
and the CPU path's unchanged output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "neurons.py"
STANDARD_KEYS = {"benchmark", "workload", "ours_s", "reference", "reference_s", "speedup", "ours_peak_mib",
                 "reference_peak_mib"}


def _bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    env.pop("TRITON_INTERPRET", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def device_module():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import _neurons_device

        yield _neurons_device
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_without_a_gpu_is_one_clear_line():
    result = _bench("--device", "cuda")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "CUDA is not available" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow  # three fresh processes that import torch (about 15 s on a quiet 2-core machine)
def test_gpu_workload_runs_tiny_on_the_cpu_through_the_workers():
    result = _bench("--only", "on-linear-lif-500x16x16384", "--tiny", "--rounds", "2",
                    "--impls", "cortexsnn", "snntorch", "spikingjelly_triton")
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = _json_lines(result.stdout)
    assert STANDARD_KEYS <= set(line)
    assert line["workload"] == "on-linear-lif-500x16x16384" and line["dtype"] == "float32"
    assert line["ours_s"] > 0 and line["reference"] == "snntorch" and line["speedup"] > 0
    snntorch = line["others"]["snntorch"]
    # same neuron, same float32 arithmetic on the CPU: identical spikes, gradients to rounding
    assert snntorch["check"].startswith("spikes: 0 of ")
    assert line["others"]["spikingjelly_triton"] == {"error": "needs CUDA"}
    assert "unavailable: needs CUDA" in result.stdout  # its row says why, and the others still ran


def test_equality_check_tolerances(device_module):
    gen = torch.Generator().manual_seed(0)
    spikes = torch.rand(16, 2, 50, generator=gen) < 0.3
    grad = torch.randn(16, 2, 50, generator=gen)
    ours = {"spikes": spikes, "grad": grad}

    ok, note, figures = device_module.compare_with_ours(ours, {"spikes": spikes.clone(), "grad": grad + 1e-6},
                                                        "float32", compare_grad=True)
    assert ok and figures["spikes_differing"] == 0 and figures["grad_max_rel_diff"] < 1e-5, note

    # one flipped spike: 1 of 1,600 (6e-4) is too many in float32, within the 16-bit bound (2e-2);
    # the gradient of that neuron is not compared (its trajectory differs from there on)
    flipped = spikes.clone()
    flipped[3, 1, 7] = ~flipped[3, 1, 7]
    far = grad.clone()
    far[:, 1, 7] += 5.0
    ok, note, figures = device_module.compare_with_ours(ours, {"spikes": flipped, "grad": far}, "float32", True)
    assert not ok and figures["spikes_differing"] == 1 and "differ from cortexsnn" in note
    ok, note, figures = device_module.compare_with_ours(ours, {"spikes": flipped, "grad": far}, "float16", True)
    assert ok and figures["grad_max_rel_diff"] == 0.0, note

    # a gradient off on neurons whose spikes match is caught
    off = grad.clone()
    off[:, 0, 0] *= 1.5
    ok, note, _ = device_module.compare_with_ours(ours, {"spikes": spikes, "grad": off}, "float16", True)
    assert not ok and "gradient" in note
    ok, note, _ = device_module.compare_with_ours(ours, {"spikes": spikes, "grad": off}, "float16", False)
    assert ok and "not compared" in note


def test_tiny_workloads_keep_their_dtype_and_shape(device_module):
    for name, workload in device_module.DEVICE_WORKLOADS.items():
        tiny = workload.shrunk()
        assert tiny.dtype == workload.dtype and tiny.linear == workload.linear, name
        assert tiny.steps * tiny.batch * tiny.n <= 6 * 2 * 96


@pytest.mark.slow
def test_cpu_path_output_is_unchanged():
    result = _bench("--quick", "--no-memory", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CPU" in result.stdout.splitlines()[0]
    (line,) = _json_lines(result.stdout)
    assert set(line) == STANDARD_KEYS and line["workload"] == "neuron-lif-16x16x512"
    assert line["reference"] in ("snntorch", "spikingjelly", "spikingjelly_simple", "norse")


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks how the script degrades where CUDA is absent")
def test_gpu_script_degrades_part_by_part(tmp_path):
    """run_gpu_checks.sh without a GPU: each part reports its own exit status, the files come back."""
    out, wheels = tmp_path / "out", tmp_path / "no-wheels"
    wheels.mkdir()
    env = dict(os.environ, OUT=str(out), PY=sys.executable, GPU_CHECKS_WHEELS=str(wheels),
               GPU_CHECKS_PARTS="env neurons-a train_step", GPU_CHECKS_BUDGET="200")
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu" / "run_gpu_checks.sh")], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = (out / "summary.txt").read_text()
    assert "neurons-a: exit 2," in summary  # the one-line refusal, not a crash of the script
    assert "train_step:" in summary
    assert "CUDA is not available" in (out / "neurons.txt").read_text()
    assert "torch" in (out / "env.txt").read_text() and "no wheels in" in (out / "env.txt").read_text()
    assert (out / "results.jsonl").read_text() == ""
    assert len(list(out.iterdir())) <= 8  # what the device tool brings back
