"""One registry for every network: families, create_model for each, the same weights as the old
builders, and the time-major adapters of the IIR and STDP networks (docs/models.md, "Time convention")."""
from __future__ import annotations

from cortexsnn.config import shipped_config_dir

import hashlib
from pathlib import Path

import pytest
import torch

from cortexsnn.encoding import encode_input, first_spike_latencies, latencies_to_waves, latency, repeat
from cortexsnn.errors import CortexSNNError
from cortexsnn.models import (
    FAMILIES,
    UnknownFamilyError,
    UnknownModelError,
    create_model,
    get_model_entry,
    list_models,
)
from cortexsnn.models.iir_conv import IIRConvNet
from cortexsnn.models.iir_memory import IIRMemoryNet
from cortexsnn.models.iir_mlp import IIRMLP
from cortexsnn.plasticity.models import MODEL_NAMES, STDPNetwork, build_model

ROOT = Path(__file__).resolve().parents[2]

# sha256 (first 16 hex digits) of the initial state dict, torch.manual_seed(0), computed with the
# builders of commit f6ad7b3 (before the registry held these families): cortexsnn.training.iir.build_model
# on each shipped IIR config, cortexsnn.plasticity.models.build_model for each STDP network, and
# cortexsnn.training.trainer._build_model(cfg, 10, 1) for configs/train/sew_resnet8_mnist.yaml.
PINNED = {
    "iir:associative_memory.yaml": "393a85142bc236c1",
    "iir:snn_conv.yaml": "68a697d267350ea8",
    "iir:snn_conv_small.yaml": "c499817a6a200628",
    "iir:snn_mlp_1.yaml": "2982dea990329c96",
    "iir:snn_mlp_2.yaml": "2f16baa97f97f850",
    "stdp:mozafari2018": "67aa4ddb9ede4aad",
    "stdp:deep2024": "83cffde2ca4612bd",
    "stdp:deepr2024": "1c2ba8f9d8ac4fd4",
    "stdp:deepr2024-greedy": "1c2ba8f9d8ac4fd4",
    "stdp:inception2024": "fa98b902692d1a25",
    "stdp:majority2024": "3606a735f05ebf3e",
    "stdp:mozafari2018-shallow": "7e5f393f9a6b1914",
    "train:sew_resnet8_mnist.yaml": "d342aadaedc7042c",
}
IIR_CONFIGS = sorted(p.name for p in (shipped_config_dir() / "iir").glob("*.yaml"))


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------------------ families
def test_every_model_has_one_family_and_the_families_partition_the_registry():
    by_family = {f: list_models(family=f) for f in FAMILIES}
    assert set(FAMILIES) == {"deep", "ann", "iir", "plastic"}
    assert sorted(n for names in by_family.values() for n in names) == list_models()
    assert by_family["iir"] == ["iir_conv", "iir_memory", "iir_mlp"]
    assert by_family["plastic"] == sorted(MODEL_NAMES)
    assert by_family["ann"] == ["efficientnet_lite0"]
    assert {"sew_resnet18", "lorafb_snet18", "spiking_mobilenet", "s_cornet"} <= set(by_family["deep"])
    assert list_models(family=("iir", "ann")) == sorted(by_family["iir"] + by_family["ann"])
    assert list_models("iir_m*", family="iir") == ["iir_memory", "iir_mlp"]
    assert list_models("iir_*", family="deep") == []
    for name in list_models():
        assert get_model_entry(name).family in FAMILIES


def test_unknown_family_and_model_are_toolkit_errors():
    with pytest.raises(UnknownFamilyError, match="unknown model family 'stdp'; choose one of deep, ann, iir, plastic"):
        list_models(family="stdp")
    with pytest.raises(CortexSNNError):
        get_model_entry("iir_lstm")
    with pytest.raises(UnknownModelError, match="unknown STDP model 'sew_resnet18'"):
        build_model("sew_resnet18")


@pytest.mark.parametrize("name, cls, family", [
    ("iir_mlp", IIRMLP, "iir"), ("iir_conv", IIRConvNet, "iir"), ("iir_memory", IIRMemoryNet, "iir"),
    ("mozafari2018", STDPNetwork, "plastic"), ("deepr2024-greedy", STDPNetwork, "plastic"),
    ("sew_resnet8", None, "deep"), ("efficientnet_lite0", None, "ann"),
])
def test_create_model_builds_every_family(name, cls, family):
    model = create_model(name)
    assert get_model_entry(name).family == family and model.pretrained_cfg is None
    if cls is not None:
        assert type(model) is cls
    if family == "plastic":
        assert model.name == name


# ---------------------------------------------------------------------------------- bit-identity
@pytest.mark.parametrize("config", IIR_CONFIGS)
def test_iir_configs_build_the_pinned_initial_weights(config):
    from cortexsnn.training.iir import build_model as iir_build, load_iir_config

    assert len(IIR_CONFIGS) == 5
    cfg = load_iir_config(shipped_config_dir() / "iir" / config)
    torch.manual_seed(0)
    model = iir_build(cfg)
    assert _digest(model) == PINNED[f"iir:{config}"]
    # the same through the registry directly (what build_model now calls)
    m = cfg.model
    kwargs = dict(synapse_type=m.synapse_type, tau_m=m.tau_m, tau_s=m.tau_s, train_coefficients=m.train_coefficients,
                  train_bias=m.train_bias, membrane_filter=m.membrane_filter, threshold=m.threshold,
                  surrogate_sigma=m.surrogate_sigma, dropout=m.dropout)
    if m.name == "iir_memory":
        kwargs["sizes"] = (cfg.memory.size, *cfg.memory.hidden, cfg.memory.size)
    else:
        kwargs.update(steps=cfg.train.length, input_encoding=m.input_encoding, max_rate=m.max_rate)
    if m.name == "iir_conv":
        kwargs.update(channels=tuple(m.channels), pool_after=tuple(m.pool_after), kernel_size=m.kernel_size,
                      hidden=m.hidden)
    torch.manual_seed(0)
    _assert_same_state(create_model(m.name, **kwargs), model)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_stdp_networks_build_the_pinned_initial_weights(name):
    torch.manual_seed(0)
    old_path = build_model(name)
    torch.manual_seed(0)
    registry = create_model(name)
    _assert_same_state(registry, old_path)
    assert _digest(registry) == PINNED[f"stdp:{name}"]
    assert [s.name for s in registry.stages] == [s.name for s in old_path.stages]


def test_deep_training_config_builds_the_pinned_initial_weights():
    from cortexsnn.training.trainer import _build_model, load_train_config

    cfg = load_train_config(shipped_config_dir() / "train" / "sew_resnet8_mnist.yaml")
    torch.manual_seed(0)
    assert _digest(_build_model(cfg, 10, 1)) == PINNED["train:sew_resnet8_mnist.yaml"]


# ------------------------------------------------------------------------------ time convention
def _small_mlp(**kw):
    torch.manual_seed(1)
    return create_model("iir_mlp", sizes=(64, 32, 10), steps=6, **kw)


@pytest.mark.parametrize("train", [False, True])
def test_iir_mlp_time_major_adapter_equals_the_native_call_constant(train):
    model = _small_mlp().train(train)
    images = torch.rand(3, 1, 8, 8)
    torch.manual_seed(5)
    counts = model(images)
    native_spikes = model.last_output_spikes
    torch.manual_seed(5)
    spikes = model.forward_time_major(repeat(images, model.steps))
    assert spikes.shape == (6, 3, 10)
    assert torch.equal(spikes, native_spikes) and torch.equal(spikes.sum(0), counts)


def test_iir_mlp_time_major_adapter_equals_the_native_call_poisson():
    model = _small_mlp(input_encoding="poisson", max_rate=0.8).eval()
    images = torch.rand(3, 64)
    torch.manual_seed(7)
    counts = model(images)
    torch.manual_seed(7)
    spikes = model.forward_time_major(encode_input(images, model.steps, "poisson", 0.8))
    assert torch.equal(spikes.sum(0), counts)


def test_iir_mlp_time_major_runs_a_varying_sequence_through_the_filter():
    model = _small_mlp().eval()
    seq = torch.rand(9, 2, 64)  # a movie, T != steps
    out = model.forward_time_major(seq)
    assert out.shape == (9, 2, 10)
    model.input_encoding = "poisson"  # the filter path, whatever the input
    assert torch.equal(model.forward_time_major(seq), out)
    with pytest.raises(ValueError, match=r"time-major sequence \[T, B, ...\]"):
        model.forward_time_major(torch.rand(2, 64))


@pytest.mark.parametrize("encoding", ["constant", "poisson"])
def test_iir_conv_time_major_adapter_equals_the_native_call(encoding):
    torch.manual_seed(2)
    model = create_model("iir_conv", channels=(4, 4), pool_after=(0, 1), hidden=16, image_size=12, steps=5,
                         input_encoding=encoding).eval()
    images = torch.rand(2, 1, 12, 12)
    torch.manual_seed(3)
    counts = model(images)
    torch.manual_seed(3)
    seq = repeat(images, 5) if encoding == "constant" else encode_input(images, 5, "poisson")
    spikes = model.forward_time_major(seq)
    assert spikes.shape == (5, 2, 10) and torch.equal(spikes.sum(0), counts)
    with pytest.raises(ValueError, match=r"\[T, B, 1, 12, 12\]"):
        model.forward_time_major(images)


def test_iir_memory_is_time_major_natively():
    torch.manual_seed(4)
    model = create_model("iir_memory", sizes=(20, 16, 20)).eval()
    spikes = (torch.rand(7, 3, 20) < 0.3).float()
    assert torch.equal(model.forward_time_major(spikes), model(spikes))
    assert get_model_entry("iir_memory").input_layout == "spikes [T, B, 300]"


def test_stdp_time_major_adapter_equals_predict_on_latencies():
    torch.manual_seed(0)
    model = create_model("mozafari2018")
    images = torch.rand(3, 1, 28, 28) * (torch.rand(3, 1, 28, 28) > 0.6)
    lat = model.encode(images)
    decisions, scores = model.predict(lat)
    waves = latencies_to_waves(lat, model.time_steps)
    one_spike = torch.diff(waves, dim=0, prepend=torch.zeros_like(waves[:1]))  # one spike per neuron
    for spikes in (waves, one_spike):
        d, s = model.forward_time_major(spikes)
        assert torch.equal(d, decisions) and torch.equal(s, scores)
    with pytest.raises(ValueError, match=r"coded spike trains \[T=15, B, C=6, H, W\]"):
        model.forward_time_major(images.unsqueeze(0))


def test_first_spike_latencies_reads_waves_and_one_spike_trains():
    lat = torch.randint(0, 9, (2, 3, 4, 4), dtype=torch.uint8)
    waves = latencies_to_waves(lat, 8)
    assert torch.equal(first_spike_latencies(waves), lat.clamp(max=8))
    x = torch.rand(5, 7)
    trains = latency(x, 10, threshold=0.2)
    expected = torch.where(x > 0.2, torch.round((1 - x) * 9), torch.tensor(10.0)).to(torch.uint8)
    assert torch.equal(first_spike_latencies(trains), expected)


# ----------------------------------------------------------------------------------- the commands
def test_models_command_shows_and_filters_families(capsys):
    from cortexsnn.cli.main import main

    assert main(["models", "--family", "iir"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows == [["iir_conv", "iir"], ["iir_memory", "iir"], ["iir_mlp", "iir"]]
    assert main(["models", "mozafari*"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows == [["mozafari2018", "plastic"], ["mozafari2018-shallow", "plastic"]]
    assert main(["models", "sew*", "--family", "plastic"]) == 0
    assert "no model matches 'sew*' and family plastic" in capsys.readouterr().out


def test_build_network_refuses_non_image_families_with_what_to_do():
    from cortexsnn.models.resolve import build_network

    with pytest.raises(CortexSNNError, match="iir_mlp is a model of the 'iir' family.*create_model"):
        build_network("iir_mlp")


def test_convert_refuses_non_image_families(tmp_path, capsys):
    from cortexsnn.cli.main import main

    assert main(["convert", "--model", "iir_conv", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "iir_conv is a model of the 'iir' family" in err and "Traceback" not in err
