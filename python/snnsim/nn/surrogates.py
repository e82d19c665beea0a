"""Surrogate gradients for the Heaviside firing function of Dspike-style training.

Each surrogate is a callable object usable as the ``spike_fn`` hook of
:func:`snnsim.neurons.dspike_lif_step`: it receives ``x = U - fire`` and returns the spikes
``1[x > 0]`` (strict, docs/semantics.md §1.2) whose backward is the surrogate derivative ``dS/dU``:

* :class:`DspikeSurrogate` (Li et al., NeurIPS 2021, the Dspike function with temperature
  ``b`` and half-width ``w``)::

      dS/dU = b * (1 - tanh(b x)^2) / (2 tanh(b w))   for |x| < w,   0 otherwise.

  It integrates to ``(tanh(b x) / tanh(b w) + 1) / 2`` on ``[-w, w]``, i.e. exactly 1 over the
  window; ``b -> 0`` gives the rectangle ``1/(2w)``, large ``b`` approaches the Heaviside.
  ``b`` is mutable (the temperature search changes it once per epoch).
* :class:`RectSurrogate` (the paper's Eq. 7): ``dS/dU = (1/a) * 1[|x| < a/2]``.
* :class:`TriangleSurrogate` (the paper's Eq. 8): ``dS/dU = (1/a)^2 * max(0, a - |x|)``.

The derivative formulas are also exposed as plain functions (:func:`dspike_grad`,
:func:`rect_grad`, :func:`triangle_grad`) for tests and plots.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = [
    "B_MIN",
    "dspike_grad",
    "rect_grad",
    "triangle_grad",
    "Surrogate",
    "DspikeSurrogate",
    "RectSurrogate",
    "TriangleSurrogate",
    "make_surrogate",
]

#: Smallest temperature used; below it the Dspike derivative is evaluated as its b -> 0 limit.
B_MIN = 1e-3


def dspike_grad(x: Tensor, b: float, w: float = 0.5) -> Tensor:
    """Dspike surrogate derivative ``b (1 - tanh(b x)^2) / (2 tanh(b w))`` on ``|x| < w``, zero
    elsewhere (``b <= B_MIN``: the limit ``1/(2w)``)."""
    if w <= 0:
        raise ValueError(f"dspike_grad: half-width w must be > 0, got {w}")
    inside = (x.abs() < w).to(x.dtype)
    if b <= B_MIN:
        return inside / (2.0 * w)
    t = torch.tanh(b * x)
    return b * (1.0 - t * t) / (2.0 * math.tanh(b * w)) * inside


def rect_grad(x: Tensor, a: float = 1.0) -> Tensor:
    """Rectangular surrogate derivative ``(1/a) 1[|x| < a/2]`` (Eq. 7)."""
    return (x.abs() < a / 2).to(x.dtype) / a


def triangle_grad(x: Tensor, a: float = 1.0) -> Tensor:
    """Triangular surrogate derivative ``(1/a)^2 max(0, a - |x|)`` (Eq. 8)."""
    return (a - x.abs()).clamp_min(0.0) / (a * a)


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, grad_fn: Callable[[Tensor], Tensor]) -> Tensor:
        ctx.save_for_backward(x)
        ctx.grad_fn = grad_fn
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return g * ctx.grad_fn(x), None


class Surrogate:
    """Base class: ``surrogate(x)`` returns ``1[x > 0]`` with the derivative :meth:`grad`."""

    name = "surrogate"

    def grad(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and x.requires_grad):
            return (x > 0).to(x.dtype)
        return _SpikeFn.apply(x, self.grad)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class DspikeSurrogate(Surrogate):
    """The Dspike function with temperature ``b`` (mutable) and half-width ``w``."""

    name = "dspike"

    def __init__(self, b: float = 1.0, w: float = 0.5) -> None:
        if w <= 0:
            raise ValueError(f"DspikeSurrogate: w must be > 0, got {w}")
        self.b = float(b)
        self.w = float(w)

    @property
    def b(self) -> float:
        return self._b

    @b.setter
    def b(self, value: float) -> None:
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"DspikeSurrogate: temperature b must be finite and > 0, got {value}")
        self._b = float(value)

    def grad(self, x: Tensor) -> Tensor:
        return dspike_grad(x, self._b, self.w)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "b": self._b, "w": self.w}

    def __repr__(self) -> str:
        return f"DspikeSurrogate(b={self._b:g}, w={self.w:g})"


class RectSurrogate(Surrogate):
    """Rectangular surrogate of width ``a`` (Eq. 7)."""

    name = "rect"

    def __init__(self, a: float = 1.0) -> None:
        if a <= 0:
            raise ValueError(f"RectSurrogate: a must be > 0, got {a}")
        self.a = float(a)

    def grad(self, x: Tensor) -> Tensor:
        return rect_grad(x, self.a)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a}

    def __repr__(self) -> str:
        return f"RectSurrogate(a={self.a:g})"


class TriangleSurrogate(Surrogate):
    """Triangular surrogate of half-base ``a`` (Eq. 8)."""

    name = "triangle"

    def __init__(self, a: float = 1.0) -> None:
        if a <= 0:
            raise ValueError(f"TriangleSurrogate: a must be > 0, got {a}")
        self.a = float(a)

    def grad(self, x: Tensor) -> Tensor:
        return triangle_grad(x, self.a)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a}

    def __repr__(self) -> str:
        return f"TriangleSurrogate(a={self.a:g})"


def make_surrogate(name: str, **kw: Any) -> Surrogate:
    """``"dspike"`` (``b``, ``w``), ``"rect"`` (``a``) or ``"triangle"`` (``a``)."""
    if name == "dspike":
        return DspikeSurrogate(**kw)
    if name in ("rect", "rectangular"):
        return RectSurrogate(**kw)
    if name in ("triangle", "triangular"):
        return TriangleSurrogate(**kw)
    raise ValueError(f"unknown surrogate {name!r} (dspike, rect, triangle)")
