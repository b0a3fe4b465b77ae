"""``cortexsnn similarity``: score a network's layers against neural data (Huang et al.'s ``similarity.py``).

Takes Huang et al.'s flags (``--model --train-dataset --checkpoint-path --neural-dataset
--neural-dataset-dir --metric --stimulus-dir --output-dir`` and the movie ablations
``--trial-for-clip/--clip-len``, ``--shuffle --window``, ``--replace --replace-type --window``,
``--trial-for-ablation``, ``--front-len``, ``--best-layer``) and writes self-describing results:
``results.json`` (:meth:`cortexsnn.similarity.results.ScoreTable.to_dict`) and ``scores.csv``
in ``--output-dir`` (an ablation in a sub-folder named after it, e.g.
``stimulus_shuffle/best_layer/window_300``), Huang et al.'s ``.npy`` layout with ``--save-npy``, and
the HTML report when :mod:`cortexsnn.similarity.report` is available.

Everything is checked before anything is written: a missing file, stimuli whose count differs
from the neural data's, a ``.pt`` tensor of the wrong shape, an unknown model or layer end the run
with exit code 2 and one message; results are written only at the end, each file atomically.
The run's folder is a :class:`~cortexsnn.utils.runfolder.RunFolder` (locked while the run lasts,
``run.json`` saying how it ended); a folder holding another run is refused unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "NEURAL_DATASET_CHOICES"]

#: ``--neural-dataset`` values: Huang et al.'s names, plus the public sets and a generic recording file.
NEURAL_DATASET_CHOICES = (
    "allen_natural_scenes", "allen_natural_movie_one", "allen_natural_movie_three", "macaque_face",
    "macaque_synthetic", "allen_visp_2p_ns118", "kriegeskorte92", "algonauts78", "recording",
)
_MOVIES = ("allen_natural_movie_one", "allen_natural_movie_three")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "similarity", help="score a network's layers against neural data (RSA, TSRSA, SVCCA, regression, CKA)",
        description="Score every scored layer of a model against every area of a neural dataset and write "
                    "results.json, scores.csv (and the HTML report). Flags follow Huang et al.'s similarity.py; "
                    "each is also a config key (--max-memory-gb 4 is max_memory_gb=4), settable in a --config "
                    "YAML file or as key=value.",
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, help="zoo model (cortexsnn.models.list_models()) or a torchvision CNN "
                                                  "name (resnet18, alexnet, ...: scored as a plain CNN)")
    g.add_argument("--train-dataset", default="imagenet", choices=["imagenet", "ucf101"],
                   help="what the weights were trained on: sets the classes, T (4 / 16) and the stimulus "
                        "normalisation (ImageNet mean/std / 0.5); ucf101 models see movies as one continuous run")
    g.add_argument("--checkpoint-path", "--checkpoint", dest="checkpoint_path", default=None, help="weights (.pth / .pt / .safetensors); without it (or "
                                                             "--weights) the model is UNTRAINED (random initialisation, "
                                                             "--seed)")
    g.add_argument("--weights", default=None, metavar="TAG",
                   help="registered pretrained weights of --model, TAG or MODEL=TAG (e.g. imagenet; list them with "
                        "'cortexsnn models --pretrained'); fetched and verified once, then they also set the "
                        "stimulus normalisation and T unless given")
    g.add_argument("--layers", default=None, help="comma-separated module paths (default: the model's scoring layers)")
    g.add_argument("--time-steps", type=int, default=None, help="T for static stimuli (default 4 imagenet, 16 ucf101)")
    g.add_argument("--chunk-frames", type=int, default=16, help="frames per forward call in movie mode (16)")
    g.add_argument("--batch-size", type=int, default=16, help="stimuli per forward call (static / CNN)")
    g.add_argument("--mode", choices=["auto", "static", "movie", "cnn"], default="auto",
                   help="feature extraction mode (auto: cnn for torchvision models, movie for ucf101 models on a "
                        "movie, static otherwise)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    g.add_argument("--max-memory-gb", type=float, default=2.0,
                   help="budget for the feature matrices held at once; larger layers are spilled to disk (2)")
    d = p.add_argument_group("data")
    d.add_argument("--neural-dataset", required=True, choices=NEURAL_DATASET_CHOICES,
                   help="Huang et al.'s datasets, public validation sets, or 'recording' (an NPZ / HDF5 / NWB file)")
    d.add_argument("--neural-dataset-dir", "--data-dir", dest="neural_dataset_dir", required=True,
                   help="folder of the dataset (or the recording file)")
    d.add_argument("--stimulus-dir", default=None,
                   help="folder with stimulus_{dataset}_{size}.pt (Huang et al.'s code), an image / frame folder, or a .pt / "
                        ".npy file (default: the stimuli stored with the neural data)")
    d.add_argument("--image-size", type=int, default=224, help="stimulus side in pixels (224)")
    d.add_argument("--stimulus-normalization", choices=["auto", "imagenet", "video", "none"], default="auto",
                   help="normalisation of images built from files (auto: imagenet / video by --train-dataset)")
    d.add_argument("--movie", action="store_true", help="treat a 'recording' as a movie (frames in order)")
    m = p.add_argument_group("metric")
    m.add_argument("--metric", default=None, help="RSA, TSRSA, SVCCA, TSVD-Regression (regression), Regression "
                                                  "(pca-ridge), CKA (default: TSRSA for movies, RSA otherwise)")
    m.add_argument("--seed-ties", action="store_true", help="rank without averaging ties (Huang et al.'s argsort ranks)")
    m.add_argument("--svd-solver", choices=["gram", "sklearn"], default="gram",
                   help="SVCCA / TSVD-Regression: exact (gram) or scikit-learn's randomized TruncatedSVD (Huang et al.'s code)")
    m.add_argument("--in-sample-r2", action="store_true", help="pca-ridge: Huang et al.'s in-sample R^2 (inflated)")
    m.add_argument("--cka", choices=["linear", "rbf", "linear-debiased", "rbf-debiased"], default="linear")
    m.add_argument("--ceiling", choices=["auto", "neurons", "trials", "none"], default="auto",
                   help="noise ceiling for RSA / TSRSA (auto: trials if available, else neurons split-half)")
    m.add_argument("--ceiling-splits", type=int, default=100, help="random splits of the split-half ceiling (100)")
    m.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="bootstrap replicates over stimuli for confidence intervals (RSA / TSRSA; 0 = none)")
    a = p.add_argument_group("movie ablations (Huang et al., NeurIPS 2024)")
    a.add_argument("--trial-for-clip", type=int, default=None, metavar="K", help="score K random clips ...")
    a.add_argument("--clip-len", type=int, default=None, metavar="L", help="... of L consecutive frames")
    a.add_argument("--shuffle", action="store_true", help="shuffle frames within windows of --window")
    a.add_argument("--replace", action="store_true", help="replace one frame per window of --window")
    a.add_argument("--replace-type", choices=["gaussian", "uniform", "black", "static"], default="gaussian")
    a.add_argument("--replace-stimulus", default=None,
                   help="natural scenes for --replace-type static (default: stimulus_allen_natural_scenes_{size}.pt "
                        "in --stimulus-dir)")
    a.add_argument("--window", type=int, default=None, metavar="W")
    a.add_argument("--trial-for-ablation", type=int, default=10, metavar="N", help="repeats of shuffle / replace (10)")
    a.add_argument("--front-len", type=int, default=None, metavar="F", help="score only the first F frames")
    a.add_argument("--best-layer", nargs="?", const="", default=None, metavar="RESULTS",
                   help="score only each area's best layer of a previous run: its results.json or folder "
                        "(default: the results.json in --output-dir)")
    o = p.add_argument_group("output")
    o.add_argument("--output-dir", "--out", dest="output_dir", required=True,
                   help="folder for results.json, scores.csv and the report")
    o.add_argument("--overwrite", action="store_true",
                   help="replace the results already in the run's folder (they are deleted first); without it a "
                        "folder holding another run is refused")
    o.add_argument("--save-npy", action="store_true", help="also write Huang et al.'s .npy layout under --output-dir")
    o.add_argument("--seed", type=int, default=0, help="torch seed of untrained weights and the bootstrap's seed (0, as "
                                                     "every command)")
    o.add_argument("--ablation-seed", type=int, default=2023,
                   help="seed of the movie ablations' random draws (2023, as in Huang et al., NeurIPS 2024)")
    o.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    o.add_argument("--quiet", action="store_true", help="no per-layer progress lines")
    from cortexsnn.cli.grammar import add_option_grammar

    add_option_grammar(p, "similarity")
    p.set_defaults(func=_run)


# ----------------------------------------------------------------------------- inputs
#: what a run writes into its folder (a folder holding any of them holds a run; --overwrite deletes them)
RUN_OUTPUTS = ("results.json", "scores.csv", "report.html", "depth_*.png", "heatmap_*.png", "rdms.png")


def _error(message: str) -> Exception:
    from cortexsnn.cli.main import CliError

    return CliError(message)


def _load_neural(args: argparse.Namespace) -> tuple[Any, Any, dict]:
    """``(targets, stimuli_in_data or None, info)``."""

    from cortexsnn.data import neural as N

    name, where = args.neural_dataset, Path(args.neural_dataset_dir).expanduser()
    if not where.exists():
        raise FileNotFoundError(f"--neural-dataset-dir {where} does not exist")
    if name == "allen_visp_2p_ns118":
        data = N.load_allen_2p_ns118(where)
        return data, data.stimuli, {"n": data.n_stimuli}
    if name in ("kriegeskorte92", "algonauts78"):
        from cortexsnn.similarity.benchmarks import load_dataset_benchmarks

        # the benchmark suite's targets: the same RDMs (human IT: each subject's sessions averaged, so
        # the ceiling leaves out subjects) and the same ceilings as `cortexsnn demo` / `benchmark`
        found = load_dataset_benchmarks(name, where)
        labels = {"kriegeskorte92.monkey_IT": "monkey IT", "kriegeskorte92.human_IT": "human IT",
                  "algonauts78.human_EVC": "EVC", "algonauts78.human_IT": "IT"}
        targets = {labels[b]: bench.target for b, bench in found.items()}
        first = next(iter(found.values())).stimuli
        return targets, first.images if first.images is not None else first.folder, {"n": len(first)}
    if name == "recording":
        data = N.load_recording(where)
        return data, data.stimuli, {"n": data.n_stimuli}
    data = N.load_neural_dataset(name, where)
    return data, data.stimuli, {"n": data.n_stimuli}


def _weights_cfg(args: argparse.Namespace) -> Any:
    """The :class:`~cortexsnn.models.pretrained.PretrainedCfg` named by ``--weights`` (``None`` without it)."""
    if not args.weights:
        return None
    from cortexsnn.models import get_pretrained_cfg, list_models

    if args.checkpoint_path:
        raise _error("give --weights or --checkpoint-path, not both")
    model, sep, tag = args.weights.partition("=")
    if not sep:
        model, tag = args.model, args.weights
    if not model or not tag:
        raise _error(f"--weights takes TAG or MODEL=TAG (e.g. imagenet), got {args.weights!r}")
    if model != args.model:
        raise _error(f"--weights names {model!r} but --model is {args.model!r}")
    if args.model not in list_models():
        raise _error(f"--weights needs a zoo model; {args.model!r} is not one (give its file with --checkpoint-path)")
    cfg = get_pretrained_cfg(args.model, tag)
    classes = 101 if args.train_dataset == "ucf101" else 1000
    if cfg.num_classes != classes:
        raise _error(f"{cfg.name} has {cfg.num_classes} classes but --train-dataset {args.train_dataset} means {classes}")
    return cfg


def _normalization(args: argparse.Namespace) -> Any:
    """A preset name or, for registered weights, their ``(mean, std)``."""
    if args.stimulus_normalization != "auto":
        return args.stimulus_normalization
    cfg = getattr(args, "pretrained_cfg", None)
    if cfg is not None:
        return (cfg.mean, cfg.std)
    return "video" if args.train_dataset == "ucf101" else "imagenet"


def _load_stimuli(args: argparse.Namespace, in_data: Any, n: int, movie: bool) -> Any:
    from cortexsnn.data import stimuli as St

    norm, size, kind = _normalization(args), args.image_size, ("frames" if movie else "images")
    if args.stimulus_dir:
        path = Path(args.stimulus_dir).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"--stimulus-dir {path} does not exist")
        if path.is_dir():
            seed_file = St.find_seed_stimulus_file(path, args.neural_dataset, size)
            if seed_file is not None:
                return St.load_stimulus_tensor(seed_file, expected=n)
            if not any(p.suffix.lower() in St.IMAGE_SUFFIXES for p in path.iterdir()):
                raise FileNotFoundError(
                    f"{path} holds neither stimulus_{args.neural_dataset}_{size}.pt (Huang et al.'s tensor) nor image files")
        return St.load_stimuli(path, size=size, normalization=norm, kind=kind, expected=n)
    if in_data is None:
        raise FileNotFoundError(f"the neural dataset {args.neural_dataset!r} stores no stimuli: give --stimulus-dir "
                                f"(stimulus_{args.neural_dataset}_{size}.pt or a folder of the {n} images)")
    if isinstance(in_data, Path):
        return St.load_stimuli(in_data, size=size, normalization=norm, kind=kind, expected=n)
    return St.stimuli_from_array(in_data, size=size, normalization=norm, source=f"{args.neural_dataset} (stored images)",
                                 kind=kind)


def _build_model(args: argparse.Namespace) -> tuple[Any, bool, str]:
    """``(model, is_cnn, weights description)``; zoo ANNs (``feature_mode = "cnn"``) count as CNNs."""
    from cortexsnn.models.resolve import build_network

    cfg = getattr(args, "pretrained_cfg", None)
    model, mode, record = build_network(args.model, checkpoint=args.checkpoint_path, seed=args.seed,
                                        weights=cfg.tag if cfg is not None else None,
                                        num_classes=101 if args.train_dataset == "ucf101" else 1000)
    weights = record["weights"] if cfg is None else f"{cfg.name}: {cfg.how_made} ({cfg.citation}; {cfg.checksum})"
    if args.checkpoint_path:
        weights = f"{weights} ({args.train_dataset})"
    return model, mode == "cnn", weights


def _ablation_dir(args: argparse.Namespace) -> Path:
    parts = []
    if args.shuffle:
        parts.append("stimulus_shuffle")
    elif args.replace:
        parts.append(f"stimulus_replace_{args.replace_type}")
    if args.best_layer is not None:
        parts.append("best_layer")
    if args.shuffle or args.replace:
        parts.append(f"window_{args.window}")
    if args.trial_for_clip is not None:
        parts += ["stimulus_clip", f"clip_len_{args.clip_len}"]
    if args.front_len is not None:
        parts += ["stimulus_front", f"front_len_{args.front_len}"]
    return Path(*parts) if parts else Path()


def _check_flags(args: argparse.Namespace, movie: bool) -> None:
    if args.shuffle and args.replace:
        raise _error("--shuffle and --replace are separate ablations; give one")
    if (args.shuffle or args.replace) and (args.window is None or args.window < 1):
        raise _error("--shuffle / --replace need --window W (a positive number of frames)")
    if (args.trial_for_clip is None) != (args.clip_len is None):
        raise _error("--trial-for-clip K and --clip-len L go together")
    if args.trial_for_clip is not None and (args.shuffle or args.replace):
        raise _error("--trial-for-clip cannot be combined with --shuffle / --replace")
    if (args.shuffle or args.replace or args.trial_for_clip is not None) and not movie:
        raise _error("the movie ablations need a movie (allen_natural_movie_one / _three, or --movie)")
    for flag in ("trial_for_ablation", "ceiling_splits", "chunk_frames", "batch_size", "image_size"):
        if getattr(args, flag) < 1:
            raise _error(f"--{flag.replace('_', '-')} must be >= 1")
    if args.bootstrap < 0:
        raise _error(f"--bootstrap must be >= 0 (0: no intervals; 1000 is usual), got {args.bootstrap}")
    if args.time_steps is not None and args.time_steps < 1:
        raise _error(f"--time-steps must be >= 1 (T, the steps each image is shown), got {args.time_steps}; "
                     "leave it out for the default (4 imagenet, 16 ucf101)")
    if not (math.isfinite(args.max_memory_gb) and args.max_memory_gb > 0):
        raise _error(f"--max-memory-gb must be a positive number of GiB (e.g. 2), got {args.max_memory_gb}")


# ----------------------------------------------------------------------------- the run
def _run(args: argparse.Namespace) -> int:
    import contextlib

    from cortexsnn.cli.grammar import resolve_options

    resolve_options(args)  # --config, the flags given and key=value overrides
    with contextlib.ExitStack() as stack:  # holds the run folder (a RunFolder) once the inputs are good
        return _run_in(args, stack)


def _run_in(args: argparse.Namespace, stack: Any) -> int:
    import torch

    from cortexsnn.utils.runfolder import RunFolder, check_output_folder

    from cortexsnn.similarity import ablations as A
    from cortexsnn.similarity import results as R
    from cortexsnn.similarity import scoring as S
    from cortexsnn.similarity.features import default_layers

    movie = args.neural_dataset in _MOVIES or args.movie
    _check_flags(args, movie)
    run_dir = Path(args.output_dir).expanduser() / _ablation_dir(args)
    check_output_folder(run_dir)  # before any computing; the folder is made once the inputs are good
    metric = R.canonical_metric(args.metric or ("tsrsa" if movie else "rsa"))
    best, out_root = None, Path(args.output_dir).expanduser()
    if args.best_layer is not None:  # read first: a wrong file ends the run before any model is built
        source = Path(args.best_layer).expanduser() if args.best_layer else out_root
        try:
            best = R.best_layers_from_results(source)
        except (ValueError, TypeError, AttributeError, KeyError, FileNotFoundError) as exc:
            text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            raise _error(f"--best-layer: {text}" if str(source) in text else f"--best-layer {source}: {text}") from exc
    args.pretrained_cfg = _weights_cfg(args)
    neural, in_data, info = _load_neural(args)
    stimuli = _load_stimuli(args, in_data, info["n"], movie)
    if len(stimuli) != info["n"]:
        raise _error(f"stimulus count mismatch: {len(stimuli)} stimuli for {info['n']} neural responses; both must "
                     "hold the same stimuli in the same order")
    model, cnn, weights = _build_model(args)
    mode = args.mode if args.mode != "auto" else ("cnn" if cnn else "movie" if (movie and args.train_dataset == "ucf101")
                                                 else "static")
    cfg = args.pretrained_cfg
    time_steps = args.time_steps if args.time_steps is not None else (cfg.time_steps if cfg is not None and cfg.time_steps else None) or (
        16 if args.train_dataset == "ucf101" else 4)
    try:
        layers = args.layers.split(",") if args.layers else default_layers(model, mode)
    except ValueError as exc:
        raise _error(str(exc)) from exc
    known = dict(model.named_modules())
    unknown = [n for n in layers if n not in known]
    if unknown:
        raise _error(f"{args.model} has no layers {unknown}; its scoring layers: {default_layers(model, mode)}")
    if best is not None:
        missing = sorted({v for v in best.values() if v not in layers})
        if missing:
            raise _error(f"best layers {missing} from {source} are not layers of {args.model}")
    scenes = None
    if args.replace and args.replace_type == "static":
        scenes = _scenes(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    opt = S.MetricOptions(ties="ordinal" if args.seed_ties else "average", svd_solver=args.svd_solver,
                          cv="in_sample" if args.in_sample_r2 else 5, cka=args.cka)
    config = {"train_dataset": args.train_dataset, "weights": weights, "stimuli": stimuli.normalization,
              "device": device, "command": "cortexsnn " + " ".join(sys.argv[1:]) if sys.argv else None}
    if cfg is not None:
        config["pretrained"] = cfg.to_dict()
    progress = None if args.quiet else (lambda msg: print(f"  {msg}", flush=True))
    if "UNTRAINED" in weights:
        print(f"note: {args.model} is untrained (random weights); give --weights TAG or --checkpoint-path for a "
              "trained model",
              file=sys.stderr)
    print(f"scoring {args.model} ({mode}, {len(layers)} layers) against {args.neural_dataset} with {metric} ...",
          flush=True)
    max_bytes = int(args.max_memory_gb * 2**30)
    common = dict(model_name=args.model, neural_dataset=args.neural_dataset, layers=layers, mode=mode,
                  time_steps=time_steps, chunk_frames=args.chunk_frames, batch_size=args.batch_size, device=device,
                  best_layer=best, front_len=args.front_len)
    x = stimuli.tensor
    folder = stack.enter_context(RunFolder(
        run_dir, "similarity", {k: v for k, v in vars(args).items() if k not in ("func", "overwrite")},
        outputs=RUN_OUTPUTS, overwrite=args.overwrite, argument_names={"resume": None, "overwrite": "--overwrite"}))
    try:
        if args.shuffle:
            table = A.shuffle_ablation(model, x, neural, window=args.window, trials=args.trial_for_ablation,
                                       metric=metric, options=opt, seed=args.ablation_seed, config=config, **common)
        elif args.replace:
            mean, std = stimuli.normalization.get("mean"), stimuli.normalization.get("std")
            norm = (mean, std) if mean and std else _default_norm(args)
            table = A.replace_ablation(model, x, neural, window=args.window, replace_type=args.replace_type,
                                       trials=args.trial_for_ablation, normalization=norm, scenes=scenes,
                                       metric=metric, options=opt, seed=args.ablation_seed, config=config, **common)
        elif args.trial_for_clip is not None:
            from cortexsnn.similarity.features import extract_features

            x_, neural_ = S._front(x, neural, args.front_len)
            names = [n for n in layers if best is None or n in set(best.values())]
            feats = extract_features(model, x_, layers=names, mode=mode, time_steps=time_steps,
                                     chunk_frames=args.chunk_frames, batch_size=args.batch_size, device=device,
                                     max_bytes=max_bytes)
            table = A.clip_ablation(feats, neural_, clip_len=args.clip_len, trials=args.trial_for_clip, metric=metric,
                                    model=args.model, neural_dataset=args.neural_dataset, options=opt,
                                    best_layer=best, seed=args.ablation_seed, device=device,
                                    config={**config, "mode": mode, "front_len": args.front_len})
        else:
            table = S.score_model(model, x, neural, metric=metric, options=opt, ceiling=args.ceiling,
                                  ceiling_splits=args.ceiling_splits, n_boot=args.bootstrap, bootstrap_seed=args.seed,
                                  config=config,
                                  max_bytes=max_bytes, progress=progress, **common)
    except KeyError as exc:
        raise _error(str(exc.args[0]) if exc.args else str(exc)) from exc
    written = table.write(run_dir)
    if args.save_npy:
        written.append(table.write_seed_npy(out_root))
    _summary(table, written)
    if not args.no_report:
        _report(table, run_dir)
    folder.record(*(p for p in written if run_dir in p.parents))
    return 0


def _default_norm(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    from cortexsnn.data.stimuli import NORMALIZATIONS

    norm = _normalization(args)
    mean_std = norm if isinstance(norm, tuple) else NORMALIZATIONS[norm] or ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    print(f"note: the stimulus tensor does not record its normalisation; replacement frames assume "
          f"{_normalization(args)} (--stimulus-normalization)", file=sys.stderr)
    return list(mean_std[0]), list(mean_std[1])


def _scenes(args: argparse.Namespace) -> Any:
    from cortexsnn.data import stimuli as St

    if args.replace_stimulus:
        return St.load_stimuli(args.replace_stimulus, size=args.image_size, normalization=_normalization(args)).tensor
    found = St.find_seed_stimulus_file(args.stimulus_dir, "allen_natural_scenes", args.image_size) if args.stimulus_dir else None
    if found is None:
        raise FileNotFoundError("--replace-type static needs natural scenes: give --replace-stimulus (a folder of "
                                f"images or a .pt tensor) or put stimulus_allen_natural_scenes_{args.image_size}.pt "
                                "in --stimulus-dir")
    return St.load_stimulus_tensor(found).tensor


def _summary(table: Any, written: list[Path]) -> None:
    best, scores = table.best_layer, table.best_score
    for area in table.areas:
        ceiling = (table.ceiling or {}).get(area)
        extra = ""
        if ceiling and "lower" in ceiling:  # leave-one-subject-out: bounds, not an estimate
            extra = f" (ceiling [{ceiling['lower']:.4f}, {ceiling['upper']:.4f}])"
        elif ceiling and "mean" in ceiling:
            extra = f" (ceiling {ceiling['mean']:.4f})"
        value = scores[area]
        shown = f"{value:.4f} at {best[area]}" if math.isfinite(value) else "no usable layer"
        print(f"  {area}: {shown}{extra}")
    if table.silent_layers:
        print(f"  silent layers (not scored): {', '.join(table.silent_layers)}")
    flagged = [f"{layer} vs {area} ({why})" for layer, by_area in table.flags.items()
               if layer not in table.silent_layers for area, why in by_area.items()]
    if flagged:
        print(f"  flagged scores (degenerate, left out): {'; '.join(flagged)}")
    print(f"model score ({table.metric}, max over layers, mean over areas): {_model_score_text(table)}")
    for p in written:
        print(f"wrote {p}")


def _model_score_text(table: Any) -> str:
    """The model score, or why there is none (instead of a bare ``nan``)."""
    score = table.model_score
    if math.isfinite(score):
        return f"{score:.4f}"
    if table.ceiling and len(table.ceiling) < len(table.areas):
        without = [a for a in table.areas if a not in table.ceiling]
        return (f"none: {', '.join(without)} has no noise ceiling and the other areas do, so their raw scores "
                "do not share a scale (compare each area above, or use `cortexsnn benchmark` for normalised scores)")
    return "none: an area has no scored layer"


def _report(table: Any, run_dir: Path) -> None:
    try:
        from cortexsnn.similarity import report
    except ImportError:
        print("note: HTML report skipped (cortexsnn.similarity.report is not available in this installation)",
              file=sys.stderr)
        return
    write_report = getattr(report, "write_report", None)
    if write_report is None:
        print("note: HTML report skipped (cortexsnn.similarity.report has no write_report)", file=sys.stderr)
        return
    path = write_report([table.to_dict()], run_dir, rdms=None)
    if path:
        print(f"wrote {path}")
