"""``cortexsnn train``: surrogate-gradient training of the zoo's deep SNNs (torchrun-aware)."""
from __future__ import annotations

import argparse

__all__ = ["register"]

#: how the run-folder messages name the resume / overwrite arguments on the command line
RUN_FLAGS = {"resume": "--resume", "overwrite": "--overwrite"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a deep SNN (SEW-ResNet, LoRaFB-SNet, ...) on images or UCF101 video clips",
        description="Train a zoo model from a YAML config (a file, or a shipped one such as configs/train/sew_resnet8_mnist.yaml; "
                    "`cortexsnn configs train` lists them); any key can be overridden as "
                    "section.key=value, e.g. run.epochs=3 data.root=/data/imagenet. Multi-GPU / multi-node: "
                    "torchrun --nproc_per_node N -m cortexsnn.cli.main train ...",
    )
    parser.add_argument("--config", help="YAML config file, or the name of a shipped one (configs/train/...); with --resume optional (the run's stored config is used)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue the run in run.out_dir (also after Ctrl-C / SIGTERM in the middle of an epoch) "
                             "with its stored config; overrides may change only run.epochs, run.stop_after_epochs, "
                             "run.progress, run.out_dir and data.workers")
    resume.add_argument("--overwrite", action="store_true",
                        help="replace the run in run.out_dir (its checkpoints and logs are deleted first)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cortexsnn.training.trainer import load_train_config, train

    if args.resume and not args.config:
        cfg = _stored_config(args.overrides)
    else:
        cfg = load_train_config(args.config, args.overrides)
    metrics = train(cfg, resume=args.resume, overwrite=args.overwrite, argument_names=RUN_FLAGS)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return 0


def _stored_config(overrides: list[str]):
    """The config stored in the checkpoint of the run to resume, with ``overrides`` on top."""
    from pathlib import Path

    from cortexsnn.training.trainer import CHECKPOINT_KIND, load_train_config
    from cortexsnn.utils.checkpoint import CheckpointError, load_checkpoint

    out = Path(load_train_config(None, overrides).run.out_dir)
    latest = out / "checkpoint_latest.pt"
    if not latest.is_file():
        from cortexsnn.utils.runfolder import read_manifest

        if read_manifest(out) is not None:  # a run that stopped before its first checkpoint: nothing to resume
            raise CheckpointError(f"cannot resume: {latest} does not exist (the run in {out} stopped before its first "
                                  "epoch ended); start it anew with --overwrite")
        raise CheckpointError(f"cannot resume: {latest} does not exist; start without --resume "
                              "(or set run.out_dir=FOLDER of the run)")
    stored = load_checkpoint(latest, kind=CHECKPOINT_KIND).get("config") or {}
    stored.setdefault("run", {})["out_dir"] = str(out)  # where the run is now (the folder may have moved)
    return load_train_config(stored, overrides)
