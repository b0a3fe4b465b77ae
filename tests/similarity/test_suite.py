"""score_suite: the silent-stimulus rule, held-out layer choice, ceilings, paired comparisons and
the result files, on synthetic benchmarks with a known answer (no data folder needed)."""
from __future__ import annotations

import csv
import json
import math
import os
import stat

import numpy as np
import pytest
import torch
from torch import nn

from cortexsnn.data.neural import RDMSet
from cortexsnn.errors import CortexSNNError
from cortexsnn.similarity import compare_rdms, rdm
from cortexsnn.similarity.benchmarks import Benchmark, Ceiling, StimulusSet, leave_one_subject_out
from cortexsnn.similarity.bootstrap import bootstrap_rdm_cis
from cortexsnn.similarity.features import zscore_global
from cortexsnn.similarity.suite import (
    ScoringModel,
    SuiteOptions,
    SuiteResult,
    _holm,
    _sign_flip_p,
    layer_rdm,
    score_suite,
)

N = 40  # stimuli


# ----------------------------------------------------------------------------- the silent-stimulus rule
def test_layer_rdm_equals_the_plain_rdm_when_every_stimulus_responds():
    x = torch.randn(12, 50, generator=torch.Generator().manual_seed(1))
    ref = rdm(zscore_global(x.clone()), "correlation", precision="float32").numpy()
    got, record = layer_rdm(x.clone())
    np.testing.assert_array_equal(got, ref)  # bit-identical: the published per-layer scores do not move
    assert record["silent_stimuli"] == 0 and "silent" not in record


def test_silent_stimuli_are_uncorrelated_with_responsive_ones_and_identical_to_each_other():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 30, generator=g)
    x[1] = 0.0  # no spike
    x[4] = 0.0
    got, record = layer_rdm(x.clone())
    active = [0, 2, 3, 5]
    sub = rdm(zscore_global(x.clone())[active], "correlation", precision="float32").numpy()
    np.testing.assert_array_equal(got[np.ix_(active, active)], sub)
    assert got[1, 4] == got[4, 1] == 0.0 and got[1, 1] == 0.0
    assert all(got[1, j] == 1.0 and got[j, 4] == 1.0 for j in active)
    assert record["silent_stimuli"] == 2 and record["active_fraction"] == pytest.approx(float((x != 0).float().mean()))


def test_layers_without_information_are_silent_not_scored():
    same = torch.ones(5, 8)
    r, record = layer_rdm(same)
    assert r is None and "identical" in record["silent"]
    two = torch.zeros(5, 8)
    two[0, 1] = two[3, 2] = 1.0
    r, record = layer_rdm(two)
    assert r is None and "only 2 of 5" in record["silent"]
    with pytest.raises(CortexSNNError, match="NaN"):
        layer_rdm(torch.full((4, 3), math.nan))


# ----------------------------------------------------------------------------- small statistics
def test_exact_sign_flip_p_and_holm_by_hand():
    # all four differences positive: only the all-plus and all-minus flips reach |mean| = 1: p = 2 / 16
    assert _sign_flip_p(np.ones(4), 0) == pytest.approx(2 / 16)
    assert _sign_flip_p(np.array([1.0, -1.0, 1.0, -1.0]), 0) == 1.0
    assert _holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert _holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


# ----------------------------------------------------------------------------- a synthetic benchmark
class _Fixed(nn.Module):
    """A 'network' whose layers return fixed per-stimulus features (the stimulus index is its pixel value)."""

    def __init__(self, features: list[torch.Tensor]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Lookup(f) for f in features)
        self.scoring_layers = [f"layers.{i}" for i in range(len(features))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x).sum(dim=1) for layer in self.layers], dim=1)


class _Lookup(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]


def _benchmark(signal: np.ndarray, subjects: int, seed: int, ceiling: bool = True) -> Benchmark:
    rng = np.random.default_rng(seed)
    rdms = np.stack([rdm(signal + 0.8 * rng.standard_normal(signal.shape), "correlation").numpy()
                     for _ in range(subjects)])
    ids = [f"s{i:02d}" for i in range(N)]
    images = np.repeat(np.arange(N, dtype=np.uint8)[:, None, None], 4, axis=1).repeat(4, axis=2)  # value = index
    stim = StimulusSet("synthetic", ids, "synthetic index images", images=images)
    target = RDMSet(rdms, [f"subject {k}" for k in range(subjects)], {}, np.array(ids),
                    {"subject": [str(k) for k in range(subjects)]})
    c = leave_one_subject_out(target) if ceiling and subjects > 1 else None
    return Benchmark(f"synthetic.{subjects}", "simulated", "X", "synthetic", stim, target, c, "test", "synthetic")


def _model(name: str, features: list[torch.Tensor]) -> ScoringModel:
    return ScoringModel(name, _Fixed(features).eval(), "cnn", normalization="none", image_size=None,  # type: ignore[arg-type]
                        info={"trained": True, "weights": "fixed features"})


def _synthetic_layers() -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``(signal, good, bad)``: the "good" model's middle layer carries the signal the targets are
    made of; every other layer is noise."""
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(N, 20, generator=g)
    good = [torch.randn(N, 30, generator=g), signal @ torch.randn(20, 60, generator=g), torch.randn(N, 25, generator=g)]
    bad = [torch.randn(N, 30, generator=g) for _ in range(3)]
    return signal, good, bad


@pytest.fixture(scope="module")
def suite_result() -> tuple[SuiteResult, list[Benchmark]]:
    signal, good, bad = _synthetic_layers()
    silent = [torch.zeros(N, 10), torch.ones(N, 10)]
    benchmarks = [_benchmark(signal.numpy(), 6, 1), _benchmark(signal.numpy(), 1, 2)]
    models = [_model("good", good), lambda: _model("bad", bad), _model("silent", silent)]
    result = score_suite(models, benchmarks, SuiteOptions(n_boot=300, n_splits=10, seed=0))
    return result, benchmarks


def test_the_informative_layer_is_chosen_out_of_sample_and_beats_noise(suite_result):
    result, benchmarks = suite_result
    for b in benchmarks:
        good, bad = result.summary("good", b.name), result.summary("bad", b.name)
        assert good["selected_layer"] == "layers.1" and good["selection_frequency"] == 1.0
        assert good["n_folds"] == 20 and good["score"] > 0.3 and abs(bad["score"]) < 0.1
        assert good["in_sample_best_layer"] == "layers.1"
        assert result.summary("silent", b.name)["status"].startswith("silent")
        comp = result.scores[b.name]["comparisons"]
        assert [(c["model_a"], c["model_b"]) for c in comp] == [("good", "bad")]
        c = comp[0]
        assert c["difference"] > 0.3 and c["stimuli"]["ci_low"] > 0 and c["stimuli"]["p"] < 0.01
        assert c["stimuli"]["p_holm"] >= c["stimuli"]["p"]
        assert ("subjects" in c) == (b.n_subjects >= 3)
        if "subjects" in c:
            assert c["subjects"]["n_subjects"] == 6 and c["subjects"]["p"] == pytest.approx(2 / 64)


def test_per_layer_scores_and_intervals_equal_the_direct_computation(suite_result):
    result, benchmarks = suite_result
    b = benchmarks[0]
    rows = [r for r in result.scores[b.name]["layers"] if r["model"] == "good"]
    assert [r["layer"] for r in rows] == ["layers.0", "layers.1", "layers.2"]
    good_rdm = result.rdms[f"{b.name}|good"]  # the selected layer's RDM
    direct = [compare_rdms(good_rdm, s) for s in b.target.rdms]
    assert rows[1]["per_subject"] == pytest.approx(direct, abs=0) and rows[1]["score"] == pytest.approx(np.mean(direct))
    # the interval is the batched bootstrap's, with the run's seed, on the stack of every scored layer
    _, good, bad = _synthetic_layers()
    stack = np.stack([layer_rdm(f.clone())[0] for f in good + bad])
    lo, hi = bootstrap_rdm_cis(stack, [b.target.rdms], n_boot=300, random_state=0)
    assert rows[1]["ci_low"] == lo[1, 0] and rows[1]["ci_high"] == hi[1, 0]
    assert rows[1]["ci_low"] <= rows[1]["score"] <= rows[1]["ci_high"]


def test_normalised_scores_use_the_stated_denominator_and_raw_scores_stay_raw(suite_result):
    result, benchmarks = suite_result
    with_ceiling, single = benchmarks
    c = with_ceiling.ceiling
    assert c.kind == "leave-one-subject-out" and c.lower < c.upper and c.denominator == c.upper
    s = result.summary("good", with_ceiling.name)
    assert s["normalized_score"] == pytest.approx(s["score"] / c.upper)
    assert "normalized_score" not in result.summary("good", single.name) and single.ceiling is None
    desc = result.benchmarks[with_ceiling.name]["ceiling"]
    assert set(desc) >= {"kind", "lower", "upper", "denominator", "method"} and "mean" not in desc
    split = Ceiling("split-half", "m", estimate=0.5, spread=0.1)
    assert split.denominator == 0.5 and Ceiling.from_dict(split.to_dict()) == split


def test_firing_rates_and_depth_are_recorded_for_every_layer(suite_result):
    result, _ = suite_result
    layers = result.layers["silent"]["synthetic"]
    assert layers["layers.0"]["mean_output"] == 0.0 and layers["layers.0"]["silent_stimuli"] == N
    assert layers["layers.1"]["mean_output"] == 1.0 and "identical" in layers["layers.1"]["silent"]
    assert [v["depth"] for v in result.layers["good"]["synthetic"].values()] == [0.0, 0.5, 1.0]


def test_result_files_round_trip_and_load_as_tables(suite_result, tmp_path):
    result, benchmarks = suite_result
    written = result.write(tmp_path)
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o044 == 0o044  # readable by others
    back = SuiteResult.read(tmp_path)
    assert back.to_dict() == json.loads(json.dumps(result.to_dict()))
    assert set(back.rdms) == set(result.rdms)
    with open(tmp_path / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    # 2 benchmarks x (3 + 3 scored layers + the silent model's 2 layers, flagged, not scored)
    assert len(rows) == len(result.tidy()) == 2 * 8
    assert set(rows[0]) >= {"model", "benchmark", "species", "area", "layer", "depth", "metric", "score", "ci_low",
                            "ci_high", "normalized_score", "mean_output", "silent_stimuli", "flag"}
    assert sum(r["selected_layer"] == "True" for r in rows) == 4  # one per scored model and benchmark
    flagged = [r for r in rows if r["flag"]]
    assert [(r["model"], r["layer"]) for r in flagged] == [("silent", "layers.0"), ("silent", "layers.1")] * 2
    assert all(r["flag"].startswith("silent: ") and r["score"] == "" for r in flagged)  # NaN: an empty cell
    assert "identical responses" in flagged[1]["flag"] and not any(r["flag"] for r in rows if r["model"] != "silent")
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(tmp_path / "scores.csv")
    assert frame.groupby("benchmark").size().tolist() == [8, 8]


def test_the_report_reads_the_result(suite_result, tmp_path):
    from cortexsnn.similarity.report import write_suite_report

    result, _ = suite_result
    page = write_suite_report(result, tmp_path).read_text()
    for needle in ("Paired comparisons", "held-out", "leave-one-subject-out", "raw (no ceiling)", "silent",
                   "in-sample best"):
        assert needle in page, needle
    import re

    for name in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / name).is_file()


def test_bad_options_and_names_are_refused():
    with pytest.raises(CortexSNNError, match="n_boot"):
        SuiteOptions(n_boot=10)
    with pytest.raises(CortexSNNError, match="n_splits"):
        SuiteOptions(n_splits=0)
    with pytest.raises(CortexSNNError, match="no benchmark"):
        score_suite([], [])
    g = torch.Generator().manual_seed(0)
    b = _benchmark(torch.randn(N, 5, generator=g).numpy(), 2, 0)
    twice = [_model("m", [torch.randn(N, 4, generator=g)]), _model("m", [torch.randn(N, 4, generator=g)])]
    with pytest.raises(CortexSNNError, match="distinct name"):
        score_suite(twice, [b], SuiteOptions(n_boot=100, n_splits=1))
    empty = _model("e", [torch.randn(N, 4, generator=g)])
    empty.layers = []
    with pytest.raises(CortexSNNError, match="empty"):
        score_suite([empty], [b], SuiteOptions(n_boot=100, n_splits=1))
    ids = list(b.stimuli.ids)
    ids[0], ids[1] = ids[1], ids[0]
    with pytest.raises(CortexSNNError, match="stimulus ids differ"):
        Benchmark("x", "s", "a", "d", StimulusSet("synthetic", ids, "d", images=b.stimuli.images), b.target, None, "r", "d")


def test_an_rdm_given_where_responses_are_expected_is_refused_with_what_to_do():
    """The trap of the issue: a 92 x 92 RDM read as 92 stimuli x 92 neurons."""
    from cortexsnn.similarity import RDMGivenAsResponsesError, rsa, score_features

    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 30, generator=g)
    target = rdm(torch.randn(12, 8, generator=g), "correlation").numpy()
    with pytest.raises(RDMGivenAsResponsesError, match="an RDM, not responses.*RDMSet.from_matrices"):
        rsa(x, target)
    with pytest.raises(RDMGivenAsResponsesError):
        score_features(iter([("a", x)]), {"monkey IT": target}, metric="rsa", ceiling="none")
    wrapped = score_features(iter([("a", x)]), {"monkey IT": RDMSet.from_matrices([target], ["m"])}, metric="rsa",
                             ceiling="none")
    assert wrapped.scores[0, 0] == pytest.approx(compare_rdms(rdm(x, "correlation"), target))
    square_responses = torch.randn(12, 12, generator=g)  # square but not an RDM: accepted
    assert math.isfinite(rsa(x, square_responses))


class _Late(nn.Module):
    """A time-major 'spiking network': its one layer is silent at step 0 and gives fixed per-stimulus
    features from step 1 on."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.layer = _TimeLookup(table)
        self.scoring_layers = ["layer"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class _TimeLookup(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, C, H, W] -> [T, B, F]
        out = self.table[(x[:, :, 0, 0, 0] * 255).round().long()]
        out[0] = 0.0
        return out


def _late_snn(time_steps: int) -> tuple[ScoringModel, Benchmark]:
    g = torch.Generator().manual_seed(3)
    signal = torch.randn(N, 20, generator=g)
    b = _benchmark(signal.numpy(), 4, 5)
    snn = ScoringModel("late", _Late(signal @ torch.randn(20, 50, generator=g)), "static", time_steps=time_steps,
                       normalization="none", image_size=None, info={"trained": True})  # type: ignore[arg-type]
    return snn, b


def test_time_course_of_a_spiking_model_per_step_and_cumulative():
    snn, b = _late_snn(4)
    result = score_suite([snn], [b], SuiteOptions(n_boot=100, n_splits=2, time_course=True))
    course = result.scores[b.name]["time_course"]["late"]
    average = result.scores[b.name]["layers"][0]["score"]
    assert course["layer"] == "layer" and len(course["per_step"]) == len(course["cumulative"]) == 4
    assert math.isnan(course["per_step"][0]) and math.isnan(course["cumulative"][0])  # step 0: no response
    assert course["per_step"][1:] == pytest.approx([average] * 3, abs=1e-6)
    assert course["cumulative"][1:] == pytest.approx([average] * 3, abs=1e-6)
    back = json.loads(json.dumps(result.to_dict()))["scores"][b.name]["time_course"]["late"]
    assert back["per_step"][0] is None


def test_the_report_draws_the_time_course(tmp_path):
    from cortexsnn.similarity.report import write_suite_report

    snn, b = _late_snn(3)
    result = score_suite([snn], [b], SuiteOptions(n_boot=100, n_splits=1, time_course=True))
    page = write_suite_report(result, tmp_path).read_text()
    assert "Over time" in page and (tmp_path / "suite_time.png").is_file()


_TORCHRUN_SCRIPT = '''
import json, sys
import numpy as np, torch
from torch import nn
from cortexsnn.data.neural import RDMSet
from cortexsnn.similarity import rdm
from cortexsnn.similarity.benchmarks import Benchmark, StimulusSet, leave_one_subject_out
from cortexsnn.similarity.suite import ScoringModel, SuiteOptions, score_suite

class Lookup(nn.Module):
    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table)
    def forward(self, x):
        return self.table[(x[:, 0, 0, 0] * 255).round().long()]

class Net(nn.Module):
    def __init__(self, tables):
        super().__init__()
        self.layers = nn.ModuleList(Lookup(t) for t in tables)
        self.scoring_layers = [f"layers.{i}" for i in range(len(tables))]
    def forward(self, x):
        return torch.stack([m(x).sum(1) for m in self.layers], 1)

g = torch.Generator().manual_seed(0)
n = 30
signal = torch.randn(n, 10, generator=g)
rng = np.random.default_rng(1)
rdms = np.stack([rdm(signal.numpy() + rng.standard_normal((n, 10)), "correlation").numpy() for _ in range(4)])
ids = [f"s{i}" for i in range(n)]
images = np.repeat(np.arange(n, dtype=np.uint8)[:, None, None], 4, axis=1).repeat(4, axis=2)
target = RDMSet(rdms, list("abcd"), {}, np.array(ids), {"subject": list("abcd")})
bench = Benchmark("toy.X", "simulated", "X", "toy", StimulusSet("toy", ids, "toy", images=images), target,
                  leave_one_subject_out(target), "test", "toy")
tables = [[signal @ torch.randn(10, 20, generator=g), torch.randn(n, 15, generator=g)] for _ in range(3)]
models = [(lambda k=k: ScoringModel(f"m{k}", Net(tables[k]), "cnn", normalization="none", image_size=None,
                                    info={"trained": True})) for k in range(3)]
result = score_suite(models, [bench], SuiteOptions(n_boot=100, n_splits=2, device="cpu"))
if torch.distributed.is_initialized():
    rank = torch.distributed.get_rank()
    torch.distributed.destroy_process_group()
else:
    rank = 0
if rank == 0:
    d = result.to_dict()
    for m in d["models"].values():
        m.pop("seconds")
    open(sys.argv[1], "w").write(json.dumps(d["scores"]) + "\\n" + json.dumps(d["models"]))
'''


@pytest.mark.slow
def test_torchrun_shares_the_models_between_ranks_and_gives_the_same_result(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "suite_run.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    subprocess.run([sys.executable, str(script), str(tmp_path / "single.json")], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                    str(script), str(tmp_path / "two.json")], check=True, env={**env, "OMP_NUM_THREADS": "1"},
                   timeout=300)
    assert (tmp_path / "two.json").read_text() == (tmp_path / "single.json").read_text()


def test_folds_with_an_undefined_score_are_counted_not_averaged():
    g = torch.Generator().manual_seed(4)
    signal = torch.randn(N, 20, generator=g)
    b = _benchmark(signal.numpy(), 3, 6)
    sparse = torch.zeros(N, 30)
    sparse[:3] = torch.rand(3, 30, generator=g)  # 37 of 40 stimuli silent: some halves hold <= 1 responsive one
    result = score_suite([_model("sparse", [sparse])], [b], SuiteOptions(n_boot=100, n_splits=20, seed=1))
    s = result.summary("sparse", b.name)
    assert s["status"] == "scored" and s["n_folds_undefined"] > 0 and s["n_folds"] + s["n_folds_undefined"] == 40
    assert math.isfinite(s["score"]) and math.isfinite(s["score_sd"])
