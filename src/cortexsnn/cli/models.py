"""``cortexsnn models``: the zoo's models and their registered pretrained weights."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list the zoo's models and their registered pretrained weights",
        description="List the zoo's models with their family (deep, ann, iir, plastic) and weight tags (the default "
                    "marked *) or, with --pretrained, "
                    "the registered weights: source, checksum, input and normalisation, T, licence.")
    p.add_argument("pattern", nargs="?", default=None, help="glob filter on the names, e.g. 'sew_*'")
    p.add_argument("--family", choices=["deep", "ann", "iir", "plastic"], default=None,
                   help="only this family: deep (gradient-trained deep SNNs), ann, iir (Fang et al. IJCAI 2020), "
                        "plastic (STDP networks of Mozafari et al. 2018/2019)")
    p.add_argument("--pretrained", action="store_true", help="list the registered weights in detail")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cortexsnn.models import get_model_entry, get_pretrained_cfg, list_models, list_pretrained
    from cortexsnn.models.pretrained import default_tag

    if args.pretrained:
        names = list_pretrained(args.pattern)
        for name in names:
            cfg = get_pretrained_cfg(name)
            c, h, w = cfg.input_size
            print(f"{name}{'  (default)' if default_tag(cfg.model) == cfg.tag else ''}")
            print(f"  file:    {cfg.file_name}  ({cfg.checksum})")
            print(f"  source:  {cfg.where()}")
            print(f"  input:   {c}x{h}x{w}, {cfg.normalization}; T = {cfg.time_steps or 'none (ANN)'}; "
                  f"{cfg.num_classes} classes")
            print(f"  made:    {cfg.how_made}")
            print(f"  paper:   {cfg.citation}")
            print(f"  licence: {cfg.licence}")
        if not names:
            print("no registered weights match" + (f" {args.pattern!r}" if args.pattern else ""))
        return 0
    names = list_models(args.pattern, family=args.family)
    for name in names:
        tags = [n.split(".", 1)[1] for n in list_pretrained(f"{name}.*")]
        shown = ", ".join(f"{t}*" if t == default_tag(name) else t for t in tags)
        print(f"{name:28s}{get_model_entry(name).family:9s}{'weights: ' + shown if tags else ''}".rstrip())
    if not names:
        what = " and ".join(w for w in (args.pattern and repr(args.pattern), args.family and f"family {args.family}") if w)
        print(f"no model matches {what}")
    return 0
