"""``cortexsnn convert``: turn a trained ANN into a spiking network, and measure how close it stays.

    cortexsnn convert --model efficientnet_lite0 --weights imagenet --out runs/convert
    cortexsnn convert --model efficientnet_lite0 --evaluate-dir images/ --steps 8,32,128 --out runs/convert
    cortexsnn convert --model resnet18 --checkpoint resnet18.pth --calibration-dir calib/ --out runs/r18

Writes ``snn.safetensors`` (:func:`cortexsnn.conversion.save_converted`; load it again with
:func:`cortexsnn.conversion.load_converted`) and ``results.json`` (the conversion and, with
``--evaluate-dir``, its fidelity to the ANN at each T: :func:`cortexsnn.conversion.measure_fidelity`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a trained ANN (zoo, torchvision or a checkpoint) into a spiking network",
        description="ANN-to-SNN conversion: batch norm folded, signed bursting IF neurons with reset by subtraction, "
                    "thresholds from calibration images; optional fidelity check on other images.")
    p.add_argument("--model", required=True, help="zoo model (e.g. efficientnet_lite0) or torchvision model (resnet18)")
    p.add_argument("--weights", default=None, metavar="TAG", help="registered weights of a zoo model (e.g. imagenet)")
    p.add_argument("--checkpoint", default=None, help="weights file (.pth / .safetensors) instead of --weights")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--calibration-dir", default=None,
                   help="natural images for the thresholds (default: the Algonauts 78 images under $CORTEXSNN_DATA, "
                        "else crops of scikit-learn's sample photographs)")
    p.add_argument("--evaluate-dir", default=None, help="other images on which to measure fidelity to the ANN")
    p.add_argument("--steps", default="8,16,32,64", help="T values of the fidelity check (multiples of 8)")
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the weights' own, else 224)")
    p.add_argument("--threshold", choices=("percentile", "max"), default="percentile")
    p.add_argument("--percentile", type=float, default=99.9)
    p.add_argument("--per-layer", action="store_true", help="one threshold per layer (default: per channel)")
    p.add_argument("--no-signed", action="store_true", help="classic IF neurons: no negative spikes")
    p.add_argument("--no-burst", action="store_true", help="at most one spike per step")
    p.add_argument("--bias-calibration", action="store_true", help="layer-wise bias calibration (Li et al. 2021)")
    p.add_argument("--out", "--output-dir", dest="out", default="runs/convert", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="torch seed (untrained weights only)")
    from cortexsnn.cli.grammar import add_option_grammar

    add_option_grammar(p, "convert")
    p.set_defaults(func=_run)


def _error(message: str) -> Exception:
    from cortexsnn.cli.main import CliError

    return CliError(message)


def _build_ann(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """``(model, (mean, std) or "imagenet", weights description)``."""
    import torch

    from cortexsnn.models import create_model, get_model_entry, list_models, load_weights
    from cortexsnn.models.resolve import IMAGE_FAMILIES

    if args.weights and args.checkpoint:
        raise _error("give --weights or --checkpoint, not both")
    torch.manual_seed(args.seed)
    if args.model in list_models() and get_model_entry(args.model).family not in IMAGE_FAMILIES:
        raise _error(f"{args.model} is a model of the {get_model_entry(args.model).family!r} family; conversion "
                     f"takes image classifiers of the families {', '.join(IMAGE_FAMILIES)}")
    if args.model in list_models():
        model = create_model(args.model, num_classes=args.num_classes, pretrained=args.weights or False)
    else:
        from cortexsnn.models.resolve import torchvision_builder

        builder = torchvision_builder(args.model)
        if builder is None:
            zoo = ", ".join(list_models(family=IMAGE_FAMILIES))
            raise _error(f"unknown model {args.model!r}: neither in the zoo ({zoo}) nor in torchvision")
        if args.weights:
            raise _error("--weights is for zoo models; give a torchvision model's weights with --checkpoint")
        model = builder(weights=None, num_classes=args.num_classes)
    cfg = getattr(model, "pretrained_cfg", None)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
        described = str(args.checkpoint)
    elif cfg is not None:
        described = f"{cfg.model}.{cfg.tag} ({cfg.citation})"
    else:
        raise _error(f"{args.model} has no weights: converting random weights is meaningless; give --weights TAG "
                     "or --checkpoint PATH")
    normalization = (tuple(cfg.mean), tuple(cfg.std)) if cfg is not None else "imagenet"
    return model.eval(), normalization, described


def _run(args: argparse.Namespace) -> int:
    import torch

    from cortexsnn.cli.grammar import resolve_options
    from cortexsnn.conversion import ConversionConfig, convert, measure_fidelity, save_converted
    from cortexsnn.conversion.calibration import default_calibration_images
    from cortexsnn.data.stimuli import stimuli_from_folder
    from cortexsnn.utils.io import atomic_write_text

    resolve_options(args)  # --config and key=value overrides (percentile=99.99, steps=8,16)
    try:
        steps = sorted({int(s) for s in args.steps.split(",") if s.strip()})
    except ValueError:
        raise _error(f"--steps takes comma-separated integers, got {args.steps!r}") from None
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise _error(f"--out {out} is a file; give a folder")
    ann, normalization, described = _build_ann(args)
    cfg = getattr(ann, "pretrained_cfg", None)
    size = args.image_size or (cfg.input_size[-1] if cfg is not None else 224)
    calibration, calibration_source = default_calibration_images(size, normalization, args.calibration_dir)
    config = ConversionConfig(threshold=args.threshold, percentile=args.percentile, per_channel=not args.per_layer,
                              signed=not args.no_signed, burst=not args.no_burst, bias_calibration=args.bias_calibration)
    print(f"converting {args.model} ({described}) on {calibration_source} ...", file=sys.stderr, flush=True)
    with torch.no_grad():
        snn = convert(ann, calibration, config)
        record: dict[str, Any] = {"format": "cortexsnn.convert/1", "model": args.model, "weights": described,
                                  "calibration": calibration_source, "image_size": size,
                                  "normalization": normalization, "conversion": snn.info}
        if args.evaluate_dir:
            images = stimuli_from_folder(args.evaluate_dir, size=size, normalization=normalization).tensor
            result = measure_fidelity(ann, snn, images, steps=steps)
            record["fidelity"] = result.to_dict()
            for t, a, r in zip(result.steps, result.agreement, result.logit_correlation):
                print(f"T = {t:4d}: top-1 agreement with the ANN {a:.3f}, logit correlation {r:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    written = [save_converted(snn, out / "snn.safetensors", extra={"model": args.model, "weights": described,
                                                                    "normalization": normalization}),
               atomic_write_text(out / "results.json", json.dumps(record, indent=2, default=str) + "\n")]
    for path in written:
        print(f"wrote {path}")
    return 0
