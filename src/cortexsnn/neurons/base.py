"""Stateful-module base class shared by every neuron and filter with memory.

State (membrane potential, synaptic traces, ...) lives in non-persistent buffers: it follows
``.to(device/dtype)`` with the module, never enters a state dict, and is put back to its
initial value by :meth:`MemoryModule.reset` or, for a whole network, :func:`reset`.
A state whose initial value is ``None`` is created lazily at the first step with the shape
of the input (the usual case: it depends on the batch size).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

__all__ = ["MemoryModule", "reset", "set_step_mode", "STEP_MODES"]

STEP_MODES = ("s", "m")


class MemoryModule(nn.Module):
    """Base class of modules with state.

    ``step_mode`` is ``"m"`` (multi-step: ``forward`` takes a time-major sequence
    ``[T, B, ...]``) or ``"s"`` (single-step: ``forward`` takes ``[B, ...]`` and carries state
    between calls until :meth:`reset`).
    """

    def __init__(self, step_mode: str = "m") -> None:
        super().__init__()
        self._memory_init: dict[str, float | None] = {}
        self.step_mode = step_mode

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in STEP_MODES:
            raise ValueError(f"step_mode must be 's' (single-step) or 'm' (multi-step), got {mode!r}")
        self._step_mode = mode

    def register_memory(self, name: str, initial: float | None) -> None:
        """Declare a state variable; ``initial`` is a scalar or ``None`` (created lazily)."""
        self._memory_init[name] = initial
        self.register_buffer(name, None if initial is None else torch.tensor(initial), persistent=False)

    def memories(self) -> Iterable[tuple[str, Tensor | None]]:
        for name in self._memory_init:
            yield name, getattr(self, name)

    def reset(self) -> None:
        """Put every state variable back to its initial value."""
        for name, initial in self._memory_init.items():
            old = getattr(self, name)
            if initial is None:
                setattr(self, name, None)
            else:
                like = old if isinstance(old, Tensor) else None
                value = torch.tensor(initial) if like is None else torch.full((), initial, dtype=like.dtype, device=like.device)
                setattr(self, name, value)

    def detach_state(self) -> None:
        """Cut the gradient history of the state (truncated BPTT across chunks)."""
        for name, value in self.memories():
            if isinstance(value, Tensor):
                setattr(self, name, value.detach())

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}"


def reset(net: nn.Module) -> None:
    """Reset the state of every :class:`MemoryModule` in ``net`` (call between samples)."""
    for module in net.modules():
        if isinstance(module, MemoryModule):
            module.reset()


def set_step_mode(net: nn.Module, step_mode: str) -> None:
    """Set ``step_mode`` on every :class:`MemoryModule` in ``net``."""
    for module in net.modules():
        if isinstance(module, MemoryModule):
            module.step_mode = step_mode
