"""``cortexsnn train``: surrogate-gradient training of the zoo's deep SNNs (torchrun-aware)."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a deep SNN (SEW-ResNet, LoRaFB-SNet, ...) on images or UCF101 video clips",
        description="Train a zoo model from a YAML config (a file, or a shipped one such as configs/train/sew_resnet8_mnist.yaml; "
                    "`cortexsnn configs train` lists them); any key can be overridden as "
                    "section.key=value, e.g. run.epochs=3 data.root=/data/imagenet. Multi-GPU / multi-node: "
                    "torchrun --nproc_per_node N -m cortexsnn.cli.main train ...",
    )
    parser.add_argument("--config", help="YAML config file, or the name of a shipped one (configs/train/...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in run.out_dir (also after Ctrl-C / SIGTERM in the middle of an epoch)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cortexsnn.training.trainer import load_train_config, train

    cfg = load_train_config(args.config, args.overrides)
    metrics = train(cfg, resume=args.resume)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    return 0
