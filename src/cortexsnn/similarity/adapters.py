"""Adapters: score a network built with another SNN library, or any plain ``nn.Module``.

:func:`~cortexsnn.similarity.features.extract_features` records layers with forward hooks and needs
three things from a model, which every library spells differently:

* **reset**: every stimulus batch must start from the network's initial state, or a stimulus'
  features depend on what ran before it (and on the batch size: a library that re-creates its
  state when the input shape changes keeps it when the shape does not);
* **forward**: how a time-major stimulus ``[T, B, ...]`` is fed (one call with the whole sequence,
  or one call per time step);
* **layer outputs**: what a hooked module returns (a tensor, ``(spikes, membrane)``,
  ``(output, state)``) and whether that is one step ``[B, ...]`` or a sequence ``[T, B, ...]``.

A :class:`ModelAdapter` answers the three; :func:`adapter_for` picks one by the classes the model
contains, or takes an explicit choice:

* ``cortexsnn`` (the zoo) and ``torch`` (torchvision, timm, any ``nn.Module``): reset by
  :func:`cortexsnn.neurons.reset` (a no-op for a stateless network); one call on ``[T, B, ...]``
  (``[B, ...]`` in ``mode="cnn"``); outputs read as they are.
* ``spikingjelly`` (SpikingJelly's ``activation_based``, Fang et al., Science Advances 2023): reset
  by ``functional.reset_net``; a model with a multi-step module (``step_mode='m'``) is called once
  on ``[T, B, ...]``, one whose modules are all single-step (``'s'``) once per step on ``[B, ...]``.
* ``snntorch`` (snnTorch, Eshraghian et al., Proc. IEEE 2023): each neuron's ``reset_mem()``; one
  call per step on ``[B, ...]`` (``init_hidden=True`` neurons); ``(spk, mem)`` is read as ``spk``.
* ``norse`` (Norse, Pehle & Pedersen 2021): the state lives with the caller, so a batch starts from
  a fresh one by passing none; a model of cells (``LIFCell``) is called once per step and the state
  it returns is passed to the next step, one of sequence modules (``LIF``, ``Lift``) once on
  ``[T, B, ...]``; ``(out, state)`` is read as ``out``.

Each library adapter normalises a hooked module's output to a time-major ``[steps, B, ...]``
tensor: a module that runs one step per call (a SpikingJelly single-step module, an snnTorch
neuron, a Norse cell) gives ``[1, B, ...]`` per call, a multi-step module its ``[T, B, ...]``.
Plain torch modules inside a library model (``nn.Conv2d``, ``nn.Flatten``) see whatever the model
gives them: one step per call in a model called per step; in a model called on the whole
sequence, ``[T, B, ...]`` when their output starts with the call's ``(T, B)`` and one step when
it starts with ``B`` (a model whose ``forward`` loops over time itself, as in the Norse and
snnTorch tutorials). The extractor checks every layer's output shape and counts the steps it
produced, so a layer read the wrong way, or a model called the wrong way, is an error that says
which ``step_mode`` to pass.

A model whose state the adapter cannot reset (a custom module keeping tensors across calls) is
caught by the extractor, which runs the first stimulus twice, each time from a "reset" state, and
raises :class:`StateResetError` when the features differ (``check_reset=True``, the default).

To support another library, subclass :class:`ModelAdapter` and pass an instance as
``extract_features(..., adapter=...)``.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Literal

from torch import Tensor, nn

from cortexsnn.errors import CortexSNNError
from cortexsnn.neurons import MemoryModule, reset

__all__ = [
    "ModelAdapter",
    "NativeAdapter",
    "SpikingJellyAdapter",
    "SnnTorchAdapter",
    "NorseAdapter",
    "AdapterError",
    "StateResetError",
    "adapter_for",
    "detect_library",
    "suspect_modules",
    "ADAPTERS",
    "StepMode",
]

logger = logging.getLogger(__name__)

StepMode = Literal["s", "m"]


class AdapterError(CortexSNNError, ValueError):
    """No adapter fits the model (unknown library name, several SNN libraries mixed in one model,
    a step mode the model cannot be run in)."""


class StateResetError(CortexSNNError, RuntimeError):
    """The model keeps state across stimuli that its adapter cannot reset: its features would
    depend on the order and batching of the stimuli."""


def _library_of(module: nn.Module) -> str | None:
    """The SNN library a module class comes from (by the package that defines it), or ``None``."""
    if isinstance(module, MemoryModule):
        return "cortexsnn"
    root = type(module).__module__.split(".", 1)[0]
    return root if root in ("spikingjelly", "snntorch", "norse") else None


def detect_library(model: nn.Module) -> str:
    """``"cortexsnn"``, ``"spikingjelly"``, ``"snntorch"``, ``"norse"`` (the library whose module
    classes the model contains) or ``"torch"`` (none: a plain network).

    Raises:
        AdapterError: modules of more than one SNN library in the same model.
    """
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        lib = _library_of(module)
        if lib is not None:
            found.setdefault(lib, name or "(the model itself)")
    if len(found) > 1:
        where = ", ".join(f"{lib} ({name!r})" for lib, name in found.items())
        raise AdapterError(f"{type(model).__name__} mixes modules of several SNN libraries: {where}; no adapter "
                           "resets all of them. Pass adapter=<one of them> (and make sure the others hold no "
                           "state) or a ModelAdapter subclass that resets every library's modules")
    return next(iter(found), "torch")


def _first_tensor(name: str, output: object, what: str) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor nor a tuple starting with one "
                    f"({what}); record a module that returns its output tensor")


class ModelAdapter:
    """How the extractor resets, runs and reads a model of one library.

    Subclasses override :meth:`reset`, :meth:`forward` and :meth:`layer_output`. An adapter may
    hold per-run state (Norse's returned state); the extractor calls :meth:`reset` before every
    stimulus batch (static mode) or once before a movie, and after the run.
    """

    #: the name :func:`adapter_for` knows the adapter by.
    name: str = "base"

    def reset(self, model: nn.Module) -> None:
        """Put the model back to its initial state."""
        raise NotImplementedError

    def forward(self, model: nn.Module, x: Tensor) -> None:
        """Run the model on a time-major input ``[T, B, ...]`` so that the hooks fire; the state
        after the last step is kept (a movie continues from it) until :meth:`reset`."""
        raise NotImplementedError

    def forward_batch(self, model: nn.Module, x: Tensor) -> None:
        """Run the model once on ``[B, ...]`` (``mode="cnn"``: a network without time)."""
        model(x)

    def layer_output(self, name: str, module: nn.Module, output: object, time_major: bool) -> Tensor:
        """The tensor a hooked module produced: ``[steps, B, ...]`` when ``time_major`` (steps = 1
        for a module that runs one step per call), else ``[B, ...]``."""
        raise NotImplementedError

    def spiking_layers(self, model: nn.Module) -> list[str]:
        """The module paths of the model's stateful (spiking) layers, in order: the layers scored
        when the model declares no ``scoring_layers`` and none are named."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NativeAdapter(ModelAdapter):
    """The zoo's convention (and a plain network's): one call on ``[T, B, ...]`` (or ``[B, ...]``
    in ``mode="cnn"``), outputs tensors as they are, state reset by :func:`cortexsnn.neurons.reset`.
    This is exactly what the extractor did before adapters existed."""

    def __init__(self, name: str = "cortexsnn") -> None:
        self.name = name

    def reset(self, model: nn.Module) -> None:
        reset(model)

    def forward(self, model: nn.Module, x: Tensor) -> None:
        model(x)

    def layer_output(self, name: str, module: nn.Module, output: object, time_major: bool) -> Tensor:
        if isinstance(output, Tensor):
            return output
        raise TypeError(f"layer {name!r} returned {type(output).__name__}, not a tensor; record a module that "
                        "returns one tensor")

    def spiking_layers(self, model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if n and isinstance(m, MemoryModule)]

    def __repr__(self) -> str:
        return f"NativeAdapter({self.name!r})"


class _LibraryAdapter(ModelAdapter):
    """Shared logic of the adapters for models called either per step or on the whole sequence."""

    def __init__(self, step_mode: StepMode | None = None) -> None:
        if step_mode not in (None, "s", "m"):
            raise AdapterError(f"step_mode must be 's' (one call per time step), 'm' (one call on [T, B, ...]) or "
                               f"None (detect), got {step_mode!r}")
        self.step_mode: StepMode | None = step_mode
        self._call: tuple[int, int] | None = None  # (T, B) of the current model call

    # -- to override ----------------------------------------------------------------------------
    def _detect_step_mode(self, model: nn.Module) -> StepMode:
        raise NotImplementedError

    def _module_step_mode(self, module: nn.Module) -> StepMode | None:
        """``"s"``/``"m"`` for a library module whose step mode is known, ``None`` for a plain one."""
        return None

    # -- shared ---------------------------------------------------------------------------------
    def model_step_mode(self, model: nn.Module) -> StepMode:
        """How the model is called: ``"s"`` once per time step on ``[B, ...]``, ``"m"`` once on
        ``[T, B, ...]`` (the explicit ``step_mode`` if one was given)."""
        return self.step_mode if self.step_mode is not None else self._detect_step_mode(model)

    def forward(self, model: nn.Module, x: Tensor) -> None:
        if self.model_step_mode(model) == "m":
            self._call = (x.shape[0], x.shape[1])
            self._run(model, x)
        else:
            self._call = (1, x.shape[1])
            for t in range(x.shape[0]):
                self._run(model, x[t])
        self._call = None

    def forward_batch(self, model: nn.Module, x: Tensor) -> None:
        self._call = None
        self._run(model, x)

    def _run(self, model: nn.Module, x: Tensor) -> None:
        model(x)

    def layer_output(self, name: str, module: nn.Module, output: object, time_major: bool) -> Tensor:
        out = _first_tensor(name, output, f"{self.name} modules return a tensor or (output, state)")
        if not time_major:
            return out
        mode = self._module_step_mode(module)
        if mode is None:  # a plain module: one step per call unless it got the call's whole sequence
            if self._call is None or self._call[0] == 1:
                mode = "s"
            elif out.dim() >= 2 and tuple(out.shape[:2]) == self._call:
                mode = "m"
            elif out.dim() >= 1 and out.shape[0] == self._call[1]:
                mode = "s"
            else:
                mode = "m"  # neither: reported as not time-major by the extractor
        return out.unsqueeze(0) if mode == "s" else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(step_mode={self.step_mode!r})"


class SpikingJellyAdapter(_LibraryAdapter):
    """SpikingJelly (``spikingjelly.activation_based``): reset by ``functional.reset_net``; a model
    whose modules are all single-step (``step_mode='s'``, SpikingJelly's default) is called once
    per time step, one with a multi-step module (``'m'``) once on ``[T, B, ...]``. Each module's
    output is read by its own ``step_mode``.

    Args:
        step_mode: force the call convention (``"s"`` or ``"m"``) instead of detecting it; the
            model's modules are not changed (use ``functional.set_step_mode`` for that).
    """

    name = "spikingjelly"

    def reset(self, model: nn.Module) -> None:
        from spikingjelly.activation_based import functional

        functional.reset_net(model)

    def _detect_step_mode(self, model: nn.Module) -> StepMode:
        modes = {m.step_mode for m in model.modules() if _library_of(m) == "spikingjelly" and hasattr(m, "step_mode")}
        return "m" if "m" in modes else "s"

    def _module_step_mode(self, module: nn.Module) -> StepMode | None:
        if _library_of(module) == "spikingjelly" and getattr(module, "step_mode", None) in ("s", "m"):
            return module.step_mode  # type: ignore[no-any-return]
        return None

    def spiking_layers(self, model: nn.Module) -> list[str]:
        from spikingjelly.activation_based import base

        return [n for n, m in model.named_modules() if n and isinstance(m, base.MemoryModule)]


#: snnTorch neurons that take a whole sequence ``[T, B, ...]`` per call (the rest run one step).
_SNNTORCH_SEQUENCE = ("StateLeaky", "LinearLeaky", "LeakyParallel", "LeakyKernel", "AssociativeLeaky")


class SnnTorchAdapter(_LibraryAdapter):
    """snnTorch: each neuron's ``reset_mem()`` before every stimulus batch (per module, unlike
    ``snntorch.utils.reset``, which resets every instance of a class in the process and only the
    top-level modules of ``net``); the model is called once per time step on ``[B, ...]`` (the
    ``init_hidden=True`` style, e.g. an ``nn.Sequential`` of ``snn.Leaky``), unless it only holds
    sequence neurons (``StateLeaky``, ``LeakyParallel``) or ``step_mode="m"`` is given (a model
    whose ``forward`` loops over ``[T, B, ...]`` itself). A neuron's ``(spk, mem)`` output is read
    as ``spk``."""

    name = "snntorch"

    def reset(self, model: nn.Module) -> None:
        for module in model.modules():
            if _library_of(module) == "snntorch" and callable(getattr(module, "reset_mem", None)):
                module.reset_mem()

    def _neurons(self, model: nn.Module) -> list[nn.Module]:
        import snntorch

        return [m for m in model.modules() if isinstance(m, snntorch.SpikingNeuron)
                or type(m).__name__ in _SNNTORCH_SEQUENCE and _library_of(m) == "snntorch"]

    def _detect_step_mode(self, model: nn.Module) -> StepMode:
        neurons = self._neurons(model)
        if neurons and all(type(m).__name__ in _SNNTORCH_SEQUENCE for m in neurons):
            return "m"
        return "s"

    def _module_step_mode(self, module: nn.Module) -> StepMode | None:
        if _library_of(module) != "snntorch":
            return None
        return "m" if type(module).__name__ in _SNNTORCH_SEQUENCE else "s"

    def spiking_layers(self, model: nn.Module) -> list[str]:
        neurons = {id(m) for m in self._neurons(model)}
        return [n for n, m in model.named_modules() if n and id(m) in neurons]


def _norse_kind(module: nn.Module) -> StepMode | None:
    """``"s"`` for a Norse cell (one step per call), ``"m"`` for a Norse sequence module, ``None``
    for a container (``SequentialState``) or a plain module."""
    if _library_of(module) != "norse":
        return None
    cls = type(module).__name__
    if cls == "SequentialState":
        return None
    if cls.endswith("Cell"):
        return "s"
    from norse.torch.module.snn import SNN, SNNRecurrent

    if isinstance(module, (SNN, SNNRecurrent)) or cls == "Lift":
        return "m"
    return None


class NorseAdapter(_LibraryAdapter):
    """Norse: the state lives with the caller, so a stimulus batch starts from a fresh state by
    passing none; a model of cells (``LIFCell`` in a ``SequentialState``) is called once per time
    step and the state it returns is passed to the next step (and, in a movie, to the next
    chunk); a model of sequence modules (``LIF``, ``Lift``) is called once on ``[T, B, ...]``. A
    model whose ``forward`` takes no ``state`` argument is called with the input only. A module's
    ``(output, state)`` is read as ``output``.

    Args:
        step_mode: force the call convention: ``"m"`` for a model of cells whose ``forward`` loops
            over ``[T, B, ...]`` itself (as in the Norse tutorials).
    """

    name = "norse"

    def __init__(self, step_mode: StepMode | None = None) -> None:
        super().__init__(step_mode)
        self._state: Any = None

    def reset(self, model: nn.Module) -> None:
        self._state = None

    def _detect_step_mode(self, model: nn.Module) -> StepMode:
        inside_lift: set[int] = set()
        for m in model.modules():
            if type(m).__name__ == "Lift" and _library_of(m) == "norse":
                inside_lift.update(id(s) for s in m.modules() if s is not m)
        kinds = {_norse_kind(m) for m in model.modules() if id(m) not in inside_lift}
        return "s" if "s" in kinds else "m"

    def _module_step_mode(self, module: nn.Module) -> StepMode | None:
        return _norse_kind(module)

    def _run(self, model: nn.Module, x: Tensor) -> None:
        if not _takes_state(model):
            model(x)
            return
        out = model(x, self._state)
        self._state = out[1] if isinstance(out, tuple) and len(out) == 2 else None

    def spiking_layers(self, model: nn.Module) -> list[str]:
        from norse.torch.module.snn import SNN, SNNRecurrent

        return [n for n, m in model.named_modules() if n and _library_of(m) == "norse"
                and (type(m).__name__.endswith("Cell") or isinstance(m, (SNN, SNNRecurrent)))]


def _takes_state(model: nn.Module) -> bool:
    try:
        return "state" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


#: the adapters :func:`adapter_for` knows by name.
ADAPTERS: dict[str, type[ModelAdapter]] = {
    "cortexsnn": NativeAdapter,
    "torch": NativeAdapter,
    "spikingjelly": SpikingJellyAdapter,
    "snntorch": SnnTorchAdapter,
    "norse": NorseAdapter,
}


def adapter_for(model: nn.Module, adapter: ModelAdapter | str | None = None, *,
                step_mode: StepMode | None = None) -> ModelAdapter:
    """The adapter that runs ``model``: ``adapter`` itself when it is a :class:`ModelAdapter`, the
    named one (``"cortexsnn"``, ``"torch"``, ``"spikingjelly"``, ``"snntorch"``, ``"norse"``), or,
    with ``None``, the one for the library whose modules the model contains (:func:`detect_library`).

    Args:
        model: the network.
        adapter: an adapter, a library name, or ``None`` (detect).
        step_mode: for the library adapters, force one call per time step (``"s"``) or one call on
            the whole ``[T, B, ...]`` sequence (``"m"``).

    Raises:
        AdapterError: an unknown name, a ``step_mode`` given with an adapter instance or for the
            zoo / a plain network, or modules of several SNN libraries in one model.
    """
    if isinstance(adapter, ModelAdapter):
        if step_mode is not None:
            raise AdapterError("step_mode is a setting of the adapter: pass it to the adapter you construct "
                               f"({type(adapter).__name__}(step_mode={step_mode!r})), not beside it")
        return adapter
    if adapter is not None and not isinstance(adapter, str):
        raise AdapterError(f"adapter must be a ModelAdapter, one of {sorted(ADAPTERS)} or None, "
                           f"got {type(adapter).__name__}")
    name = detect_library(model) if adapter is None else adapter.lower()
    if name not in ADAPTERS:
        raise AdapterError(f"unknown adapter {adapter!r}; choose one of {sorted(ADAPTERS)}, or subclass "
                           "cortexsnn.similarity.adapters.ModelAdapter")
    cls = ADAPTERS[name]
    if cls is NativeAdapter:
        if step_mode is not None:
            raise AdapterError(f"step_mode applies to the SpikingJelly, snnTorch and Norse adapters; a {name} model "
                               "is always called on [T, B, ...] (or [B, ...] in mode='cnn')")
        chosen: ModelAdapter = NativeAdapter(name)
    else:
        chosen = cls(step_mode=step_mode)  # type: ignore[call-arg]
    if adapter is None and name != "cortexsnn":
        how = ""
        if isinstance(chosen, _LibraryAdapter):
            how = (", called once per time step" if chosen.model_step_mode(model) == "s"
                   else ", called on the whole [T, B, ...] sequence")
        logger.info("%s: using the %s adapter%s", type(model).__name__, name, how)
    return chosen


def suspect_modules(model: nn.Module) -> list[str]:
    """Module paths that look stateful to no adapter: a tensor attribute that is neither a
    parameter nor a buffer, a non-persistent buffer, or a ``reset``-like method, in a module that
    belongs to no known SNN library (used to point at the culprit in :class:`StateResetError`)."""
    out = []
    for name, module in model.named_modules():
        if _library_of(module) is not None:
            continue
        loose = [k for k, v in vars(module).items() if isinstance(v, Tensor) and not k.startswith("__")]
        volatile = sorted(getattr(module, "_non_persistent_buffers_set", set()))
        methods = [m for m in ("reset", "reset_state", "reset_states", "reset_hidden", "reset_mem")
                   if callable(getattr(module, m, None))]
        if loose or volatile or methods:
            what = ", ".join([f"tensor attribute {k!r}" for k in loose] + [f"buffer {k!r}" for k in volatile]
                             + [f"method {m}()" for m in methods])
            out.append(f"{name or '(the model)'} ({type(module).__name__}: {what})")
    return out
