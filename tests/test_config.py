from dataclasses import dataclass, field

import pytest

from cortexsnn.config import ConfigError, load_config, to_container


@dataclass
class Optim:
    lr: float = 1e-4
    milestones: list = field(default_factory=lambda: [50, 100])


@dataclass
class Schema:
    name: str = "mlp"
    epochs: int = 100
    optim: Optim = field(default_factory=Optim)


def test_file_then_overrides(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("epochs: 7\noptim:\n  lr: 0.001\n")
    cfg = load_config(file, ["optim.milestones=[1,2]", "name=conv"], Schema)
    assert to_container(cfg) == {"name": "conv", "epochs": 7, "optim": {"lr": 0.001, "milestones": [1, 2]}}


def test_unknown_key_names_it_and_lists_valid_keys(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.learning_rate'.*optim.lr"):
        load_config(file, [], Schema)
    with pytest.raises(ConfigError, match="unknown config key 'epoch'"):
        load_config(None, ["epoch=3"], Schema)


def test_wrong_type_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="bad value for config key 'epochs'"):
        load_config(None, ["epochs=many"], Schema)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", [], Schema)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad, [], Schema)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["epochs"], Schema)


def test_check_resume_config_lists_changed_keys_and_allows_the_mutable_ones():
    from cortexsnn.config import ConfigError, check_resume_config

    stored = {"model": {"T": 4}, "optim": {"lr": 0.1}, "run": {"epochs": 3}}
    check_resume_config(stored, {"model": {"T": 4}, "optim": {"lr": 0.1}, "run": {"epochs": 9}}, ["run.epochs"])
    check_resume_config(stored, {**stored, "data": {"new_key": 1}}, [])  # a key newer than the run
    with pytest.raises(ConfigError, match=r"model.T: 4 -> 1, optim.lr: 0.1 -> 0.5.*\['run.epochs'\]"):
        check_resume_config(stored, {"model": {"T": 1}, "optim": {"lr": 0.5}, "run": {"epochs": 3}}, ["run.epochs"])


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    from cortexsnn.config import resolve_config, shipped_config_dir, shipped_configs

    monkeypatch.chdir(tmp_path)
    names = shipped_configs()
    assert {"iir/snn_mlp_1.yaml", "iir/associative_memory.yaml", "stdp/mozafari2018.yaml",
            "train/sew_resnet8_mnist.yaml"} <= set(names)
    assert shipped_configs("stdp") == [n for n in names if n.startswith("stdp/")]
    shipped = shipped_config_dir() / "iir" / "snn_mlp_1.yaml"
    for spelling in ("configs/iir/snn_mlp_1.yaml", "iir/snn_mlp_1.yaml", "iir/snn_mlp_1"):
        assert resolve_config(spelling) == shipped
    # a file at the given path wins over the shipped one
    (tmp_path / "configs" / "iir").mkdir(parents=True)
    (tmp_path / "configs" / "iir" / "snn_mlp_1.yaml").write_text("task: mnist\n")
    assert resolve_config("configs/iir/snn_mlp_1.yaml").resolve() == tmp_path / "configs" / "iir" / "snn_mlp_1.yaml"
    with pytest.raises(ConfigError, match="no shipped config has that name.*iir/snn_mlp_1.yaml"):
        resolve_config("iir/nope.yaml")


def test_configs_command_lists_and_shows(tmp_path, monkeypatch, capsys):
    from cortexsnn.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["configs", "iir"]) == 0
    listed = capsys.readouterr().out.split()
    assert "configs/iir/snn_mlp_1.yaml" in listed and all(n.startswith("configs/iir/") for n in listed)
    assert main(["configs", "--show", "configs/iir/snn_mlp_1.yaml"]) == 0
    assert "task: mnist" in capsys.readouterr().out
    assert main(["configs", "nope"]) == 2
    assert "iir, stdp, train" in capsys.readouterr().err
