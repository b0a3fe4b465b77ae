"""Layer-wise training of STDP networks: STDP stages, R-STDP stages, early stopping.

Update modes (``mode=``):

* ``"sequential"`` — Mozafari et al.'s semantics: the images of a batch are processed one after the
  other and the weights change after each image, before the next one is seen. Layers before the
  trained one are frozen, so their outputs are still computed for the whole batch at once; only
  the trained layer(s) run image by image (each image vectorised).
* ``"batched"`` — winners and updates of a whole batch are computed from the weights at the
  start of the batch, summed (several images may update the same feature) and applied together,
  then clamped. Much faster; the learning dynamics differ (one update per batch instead of one
  per image), so rates tuned for Mozafari et al.'s code may need smaller batches (``chunk``) to behave alike.

The STDP rate schedule (``a+`` doubling every 500 samples) follows each image's own sample
number in both modes; the R-STDP adaptive rates change after every batch of ``batch_size``.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import torch

from cortexsnn.utils.faults import fault_point
from cortexsnn.plasticity.models.network import Stage, STDPNetwork, fired_potentials
from cortexsnn.plasticity.spike_ops import (
    _check_conv_input,
    _kernel_for,
    conv_fire_values,
    conv_stdp_winners,
    decision_winners,
    last_step_potentials,
    stdp_winners,
)
from cortexsnn.plasticity.stdp import apply_stdp_batch, apply_stdp_image, stdp_delta, stdp_rates_for_samples

__all__ = ["MODES", "AdaptiveRates", "stage_inputs", "train_stdp_batch", "train_rstdp_batch", "evaluate_latencies"]

MODES = ("sequential", "batched")

_log = logging.getLogger(__name__)


@contextlib.contextmanager
def single_thread():
    """Run per-image work on one thread: the tensors of one image are too small to gain from
    PyTorch's intra-op threads, and each parallel region costs a wake-up of the other threads
    (milliseconds on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


@dataclass
class AdaptiveRates:
    """Scale factors of the R-STDP rates: reward x miss fraction, punishment x hit fraction of
    the previous batch (1 before the first batch, as in Mozafari et al.'s code)."""

    reward: float = 1.0
    punish: float = 1.0

    def update(self, hits: int, misses: int, total: int) -> None:
        self.reward = misses / total
        self.punish = hits / total


@dataclass
class _InBounds:
    """Layers whose whole weight tensor is known to lie within the bounds (clamping only the
    updated features is then equivalent to Mozafari et al.'s clamp of everything)."""

    names: set = field(default_factory=set)


def stage_inputs(model: STDPNetwork, stage: Stage, latencies: torch.Tensor) -> torch.Tensor:
    """Input latencies of a stage's first layer (frozen layers before it run batched)."""
    first = stage.layers[0]
    if first in model.heads:
        # last-step heads see only which inputs fired (pairing: fired <=> latency <= T - 1)
        return model.run_ops_fired(latencies) if model.fired_only() else model.run_ops(latencies)
    return model.run_ops(latencies, 0, model.op_index(first))


# ---------------------------------------------------------------------------------- STDP
def _stdp_winners(layer, padded: torch.Tensor, time_steps: int):
    return conv_stdp_winners(padded, layer.weight, time_steps, layer.threshold, layer.k_winners,
                             layer.inhibition_radius, layer.method)


def _stdp_sequential_c(lib, layer, padded: torch.Tensor, time_steps: int, a_plus: torch.Tensor,
                       a_minus: torch.Tensor, clamp_all: bool) -> int:
    """Sequential STDP of ``layer`` over the images of ``padded`` in the compiled kernel
    (``stdp_sequential_*``: per image the thresholded convolution, pointwise inhibition, k-WTA and
    the update, with the float operations of :func:`apply_stdp_image`). Returns the winner count."""
    import ctypes

    rule, weight = layer.stdp, layer.weight
    _check_conv_input(padded, weight)
    lat = padded.to(torch.uint8).contiguous()
    b, c, h, w = lat.shape
    f, _, kh, kw = weight.shape
    ap = a_plus.to(torch.float64).contiguous()
    an = a_minus.to(torch.float64).contiguous()
    fn = lib.stdp_sequential_f32 if weight.dtype == torch.float32 else lib.stdp_sequential_f64
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    n_winners = int(fn(ptr(lat), ptr(weight), b, c, h, w, f, kh, kw, time_steps, float(layer.threshold),
                       layer.k_winners, layer.inhibition_radius, 1, ptr(ap), ptr(an), int(rule.stabilizer),
                       float(rule.lower), float(rule.upper), int(clamp_all)))
    if n_winners < 0:
        raise MemoryError("the sequential STDP kernel could not allocate its workspace")
    return n_winners


def _chunk_delta(layer, rule, padded: torch.Tensor, winners: torch.Tensor, winner_lat: torch.Tensor,
                 valid: torch.Tensor, a_plus: torch.Tensor, a_minus: torch.Tensor) -> torch.Tensor:
    """:func:`stdp_delta` of one chunk of images (``rule``: the layer's STDP or R-STDP rule), by the
    compiled kernel when it can run (``stdp_delta_*``: the same float operations, summed in
    ``index_add_``'s order, so the result is bit-identical)."""
    weight = layer.weight
    lib = _kernel_for(padded, weight, layer.method)
    if lib is None or not weight.is_contiguous() or a_plus.dim() != 1:
        return stdp_delta(weight, padded, winners, winner_lat, valid, a_plus, a_minus, rule.stabilizer, rule.lower,
                          rule.upper)
    import ctypes

    lat = padded.to(torch.uint8).contiguous()
    b, c, h, w = lat.shape
    kh, kw = weight.shape[-2:]
    wins, wlat = winners.contiguous(), winner_lat.long().contiguous()
    ok = valid.to(torch.uint8).contiguous()
    ap, an = a_plus.to(torch.float64).contiguous(), a_minus.to(torch.float64).contiguous()
    delta = torch.zeros_like(weight)
    fn = lib.stdp_delta_f32 if weight.dtype == torch.float32 else lib.stdp_delta_f64
    ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    fn(ptr(lat), ptr(weight), b, c, h, w, kh, kw, winners.shape[1], ptr(wins), ptr(wlat), ptr(ok), ptr(ap), ptr(an),
       int(rule.stabilizer), float(rule.lower), float(rule.upper), ptr(delta))
    return delta


@torch.no_grad()
def train_stdp_batch(model: STDPNetwork, layer_name: str, inputs: torch.Tensor, mode: str, chunk: int = 100) -> dict:
    """One batch of unsupervised STDP on ``layer_name``; ``inputs`` are that layer's input latencies.

    Returns statistics: number of winners per image and the layer's convergence
    ``mean(w (1 - w))`` (SpykeTorch's C_l, 0 when every weight sits at a bound).
    """
    _check_mode(mode)
    layer = model.layers[layer_name]
    rule = layer.stdp
    if rule is None:
        raise ValueError(f"layer {layer_name} has no STDP rule")
    time_steps = model.time_steps
    padded = layer.pad(inputs, time_steps)
    batch = padded.shape[0]
    start = int(layer.samples_seen)
    a_plus, a_minus = stdp_rates_for_samples(rule, torch.arange(start + 1, start + batch + 1))
    n_winners = 0
    if mode == "sequential":
        in_bounds = bool(((layer.weight >= rule.lower) & (layer.weight <= rule.upper)).all())
        lib = _kernel_for(padded, layer.weight, layer.method)
        if lib is not None and layer.weight.is_contiguous() and layer.threshold >= 0:
            # the whole per-image loop in C: the same winners and bit-identical weights
            n_winners = _stdp_sequential_c(lib, layer, padded, time_steps, a_plus, a_minus, not in_bounds)
        else:
            with single_thread():
                for i in range(batch):
                    winners, winner_lat, valid = _stdp_winners(layer, padded[i : i + 1], time_steps)
                    apply_stdp_image(layer.weight, padded[i : i + 1], winners, winner_lat, valid, a_plus[i],
                                     a_minus[i], rule.stabilizer, rule.lower, rule.upper, clamp_all=not in_bounds)
                    in_bounds = True
                    n_winners += int(valid.sum())
    else:
        delta = torch.zeros_like(layer.weight)
        for s in range(0, batch, chunk):
            part = padded[s : s + chunk]
            winners, winner_lat, valid = _stdp_winners(layer, part, time_steps)
            delta += _chunk_delta(layer, rule, part, winners, winner_lat, valid, a_plus[s : s + chunk],
                                  a_minus[s : s + chunk])
            n_winners += int(valid.sum())
        apply_stdp_batch(layer.weight, delta, rule.lower, rule.upper)
    layer.samples_seen += batch
    w = layer.weight
    return {"winners_per_image": n_winners / max(batch, 1), "convergence": float((w * (1 - w)).mean())}


# ---------------------------------------------------------------------------------- R-STDP
def _reward_rates(rule, reward: torch.Tensor, adaptive: AdaptiveRates):
    """Per-image ``(a+, a-)``: reward rates for hits, punishment rates for misses."""
    rs = adaptive.reward if rule.adaptive else 1.0
    ps = adaptive.punish if rule.adaptive else 1.0
    f64 = dict(dtype=torch.float64)
    a_plus = torch.where(reward, torch.tensor(rule.reward_plus * rs, **f64), torch.tensor(rule.punish_plus * ps, **f64))
    a_minus = torch.where(reward, torch.tensor(rule.reward_minus * rs, **f64), torch.tensor(rule.punish_minus * ps, **f64))
    return a_plus, a_minus


def _rstdp_forward(model: STDPNetwork, stage: Stage, inputs: torch.Tensor):
    """Decision of every head, plus the thresholded R-STDP layer's winners when the stage has one.

    Returns ``(record, head_results, decision)`` where ``record`` maps a layer name to
    ``(padded input, winners [B, K, 3], winner latency [B, K], valid [B, K])``.
    """
    time_steps = model.time_steps
    record = {}
    features = inputs
    feature_layers = [n for n in stage.layers if n not in model.heads]
    if feature_layers:
        name = feature_layers[0]
        layer = model.layers[name]
        padded = layer.pad(inputs, time_steps)
        lat, values = conv_fire_values(padded, layer.weight, time_steps, layer.threshold, layer.method)
        winners, winner_lat, valid = stdp_winners(lat, values, layer.k_winners, layer.inhibition_radius, time_steps)
        record[name] = (padded, winners, winner_lat, valid)
        features = model.run_ops(lat, model.op_index(name) + 1)
    heads = []
    for head in model.heads:
        layer = model.layers[head]
        padded = layer.pad(features, time_steps)
        # dense: the head's input is a binary map, and a BLAS convolution needs no per-call
        # transposition of the (large, changing) decision weight, unlike the event kernel;
        # fired_potentials pads inside the convolution (the same potentials, fewer products)
        if layer.method == "event":
            pot = last_step_potentials(padded, layer.weight, time_steps, "event")
        else:
            fired = (features < time_steps).to(layer.weight.dtype)
            pot = fired_potentials(fired, layer.weight, layer.padding)
        winner, valid = decision_winners(pot, time_steps)
        cls = torch.where(valid, winner[:, 0] // model.features_per_class, torch.full_like(winner[:, 0], -1))
        heads.append((head, padded, winner, valid, cls))
        if head in stage.layers:
            lat_w = torch.full((winner.shape[0], 1), time_steps - 1, dtype=torch.long)
            record[head] = (padded, winner.unsqueeze(1), lat_w, valid.unsqueeze(1))
    decision = model.combine([h[4] for h in heads])
    return record, heads, decision


def _rewards(model: STDPNetwork, name: str, heads, decision: torch.Tensor, labels: torch.Tensor):
    """``(reward, active)`` per image for layer ``name``: a head in a majority vote is judged by
    its own vote, every other layer by the network's decision; silent decisions learn nothing."""
    if model.vote == "majority" and name in model.heads:
        cls = next(h[4] for h in heads if h[0] == name)
    else:
        cls = decision
    return cls == labels, cls >= 0


def _apply_rstdp(model, stage, record, heads, decision, labels, adaptive, mode_batched: bool, in_bounds: set) -> None:
    for name, (padded, winners, winner_lat, valid) in record.items():
        layer = model.layers[name]
        rule = layer.rstdp
        reward, active = _rewards(model, name, heads, decision, labels)
        a_plus, a_minus = _reward_rates(rule, reward, adaptive)
        use = valid & active.view(-1, 1)
        if mode_batched:
            delta = stdp_delta(layer.weight, padded, winners, winner_lat, use, a_plus, a_minus,
                               rule.stabilizer, rule.lower, rule.upper)
            apply_stdp_batch(layer.weight, delta, rule.lower, rule.upper)
        elif bool(use.any()):
            # Mozafari et al.'s code updates only when the network decided (reward or punishment)
            apply_stdp_image(layer.weight, padded, winners, winner_lat, use, a_plus[0], a_minus[0],
                             rule.stabilizer, rule.lower, rule.upper, clamp_all=name not in in_bounds)
            in_bounds.add(name)


@torch.no_grad()
def train_rstdp_batch(model: STDPNetwork, stage: Stage, inputs: torch.Tensor, labels: torch.Tensor, mode: str,
                      adaptive: AdaptiveRates, chunk: int = 250, sequential_chunk: int = 32) -> dict:
    """One batch of R-STDP for ``stage``; ``inputs`` from :func:`stage_inputs`.

    In sequential mode a stage of last-step decision heads only (``mozafari2018``'s C3, the
    heads of ``majority2024``...) runs :func:`_rstdp_heads_sequential`: Mozafari et al.'s per-image
    semantics, with the potentials of ``sequential_chunk`` images computed at once.

    Returns counts ``hits``, ``misses``, ``silent`` (of the network's decisions during training)
    and updates ``adaptive`` for the next batch.
    """
    _check_mode(mode)
    labels = labels.long()
    _check_labels(labels, model.n_classes)
    batch = inputs.shape[0]
    decisions = []
    if mode == "sequential" and _heads_only(model, stage):
        compiled = _rstdp_heads_sequential_c(model, stage, inputs, labels, adaptive)
        if compiled is None:
            compiled = _rstdp_heads_sequential(model, stage, inputs, labels, adaptive, chunk=sequential_chunk)
        decisions.append(compiled)
    elif mode == "sequential":
        in_bounds = {n for n in stage.layers
                     if bool(((model.layers[n].weight >= model.layers[n].rstdp.lower)
                              & (model.layers[n].weight <= model.layers[n].rstdp.upper)).all())}
        with single_thread():
            for i in range(batch):
                record, heads, decision = _rstdp_forward(model, stage, inputs[i : i + 1])
                _apply_rstdp(model, stage, record, heads, decision, labels[i : i + 1], adaptive, False, in_bounds)
                decisions.append(decision)
    else:
        deltas: dict[str, torch.Tensor] = {n: torch.zeros_like(model.layers[n].weight) for n in stage.layers}
        for s in range(0, batch, chunk):
            record, heads, decision = _rstdp_forward(model, stage, inputs[s : s + chunk])
            part_labels = labels[s : s + chunk]
            for name, (padded, winners, winner_lat, valid) in record.items():
                layer = model.layers[name]
                rule = layer.rstdp
                reward, active = _rewards(model, name, heads, decision, part_labels)
                a_plus, a_minus = _reward_rates(rule, reward, adaptive)
                deltas[name] += _chunk_delta(layer, rule, padded, winners, winner_lat, valid & active.view(-1, 1),
                                             a_plus, a_minus)
            decisions.append(decision)
        for name, delta in deltas.items():
            rule = model.layers[name].rstdp
            apply_stdp_batch(model.layers[name].weight, delta, rule.lower, rule.upper)
    decision = torch.cat(decisions)
    hits = int((decision == labels).sum())
    silent = int((decision < 0).sum())
    misses = batch - hits - silent
    adaptive.update(hits, misses, batch)
    return {"hits": hits, "misses": misses, "silent": silent}


def _heads_only(model: STDPNetwork, stage: Stage) -> bool:
    """True when the stage trains only last-step decision heads on fired maps."""
    return model.fired_only() and all(name in model.heads for name in stage.layers)


def _rstdp_heads_sequential_c(model: STDPNetwork, stage: Stage, inputs: torch.Tensor, labels: torch.Tensor,
                              adaptive: AdaptiveRates) -> torch.Tensor | None:
    """:func:`_rstdp_heads_sequential` in the compiled kernel (``rstdp_head_sequential_*``), or
    ``None`` when it does not apply (no compiler, non-CPU or non-float weights, or several heads
    judged by a common decision).

    A head is judged by its own class when it is the only head or the heads vote, so each trained
    head runs through the images on its own: per image the sparse last-step potentials of its
    fired inputs, the decision with :func:`decision_winners`' score in the same precision, and the
    update of :func:`apply_stdp_image`. The weights are those of the per-image loop (up to the
    order of the float sums of the potentials; the reference test checks them exactly).
    """
    import ctypes

    heads = list(model.heads)
    if len(heads) > 1 and model.vote != "majority":
        return None
    time_steps = model.time_steps
    labels = labels.long().contiguous()
    classes = []
    for h in heads:
        layer = model.layers[h]
        weight = layer.weight
        padded = layer.pad(inputs, time_steps).to(torch.uint8).contiguous()
        if h not in stage.layers:
            pot = torch.nn.functional.conv2d((padded < time_steps).to(weight.dtype), weight)
            winner, valid = decision_winners(pot, time_steps)
            classes.append(torch.where(valid, winner[:, 0] // model.features_per_class, torch.full_like(winner[:, 0], -1)))
            continue
        lib = _kernel_for(padded, weight, layer.method)
        if lib is None or not weight.is_contiguous():
            return None
        rule = layer.rstdp
        rs = adaptive.reward if rule.adaptive else 1.0
        ps = adaptive.punish if rule.adaptive else 1.0
        in_bounds = bool(((weight >= rule.lower) & (weight <= rule.upper)).all())
        b, c, hh, ww = padded.shape
        f, _, kh, kw = weight.shape
        out = torch.empty(b, dtype=torch.long)
        fn = lib.rstdp_head_sequential_f32 if weight.dtype == torch.float32 else lib.rstdp_head_sequential_f64
        ptr = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
        fn(ptr(padded), ptr(weight), b, c, hh, ww, f, kh, kw, time_steps, model.features_per_class, ptr(labels),
           rule.reward_plus * rs, rule.reward_minus * rs, rule.punish_plus * ps, rule.punish_minus * ps,
           int(rule.stabilizer), float(rule.lower), float(rule.upper), int(not in_bounds), ptr(out))
        classes.append(out)
    return model.combine(classes)


def _rstdp_heads_sequential(model: STDPNetwork, stage: Stage, inputs: torch.Tensor, labels: torch.Tensor,
                            adaptive: AdaptiveRates, chunk: int = 32) -> torch.Tensor:
    """Per-image R-STDP of last-step decision heads (Mozafari et al.'s semantics), returns the decisions.

    A head's input is a fired map, so its last-step potentials are ``W @ patches``: for a chunk of
    images they are computed with one matrix product from the weights at the chunk's start. An
    image's update changes one feature (the kernel of its winner) per head, so before image ``i``
    is decided, the potentials of the features changed by images ``< i`` of the chunk are
    recomputed with the current weights. Every image therefore sees exactly the weights the
    one-image-at-a-time loop would give it (up to float summation order), at the cost of one large
    product plus ``O(chunk)`` small ones per chunk.
    """
    import torch.nn.functional as F

    time_steps = model.time_steps
    batch = inputs.shape[0]
    heads = list(model.heads)
    trained = [h for h in heads if h in stage.layers]
    weights = {h: model.layers[h].weight.view(model.layers[h].out_channels, -1) for h in heads}
    in_bounds = {h for h in trained
                 if bool(((weights[h] >= model.layers[h].rstdp.lower) & (weights[h] <= model.layers[h].rstdp.upper)).all())}
    decisions = torch.full((batch,), -1, dtype=torch.long)
    for s in range(0, batch, chunk):
        part = inputs[s : s + chunk]
        n = part.shape[0]
        patches, pots, shapes = {}, {}, {}
        for h in heads:
            layer = model.layers[h]
            fired = (layer.pad(part, time_steps).long() < time_steps).to(layer.weight.dtype)
            k = layer.kernel_size
            ho, wo = fired.shape[-2] - k + 1, fired.shape[-1] - k + 1
            patches[h] = F.unfold(fired, k)  # [n, C k k, L]
            pots[h] = torch.matmul(weights[h], patches[h])  # [n, F, L]
            shapes[h] = (ho, wo)
        changed = {h: torch.zeros(weights[h].shape[0], dtype=torch.bool) for h in trained}
        for i in range(n):
            classes, winners = [], {}
            for h in heads:
                pot = pots[h][i]
                if h in changed and bool(changed[h].any()):
                    rows = changed[h].nonzero().squeeze(1)
                    pot[rows] = weights[h][rows] @ patches[h][i]
                winner, valid = decision_winners(pot.view(1, -1, *shapes[h]), time_steps)
                cls = int(winner[0, 0]) // model.features_per_class if bool(valid[0]) else -1
                winners[h] = (int(winner[0, 0]), int(winner[0, 1]) * shapes[h][1] + int(winner[0, 2]), bool(valid[0]))
                classes.append(torch.tensor([cls]))
            decision = model.combine(classes)
            decisions[s + i] = decision[0]
            label = labels[s + i : s + i + 1]
            head_view = [(h, None, None, None, c) for h, c in zip(heads, classes)]
            for h in trained:
                feature, position, valid = winners[h]
                reward, active = _rewards(model, h, head_view, decision, label)
                if not (valid and bool(active[0])):
                    continue  # Mozafari et al.'s code learns only from a decision
                rule = model.layers[h].rstdp
                a_plus, a_minus = _reward_rates(rule, reward, adaptive)
                fired_in = patches[h][i][:, position] > 0
                w = weights[h]
                rate = torch.where(fired_in, a_plus.to(w.dtype), a_minus.to(w.dtype))
                if rule.stabilizer:
                    rate = rate * ((w[feature] - rule.lower) * (rule.upper - w[feature]))
                row = (w[feature] + rate).clamp_(rule.lower, rule.upper)
                if h not in in_bounds:
                    w.clamp_(rule.lower, rule.upper)  # Mozafari et al.'s code clamps the whole tensor after an update
                    in_bounds.add(h)
                    changed[h][:] = True
                w[feature] = row
                changed[h][feature] = True
    return decisions


def _check_labels(labels: torch.Tensor, n_classes: int) -> None:
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1} for this model, got values from {int(labels.min())} "
            f"to {int(labels.max())}"
        )


@torch.no_grad()
def evaluate_latencies(model: STDPNetwork, latencies: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Decisions ``[N]`` (-1 = silent) and class scores ``[N, n_classes]`` for encoded inputs."""
    decisions, scores = [], []
    for s in range(0, latencies.shape[0], batch_size):
        d, sc = model.predict(latencies[s : s + batch_size])
        decisions.append(d)
        scores.append(sc)
    return torch.cat(decisions), torch.cat(scores)


# ---------------------------------------------------------------------------------- layer-wise fit
@torch.no_grad()
def _stage_inputs_all(model: STDPNetwork, stage: Stage, latencies: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([stage_inputs(model, stage, latencies[s : s + batch_size]) for s in range(0, latencies.shape[0], batch_size)])


@torch.no_grad()
def predict_from_stage_inputs(model: STDPNetwork, stage: Stage, inputs: torch.Tensor, batch_size: int = 1000):
    """Decisions and scores from the cached inputs of an R-STDP stage (the layers before it are frozen)."""
    decisions, scores = [], []
    first = stage.layers[0]
    for s in range(0, inputs.shape[0], batch_size):
        x = inputs[s : s + batch_size]
        if first not in model.heads:
            x = (model.run_ops_fired if model.fired_only() else model.run_ops)(x, model.op_index(first))
        pots = model.head_potentials(x)
        dec = model.head_decisions(pots, x)
        decisions.append(model.combine([d[2] for d in dec]))
        scores.append(sum(p.amax(dim=(2, 3)).view(p.shape[0], model.n_classes, -1).amax(dim=2) for p in pots))
    return torch.cat(decisions), torch.cat(scores)


def new_fit_state() -> dict:
    """Progress of a layer-wise fit (kept in checkpoints for resuming)."""
    return {"stage": 0, "epoch": 0, "adaptive": [1.0, 1.0], "best_val": -1.0, "best_weights": {},
            "bad_epochs": 0, "history": [], "done": False}


def fit(
    model: STDPNetwork,
    train_latencies: torch.Tensor,
    train_labels: torch.Tensor,
    val_latencies: torch.Tensor,
    val_labels: torch.Tensor,
    epochs: list[int],
    mode: str = "sequential",
    rstdp_mode: str | None = None,
    batch_size: int = 1000,
    stdp_batch_size: int | None = None,
    stdp_samples: int | None = None,
    patience: int = 5,
    seed: int = 42,
    state: dict | None = None,
    logger=None,
    on_epoch_end=None,
    progress: bool = True,
    verbose: bool = True,
    rstdp_rate_schedule: list[float] | None = None,
    time_budget: float | None = None,
) -> dict:
    """Train ``model`` stage by stage (``epochs[i]`` epochs for stage ``i``).

    STDP stages see the training images in a new seeded order each epoch (``stdp_samples``
    limits how many per epoch; ``stdp_batch_size`` is the update batch of the batched mode,
    default ``batch_size``). R-STDP stages run in batches of ``batch_size`` with adaptive rates,
    measure validation accuracy after every epoch, keep the best weights and stop after
    ``patience`` epochs without improvement. ``rstdp_mode`` (default ``mode``) sets the update
    mode of the R-STDP stages separately. ``on_epoch_end(state)`` is called after every epoch
    (checkpointing); a ``state`` from a checkpoint resumes where it stopped.

    ``rstdp_rate_schedule`` multiplies the four R-STDP rates of a stage's layers in R-STDP epoch
    ``e`` (1-based) by ``rstdp_rate_schedule[e - 1]``, the last value holding for later epochs (for
    example ``[4, 4, 2, 1]``: large steps first, smaller ones to settle); the factors apply on top
    of the layers' rules and of the adaptive scaling, and the rules are restored after the stage.

    ``time_budget`` (seconds, counted from this call) ends an R-STDP stage early, like early
    stopping, before an epoch that would probably not finish within the budget (judged by the
    duration of the stage's previous epoch); the stage keeps its best weights so far.
    """
    import time
    from tqdm import tqdm

    _check_mode(mode)
    _check_mode(rstdp_mode or mode)
    if len(epochs) != len(model.stages):
        raise ValueError(
            f"epochs has {len(epochs)} values but {model.name} has {len(model.stages)} trainable stages "
            f"({', '.join(model.trainable_stages())}); give one number of epochs per stage"
        )
    _check_labels(train_labels.long(), model.n_classes)
    if rstdp_rate_schedule is not None:
        rstdp_rate_schedule = [float(f) for f in rstdp_rate_schedule]
        if not rstdp_rate_schedule or not all(f > 0 for f in rstdp_rate_schedule):
            raise ValueError(f"the R-STDP rate schedule must be a non-empty list of positive factors, "
                             f"got {rstdp_rate_schedule}")
    state = state or new_fit_state()
    started = time.time()
    adaptive = AdaptiveRates(*state["adaptive"])
    # the log's step (updates so far) goes on from the checkpoint's (older checkpoints did not keep it)
    step = state.get("step", sum(len(h.get("batches", [])) for h in state["history"]))
    while state["stage"] < len(model.stages):
        index = state["stage"]
        stage = model.stages[index]
        if state["epoch"] >= epochs[index] or state.get("stopped"):
            _finish_stage(model, stage, state)
            continue
        if stage.kind == "rstdp":
            train_in = _stage_inputs_all(model, stage, train_latencies)
            val_in = _stage_inputs_all(model, stage, val_latencies)
        base_rules = {n: model.layers[n].rstdp for n in stage.layers} if stage.kind == "rstdp" else {}
        last_epoch_seconds = 0.0
        while state["epoch"] < epochs[index] and not state.get("stopped"):
            epoch = state["epoch"]
            if (time_budget is not None and stage.kind == "rstdp" and state["epoch"] > 0
                    and time.time() - started + last_epoch_seconds > time_budget):
                state["stopped"] = True
                state["history"].append({"stage": stage.name, "epoch": epoch, "time_budget_stop": True})
                if progress or verbose:
                    _log.info("%s: stopped before epoch %d, which would overrun the time budget of %.0f s",
                              stage.name, epoch + 1, time_budget)
                break
            epoch_started = time.time()
            if base_rules and rstdp_rate_schedule is not None:
                factor = rstdp_rate_schedule[min(epoch, len(rstdp_rate_schedule) - 1)]
                for name, rule in base_rules.items():
                    model.layers[name].rstdp = rule.scaled(factor)
                record_extra = {"rate_factor": factor}
            else:
                record_extra = {}
            order = torch.randperm(train_latencies.shape[0], generator=torch.Generator().manual_seed(seed + 1000 * index + epoch))
            record = {"stage": stage.name, "epoch": epoch + 1, **record_extra}
            if stage.kind == "stdp":
                order = order[:stdp_samples] if stdp_samples else order
                size = stdp_batch_size or batch_size
                stats = []
                for s in tqdm(range(0, len(order), size), desc=f"{stage.name} epoch {epoch + 1}", disable=not progress, leave=False):
                    idx = order[s : s + size]
                    inputs = stage_inputs(model, stage, train_latencies[idx])
                    stats.append(train_stdp_batch(model, stage.layers[0], inputs, mode))
                    step += 1
                    fault_point("step")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
                record["convergence"] = stats[-1]["convergence"]
                record["winners_per_image"] = sum(x["winners_per_image"] for x in stats) / len(stats)
                if logger:
                    logger.log(step, f"stdp_{stage.name}", convergence=record["convergence"], winners_per_image=record["winners_per_image"])
            else:
                hits = misses = silent = 0
                for s in tqdm(range(0, len(order), batch_size), desc=f"{stage.name} epoch {epoch + 1}", disable=not progress, leave=False):
                    idx = order[s : s + batch_size]
                    out = train_rstdp_batch(model, stage, train_in[idx], train_labels[idx], rstdp_mode or mode, adaptive)
                    hits, misses, silent = hits + out["hits"], misses + out["misses"], silent + out["silent"]
                    step += 1
                    fault_point("step")  # the fault tests' hook (cortexsnn.utils.faults); a no-op otherwise
                    if logger:
                        n = len(idx)
                        logger.log(step, "train_batch", accuracy=out["hits"] / n, error=1 - out["hits"] / n, silent=out["silent"] / n)
                n = len(order)
                decisions, _ = predict_from_stage_inputs(model, stage, val_in)
                val_acc = float((decisions == val_labels.long()).float().mean()) if len(val_labels) else 0.0
                record.update(train_accuracy=hits / n, train_silent=silent / n, val_accuracy=val_acc,
                              val_silent=float((decisions < 0).float().mean()) if len(val_labels) else 0.0)
                if logger:
                    logger.log(step, "train", accuracy=hits / n, error=1 - hits / n, silent=silent / n)
                    logger.log(step, "val", accuracy=val_acc, error=1 - val_acc, silent=record["val_silent"])
                if val_acc > state["best_val"]:
                    state["best_val"], state["bad_epochs"] = val_acc, 0
                    state["best_weights"] = {n_: model.layers[n_].weight.clone() for n_ in stage.layers}
                else:
                    state["bad_epochs"] += 1
                    if state["bad_epochs"] >= patience:
                        state["stopped"] = True
                        record["early_stopped"] = True
            state["step"] = step
            state["adaptive"] = [adaptive.reward, adaptive.punish]
            last_epoch_seconds = time.time() - epoch_started
            state["history"].append(record)
            state["epoch"] += 1
            if progress or verbose:
                _log.info(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
            if on_epoch_end:
                on_epoch_end(state)
        for name, rule in base_rules.items():
            model.layers[name].rstdp = rule
        _finish_stage(model, stage, state)
        if on_epoch_end:
            on_epoch_end(state)
    state["done"] = True
    return state


def _finish_stage(model: STDPNetwork, stage: Stage, state: dict) -> None:
    """Restore the stage's best weights (R-STDP) and move on to the next stage."""
    for name, weight in state.get("best_weights", {}).items():
        model.layers[name].weight.copy_(weight)
    state.update(stage=state["stage"] + 1, epoch=0, best_val=-1.0, best_weights={}, bad_epochs=0, stopped=False,
                 adaptive=[1.0, 1.0])
