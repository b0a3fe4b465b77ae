"""The ``stdp train`` config schema (cortexsnn.plasticity.config) and its command-line grammar.

The shipped configs were flat option files before the schema; ``stdp_fit_arguments_before.json``
holds what the earlier ``cortexsnn stdp train --config configs/stdp/NAME.yaml`` resolved for each
(captured by running that code with ``fit`` and the data split replaced by recorders): the arguments
passed to ``fit``, the data split's options and the R-STDP rules of the model it built. The
converted configs must resolve to the same, so that every published run trains bit-identically.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cortexsnn.cli.stdp import _data_options, build_seeded_model, fit_arguments, train_config
from cortexsnn.config import ConfigError, shipped_configs, to_container
from cortexsnn.plasticity.config import load_stdp_config, nest_flat_options
from cortexsnn.plasticity.models import build_model

BEFORE = json.loads((Path(__file__).parent / "stdp_fit_arguments_before.json").read_text())


def test_every_shipped_config_has_a_recorded_resolution():
    assert sorted(BEFORE) == shipped_configs("stdp")


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_shipped_config_resolves_to_the_same_fit_arguments_as_before(name):
    before = BEFORE[name]
    cfg = load_stdp_config(name)
    arguments = fit_arguments(cfg)
    assert arguments.pop("progress") is True
    assert arguments == before["fit"]
    # the same types too (an int where a float was would still compare equal above)
    assert [type(v) for v in arguments.values()] == [type(before["fit"][k]) for k in arguments]
    data = _data_options(cfg.data, cfg.train.seed)
    assert {k: getattr(data, k) for k in before["split"]} == before["split"]
    model = build_seeded_model(cfg)
    assert {n: None if layer.rstdp is None else repr(layer.rstdp) for n, layer in model.layers.items()} == before["rstdp"]
    # the initial weights: torch seeded with the published seed before the model is built
    torch.manual_seed(before["fit"]["seed"])
    reference = build_model(cfg.model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_flags_are_aliases_of_the_keys_and_overrides_win():
    from cortexsnn.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["stdp", "train", "--config", "stdp/deep2024", "--epochs", "1", "1", "1", "2",
                              "--seed", "3", "--no-progress", "--data-dir", "/d:x", "train.batch_size=10"])
    cfg = train_config(args)
    assert list(cfg.epochs) == [1, 1, 1, 2] and cfg.train.seed == 3 and cfg.run.progress is False
    assert cfg.data.data_dir == "/d:x" and cfg.train.batch_size == 10 and cfg.train.stdp_samples == 30000
    args = parser.parse_args(["stdp", "train", "model=mozafari2018", "epochs=[1,1,2]", "train.mode=batched"])
    cfg = train_config(args)
    assert cfg.model == "mozafari2018" and list(cfg.epochs) == [1, 1, 2] and cfg.train.seed == 0


def test_bad_values_are_named():
    with pytest.raises(ConfigError, match="unknown config key 'train.learning_rate'.*train.batch_size"):
        load_stdp_config("stdp/deep2024", ["train.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="'train.patience'.*Integer"):
        load_stdp_config("stdp/deep2024", ["train.patience=many"])
    with pytest.raises(ConfigError, match="choose one of"):
        load_stdp_config(None, ["model=resnet", "epochs=[1]"])
    with pytest.raises(ConfigError, match="'data.val_fraction' must lie in"):
        load_stdp_config("stdp/deep2024", ["data.val_fraction=1.5"])
    with pytest.raises(ConfigError, match="missing: epochs"):
        load_stdp_config(None, ["model=deep2024"])
    with pytest.raises(ConfigError, match="nested: batch_size is now train.batch_size, seed is now train.seed"):
        load_stdp_config("stdp/deep2024", ["batch_size=10", "seed=1"])


def test_a_flat_stored_config_of_the_earlier_command_is_read():
    flat = {"model": "deep2024", "epochs": [1, 1, 1, 8], "mode": "batched", "seed": 42, "no_progress": True,
            "out": "runs/x", "func": None, "config": "configs/stdp/deep2024.yaml", "resume": False}
    nested = nest_flat_options(flat)
    assert nested == {"model": "deep2024", "epochs": [1, 1, 1, 8], "train": {"mode": "batched", "seed": 42},
                      "run": {"progress": False, "out_dir": "runs/x"}}
    assert to_container(load_stdp_config(nested))["train"]["mode"] == "batched"
