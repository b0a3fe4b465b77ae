import argparse
import pickle

import pytest
import torch

from cortexsnn.utils.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _payload():
    model = torch.nn.Linear(3, 2)
    return {"kind": "toy", "model": model.state_dict(), "epoch": 4, "config": {"lr": 0.1, "tags": ["a"]}}


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _payload())
    record = load_checkpoint(path, kind="toy")
    assert record["epoch"] == 4 and record["config"] == {"lr": 0.1, "tags": ["a"]}
    assert record["format"] == "cortexsnn-checkpoint"
    assert record["model"]["weight"].shape == (2, 3) and record["model"]["bias"].dtype == torch.float32
    assert set(record["model"]) == {"weight", "bias"}


def test_other_model_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _payload())
    with pytest.raises(CheckpointError, match="'toy' model, but a 'iir_mlp' model"):
        load_checkpoint(path, kind="iir_mlp")


def test_truncated_file_is_refused_and_previous_copy_kept(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", _payload())
    good = path.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(broken)
    # a failing save leaves the previous file untouched
    with pytest.raises(ValueError):
        save_checkpoint(path, {"no_kind": 1})
    assert path.read_bytes() == good


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "cortexsnn-checkpoint", "kind": "toy", "args": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a cortexsnn checkpoint"):
        load_checkpoint(plain)
    text = tmp_path / "text.pt"
    text.write_bytes(pickle.dumps("hello"))
    with pytest.raises(CheckpointError):
        load_checkpoint(text)


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    save_checkpoint(tmp_path / "rng.pt", {"kind": "toy", "rng": state})
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[0] == again[0] and expected[1] == again[1]
    assert torch.equal(expected[2], again[2])
