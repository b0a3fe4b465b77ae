"""Stateful neuron modules: IF, LIF and PLIF layers (SpikingJelly-compatible semantics).

A neuron module holds its membrane potential ``v`` as state (see
:class:`~cortexsnn.neurons.base.MemoryModule`): ``step_mode="m"`` (default) takes a time-major
sequence ``[T, B, ...]`` and runs the fused kernel over the whole sequence; ``step_mode="s"``
takes one step ``[B, ...]``. In both modes the state carries over between calls until
:func:`cortexsnn.neurons.reset` (or :meth:`reset`), which must be called between independent
samples. The dynamics are the functions of :mod:`cortexsnn.neurons.functional.lif`;
:class:`GenericNeuron` takes its dynamics from the user (:mod:`cortexsnn.neurons.functional.generic`).
"""
from __future__ import annotations

import keyword
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from cortexsnn.errors import InvalidArgumentError, InvalidTypeError
from cortexsnn.neurons import functional as F
from cortexsnn.neurons.base import MemoryModule
from cortexsnn.neurons.kernels import BACKENDS, compiled_surrogate
from cortexsnn.neurons.surrogate import ATan, Surrogate, get_surrogate

__all__ = ["BaseNode", "IFNode", "LIFNode", "PLIFNode", "GenericNeuron"]


class BaseNode(MemoryModule):
    """Common arguments of the integrate-and-fire family.

    Args:
        v_threshold: firing threshold.
        v_reset: reset potential of a hard reset; ``None`` for a soft reset (subtract the
            threshold).
        surrogate: surrogate gradient (an instance or a name such as ``"atan"``).
        detach_reset: no gradient through the spike in the reset path.
        step_mode: ``"m"`` (``[T, B, ...]`` in, fused over time) or ``"s"`` (``[B, ...]``).
        backend: force a multi-step backend (``"auto"``, ``"cpu"``, ``"triton"``, ``"torch"``); default: the
            ``CORTEXSNN_NEURON_BACKEND`` environment variable, else ``"auto"``. A user-defined surrogate
            runs on ``"torch"`` only (``"auto"`` picks it; ``"cpu"`` / ``"triton"`` raise
            :class:`~cortexsnn.neurons.surrogate.UnsupportedSurrogateError`; see :mod:`cortexsnn.neurons.kernels`).
    """

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate: Surrogate | str = ATan(2.0),
        detach_reset: bool = False,
        step_mode: str = "m",
        backend: str | None = None,
    ) -> None:
        super().__init__(step_mode)
        if not math.isfinite(v_threshold):
            raise ValueError(f"v_threshold must be finite, got {v_threshold}")
        if v_reset is not None and not v_reset < v_threshold:
            raise ValueError(f"v_reset ({v_reset}) must be below v_threshold ({v_threshold})")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown neuron backend {backend!r}; choose one of {BACKENDS}")
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.surrogate = get_surrogate(surrogate)
        if backend in ("cpu", "triton"):  # a user-defined derivative: refused now, not at the first forward
            compiled_surrogate(self.surrogate, backend)
        self.detach_reset = bool(detach_reset)
        self.backend = backend
        self.register_memory("v", 0.0 if v_reset is None else float(v_reset))

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "m":
            if x.dim() < 2:
                raise ValueError(
                    f"{type(self).__name__} in multi-step mode expects [T, B, ...], got shape {tuple(x.shape)}; "
                    "use step_mode='s' for single steps"
                )
            if x.shape[0] == 0:
                raise ValueError(f"{type(self).__name__}: multi-step neurons need at least one time step, got shape "
                                 f"{tuple(x.shape)}")
            spikes, v_last = self._multistep(x, self._state_for(x[0]))
        else:
            spikes, v_last = self._step(x, self._state_for(x))
        self.v = v_last
        return spikes

    def _state_for(self, x_t: Tensor) -> Tensor:
        v = self.v
        if v.dim() > 0 and v.shape != x_t.shape:
            raise ValueError(
                f"{type(self).__name__}: the state has shape {tuple(v.shape)} but the input step has "
                f"{tuple(x_t.shape)}; call cortexsnn.neurons.reset(net) between batches"
            )
        return v.to(dtype=x_t.dtype, device=x_t.device)

    def _common(self) -> dict:
        return dict(
            v_threshold=self.v_threshold, v_reset=self.v_reset, surrogate=self.surrogate,
            detach_reset=self.detach_reset,
        )

    def extra_repr(self) -> str:
        return (
            f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, surrogate={self.surrogate}, "
            f"detach_reset={self.detach_reset}, step_mode={self.step_mode!r}"
        )


class IFNode(BaseNode):
    """Integrate-and-fire neurons: ``H[t] = V[t-1] + X[t]``."""

    def _multistep(self, x: Tensor, v: Tensor):
        return F.if_multistep(x, v, backend=self.backend, **self._common())

    def _step(self, x: Tensor, v: Tensor):
        return F.if_step(x, v, **self._common())


class LIFNode(BaseNode):
    """Leaky integrate-and-fire neurons with membrane time constant ``tau``.

    ``decay_input=True``: ``H = V + (X - (V - v_reset)) / tau``; ``False``:
    ``H = V - (V - v_reset) / tau + X``.

    Equivalents: SpikingJelly's ``LIFNode`` with the same arguments (bit-identical potentials in
    float32); snnTorch's ``Leaky(beta, reset_mechanism="zero")`` is ``tau = 1 / (1 - beta)``,
    ``decay_input=False``, ``v_reset=0``, ``detach_reset=True`` (snnTorch fires on ``>``, we on
    ``>=``, as SpikingJelly). snnTorch's ``"subtract"`` reset takes the threshold off after the
    leak, SpikingJelly's soft reset (``v_reset=None``) before it: they agree only without leak
    (:class:`IFNode`).
    """

    def __init__(self, tau: float = 2.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if not (tau > 1.0 and math.isfinite(tau)):
            raise ValueError(f"LIF tau must be a finite number > 1, got {tau}")
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def _multistep(self, x: Tensor, v: Tensor):
        return F.lif_multistep(x, v, self.tau, self.decay_input, backend=self.backend, **self._common())

    def _step(self, x: Tensor, v: Tensor):
        return F.lif_step(x, v, self.tau, self.decay_input, **self._common())

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class PLIFNode(BaseNode):
    """Parametric LIF (Fang et al. 2021): ``1 / tau = sigmoid(w)`` with ``w`` learnable.

    ``w`` is initialised so that ``tau = init_tau``; it is the module's only parameter (state-dict
    key ``w``, as in SpikingJelly).
    """

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.decay_input = bool(decay_input)
        self.w = nn.Parameter(torch.tensor(F.plif_init_w(init_tau)))

    @property
    def tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def _multistep(self, x: Tensor, v: Tensor):
        return F.plif_multistep(x, self.w, v, self.decay_input, backend=self.backend, **self._common())

    def _step(self, x: Tensor, v: Tensor):
        return F.plif_step(x, v, self.w, self.decay_input, **self._common())

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4f}, decay_input={self.decay_input}, " + super().extra_repr()


class GenericNeuron(MemoryModule):
    """A neuron model given by its charge, fire and reset functions (plain torch code, no C).

    Each step: ``state.update(charge(x, state))``; ``spike = surrogate(fire(state))`` (a spike
    where the firing margin ``fire(state) >= 0``, the surrogate's gradient in the backward pass);
    ``state.update(reset(state, spike))``. The state is a dict of named tensors, one value per
    neuron; each variable is also a state of the module (``neuron.v``, reset by
    :func:`cortexsnn.neurons.reset`). See :mod:`cortexsnn.neurons.functional.generic`.

    Args:
        charge: ``charge(x, state) -> {name: tensor}``, the variables the input step changes.
        fire: ``fire(state) -> tensor``, how far each neuron is above its threshold.
        reset: ``reset(state, spike) -> {name: tensor}``, the variables a spike changes.
        state_init: initial value of every state variable, e.g. ``{"v": 0.0}``.
        surrogate: surrogate gradient (an instance or a name such as ``"atan"``).
        detach_reset: no gradient through the spike in ``reset``.
        step_mode: ``"m"`` (``[T, B, ...]`` in) or ``"s"`` (``[B, ...]``).
        compile: compile the multi-step time loop with ``torch.compile`` (``True``: its default
            backend; a string: that backend); falls back to the plain loop, with one logged
            warning, where compilation is unavailable.

    Example, the LIF neuron of :class:`LIFNode` (``tau = 2``, hard reset to 0)::

        lif = GenericNeuron(
            charge=lambda x, s: {"v": s["v"] + (x - s["v"]) / 2.0},
            fire=lambda s: s["v"] - 1.0,
            reset=lambda s, spike: {"v": s["v"] * (1.0 - spike)},
            state_init={"v": 0.0},
        )
    """

    def __init__(
        self,
        charge: F.ChargeFn,
        fire: F.FireFn,
        reset: F.ResetFn,
        state_init: Mapping[str, float],
        surrogate: Surrogate | str = ATan(2.0),
        detach_reset: bool = False,
        step_mode: str = "m",
        compile: bool | str = False,
    ) -> None:
        super().__init__(step_mode)
        for role, fn in (("charge", charge), ("fire", fire), ("reset", reset)):
            if not callable(fn):
                raise InvalidTypeError(f"GenericNeuron: {role} must be a function, got {type(fn).__name__}")
        if not isinstance(compile, (bool, str)):
            raise InvalidTypeError(
                f"GenericNeuron: compile must be True, False or a torch.compile backend name, got {compile!r}"
            )
        self.charge_fn, self.fire_fn, self.reset_fn = charge, fire, reset
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.compile = compile
        if not isinstance(state_init, Mapping) or not state_init:
            raise InvalidArgumentError(f"GenericNeuron: state_init must be a non-empty dict of initial values such as "
                                       f"{{'v': 0.0}}, got {state_init!r}")
        for name, value in state_init.items():
            self._declare_state(name, value)

    def _declare_state(self, name, value) -> None:
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)) or hasattr(self, name):
            raise InvalidArgumentError(f"GenericNeuron: state variable name {name!r} must be an identifier that is not "
                                       "already an attribute of the module (e.g. 'v', 'a', 'theta')")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgumentError(f"GenericNeuron: the initial value of {name!r} must be a finite number, got "
                                       f"{value!r}")
        self.register_memory(name, float(value))

    def _state_for(self, x_t: Tensor) -> dict[str, Tensor]:
        state = {}
        for name, value in self.memories():
            if value.dim() > 0 and value.shape != x_t.shape:
                raise InvalidArgumentError(
                    f"GenericNeuron: state {name!r} has shape {tuple(value.shape)} but the input step has "
                    f"{tuple(x_t.shape)}; call cortexsnn.neurons.reset(net) between batches"
                )
            state[name] = value.to(dtype=x_t.dtype, device=x_t.device)
        return state

    def forward(self, x: Tensor) -> Tensor:
        common = dict(charge=self.charge_fn, fire=self.fire_fn, reset=self.reset_fn, surrogate=self.surrogate,
                      detach_reset=self.detach_reset)
        if self.step_mode == "m":
            if x.dim() < 2 or x.shape[0] == 0:
                raise InvalidArgumentError(f"GenericNeuron in multi-step mode expects [T, B, ...] with T >= 1, got "
                                           f"shape {tuple(x.shape)}; use step_mode='s' for single steps")
            spikes, state = F.neuron_multistep(x, self._state_for(x[0]), compile=self.compile, **common)
        else:
            spikes, state = F.neuron_step(x, self._state_for(x), **common)
        for name, value in state.items():
            setattr(self, name, value)
        return spikes

    def extra_repr(self) -> str:
        names = ", ".join(f"{name}={initial}" for name, initial in self._memory_init.items())
        return (f"state=({names}), surrogate={self.surrogate}, detach_reset={self.detach_reset}, "
                f"compile={self.compile!r}, step_mode={self.step_mode!r}")
