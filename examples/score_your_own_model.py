"""Score your own network against monkey and human IT on the 92 images of Kriegeskorte et al. (2008).

Every chosen layer of a network is compared by RSA (correlation-distance RDMs, Spearman correlation
of their upper triangles) with the monkey IT RDM (674 neurons) and the four human subjects' IT RDMs
(fMRI, each subject's two sessions averaged), with the human-IT leave-one-subject-out noise ceiling,
through the library API: :func:`cortexsnn.data.neural.load_kriegeskorte92`,
:func:`cortexsnn.similarity.load_benchmarks` (the targets and stimuli of the main job) and
:func:`cortexsnn.similarity.score_model` (every layer, any metric). For held-out layer choice, ceilings
and comparisons between models, score with :func:`cortexsnn.similarity.score_suite` (what
``cortexsnn benchmark --models mypkg.nets:build`` runs).

The network here is a small CNN defined below (random weights, a stand-in for yours), or, with
``--model resnet18``, torchvision's ResNet-18 (``--weights FILE``: its state dict, else untrained).
Replace :func:`build_network` and ``LAYERS`` with your own model and the module paths to record; a
zoo model (``cortexsnn.models.create_model``) declares its layers itself (``mode="static"``).
A few seconds on 2 CPU cores at the default 64-pixel images.

The data (four MATLAB files, 40 MB) are read from ``--data-dir``/kriegeskorte92, else
``$CORTEXSNN_DATA/kriegeskorte92``, else ``~/.cache/cortexsnn/data/kriegeskorte92``, and downloaded there
with SHA-256 checks when missing.

    python examples/score_your_own_model.py --data-dir ../shared/data
    python examples/score_your_own_model.py --model resnet18 --image-size 224 --out runs/my_scores
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from cortexsnn.data.paths import data_dir
from cortexsnn.errors import CortexSNNError
from cortexsnn.similarity import load_benchmarks, score_model

#: The module paths of the small CNN that are scored (your model: its own names, see model.named_modules()).
LAYERS = ["block1", "block2", "block3", "pool"]


def build_network() -> nn.Module:
    """A small CNN taking ``[B, 3, H, W]``: stands in for your network."""
    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))

    net = nn.Sequential()
    net.add_module("block1", block(3, 16))
    net.add_module("block2", block(16, 32))
    net.add_module("block3", block(32, 64))
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    return net


def it_targets(root) -> tuple[torch.Tensor, dict]:
    """``(stimuli [92, 3, H, W] builder, {"monkey IT": 1 RDM, "human IT": 4 subjects' RDMs})`` from the
    92-image benchmarks (the human subjects' two sessions averaged, read from descriptors)."""
    benchmarks, _ = load_benchmarks(["kriegeskorte92"], root)
    by_name = {b.name: b for b in benchmarks}
    return benchmarks[0].stimuli, {"monkey IT": by_name["kriegeskorte92.monkey_IT"].target,
                                   "human IT": by_name["kriegeskorte92.human_IT"].target}


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding kriegeskorte92/ (see above)")
    parser.add_argument("--model", choices=("small_cnn", "resnet18"), default="small_cnn")
    parser.add_argument("--weights", default=None, help="--model resnet18: a state dict file (default: untrained)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="write results.json and scores.csv here")
    args = parser.parse_args(argv)

    root = args.data_dir or data_dir()
    try:
        stimulus_set, targets = it_targets(root)  # verifies the files there; downloads missing ones
    except CortexSNNError as exc:  # offline: the message names the files and where they go
        sys.exit(str(exc))
    stimuli = stimulus_set.stimuli(args.image_size, "imagenet")

    torch.manual_seed(0)
    if args.model == "resnet18":
        import torchvision

        network = torchvision.models.resnet18(weights=None)
        if args.weights:
            network.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
        layers = None  # a torchvision ResNet's layers are known: relu, maxpool, layer1.0 ... avgpool
    else:
        network, layers = build_network(), LAYERS
    table = score_model(network.eval(), stimuli.tensor, targets, metric="rsa", model_name=args.model,
                        neural_dataset="kriegeskorte92", layers=layers, mode="cnn", batch_size=23)
    for i, layer in enumerate(table.layers):
        print(f"{layer:>12}: " + ", ".join(f"{a} {table.scores[i, j]:+.3f}" for j, a in enumerate(table.areas)))
    ceiling = (table.ceiling or {}).get("human IT")
    print(f"best layers: {table.best_layer}; model score (mean over areas of the best layer's RSA): "
          f"{table.model_score:.3f}"
          + (f"; human-IT noise ceiling {ceiling['lower']:.3f} to {ceiling['upper']:.3f}" if ceiling else ""))
    if args.out:
        table.write(args.out)
    return table


if __name__ == "__main__":
    main()
