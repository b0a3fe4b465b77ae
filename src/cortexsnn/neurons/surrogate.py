"""Surrogate gradients for the spike non-linearity.

The forward pass is always the Heaviside step ``S = 1[x >= 0]`` (SpikingJelly's convention,
``Heaviside(0) = 1``), where ``x = H - v_threshold``. The backward pass replaces the Dirac
delta by the derivative of a smooth stand-in, whose sharpness is set by ``alpha``.

Each surrogate is a small immutable object: calling it on a tensor applies the spike function
with that surrogate's gradient; :meth:`Surrogate.derivative` gives the gradient itself, so that
fused kernels and tests can use exactly the same formula. ``kind_id`` identifies the formula
inside the compiled kernels.

The compiled neuron kernels (CPU and Triton) implement the derivatives of the five built-in classes
only; :func:`kernel_kind` says whether a surrogate is one of them (a subclass that overrides
``derivative``, or a new class, is not, whatever its ``kind_id``). Every other surrogate runs on the
``torch`` backend, which calls its own ``derivative`` (see :mod:`cortexsnn.neurons.kernels`).
A ``derivative`` must return a tensor of its argument's shape (:func:`surrogate_derivative`
checks it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cortexsnn.errors import CortexSNNError

__all__ = [
    "Surrogate",
    "ATan",
    "Sigmoid",
    "FastSigmoid",
    "Gaussian",
    "Triangle",
    "heaviside",
    "get_surrogate",
    "kernel_kind",
    "surrogate_derivative",
    "SurrogateError",
    "UnsupportedSurrogateError",
]


class SurrogateError(CortexSNNError, ValueError):
    """A surrogate's ``derivative`` returned something other than a tensor of its argument's shape."""


class UnsupportedSurrogateError(CortexSNNError, ValueError):
    """A compiled neuron backend was asked for with a surrogate whose derivative it does not implement."""


def heaviside(x: Tensor) -> Tensor:
    """Spike where ``x >= 0`` (no gradient)."""
    return (x >= 0).to(x.dtype)


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, surrogate: "Surrogate") -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(ctx.surrogate, x), None


@dataclass(frozen=True)
class Surrogate:
    """Base class: Heaviside forward, ``derivative(x)`` backward."""

    alpha: float = 1.0
    # identifies the formula in the compiled kernels (-1: none); only honoured for the built-in
    # classes and subclasses that keep their derivative (kernel_kind)
    kind_id = -1

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(
                f"{type(self).__name__}: alpha must be a positive finite number, got {self.alpha!r}"
            )

    def __call__(self, x: Tensor) -> Tensor:
        return _SpikeFunction.apply(x, self)

    def derivative(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class ATan(Surrogate):
    """Arc-tangent surrogate (Fang et al. 2021): ``alpha / (2 (1 + (pi/2 alpha x)^2))``.

    Stand-in ``S = atan(pi/2 alpha x) / pi + 1/2``. ``alpha = 2`` gives ``1 / (1 + (pi x)^2)``.
    """

    alpha: float = 2.0
    kind_id = 0

    def derivative(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x).square())


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """Logistic surrogate: ``alpha sigma(alpha x) (1 - sigma(alpha x))``."""

    alpha: float = 4.0
    kind_id = 1

    def derivative(self, x: Tensor) -> Tensor:
        sg = torch.sigmoid(self.alpha * x)
        return self.alpha * sg * (1 - sg)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid / SuperSpike (Zenke & Ganguli 2018): ``1 / (1 + alpha |x|)^2``.

    Equals snnTorch's ``fast_sigmoid(slope=alpha)`` and SpikingJelly's ``SuperSpike(alpha)``.
    """

    alpha: float = 25.0
    kind_id = 2

    def derivative(self, x: Tensor) -> Tensor:
        return 1 / (1 + self.alpha * x.abs()).square()


@dataclass(frozen=True)
class Gaussian(Surrogate):
    """Gaussian probability density with standard deviation ``sigma = alpha``.

    ``exp(-x^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``; Fang et al. (IJCAI 2020) (IIR-SNN) uses ``sigma = 0.4``.
    """

    alpha: float = 0.4
    kind_id = 3

    @property
    def sigma(self) -> float:
        return self.alpha

    def derivative(self, x: Tensor) -> Tensor:
        s = self.alpha
        return torch.exp(-x.square() / (2 * s * s)) / (math.sqrt(2 * math.pi) * s)


@dataclass(frozen=True)
class Triangle(Surrogate):
    """Piecewise-linear (triangle) surrogate: ``alpha * max(0, 1 - alpha |x|)``, area 1."""

    alpha: float = 1.0
    kind_id = 4

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha * torch.clamp(1 - self.alpha * x.abs(), min=0)


# the formulas the compiled kernels implement, by kind_id (lif_cpu.c, lif_triton.py)
_KERNEL_FORMULAS: dict[int, type[Surrogate]] = {cls.kind_id: cls for cls in (ATan, Sigmoid, FastSigmoid, Gaussian, Triangle)}


def kernel_kind(surrogate: Surrogate) -> int | None:
    """The id of ``surrogate``'s formula in the compiled neuron kernels, or ``None`` when they do not
    implement it: a user-defined surrogate, or a subclass of a built-in one that overrides
    ``derivative`` (its ``kind_id`` is not trusted: the kernels would compute another gradient)."""
    kind = getattr(type(surrogate), "kind_id", -1)
    owner = _KERNEL_FORMULAS.get(kind) if isinstance(kind, int) else None
    if owner is None or not isinstance(surrogate, owner) or type(surrogate).derivative is not owner.derivative:
        return None
    return kind


def surrogate_derivative(surrogate: Surrogate, x: Tensor) -> Tensor:
    """``surrogate.derivative(x)``, checked to be a tensor of ``x``'s shape: a derivative that returns
    another shape would otherwise be broadcast into a wrong gradient, or fail deep inside autograd."""
    sg = surrogate.derivative(x)
    if not isinstance(sg, Tensor) or sg.shape != x.shape:
        got = f"shape {tuple(sg.shape)}" if isinstance(sg, Tensor) else type(sg).__name__
        raise SurrogateError(
            f"{type(surrogate).__name__}.derivative returned {got} for an input of shape {tuple(x.shape)}; "
            "it must return the elementwise derivative, a tensor of its input's shape (e.g. torch.ones_like(x) * c "
            "for a constant)"
        )
    return sg


_BY_NAME = {
    "atan": ATan,
    "sigmoid": Sigmoid,
    "fast_sigmoid": FastSigmoid,
    "superspike": FastSigmoid,
    "gaussian": Gaussian,
    "triangle": Triangle,
    "piecewise_linear": Triangle,
}


def get_surrogate(spec: "str | Surrogate", alpha: float | None = None) -> Surrogate:
    """Return a surrogate from a name (``"atan"``, ``"sigmoid"``, ``"fast_sigmoid"``,
    ``"gaussian"``, ``"triangle"``) or pass an instance through."""
    if isinstance(spec, Surrogate):
        return spec
    key = str(spec).lower()
    if key not in _BY_NAME:
        raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(_BY_NAME)}")
    cls = _BY_NAME[key]
    return cls() if alpha is None else cls(alpha=float(alpha))
