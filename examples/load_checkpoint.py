"""Load a published SEW-ResNet checkpoint into the zoo, check it, and re-share it as safetensors.

The SEW-ResNet checkpoints published with the original release (Fang et al., NeurIPS 2021) and
reused by Huang et al. (AAAI 2023) are training records, ``{"model": state_dict, "optimizer": ...,
"epoch": ..., "args": argparse.Namespace}``, whose keys follow SpikingJelly's containers
(``layer1.0.conv1.module.0.weight`` and ``layer1.0.conv1.module.1.weight`` for our
``layer1.0.conv1.weight`` and ``layer1.0.bn1.weight``).
:func:`cortexsnn.models.checkpoints.load_weights` reads such a file with ``torch.load(weights_only=True)``
(nothing is unpickled but ``argparse.Namespace``), recognises the key layout, maps it to the zoo's
and loads it, listing missing and unexpected keys if the architecture differs.

Without ``--checkpoint`` the script first writes such a file itself, from a seeded ``sew_resnet8``,
so that it runs offline in a few seconds; with ``--checkpoint FILE --model NAME`` it loads yours
(e.g. ``--checkpoint checkpoint_max_test_acc.pth --model sew_resnet18``, 1,000 classes). Registered
weights that the toolkit can fetch and verify itself are listed by ``cortexsnn models --pretrained``
and loaded with ``create_model(name, pretrained=True)``.

    python examples/load_checkpoint.py
    python examples/load_checkpoint.py --checkpoint sew18_checkpoint_319.pth --model sew_resnet18 --classes 1000
"""
from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import torch

from cortexsnn.encoding import repeat
from cortexsnn.models import create_model
from cortexsnn.models.checkpoints import detect_layout, load_safetensors, load_weights, read_checkpoint, save_safetensors


def to_original_sew_layout(state_dict: dict) -> dict:
    """The zoo's keys renamed as in the original SEW-ResNet release (``convN.module.0`` / ``.1``)."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"(^|\.)conv(\d)\.", r"\1conv\2.module.0.", key)
        key = re.sub(r"(^|\.)bn(\d)\.", r"\1conv\2.module.1.", key)
        key = re.sub(r"downsample\.([01])\.", r"downsample.0.module.\1.", key)
        out[key] = value
    return out


def write_published_style_checkpoint(path: Path, model_name: str, classes: int) -> dict:
    """A training record as the SEW-ResNet authors saved theirs; returns the weights it holds."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=classes)
    state = model.state_dict()
    record = {"model": to_original_sew_layout(state), "optimizer": {}, "epoch": 319,
              "args": argparse.Namespace(model=model_name, T=4, cnf="ADD")}
    torch.save(record, path)
    return state


def main(argv: list[str] | None = None) -> torch.nn.Module:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a published checkpoint (default: write one first)")
    parser.add_argument("--model", default="sew_resnet8", help="the zoo model it belongs to")
    parser.add_argument("--classes", type=int, default=10, help="its number of classes")
    parser.add_argument("--out", default=None, help="folder for the files written (default: a temporary one)")
    args = parser.parse_args(argv)

    out = Path(args.out or tempfile.mkdtemp(prefix="cortexsnn-checkpoint-example-"))
    out.mkdir(parents=True, exist_ok=True)
    expected = None
    path = Path(args.checkpoint) if args.checkpoint else out / "checkpoint_max_test_acc.pth"
    if args.checkpoint is None:
        expected = write_published_style_checkpoint(path, args.model, args.classes)

    record = read_checkpoint(path)  # weights-only
    state = record.get("model", record)
    print(f"{path.name}: epoch {record.get('epoch', '?')}, key layout {detect_layout(state)!r}, "
          f"{len(state)} tensors")
    model = create_model(args.model, num_classes=args.classes)
    load_weights(model, path)  # layout mapped, strict: every key must match
    if expected is not None:
        assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items()), "weights differ"
        print("loaded weights equal the saved ones")

    model.eval()
    size = 32 if args.classes <= 10 else 224
    with torch.no_grad():
        logits = model(repeat(torch.rand(2, 3, size, size), 4)).mean(0)  # [T, B, C, H, W] in, mean over T
    print(f"{args.model}: logits {tuple(logits.shape)}; scored layers {model.scoring_layers[:3]} ...")

    shared = save_safetensors(model, out / f"{args.model}.safetensors", metadata={"source": path.name})
    again = create_model(args.model, num_classes=args.classes)
    load_safetensors(again, shared)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    print(f"re-shared as {shared} (safetensors: loading it runs no code)")
    return model


if __name__ == "__main__":
    main()
