"""Preparing static inputs and pre-binned frames for the executors.

Both executors (the Rust engine and the torch reference) receive exactly what these functions
return, so an input is converted and quantised once, in one place:

* float precision: float32 arrays;
* int precision: int32 arrays; a float static input is quantised with :func:`quantize`
  (``q = clip(round_half_even(x / scale), lo, hi)``), an integer one is taken as already
  quantised and must lie in ``[lo, hi]``: ``[-128, 127]`` for a signed 8-bit input (the
  default) or ``[0, 255]`` for an unsigned one (the file's ``input.signed`` false,
  :func:`input_range`).

Arrays may be numpy arrays or torch tensors (moved to the CPU). A wrong type or dtype raises
``TypeError``; a wrong shape or non-finite values raise :class:`~snnsim.errors.InputError`.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from .errors import InputError

QMIN, QMAX = -128, 127  # a signed 8-bit input (input.signed true, the default)
UQMIN, UQMAX = 0, 255  # an unsigned 8-bit input (input.signed false)
_I32_MIN, _I32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)


def to_numpy(x: Any, what: str = "input") -> np.ndarray:
    """Return ``x`` (a numpy array or a torch tensor) as a numpy array with a numeric (bool,
    integer or real floating) dtype; raise ``TypeError`` for anything else."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_complex():
            raise TypeError(f"{what}: complex tensors are not supported (dtype {t.dtype})")
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        x = t.numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{what}: dtype {x.dtype} is not numeric (need bool, integer or float)")
    return x


def input_range(signed: bool = True) -> tuple[int, int]:
    """The integer range ``(lo, hi)`` of a quantised static or sequence input: ``(-128, 127)``
    for a signed 8-bit input (``input.signed`` true, the default), ``(0, 255)`` for an unsigned
    one."""
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed must be a bool, got {type(signed).__name__}")
    return (QMIN, QMAX) if signed else (UQMIN, UQMAX)


def _range_rule(signed: bool) -> str:
    lo, hi = input_range(signed)
    kind = "signed" if signed else "unsigned"
    return f"[{lo}, {hi}] (the model's {kind} 8-bit input, input.signed {str(signed).lower()})"


def quantize(x: np.ndarray, scale: float, signed: bool = True) -> np.ndarray:
    """Quantise a float input to the 8-bit input range as int32:
    ``q = clip(round_half_even(x / scale), lo, hi)`` with ``(lo, hi)`` = ``(-128, 127)``
    (``signed``) or ``(0, 255)`` (:func:`input_range`).

    The division is done in float64 (``x`` is first converted to float64), so the result does not
    depend on the input's float dtype beyond its values. This is the only quantiser: the engine
    and the reference both receive its output.
    """
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"quantize: scale must be a finite positive float, got {scale!r}")
    lo, hi = input_range(signed)
    q = np.rint(np.asarray(x, dtype=np.float64) / float(scale))
    return np.clip(q, lo, hi).astype(np.int32)


def _check_finite(a: np.ndarray, what: str) -> None:
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(
                f"{what} holds {int(bad.sum())} non-finite value(s) (NaN or inf); "
                f"first at index {list(idx)}: {a[idx]}"
            )


def _batch(a: np.ndarray, sample_shape: tuple[int, ...], what: str, layout: str) -> np.ndarray:
    """Add the batch axis to a single sample; check the per-sample shape and a non-empty batch."""
    if a.shape == sample_shape:
        a = a[None]
    elif a.shape[1:] != sample_shape:
        raise InputError(
            f"{what} has shape {list(a.shape)}; expected {layout} with "
            f"per-sample shape {list(sample_shape)}"
        )
    if a.shape[0] == 0:
        raise InputError(f"{what} has batch size 0; need at least one sample")
    return a


def _to_float32(a: np.ndarray, what: str) -> np.ndarray:
    _check_finite(a, what)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(a, dtype=np.float32)
    if a.dtype.kind == "f":
        # float64 values beyond float32's range become inf
        _check_finite(out, f"{what} (after conversion to float32)")
    return out


def prepare_static(
    x: Any,
    input_shape: Sequence[int],
    precision: str,
    scale: float | None,
    signed: bool = True,
) -> np.ndarray:
    """Convert a static (analog) input to the array the executors take: ``[B, *input_shape]``,
    float32 in float precision, int32 in int precision: in [-128, 127], or in [0, 255] when
    ``signed`` is false (the model's ``input.signed``).

    ``x`` has shape ``input_shape`` (one sample) or ``[B, *input_shape]``. In int precision a float
    ``x`` is quantised with ``scale`` (the model's ``input.scale``); an integer or bool ``x`` is
    taken as already quantised and must lie in that range.
    """
    shape = tuple(int(d) for d in input_shape)
    a = _batch(to_numpy(x), shape, "static input", "[*input_shape] or [B, *input_shape]")
    if precision == "float32":
        return _to_float32(a, "static input")
    if a.dtype.kind == "f":
        _check_finite(a, "static input")
        if scale is None:
            raise InputError(
                "static input: the model has no input scale to quantise a float input with"
            )
        return np.ascontiguousarray(quantize(a, scale, signed))
    lo, hi = input_range(signed)
    return _int_range(
        a,
        lo,
        hi,
        "static input",
        f"integer input is taken as already quantised and must lie in {_range_rule(signed)}",
    )


def _dtype_within(dtype: np.dtype, lo: int, hi: int) -> bool:
    """Whether every value of ``dtype`` lies in ``[lo, hi]`` (no scan needed)."""
    if dtype.kind == "b":
        return lo <= 0 and hi >= 1
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return lo <= int(info.min) and int(info.max) <= hi
    return False


def _int_range(a: np.ndarray, lo: int, hi: int, what: str, rule: str) -> np.ndarray:
    if a.size and not _dtype_within(a.dtype, lo, hi):
        mn, mx = int(a.min()), int(a.max())
        if mn < lo or mx > hi:
            bad = mn if mn < lo else mx
            idx = tuple(int(i) for i in np.argwhere(a == bad)[0])
            raise InputError(f"{what}: {rule}; got {bad} at index {list(idx)}")
    return np.ascontiguousarray(a, dtype=np.int32)


def prepare_frames(frames: Any, input_shape: Sequence[int], precision: str) -> np.ndarray:
    """Convert pre-binned per-step input (event counts) to ``[B, T, *input_shape]``: float32 in
    float precision, int32 in int precision.

    ``frames`` has shape ``[T, *input_shape]`` (one sample) or ``[B, T, *input_shape]``, with
    ``T >= 1`` time steps. In int precision the values must be integers (a float array must hold
    whole numbers) within the int32 range; no quantisation scale applies to event counts.
    """
    shape = tuple(int(d) for d in input_shape)
    a = to_numpy(frames, "frames")
    if a.ndim == len(shape) + 1:
        a = a[None]
    if a.ndim != len(shape) + 2 or a.shape[2:] != shape:
        raise InputError(
            f"frames have shape {list(a.shape)}; expected [B, T, *input_shape] or "
            f"[T, *input_shape] with input_shape {list(shape)}"
        )
    if a.shape[0] == 0:
        raise InputError("frames have batch size 0; need at least one sample")
    if a.shape[1] <= 0:
        raise InputError(
            f"frames have T = {a.shape[1]} time steps (axis 1 of shape {list(a.shape)}); "
            "need T >= 1"
        )
    if precision == "float32":
        return _to_float32(a, "frames")
    if a.dtype.kind == "f":
        _check_finite(a, "frames")
        frac = a != np.floor(a)
        if frac.any():
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise InputError(
                f"frames: int precision needs whole-number event counts; "
                f"got {a[idx]} at index {list(idx)}"
            )
    return _int_range(a, _I32_MIN, _I32_MAX, "frames", "values must fit in int32")


def prepare_sequence(
    seq: Any,
    input_shape: Sequence[int],
    precision: str,
    scale: float | None,
    signed: bool = True,
) -> np.ndarray:
    """Convert per-step input tensors (spike trains or graded values; a model of input kind
    ``"sequence"``) to ``[B, T, *input_shape]``: float32 in float precision, int32 in int
    precision.

    ``seq`` has shape ``[T, *input_shape]`` (one sample) or ``[B, T, *input_shape]``. In int
    precision an integer or bool ``seq`` is taken as already quantised and must lie in
    [-128, 127] (or [0, 255] when ``signed`` is false, the model's ``input.signed``); a float
    one is quantised per element with the model's ``scale`` (:func:`quantize`), or, when the
    model has none, must hold whole numbers in that range (e.g. binary spikes as 0.0/1.0)."""
    shape = tuple(int(d) for d in input_shape)
    a = to_numpy(seq, "sequence")
    if a.ndim == len(shape) + 1:
        a = a[None]
    if a.ndim != len(shape) + 2 or a.shape[2:] != shape:
        raise InputError(
            f"sequence has shape {list(a.shape)}; expected [B, T, *input_shape] or "
            f"[T, *input_shape] with input_shape {list(shape)}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(
            f"sequence has shape {list(a.shape)}; need batch size B >= 1 (axis 0) and "
            "T >= 1 time steps (axis 1)"
        )
    if precision == "float32":
        return _to_float32(a, "sequence")
    if a.dtype.kind == "f":
        _check_finite(a, "sequence")
        if scale is not None:
            return np.ascontiguousarray(quantize(a, scale, signed))
        frac = a != np.floor(a)
        if frac.any():
            idx = tuple(int(i) for i in np.argwhere(frac)[0])
            raise InputError(
                "sequence: the model has no input scale, so int precision needs whole numbers "
                f"(e.g. spikes 0/1); got {a[idx]} at index {list(idx)}"
            )
    lo, hi = input_range(signed)
    return _int_range(
        a,
        lo,
        hi,
        "sequence",
        f"integer input is taken as quantised and must lie in {_range_rule(signed)}",
    )


def frames_for_precision(frames: np.ndarray, precision: str) -> np.ndarray:
    """Cast int32 event-count frames (from binning) to the dtype the executors take for
    ``precision`` (float32 in float precision, int32 in int precision)."""
    dtype = np.float32 if precision == "float32" else np.int32
    return np.ascontiguousarray(frames, dtype=dtype)
