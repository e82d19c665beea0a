"""Construction and validation of event recordings as numpy structured arrays.

Every event reader in :mod:`snnsim.data` returns a one-dimensional structured array of
:data:`EVENT_DTYPE` with the fields

* ``x`` -- column of the pixel, ``0 <= x < W`` (int16),
* ``y`` -- row of the pixel, ``0 <= y < H`` (int16),
* ``p`` -- polarity, ``1`` for an ON (brightness increase) event, ``0`` for OFF (int16),
* ``t`` -- timestamp in microseconds, non-negative (int64).

This is the layout the engine accepts (docs/model-format.md, section 6). Binning events into
frames is not done here (see the core package); this module only builds, checks and packs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

from .errors import DataFormatError

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i2"), ("t", "<i8")])
"""dtype of the event arrays returned by the readers: x, y, p as int16, t (us) as int64."""

EVENT_FIELDS = ("x", "y", "p", "t")


def empty_events(n: int = 0) -> np.ndarray:
    """A zero-filled event array of ``n`` events (dtype :data:`EVENT_DTYPE`)."""
    if n < 0:
        raise ValueError(f"empty_events: n must be >= 0, got {n}")
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    t: npt.ArrayLike,
) -> np.ndarray:
    """Build an event array from four equally long one-dimensional columns.

    ``p`` may be bool, ``{0, 1}`` or ``{-1, 1}`` (``-1`` is stored as ``0``, OFF). ``t`` is in
    microseconds. Values must fit the field types (int16 for x, y; int64 for t); nothing else
    is checked here (use :func:`validate_events`).
    """
    cols = {name: np.asarray(v) for name, v in zip(EVENT_FIELDS, (x, y, p, t), strict=True)}
    n = None
    for name, col in cols.items():
        if col.ndim != 1:
            raise ValueError(
                f"make_events: field '{name}' must be one-dimensional, got shape {col.shape}"
            )
        if col.dtype.kind not in "biu" and col.size:
            raise ValueError(
                f"make_events: field '{name}' must be integer or bool, got dtype {col.dtype}"
            )
        if n is None:
            n = col.shape[0]
        elif col.shape[0] != n:
            raise ValueError(
                f"make_events: field '{name}' has {col.shape[0]} entries, expected {n} like 'x'"
            )
    for name in ("x", "y"):
        col = cols[name]
        if col.size and (col.min() < np.iinfo(np.int16).min or col.max() > np.iinfo(np.int16).max):
            raise ValueError(f"make_events: field '{name}' has values outside int16")
    p = cols["p"].astype(np.int64)
    if p.size and not np.isin(p, (-1, 0, 1)).all():
        bad = p[~np.isin(p, (-1, 0, 1))][0]
        raise ValueError(f"make_events: polarity must be in {{-1, 0, 1}} or bool, got {bad}")
    out = empty_events(n or 0)
    out["x"] = cols["x"]
    out["y"] = cols["y"]
    out["p"] = (p > 0).astype(np.int16)
    out["t"] = cols["t"]
    return out


def as_events(events: np.ndarray, name: str = "events") -> np.ndarray:
    """Convert any structured array with integer/bool fields x, y, p, t to :data:`EVENT_DTYPE`.

    Polarity ``-1`` becomes ``0``. Raises :class:`DataFormatError` naming ``name`` and the
    missing field when the input is not such an array.
    """
    arr = np.asarray(events)
    if arr.dtype.names is None:
        raise DataFormatError(
            f"{name}: expected a structured array with fields x, y, p, t, got dtype {arr.dtype}"
        )
    missing = [f for f in EVENT_FIELDS if f not in arr.dtype.names]
    if missing:
        raise DataFormatError(
            f"{name}: missing field(s) {', '.join(missing)} (has {', '.join(arr.dtype.names)})"
        )
    if arr.ndim != 1:
        raise DataFormatError(
            f"{name}: expected a one-dimensional event array, got shape {arr.shape}"
        )
    if arr.dtype == EVENT_DTYPE:
        return arr
    return make_events(arr["x"], arr["y"], arr["p"], arr["t"])


def validate_events(
    events: np.ndarray,
    sensor_size: tuple[int, int] | tuple[int, int, int] | None = None,
    *,
    sorted_t: bool = True,
    name: str = "events",
) -> np.ndarray:
    """Check an event array and return it converted to :data:`EVENT_DTYPE`.

    Args:
        events: structured array with fields x, y, p, t.
        sensor_size: ``(W, H)`` or ``(W, H, C)`` (tonic order: width first); when given,
            ``0 <= x < W`` and ``0 <= y < H`` are required.
        sorted_t: require non-decreasing timestamps.
        name: what to call the array in error messages (e.g. a file path).

    Raises:
        DataFormatError: naming ``name``, the field, the first offending index and value.
    """
    ev = as_events(events, name)
    if ev.size == 0:
        return ev
    if (ev["t"] < 0).any():
        i = int(np.argmax(ev["t"] < 0))
        raise DataFormatError(
            f"{name}: field 't' must be >= 0 us, event {i} has t={int(ev['t'][i])}"
        )
    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        for field, lim in (("x", w), ("y", h)):
            bad = (ev[field] < 0) | (ev[field] >= lim)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataFormatError(
                    f"{name}: field '{field}' must be in [0, {lim}), event {i} has "
                    f"{field}={int(ev[field][i])}"
                )
    if sorted_t and ev.size > 1:
        dec = np.diff(ev["t"]) < 0
        if dec.any():
            i = int(np.argmax(dec)) + 1
            raise DataFormatError(
                f"{name}: field 't' must be non-decreasing, event {i} has t={int(ev['t'][i])} "
                f"after t={int(ev['t'][i - 1])}"
            )
    return ev


def concat_events(
    recordings: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pack several recordings into the engine's batched columns.

    Returns ``(x, y, p, t, offsets)``, all int64, where the events of recording ``b`` are
    ``[offsets[b], offsets[b + 1])`` (``len(offsets) == len(recordings) + 1``) and ``p`` is
    in ``{0, 1}``.
    """
    evs = [as_events(r, f"recordings[{i}]") for i, r in enumerate(recordings)]
    offsets = np.zeros(len(evs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([e.size for e in evs], dtype=np.int64)
    cat = np.concatenate(evs) if evs else empty_events()
    return (
        cat["x"].astype(np.int64),
        cat["y"].astype(np.int64),
        cat["p"].astype(np.int64),
        cat["t"].astype(np.int64),
        offsets,
    )
