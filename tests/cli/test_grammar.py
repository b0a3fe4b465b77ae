"""The command-line grammar shared by every command (cortexsnn.cli.grammar) and the entry point's
handling of user errors and log records (cortexsnn.cli.main)."""
from __future__ import annotations

import argparse
import logging
import math

import pytest
from omegaconf import OmegaConf

from cortexsnn.cli.grammar import add_option_grammar, dotlist_value, flag_overrides, resolve_options
from cortexsnn.cli.main import OneLineParser, main
from cortexsnn.config import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="toy")
    parser.add_argument("--name", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--mode", choices=["a", "b"], default="a")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--pair", action="append", default=[])
    add_option_grammar(parser, "toy")
    return parser


def test_defaults_then_config_then_flags_then_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: from_file\nbatch_size: 4\nrate: 0.5\nmode: b\n")
    args = resolve_options(_parser().parse_args(["--config", str(config), "--batch-size", "8", "rate=0.25"]))
    assert (args.name, args.batch_size, args.rate, args.mode, args.fast, args.pair) == ("from_file", 8, 0.25, "b",
                                                                                         False, [])
    args = resolve_options(_parser().parse_args(["--name", "x", "--pair", "a=b", "fast=true"]))
    assert (args.name, args.batch_size, args.rate, args.fast, args.pair) == ("x", 16, None, True, ["a=b"])
    assert not hasattr(args, "_grammar") and not hasattr(args, "overrides")


def test_bad_keys_types_choices_and_missing_values_are_named():
    with pytest.raises(ConfigError, match=r"unknown config key 'batchsize'. Valid keys: name, batch_size, rate"):
        resolve_options(_parser().parse_args(["--name", "x", "batchsize=3"]))
    with pytest.raises(ConfigError, match=r"'batch_size'.*could not be converted to Integer"):
        resolve_options(_parser().parse_args(["--name", "x", "batch_size=many"]))
    with pytest.raises(ConfigError, match=r"--mode \(mode\) is 'c'; choose one of \['a', 'b'\]"):
        resolve_options(_parser().parse_args(["--name", "x", "mode=c"]))
    with pytest.raises(ConfigError, match=r"required: --name \(or name=...\)"):
        resolve_options(_parser().parse_args([]))


def test_values_survive_the_round_trip_through_key_value():
    for value in ["/data:x/with space", "42", "", None, True, 3, 1e-5, [1, 2], ["a=b"], "null"]:
        parsed = OmegaConf.from_dotlist([f"k={dotlist_value(value)}"]).k
        parsed = OmegaConf.to_container(parsed) if OmegaConf.is_list(parsed) else parsed
        assert parsed == value and type(parsed) is type(value), value
    assert math.isnan(float(OmegaConf.from_dotlist([f"k={dotlist_value(float('nan'))}"]).k))
    args = argparse.Namespace(out="runs/x", seed=None, no_progress=True, quiet=False)
    assert flag_overrides(args, {"out": "run.out_dir", "seed": "run.seed", "no_progress": "!run.progress",
                                 "quiet": "!run.talk"}) == ['run.out_dir="runs/x"', "run.progress=false"]


def test_misused_flag_and_config_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["stdp", "train", "--epochs", "one"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1 and "invalid int value" in err
    assert main(["stdp", "train", "--config", "stdp/deep2024", "train.rstdp_rate_schedule=[a, b]"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train.rstdp_rate_schedule" in err and "Traceback" not in err


def test_library_log_records_reach_stderr_one_line_each(capsys, monkeypatch):
    from cortexsnn.cli import configs

    def logging_command(args):
        log = logging.getLogger("cortexsnn.some.module")
        log.info("progress\nof two lines")
        log.debug("details")
        log.warning("a notice")
        return 0

    monkeypatch.setattr(configs, "_run", logging_command)
    assert main(["configs"]) == 0
    assert capsys.readouterr().err.splitlines() == ["progress of two lines", "warning: a notice"]
    assert main(["-q", "configs"]) == 0
    assert capsys.readouterr().err.splitlines() == ["warning: a notice"]
    assert main(["-v", "configs"]) == 0
    assert capsys.readouterr().err.splitlines() == ["progress of two lines", "details", "warning: a notice"]
    main(["configs"])  # back to INFO for the other tests
    capsys.readouterr()
