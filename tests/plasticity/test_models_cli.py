"""Building blocks against independent computations, the model zoo, evaluation, activation maps,
the ``cortexsnn stdp`` command and its messages for bad input."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import stdp_reference as ref  # noqa: E402

from cortexsnn.plasticity import spike_ops
from cortexsnn.encoding import intensity_to_latency, latencies_to_waves, waves_to_latencies
from cortexsnn.plasticity.data import pack_nibbles, unpack_nibbles
from cortexsnn.plasticity.evaluate import classification_metrics, save_activation_maps
from cortexsnn.plasticity.filters import dog_kernel, gabor_kernel, mnist_dog_bank
from cortexsnn.plasticity.models import MODEL_NAMES, build_model
from cortexsnn.plasticity.training import AdaptiveRates, fit, train_rstdp_batch

T = 15


def _lat(b, c, h, w, density=0.4, seed=0, steps=T):
    g = torch.Generator().manual_seed(seed)
    lat = torch.randint(0, steps, (b, c, h, w), generator=g)
    return torch.where(torch.rand(b, c, h, w, generator=g) > density, steps, lat).to(torch.uint8)


def test_dog_kernel_by_hand():
    k = dog_kernel(3, 3 / 9, 6 / 9).numpy()
    x, y = np.mgrid[-1:2, -1:2]
    r2 = x**2 + y**2
    raw = (np.exp(-r2 / (2 * (1 / 3) ** 2)) / (1 / 3) ** 2 - np.exp(-r2 / (2 * (2 / 3) ** 2)) / (2 / 3) ** 2) / (2 * np.pi)
    raw -= raw.mean()
    np.testing.assert_allclose(k, raw / raw.max(), rtol=1e-12)
    assert abs(k.sum()) < 1e-12 and k.max() == 1.0 and k[1, 1] == 1.0  # on-centre
    off = dog_kernel(3, 6 / 9, 3 / 9).numpy()
    assert off[1, 1] < 0 and abs(gabor_kernel(5, 45.0).sum()) < 1e-9
    assert tuple(mnist_dog_bank().weight.shape) == (6, 1, 13, 13)


def test_latency_coding_matches_seed_bins():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 6, 10, 10, generator=g).mul(4).floor()  # many ties, many zeros
    lat = intensity_to_latency(x, T)
    for i in range(3):
        assert torch.equal(latencies_to_waves(lat[i], T), ref.intensity_to_latency_waves(x[i], T).float())
    assert torch.equal(waves_to_latencies(latencies_to_waves(lat, T)), lat)
    # n_nonzero % T values are dropped, zeros never spike
    assert int((lat < T).sum(dim=(1, 2, 3))[0]) == int((x[0] > 0).sum()) // T * T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_kernel_equals_dense_convolution(dtype):
    lat = _lat(3, 5, 9, 9, seed=2)
    w = torch.rand(7, 5, 3, 3, dtype=dtype)
    dense = spike_ops.conv_potentials(lat, w, T, "dense")
    event = spike_ops.conv_potentials(lat, w, T, "event")
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(event, dense, rtol=tol, atol=tol)
    torch.testing.assert_close(spike_ops.last_step_potentials(lat, w, T, "event"), dense[-1], rtol=tol, atol=tol)
    th = float(dense[-1].median()) + 0.0123  # away from any potential (float32 sums differ in order)
    lat_out = spike_ops.fire(dense, th)
    assert torch.equal(spike_ops.conv_fire(lat, w, T, th, "event"), lat_out)
    lat2, values = spike_ops.conv_fire_values(lat, w, T, th, "event")
    assert torch.equal(lat2, lat_out)
    expected = torch.where(lat_out < T, spike_ops.values_at_first_spike(dense, lat_out), torch.zeros((), dtype=dtype))
    torch.testing.assert_close(values, expected, rtol=tol, atol=tol)


def test_pointwise_inhibition_forms_agree_with_reference():
    lat = _lat(2, 6, 7, 7, seed=3)
    w = torch.rand(8, 6, 3, 3, dtype=torch.float64)
    pot = spike_ops.conv_potentials(lat, w, T, "dense")
    thr = spike_ops.thresholded_potentials(pot, 6.0)
    out = spike_ops.fire(pot, 6.0)
    inh_pot, inh_lat = spike_ops.pointwise_inhibition(thr, out)
    lat_b, _ = spike_ops.inhibit_pointwise(out, spike_ops.values_at_first_spike(thr, out) * (out < T), T)
    assert torch.equal(inh_lat, lat_b)
    for i in range(2):
        expected = ref.pointwise_inhibition(thr[:, i])
        torch.testing.assert_close(inh_pot[:, i], expected)
    assert (inh_lat < T).sum() < (out < T).sum()


def test_spike_pool_passes_earliest_spike():
    lat = _lat(2, 3, 8, 8, seed=4)
    pooled = spike_ops.spike_pool(lat, 2)
    expected = lat.long().view(2, 3, 4, 2, 4, 2).amin(dim=(3, 5))
    assert torch.equal(pooled.long(), expected)
    waves = latencies_to_waves(lat, T)
    assert torch.equal(latencies_to_waves(pooled, T), torch.nn.functional.max_pool2d(waves.flatten(0, 1), 2).view(T, 2, 3, 4, 4))


def test_k_winners_rules():
    lat = torch.full((1, 3, 5, 5), T, dtype=torch.uint8)
    values = torch.zeros(1, 3, 5, 5)
    lat[0, 0, 2, 2], values[0, 0, 2, 2] = 3, 10.0   # earliest: first winner
    lat[0, 1, 2, 3], values[0, 1, 2, 3] = 4, 50.0   # inside the radius of the first: inhibited
    lat[0, 2, 0, 0], values[0, 2, 0, 0] = 4, 20.0   # later but outside: second winner
    lat[0, 0, 4, 0], values[0, 0, 4, 0] = 5, 30.0   # same feature as the first winner: inhibited
    winners, valid = spike_ops.k_winners(lat, values, 3, 1, T)
    assert valid.tolist() == [[True, True, False]]
    assert winners[0, 0].tolist() == [0, 2, 2] and winners[0, 1].tolist() == [2, 0, 0]


def test_nibble_packing_round_trip():
    lat = _lat(4, 6, 28, 28, seed=5)
    packed = pack_nibbles(lat)
    assert packed.shape == (4, 6 * 28 * 28 // 2)
    assert torch.equal(unpack_nibbles(packed, (6, 28, 28)), lat)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_runs_and_decides(name):
    torch.manual_seed(0)
    model = build_model(name)
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0
    lat = model.encode(images)
    decisions, scores = model.predict(lat)
    assert decisions.shape == (2,) and scores.shape == (2, 10)
    assert ((decisions >= -1) & (decisions < 10)).all()
    assert len(model.stages) >= 1 and all(s.kind in ("stdp", "rstdp") for s in model.stages)


def test_stage_counts_match_spec():
    counts = {n: len(build_model(n).stages) for n in MODEL_NAMES}
    assert counts == {"mozafari2018": 3, "deep2024": 4, "deepr2024": 4, "deepr2024-greedy": 5,
                      "inception2024": 6, "majority2024": 3, "mozafari2018-shallow": 1}


def test_majority_vote_and_tie_break():
    model = build_model("majority2024")
    votes = [torch.tensor([1, 2, -1, 4]), torch.tensor([1, 3, -1, 5]), torch.tensor([7, 2, -1, 6])]
    assert model.combine(votes).tolist() == [1, 2, -1, 5]  # last: no majority, the k5 head decides


def test_joint_rstdp_stage_updates_both_layers():
    torch.manual_seed(0)
    model = build_model("deepr2024")
    assert [s.kind for s in model.stages] == ["stdp", "stdp", "stdp", "rstdp"]
    stage = model.stages[3]
    lat = _lat(6, 150, 7, 7, density=0.6, seed=6)
    before = {n: model.layers[n].weight.clone() for n in stage.layers}
    out = train_rstdp_batch(model, stage, lat, torch.arange(6) % 10, "batched", AdaptiveRates())
    assert out["hits"] + out["misses"] + out["silent"] == 6
    changed = [n for n in stage.layers if not torch.equal(before[n], model.layers[n].weight)]
    assert changed == ["c3", "c4"] or out["hits"] + out["misses"] == 0


def test_metrics_count_silent_as_errors():
    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    decisions = torch.tensor([0, 1, -1, 2, 0, 0])
    scores = torch.tensor([[3., 1, 0], [0, 2, 1], [0, 0, 0], [0, 1, 5], [2, 1, 0], [4, 0, 0]])
    m = classification_metrics(labels, decisions, scores, 3)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["silent_rate"] == pytest.approx(1 / 6)
    assert m["confusion_matrix"][2] == [0, 0, 1, 1]
    from sklearn.metrics import roc_auc_score

    shares = scores / scores.sum(dim=1, keepdim=True).clamp(min=1e-30)
    shares[2] = 1 / 3  # a sample without evidence gets equal shares
    expected = np.mean([roc_auc_score(labels.numpy() == c, shares[:, c].numpy()) for c in range(3)])
    assert m["roc_auc_ovr"] == pytest.approx(expected)
    assert m["recall_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_activation_maps_are_written_and_not_empty(tmp_path):
    from PIL import Image

    torch.manual_seed(0)
    model = build_model("mozafari2018")
    images = torch.zeros(1, 1, 28, 28)
    images[:, :, 5:23, 10:18] = 1.0
    paths = save_activation_maps(model, model.encode(images), tmp_path, labels=[3])
    assert len(paths) == 1 + len(model.ops) + len(model.heads)
    for p in paths:
        assert p.stat().st_size > 1000
        pixels = np.asarray(Image.open(p).convert("L"), dtype=float)
        assert pixels.std() > 1.0


def test_bad_input_messages():
    model = build_model("mozafari2018")
    with pytest.raises(ValueError, match="size 28x28"):
        model.encode(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="one input channel"):
        model.encode(torch.zeros(1, 3, 28, 28))
    lat = model.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        train_rstdp_batch(model, model.stages[2], torch.zeros(2, 250, 4, 4, dtype=torch.uint8), torch.tensor([3, 12]),
                          "batched", AdaptiveRates())
    with pytest.raises(ValueError, match="3 trainable stages"):
        fit(model, lat, torch.tensor([1, 2]), lat, torch.tensor([1, 2]), [1, 1], progress=False)
    with pytest.raises(ValueError, match="channels"):
        model.run_ops(torch.zeros(1, 4, 28, 28, dtype=torch.uint8))


@pytest.mark.slow
def test_cli_train_evaluate_resume_and_errors(tmp_path, capsys):
    from cortexsnn.cli.main import main

    out = tmp_path / "run"
    common = ["--train-limit", "40", "--test-limit", "12", "--no-progress", "--no-tensorboard", "--threads", "1"]
    assert main(["stdp", "train", "--model", "mozafari2018", "--epochs", "1", "1", "2", "--mode", "batched",
                 "--batch-size", "10", "--val-fraction", "0.25", "--activation-maps", "1", "--out", str(out), *common]) == 0
    results = json.loads((out / "results.json").read_text())
    metrics = results["metrics"]
    assert metrics["n_samples"] == 12 and 0 <= metrics["accuracy"] <= 1 and len(results["epochs"]) == 4
    assert (out / "confusion_test.png").stat().st_size > 0 and len(list((out / "activation_maps").glob("*.png"))) == 6
    before = {name: (out / name).read_bytes() for name in ("results.json", "confusion_test.png", "metrics.csv")}
    assert main(["stdp", "evaluate", "--checkpoint", str(out / "checkpoint_best.pt"), "--activation-maps", "0", *common]) == 0
    # evaluate writes to a folder of its own, never over the training run's outputs
    assert {name: (out / name).read_bytes() for name in before} == before
    assert json.loads((out / "eval_test" / "metrics_test.json").read_text())["n_samples"] == 12
    assert json.loads((out / "eval_test" / "run.json").read_text())["status"] == "complete"
    capsys.readouterr()
    assert main(["stdp", "evaluate", "--checkpoint", str(out / "checkpoint_best.pt"), "--out", str(out), *common]) == 2
    assert "training run's folder" in capsys.readouterr().err
    assert main(["stdp", "evaluate", "--checkpoint", str(out / "checkpoint_best.pt"), *common]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" not in err and "resume=" not in err
    # resume a finished run: nothing left to train, same weights
    assert main(["stdp", "train", "--model", "mozafari2018", "--epochs", "1", "1", "2", "--mode", "batched",
                 "--batch-size", "10", "--val-fraction", "0.25", "--activation-maps", "0", "--out", str(out), "--resume", *common]) == 0
    capsys.readouterr()
    assert main(["stdp", "train", "--model", "deep2024", "--epochs", "1", "1", *common, "--out", str(tmp_path / "x")]) == 2
    assert "4 trainable stages" in capsys.readouterr().err
    assert main(["stdp", "evaluate", "--checkpoint", str(out / "checkpoint_best.pt"), "--model", "deep2024", *common]) == 2
    assert "holds a mozafari2018 model" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_winner_kernel_equals_tensor_path(dtype):
    lat = _lat(5, 6, 9, 9, density=0.5, seed=8)
    values = torch.randint(5, 9, (5, 6, 9, 9)).to(dtype)  # many equal potentials: ties everywhere
    values = torch.where(lat < T, values, torch.zeros((), dtype=dtype))
    winners, winner_lat, valid = spike_ops.stdp_winners(lat, values, 4, 1, T)
    inh_lat, inh_val = spike_ops.inhibit_pointwise(lat, values, T)
    w2, v2 = spike_ops.k_winners(inh_lat, inh_val, 4, 1, T)
    assert torch.equal(valid, v2) and torch.equal(winners[valid], w2[v2])
    bi = torch.arange(5).view(-1, 1)
    assert torch.equal(winner_lat[valid], inh_lat[bi, w2[..., 0], w2[..., 1], w2[..., 2]].long()[v2])


def test_lateral_intensity_inhibition_by_hand():
    x = torch.tensor([[1.0, 9.0, 2.0], [3.0, 5.0, 7.0], [0.0, 4.0, 6.0]]).view(1, 1, 3, 3)
    kernel = torch.full((3, 3), -0.1)
    kernel[1, 1] = 0.0
    out = spike_ops.lateral_intensity_inhibition(x, kernel)
    # centre 5: stronger neighbours 9, 7, 6 -> 5 * (1 - 0.3); corner 9: none stronger
    assert out[0, 0, 1, 1].item() == pytest.approx(5 * 0.7)
    assert out[0, 0, 0, 1].item() == pytest.approx(9.0)
    # corner 0 (zero padding outside): 3, 5, 4 stronger -> stays 0; corner 1: 9, 3, 5 stronger
    assert out[0, 0, 0, 0].item() == pytest.approx(1 * 0.7)


@pytest.mark.slow
def test_cli_train_from_config(tmp_path, capsys):
    from cortexsnn.cli.main import main

    config = tmp_path / "tiny.yaml"
    config.write_text("model: mozafari2018\nepochs: [1, 1, 1]\ntrain:\n  mode: sequential\n  batch_size: 10\n"
                      "  stdp_samples: 20\ndata:\n  val_fraction: 0.25\nrun:\n  activation_maps: 0\n")
    common = ["--train-limit", "40", "--test-limit", "12", "--no-progress", "--no-tensorboard", "--threads", "1"]
    out = tmp_path / "run"
    # a flag (an alias of its key) and a key=value override win over the config
    assert main(["stdp", "train", "--config", str(config), "--batch-size", "15", "--out", str(out), *common,
                 "train.patience=4"]) == 0
    from cortexsnn.utils.checkpoint import load_checkpoint

    record = load_checkpoint(out / "checkpoint_latest.pt", kind="stdp")
    assert record["config"]["epochs"] == [1, 1, 1] and record["config"]["train"]["stdp_samples"] == 20
    assert record["config"]["train"]["batch_size"] == 15 and record["config"]["train"]["patience"] == 4
    assert len(json.loads((out / "results.json").read_text())["epochs"]) == 3
    capsys.readouterr()
    config.write_text("model: mozafari2018\nepochs: [1, 1, 1]\nlearning_rate: 0.1\n")
    assert main(["stdp", "train", "--config", str(config), "--out", str(out), *common]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'learning_rate'" in err and "train.batch_size" in err
    assert main(["stdp", "train", "--config", str(tmp_path / "missing.yaml"), *common]) == 2
    assert "not found" in capsys.readouterr().err


def test_scale_rstdp_rates():
    from cortexsnn.plasticity.models import scale_rstdp_rates

    model = build_model("deepr2024")
    before = {n: layer.rstdp for n, layer in model.layers.items()}
    scale_rstdp_rates(model, 4.0)
    for name, layer in model.layers.items():
        if before[name] is None:
            assert layer.rstdp is None
            continue
        old, new = before[name], layer.rstdp
        for key in ("reward_plus", "reward_minus", "punish_plus", "punish_minus"):
            assert getattr(new, key) == pytest.approx(4.0 * getattr(old, key))
        assert (new.lower, new.upper, new.stabilizer) == (old.lower, old.upper, old.stabilizer)
    with pytest.raises(ValueError, match="positive"):
        scale_rstdp_rates(model, 0.0)


def test_rstdp_rate_schedule_scales_each_epoch_and_restores_the_rules(monkeypatch):
    from cortexsnn.plasticity import training
    from cortexsnn.plasticity.models import scale_rstdp_rates

    lat = _lat(24, 6, 28, 28, density=0.3, seed=3)
    labels = torch.arange(24) % 10
    seen = []
    real = training.train_rstdp_batch

    def spy(model, stage, *args, **kwargs):
        seen.append(model.layers["c3"].rstdp.reward_plus)
        return real(model, stage, *args, **kwargs)

    monkeypatch.setattr(training, "train_rstdp_batch", spy)
    torch.manual_seed(0)
    model = build_model("mozafari2018")
    base = model.layers["c3"].rstdp
    state = fit(model, lat[:16], labels[:16], lat[16:], labels[16:], [0, 0, 3], batch_size=8, patience=10,
                progress=False, verbose=False, rstdp_rate_schedule=[3.0, 0.5])
    # two batches per epoch; the last factor holds for epoch 3
    assert seen == pytest.approx([base.reward_plus * f for f in (3.0, 3.0, 0.5, 0.5, 0.5, 0.5)])
    assert [h["rate_factor"] for h in state["history"]] == [3.0, 0.5, 0.5]
    assert model.layers["c3"].rstdp == base
    # a constant schedule is the same as scaling the rules, weight for weight
    monkeypatch.setattr(training, "train_rstdp_batch", real)
    weights = []
    for schedule in ([3.0], None):
        torch.manual_seed(0)
        m = build_model("mozafari2018")
        if schedule is None:
            scale_rstdp_rates(m, 3.0)
        fit(m, lat[:16], labels[:16], lat[16:], labels[16:], [0, 0, 2], batch_size=8, patience=10,
            progress=False, verbose=False, rstdp_rate_schedule=schedule)
        weights.append(m.layers["c3"].weight.clone())
    assert torch.equal(weights[0], weights[1])
    with pytest.raises(ValueError, match="positive factors"):
        fit(model, lat[:16], labels[:16], lat[16:], labels[16:], [0, 0, 1], progress=False, rstdp_rate_schedule=[1.0, 0.0])


@pytest.mark.slow
def test_cli_resumed_run_adds_the_training_time_of_the_interrupted_part(tmp_path, monkeypatch):
    import types

    from cortexsnn.cli import stdp as stdp_cli
    from cortexsnn.cli.main import main
    from cortexsnn.training import run as ckpt_module  # where the run substrate writes checkpoints
    from cortexsnn.utils.checkpoint import load_checkpoint

    clock = {"now": 1000.0}

    def fake_time():  # every reading of the CLI's clock advances it by 10 s
        clock["now"] += 10.0
        return clock["now"]

    monkeypatch.setattr(stdp_cli, "time", types.SimpleNamespace(time=fake_time))
    real_save = ckpt_module.save_checkpoint
    calls = {"n": 0}

    def interrupting_save(path, payload):
        real_save(path, payload)
        calls["n"] += 1
        if calls["n"] == 4:  # after C1's epoch, C1's end, C2's epoch and C2's end
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module, "save_checkpoint", interrupting_save)
    out = tmp_path / "run"
    args = ["stdp", "train", "--model", "mozafari2018", "--epochs", "1", "1", "2", "--mode", "batched",
            "--batch-size", "10", "--val-fraction", "0.25", "--activation-maps", "0", "--out", str(out),
            "--train-limit", "40", "--test-limit", "12", "--no-progress", "--no-tensorboard", "--threads", "1"]
    assert main(args) == 130  # interrupted
    first = load_checkpoint(out / "checkpoint_latest.pt", kind="stdp")["fit_state"]
    assert first["stage"] == 2 and first["train_seconds"] > 0
    monkeypatch.setattr(ckpt_module, "save_checkpoint", real_save)
    assert main([*args, "--resume"]) == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert metrics["train_seconds_this_run"] > 0
    assert metrics["train_seconds"] == pytest.approx(first["train_seconds"] + metrics["train_seconds_this_run"])
    assert load_checkpoint(out / "checkpoint_latest.pt", kind="stdp")["fit_state"]["train_seconds"] == metrics["train_seconds"]


def test_time_budget_ends_the_rstdp_stage_after_its_first_epoch():
    lat = _lat(16, 6, 28, 28, density=0.3, seed=4)
    labels = torch.arange(16) % 10
    torch.manual_seed(0)
    model = build_model("mozafari2018")
    state = fit(model, lat[:12], labels[:12], lat[12:], labels[12:], [0, 0, 5], batch_size=6, patience=10,
                progress=False, verbose=False, time_budget=1e-6)
    # the first R-STDP epoch always runs; the second would overrun the budget
    assert [h.get("time_budget_stop", False) for h in state["history"]] == [False, True]
    assert state["done"] and state["history"][0]["epoch"] == 1
