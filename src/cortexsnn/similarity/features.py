"""Layer features of a network for a set of stimuli or a movie, one layer at a time.

:func:`extract_features` runs a model over stimuli with forward hooks on its scored layers and
yields ``(layer, features [N, F] float32 CPU)`` in the model's declared layer order. Three modes:

* ``"static"`` (a zoo SNN on images, Huang et al., AAAI 2023): every image is repeated ``time_steps`` times
  (``[T, B, 3, H, W]``), each layer's output is averaged over the T steps and flattened; the
  state is reset before every batch of stimuli, and batch norm runs in evaluation mode, so a
  stimulus' features do not depend on which other stimuli share its batch. With ``zscore`` the
  whole ``[N, F]`` matrix is z-scored once with one global mean and standard deviation (population
  std, ``(X - mean) / (std + 1e-10)``), as Huang et al.'s code.
* ``"movie"`` (a recurrent SNN trained on video, Huang et al., NeurIPS 2024): ``stimuli`` is ``[frames, 3, H, W]``,
  fed in consecutive chunks of ``chunk_frames`` as ``[T=chunk, B=1, 3, H, W]``; the state is reset
  *once*, before the first chunk, and carried across chunks (the model is switched to
  ``stateful`` for the run), so the frames form one continuous sequence. Each frame's feature is
  the layer's output at that step (no averaging, no z-scoring).
* ``"cnn"`` (a plain torchvision network, the papers' baselines): one forward pass of
  ``[B, 3, H, W]``, flattened, z-scored as in static mode.
* ``"steps"``: presented as in static mode, but every step kept: ``[N, T, F]`` (not z-scored), for
  scores per time step and cumulative over steps (T times the memory of static mode).

Other libraries. A SpikingJelly, snnTorch or Norse network, or any ``nn.Module``, is reset, run and
read through an adapter (:mod:`cortexsnn.similarity.adapters`, chosen from the module classes the
model contains or given as ``adapter=``): every stimulus batch starts from the reset state, a model
called one step at a time is fed ``[B, ...]`` T times, and each hooked output becomes time-major
``[steps, B, ...]``. The zoo and plain networks use the native adapter, which is what this module
did before adapters (the same calls, the same numbers). Before extracting, the first stimulus is
run twice from a reset state (``check_reset``): a model whose state the adapter cannot reset, whose
features would depend on the batch size, is a :class:`~cortexsnn.similarity.adapters.StateResetError`.

Memory. A layer of SEW-ResNet-18 at 224 px holds up to 64 x 112 x 112 = 802,816 features per
stimulus: 118 images x all 18 layers is ~0.8 GB, but 3,600 movie frames x that one layer alone is
~11.6 GB. Extraction therefore streams: the layers are split, in order, into groups whose float32
matrices fit ``max_bytes`` together, and the stimuli (or the whole movie, from its first frame,
since the state must be continuous) are run once per group; the hooks write each step's output
straight into the group's preallocated ``[N, F]`` matrices. A single layer larger than
``max_bytes`` gets a group of its own and a matrix memory-mapped to a temporary file (in
``spill_dir``; unlinked at once, so the space is freed when the tensor is released). The trade-off
is compute for memory: a larger budget means fewer passes over the stimuli; ``max_bytes=None``
runs everything in one pass and holds every layer in RAM. The metrics read a spilled matrix in
feature chunks, so it is never loaded whole. Yielded matrices are released by the extractor as
soon as they are handed out: hold on to one only as long as you need it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cortexsnn.errors import InvalidArgumentError, InvalidTypeError
from cortexsnn.similarity.adapters import (
    AdapterError,
    ModelAdapter,
    NativeAdapter,
    StateResetError,
    adapter_for,
    detect_library,
    suspect_modules,
)

__all__ = ["extract_features", "default_layers", "zscore_global", "layer_feature_sizes", "FeatureMode"]

logger = logging.getLogger(__name__)

FeatureMode = Literal["static", "movie", "cnn", "steps"]

#: Default budget for the feature matrices held at once (bytes, float32).
DEFAULT_MAX_BYTES = 2 * 2**30


def default_layers(model: nn.Module, mode: FeatureMode = "static") -> list[str]:
    """The layers scored by default: ``model.scoring_layers`` (the zoo), or for a torchvision
    ResNet (``mode="cnn"``) ``relu, maxpool, layerK.i..., avgpool`` (the zoo's SEW-ResNet order)."""
    declared = getattr(model, "scoring_layers", None)
    if declared:
        return list(declared)
    modules = dict(model.named_modules())
    if all(k in modules for k in ("conv1", "relu", "maxpool", "layer1", "avgpool")):
        names = ["relu", "maxpool"]
        k = 1
        while f"layer{k}" in modules:
            names += [f"layer{k}.{i}" for i in range(len(modules[f"layer{k}"]))]
            k += 1
        return names + ["avgpool"]
    raise ValueError(
        f"{type(model).__name__} declares no scoring_layers; name the modules to record with layers=[...] "
        f"(module paths such as {[n for n in list(modules)[1:6]]})"
    )


def zscore_global(x: Tensor, eps: float = 1e-10, chunk_rows: int | None = None) -> Tensor:
    """In place: ``(x - mean) / (std + eps)`` with one mean and one population std over the whole
    matrix (SNN-Neural-Similarity-Static's normalisation), accumulated in float64 row chunk by row chunk."""
    n = x.shape[0]
    if n == 0:
        return x
    per_row = max(1, int(np.prod(x.shape[1:])))
    step = chunk_rows or max(1, (16 * 2**20) // per_row)
    total = 0.0
    for s in range(0, n, step):
        total += float(x[s:s + step].sum(dtype=torch.float64))
    count = n * per_row
    mean = total / count
    sq = 0.0
    for s in range(0, n, step):
        sq += float((x[s:s + step].to(torch.float64) - mean).pow(2).sum())
    std = math.sqrt(sq / count)
    for s in range(0, n, step):
        x[s:s + step] = ((x[s:s + step].to(torch.float64) - mean) / (std + eps)).to(x.dtype)
    return x


@dataclass
class _Run:
    """Where the hooks write: the rows of the current batch / chunk and the per-layer step counts."""

    mode: str
    row: int = 0
    batch: int = 0
    steps: int = 1
    buffers: dict[str, Tensor] = field(default_factory=dict)
    accum: dict[str, Tensor] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    adapter: ModelAdapter = field(default_factory=NativeAdapter)


def _make_hook(name: str, run: _Run):
    def hook(module: nn.Module, inputs: object, output: object) -> None:
        out = run.adapter.layer_output(name, module, output, run.mode != "cnn").detach()
        if run.mode == "cnn":
            if out.shape[0] != run.batch:
                raise ValueError(f"layer {name!r} output {tuple(out.shape)} does not start with the batch size "
                                 f"{run.batch}; mode='cnn' expects [B, ...] outputs")
            pieces, flat = 1, out.reshape(run.batch, -1)
        else:
            if out.dim() < 2 or out.shape[1] != run.batch:
                raise ValueError(f"layer {name!r} output {tuple(out.shape)} is not time-major [T, B={run.batch}, ...]; "
                                 f"use mode='cnn' for a network without a time dimension{_step_hint(run.adapter)}")
            pieces, flat = out.shape[0], out.reshape(out.shape[0], run.batch, -1)
        run.shapes.setdefault(name, tuple(out.shape[1 if run.mode == "cnn" else 2:]))
        buf = run.buffers.get(name)
        if buf is None:  # probing shapes only
            run.seen[name] = run.seen.get(name, 0) + pieces
            return
        if flat.shape[-1] * (run.steps if run.mode == "steps" else 1) != buf.shape[1]:
            raise ValueError(f"layer {name!r} gave {flat.shape[-1]} features per stimulus, {buf.shape[1]} expected "
                             "(stimuli of different sizes?)")
        done = run.seen.get(name, 0)
        if done + pieces > run.steps:
            raise ValueError(f"layer {name!r} produced more than {run.steps} time steps for one forward pass"
                             f"{_step_hint(run.adapter)}")
        if run.mode == "movie":  # one row per frame, in time order
            start = run.row + done
            buf[start:start + pieces] = flat[:, 0].to("cpu", torch.float32)
        elif run.mode == "steps":  # every step, step-major within a stimulus' row
            f = flat.shape[-1]
            buf[run.row:run.row + run.batch, done * f:(done + pieces) * f] = \
                flat.permute(1, 0, 2).reshape(run.batch, -1).to("cpu", torch.float32)
        elif run.mode == "static":  # sum over T, written out (averaged) after the pass
            acc = run.accum.get(name)
            s = flat.sum(dim=0, dtype=torch.float32)
            run.accum[name] = s if acc is None else acc + s
        else:
            buf[run.row:run.row + run.batch] = flat.to("cpu", torch.float32)
        run.seen[name] = done + pieces

    return hook


@contextlib.contextmanager
def _hooks(model: nn.Module, names: Sequence[str], run: _Run) -> Iterator[None]:
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise KeyError(f"{type(model).__name__} has no layers {unknown}; "
                       f"scored layers: {getattr(model, 'scoring_layers', None) or 'none declared'}")
    handles = [modules[n].register_forward_hook(_make_hook(n, run)) for n in names]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _evaluation(model: nn.Module, stateful: bool | None, adapter: ModelAdapter) -> Iterator[None]:
    """Evaluation mode, no autograd, optionally ``stateful``; restores the model's flags and
    resets its state afterwards."""
    was_training = model.training
    had_stateful = hasattr(model, "stateful")
    old_stateful = getattr(model, "stateful", None)
    model.eval()
    if stateful is not None and had_stateful:
        model.stateful = stateful
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)
        if stateful is not None and had_stateful:
            model.stateful = old_stateful
        adapter.reset(model)


def _check_stimuli(stimuli: Tensor, mode: str) -> None:
    if not isinstance(stimuli, Tensor):
        raise InvalidTypeError(f"stimuli must be a torch tensor [N, C, H, W], got {type(stimuli).__name__}")
    if stimuli.dim() != 4:
        what = "[frames, C, H, W]" if mode == "movie" else "[N, C, H, W]"
        raise InvalidArgumentError(f"stimuli must be {what}, got shape {tuple(stimuli.shape)}")
    if stimuli.shape[0] < 1:
        raise InvalidArgumentError("no stimuli given")
    if not stimuli.is_floating_point():
        raise InvalidTypeError(f"stimuli must be floating point (normalised images), got {stimuli.dtype}; "
                        "see cortexsnn.data.stimuli")


def _forward(model: nn.Module, x: Tensor, mode: str, time_steps: int, adapter: ModelAdapter) -> None:
    if mode in ("static", "steps"):
        adapter.forward(model, x.unsqueeze(0).expand(time_steps, *x.shape))
    elif mode == "movie":
        adapter.forward(model, x.unsqueeze(1))
    else:
        adapter.forward_batch(model, x)


def layer_feature_sizes(model: nn.Module, stimuli: Tensor, layers: Sequence[str], *, mode: FeatureMode = "static",
                        time_steps: int = 4, device: str | torch.device | None = None,
                        adapter: ModelAdapter | str | None = None) -> dict[str, tuple[int, ...]]:
    """Per-stimulus output shape of each layer (without time and batch), from one forward pass of
    the first stimulus (one step in movie mode); the model's state is reset afterwards.
    ``adapter`` as in :func:`extract_features`."""
    dev = _device(model, device)
    adapt = adapter_for(model, adapter)
    run = _Run(mode=mode, batch=1, steps=time_steps if mode in ("static", "steps") else 1, adapter=adapt)
    with _evaluation(model, None if mode != "movie" else True, adapt), _hooks(model, layers, run):
        adapt.reset(model)
        try:
            _forward(model, stimuli[:1].to(dev, torch.float32), mode, time_steps, adapt)
        except RuntimeError as exc:
            layout = {"static": "[T, B, C, H, W] (an image repeated over T)", "movie": "[T, B=1, C, H, W] (frames)",
                      "cnn": "[B, C, H, W]", "steps": "[T, B, C, H, W] (an image repeated over T)"}[mode]
            hint = "; use mode='cnn' for a network without a time dimension" if mode != "cnn" else ""
            if not isinstance(adapt, NativeAdapter):
                hint += f" (run by {adapt!r}; see cortexsnn.similarity.adapters)"
            raise ValueError(f"{type(model).__name__} failed on a {layout} input in mode={mode!r}: {exc}{hint}") from exc
    missing = [n for n in layers if n not in run.shapes]
    if missing:
        raise ValueError(f"layers {missing} of {type(model).__name__} were not called in a forward pass")
    return {n: run.shapes[n] for n in layers}


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        dev = torch.device(device)
        model.to(dev)
        return dev
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _allocate(n: int, f: int, spill: bool, spill_dir: str | None) -> Tensor:
    if not spill:
        return torch.empty(n, f, dtype=torch.float32)
    fd, path = tempfile.mkstemp(prefix="cortexsnn-features-", suffix=".f32", dir=spill_dir)
    os.close(fd)
    try:
        mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, f))
    finally:
        with contextlib.suppress(OSError):  # the mapping keeps the data; the name is not needed
            os.unlink(path)
    return torch.from_numpy(mm)


def _groups(sizes: dict[str, int], n: int, max_bytes: int | None) -> list[tuple[list[str], bool]]:
    """Layers in order, grouped so each group's ``[n, F]`` float32 matrices fit ``max_bytes``;
    ``(names, spill)`` with ``spill`` for a single layer larger than the budget."""
    if max_bytes is None:
        return [(list(sizes), False)]
    groups: list[tuple[list[str], bool]] = []
    current: list[str] = []
    used = 0
    for name, f in sizes.items():
        b = 4 * n * f
        if b > max_bytes:
            if current:
                groups.append((current, False))
                current, used = [], 0
            groups.append(([name], True))
            continue
        if used + b > max_bytes and current:
            groups.append((current, False))
            current, used = [], 0
        current.append(name)
        used += b
    if current:
        groups.append((current, False))
    return groups


def extract_features(
    model: nn.Module,
    stimuli: Tensor,
    *,
    layers: Sequence[str] | None = None,
    mode: FeatureMode = "static",
    time_steps: int = 4,
    chunk_frames: int = 16,
    batch_size: int = 16,
    zscore: bool = True,
    device: str | torch.device | None = None,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    spill_dir: str | None = None,
    adapter: ModelAdapter | str | None = None,
    check_reset: bool = True,
) -> Iterator[tuple[str, Tensor]]:
    """Yield ``(layer, features)`` for each recorded layer, in order; ``features`` is ``[N, F]``
    float32 on the CPU (N stimuli or frames, F the flattened layer output).

    Args:
        model: a zoo model (time-major ``[T, B, ...]``), a SpikingJelly, snnTorch or Norse network
            (see ``adapter``) or, with ``mode="cnn"``, any network taking ``[B, C, H, W]``. It is put in evaluation mode for the run (its training flag and
            ``stateful`` setting are restored afterwards, its state reset) and moved to ``device``
            when one is given.
        stimuli: ``[N, C, H, W]`` normalised images, or ``[frames, C, H, W]`` in movie mode (see
            :mod:`cortexsnn.data.stimuli` to build them with a recorded normalisation).
        layers: module paths to record; default :func:`default_layers` (the model's ``scoring_layers``),
            or for a model of another SNN library that declares none, its spiking layers.
        mode: ``"static"``, ``"movie"``, ``"cnn"`` or ``"steps"`` (see the module docstring; ``"steps"``
            yields ``[N, T, F]``).
        time_steps: T, the repeats of each image in static mode (4 for the ImageNet models, 16 for
            the UCF101 models, as Huang et al.).
        chunk_frames: frames per forward call in movie mode (16 as Huang et al., NeurIPS 2024).
        batch_size: stimuli per forward call in static / cnn mode.
        zscore: static / cnn mode: z-score each layer's matrix with one global mean and std (eps
            1e-10), as Huang et al. (AAAI 2023). Movie features are never z-scored (as Huang et al., NeurIPS 2024).
        device: where the model runs (default: where its parameters are).
        max_bytes: budget for the feature matrices held at once; more layers than fit mean more
            passes over the stimuli, a single larger layer is memory-mapped to a temporary file.
            ``None``: one pass, everything in RAM.
        spill_dir: folder for those temporary files (default: the system's temporary folder).
        adapter: how the model is reset, run and read (:mod:`cortexsnn.similarity.adapters`): a
            :class:`~cortexsnn.similarity.adapters.ModelAdapter`, a library name (``"cortexsnn"``,
            ``"torch"``, ``"spikingjelly"``, ``"snntorch"``, ``"norse"``) or ``None``: detected from
            the module classes the model contains. Every stimulus batch starts from a reset state.
        check_reset: before extracting, run the first stimulus twice, each from a reset state, and
            raise :class:`~cortexsnn.similarity.adapters.StateResetError` if its features differ (a
            model whose state the adapter cannot reset, or a random one). Costs two forward passes
            of one stimulus.

    Raises:
        ValueError / TypeError: stimuli of the wrong shape or dtype, a layer that is not called or
            returns no tensor, outputs that are not time-major in a time-major mode.
        KeyError: an unknown layer name.
        AdapterError: an unknown adapter name, or modules of several SNN libraries in one model.
        StateResetError: the model keeps state across stimuli that its adapter cannot reset.
    """
    if mode not in ("static", "movie", "cnn", "steps"):
        raise InvalidArgumentError(f"mode must be 'static', 'movie', 'cnn' or 'steps', got {mode!r}")
    for name, v in (("time_steps", time_steps), ("chunk_frames", chunk_frames), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")
    if max_bytes is not None and not (isinstance(max_bytes, (int, float)) and max_bytes > 0):
        raise InvalidArgumentError(f"max_bytes must be a positive number of bytes (or None: no budget), got {max_bytes!r}")
    _check_stimuli(stimuli, mode)
    adapt = adapter_for(model, adapter)
    if layers is None:
        names = _default_layers_for(model, mode, adapt)
    else:
        names = list(layers)
    if not names:
        raise InvalidArgumentError("no layers to record: layers is empty; pass module paths of the model (or None "
                                   "for its scoring layers)")
    if len(set(names)) != len(names):
        raise ValueError(f"layers listed twice: {sorted({n for n in names if names.count(n) > 1})}")
    return _extract(model, stimuli, names, mode, time_steps, chunk_frames, batch_size, zscore, device,
                    max_bytes, spill_dir, adapt, check_reset)


def _default_layers_for(model: nn.Module, mode: str, adapter: ModelAdapter) -> list[str]:
    """:func:`default_layers`, or for a library model without ``scoring_layers`` its spiking layers."""
    try:
        return default_layers(model, mode)  # type: ignore[arg-type]
    except ValueError:
        if isinstance(adapter, NativeAdapter):
            raise
        names = adapter.spiking_layers(model)
        if not names:
            raise
        logger.info("%s declares no scoring_layers: recording its %d spiking layers %s", type(model).__name__,
                    len(names), names)
        return names


def _extract(model: nn.Module, stimuli: Tensor, names: list[str], mode: str, time_steps: int, chunk_frames: int,
             batch_size: int, zscore: bool, device: str | torch.device | None, max_bytes: int | None,
             spill_dir: str | None, adapter: ModelAdapter, check_reset: bool) -> Iterator[tuple[str, Tensor]]:
    dev = _device(model, device)
    shapes = layer_feature_sizes(model, stimuli, names, mode=mode, time_steps=time_steps, device=dev,  # type: ignore[arg-type]
                                 adapter=adapter)
    sizes = {n: int(np.prod(s)) if s else 1 for n, s in shapes.items()}
    per_step = {n: f for n, f in sizes.items()}
    if mode == "steps":
        sizes = {n: f * time_steps for n, f in sizes.items()}
    if check_reset:
        _check_reset(model, stimuli, sizes, mode, time_steps, chunk_frames, dev, adapter)
    n = stimuli.shape[0]
    for group, spill in _groups(sizes, n, max_bytes):
        buffers = {name: _allocate(n, sizes[name], spill, spill_dir) for name in group}
        _run_group(model, stimuli, buffers, mode, time_steps, chunk_frames, batch_size, dev, adapter)
        for name in group:
            x = buffers.pop(name)
            if mode == "steps":
                yield name, x.view(n, time_steps, per_step[name])
                del x
                continue
            if zscore and mode != "movie":
                zscore_global(x)
            yield name, x
            del x


def _check_reset(model: nn.Module, stimuli: Tensor, sizes: dict[str, int], mode: str, time_steps: int,
                 chunk_frames: int, dev: torch.device, adapter: ModelAdapter) -> None:
    """Run the first stimulus (frame) twice, each time from a reset state: the features must agree,
    or the model keeps state that ``adapter`` does not reset (its features would depend on the
    batch size and on the stimuli run before)."""
    first = stimuli[:1]
    runs = []
    for _ in range(2):
        buffers = {name: torch.empty(1, f, dtype=torch.float32) for name, f in sizes.items()}
        _run_group(model, first, buffers, mode, time_steps, chunk_frames, 1, dev, adapter)
        runs.append(buffers)
    for name in sizes:
        a, b = runs[0][name], runs[1][name]
        if not torch.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True):
            diff = float((a - b).abs().nan_to_num(nan=float("inf")).max())
            suspects = suspect_modules(model)
            hint = f" Modules that may hold it: {'; '.join(suspects[:5])}." if suspects else ""
            try:
                library = detect_library(model)
            except AdapterError:
                library = "several libraries"
            if library not in ("torch", adapter.name):
                hint += f" The model holds {library} modules: adapter={library!r} resets them."
            raise StateResetError(
                f"{type(model).__name__} gave different features for the same stimulus on two runs, each started "
                f"from a reset state (layer {name!r}, max difference {diff:.3g}; {adapter!r}): it keeps state "
                f"across calls that the adapter cannot reset, or it is random (a Poisson encoder, dropout that "
                f"ignores eval()).{hint} Make the state resettable (a cortexsnn.neurons.MemoryModule, or a "
                f"ModelAdapter subclass whose reset() clears it; choose the library's adapter with adapter=...) "
                f"or make the model deterministic; check_reset=False skips this check, and the features may "
                f"then depend on the batch size")


def _run_group(model: nn.Module, stimuli: Tensor, buffers: dict[str, Tensor], mode: str, time_steps: int,
               chunk_frames: int, batch_size: int, dev: torch.device, adapter: ModelAdapter) -> None:
    names = list(buffers)
    run = _Run(mode=mode, buffers=buffers, adapter=adapter)
    n = stimuli.shape[0]
    with _evaluation(model, True if mode == "movie" else None, adapter), _hooks(model, names, run):
        if mode == "movie":
            adapter.reset(model)  # once: the frames are one continuous sequence
            for start in range(0, n, chunk_frames):
                x = stimuli[start:start + chunk_frames].to(dev, torch.float32)
                run.row, run.batch, run.steps, run.seen = start, 1, x.shape[0], {}
                _forward(model, x, mode, time_steps, adapter)
                _check_steps(run, names)
            return
        for start in range(0, n, batch_size):
            x = stimuli[start:start + batch_size].to(dev, torch.float32)
            adapter.reset(model)  # every batch starts from the initial state
            run.row, run.batch, run.seen, run.accum = start, x.shape[0], {}, {}
            run.steps = time_steps if mode in ("static", "steps") else 1
            _forward(model, x, mode, time_steps, adapter)
            _check_steps(run, names)
            if mode == "static":
                for name in names:
                    buffers[name][start:start + x.shape[0]] = (run.accum[name] / time_steps).to("cpu", torch.float32)
        adapter.reset(model)


def _check_steps(run: _Run, names: Sequence[str]) -> None:
    wrong = {name: run.seen.get(name, 0) for name in names if run.seen.get(name, 0) != run.steps}
    if wrong:
        raise ValueError(f"layers produced the wrong number of time steps (expected {run.steps}): {wrong}"
                         f"{_step_hint(run.adapter)}")


def _step_hint(adapter: ModelAdapter) -> str:
    """For a library model: the adapter may call it the wrong way (per step / on the sequence)."""
    if isinstance(adapter, NativeAdapter) or not hasattr(adapter, "model_step_mode"):
        return ""
    cls = type(adapter).__name__
    return (f". The {adapter.name} adapter may be calling this model the wrong way: pass adapter={cls}(step_mode='m') "
            f"for a model whose forward takes [T, B, ...] (looping over time itself), {cls}(step_mode='s') for one "
            "that takes one step [B, ...] per call; a model that makes its own time steps from a static image "
            "must be wrapped to take one of these")
