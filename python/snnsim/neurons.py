"""Spiking neuron models, each written once as a pure step function on tensors.

Every model is a function ``step(x, v, params) -> (s, v_new)``:

* ``x`` — the input current at this step, any shape; batched tensors are ``[B, C, ...]`` or
  ``[B, F]`` and per-channel parameters (shape ``[C]``) broadcast along dim 1. A parameter of
  shape ``[1]`` or a Python number broadcasts everywhere; a parameter with two or more
  dimensions is used as given (it must broadcast against ``x``).
* ``v`` — the membrane after the previous step (``V[n-1]``; zeros at the start), same shape.
* ``s`` — the spikes of this step as unit values (1 where the neuron fired, 0 elsewhere);
  ``v_new`` — the membrane after firing and reset (``V[n]``). Both keep ``x``'s dtype and
  device.

The equations are those of ``docs/model-format.md`` §2 ("Neurons") and docs/semantics.md §1-§2:

* ``dsr_if``: ``U = V + x``; ``s = U >= fire``; ``V = U - theta*s``.
* ``dsr_lif``: ``U = leak*V + gain*x`` (int: ``fx(leak_m, V, f) + fx(gain_m, x, f)``);
  ``s = U >= fire``; ``V = U - theta*s``.
* ``dspike_lif``: ``U = leak*V + x`` (int: ``fx(leak_m, V, f) + x``); ``s = U > fire``
  (strict); ``V = 0`` after a spike, ``U`` otherwise.
* ``integrate``: ``V = V + x``, or with a leak ``V = leak*V + x`` (int:
  ``fx(leak_m, V, f) + x``); never spikes.

Float variants (``*_step``) compute in the dtype of ``x`` (float32 for the engine contract) in
exactly the order of the document: for the LIF, two products then one sum, never a fused
multiply-add. Integer variants (``*_step_int``) take integer-valued tensors held in an integer
dtype or in float64, compute in int64 with the fixed-point product :func:`fixed_point_multiply`
and raise :class:`~snnsim.errors.SnnsimError` when a membrane leaves the int32 range (nothing
wraps).

The thin :class:`torch.nn.Module` wrappers (:class:`DsrIF`, :class:`DsrLIF`, :class:`DspikeLIF`,
:class:`Integrate`) hold the parameters as buffers and call the same functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal, Union

import numpy as np
import torch
from torch import Tensor

from .errors import SnnsimError

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "ParamLike",
    "SpikeFn",
    "DsrIFParams",
    "DsrLIFParams",
    "DsrLIFIntParams",
    "DspikeLIFParams",
    "DspikeLIFIntParams",
    "IntegrateParams",
    "IntegrateIntParams",
    "channel_param",
    "check_int32",
    "as_int64",
    "fixed_point_multiply",
    "fx",
    "dsr_if_step",
    "dsr_if_step_int",
    "dsr_lif_step",
    "dsr_lif_step_int",
    "dspike_lif_step",
    "dspike_lif_step_int",
    "integrate_step",
    "integrate_step_int",
    "neuron_step",
    "DsrIF",
    "DsrLIF",
    "DspikeLIF",
    "Integrate",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

#: A neuron parameter: a Python number, a numpy array or a tensor of shape ``[C]`` or ``[1]``.
ParamLike = Union[Tensor, np.ndarray, float, int]

#: Optional replacement of the firing comparison, called with ``U - fire`` (same shape as ``x``)
#: and returning the spikes. Its forward value must be the document's Heaviside (``>= 0`` for
#: DSR, ``> 0`` for Dspike); training code uses it to attach a surrogate gradient.
SpikeFn = Callable[[Tensor], Tensor]

Precision = Literal["float32", "int"]


# ---------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class DsrIFParams:
    """DSR integrate-and-fire: reset by subtraction of ``theta``, fires at ``U >= fire``
    (``fire = alpha*theta``). Units: the membrane's (the accumulator's scale in int precision).
    The same dataclass serves both precisions (int: integer values)."""

    theta: ParamLike
    fire: ParamLike


@dataclass(frozen=True)
class DsrLIFParams:
    """DSR leaky integrate-and-fire, float: ``U = leak*V + gain*x`` (``leak = exp(-dt/tau)``,
    ``gain = 1 - leak``), fires at ``U >= fire``, subtracts ``theta``."""

    theta: ParamLike
    fire: ParamLike
    leak: ParamLike
    gain: ParamLike


@dataclass(frozen=True)
class DsrLIFIntParams:
    """DSR LIF, int precision: ``U = fx(leak_m, V, f) + fx(gain_m, x, f)`` with the fixed-point
    product ``fx(m, x, f) = (m*x + 2**(f-1)) >> f`` (``1 <= f <= 31``)."""

    theta: ParamLike
    fire: ParamLike
    leak_m: ParamLike
    gain_m: ParamLike
    f: int


@dataclass(frozen=True)
class DspikeLIFParams:
    """Dspike LIF with hard reset, float: ``U = leak*V + x``, fires at ``U > fire`` (strict),
    resets to 0."""

    fire: ParamLike
    leak: ParamLike


@dataclass(frozen=True)
class DspikeLIFIntParams:
    """Dspike LIF, int precision: ``U = fx(leak_m, V, f) + x``, fires at ``U > fire``, resets
    to 0."""

    fire: ParamLike
    leak_m: ParamLike
    f: int


@dataclass(frozen=True)
class IntegrateParams:
    """Leaky integrator, float: ``V = leak*V + x`` (one product, then one sum); never spikes.
    Without parameters (``None``) the integrator is ``V = V + x``."""

    leak: ParamLike


@dataclass(frozen=True)
class IntegrateIntParams:
    """Leaky integrator, int precision: ``V = fx(leak_m, V, f) + x``."""

    leak_m: ParamLike
    f: int


# ---------------------------------------------------------------------- helpers
def channel_param(p: ParamLike, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Return parameter ``p`` as a tensor on ``like``'s device, in ``dtype`` (default
    ``like.dtype``), shaped to broadcast against ``like``: a 1-D ``[C]`` parameter becomes
    ``[1, C, 1, ...]`` when ``like`` has two or more dimensions (channels on dim 1), a ``[1]``
    parameter becomes a scalar. Tensors keep their autograd history."""
    dtype = like.dtype if dtype is None else dtype
    if isinstance(p, Tensor):
        t = p.to(device=like.device, dtype=dtype)
    else:
        t = torch.as_tensor(np.asarray(p), device=like.device).to(dtype)
    if t.ndim == 1:
        if t.numel() == 1:
            t = t.reshape(())
        elif like.ndim >= 2:
            if like.shape[1] != t.numel():
                raise SnnsimError(
                    f"a per-channel parameter of {t.numel()} values does not match dim 1 of an "
                    f"input of shape {list(like.shape)}"
                )
            t = t.reshape((1, t.numel()) + (1,) * (like.ndim - 2))
    return t


def check_int32(t: Tensor, what: str) -> None:
    """Raise :class:`SnnsimError` (message starting with ``what``) if an integer-valued tensor
    holds a value outside ``[-2**31, 2**31 - 1]``."""
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t.detach())
    lo_i, hi_i = int(lo), int(hi)
    if lo_i < INT32_MIN or hi_i > INT32_MAX:
        bad = lo_i if lo_i < INT32_MIN else hi_i
        raise SnnsimError(f"{what}: integer overflow, value {bad} does not fit in int32")


def as_int64(
    t: Tensor | ParamLike, what: str = "value", device: torch.device | None = None
) -> Tensor:
    """Convert an integer-valued tensor (any integer or bool dtype, or a float dtype holding
    integers) to int64. Raises :class:`SnnsimError` naming ``what`` for non-integer values."""
    if not isinstance(t, Tensor):
        t = torch.as_tensor(np.asarray(t), device=device)
    elif device is not None:
        t = t.to(device)
    if t.dtype == torch.int64:
        return t
    if t.is_floating_point():
        if t.numel() and not bool(torch.all(torch.isfinite(t) & (t == torch.round(t)))):
            raise SnnsimError(
                f"{what}: int precision needs integer values, got non-integer or non-finite floats"
            )
        if t.numel() and float(t.abs().max()) >= 2.0**63:
            raise SnnsimError(f"{what}: value too large for int64")
    elif t.is_complex():
        raise SnnsimError(f"{what}: complex values are not supported")
    return t.to(torch.int64)


def _int_param(p: ParamLike, like: Tensor, what: str) -> Tensor:
    return channel_param(as_int64(p, what, like.device), like, torch.int64)


def _check_f(f: int) -> int:
    if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not 1 <= int(f) <= 31:
        raise SnnsimError(f"fixed-point shift f must be an integer in [1, 31], got {f!r}")
    return int(f)


def fixed_point_multiply(m: Tensor | ParamLike, x: Tensor | ParamLike, f: int) -> Tensor:
    """Fixed-point product ``fx(m, x, f) = (m*x + 2**(f-1)) >> f``: exact int64 arithmetic and an
    arithmetic (floor) right shift, i.e. ``m*x / 2**f`` rounded half up (``-1.5 -> -1``).

    ``m`` and ``x`` are integer-valued (int tensors, float tensors holding integers, numbers)
    within int32 and broadcast against each other as torch does; ``1 <= f <= 31``. Returns int64.
    """
    f = _check_f(f)
    xt = as_int64(x, "fixed_point_multiply x") if isinstance(x, Tensor) else None
    device = xt.device if xt is not None else (m.device if isinstance(m, Tensor) else None)
    mt = as_int64(m, "fixed_point_multiply m", device)
    if xt is None:
        xt = as_int64(x, "fixed_point_multiply x", mt.device)
    check_int32(mt, "fixed_point_multiply m")
    check_int32(xt, "fixed_point_multiply x")
    return fx(mt, xt, f)


def fx(m: Tensor, x: Tensor, f: int) -> Tensor:
    """The fixed-point product ``(m*x + 2**(f-1)) >> f`` without checks, for callers that have
    checked already: ``m`` and ``x`` int64 tensors holding int32 values (so ``|m*x| <= 2**62``
    and nothing overflows int64) and ``1 <= f <= 31``. :func:`fixed_point_multiply` is the
    checked form for arbitrary integer-valued inputs."""
    return (m * x + (1 << (f - 1))) >> f


def _where(where: str) -> str:
    return where if where else "neuron"


# ---------------------------------------------------------------------- float models
def dsr_if_step(
    x: Tensor, v: Tensor, p: DsrIFParams, *, spike_fn: SpikeFn | None = None
) -> tuple[Tensor, Tensor]:
    """DSR IF, float: ``U = V + x``; ``s = U >= fire``; ``V = U - theta*s``. Returns
    ``(s, V)`` in ``x``'s dtype."""
    theta = channel_param(p.theta, x)
    fire = channel_param(p.fire, x)
    u = v + x
    s = (u >= fire).to(x.dtype) if spike_fn is None else spike_fn(u - fire)
    return s, u - theta * s


def dsr_lif_step(
    x: Tensor, v: Tensor, p: DsrLIFParams, *, spike_fn: SpikeFn | None = None
) -> tuple[Tensor, Tensor]:
    """DSR LIF, float: ``U = leak*V + gain*x`` (two rounded products, then one rounded sum);
    ``s = U >= fire``; ``V = U - theta*s``. Returns ``(s, V)`` in ``x``'s dtype."""
    theta = channel_param(p.theta, x)
    fire = channel_param(p.fire, x)
    leak = channel_param(p.leak, x)
    gain = channel_param(p.gain, x)
    a = leak * v
    b = gain * x
    u = a + b
    s = (u >= fire).to(x.dtype) if spike_fn is None else spike_fn(u - fire)
    return s, u - theta * s


def dspike_lif_step(
    x: Tensor, v: Tensor, p: DspikeLIFParams, *, spike_fn: SpikeFn | None = None
) -> tuple[Tensor, Tensor]:
    """Dspike LIF, float: ``U = leak*V + x``; ``s = U > fire`` (strict); ``V = U*(1 - s)``
    (0 after a spike, ``U`` otherwise). Returns ``(s, V)`` in ``x``'s dtype."""
    fire = channel_param(p.fire, x)
    leak = channel_param(p.leak, x)
    u = leak * v + x
    s = (u > fire).to(x.dtype) if spike_fn is None else spike_fn(u - fire)
    return s, u * (1 - s)


def integrate_step(x: Tensor, v: Tensor, p: IntegrateParams | None = None) -> tuple[Tensor, Tensor]:
    """Non-firing integrator: ``V = V + x``, or ``V = leak*V + x`` with
    :class:`IntegrateParams` (two rounded operations, no fused multiply-add). Returns
    ``(zeros, V)`` (it never spikes)."""
    if p is None:
        u = v + x
    else:
        a = channel_param(p.leak, x) * v
        u = a + x
    return torch.zeros_like(u), u


# ---------------------------------------------------------------------- int models
def dsr_if_step_int(
    x: Tensor, v: Tensor, p: DsrIFParams, *, where: str = ""
) -> tuple[Tensor, Tensor]:
    """DSR IF, int precision: as :func:`dsr_if_step` in exact int64 arithmetic. ``where`` (e.g.
    ``"node 'sn1' at step 3"``) prefixes the overflow error. Returns ``(s, V)`` in ``x``'s dtype."""
    w = _where(where)
    xi, vi = as_int64(x, f"{w}: input"), as_int64(v, f"{w}: membrane")
    theta = _int_param(p.theta, xi, f"{w}: theta")
    fire = _int_param(p.fire, xi, f"{w}: fire")
    u = vi + xi
    check_int32(u, f"{w}: membrane")
    s = (u >= fire).to(torch.int64)
    vn = u - theta * s
    check_int32(vn, f"{w}: membrane after reset")
    return s.to(x.dtype), vn.to(x.dtype)


def dsr_lif_step_int(
    x: Tensor, v: Tensor, p: DsrLIFIntParams, *, where: str = ""
) -> tuple[Tensor, Tensor]:
    """DSR LIF, int precision: ``U = fx(leak_m, V, f) + fx(gain_m, x, f)`` in int64;
    ``s = U >= fire``; ``V = U - theta*s``; the membrane must stay within int32."""
    w = _where(where)
    f = _check_f(p.f)
    xi, vi = as_int64(x, f"{w}: input"), as_int64(v, f"{w}: membrane")
    check_int32(xi, f"{w}: input")
    check_int32(vi, f"{w}: membrane")
    theta = _int_param(p.theta, xi, f"{w}: theta")
    fire = _int_param(p.fire, xi, f"{w}: fire")
    leak_m = _int_param(p.leak_m, xi, f"{w}: leak_m")
    gain_m = _int_param(p.gain_m, xi, f"{w}: gain_m")
    u = fx(leak_m, vi, f) + fx(gain_m, xi, f)
    check_int32(u, f"{w}: membrane")
    s = (u >= fire).to(torch.int64)
    vn = u - theta * s
    check_int32(vn, f"{w}: membrane after reset")
    return s.to(x.dtype), vn.to(x.dtype)


def dspike_lif_step_int(
    x: Tensor, v: Tensor, p: DspikeLIFIntParams, *, where: str = ""
) -> tuple[Tensor, Tensor]:
    """Dspike LIF, int precision: ``U = fx(leak_m, V, f) + x`` in int64; ``s = U > fire``;
    ``V = 0 if s else U``; the membrane must stay within int32."""
    w = _where(where)
    f = _check_f(p.f)
    xi, vi = as_int64(x, f"{w}: input"), as_int64(v, f"{w}: membrane")
    check_int32(vi, f"{w}: membrane")
    fire = _int_param(p.fire, xi, f"{w}: fire")
    leak_m = _int_param(p.leak_m, xi, f"{w}: leak_m")
    u = fx(leak_m, vi, f) + xi
    check_int32(u, f"{w}: membrane")
    sb = u > fire
    vn = torch.where(sb, torch.zeros_like(u), u)
    return sb.to(x.dtype), vn.to(x.dtype)


def integrate_step_int(
    x: Tensor, v: Tensor, p: IntegrateIntParams | None = None, *, where: str = ""
) -> tuple[Tensor, Tensor]:
    """Integrator, int precision: ``V = V + x``, or ``V = fx(leak_m, V, f) + x`` with
    :class:`IntegrateIntParams`, in int64, within int32. Returns ``(zeros, V)``."""
    w = _where(where)
    vi, xi = as_int64(v, f"{w}: membrane"), as_int64(x, f"{w}: input")
    if p is None:
        u = vi + xi
    else:
        f = _check_f(p.f)
        check_int32(vi, f"{w}: membrane")
        u = fx(_int_param(p.leak_m, xi, f"{w}: leak_m"), vi, f) + xi
    check_int32(u, f"{w}: membrane")
    return torch.zeros_like(x), u.to(x.dtype)


_STEPS: dict[tuple[str, str], Callable[..., tuple[Tensor, Tensor]]] = {
    ("dsr_if", "float32"): dsr_if_step,
    ("dsr_lif", "float32"): dsr_lif_step,
    ("dspike_lif", "float32"): dspike_lif_step,
    ("integrate", "float32"): integrate_step,
    ("dsr_if", "int"): dsr_if_step_int,
    ("dsr_lif", "int"): dsr_lif_step_int,
    ("dspike_lif", "int"): dspike_lif_step_int,
    ("integrate", "int"): integrate_step_int,
}


def neuron_step(
    op: str, precision: Precision, x: Tensor, v: Tensor, p: Any, *, where: str = ""
) -> tuple[Tensor, Tensor]:
    """Dispatch to the step function of ``op`` (``dsr_if``, ``dsr_lif``, ``dspike_lif``,
    ``integrate``) in ``precision`` (``"float32"`` or ``"int"``)."""
    try:
        fn = _STEPS[(op, precision)]
    except KeyError:
        raise SnnsimError(f"no neuron model {op!r} in precision {precision!r}") from None
    if precision == "int":
        return fn(x, v, p, where=where)
    return fn(x, v, p)


# ---------------------------------------------------------------------- modules
class _NeuronModule(torch.nn.Module):
    """Holds a params dataclass; array-valued fields become buffers so ``.to(device)`` moves
    them. ``forward(x, v=None) -> (s, v_new)``; ``v=None`` starts from a zero membrane."""

    op: str = ""

    def __init__(self, params: Any, precision: Precision = "float32") -> None:
        super().__init__()
        if precision not in ("float32", "int"):
            raise SnnsimError(f"precision must be 'float32' or 'int', got {precision!r}")
        self.precision: Precision = precision
        self._params_type = type(params) if params is not None else None
        self._scalars: dict[str, Any] = {}
        self._tensor_fields: list[str] = []
        if params is not None:
            for fld in dataclasses.fields(params):
                val = getattr(params, fld.name)
                if isinstance(val, (Tensor, np.ndarray)):
                    t = val if isinstance(val, Tensor) else torch.as_tensor(val)
                    self.register_buffer(fld.name, t)
                    self._tensor_fields.append(fld.name)
                else:
                    self._scalars[fld.name] = val

    @property
    def params(self) -> Any:
        """The parameters as a dataclass (buffers included, on the module's device)."""
        if self._params_type is None:
            return None
        kw = dict(self._scalars)
        for name in self._tensor_fields:
            kw[name] = getattr(self, name)
        return self._params_type(**kw)

    def forward(self, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if v is None:
            v = torch.zeros_like(x)
        return neuron_step(self.op, self.precision, x, v, self.params)

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}"


class DsrIF(_NeuronModule):
    """DSR integrate-and-fire neuron; ``params``: :class:`DsrIFParams`."""

    op = "dsr_if"

    def __init__(self, params: DsrIFParams, precision: Precision = "float32") -> None:
        super().__init__(params, precision)


class DsrLIF(_NeuronModule):
    """DSR LIF neuron; ``params``: :class:`DsrLIFParams` (float) or :class:`DsrLIFIntParams`
    (int)."""

    op = "dsr_lif"

    def __init__(
        self, params: DsrLIFParams | DsrLIFIntParams, precision: Precision = "float32"
    ) -> None:
        want = DsrLIFParams if precision == "float32" else DsrLIFIntParams
        if not isinstance(params, want):
            raise SnnsimError(f"DsrLIF in {precision} precision needs {want.__name__}")
        super().__init__(params, precision)


class DspikeLIF(_NeuronModule):
    """Dspike LIF neuron (hard reset); ``params``: :class:`DspikeLIFParams` (float) or
    :class:`DspikeLIFIntParams` (int)."""

    op = "dspike_lif"

    def __init__(
        self, params: DspikeLIFParams | DspikeLIFIntParams, precision: Precision = "float32"
    ) -> None:
        want = DspikeLIFParams if precision == "float32" else DspikeLIFIntParams
        if not isinstance(params, want):
            raise SnnsimError(f"DspikeLIF in {precision} precision needs {want.__name__}")
        super().__init__(params, precision)


class Integrate(_NeuronModule):
    """Non-firing integrator (the Dspike output layer): ``V = V + x``; with ``params``
    (:class:`IntegrateParams` float, :class:`IntegrateIntParams` int) the leaky
    ``V = leak*V + x``."""

    op = "integrate"

    def __init__(
        self,
        precision: Precision = "float32",
        params: IntegrateParams | IntegrateIntParams | None = None,
    ) -> None:
        super().__init__(params, precision)
