"""A neuron defined by its charge, fire and reset, as plain torch functions.

The fused kernels of :mod:`~cortexsnn.neurons.functional.lif` serve IF, LIF and PLIF; any other
neuron model is described here by three functions of its state (a dict of named tensors, one value
per neuron, e.g. ``{"v": ..., "a": ...}``):

* ``charge(x, state) -> updates``: the sub-threshold dynamics of one step, given the input ``x``
  of that step (SpikingJelly's ``neuronal_charge``);
* ``fire(state) -> margin``: how far each neuron is above its threshold; the spike is
  ``Heaviside(margin)`` (fires at ``margin >= 0``) and its gradient that of the
  :class:`~cortexsnn.neurons.surrogate.Surrogate`;
* ``reset(state, spike) -> updates``: what a spike does to the state (``spike`` detached with
  ``detach_reset``).

``charge`` and ``reset`` return the state variables they change (a dict; the others carry over).
:func:`neuron_multistep` runs the time loop over ``[T, ...]``; the backward pass is autograd
through it. ``compile=True`` hands the whole loop to ``torch.compile``, which fuses each step's
element-wise operations (and, across steps, what it can) into generated kernels, forward and
backward, without new C; where compilation is unavailable (no C++ compiler, an unsupported Python)
it falls back to the plain loop, with one warning in the log.

Every step checks what the functions returned (the checks are free once compiled): a state
variable or margin that changes shape, dtype or device, a name that is not a state variable, or
something that is not a tensor raises :class:`NeuronDefinitionError` naming the function.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from cortexsnn.errors import CortexSNNError, InvalidArgumentError, InvalidTypeError
from cortexsnn.neurons.surrogate import ATan, Surrogate

__all__ = ["NeuronDefinitionError", "neuron_step", "neuron_multistep", "State", "ChargeFn", "FireFn", "ResetFn"]

logger = logging.getLogger(__name__)

State = dict[str, Tensor]
ChargeFn = Callable[[Tensor, Mapping[str, Tensor]], Mapping[str, Tensor]]
FireFn = Callable[[Mapping[str, Tensor]], Tensor]
ResetFn = Callable[[Mapping[str, Tensor], Tensor], Mapping[str, Tensor]]

_DEFAULT_SURROGATE = ATan(2.0)


class NeuronDefinitionError(CortexSNNError, ValueError):
    """A neuron's charge, fire or reset function returned something of the wrong shape, dtype,
    device or kind."""


def _check_tensor(value, name: str, role: str, like: Tensor) -> None:
    if not isinstance(value, Tensor):
        raise NeuronDefinitionError(f"{role} returned {name} as a {type(value).__name__}; it must be a tensor shaped "
                                    f"like one input step {tuple(like.shape)}")
    problems = []
    if value.shape != like.shape:
        problems.append(f"shape {tuple(value.shape)} (one input step is {tuple(like.shape)})")
    if value.dtype != like.dtype:
        problems.append(f"dtype {value.dtype} (the input is {like.dtype}: a tensor constant of another dtype "
                        f"changes the result's; use Python numbers or dtype=x.dtype, and no .float()/.double())")
    if value.device != like.device:
        problems.append(f"device {value.device} (the input is on {like.device})")
    if problems:
        raise NeuronDefinitionError(f"{role} returned {name} with {' and '.join(problems)}; a neuron's functions must "
                                    "keep one value per neuron in the input's dtype and device")


def _updated(state: State, updates, role: str, like: Tensor) -> State:
    if not isinstance(updates, Mapping):
        raise NeuronDefinitionError(f"{role} returned a {type(updates).__name__}; it must return a dict of the state "
                                    f"variables it changes (of {sorted(state)})")
    unknown = sorted(set(updates) - set(state))
    if unknown:
        raise NeuronDefinitionError(f"{role} returned {unknown}, which are not state variables (the state holds "
                                    f"{sorted(state)}); declare every variable in the initial state")
    for name, value in updates.items():
        _check_tensor(value, f"state variable {name!r}", role, like)
    return {**state, **updates}


def _step(x: Tensor, state: State, charge: ChargeFn, fire: FireFn, reset: ResetFn, surrogate: Surrogate,
          detach_reset: bool) -> tuple[Tensor, State]:
    charged = _updated(state, charge(x, state), "charge", x)
    margin = fire(charged)
    _check_tensor(margin, "the firing margin", "fire", x)
    spike = surrogate(margin)
    after = _updated(charged, reset(charged, spike.detach() if detach_reset else spike), "reset", x)
    return spike, after


def _loop(x_seq: Tensor, state: State, charge: ChargeFn, fire: FireFn, reset: ResetFn, surrogate: Surrogate,
          detach_reset: bool) -> tuple[Tensor, State]:
    spikes = []
    for t in range(x_seq.shape[0]):
        spike, state = _step(x_seq[t], state, charge, fire, reset, surrogate, detach_reset)
        spikes.append(spike)
    return torch.stack(spikes), state


@functools.lru_cache(maxsize=None)
def _compiled_loop(backend: str):
    # one compiled function per torch.compile backend; torch.compile specialises it per neuron
    # definition (its functions are guarded by identity) and per sequence length
    return torch.compile(_loop, backend=backend)


_compile_failure: str | None = None  # why torch.compile did not work here, once it failed


def _run_compiled(backend: str, *args) -> tuple[Tensor, State]:
    global _compile_failure
    if _compile_failure is None:
        try:
            return _compiled_loop(backend)(*args)
        except NeuronDefinitionError:
            raise
        except Exception as exc:  # no C++ compiler, an unsupported Python or platform, ...
            result = _loop(*args)  # a mistake in the neuron's functions raises here, as without compile
            _compile_failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            logger.warning("torch.compile is unavailable for generic neurons (%s); they run their time loop "
                           "uncompiled (same results, slower)", _compile_failure)
            return result
    return _loop(*args)


def _initial_state(state: Mapping[str, Tensor | float], like: Tensor) -> State:
    if not isinstance(state, Mapping) or not state:
        raise InvalidArgumentError(f"a neuron's state must be a non-empty dict of named values (e.g. {{'v': 0.0}}), "
                                   f"got {state!r}")
    out = {}
    for name, value in state.items():
        if not isinstance(value, Tensor):
            out[name] = torch.full(like.shape, float(value), dtype=like.dtype, device=like.device)
            continue
        if value.device != like.device:
            raise InvalidArgumentError(f"state variable {name!r} is on {value.device} but the input is on "
                                       f"{like.device}; move the state (or the neuron module) to the input's device")
        try:
            out[name] = value.to(dtype=like.dtype).expand(like.shape)
        except RuntimeError:
            raise InvalidArgumentError(f"state variable {name!r} has shape {tuple(value.shape)}, which does not "
                                       f"broadcast to one input step {tuple(like.shape)}; reset the state between "
                                       "batches of different sizes") from None
    return out


def _check_input(x: Tensor, multistep: bool) -> None:
    if not isinstance(x, Tensor):
        raise InvalidTypeError(f"neuron input must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidTypeError(f"neuron input must be a floating-point tensor, got {x.dtype}")
    if multistep and (x.dim() < 2 or x.shape[0] == 0):
        raise InvalidArgumentError(f"multi-step neurons need a time-major input [T, B, ...] with T >= 1, got shape "
                                   f"{tuple(x.shape)}")


def _check_functions(charge, fire, reset, surrogate) -> None:
    for role, fn in (("charge", charge), ("fire", fire), ("reset", reset)):
        if not callable(fn):
            raise InvalidTypeError(f"{role} must be a function, got {type(fn).__name__}")
    if not isinstance(surrogate, Surrogate):
        raise InvalidTypeError(f"surrogate must be a cortexsnn Surrogate, got {type(surrogate).__name__}")


def neuron_step(
    x: Tensor,
    state: Mapping[str, Tensor | float],
    charge: ChargeFn,
    fire: FireFn,
    reset: ResetFn,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
) -> tuple[Tensor, State]:
    """One step of a neuron given by its functions: ``(spike, state)`` for the input ``x [B, ...]``.

    ``state`` maps each state variable to its value (a number, or a tensor broadcastable to ``x``).
    """
    _check_input(x, multistep=False)
    _check_functions(charge, fire, reset, surrogate)
    return _step(x, _initial_state(state, x), charge, fire, reset, surrogate, bool(detach_reset))


def neuron_multistep(
    x_seq: Tensor,
    state: Mapping[str, Tensor | float],
    charge: ChargeFn,
    fire: FireFn,
    reset: ResetFn,
    surrogate: Surrogate = _DEFAULT_SURROGATE,
    detach_reset: bool = False,
    compile: bool | str = False,
) -> tuple[Tensor, State]:
    """A neuron given by its functions over ``x_seq [T, B, ...]``: ``(spikes [T, B, ...], final state)``.

    Args:
        x_seq: time-major input, floating point.
        state: initial value of each state variable (a number, or a tensor broadcastable to
            ``x_seq[0]``).
        charge, fire, reset: the neuron's dynamics (see the module docstring).
        surrogate: the gradient of the spike function.
        detach_reset: no gradient through the spike in ``reset``.
        compile: ``True`` compiles the time loop with ``torch.compile`` (default backend,
            inductor); a string names another ``torch.compile`` backend; ``False`` runs it plainly.
            The loop is unrolled: one compilation per sequence length and neuron definition.
    """
    _check_input(x_seq, multistep=True)
    _check_functions(charge, fire, reset, surrogate)
    args = (x_seq, _initial_state(state, x_seq[0]), charge, fire, reset, surrogate, bool(detach_reset))
    if compile is False:
        return _loop(*args)
    if compile is True:
        return _run_compiled("inductor", *args)
    if isinstance(compile, str):
        return _run_compiled(compile, *args)
    raise InvalidTypeError(f"compile must be True, False or the name of a torch.compile backend, got {compile!r}")
