"""Event input: validation, packing and the numpy reference of binning (docs/model-format.md §6).

Recordings are tonic-style structured numpy arrays with fields ``x``, ``y``, ``p``, ``t`` read by
name (any integer or bool dtypes, any field order, extra fields ignored); ``t`` is in
microseconds. For an input shape ``[C, H, W]`` an event adds 1 at ``(channel, y, x)`` of its time
step; the channel is the polarity when ``C == 2`` and 0 when ``C == 1``. Polarity may be bool,
``{0, 1}`` or ``{-1, 1}``; it is mapped to ``{0, 1}`` (``p > 0``).

1-d sensors (audio: tonic's ``sensor_size = (channels, 1, polarities)``, e.g. SHD's ``(700, 1,
1)`` with fields ``t, x, p``) bin onto an input ``[C, L]`` (``x`` the channel along ``L``, the
polarity the row when ``C == 2``: the layout of tonic's ``ToFrame`` for such sensors) or ``[F]``
(``x`` the feature). ``y`` may be absent for them (it must be 0 when present), ``p`` whenever
``C == 1``.

Binning into ``N`` steps (integer arithmetic only):

* ``"time"``: ``t0 = t[0]``, ``D = t[-1] - t0 + 1``, step ``j = ((t - t0) * N) // D``;
* ``"count"``: ``k = E // N``; step ``j`` takes events ``[k*j, k*(j+1))``, the last step also
  the remainder (with ``E < N`` every event lands in the last step);
* fixed windows: ``j = (t - origin_us) // dt_us``.

The Rust engine implements the same rules; :func:`bin_events` and :func:`bin_events_window` are
the reference it is tested against, and what the torch reference executor is fed.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from .errors import InputError
from .limits import check_bytes

FIELDS = ("x", "y", "p", "t")
Binning = Literal["time", "count"]
_I64_MAX = int(np.iinfo(np.int64).max)


def is_event_array(obj: object) -> bool:
    """True for a structured numpy array (one with named fields): what event input looks like."""
    return isinstance(obj, np.ndarray) and obj.dtype.names is not None


def _sensor(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """The ``[C, H, W]`` grid events of an input shape are binned onto: ``[C, H, W]``,
    ``[C, 1, L]`` for ``[C, L]``, ``[1, 1, F]`` for ``[F]``."""
    shape = tuple(int(d) for d in input_shape)
    grid = {3: shape, 2: shape[:1] + (1,) + shape[1:], 1: (1, 1) + shape}.get(len(shape))
    if grid is None or grid[0] not in (1, 2) or min(grid) <= 0:
        raise InputError(
            "event input needs an input shape [C, H, W] or [C, L] with C in (1, 2), or [F]; "
            f"got {list(shape)}"
        )
    return grid[0], grid[1], grid[2]


def sensor_input_shape(sensor_size: Sequence[int]) -> tuple[int, ...]:
    """The snnsim input shape for a tonic ``sensor_size = (W, H, P)``: ``(P, H, W)`` for a
    camera, ``(P, W)`` for a 1-d sensor (``H == 1``, e.g. SHD's ``(700, 1, 1)`` gives
    ``(1, 700)``): the per-step shape of tonic's ``ToFrame`` output for it."""
    size = tuple(int(d) for d in sensor_size)
    if len(size) != 3 or min(size) < 1 or size[2] > 2:
        raise InputError(
            f"sensor_size must be tonic's (W, H, P) with P in (1, 2), got {list(sensor_size)}"
        )
    w, h, p = size
    return (p, w) if h == 1 else (p, h, w)


def _required_fields(input_shape: Sequence[int] | None) -> tuple[str, ...]:
    if input_shape is None:
        return FIELDS
    c, h, _ = _sensor(input_shape)
    return tuple(f for f in FIELDS if not (f == "y" and h == 1) and not (f == "p" and c == 1))


def validate_events(ev: object, input_shape: Sequence[int] | None, *, what: str = "events") -> None:
    """Check one recording; raise :class:`InputError` naming the field, value and index of the
    first problem.

    Checks: ``ev`` is a one-dimensional structured array with integer or bool fields ``x``, ``y``,
    ``p``, ``t`` (``y`` optional for a 1-d input, ``p`` for one channel); ``0 <= x < W`` and
    ``0 <= y < H`` for the sensor of ``input_shape`` (``[C, H, W]``, ``[C, L]`` or ``[F]``;
    skipped when ``input_shape`` is None); ``t >= 0`` (microseconds) and non-decreasing;
    polarities all in ``{0, 1}`` or all in ``{-1, 1}`` (or bool).
    """
    _check_structure(ev, input_shape, what)
    assert isinstance(ev, np.ndarray) and ev.dtype.names is not None
    if ev.size == 0:
        return
    if input_shape is not None:
        _, h, w = _sensor(input_shape)
        for f, bound in (("x", w), ("y", h)):
            if f not in ev.dtype.names:
                continue
            v = ev[f]
            bad = np.flatnonzero((v < 0) | (v >= bound))
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"{what}: field {f!r} = {int(v[i])} at index {i} is outside the sensor "
                    f"(need 0 <= {f} < {bound} for input shape {list(input_shape)})"
                )
    _check_times(ev["t"], what)
    if "p" in ev.dtype.names:
        _check_polarity(ev["p"], what)


def validate_recordings(
    recordings: Sequence[np.ndarray], input_shape: Sequence[int] | None
) -> None:
    """Check a batch of recordings as :func:`validate_events` checks each (the same errors,
    naming ``events[b]`` in a batch of several), with the value checks done once on the
    concatenated fields rather than per recording; a batch that fails them is checked
    recording by recording for the exact message."""
    names = [f"events[{b}]" if len(recordings) > 1 else "events" for b in range(len(recordings))]
    checked: set[np.dtype] = set()  # dtypes whose structure passed (recordings share them)
    for ev, what in zip(recordings, names, strict=True):
        if not (isinstance(ev, np.ndarray) and ev.ndim == 1 and ev.dtype in checked):
            _check_structure(ev, input_shape, what)
            checked.add(ev.dtype)
    dtypes = {ev.dtype for ev in recordings}
    fields = tuple(f for f in FIELDS if f in (next(iter(dtypes)).names or ()))
    sizes = [len(ev) for ev in recordings]
    if (
        len({tuple(f for f in FIELDS if f in (d.names or ())) for d in dtypes}) != 1
        or sum(sizes) == 0
        or any(d["t"].kind == "u" and d["t"].itemsize >= 8 for d in dtypes)
        or not _values_ok(recordings, fields, sizes, input_shape)
    ):
        for ev, what in zip(recordings, names, strict=True):
            validate_events(ev, input_shape, what=what)


def _values_ok(
    recordings: Sequence[np.ndarray],
    fields: tuple[str, ...],
    sizes: list[int],
    input_shape: Sequence[int] | None,
) -> bool:
    """Whether the concatenated fields pass every value check of :func:`validate_events`."""
    cols = {f: np.concatenate([ev[f] for ev in recordings]) for f in fields}
    if input_shape is not None:
        _, h, w = _sensor(input_shape)
        for f, bound in (("x", w), ("y", h)):
            if f in cols and ((cols[f] < 0) | (cols[f] >= bound)).any():
                return False
    t = cols["t"].astype(np.int64)
    if (t < 0).any():
        return False
    dec = np.diff(t) < 0
    starts = np.cumsum(sizes)[:-1]  # a recording's first event may start earlier
    dec[starts[(starts > 0) & (starts < len(t))] - 1] = False
    if dec.any():
        return False
    if "p" in cols and cols["p"].dtype.kind != "b":
        p = cols["p"].astype(np.int64)
        if ((p < -1) | (p > 1)).any():
            return False
        if (p == -1).any() and (p == 0).any():
            return False  # checked per recording: mixing is an error only within one
    return True


def _check_structure(ev: object, input_shape: Sequence[int] | None, what: str) -> None:
    """The checks of :func:`validate_events` that read no values."""
    if not is_event_array(ev):
        kind = type(ev).__name__ if not isinstance(ev, np.ndarray) else f"array of dtype {ev.dtype}"
        raise InputError(
            f"{what} must be a structured numpy array with fields x, y, p, t; got {kind}"
        )
    assert isinstance(ev, np.ndarray) and ev.dtype.names is not None
    need = _required_fields(input_shape)
    missing = [f for f in need if f not in ev.dtype.names]
    if missing:
        raise InputError(
            f"{what} lack field(s) {', '.join(repr(f) for f in missing)} "
            f"(have {list(ev.dtype.names)}; need {', '.join(need)})"
        )
    if ev.ndim != 1:
        raise InputError(
            f"{what} must be a one-dimensional array of events, got shape {list(ev.shape)}"
        )
    for f in (f for f in FIELDS if f in ev.dtype.names):
        dt = ev.dtype.fields[f][0]
        if dt.kind not in "biu":
            raise InputError(
                f"{what}: field {f!r} has dtype {dt}; event fields must be integers or bool"
            )


def _check_times(t: np.ndarray, what: str) -> None:
    """``t >= 0``, within int64, non-decreasing."""
    neg = np.flatnonzero(t < 0)
    if neg.size:
        i = int(neg[0])
        raise InputError(
            f"{what}: field 't' = {int(t[i])} at index {i} is negative (t is in microseconds, >= 0)"
        )
    if t.dtype.kind == "u" and int(t.max()) > _I64_MAX:
        i = int(np.argmax(t))
        raise InputError(f"{what}: field 't' = {int(t[i])} at index {i} does not fit in int64")
    t64 = t.astype(np.int64)
    dec = np.flatnonzero(t64[1:] < t64[:-1])
    if dec.size:
        i = int(dec[0]) + 1
        raise InputError(
            f"{what}: field 't' decreases at index {i} (t[{i - 1}] = {int(t64[i - 1])}, "
            f"t[{i}] = {int(t64[i])}); timestamps must be non-decreasing"
        )


def _check_polarity(p: np.ndarray, what: str) -> None:
    """Polarities all in ``{0, 1}`` or all in ``{-1, 1}`` (or bool)."""
    if p.dtype.kind == "b":
        return
    p64 = p.astype(np.int64)
    outside = np.flatnonzero((p64 < -1) | (p64 > 1))
    if outside.size:
        i = int(outside[0])
        raise InputError(
            f"{what}: field 'p' = {int(p64[i])} at index {i} is not a polarity "
            "(use bool, {0, 1} or {-1, 1})"
        )
    zeros, minus = np.flatnonzero(p64 == 0), np.flatnonzero(p64 == -1)
    if zeros.size and minus.size:
        i = int(max(zeros[0], minus[0]))
        raise InputError(
            f"{what}: field 'p' mixes 0 and -1 (first conflict: {int(p64[i])} at index {i}); "
            "polarities must all be in {0, 1} or all in {-1, 1}"
        )


def map_polarity(p: np.ndarray) -> np.ndarray:
    """Map validated polarities (bool, {0, 1} or {-1, 1}) to int64 {0, 1}: ``p > 0``."""
    return (np.asarray(p) > 0).astype(np.int64)


def event_columns(ev: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int64 columns x, y, p (mapped to {0, 1}), t of a validated recording (zeros for an
    absent ``y`` or ``p``)."""
    names = ev.dtype.names or ()
    zeros = np.zeros(len(ev), dtype=np.int64)
    return (
        ev["x"].astype(np.int64),
        ev["y"].astype(np.int64) if "y" in names else zeros,
        map_polarity(ev["p"]) if "p" in names else zeros.copy(),
        ev["t"].astype(np.int64),
    )


def flatten_events(
    recordings: Sequence[np.ndarray],
    input_shape: Sequence[int] | None = None,
    *,
    validate: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate a batch of recordings and pack them for ``snnsim._core.Model.run_events``.

    Returns contiguous int64 arrays ``(x, y, p, t, offsets)``: the events of recording ``b`` are
    ``[offsets[b], offsets[b + 1])`` of the concatenated columns, ``p`` mapped to {0, 1} and ``t``
    in microseconds. ``input_shape`` (``[C, H, W]``), when given, bounds-checks the coordinates;
    ``validate=False`` skips the checks for recordings already validated.
    """
    if len(recordings) == 0:
        raise InputError("events: the batch holds no recordings")
    if validate:
        validate_recordings(recordings, input_shape)
    sizes = np.array([len(ev) for ev in recordings], dtype=np.int64)
    offsets = np.zeros(len(recordings) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    present = {f for ev in recordings for f in (ev.dtype.names or ())}
    if all(set(ev.dtype.names or ()) == present for ev in recordings):
        # one concatenation per field (what event_columns does per recording)
        def col(f: str) -> np.ndarray:
            if f not in present:
                return np.zeros(int(offsets[-1]), dtype=np.int64)
            c = np.concatenate([ev[f] for ev in recordings])
            return map_polarity(c) if f == "p" else c.astype(np.int64)

        x, y, p, t = (np.ascontiguousarray(col(f), dtype=np.int64) for f in ("x", "y", "p", "t"))
        return x, y, p, t, offsets
    cols = [event_columns(ev) for ev in recordings]
    x, y, p, t = (
        np.ascontiguousarray(np.concatenate([c[k] for c in cols]), dtype=np.int64) for k in range(4)
    )
    return x, y, p, t, offsets


def check_steps(steps: object) -> int:
    """Validate a number of time steps (an int in ``[1, 2**63 - 1]``): ``TypeError`` /
    :class:`InputError`. What a run of that many steps allocates is checked against the memory
    limit by the executors (:mod:`snnsim.limits`)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an int (number of time steps), got {type(steps).__name__}")
    if steps < 1:
        raise InputError(f"steps must be >= 1 (number of time steps), got {int(steps)}")
    if steps > _I64_MAX:
        raise InputError(f"steps = {int(steps)} does not fit in int64 (at most 2**63 - 1)")
    return int(steps)


def _accumulate(
    shape: tuple[int, int, int],
    steps: int,
    j: np.ndarray,
    p: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
) -> np.ndarray:
    """Frames ``[steps, C, H, W]`` (int32) with one count per event at ``(j, channel, y, x)``;
    :class:`~snnsim.errors.LimitError` before allocating beyond the memory limit."""
    c, h, w = shape
    check_bytes(
        {
            f"frames ([T={steps}, {c * h * w} elements], int64 counts then int32)": 12
            * steps
            * c
            * h
            * w
        },
        "steps",
        "binning these events",
    )
    ch = p if c == 2 else np.zeros_like(p)
    flat = ((j * c + ch) * h + y) * w + x
    counts = np.bincount(flat, minlength=steps * c * h * w)
    return counts.astype(np.int32).reshape(steps, c, h, w)


def time_bins(t: np.ndarray, steps: int) -> np.ndarray:
    """Step index of each event for ``"time"`` binning: ``((t - t0) * N) // D`` with
    ``D = t[-1] - t0 + 1`` (exact integer arithmetic, also beyond int64 products)."""
    t = np.asarray(t, dtype=np.int64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    rel = t - t[0]
    d = int(rel[-1]) + 1
    if (d - 1) * steps <= _I64_MAX:
        return (rel * steps) // d
    return np.array([(int(r) * steps) // d for r in rel], dtype=np.int64)


def count_bins(n_events: int, steps: int) -> np.ndarray:
    """Step index of each event for ``"count"`` binning: event ``i`` goes to
    ``min(i // (E // N), N - 1)`` (all to ``N - 1`` when ``E < N``)."""
    k = n_events // steps
    i = np.arange(n_events, dtype=np.int64)
    if k == 0:
        return np.full(n_events, steps - 1, dtype=np.int64)
    return np.minimum(i // k, steps - 1)


def bin_events(
    ev: np.ndarray,
    input_shape: Sequence[int],
    steps: int,
    binning: Binning = "time",
    *,
    validate: bool = True,
) -> np.ndarray:
    """Bin one recording into ``steps`` frames of event counts: int32 ``[steps, *input_shape]``.

    ``binning`` is ``"time"`` (equal time spans between the first and last timestamp) or
    ``"count"`` (equal event counts, the remainder to the last step); see the module docstring.
    A recording without events gives all-zero frames. ``validate=False`` skips
    :func:`validate_events` for a recording already validated.
    """
    shape = _sensor(input_shape)
    steps = check_steps(steps)
    if binning not in ("time", "count"):
        raise InputError(f"binning must be 'time' or 'count', got {binning!r}")
    if validate:
        validate_events(ev, shape)
    x, y, p, t = event_columns(ev)
    j = time_bins(t, steps) if binning == "time" else count_bins(len(t), steps)
    return _accumulate(shape, steps, j, p, y, x).reshape(steps, *input_shape)


def window_bins(t: np.ndarray, origin_us: int, dt_us: int) -> np.ndarray:
    """Window index of each timestamp: ``(t - origin_us) // dt_us`` (microseconds)."""
    return (np.asarray(t, dtype=np.int64) - int(origin_us)) // int(dt_us)


def check_dt(dt_us: object) -> int:
    """Validate a window length in microseconds (an int >= 1)."""
    if isinstance(dt_us, bool) or not isinstance(dt_us, (int, np.integer)):
        raise TypeError(f"dt_us must be an int (microseconds), got {type(dt_us).__name__}")
    if dt_us < 1:
        raise InputError(f"dt_us must be >= 1 microsecond, got {int(dt_us)}")
    if dt_us > _I64_MAX:
        raise InputError(f"dt_us = {int(dt_us)} does not fit in int64 (at most 2**63 - 1)")
    return int(dt_us)


def bin_events_window(
    ev: np.ndarray,
    input_shape: Sequence[int],
    origin_us: int,
    dt_us: int,
    steps: int,
    *,
    validate: bool = True,
) -> np.ndarray:
    """Bin one recording into ``steps`` fixed windows of ``dt_us`` microseconds starting at
    ``origin_us``: int32 ``[steps, *input_shape]``, step ``j = (t - origin_us) // dt_us``.

    Events before ``origin_us`` are an error; events at or after ``origin_us + steps * dt_us``
    (beyond the last window) are dropped. ``validate=False`` skips :func:`validate_events`.
    """
    shape = _sensor(input_shape)
    steps = check_steps(steps)
    dt_us = check_dt(dt_us)
    if validate:
        validate_events(ev, shape)
    x, y, p, t = event_columns(ev)
    if t.size and t[0] < origin_us:
        raise InputError(
            f"events: field 't' = {int(t[0])} at index 0 lies before origin_us = {int(origin_us)}"
        )
    j = window_bins(t, origin_us, dt_us)
    keep = j < steps
    frames = _accumulate(shape, steps, j[keep], p[keep], y[keep], x[keep])
    return frames.reshape(steps, *input_shape)


def window_count(ev: np.ndarray, dt_us: int) -> int:
    """Number of ``dt_us`` windows, starting at the first timestamp, that cover a recording:
    ``ceil(D / dt_us)`` with ``D = t[-1] - t[0] + 1`` (0 for an empty recording)."""
    if ev.size == 0:
        return 0
    d = int(ev["t"][-1]) - int(ev["t"][0]) + 1
    return -(-d // int(dt_us))
