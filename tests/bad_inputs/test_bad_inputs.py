"""The bad-input catalogue (docs/reliability.md, "Bad-input catalogue").

Every case is a user error: a wrong config, a damaged or misshapen data file, an unreadable
checkpoint, a wrong path, an out-of-range argument. Each must end in one clear message naming the
problem: through the CLI, exit code 2 with one ``error:`` line and no traceback; through the API,
a :class:`~cortexsnn.errors.CortexSNNError` subclass. Inputs are tiny and every CLI case fails
before a model is trained or scored, so the whole catalogue runs in seconds.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cortexsnn
from cortexsnn.cli.main import main
from cortexsnn.errors import CortexSNNError


# ----------------------------------------------------------------------------- file makers
def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _h5(path: Path, responses: np.ndarray) -> Path:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.create_dataset("responses/IT", data=responses)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path, make) -> Path:
    make(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


class _Payload:  # a class that a checkpoint must never unpickle
    def __init__(self) -> None:
        self.value = 1


def _checkpoint(path: Path, **entries) -> Path:
    from cortexsnn.utils.checkpoint import save_checkpoint

    save_checkpoint(path, entries)
    return path


def _torch_save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def _results(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def _image_tree(root: Path, classes=("a", "b"), broken: bool = False, empty: bool = False) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            if empty:
                continue
            for i in range(2):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    if broken:
        (root / "train" / classes[0] / "0.png").write_bytes(b"\x89PNG not really an image")
    return root


def _yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _backward_through_lif(surrogate, **kwargs) -> None:
    """A multi-step LIF layer's forward and backward pass with ``surrogate``."""
    from cortexsnn.neurons.functional import lif_multistep

    x = (torch.randn(4, 2, 6) + 0.8).requires_grad_()
    spikes, _ = lif_multistep(x, surrogate=surrogate, **kwargs)
    spikes.sum().backward()


def _user_surrogates():
    """Two user-defined surrogates: one whose derivative sums over its input (a wrong shape), one
    correct (a Laplace density) that the compiled kernels do not implement."""
    from dataclasses import dataclass

    from cortexsnn.neurons.surrogate import Surrogate

    @dataclass(frozen=True)
    class Summed(Surrogate):
        def derivative(self, x):
            return (1.0 / (1.0 + x.square())).sum()

    @dataclass(frozen=True)
    class Laplace(Surrogate):
        def derivative(self, x):
            return 0.5 * self.alpha * torch.exp(-self.alpha * x.abs())

    return Summed(), Laplace()


def _k92(root: Path) -> Path:
    """A data folder whose 92-image files are all present but damaged."""
    from cortexsnn.data.neural import KRIEGESKORTE92_FILES

    folder = root / "kriegeskorte92"
    folder.mkdir(parents=True)
    for name in KRIEGESKORTE92_FILES:
        (folder / name).write_bytes(b"not a MATLAB file")
    return root


# ----------------------------------------------------------------------------- CLI cases
def _sim(t: Path, rec, *extra) -> list:
    """``cortexsnn similarity`` on a recording file ``rec`` (a path or a maker taking the folder)."""
    path = rec(t) if callable(rec) else rec
    return ["similarity", "--model", "sew_resnet18", "--neural-dataset", "recording", "--neural-dataset-dir", path,
            "--output-dir", t / "out", "--no-report", "--quiet", *extra]


def _savez(path: Path) -> Path:
    return _npz(path, responses=np.random.rand(6, 4))


def _good(t: Path) -> Path:
    return _npz(t / "rec.npz", responses=np.random.rand(6, 4))


_TRAIN = lambda t: ["train", f"run.out_dir={t / 'run'}", "run.device=cpu", "run.progress=false",  # noqa: E731
                    "data.workers=0", "data.image_size=16", "data.val_resize=16", "model.name=sew_resnet8",
                    "model.T=1", "run.epochs=1", "run.batch_size=2", "run.max_batches_per_epoch=1"]
_IIR = lambda *o: ["iir", "train", "--config", "configs/iir/snn_mlp_1.yaml", *o]  # noqa: E731

def _run_of(t: Path, command: str) -> Path:
    """A folder holding a (stopped) run of ``command`` ("train", "iir" or "stdp"): its checkpoint with
    the stored config of the tiny ``_TRAIN`` run, the shipped snn_mlp_1 or the shipped mozafari2018."""
    from cortexsnn.config import to_container

    out = t / f"{command}_run"
    out.mkdir()
    if command == "train":
        from cortexsnn.training.trainer import CHECKPOINT_KIND, load_train_config

        cfg = load_train_config(None, [str(a) for a in _TRAIN(t)[1:]])
        _checkpoint(out / "checkpoint_latest.pt", kind=CHECKPOINT_KIND, config=to_container(cfg))
    elif command == "iir":
        from cortexsnn.training.iir import load_iir_config

        _checkpoint(out / "checkpoint_latest.pt", kind="iir_mlp", config=to_container(load_iir_config("iir/snn_mlp_1")))
    else:
        from cortexsnn.plasticity.config import load_stdp_config

        _checkpoint(out / "checkpoint.pt", kind="stdp", model_name="mozafari2018", model={}, fit_state={},
                    config=to_container(load_stdp_config("stdp/mozafari2018")))
    return out


_STDP = lambda *o: ["stdp", "train", "--config", "configs/stdp/mozafari2018.yaml", *o]  # noqa: E731

#: (id, argv maker (tmp folder -> argv), fragment the message must contain)
CLI_CASES = [
    # --- similarity: out-of-range arguments
    ("sim-time-steps-0", lambda t: _sim(t, _good, "--time-steps", "0"), "--time-steps must be >= 1"),
    ("sim-time-steps-negative", lambda t: _sim(t, _good, "--time-steps", "-2"), "--time-steps must be >= 1"),
    ("sim-max-memory-negative", lambda t: _sim(t, _good, "--max-memory-gb", "-1"), "--max-memory-gb"),
    ("sim-max-memory-zero", lambda t: _sim(t, _good, "--max-memory-gb", "0"), "--max-memory-gb"),
    ("sim-max-memory-nan", lambda t: _sim(t, _good, "--max-memory-gb", "nan"), "--max-memory-gb"),
    ("sim-bootstrap-negative", lambda t: _sim(t, _good, "--bootstrap", "-5"), "--bootstrap must be >= 0"),
    ("sim-batch-size-0", lambda t: _sim(t, _good, "--batch-size", "0"), "--batch-size must be >= 1"),
    ("sim-image-size-0", lambda t: _sim(t, _good, "--image-size", "0"), "--image-size must be >= 1"),
    ("sim-ceiling-splits-0", lambda t: _sim(t, _good, "--ceiling-splits", "0"), "--ceiling-splits must be >= 1"),
    ("sim-shuffle-no-window", lambda t: _sim(t, _good, "--movie", "--shuffle"), "--window"),
    ("sim-time-steps-not-int", lambda t: _sim(t, _good, "--time-steps", "four"), "invalid int value"),
    # --- similarity: --best-layer files
    ("best-layer-json-list", lambda t: _sim(t, _good, "--best-layer", _results(t / "r.json", '["layer1", "layer2"]')),
     "holds a JSON list"),
    ("best-layer-invalid-json", lambda t: _sim(t, _good, "--best-layer", _results(t / "r.json", "{not json")),
     "is not valid JSON"),
    ("best-layer-empty-file", lambda t: _sim(t, _good, "--best-layer", _results(t / "r.json", "")),
     "is not valid JSON"),
    ("best-layer-other-object", lambda t: _sim(t, _good, "--best-layer", _results(t / "r.json", '{"a": 1}')),
     "a ScoreTable record needs"),
    ("best-layer-missing", lambda t: _sim(t, _good, "--best-layer", t / "absent.json"), "no results file"),
    ("best-layer-two-tables", lambda t: _sim(t, _good, "--best-layer", _results(t / "r.json", '{"tables": [{}, {}]}')),
     "exactly one score table"),
    # --- similarity: neural data files
    ("rec-missing", lambda t: _sim(t, t / "absent.npz"), "does not exist"),
    ("rec-empty-npz", lambda t: _sim(t, _bytes(t / "rec.npz", b"")), "cannot be read as an NPZ file"),
    ("rec-truncated-npz", lambda t: _sim(t, _truncated(t / "rec.npz", _savez)), "cannot be read as an NPZ file"),
    ("rec-garbage-npz", lambda t: _sim(t, _bytes(t / "rec.npz", b"hello, not a zip")), "cannot be read"),
    ("rec-1d-npz", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.arange(6.0))), "shape (6,)"),
    ("rec-4d-npz", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.zeros((2, 2, 6, 3)))), "shape (2, 2, 6, 3)"),
    ("rec-nan-npz", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.array([[1.0, np.nan]] * 6))),
     "NaN or infinite"),
    ("rec-string-dtype", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.array([["a", "b"]] * 6))),
     "must be real numbers"),
    ("rec-pickled-object-array", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.array([[{}, 1]] * 6, dtype=object))),
     "object arrays"),
    ("rec-no-responses", lambda t: _sim(t, _npz(t / "rec.npz", spikes=np.zeros((6, 4)))), "holds no responses"),
    ("rec-ids-mismatch", lambda t: _sim(t, _npz(t / "rec.npz", responses=np.zeros((6, 4)), stimulus_ids=np.arange(5))),
     "5 stimulus ids"),
    ("rec-unknown-suffix", lambda t: _sim(t, _bytes(t / "rec.txt", b"1 2 3")), "unknown recording format"),
    ("rec-1d-hdf5", lambda t: _sim(t, _h5(t / "rec.h5", np.arange(6.0))), "shape (6,)"),
    ("rec-empty-hdf5", lambda t: _sim(t, _bytes(t / "rec.h5", b"")), "cannot be read as an HDF5 file"),
    ("rec-garbage-hdf5", lambda t: _sim(t, _bytes(t / "rec.h5", b"x" * 64)), "cannot be read as an HDF5 file"),
    # --- similarity: stimulus files
    ("stimuli-0-byte-pt", lambda t: _sim(t, _good, "--stimulus-dir", _bytes(t / "s.pt", b"")),
     "stimulus tensor"),
    ("stimuli-wrong-shape-pt", lambda t: _sim(t, _good, "--stimulus-dir", _torch_save(t / "s.pt", torch.zeros(6, 8))),
     "expected [N, 3, H, W]"),
    ("stimuli-count-mismatch", lambda t: _sim(t, _good, "--stimulus-dir", _torch_save(t / "s.pt", torch.zeros(5, 3, 4, 4))),
     "5 stimuli, 6 expected"),
    ("stimuli-dir-missing", lambda t: _sim(t, _good, "--stimulus-dir", t / "absent"), "does not exist"),
    # --- checkpoints (iir test reads them first)
    ("ckpt-0-byte", lambda t: ["iir", "test", "--checkpoint", _bytes(t / "c.pt", b"")], "is empty (0 bytes"),
    ("ckpt-truncated", lambda t: ["iir", "test", "--checkpoint",
                                  _truncated(t / "c.pt", lambda p: _checkpoint(p, kind="iir_mlp",
                                                                               model={"w": torch.zeros(64, 64)}))],
     "cannot be read"),
    ("ckpt-garbage", lambda t: ["iir", "test", "--checkpoint", _bytes(t / "c.pt", b"\x00garbage" * 10)], "cannot be read"),
    ("ckpt-missing", lambda t: ["iir", "test", "--checkpoint", t / "absent.pt"], "does not exist"),
    ("ckpt-is-folder", lambda t: ["iir", "test", "--checkpoint", t], "is a folder"),
    ("ckpt-pickled-payload", lambda t: ["iir", "test", "--checkpoint",
                                        _torch_save(t / "c.pt", {"format": "cortexsnn-checkpoint", "x": _Payload()})],
     "objects other than tensors"),
    ("ckpt-not-cortexsnn", lambda t: ["iir", "test", "--checkpoint", _torch_save(t / "c.pt", {"w": torch.zeros(2)})],
     "is not a cortexsnn checkpoint"),
    ("ckpt-other-model", lambda t: ["iir", "test", "--checkpoint", _checkpoint(t / "c.pt", kind="cortexsnn-train")],
     "not an IIR model"),
    ("ckpt-no-config", lambda t: ["iir", "test", "--checkpoint", _checkpoint(t / "c.pt", kind="iir_mlp", model={})],
     "stores no config"),
    ("ckpt-wrong-architecture", lambda t: ["iir", "test", "--checkpoint",
                                           _checkpoint(t / "c.pt", kind="iir_mlp", config={},
                                                       model={"w": torch.zeros(3)})],
     "does not fit its model"),
    # --- configs
    ("iir-unknown-key", lambda t: _IIR("train.epochz=3"), "unknown config key"),
    ("iir-wrong-type", lambda t: _IIR("train.epochs=many"), "bad value for config key"),
    ("iir-T-0", lambda t: _IIR("train.length=0"), "'train.length' must be >= 1"),
    ("iir-lr-negative", lambda t: _IIR("train.lr=-0.1"), "'train.lr' must be > 0"),
    ("iir-dropout-out-of-range", lambda t: _IIR("model.dropout=1.5"), "'model.dropout' must lie in [0, 1)"),
    ("iir-unknown-choice", lambda t: _IIR("model.synapse_type=triple"), "choose one of"),
    ("iir-override-no-equals", lambda t: _IIR("train.epochs"), "key=value"),
    ("iir-config-missing", lambda t: ["iir", "train", "--config", t / "absent.yaml"], "does not exist"),
    ("iir-config-a-list", lambda t: ["iir", "train", "--config", _yaml(t / "c.yaml", "- 1\n- 2\n")], "must hold a mapping"),
    ("iir-config-bad-yaml", lambda t: ["iir", "train", "--config", _yaml(t / "c.yaml", "a: [1, 2\n")], "not valid YAML"),
    ("iir-data-dir-is-file", lambda t: _IIR("--data-dir", _bytes(t / "f", b"x")), "is not a directory"),
    ("train-T-0", lambda t: [*_TRAIN(t), "model.T=0"], "model.T must be >= 1"),
    ("train-batch-size-0", lambda t: [*_TRAIN(t), "run.batch_size=0"], "must be >= 1"),
    ("train-unknown-optimizer", lambda t: [*_TRAIN(t), "optim.optimizer=adam"], "'sgd' or 'adamw'"),
    ("train-unknown-key", lambda t: [*_TRAIN(t), "run.epoch=3"], "unknown config key"),
    ("train-config-missing", lambda t: ["train", "--config", t / "absent.yaml"], "does not exist"),
    # --- training data: paths, images, labels
    ("train-root-missing", lambda t: [*_TRAIN(t), f"data.root={t / 'absent'}"], "does not exist"),
    ("train-root-is-file", lambda t: [*_TRAIN(t), f"data.root={_bytes(t / 'f', b'x')}"], "is a file, not a folder"),
    ("train-split-is-file", lambda t: [*_TRAIN(t), f"data.root={_split_file(t)}"], "is a file, not a folder"),
    ("train-no-images", lambda t: [*_TRAIN(t), f"data.root={_image_tree(t / 'd', empty=True)}"], "holds no usable images"),
    ("train-broken-image", lambda t: [*_TRAIN(t), f"data.root={_image_tree(t / 'd', broken=True)}"], "0.png cannot be read"),
    ("train-labels-beyond-num-classes", lambda t: [*_TRAIN(t), f"data.root={_image_tree(t / 'd', ('a', 'b', 'c'))}",
                                                   "model.num_classes=2"], "model.num_classes=2"),
    ("train-pretrained-0-byte", lambda t: [*_TRAIN(t), f"data.root={_image_tree(t / 'd')}",
                                           f"model.pretrained={_bytes(t / 'w.pth', b'')}"], "is empty (0 bytes"),
    # --- demo / benchmark
    ("demo-no-download-corrupt", lambda t: ["demo", "--no-download", "--data-dir", _k92(t), "--benchmarks",
                                            "kriegeskorte92", "--output-dir", t / "out"], "is damaged"),
    ("demo-no-download-missing", lambda t: ["demo", "--no-download", "--data-dir", t, "--benchmarks", "kriegeskorte92",
                                            "--output-dir", t / "out"], "downloads are off"),
    ("demo-bootstrap-0", lambda t: ["demo", "--bootstrap", "0", "--output-dir", t / "out"], "--bootstrap must be >= 100"),
    ("demo-time-steps-0", lambda t: ["demo", "--time-steps", "0", "--output-dir", t / "out"], "--time-steps must be >= 1"),
    ("demo-max-layers-0", lambda t: ["demo", "--max-layers", "0", "--output-dir", t / "out"], "--max-layers must be >= 1"),
    ("demo-no-models", lambda t: ["demo", "--models", ",", "--output-dir", t / "out"], "names no model"),
    ("demo-checkpoint-missing", lambda t: ["demo", "--models", "sew_resnet18", "--checkpoint",
                                           f"sew_resnet18={t / 'absent.pth'}", "--output-dir", t / "out"],
     "does not exist"),
    ("demo-output-is-file", lambda t: ["demo", "--output-dir", _bytes(t / "f", b"x")], "is a file"),
    # --- one grammar: unknown keys list the valid ones, wrong types name the expected type
    ("train-unknown-key-lists-valid", lambda t: [*_TRAIN(t), "run.epoch=3"], "valid keys: data.dataset"),
    ("train-wrong-type", lambda t: [*_TRAIN(t), "run.epochs=many"], "could not be converted to integer"),
    ("train-seed-not-int", lambda t: [*_TRAIN(t), "--seed", "x"], "invalid int value"),
    ("iir-unknown-key-lists-valid", lambda t: _IIR("train.epochz=3"), "valid keys: task, model.name"),
    ("stdp-unknown-key", lambda t: _STDP("epochz=3"), "valid keys: model, epochs, train.mode"),
    ("stdp-unknown-key-in-file", lambda t: ["stdp", "train", "--config", _yaml(t / "c.yaml", "model: deep2024\n"
                                                                                       "learning_rate: 0.1\n")],
     "unknown config key 'learning_rate'"),
    ("stdp-wrong-type", lambda t: _STDP("train.batch_size=many"), "could not be converted to integer"),
    ("stdp-epochs-not-a-list", lambda t: _STDP("epochs=3"), "epochs"),
    ("stdp-unknown-model", lambda t: _STDP("model=resnet"), "choose one of"),
    ("stdp-epochs-per-stage", lambda t: _STDP("epochs=[1,1]"), "3 trainable stages"),
    ("stdp-no-config", lambda t: ["stdp", "train"], "give --config"),
    ("stdp-flat-file-of-old-options", lambda t: ["stdp", "train", "--config", _yaml(t / "c.yaml", "model: deep2024\n"
                                                                                            "mode: batched\n")],
     "mode is now train.mode"),
    ("stdp-evaluate-unknown-key", lambda t: ["stdp", "evaluate", "--checkpoint", t / "c.pt", "splitt=val"],
     "valid keys: checkpoint"),
    ("stdp-evaluate-no-checkpoint", lambda t: ["stdp", "evaluate"], "--checkpoint (or checkpoint=...)"),
    ("iir-test-unknown-key", lambda t: ["iir", "test", "--checkpoint", t / "c.pt", "splitt=val"],
     "valid keys: checkpoint, data_dir, split"),
    ("sim-unknown-key", lambda t: _sim(t, _good, "batchsize=8"), "valid keys: model, train_dataset"),
    ("sim-wrong-type", lambda t: _sim(t, _good, "batch_size=many"), "could not be converted to integer"),
    ("sim-unknown-choice-key", lambda t: _sim(t, _good, "ceiling=always"), "choose one of"),
    ("sim-missing-required", lambda t: ["similarity", "--model", "sew_resnet18"], "--neural-dataset"),
    ("sim-config-unknown-key", lambda t: _sim(t, _good, "--config", _yaml(t / "c.yaml", "metricz: rsa\n")),
     "unknown config key 'metricz'"),
    ("demo-unknown-key", lambda t: ["demo", "--output-dir", t / "out", "bootstraps=10"], "valid keys: output_dir"),
    ("demo-wrong-type", lambda t: ["demo", "--output-dir", t / "out", "bootstrap=lots"], "could not be converted"),
    ("benchmark-unknown-key", lambda t: ["benchmark", "--output-dir", t / "out", "model=x"], "valid keys:"),
    ("unknown-flag-one-line", lambda t: ["stdp", "train", "--learning-rate", "1"], "unrecognized arguments"),
    # --- resume: a folder without a run, and overrides that change the run
    ("train-resume-no-run", lambda t: ["train", "--resume", "--out", t / "empty"], "no `cortexsnn train` run"),
    ("train-resume-config-no-run", lambda t: [*_TRAIN(t), "--resume"], "no `cortexsnn train` run"),
    ("iir-resume-no-run", lambda t: _IIR("--resume", "--out", t / "empty"), "no `iir train` run"),
    ("iir-resume-stored-no-run", lambda t: ["iir", "train", "--resume", "--out", t / "empty"], "does not exist"),
    ("stdp-resume-no-run", lambda t: ["stdp", "train", "--resume", "--out", t / "empty"], "no `stdp train` run"),
    ("stdp-resume-config-no-run", lambda t: _STDP("--resume", "--out", t / "empty"), "no `stdp train` run"),
    ("train-resume-other-model", lambda t: ["train", "--resume", "--out", _run_of(t, "train"), "model.T=2"],
     "model.T: 1 -> 2"),
    ("iir-resume-other-model", lambda t: ["iir", "train", "--resume", "--out", _run_of(t, "iir"), "model.tau_m=8"],
     "model.tau_m: 4.0 -> 8.0"),
    ("iir-resume-config-other-model", lambda t: _IIR("--resume", "--out", _run_of(t, "iir"), "model.dropout=0.1"),
     "model.dropout"),
    ("stdp-resume-other-model", lambda t: ["stdp", "train", "--resume", "--out", _run_of(t, "stdp"),
                                           "train.mode=batched"], "train.mode: 'sequential' -> 'batched'"),
    ("stdp-resume-other-model-flag", lambda t: ["stdp", "train", "--resume", "--out", _run_of(t, "stdp"),
                                                "--model", "deep2024"], "model: 'mozafari2018' -> 'deep2024'"),
    ("stdp-resume-config-other-seed", lambda t: _STDP("--resume", "--out", _run_of(t, "stdp"), "--seed", "1"),
     "train.seed: 42 -> 1"),
]


def _split_file(t: Path) -> Path:
    """A data root whose ``train`` is a file, not a folder."""
    root = t / "split"
    root.mkdir()
    (root / "train").write_bytes(b"x")
    (root / "val").mkdir()
    return root


@pytest.mark.parametrize("make_argv, fragment", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(make_argv, fragment, tmp_path, capsys, monkeypatch):
    import pooch

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(pooch, "retrieve", no_network)
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # configs/ of the repository
    argv = [str(a) for a in make_argv(tmp_path)]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert fragment.lower() in err.lower(), err


# ----------------------------------------------------------------------------- API cases
def _api_cases():
    from cortexsnn.config import ConfigError, load_config
    from cortexsnn.data.images import ImageDataError, build_image_data
    from cortexsnn.data.neural import NeuralData, NeuralDataError, RDMSet, load_hdf5, load_npz
    from cortexsnn.errors import InvalidArgumentError, InvalidTypeError, PathError
    from cortexsnn.models.checkpoints import CheckpointLayoutError, load_safetensors, load_weights, read_checkpoint
    from cortexsnn.neurons import NeuronDefinitionError
    from cortexsnn.neurons.functional import neuron_multistep
    from cortexsnn.similarity import RDMGivenAsResponsesError
    from cortexsnn.similarity.benchmarks import BenchmarkDataCorrupt, load_benchmarks
    from cortexsnn.similarity.bootstrap import bootstrap_rdm_cis
    from cortexsnn.similarity.ceilings import bootstrap_ci
    from cortexsnn.similarity.features import extract_features
    from cortexsnn.similarity.rdm import rdm
    from cortexsnn.similarity.results import ResultsFileError, ScoreTable
    from cortexsnn.similarity.scoring import score_features
    from cortexsnn.similarity.suite import SuiteOptions
    from cortexsnn.neurons.functional import lif_multistep, plif_multistep
    from cortexsnn.neurons.surrogate import SurrogateError, UnsupportedSurrogateError
    from cortexsnn.training.iir import IIRConfig
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    x = torch.rand(6, 3, 4, 4)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    square = np.random.rand(8, 8)
    sym_rdm = (square + square.T) / 2
    np.fill_diagonal(sym_rdm, 0)
    responses = np.random.rand(8, 5)
    model_rdm = rdm(responses).numpy()
    summed, laplace = _user_surrogates()
    return [
        ("extract-T-0", lambda t: extract_features(net, x, layers=["1"], time_steps=0), InvalidArgumentError,
         "time_steps must be a positive integer"),
        ("extract-max-bytes-negative", lambda t: extract_features(net, x, layers=["1"], max_bytes=-1),
         InvalidArgumentError, "max_bytes must be a positive"),
        ("extract-empty-layer-list", lambda t: extract_features(net, x, layers=[]), InvalidArgumentError,
         "layers is empty"),
        ("extract-unknown-mode", lambda t: extract_features(net, x, layers=["1"], mode="video"), InvalidArgumentError,
         "mode must be"),
        ("extract-wrong-shape", lambda t: extract_features(net, x[0], layers=["1"], mode="cnn"), InvalidArgumentError,
         "stimuli must be [N, C, H, W]"),
        ("extract-integer-images", lambda t: extract_features(net, (x * 255).to(torch.uint8), layers=["1"], mode="cnn"),
         InvalidTypeError, "floating point"),
        ("rdm-given-as-responses", lambda t: rdm(sym_rdm), RDMGivenAsResponsesError, "an RDM, not responses"),
        ("rdm-1d-responses", lambda t: rdm(np.arange(5.0)), InvalidArgumentError, "[stimuli x features]"),
        ("bootstrap-ci-n-boot-0", lambda t: bootstrap_ci(model_rdm, model_rdm, n_boot=0), InvalidArgumentError,
         "n_boot must be >= 1"),
        ("bootstrap-rdm-cis-n-boot-0", lambda t: bootstrap_rdm_cis(model_rdm[None], [model_rdm[None]], n_boot=0),
         InvalidArgumentError, "n_boot must be >= 1"),
        ("score-features-n-boot-negative", lambda t: score_features({"l": responses}, NeuralData({"IT": responses},
                                                                                                np.arange(8)),
                                                                    n_boot=-1),
         InvalidArgumentError, "n_boot must be >= 0"),
        ("suite-n-boot-0", lambda t: SuiteOptions(n_boot=0), CortexSNNError, "n_boot must be >= 100"),
        ("neuraldata-1d", lambda t: NeuralData({"IT": np.arange(6.0)}, np.arange(6)), NeuralDataError, "shape (6,)"),
        ("neuraldata-nan", lambda t: NeuralData({"IT": np.full((6, 2), np.nan)}, np.arange(6)), NeuralDataError,
         "NaN"),
        ("neuraldata-no-areas", lambda t: NeuralData({}, np.arange(6)), NeuralDataError, "at least one area"),
        ("rdmset-not-square", lambda t: RDMSet(np.zeros((1, 3, 4)), ["a"]), NeuralDataError, "[sets, n, n]"),
        ("rdmset-asymmetric", lambda t: RDMSet(np.triu(np.ones((1, 4, 4)), 1), ["a"]), NeuralDataError, "symmetric"),
        ("load-npz-1d", lambda t: load_npz(_npz(t / "r.npz", responses=np.arange(4.0))), NeuralDataError,
         "r.npz: responses of 'area' have shape (4,)"),
        ("load-npz-truncated", lambda t: load_npz(_truncated(t / "r.npz", _savez)), NeuralDataError, "r.npz cannot be read"),
        ("load-hdf5-1d", lambda t: load_hdf5(_h5(t / "r.h5", np.arange(4.0))), NeuralDataError, "shape (4,)"),
        ("load-checkpoint-0-byte", lambda t: load_checkpoint(_bytes(t / "c.pt", b"")), CheckpointError, "0 bytes"),
        ("read-checkpoint-0-byte", lambda t: read_checkpoint(_bytes(t / "c.pth", b"")), CheckpointLayoutError,
         "0 bytes"),
        ("read-checkpoint-pickled", lambda t: read_checkpoint(_torch_save(t / "c.pth", {"x": _Payload()})),
         CheckpointLayoutError, "refused rather than unpickled"),
        ("read-checkpoint-missing", lambda t: read_checkpoint(t / "absent.pth"), FileNotFoundError, "does not exist"),
        ("load-weights-wrong-architecture", lambda t: load_weights(nn.Linear(3, 2), {"weight": torch.zeros(5, 5)}),
         CheckpointLayoutError, "another architecture"),
        ("load-safetensors-garbage", lambda t: load_safetensors(nn.Linear(3, 2), _bytes(t / "w.safetensors", b"xx")),
         CheckpointLayoutError, "not a readable safetensors file"),
        ("scoretable-json-list", lambda t: ScoreTable.read(_results(t / "r.json", "[1, 2]")), ResultsFileError,
         "holds a JSON list"),
        ("image-folder-broken", lambda t: _read_broken(build_image_data, t), ImageDataError, "0.png cannot be read"),
        ("image-folder-missing", lambda t: build_image_data("imagefolder", str(t / "absent")), PathError, "does not exist"),
        ("image-folder-one-class", lambda t: build_image_data("imagefolder", str(_image_tree(t / "one", classes=("a",))),
                                                               image_size=8, val_resize=8),
         ImageDataError, "one class folder"),
        ("benchmarks-no-download-corrupt", lambda t: load_benchmarks(["kriegeskorte92"], _k92(t), download=False),
         BenchmarkDataCorrupt, "is damaged"),
        ("config-unknown-key", lambda t: load_config(None, ["train.nope=1"], IIRConfig), ConfigError,
         "unknown config key"),
        ("surrogate-wrong-shape", lambda t: _backward_through_lif(summed), SurrogateError,
         "Summed.derivative returned shape () for an input of shape (2, 6)"),
        ("surrogate-user-defined-on-cpu-kernel", lambda t: _backward_through_lif(laplace, backend="cpu"),
         UnsupportedSurrogateError, "use backend='torch'"),
        ("neuron-state-on-other-device", lambda t: lif_multistep(torch.randn(4, 2, 6), torch.zeros(2, 6, device="meta")),
         InvalidArgumentError, "v_init is on meta but the input is on cpu"),
        ("plif-weight-on-other-device", lambda t: plif_multistep(torch.randn(4, 2, 6), torch.zeros((), device="meta")),
         InvalidArgumentError, "the PLIF parameter w is on meta but the input is on cpu"),
        ("generic-neuron-charge-changes-dtype",
         lambda t: neuron_multistep(x, {"v": 0.0}, lambda x_t, s: {"v": (s["v"] + x_t).double()}, lambda s: s["v"] - 1,
                                    lambda s, spike: {"v": s["v"] * (1 - spike)}),
         NeuronDefinitionError, "charge returned state variable 'v' with dtype torch.float64"),
        ("generic-neuron-reset-wrong-shape",
         lambda t: neuron_multistep(x, {"v": 0.0}, lambda x_t, s: {"v": s["v"] + x_t}, lambda s: s["v"] - 1,
                                    lambda s, spike: {"v": s["v"].mean(0)}),
         NeuronDefinitionError, "reset returned state variable 'v' with shape (4, 4)"),
    ]


def _read_broken(build_image_data, t: Path):
    """Read the damaged image of a training folder through the dataset, as a data loader does."""
    data = build_image_data("imagefolder", str(_image_tree(t / "d", broken=True)), image_size=8, val_resize=8)
    index = [i for i, (p, _) in enumerate(data.train.dataset.samples) if p.endswith("0.png")][0]
    return data.train[index]


API_CASES = _api_cases()


@pytest.mark.parametrize("call, error, fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_bad_input(call, error, fragment, tmp_path, monkeypatch):
    import pooch

    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("a download was attempted"))
    with pytest.raises(error) as info:
        call(tmp_path)
    assert isinstance(info.value, CortexSNNError), type(info.value).__mro__
    assert fragment.lower() in str(info.value).lower(), str(info.value)


def test_every_toolkit_exception_is_a_cortexsnn_error():
    """Every exception class defined in the package derives from CortexSNNError (the CLI's one catch)."""
    strays = []
    for info in pkgutil.walk_packages(cortexsnn.__path__, "cortexsnn."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # optional dependencies
            continue
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name
                    and not issubclass(obj, CortexSNNError)):
                strays.append(f"{info.name}.{name}")
    assert not strays, strays


def test_dataloader_worker_error_is_one_line(tmp_path, capsys, monkeypatch):
    """A broken image read in a DataLoader worker process still ends in one line naming the file."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    argv = [*_TRAIN(tmp_path), "data.workers=1", f"data.root={_image_tree(tmp_path / 'd', broken=True)}"]
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Original" not in err, err
    assert len(err.strip().splitlines()) == 1 and "0.png cannot be read" in err, err


# ----------------------------------------------------------------------------- kernels: correct fallbacks
def test_half_precision_on_the_cpu_runs_the_torch_path():
    """Half-precision input to a CPU neuron, even with backend='cpu' (the C kernel is float32/float64
    only): the torch path in that precision, equal to the plain step loop in the same precision."""
    from cortexsnn.neurons.functional import lif_multistep, lif_step

    for dtype in (torch.float16, torch.bfloat16):
        x = ((torch.randn(5, 3, 40) + 0.6).to(dtype)).requires_grad_()
        for backend in ("cpu", "auto"):
            spikes, v_last = lif_multistep(x, backend=backend)
            (grad,) = torch.autograd.grad(spikes.sum(), x)
            v, reference = torch.zeros((), dtype=dtype), []
            for t in range(x.shape[0]):
                s, v = lif_step(x[t], v)
                reference.append(s)
            reference = torch.stack(reference)
            (grad_ref,) = torch.autograd.grad(reference.sum(), x)
            assert spikes.dtype == dtype and torch.equal(spikes, reference) and torch.equal(v_last, v)
            torch.testing.assert_close(grad, grad_ref, rtol=2e-2, atol=2e-2)


def test_a_kernel_binary_from_another_machine_is_rebuilt(tmp_path, monkeypatch):
    """A kernel cache shared by machines with different CPUs (one home directory on a cluster): a
    binary built for another CPU, found under this machine's name, is rebuilt, never loaded."""
    import ctypes

    import cortexsnn.utils.cbuild as cbuild

    monkeypatch.setenv("CORTEXSNN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "probe.c"
    source.write_text("int probe(int x) { return x + 41; }\n")
    flags = ["-O1", "-march=native", "-shared", "-fPIC"]
    monkeypatch.setattr(cbuild, "_machine_features", lambda compiler, f: "node-a: avx512f")
    foreign_key = cbuild.build_key(source, flags)
    cbuild.compile_c_library(source, tmp_path / "foreign.so", flags, key=foreign_key)
    monkeypatch.setattr(cbuild, "_machine_features", lambda compiler, f: "node-b: avx2")
    key = cbuild.build_key(source, flags)
    target = tmp_path / "cache" / "kernels" / f"probe_{key[:16]}.so"
    target.parent.mkdir(parents=True)
    target.write_bytes((tmp_path / "foreign.so").read_bytes())
    opened, real_cdll = [], ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", lambda path, *a, **k: opened.append(cbuild._marked_for(target, key))
                        or real_cdll(path, *a, **k))
    assert cbuild.load_c_library(source, flags, "probe").probe(1) == 42
    assert opened == [True]  # the foreign binary was replaced before anything was opened
