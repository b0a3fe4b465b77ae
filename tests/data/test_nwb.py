"""NWB recordings: write tiny files with pynwb, read them back with load_nwb / load_recording."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from cortexsnn.data import neural as N

pynwb = pytest.importorskip("pynwb")


def _nwb(path, *, spikes, presentations, areas=None, series=None, table="stimulus_presentations", column="stimulus_id"):
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals

    nwb = NWBFile(session_description="tiny test session", identifier="cortexsnn-test",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    if spikes is not None:
        if areas is not None:
            nwb.add_unit_column(name="location", description="brain area")
        for u, times in enumerate(spikes):
            nwb.add_unit(spike_times=times, **({"location": areas[u]} if areas is not None else {}))
    ti = TimeIntervals(name=table, description="stimulus presentations")
    ti.add_column(name=column, description="stimulus identity")
    for start, stop, sid in presentations:
        ti.add_interval(start_time=start, stop_time=stop, **{column: sid})
    nwb.add_time_intervals(ti)
    if series is not None:
        data, times = series
        nwb.add_acquisition(TimeSeries(name="dff", data=data, unit="percent", timestamps=times))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_spike_counts_per_presentation_with_areas(tmp_path):
    rng = np.random.default_rng(0)
    # 3 stimuli x 2 repeats, 0.5 s each, plus a blank (-1) that must be dropped
    order = [2, 0, 1, 1, -1, 2, 0]
    presentations = [(0.5 * i, 0.5 * i + 0.5, sid) for i, sid in enumerate(order)]
    spikes = [np.sort(rng.uniform(0, 3.5, size=k)) for k in (40, 25, 60)]
    path = _nwb(tmp_path / "rec.nwb", spikes=spikes, presentations=presentations, areas=["VISp", "VISl", "VISp"])
    data = N.load_nwb(path, window=(0.05, 0.45))
    assert data.areas == ["VISp", "VISl"] and list(data.stimulus_ids) == [0, 1, 2]
    assert data.responses["VISp"].shape == (2, 3, 2) and data.responses["VISl"].shape == (2, 3, 1)
    # by hand: counts in [start + 0.05, start + 0.45) per presentation, repeats in presentation order
    expected = np.zeros((2, 3, 3))
    seen = {0: 0, 1: 0, 2: 0}
    for start, _, sid in presentations:
        if sid < 0:
            continue
        for u, s in enumerate(spikes):
            expected[seen[sid], sid, u] = np.sum((s >= start + 0.05) & (s < start + 0.45))
        seen[sid] += 1
    np.testing.assert_array_equal(data.responses["VISp"], expected[..., [0, 2]])
    np.testing.assert_array_equal(data.responses["VISl"], expected[..., [1]])
    np.testing.assert_array_equal(data.neuron_ids["VISp"], [0, 2])
    assert any("dropped" in step for step in data.meta["preprocessing"]) and data.meta["format"] == "NWB"
    # load_recording picks NWB by suffix, and an area subset
    assert N.load_recording(path, areas=["VISl"]).areas == ["VISl"]


def test_continuous_signal_and_unequal_repeats(tmp_path):
    times = np.arange(0, 4.0, 0.1)
    data = np.stack([np.sin(times), times], axis=1)
    presentations = [(0.0, 1.0, "b"), (1.0, 2.0, "a"), (2.0, 3.0, "b")]
    path = _nwb(tmp_path / "ophys.nwb", spikes=None, presentations=presentations, series=(data, times),
                table="trials", column="image_id")
    rec = N.load_nwb(path, signal="dff", area="V1")
    assert rec.areas == ["V1"] and list(rec.stimulus_ids) == ["a", "b"]
    # unequal repeats (a once, b twice): averaged over presentations
    def window_mean(lo, hi):
        m = (times >= lo) & (times < hi)
        return data[m].mean(axis=0)
    np.testing.assert_allclose(rec["V1"][0], window_mean(1.0, 2.0))
    np.testing.assert_allclose(rec["V1"][1], (window_mean(0.0, 1.0) + window_mean(2.0, 3.0)) / 2)
    with pytest.raises(ValueError, match="no units"):
        N.load_nwb(path)
    with pytest.raises(KeyError, match="no time series"):
        N.load_nwb(path, signal="nope")
    with pytest.raises(ValueError, match="no stimulus presentation table"):
        N.load_nwb(path, signal="dff", stimulus_table="absent")
    with pytest.raises(ValueError, match="stimulus column"):
        N.load_nwb(path, signal="dff", stimulus_column="frame")
