"""Neural data containers and readers: generic NPZ round trip, the seeds' layouts (synthetic files
with hand-computed filters), and the real public sets in ``../shared/data``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import squareform

from cortexsnn.data import neural as N


def _data(rng: np.random.Generator) -> N.NeuralData:
    return N.NeuralData(
        responses={"V1": rng.normal(size=(5, 4)), "V4": rng.normal(size=(3, 5, 2)).astype(np.float32)},
        stimulus_ids=np.array(["a", "b", "c", "d", "e"]),
        neuron_ids={"V1": np.array([10, 11, 12, 13])},
        meta={"species": "macaque", "preprocessing": ["none yet"], "n": np.int64(3)},
        stimuli=rng.integers(0, 255, size=(5, 4, 4), dtype=np.uint8),
    )


# ----------------------------------------------------------------------------- containers, generic NPZ
def test_npz_round_trip_keeps_everything(tmp_path):
    data = _data(np.random.default_rng(0))
    path = N.save_npz(data, tmp_path / "rec.npz")
    back = N.load_npz(path)
    assert back.areas == ["V1", "V4"]
    for area in back.areas:
        np.testing.assert_array_equal(back.responses[area], data.responses[area])
        assert back.responses[area].dtype == data.responses[area].dtype
    np.testing.assert_array_equal(back.stimulus_ids, data.stimulus_ids)
    np.testing.assert_array_equal(back.neuron_ids["V1"], [10, 11, 12, 13])
    np.testing.assert_array_equal(back.neuron_ids["V4"], [0, 1])  # default ids are column indices
    np.testing.assert_array_equal(back.stimuli, data.stimuli)
    assert back.meta == {"species": "macaque", "preprocessing": ["none yet"], "n": 3, "source": str(path)}
    # trials are averaged for the metrics; the trial array stays available
    np.testing.assert_allclose(back["V4"], data.responses["V4"].astype(np.float64).mean(axis=0))
    assert back["V4"].dtype == np.float64 and back.trials("V4").shape == (3, 5, 2)
    assert back.tensor("V1").dtype == torch.float64
    assert repr(back).endswith("5 stimuli; V1: (5, 4), V4: (3, 5, 2))")
    assert "V4: 2 neurons, 3 trials" in back.summary() and "  - none yet" in back.summary()
    with pytest.raises(ValueError, match="trial-averaged"):
        back.trials("V1")
    assert N.load_npz(path, areas=["V4"]).areas == ["V4"]
    with pytest.raises(KeyError, match="no areas"):
        N.load_npz(path, areas=["IT"])


def test_single_array_npz_and_bad_files(tmp_path):
    y = np.arange(12.0).reshape(4, 3)
    np.savez(tmp_path / "one.npz", responses=y, area=np.array("IT"))
    d = N.load_npz(tmp_path / "one.npz")
    assert d.areas == ["IT"] and d.n_stimuli == 4 and d.n_neurons("IT") == 3
    np.testing.assert_array_equal(d.stimulus_ids, np.arange(4))
    np.savez(tmp_path / "none.npz", x=y)
    with pytest.raises(ValueError, match="holds no responses"):
        N.load_npz(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError):
        N.load_npz(tmp_path / "missing.npz")
    # pickled object arrays are refused, never unpickled
    np.savez(tmp_path / "obj.npz", responses=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        N.load_npz(tmp_path / "obj.npz")


def test_accepts_torch_tensors_and_lists():
    d = N.NeuralData({"IT": torch.arange(6.0).reshape(3, 2)}, [4, 5, 6], {"IT": [9, 8]})
    assert isinstance(d.responses["IT"], np.ndarray) and isinstance(d.stimulus_ids, np.ndarray)
    np.testing.assert_array_equal(d["IT"], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(d.neuron_ids["IT"], [9, 8])
    s = N.RDMSet(torch.zeros(1, 3, 3, dtype=torch.float32), ("zeros",))
    assert s.rdms.dtype == np.float64 and s.names == ["zeros"]


def test_validation_messages():
    with pytest.raises(ValueError, match="same stimuli"):
        N.NeuralData({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, np.arange(3))
    bad = np.ones((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*neurons \[2\]"):
        N.NeuralData({"a": bad}, np.arange(3))
    with pytest.raises(ValueError, match="neuron ids"):
        N.NeuralData({"a": np.zeros((3, 2))}, np.arange(3), {"a": np.arange(3)})
    with pytest.raises(ValueError, match=r"\[stimuli, neurons\]"):
        N.NeuralData({"a": np.zeros(3)}, np.arange(3))
    with pytest.raises(KeyError, match="holds"):
        N.NeuralData({"a": np.zeros((3, 2))}, np.arange(3))["b"]


def test_selection_and_constant_neurons():
    y = np.array([[1.0, 5.0, 2.0], [2.0, 5.0, 4.0], [3.0, 5.0, 8.0]])
    d = N.NeuralData({"IT": y}, np.array([7, 8, 9]), meta={"preprocessing": []})
    np.testing.assert_array_equal(d.constant_neurons("IT"), [1])
    kept = d.select_neurons("IT", np.array([True, False, True]), "drop constant")
    np.testing.assert_array_equal(kept["IT"], y[:, [0, 2]])
    np.testing.assert_array_equal(kept.neuron_ids["IT"], [0, 2])
    assert kept.meta["preprocessing"] == ["IT: drop constant (2 of 3 neurons kept)"]
    assert d.meta["preprocessing"] == []  # the original is untouched
    sub = kept.select_stimuli([2, 0], "reorder")
    np.testing.assert_array_equal(sub["IT"], [[3.0, 8.0], [1.0, 2.0]])
    np.testing.assert_array_equal(sub.stimulus_ids, [9, 7])
    with pytest.raises(ValueError, match="length 3"):
        d.select_neurons("IT", [True, False], "x")
    with pytest.raises(IndexError):
        d.select_stimuli([5], "x")


def test_rdm_set_from_condensed_and_checks():
    rng = np.random.default_rng(1)
    sq = squareform(rng.random(10))  # 5 x 5
    s = N.RDMSet.from_matrices([squareform(sq), sq[None].reshape(5, 5), squareform(sq)[None]], ["a", "b", "c"])
    assert s.rdms.shape == (3, 5, 5) and s.rdms.dtype == np.float64
    for k in range(3):
        np.testing.assert_array_equal(s[k], sq)
    np.testing.assert_array_equal(s["b"], sq)
    np.testing.assert_array_equal(s.condensed()[0], squareform(sq))  # scipy's pair order
    assert s.select(["c", 0]).names == ["c", "a"]
    assert repr(s) == "RDMSet(3 RDMs of 5 stimuli: ['a', 'b', 'c'])"
    asym = sq.copy()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        N.RDMSet.from_matrices([asym], ["x"])
    diag = sq + np.eye(5)
    with pytest.raises(ValueError, match="zero diagonal"):
        N.RDMSet.from_matrices([diag], ["x"])
    with pytest.raises(ValueError, match="upper triangle"):
        N.RDMSet.from_matrices([np.arange(7.0)], ["x"])


def test_load_rdm_npz(tmp_path):
    sq = squareform(np.arange(1.0, 7.0))
    np.savez(tmp_path / "r.npz", np.stack([sq, 2 * sq]))
    s = N.load_rdm_npz(tmp_path / "r.npz", names=["s1", "s2"])
    np.testing.assert_array_equal(s["s2"], 2 * sq)
    with pytest.raises(KeyError, match="no array"):
        N.load_rdm_npz(tmp_path / "r.npz", key="rdms")


# ----------------------------------------------------------------------------- the seeds' layouts
def test_allen_natural_scenes_layout(tmp_path):
    rng = np.random.default_rng(2)
    counts = {a: rng.integers(0, 20, size=(118, 25, 6)) for a in ("visp", "visl")}
    shr = {"visp": np.array([0.9, 0.1, 0.8, 0.79, 1.0, 0.2]), "visl": np.array([0.95] * 6)}
    for a in counts:  # lower-case file names as Huang et al. (AAAI 2023) writes them
        np.save(tmp_path / f"{a}_25.npy", counts[a])
        np.save(tmp_path / f"shr_{a}.npy", shr[a])
    d = N.load_allen_natural_scenes(tmp_path, areas=["VISp", "VISl"])
    np.testing.assert_array_equal(d.neuron_ids["VISp"], [0, 2, 4])  # reliability >= 0.8 (0.79 is out)
    expected = counts["visp"][:, :, [0, 2, 4]].sum(axis=1) / 50 / 25
    np.testing.assert_allclose(d["VISp"], expected, rtol=0, atol=1e-15)
    assert d["VISl"].shape == (118, 6)
    assert "VISp: split-half reliability >= 0.8 (3 of 6 neurons kept)" in d.meta["preprocessing"]
    with pytest.raises(FileNotFoundError, match="VISam_25.npy"):
        N.load_allen_natural_scenes(tmp_path, areas=["VISam"])
    with pytest.raises(FileNotFoundError):
        N.load_allen_natural_scenes(tmp_path, areas=["VISp"], time_bins=8)


def test_allen_natural_movie_rate_filter(tmp_path):
    # Movie one: 900 frames, 30 s, 20 trials: 0.5 Hz means 300 spikes in total over the trials.
    counts = np.zeros((900, 1, 4))
    counts[:300, 0, 0] = 1  # 300 spikes -> exactly 0.5 Hz: kept
    counts[:299, 0, 1] = 1  # 299 -> just below: dropped
    counts[::2, 0, 2] = 3  # 1350 -> 2.25 Hz: kept
    np.save(tmp_path / "VISp_1.npy", counts)
    d = N.load_neural_dataset("allen_natural_movie_one", tmp_path, areas=["VISp"])
    np.testing.assert_array_equal(d.neuron_ids["VISp"], [0, 2])
    np.testing.assert_allclose(d["VISp"], counts[:, 0, [0, 2]] / 20)
    assert d.meta["frame_rate_hz"] == 30.0
    with pytest.raises(ValueError, match=r"\[3600, 1, neurons\]"):
        N.load_allen_natural_movie(tmp_path, "three", areas=["VISp"])
    with pytest.raises(ValueError, match="unknown neural dataset"):
        N.load_neural_dataset("allen_movie", tmp_path)


def test_macaque_face_ceiling_filter(tmp_path):
    am = np.random.default_rng(3).normal(size=(20, 5))
    np.save(tmp_path / "AM.npy", am)
    np.save(tmp_path / "noise_ceiling.npy", np.array([0.05, 0.1, 0.5, 0.099, 0.3]))
    d = N.load_neural_dataset("macaque_face", tmp_path)
    np.testing.assert_array_equal(d.neuron_ids["AM"], [1, 2, 4])
    np.testing.assert_array_equal(d["AM"], am[:, [1, 2, 4]])


# ----------------------------------------------------------------------------- real public data
def _folder(shared_data, name: str):
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} is absent (set CORTEXSNN_DATA)")
    return path


def test_majaj2015_v4_it(shared_data):
    root = _folder(shared_data, "majaj2015")
    d = N.load_neural_dataset("macaque_synthetic", root)
    assert d.areas == ["V4", "IT"] and d.n_stimuli == 3200
    assert d.n_neurons("V4") == 88 and d.n_neurons("IT") == 168
    np.testing.assert_array_equal(d["IT"], np.load(root / "IT.npy").astype(np.float64))
    assert d.constant_neurons("V4").size == 0 and d.constant_neurons("IT").size == 0


def test_allen_2p_ns118(shared_data):
    d = N.load_allen_2p_ns118(_folder(shared_data, "allen_visp_2p_ns118"))
    assert d.areas == ["VISp"] and d["VISp"].shape == (118, 212)
    assert d.stimuli.shape == (118, 31, 31) and d.stimuli.dtype == np.uint8
    assert sorted(d.meta["extra"]["perm_seed31"]) == list(range(118))
    raw = np.load(next(_folder(shared_data, "allen_visp_2p_ns118").glob("*.npz")))["responses"]
    np.testing.assert_array_equal(d["VISp"], raw)


def test_kriegeskorte92_files_agree_with_each_other(shared_data):
    k = N.load_kriegeskorte92(_folder(shared_data, "kriegeskorte92"))
    assert k.fig1.names == ["mIT_674neurons", "hITvisStim_316vx"] and k.fig1.n_stimuli == 92
    assert len(k.brain) == 8 and len(k.models) == 8 and len(k.behaviour) == 16
    assert k.brain.names[0] == "hIT | BE | Session: 1"
    # the monkey IT RDM of Figure 1 is the 'monkeyIT' model RDM, exactly
    np.testing.assert_array_equal(k.fig1["mIT_674neurons"], k.models["monkeyIT"])
    # the human IT RDM of Figure 1 is the mean of the 4 subjects x 2 sessions (stored as float32)
    np.testing.assert_allclose(k.fig1["hITvisStim_316vx"], k.brain.rdms.mean(axis=0), rtol=0, atol=2e-7)
    assert k.images.shape == (92, 175, 175, 3) and k.images.dtype == np.uint8
    assert k.category_labels[:2] == ["animate", "inanim"]
    assert k.category_vectors.shape == (92, 12) and k.category_vectors[:, 0].sum() == 48
    assert k.categories[0] == "human bodypart"


def test_algonauts78_rdms_and_stored_ceiling(shared_data):
    from cortexsnn.similarity import rdm_set_ceiling

    root = _folder(shared_data, "algonauts78")
    log = json.loads((root / "brain_data" / "noise_ceiling_log.json").read_text())
    for roi in ("EVC", "IT"):
        s = N.load_algonauts78(root, roi)
        assert s.rdms.shape == (15, 78, 78) and s.names[0] == f"{roi} subject 01"
        assert s.stimulus_ids[-1] == "image_78"
        stored = log[f"fmri_{roi}_RDMs.npz"]["spearman"]
        assert s.meta["noise_ceiling"]["spearman"] == stored
        if roi == "EVC":  # the stored ceiling follows from the loaded RDMs (Net2Brain: mean, R^2)
            low, up = rdm_set_ceiling(s.rdms, method="spearman", pooling="mean", squared=True)
            assert low == pytest.approx(stored["lnc"], abs=1e-9)
            assert up == pytest.approx(stored["unc"], abs=1e-9)
    with pytest.raises(ValueError, match="roi"):
        N.load_algonauts78(root, "V1")


# ----------------------------------------------------------------------------- HDF5 and rsatoolbox interop
def test_hdf5_round_trip_equals_npz(tmp_path):
    pytest.importorskip("h5py")
    data = _data(np.random.default_rng(4))
    h5 = N.load_recording(N.save_hdf5(data, tmp_path / "rec.h5"))
    npz = N.load_recording(N.save_npz(data, tmp_path / "rec.npz"))
    assert h5.areas == npz.areas == ["V1", "V4"]
    for area in h5.areas:
        np.testing.assert_array_equal(h5.responses[area], npz.responses[area])
        np.testing.assert_array_equal(h5.neuron_ids[area], npz.neuron_ids[area])
    np.testing.assert_array_equal(h5.stimulus_ids, ["a", "b", "c", "d", "e"])
    assert h5.stimulus_ids.dtype.kind == "U"
    np.testing.assert_array_equal(h5.stimuli, data.stimuli)
    assert {k: v for k, v in h5.meta.items() if k != "source"} == {k: v for k, v in npz.meta.items() if k != "source"}
    assert N.load_hdf5(tmp_path / "rec.h5", areas=["V4"]).areas == ["V4"]
    with pytest.raises(ValueError, match="unknown recording format"):
        N.load_recording(tmp_path / "rec.mat")
    with pytest.raises(ValueError, match="without '/'"):
        N.NeuralData({"a/b": np.zeros((2, 2))}, np.arange(2))


def test_rsatoolbox_interop():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(5)
    d = N.NeuralData({"IT": rng.normal(size=(6, 9))}, np.array(list("abcdef")))
    ds = d.to_rsatoolbox("IT")
    np.testing.assert_array_equal(ds.measurements, d["IT"])
    assert list(ds.obs_descriptors["stimulus"]) == list("abcdef") and ds.descriptors["area"] == "IT"
    theirs = rsatoolbox.rdm.calc_rdm(ds, method="correlation")
    s = N.RDMSet.from_rsatoolbox(theirs)
    np.testing.assert_allclose(s.rdms[0], 1 - np.corrcoef(d["IT"]), atol=1e-12)
    back = s.to_rsatoolbox()
    np.testing.assert_array_equal(back.get_matrices(), s.rdms)
    assert back.dissimilarity_measure == "correlation"
    named = N.RDMSet.from_matrices([s.rdms[0], 2 * s.rdms[0]], ["x", "y"], stimulus_ids=np.arange(6))
    r = named.to_rsatoolbox("correlation")
    assert list(r.rdm_descriptors["name"]) == ["x", "y"]
    assert N.RDMSet.from_rsatoolbox(r).names == ["x", "y"]


# ----------------------------------------------------------------------------- reliability filter
def _reference_reliability(t: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Plain loop: per split and neuron, np.corrcoef of the two half-averages, Spearman-Brown."""
    rng = np.random.default_rng(seed)
    out = np.zeros(t.shape[2])
    for _ in range(n_splits):
        perm = rng.permutation(t.shape[0])
        a, b = t[perm[: t.shape[0] // 2]].mean(0), t[perm[t.shape[0] // 2:]].mean(0)
        for j in range(t.shape[2]):
            r = np.corrcoef(a[:, j], b[:, j])[0, 1]
            out[j] += 2 * r / (1 + r)
    return out / n_splits


def test_split_half_reliability_against_a_plain_loop():
    rng = np.random.default_rng(6)
    signal = rng.normal(size=(40, 1))
    trials = np.concatenate([
        signal + 0.3 * rng.normal(size=(11, 40, 1)),  # reliable
        rng.normal(size=(11, 40, 1)),  # noise only
        np.broadcast_to(signal, (11, 40, 1)),  # identical on every trial: reliability 1
    ], axis=2)
    rel = N.split_half_reliability(trials, n_splits=20, random_state=3)
    np.testing.assert_allclose(rel, _reference_reliability(trials, 20, 3), rtol=0, atol=1e-12)
    assert rel[0] > 0.9 and abs(rel[1]) < 0.5 and rel[2] == pytest.approx(1.0, abs=1e-12)
    flat = trials.copy()
    flat[:, :, 1] = 2.0  # constant neuron: undefined, NaN, and dropped by the filter
    assert np.isnan(N.split_half_reliability(flat, n_splits=3)[1])
    d = N.NeuralData({"V1": flat}, np.arange(40))
    kept = d.reliable_neurons("V1", 0.8, n_splits=20, random_state=3)
    np.testing.assert_array_equal(kept.neuron_ids["V1"], [0, 2])
    assert "split-half reliability >= 0.8" in kept.meta["preprocessing"][-1]
    with pytest.raises(ValueError, match="trials"):
        N.split_half_reliability(np.zeros((1, 5, 2)))


def test_pool_allen_units_builds_the_seed_layout(tmp_path):
    rng = np.random.default_rng(7)
    areas = ("VISp", "VISl")
    mouse0 = [[rng.integers(0, 5, size=(3, 4, 2)) for _ in range(6)], None]  # 6 stimuli, 4 bins, 2 units
    mouse1 = [[rng.integers(0, 5, size=(3, 4, 5)) for _ in range(6)], [rng.integers(0, 5, size=(3, 4, 1)) for _ in range(6)]]
    pooled = N.pool_allen_units([mouse0, mouse1], areas)
    assert pooled["VISp"].shape == (6, 4, 7) and pooled["VISl"].shape == (6, 4, 1)
    np.testing.assert_array_equal(pooled["VISp"][2, :, :2], mouse0[0][2].sum(axis=0))
    np.testing.assert_array_equal(pooled["VISp"][5, :, 2:], mouse1[0][5].sum(axis=0))
    # the pooled counts go through the seed's reader like its own files
    for area, counts in pooled.items():
        np.save(tmp_path / f"{area}_4.npy", counts)
        np.save(tmp_path / f"shr_{area}.npy", np.ones(counts.shape[2]))
    d = N.load_allen_natural_scenes(tmp_path, areas=areas, time_bins=4)
    np.testing.assert_allclose(d["VISp"], pooled["VISp"].sum(axis=1) / 50 / 25)
    with pytest.raises(ValueError, match="expected 2"):
        N.pool_allen_units([[None]], areas)


def test_fetch_kriegeskorte92_uses_verified_local_files(shared_data, tmp_path, monkeypatch):
    import shutil

    src = _folder(shared_data, "kriegeskorte92")
    for name in N.KRIEGESKORTE92_FILES:
        shutil.copy(src / name, tmp_path / name)
    # right checksums: nothing is downloaded (this machine is offline), the folder is returned
    assert N.fetch_kriegeskorte92(tmp_path) == tmp_path
    k = N.load_kriegeskorte92(tmp_path)
    assert len(k.models) == 8
    monkeypatch.setenv("CORTEXSNN_DATA", str(tmp_path))
    (tmp_path / "kriegeskorte92").mkdir()
    for name in N.KRIEGESKORTE92_FILES:
        shutil.copy(src / name, tmp_path / "kriegeskorte92" / name)
    assert N.fetch_kriegeskorte92() == tmp_path / "kriegeskorte92"  # default folder under CORTEXSNN_DATA
