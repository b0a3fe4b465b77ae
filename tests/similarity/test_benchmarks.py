"""The named benchmarks: targets with descriptors, ceilings as what they are, and clear errors for
missing data. RDMSet descriptors and averaging by descriptor."""
from __future__ import annotations

import numpy as np
import pytest

from cortexsnn.data.neural import RDMSet, load_kriegeskorte92
from cortexsnn.errors import CortexSNNError
from cortexsnn.similarity import rdm_set_ceiling, spearman_brown
from cortexsnn.similarity.benchmarks import BenchmarkDataMissing, list_benchmarks, load_benchmarks, split_half_cells


def test_rdm_set_descriptors_and_average_by():
    rng = np.random.default_rng(0)
    m = rng.random((4, 5, 5))
    m = m + m.transpose(0, 2, 1)
    m[:, range(5), range(5)] = 0
    s = RDMSet(m, ["a", "b", "c", "d"], descriptors={"subject": ["x", "x", "y", "y"], "session": [1, 2, 1, 2],
                                                      "area": ["IT"] * 4})
    avg = s.average_by("subject")
    assert avg.descriptors == {"subject": ["x", "y"], "area": ["IT", "IT"]}  # session varies within a group: dropped
    np.testing.assert_array_equal(avg.rdms[0], m[:2].mean(axis=0))
    assert s.select([3]).descriptors["session"] == [2]
    assert s.to_rsatoolbox().rdm_descriptors["subject"] == ["x", "x", "y", "y"]
    with pytest.raises(KeyError, match="no descriptor 'run'"):
        s.descriptor("run")
    with pytest.raises(ValueError, match="descriptor 'subject' has 2 values for 4 RDMs"):
        RDMSet(m, ["a", "b", "c", "d"], descriptors={"subject": ["x", "y"]})


def test_the_92_image_subjects_come_from_descriptors(shared_data):
    k = load_kriegeskorte92(shared_data / "kriegeskorte92")
    assert k.brain.descriptor("subject") == ["BE", "BE", "KO", "KO", "SN", "SN", "TI", "TI"]
    assert k.brain.descriptor("session") == [1, 2] * 4 and set(k.brain.descriptor("area")) == {"hIT"}


def test_every_benchmark_loads_with_its_ceiling(shared_data):
    benchmarks, skipped = load_benchmarks(data_dir=shared_data, download=False, skip_missing=True)
    core = ["kriegeskorte92.monkey_IT", "kriegeskorte92.human_IT", "algonauts78.human_EVC", "algonauts78.human_IT",
            "allen2p.mouse_VISp"]
    assert [b.name for b in benchmarks] == core and set(skipped) == set(list_benchmarks()) - set(core)
    assert "stimulus images" in skipped["majaj2015.macaque_IT"]  # the responses are there, the images are not
    by = {b.name: b for b in benchmarks}
    assert {b.species for b in benchmarks} == {"macaque", "human", "mouse"}
    monkey, human = by["kriegeskorte92.monkey_IT"], by["kriegeskorte92.human_IT"]
    assert monkey.ceiling is None and monkey.n_subjects == 1
    assert "monkeyIT" not in monkey.reference_rdms.names and "animacy" in monkey.reference_rdms.names
    k = load_kriegeskorte92(shared_data / "kriegeskorte92")
    per_subject = np.stack([np.mean([k.brain[i] for i, s in enumerate(k.brain.descriptor("subject")) if s == subj],
                                    axis=0) for subj in ("BE", "KO", "SN", "TI")])
    lo, up = rdm_set_ceiling(per_subject)
    assert (human.ceiling.lower, human.ceiling.upper) == (lo, up)
    assert human.ceiling.lower == pytest.approx(0.3723, abs=1e-4) and human.ceiling.upper == pytest.approx(0.6657, abs=1e-4)
    assert human.target.descriptor("subject") == ["BE", "KO", "SN", "TI"]
    for roi in ("EVC", "IT"):
        b = by[f"algonauts78.human_{roi}"]
        assert b.n_subjects == 15 and len(b.stimuli) == 78 and b.ceiling.kind == "leave-one-subject-out"
        assert b.ceiling.lower < b.ceiling.upper and b.target.descriptor("area") == [roi] * 15
    mouse = by["allen2p.mouse_VISp"]
    assert mouse.ceiling.kind == "split-half" and len(mouse.stimuli) == 118 and mouse.stimuli.images.shape == (118, 31, 31)
    assert 0 < mouse.ceiling.spread < 0.1 and 0.1 < mouse.ceiling.estimate < 0.5


def test_split_half_ceiling_is_spearman_brown_of_the_mean_split_correlation():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((30, 5))
    cells = signal @ rng.standard_normal((5, 80)) + 2.0 * rng.standard_normal((30, 80))
    c = split_half_cells(cells, n_splits=20, seed=3)
    from cortexsnn.similarity import rsa

    r = []
    g = np.random.default_rng(3)
    for _ in range(20):
        perm = g.permutation(80)
        r.append(rsa(cells[:, perm[:40]], cells[:, perm[40:]]))
    assert c.estimate == pytest.approx(float(spearman_brown(np.mean(r))), abs=1e-12)
    assert c.spread == pytest.approx(np.std(r), abs=1e-12) and c.denominator == c.estimate


def test_missing_data_and_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(BenchmarkDataMissing, match="Algonauts 2019 78-image data are missing"):
        load_benchmarks(["algonauts78"], tmp_path, download=False)
    with pytest.raises(BenchmarkDataMissing, match="sha256"):
        load_benchmarks(["kriegeskorte92.monkey_IT"], tmp_path, download=False)
    benchmarks, skipped = load_benchmarks(["allen2p", "algonauts78"], tmp_path, download=False, skip_missing=True)
    assert benchmarks == [] and set(skipped) == {"allen2p.mouse_VISp", "algonauts78.human_EVC", "algonauts78.human_IT"}
    with pytest.raises(CortexSNNError, match="unknown benchmark 'v1'.*registered"):
        load_benchmarks(["v1"], tmp_path)


def test_user_data_benchmarks_with_their_images(tmp_path):
    """Majaj-Hong, macaque face and Allen Neuropixels benchmarks read from files of their published
    layouts (tiny synthetic ones here), with the stimulus images the user brings."""
    from PIL import Image

    rng = np.random.default_rng(0)
    n = 12

    def images(folder):
        (folder / "stimuli").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / "stimuli" / f"im{i}.png")

    signal = rng.standard_normal((n, 4))
    majaj = tmp_path / "majaj2015"
    majaj.mkdir()
    np.save(majaj / "IT.npy", (signal @ rng.standard_normal((4, 30)) + rng.standard_normal((n, 30))).astype(np.float32))
    np.save(majaj / "V4.npy", rng.standard_normal((n, 20)).astype(np.float32))
    face = tmp_path / "macaque_face"
    face.mkdir()
    np.save(face / "AM.npy", rng.standard_normal((n, 10)))
    np.save(face / "noise_ceiling.npy", np.array([0.5] * 8 + [0.0] * 2))
    allen = tmp_path / "allen_natural_scenes"
    allen.mkdir()
    for area in ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam"):
        np.save(allen / f"{area}_25.npy", rng.poisson(3.0, (n, 25, 20)).astype(np.float64))
        np.save(allen / f"shr_{area}.npy", np.array([0.9] * 18 + [0.1] * 2))
    for folder in (majaj, face, allen):
        images(folder)
    benchmarks, skipped = load_benchmarks(["majaj2015", "macaque_face", "allen_neuropixels"], tmp_path, download=False)
    by = {b.name: b for b in benchmarks}
    assert set(by) == {"majaj2015.macaque_V4", "majaj2015.macaque_IT", "macaque_face.macaque_AM"} | {
        f"allen_neuropixels.mouse_{a}" for a in ("VISp", "VISl", "VISrl", "VISal", "VISpm", "VISam")}
    it = by["majaj2015.macaque_IT"]
    assert it.species == "macaque" and it.ceiling.kind == "split-half" and it.target.n_stimuli == n
    assert by["macaque_face.macaque_AM"].target.names == ["macaque AM (8 units)"]  # 2 unreliable units dropped
    assert by["allen_neuropixels.mouse_VISl"].target.names == ["mouse VISl (18 units)"]
    assert it.stimuli.stimuli(16, "imagenet").tensor.shape == (n, 3, 16, 16)
    (majaj / "stimuli" / "im0.png").unlink()
    with pytest.raises(BenchmarkDataMissing, match="holds 11 images"):
        load_benchmarks(["majaj2015"], tmp_path, download=False)
