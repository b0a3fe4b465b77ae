"""The spec's architectures and hyperparameters (``spec/plasticity.md``): the STDP / R-STDP
networks of Mozafari et al. (2018, 2019) and their 2024 variants, registered in
:mod:`cortexsnn.models` (family ``"plastic"``; ``create_model("mozafari2018")``).

Paddings: the spec gives them for ``mozafari2018`` (2, 1, 2); the 2024 models follow the same
rule ("same" convolutions, padding = kernel // 2), the only one under which their layer sizes
work out on 28 x 28 inputs (e.g. deep2024: 28 -> 28 -> 14 -> 14 -> 7 -> 7 -> 2 -> 2x2 decision map).
"""
from __future__ import annotations

from typing import cast

from cortexsnn.models.registry import UnknownModelError, create_model, register_model
from cortexsnn.plasticity.filters import S1C1, gabor_bank
from cortexsnn.plasticity.layers import SpikeConv
from cortexsnn.plasticity.models.network import Stage, STDPNetwork
from cortexsnn.plasticity.stdp import RSTDPRule, STDPRule

__all__ = ["build_model", "MODEL_NAMES", "scale_rstdp_rates"]

N_CLASSES = 10
PER_CLASS = 20


def _c1(in_ch: int = 6, out_ch: int = 30) -> SpikeConv:
    return SpikeConv(in_ch, out_ch, 5, padding=2, threshold=15, k_winners=5, inhibition_radius=3, stdp=STDPRule())


def _c2(in_ch: int, out_ch: int) -> SpikeConv:
    return SpikeConv(in_ch, out_ch, 3, padding=1, threshold=10, k_winners=8, inhibition_radius=1, stdp=STDPRule())


def _head(in_ch: int, kernel: int = 5) -> SpikeConv:
    return SpikeConv(in_ch, N_CLASSES * PER_CLASS, kernel, padding=kernel // 2, threshold=None, rstdp=RSTDPRule())


def mozafari2018() -> STDPNetwork:
    layers = {"c1": _c1(), "c2": _c2(30, 250), "c3": _head(250)}
    ops = [("conv", "c1"), ("pool", 2), ("conv", "c2"), ("pool", 3)]
    stages = [Stage("c1", "stdp", ["c1"]), Stage("c2", "stdp", ["c2"]), Stage("c3", "rstdp", ["c3"])]
    return STDPNetwork("mozafari2018", layers, ops, ["c3"], stages)


def _deep_layers(c3_rstdp: bool) -> dict[str, SpikeConv]:
    c3 = SpikeConv(150, 250, 3, padding=1, threshold=50, k_winners=15, inhibition_radius=1, stdp=STDPRule())
    if c3_rstdp:
        # Mozafari et al.'s code (train.py) first trains C3 by unsupervised STDP like the other layers (its third
        # ``--epochs`` value), then switches C3 to R-STDP with these smaller rates (``reset_learning_rates(3)``)
        c3 = SpikeConv(150, 250, 3, padding=1, threshold=50, k_winners=15, inhibition_radius=0, stdp=STDPRule(),
                       rstdp=RSTDPRule(0.001, -0.00075, -0.001, 0.000125, stabilizer=False, lower=0.0, upper=1.0))
    return {"c1": _c1(), "c2": _c2(30, 150), "c3": c3, "c4": _head(250)}


_DEEP_OPS = [("conv", "c1"), ("pool", 2), ("conv", "c2"), ("pool", 2), ("conv", "c3"), ("pool", 3)]


def deep2024() -> STDPNetwork:
    stages = [Stage(n, "stdp", [n]) for n in ("c1", "c2", "c3")] + [Stage("c4", "rstdp", ["c4"])]
    return STDPNetwork("deep2024", _deep_layers(False), _DEEP_OPS, ["c4"], stages)


def deepr2024() -> STDPNetwork:
    """C1, C2, C3 trained by STDP (as in deep2024), then C3 and C4 together by R-STDP, one reward
    signal for both (Mozafari et al.'s ``--epochs 2 4 4 10``: four stages)."""
    stages = [Stage(n, "stdp", [n]) for n in ("c1", "c2", "c3")] + [Stage("c3+c4", "rstdp", ["c3", "c4"])]
    return STDPNetwork("deepr2024", _deep_layers(True), _DEEP_OPS, ["c4"], stages)


def deepr2024_greedy() -> STDPNetwork:
    """C1, C2, C3 trained by STDP, then C3 by R-STDP (decided through the untrained C4), then C4."""
    stages = [Stage(n, "stdp", [n]) for n in ("c1", "c2", "c3")] + [Stage("c3-r", "rstdp", ["c3"]),
                                                                     Stage("c4", "rstdp", ["c4"])]
    return STDPNetwork("deepr2024-greedy", _deep_layers(True), _DEEP_OPS, ["c4"], stages)


def inception2024() -> STDPNetwork:
    layers = {"c1": _c1(), "c2": _c2(30, 75)}
    for k in (3, 5, 7):
        layers[f"b{k}"] = SpikeConv(75, 100, k, padding=k // 2, threshold=50, k_winners=15, inhibition_radius=1, stdp=STDPRule())
    layers["c4"] = _head(300)
    ops = [("conv", "c1"), ("pool", 2), ("conv", "c2"), ("pool", 2), ("parallel", ["b3", "b5", "b7"]), ("pool", 3)]
    stages = [Stage(n, "stdp", [n]) for n in ("c1", "c2", "b3", "b5", "b7")] + [Stage("c4", "rstdp", ["c4"])]
    return STDPNetwork("inception2024", layers, ops, ["c4"], stages)


def majority2024() -> STDPNetwork:
    layers = {"c1": _c1(), "c2": _c2(30, 250)}
    for k in (3, 5, 7):
        layers[f"h{k}"] = _head(250, k)
    ops = [("conv", "c1"), ("pool", 2), ("conv", "c2"), ("pool", 3)]
    stages = [Stage("c1", "stdp", ["c1"]), Stage("c2", "stdp", ["c2"]), Stage("heads", "rstdp", ["h3", "h5", "h7"])]
    return STDPNetwork("majority2024", layers, ops, ["h3", "h5", "h7"], stages, vote="majority", tie_head=1)


def mozafari2018_shallow() -> STDPNetwork:
    """The shallow network of Mozafari et al. 2018: Gabor S1 (4 orientations, 5x5), C1 pooling,
    one thresholded R-STDP layer whose earliest spike decides (k-WTA with k = 1)."""
    coder = S1C1(gabor_bank(5, threshold=0.0), time_steps=15, norm_radius=None)
    head = SpikeConv(4, N_CLASSES * PER_CLASS, 7, padding=3, threshold=15, k_winners=1, inhibition_radius=0,
                     rstdp=RSTDPRule(stabilizer=False, lower=0.0, upper=1.0))
    stages = [Stage("s2", "rstdp", ["s2"])]
    return STDPNetwork("mozafari2018-shallow", {"s2": head}, [("pool", 2)], ["s2"], stages, coder=coder)


_PLASTIC: dict[str, str] = dict(family="plastic", input_layout="[B, 1, 28, 28] images (encode -> latencies [B, C, H, W])",
                output_layout="decisions [B], scores [B, 10] (predict)")
for _name, _builder in (
    ("mozafari2018", mozafari2018),
    ("deep2024", deep2024),
    ("deepr2024", deepr2024),
    ("deepr2024-greedy", deepr2024_greedy),
    ("inception2024", inception2024),
    ("majority2024", majority2024),
    ("mozafari2018-shallow", mozafari2018_shallow),
):
    register_model(_builder, name=_name, **_PLASTIC)
del _name, _builder

#: the STDP networks, in the order of the spec
MODEL_NAMES = ("mozafari2018", "deep2024", "deepr2024", "deepr2024-greedy", "inception2024", "majority2024",
               "mozafari2018-shallow")


def build_model(name: str) -> STDPNetwork:
    """A fresh STDP network by name (weights drawn from the current torch RNG): ``create_model(name)``
    for a model of the ``"plastic"`` family."""
    if name not in MODEL_NAMES:
        raise UnknownModelError(f"unknown STDP model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return cast(STDPNetwork, create_model(name))


def scale_rstdp_rates(model: STDPNetwork, factor: float) -> None:
    """Multiply the reward and punishment rates of every R-STDP layer of ``model`` by ``factor``
    (in place; bounds and the adaptive scaling are unchanged)."""
    if not factor > 0:
        raise ValueError(f"the rate factor must be positive, got {factor}")
    for layer in model.layers.values():
        rule = layer.rstdp
        if rule is not None:
            layer.rstdp = rule.scaled(factor)
