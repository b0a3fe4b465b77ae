"""ANN-to-SNN conversion: :func:`convert` turns a trained CNN into a :class:`ConvertedSNN`.

Steps (each a function of its own, so that a user can inspect or replace one):

1. **Trace and fold** (:mod:`cortexsnn.conversion.graph`): the network is traced with ``torch.fx``;
   batch norm is folded into the convolution before it; every operation between activations must be
   linear, anything else is refused with the layer's name and type.
2. **Replace**: each activation call site becomes a :class:`RateIFNeuron` (reset by subtraction,
   initial potential ``theta / 2``, signed spikes by default); max pooling passes the max of the running spike counts.
3. **Thresholds** from calibration images (:func:`set_thresholds`): per channel or per layer, the
   maximum activation (Diehl et al., IJCNN 2015) or a percentile of it (Rueckauer et al. 2017),
   never above the activation's own bound (6 for ReLU6).
4. **Layer-wise bias calibration** (optional, :func:`calibrate_bias`), after Li et al. (ICML 2021, "A
   free lunch from ANN"): the mean rate of every channel of the SNN on the calibration images is
   compared with the ANN's mean activation at the same place, and the difference is added to the
   neuron's input current, layer by layer in execution order, so that a layer is corrected for the
   errors of the layers before it.

The calibration images must not be the images the converted network is evaluated on.

A recurrent, time-major network (LoRaFB-CNet, ``lorafb_cnet18``) is first unrolled over
``ConversionConfig.unroll_steps`` steps on the static image (:func:`~cortexsnn.conversion.unrolling.unroll`):
the converter then sees a feed-forward network on ``[B, C, H, W]`` whose output is the time mean of
the original's, and each unrolled copy of an activation becomes its own neuron layer.
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from cortexsnn.conversion.errors import ConversionError
from cortexsnn.conversion.graph import find_activations, fold_batch_norm, fold_padding, trace
from cortexsnn.conversion.modules import GatedMaxPool, RateIFNeuron
from cortexsnn.conversion.network import ConvertedSNN, _Tap
from cortexsnn.conversion.unrolling import DEFAULT_UNROLL_STEPS, Unrolled, is_time_major, unroll
from cortexsnn.neurons.base import reset

__all__ = ["ConversionConfig", "build_snn", "convert", "set_thresholds", "calibrate_bias", "activation_statistics"]

log = logging.getLogger(__name__)

ThresholdMethod = Literal["max", "percentile"]


@dataclass(frozen=True)
class ConversionConfig:
    """How a network is converted (recorded in ``ConvertedSNN.info``).

    Attributes:
        threshold: ``"max"`` or ``"percentile"`` of the calibration activations.
        percentile: the percentile for ``threshold="percentile"`` (99.9 and 99.99 are usual).
        per_channel: one threshold per channel (else one per layer).
        signed: signed spikes (see :mod:`cortexsnn.neurons.functional.rate_if`).
        burst: neurons may fire several spikes in one step, up to the activation's bound (6 for
            ReLU6; for an unbounded ReLU ``burst_headroom`` times the largest calibration activation),
            so thresholds set for resolution do not clip; ``False``: one spike per step at most.
        initial_potential: the potential at the start, as a fraction of the threshold (0.5: Bu et al.).
        bias_calibration: layer-wise bias calibration at ``calibration_steps`` (0: none).
        calibration_steps: T of the bias calibration.
        time_chunk: steps run at once by the linear layers.
        channels_last: run 4-D activations channels-last (faster convolutions on CPU: 1.3-1.4x on
            EfficientNet-Lite0 here); results agree to float rounding.
        min_calibration_images: fewer calibration images than this are refused.
        unroll_steps: ``K`` for a recurrent time-major network (``lorafb_cnet18``), unrolled over
            ``K`` steps of the repeated image before conversion (:func:`~cortexsnn.conversion.unrolling.unroll`);
            it should be the ``T`` at which the ANN is used on images (4, the zoo's static-mode
            default). Unused for a static network.
    """

    threshold: ThresholdMethod = "percentile"
    percentile: float = 99.9
    per_channel: bool = True
    signed: bool = True
    burst: bool = True
    burst_headroom: float = 2.0
    initial_potential: float = 0.5
    bias_calibration: bool = False
    calibration_steps: int = 32
    time_chunk: int = 8
    channels_last: bool = True
    min_calibration_images: int = 8
    unroll_steps: int = DEFAULT_UNROLL_STEPS


def _check_calibration(images: Tensor, config: ConversionConfig) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise ConversionError("calibration images must be a floating-point tensor [N, C, H, W] normalised as the "
                              f"network's training inputs, got {type(images).__name__}")
    if images.dim() < 2:
        raise ConversionError(f"calibration images must be [N, ...] (N images), got shape {tuple(images.shape)}")
    if images.shape[0] < config.min_calibration_images:
        raise ConversionError(f"{images.shape[0]} calibration images are too few for stable thresholds; give at least "
                              f"{config.min_calibration_images} (dozens are usual), different from the evaluation images")
    if not torch.isfinite(images).all():
        raise ConversionError("calibration images contain NaN or infinite values")


def _channels(node: fx.Node) -> int:
    meta = node.meta.get("tensor_meta")
    if meta is None or len(meta.shape) < 2:
        raise ConversionError(f"cannot tell the channels of activation {node.name!r} (shape {getattr(meta, 'shape', None)})")
    return int(meta.shape[1])


def _replace_activations(gm: fx.GraphModule, config: ConversionConfig) -> dict[str, RateIFNeuron]:
    activations = {a.node: a for a in find_activations(gm)}
    neurons: dict[str, RateIFNeuron] = {}
    for node in list(gm.graph.nodes):
        if node.name in activations:
            name = f"sn_{node.name}"
            neuron = RateIFNeuron(_channels(node), upper=activations[node.name].upper, signed=config.signed,
                                  initial_potential=config.initial_potential)
            gm.add_submodule(name, neuron)
            with gm.graph.inserting_after(node):
                new = gm.graph.call_module(name, (node.args[0],))
            if _in_place(gm, node) and isinstance(node.args[0], fx.Node):
                # PyTorch's in-place activation overwrote its input: what reads the input later reads the activation
                order = {n: i for i, n in enumerate(gm.graph.nodes)}
                for user in list(node.args[0].users):
                    if user is not node and user is not new and order[user] > order[node]:
                        user.replace_input_with(node.args[0], new)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
            new.name = node.name
            neurons[name] = neuron
        elif node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.MaxPool2d):
            name = f"gate_{node.name}"
            gm.add_submodule(name, GatedMaxPool(gm.get_submodule(node.target)))
            node.target = name
        elif node.op == "call_module" and isinstance(gm.get_submodule(node.target), (nn.MaxPool1d, nn.MaxPool3d)):
            raise ConversionError(f"layer {node.target!r} ({type(gm.get_submodule(node.target)).__name__}): only 2-D max "
                                  "pooling is converted (gated); replace it by average pooling")
    return neurons


def _in_place(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether an activation call overwrites its input (``ReLU(inplace=True)``, ``F.relu(x, inplace=True)``, ``relu_``)."""
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(node.target), "inplace", False))
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return name.endswith("_") or bool(node.kwargs.get("inplace", False)) or (
        node.op == "call_function" and name in ("relu", "relu6") and len(node.args) > 1 and node.args[1] is True)


def _insert_taps(gm: fx.GraphModule, nodes: Sequence[str]) -> _Tap:
    tap = _Tap()
    gm.add_submodule("_tap", tap)
    by_name = {n.name: n for n in gm.graph.nodes}
    for index, name in enumerate(nodes):
        node = by_name[name]
        with gm.graph.inserting_after(node):
            gm.graph.call_module("_tap", (node, index))
    return tap


def _recorded_layers(model: nn.Module, outputs: dict[str, str], folded: dict[str, str],
                     layers: Sequence[str] | None, calls: dict[str, int]) -> dict[str, str]:
    """``{layer: node holding its output}``; an unrolled network's scored layers are read at their
    time means (``model.recorded_paths``)."""
    wanted = list(layers) if layers is not None else list(getattr(model, "scoring_layers", []) or [])
    paths = {name: getattr(model, "recorded_paths", {}).get(name, name) for name in wanted}
    missing = [name for name in wanted if paths[name] not in outputs]
    if missing:
        raise ConversionError(f"layers {missing} are not module calls of {type(model).__name__}; record module paths "
                              f"such as {list(outputs)[:6]}")
    repeated = [name for name in wanted if calls.get(paths[name], 1) > 1]
    if isinstance(model, Unrolled) and repeated:
        raise ConversionError(
            f"layers {repeated} run once per unrolled step in {model.source} unrolled over {model.steps} steps, so "
            "one node is not the layer's output; record the network's scored layers (read at their mean over the "
            f"steps): {list(model.recorded_paths)[:6]}")
    mapped = {}
    for name in wanted:
        node = outputs[paths[name]]
        while node in folded:  # a folded batch norm: its output is now the convolution's
            node = folded[node]
        mapped[name] = node
    return mapped


def build_snn(model: nn.Module, example: Tensor, config: ConversionConfig | None = None, *,
              layers: Sequence[str] | None = None) -> ConvertedSNN:
    """The converted network's structure, without calibration: trace, fold, replace (thresholds 1).

    ``example``: one input batch ``[B, ...]`` of the size the network will see (shapes only). Used by
    :func:`convert`, and by :func:`load_converted` to rebuild a saved conversion. A recurrent
    time-major ``model`` is unrolled over ``config.unroll_steps`` first.
    """
    config = config or ConversionConfig()
    source = type(model).__name__
    if is_time_major(model):
        model = unroll(model, config.unroll_steps)
    gm, outputs = trace(model)
    folded = fold_batch_norm(gm)
    fold_padding(gm)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback it then raises
            ShapeProp(gm).propagate(example[:1])
    except Exception as exc:
        cause = exc.__cause__ or exc  # ShapeProp's own message is a dump of the node; the cause says what failed
        raise ConversionError(f"{type(model).__name__} does not run on inputs of shape {tuple(example.shape[1:])} "
                              f"({type(cause).__name__}: {(str(cause).splitlines() or [''])[0][:200]}); give images of the size "
                              "and channels the network was trained on") from cause
    recorded = _recorded_layers(model, outputs, folded, layers, gm.meta.get("module_calls", {}))
    neurons = _replace_activations(gm, config)
    tap = _insert_taps(gm, list(recorded.values()))
    gm.graph.lint()
    gm.recompile()
    snn = ConvertedSNN(gm, neurons, list(recorded), time_chunk=config.time_chunk, channels_last=config.channels_last)
    tap.probes = [snn.probe(name) for name in recorded]
    snn.info = {"source": source, "config": asdict(config), "neurons": len(neurons),
                "folded_batch_norms": len(folded), "input_shape": list(example.shape[1:]),
                "unrolled_steps": model.steps if isinstance(model, Unrolled) else None}
    return snn.eval()


def convert(model: nn.Module, calibration: Tensor, config: ConversionConfig | None = None, *,
            layers: Sequence[str] | None = None, batch_size: int = 16) -> ConvertedSNN:
    """Convert a trained ANN into a spiking network (see the module docstring).

    Args:
        model: a trained network of convolutions (transposed ones included), linear layers, batch norm,
            ReLU / ReLU6 / clamp, average / max pooling, residual additions and concatenations (left
            unchanged); or a recurrent time-major network with a registered unroller
            (``lorafb_cnet18``), unrolled over ``config.unroll_steps`` steps first.
        calibration: images ``[N, C, H, W]`` (normalised like the training inputs; not the images the
            SNN is evaluated on) from which thresholds (and biases) are set.
        config: the method; default :class:`ConversionConfig()`.
        layers: module paths to record (default: ``model.scoring_layers`` when it has one).
        batch_size: calibration images per forward pass.

    Returns:
        the :class:`ConvertedSNN`, in evaluation mode, with ``info`` describing the conversion.
    """
    config = config or ConversionConfig()
    _check_calibration(calibration, config)
    snn = build_snn(model, calibration, config, layers=layers)
    set_thresholds(snn, calibration, config, batch_size=batch_size)
    if config.bias_calibration:
        calibrate_bias(snn, calibration, steps=config.calibration_steps, batch_size=batch_size)
    snn.info["calibration_images"] = int(calibration.shape[0])
    log.info("converted %s: %d neuron layers, %d batch norms folded", type(model).__name__, snn.info["neurons"],
             snn.info["folded_batch_norms"])
    return snn


@torch.no_grad()
def activation_statistics(snn: ConvertedSNN, images: Tensor, *, percentile: float | None = None,
                          bins: int = 4096, batch_size: int = 16,
                          maxima: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Per-channel statistic of every neuron layer's ANN activation on ``images``.

    ``percentile=None``: the maximum; else that percentile, from a histogram of ``bins`` bins per
    channel between 0 and the channel's maximum (two passes over the images; exact to max / bins).
    Returns ``{neuron name: [C] tensor}``. ``maxima``: the per-channel maxima on the same images when
    already known (saves the first pass).
    """
    neurons = dict(zip(snn.neuron_names, snn.neurons))
    if maxima is None:
        maxima = _collect(snn, images, batch_size, neurons, lambda name, a, state: _update_max(name, a, state))
    if percentile is None:
        return maxima
    if not 0.0 < percentile <= 100.0:
        raise ConversionError(f"percentile must be in (0, 100], got {percentile}")
    hist = _collect(snn, images, batch_size, neurons,
                    lambda name, a, state: _update_hist(name, a, state, maxima[name], bins))
    out = {}
    for name, counts in hist.items():
        cdf = counts.cumsum(1)
        target = cdf[:, -1:] * (percentile / 100.0)
        index = (cdf < target).sum(1).clamp(max=bins - 1)
        out[name] = (index + 1).to(torch.float32) * maxima[name] / bins
    return out


def _channel_rows(a: Tensor) -> Tensor:
    return a.transpose(0, 1).reshape(a.shape[1], -1)


def _update_max(name: str, a: Tensor, state: dict) -> None:
    m = _channel_rows(a).amax(1)
    state[name] = m if name not in state else torch.maximum(state[name], m)


def _update_hist(name: str, a: Tensor, state: dict, maxima: Tensor, bins: int) -> None:
    rows = _channel_rows(a)
    scale = bins / maxima.clamp_min(1e-12)
    index = (rows * scale[:, None]).long().clamp_(0, bins - 1)
    index += torch.arange(rows.shape[0]).unsqueeze(1) * bins
    counts = torch.bincount(index.flatten(), minlength=rows.shape[0] * bins).reshape(rows.shape[0], bins)
    state[name] = counts if name not in state else state[name] + counts


def _collect(snn: ConvertedSNN, images: Tensor, batch_size: int, neurons: dict[str, RateIFNeuron], update) -> dict:
    state: dict = {}
    handles = [module.register_forward_hook(lambda m, i, o, name=name: update(name, o, state))
               for name, module in neurons.items()]
    try:
        with snn.analog():
            for start in range(0, images.shape[0], batch_size):
                snn(images[start:start + batch_size].unsqueeze(0))
    finally:
        for h in handles:
            h.remove()
    return state


@torch.no_grad()
def set_thresholds(snn: ConvertedSNN, calibration: Tensor, config: ConversionConfig, *, batch_size: int = 16) -> None:
    """Set every neuron's thresholds from the calibration images (see :class:`ConversionConfig`)."""
    if config.threshold not in ("max", "percentile"):
        raise ConversionError(f"unknown threshold method {config.threshold!r}; choose 'max' or 'percentile'")
    maxima = activation_statistics(snn, calibration, batch_size=batch_size)
    if not config.per_channel:
        stats = _layer_statistics(snn, calibration, config, batch_size)
    elif config.threshold == "percentile":
        stats = activation_statistics(snn, calibration, batch_size=batch_size, percentile=config.percentile,
                                      maxima=maxima)
    else:
        stats = maxima
    for name, neuron in zip(snn.neuron_names, snn.neurons):
        theta = stats[name].to(torch.float32)
        if neuron.upper is not None:
            theta = theta.clamp(max=neuron.upper)
        # a channel that never fires on the calibration images gets its layer's largest threshold
        fallback = float(theta.max()) if float(theta.max()) > 0 else (neuron.upper or 1.0)
        theta = torch.where(theta > 0, theta, torch.full_like(theta, fallback))
        neuron.threshold.copy_(theta)
        if config.burst:
            bound = (torch.full_like(theta, neuron.upper) if neuron.upper is not None
                     else torch.maximum(maxima[name] * config.burst_headroom, theta))
            neuron.max_spikes.copy_(torch.ceil(bound / theta).clamp_min(1.0))
        else:
            neuron.max_spikes.fill_(1.0)


def _layer_statistics(snn: ConvertedSNN, calibration: Tensor, config: ConversionConfig, batch_size: int) -> dict:
    """One threshold per layer: the statistic over all the layer's units (broadcast to its channels)."""
    neurons = dict(zip(snn.neuron_names, snn.neurons))
    if config.threshold == "max":
        maxima = activation_statistics(snn, calibration, batch_size=batch_size)
        return {n: m.max().expand_as(m) for n, m in maxima.items()}
    def keep(name: str, a: Tensor, state: dict) -> None:  # a subsample of every layer's values
        flat = a.flatten()
        step = max(1, flat.numel() // 200_000)
        state.setdefault(name, []).append(flat[::step].clone())

    collected = _collect(snn, calibration, batch_size, neurons, keep)
    out = {}
    for name, pieces in collected.items():
        values = torch.cat(pieces).to(torch.float64)
        q = torch.quantile(values[:2**24], config.percentile / 100.0).to(torch.float32)
        out[name] = q.expand(neurons[name].threshold.shape)
    return out


@torch.no_grad()
def calibrate_bias(snn: ConvertedSNN, calibration: Tensor, *, steps: int = 32, batch_size: int = 16) -> None:
    """Layer-wise bias calibration (Li et al., ICML 2021): layer by layer in execution order, add to each
    neuron's input current the difference between the ANN's mean activation and the SNN's mean rate per
    channel over the calibration images after ``steps`` steps.

    The ANN's activation is clipped to the neuron's threshold (the most a neuron firing every step
    can carry), so the calibration corrects the accumulated error of earlier layers, not the clipping
    chosen by the thresholds.
    """
    neurons = dict(zip(snn.neuron_names, snn.neurons))
    target = _mean_activation(snn, calibration, neurons, batch_size, analog=True)
    for name, neuron in neurons.items():
        snn_mean = _mean_activation(snn, calibration, {name: neuron}, batch_size, analog=False, steps=steps)
        neuron.bias.add_(target[name] - snn_mean[name])
    reset(snn)


def _mean_activation(snn: ConvertedSNN, images: Tensor, neurons: dict[str, RateIFNeuron], batch_size: int, *,
                     analog: bool, steps: int = 1) -> dict[str, Tensor]:
    """Per-channel mean output of ``neurons`` over images, positions and steps: the ANN's activation
    clipped to the threshold (``analog``) or the SNN's rate after ``steps`` steps."""
    sums: dict[str, Tensor] = {}
    sizes: dict[str, int] = {}

    def hook(name: str, module: RateIFNeuron, out: Tensor) -> None:
        if analog:
            out = torch.minimum(out, module.threshold.reshape(1, -1, *([1] * (out.dim() - 2))))
        rows = _channel_rows(out)
        sums[name] = rows.sum(1, dtype=torch.float64) + sums.get(name, 0.0)
        sizes[name] = rows.shape[1] + sizes.get(name, 0)

    handles = [m.register_forward_hook(lambda mod, i, o, name=name: hook(name, mod, o)) for name, m in neurons.items()]
    try:
        with snn.analog() if analog else contextlib.nullcontext():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start:start + batch_size]
                reset(snn)
                snn(batch.unsqueeze(0).expand(steps, *batch.shape))
    finally:
        for h in handles:
            h.remove()
        reset(snn)
    return {name: (s / sizes[name]).to(torch.float32) for name, s in sums.items()}
