"""The compiled-kernel cache: keyed by what a binary depends on, never loading another machine's build.

The kernels are built with ``-march=native``; a binary built on one node of a cluster and loaded on
another with fewer instruction-set extensions dies with SIGILL. These tests build a small real C
library (the mechanism is the same for every kernel of the package) under fake CPU-feature keys.
"""
from __future__ import annotations

import warnings

import pytest
import torch

import cortexsnn.utils.cbuild as cbuild
from cortexsnn.utils.cbuild import KernelBuildError, build_key, load_c_library

FLAGS = ["-O1", "-march=native", "-shared", "-fPIC"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "kernels"


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "probe.c"
    path.write_text("int cbuild_probe(int x) { return 3 * x + 1; }\n")
    return path


def _on_cpu(monkeypatch, features: str) -> None:
    """Pretend to run on a machine whose CPU features are ``features``."""
    monkeypatch.setattr(cbuild, "_machine_features", lambda compiler, flags: features)


def _binaries(cache):
    return sorted(p.name for p in cache.glob("probe_*.so"))


def test_the_key_depends_on_the_machine_compiler_flags_and_source(source, monkeypatch, tmp_path):
    _on_cpu(monkeypatch, "avx2 fma sse4_2")
    key = build_key(source, FLAGS)
    assert build_key(source, FLAGS) == key
    assert build_key(source, [*FLAGS, "-DX"]) != key
    _on_cpu(monkeypatch, "avx2 avx512f fma sse4_2")
    assert build_key(source, FLAGS) != key
    _on_cpu(monkeypatch, "avx2 fma sse4_2")
    monkeypatch.setattr(cbuild, "_compiler_identity", lambda compiler: "/usr/bin/gcc\ngcc (GCC) 99.0")
    assert build_key(source, FLAGS) != key
    monkeypatch.undo()
    other = tmp_path / "other.c"
    other.write_text(source.read_text() + "/* changed */\n")
    _on_cpu(monkeypatch, "avx2 fma sse4_2")
    assert build_key(other, FLAGS) != key


def test_the_real_key_sees_what_march_native_resolves_to(source):
    """On this machine: the CPU's flags and gcc's resolved target options enter the key."""
    compiler = cbuild._compiler()
    features = cbuild._machine_features(compiler, tuple(FLAGS))
    assert cbuild._cpuinfo_flags() in features
    if "gcc" in cbuild._compiler_identity(compiler).lower():
        assert "-march=" in features  # e.g. "-march=  znver3"


def test_two_cpus_get_two_cache_entries(cache, source, monkeypatch):
    _on_cpu(monkeypatch, "cpu-a: avx2")
    lib_a = load_c_library(source, FLAGS, "probe")
    _on_cpu(monkeypatch, "cpu-b: avx2 avx512f")
    lib_b = load_c_library(source, FLAGS, "probe")
    assert lib_a.cbuild_probe(2) == 7 and lib_b.cbuild_probe(2) == 7
    names = _binaries(cache)
    assert len(names) == 2, names
    for features in ("cpu-a: avx2", "cpu-b: avx2 avx512f"):  # each binary carries its own key
        _on_cpu(monkeypatch, features)
        key = build_key(source, FLAGS)
        assert cbuild._marked_for(cache / f"probe_{key[:16]}.so", key)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "marker-only", "empty"])
def test_a_damaged_cached_binary_is_rebuilt(cache, source, monkeypatch, damage, caplog):
    _on_cpu(monkeypatch, "cpu-a")
    key = build_key(source, FLAGS)
    target = cache / f"probe_{key[:16]}.so"
    cbuild.compile_c_library(source, target, FLAGS, key=key)  # built, not loaded (a loaded file is mapped)
    good = target.read_bytes()
    marker = f"{cbuild._KEY_PREFIX}{key}".encode()
    damaged = {"garbage": b"\x7fELF" + b"\0" * 64, "truncated": good[: len(good) // 3], "empty": b"",
               # the right key, but not a loadable library: dlopen fails, the file is rebuilt
               "marker-only": b"\x7fELF" + marker}[damage]
    target.write_bytes(damaged)
    lib = load_c_library(source, FLAGS, "probe")
    assert lib.cbuild_probe(5) == 16
    assert target.read_bytes() != damaged and cbuild._marked_for(target, key)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)


def test_another_machines_binary_is_never_loaded(cache, source, monkeypatch):
    """A binary built for another CPU found under this machine's name (a synced or copied cache) is
    rebuilt: its embedded key is not this machine's."""
    _on_cpu(monkeypatch, "other node: avx512f avx512bw")
    foreign_key = build_key(source, FLAGS)
    foreign = cache / "foreign.so"
    cbuild.compile_c_library(source, foreign, FLAGS, key=foreign_key)
    _on_cpu(monkeypatch, "this node: avx2")
    key = build_key(source, FLAGS)
    target = cache / f"probe_{key[:16]}.so"
    target.write_bytes(foreign.read_bytes())
    assert not cbuild._marked_for(target, key)
    import ctypes

    loaded, real_cdll = [], ctypes.CDLL

    def spy(path, *args, **kwargs):
        loaded.append((str(path), cbuild._marked_for(cache / path.split("/")[-1], key)))
        return real_cdll(path, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    lib = load_c_library(source, FLAGS, "probe")
    assert lib.cbuild_probe(0) == 1
    assert loaded and all(marked for _, marked in loaded)  # only ever this machine's build was opened
    assert cbuild._marked_for(target, key) and not cbuild._marked_for(target, foreign_key)


def test_a_missing_compiler_is_reported(cache, source, monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/bin/cc")
    with pytest.raises(KernelBuildError, match="CC='/nonexistent/bin/cc' does not exist"):
        load_c_library(source, FLAGS, "probe")
    assert _binaries(cache) == []


def test_no_compiler_falls_back_to_torch_with_one_warning(tmp_path, monkeypatch):
    """The LIF and rate-IF kernels without a compiler: one warning each, the torch paths' results."""
    import cortexsnn.neurons.functional.rate_if as rate_if
    import cortexsnn.neurons.kernels as kernels
    from cortexsnn.neurons.functional import lif_multistep

    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.delenv("CORTEXSNN_NEURON_BACKEND", raising=False)
    for kernel in (kernels.cpu_kernel, rate_if._cpu_kernel):  # forget the libraries loaded so far
        monkeypatch.setattr(kernel, "_library", None)
        monkeypatch.setattr(kernel, "_failure", None)
    x = (torch.randn(5, 4, 30, dtype=torch.float64) + 0.5).requires_grad_()
    theta = torch.ones(4, 30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = []
        for _ in range(3):
            s, v = lif_multistep(x)
            (grad,) = torch.autograd.grad(s.sum() + v.sum(), x)
            results.append((s, v, grad))
            rate_if.rate_if_multistep(x.detach().float(), theta / 2, torch.zeros(4, 30), theta)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([m for m in messages if "neuron kernel" in m]) == 1, messages
    assert len([m for m in messages if "rate-IF" in m]) == 1, messages
    assert len(messages) == 2 and all("no-such-compiler" in m for m in messages), messages
    s_ref, v_ref = lif_multistep(x, backend="torch")
    (grad_ref,) = torch.autograd.grad(s_ref.sum() + v_ref.sum(), x)
    for s, v, grad in results:
        assert torch.equal(s, s_ref) and torch.equal(v, v_ref) and torch.equal(grad, grad_ref)
    with pytest.raises(KernelBuildError, match="could not be built"):
        lif_multistep(x, backend="cpu")
    assert not list((tmp_path / "empty-cache").glob("**/*.so"))


def test_ckernel_builds_once_and_warns_once(tmp_path, monkeypatch):
    """`CKernel`: one build and one `declare` however often it is called; without a compiler,
    `None` every time, one warning naming what is lost and the fallback, and the reason kept."""
    from cortexsnn.utils.cbuild import CKernel

    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "probe.c"
    source.write_text("int probe(void) { return 7; }\n")
    declared = []
    kernel = CKernel(source, FLAGS, "probe", declared.append, "the probe kernel", "probing by hand")
    assert kernel() is kernel() and len(declared) == 1 and kernel.failure is None
    assert kernel().probe() == 7

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    missing = CKernel(source, FLAGS, "probe2", declared.append, "the probe kernel", "probing by hand")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert missing() is None and missing() is None
    assert len(caught) == 1 and "the probe kernel is unavailable" in str(caught[0].message)
    assert "probing by hand" in str(caught[0].message) and "no-such-compiler" in missing.failure
    assert len(declared) == 1
