"""Event input: validation errors, polarity mapping, packing, and the binning rules of
docs/model-format.md §6 (numpy reference; the last test compares the engine's binning)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnsim import InputError
from snnsim.events import (
    bin_events,
    bin_events_window,
    count_bins,
    flatten_events,
    map_polarity,
    time_bins,
    validate_events,
    window_count,
)
from snnsim.testing import event_recordings

SHAPE = (2, 4, 6)  # C, H, W
TONIC = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i2"), ("t", "<i8")])


def make(
    x: Sequence[int],
    y: Sequence[int],
    p: Sequence[int],
    t: Sequence[int],
    dtype: np.dtype | list = TONIC,
) -> np.ndarray:
    ev = np.zeros(len(t), dtype=dtype)
    ev["x"], ev["y"], ev["p"], ev["t"] = x, y, p, t
    return ev


def error(ev: object, shape: Sequence[int] | None = SHAPE) -> str:
    with pytest.raises(InputError) as info:
        validate_events(ev, shape)
    return str(info.value)


# ---------------------------------------------------------------- validation
def test_valid_recordings_pass() -> None:
    validate_events(make([0, 5], [3, 0], [1, 0], [0, 7]), SHAPE)
    validate_events(make([], [], [], []), SHAPE)


def test_any_field_order_dtypes_and_extra_fields() -> None:
    dt = [("t", "<u4"), ("extra", "<f4"), ("p", "?"), ("y", "u1"), ("x", "<u8")]
    ev = make([5, 1], [3, 2], [True, False], [10, 10], dt)
    validate_events(ev, SHAPE)
    frames = bin_events(ev, SHAPE, 1)
    assert frames[0, 1, 3, 5] == 1 and frames[0, 0, 2, 1] == 1 and frames.sum() == 2


def test_not_structured() -> None:
    msg = error(np.zeros((5, 4), dtype=np.int64))
    assert "structured numpy array" in msg and "int64" in msg
    msg = error([(0, 0, 1, 5)])
    assert "structured numpy array" in msg and "list" in msg


def test_missing_fields_are_named() -> None:
    ev = np.zeros(3, dtype=[("x", "i2"), ("y", "i2"), ("ts", "i8")])
    msg = error(ev)
    assert "'p'" in msg and "'t'" in msg and "'x'" not in msg.split("have")[0]


def test_non_integer_field() -> None:
    ev = np.zeros(2, dtype=[("x", "i2"), ("y", "i2"), ("p", "i1"), ("t", "f8")])
    msg = error(ev)
    assert "'t'" in msg and "float64" in msg


def test_not_one_dimensional() -> None:
    assert "one-dimensional" in error(make([0, 1], [0, 0], [0, 0], [0, 1]).reshape(1, 2))


@pytest.mark.parametrize(
    "field, values, bad, bound",
    [("x", [0, 6], 6, 6), ("x", [-1, 0], -1, 6), ("y", [3, 4], 4, 4), ("y", [0, -2], -2, 4)],
)
def test_coordinates_outside_sensor(field: str, values: list[int], bad: int, bound: int) -> None:
    kw = {"x": [0, 0], "y": [0, 0], "p": [0, 1], "t": [1, 2]}
    kw[field] = values
    msg = error(make(**kw))
    assert f"field '{field}' = {bad}" in msg and f"{field} < {bound}" in msg
    assert f"index {values.index(bad)}" in msg


def test_negative_time() -> None:
    msg = error(make([0, 0, 0], [0, 0, 0], [0, 0, 0], [-3, 1, 2]))
    assert "'t' = -3" in msg and "index 0" in msg and "negative" in msg


def test_decreasing_time_names_index() -> None:
    msg = error(make([0] * 4, [0] * 4, [1] * 4, [5, 9, 9, 8]))
    assert "decreases at index 3" in msg and "t[2] = 9" in msg and "t[3] = 8" in msg


def test_polarity_value_outside() -> None:
    msg = error(make([0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]))
    assert "'p' = 2" in msg and "index 2" in msg


def test_polarity_mixing_conventions() -> None:
    msg = error(make([0, 0, 0], [0, 0, 0], [-1, 1, 0], [0, 1, 2]))
    assert "mixes 0 and -1" in msg and "index 2" in msg


def test_huge_unsigned_time() -> None:
    ev = make([0, 0], [0, 0], [0, 0], [0, 0], [("x", "u1"), ("y", "u1"), ("p", "u1"), ("t", "u8")])
    ev["t"][1] = 2**63 + 5
    assert "int64" in error(ev)


def test_wrong_sensor_shape() -> None:
    assert "C in (1, 2)" in error(make([0], [0], [0], [0]), (3, 4, 6))
    assert "C in (1, 2)" in error(make([0], [0], [0], [0]), (3, 24))
    assert "C in (1, 2)" in error(make([0], [0], [0], [0]), (1, 2, 3, 4))


def test_bounds_skipped_without_shape() -> None:
    validate_events(make([1000], [1000], [1], [0]), None)


# ---------------------------------------------------------------- polarity and packing
def test_polarity_mapping() -> None:
    np.testing.assert_array_equal(map_polarity(np.array([-1, 1, 1, -1])), [0, 1, 1, 0])
    np.testing.assert_array_equal(map_polarity(np.array([0, 1])), [0, 1])
    np.testing.assert_array_equal(map_polarity(np.array([True, False])), [1, 0])
    f = bin_events(make([2, 2], [1, 1], [-1, 1], [0, 1]), SHAPE, 1)
    assert f[0, 0, 1, 2] == 1 and f[0, 1, 1, 2] == 1


def test_single_channel_ignores_polarity() -> None:
    f = bin_events(make([2, 2, 3], [1, 1, 0], [-1, 1, 1], [0, 1, 2]), (1, 4, 6), 1)
    assert f.shape == (1, 1, 4, 6)
    assert f[0, 0, 1, 2] == 2 and f[0, 0, 0, 3] == 1


def test_flatten_events() -> None:
    a = make([1, 2], [0, 1], [-1, 1], [3, 4])
    b = make([], [], [], [])
    c = make([5], [3], [1], [0], [("p", "?"), ("t", "u4"), ("x", "u1"), ("y", "u1")])
    x, y, p, t, offsets = flatten_events([a, b, c], SHAPE)
    for arr in (x, y, p, t, offsets):
        assert arr.dtype == np.int64 and arr.flags.c_contiguous
    np.testing.assert_array_equal(offsets, [0, 2, 2, 3])
    np.testing.assert_array_equal(x, [1, 2, 5])
    np.testing.assert_array_equal(y, [0, 1, 3])
    np.testing.assert_array_equal(p, [0, 1, 1])
    np.testing.assert_array_equal(t, [3, 4, 0])


def test_flatten_events_names_the_recording() -> None:
    with pytest.raises(InputError, match=r"events\[1\].*'x' = 9"):
        flatten_events([make([1], [0], [0], [0]), make([9], [0], [0], [0])], SHAPE)
    with pytest.raises(InputError, match="no recordings"):
        flatten_events([], SHAPE)


# ---------------------------------------------------------------- binning rules
def test_time_binning_rule() -> None:
    # t0 = 100, D = 199 - 100 + 1 = 100, j = ((t - 100) * 4) // 100
    ev = make([0, 1, 2, 3], [0, 0, 0, 0], [0, 0, 1, 1], [100, 101, 150, 199])
    np.testing.assert_array_equal(time_bins(ev["t"], 4), [0, 0, 2, 3])
    f = bin_events(ev, SHAPE, 4, "time")
    assert f.dtype == np.int32 and f.shape == (4, *SHAPE)
    assert f[0, 0, 0, 0] == 1 and f[0, 0, 0, 1] == 1 and f[2, 1, 0, 2] == 1 and f[3, 1, 0, 3] == 1
    assert f.sum() == 4


def test_time_binning_same_timestamp_and_single_event() -> None:
    ev = make([0, 1, 2], [0, 0, 0], [0, 0, 0], [42, 42, 42])
    np.testing.assert_array_equal(time_bins(ev["t"], 5), [0, 0, 0])
    f = bin_events(make([3], [2], [1], [77]), SHAPE, 3, "time")
    assert f[0, 1, 2, 3] == 1 and f.sum() == 1


def test_time_binning_no_int64_overflow() -> None:
    t = np.array([0, 2**61, 2**62], dtype=np.int64)
    np.testing.assert_array_equal(
        time_bins(t, 16), [0, (2**61 * 16) // (2**62 + 1), (2**62 * 16) // (2**62 + 1)]
    )


def test_count_binning_rule() -> None:
    # E = 10, N = 3: k = 3; steps take [0, 3), [3, 6) and [6, 10) (remainder to the last)
    np.testing.assert_array_equal(count_bins(10, 3), [0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    ev = make(list(range(6)) + [0] * 4, [0] * 10, [0] * 10, list(range(10)))
    f = bin_events(ev, SHAPE, 3, "count")
    assert f.sum(axis=(1, 2, 3)).tolist() == [3, 3, 4]


def test_count_binning_fewer_events_than_steps() -> None:
    np.testing.assert_array_equal(count_bins(2, 5), [4, 4])
    f = bin_events(make([1, 2], [1, 1], [1, 0], [5, 900]), SHAPE, 5, "count")
    assert f.sum(axis=(1, 2, 3)).tolist() == [0, 0, 0, 0, 2]


def test_empty_recordings_give_zero_frames() -> None:
    empty = make([], [], [], [])
    for binning in ("time", "count"):
        f = bin_events(empty, SHAPE, 3, binning)  # type: ignore[arg-type]  # binning drawn as a str
        assert f.shape == (3, *SHAPE) and f.dtype == np.int32 and not f.any()
    f = bin_events_window(empty, SHAPE, 0, 10, 2)
    assert f.shape == (2, *SHAPE) and not f.any()
    assert window_count(empty, 10) == 0


def test_fixed_windows() -> None:
    # origin 1000, dt 50: j = (t - 1000) // 50; windows beyond `steps` are dropped
    ev = make([0, 1, 2, 3, 4], [0] * 5, [1] * 5, [1000, 1049, 1050, 1149, 1150])
    f = bin_events_window(ev, SHAPE, 1000, 50, 3)
    assert f.sum(axis=(1, 2, 3)).tolist() == [2, 1, 1]
    assert f[0, 1, 0, 0] == 1 and f[0, 1, 0, 1] == 1 and f[1, 1, 0, 2] == 1 and f[2, 1, 0, 3] == 1
    assert window_count(ev, 50) == 4  # D = 151 us -> ceil(151 / 50)
    f = bin_events_window(ev, SHAPE, 1000, 50, window_count(ev, 50))
    assert f.sum(axis=(1, 2, 3)).tolist() == [2, 1, 1, 1]


def test_fixed_window_count_exact_multiple() -> None:
    ev = make([0, 0], [0, 0], [0, 0], [10, 109])  # D = 100 us
    assert window_count(ev, 50) == 2 and window_count(ev, 100) == 1 and window_count(ev, 99) == 2


def test_fixed_windows_errors() -> None:
    ev = make([0], [0], [0], [5])
    with pytest.raises(InputError, match="before origin_us = 10"):
        bin_events_window(ev, SHAPE, 10, 5, 2)
    with pytest.raises(InputError, match="dt_us must be >= 1"):
        bin_events_window(ev, SHAPE, 0, 0, 2)
    with pytest.raises(TypeError, match="dt_us must be an int"):
        bin_events_window(ev, SHAPE, 0, 2.5, 2)  # type: ignore[arg-type]  # deliberately wrong: the error is under test


def test_binning_argument_errors() -> None:
    ev = make([0], [0], [0], [5])
    with pytest.raises(InputError, match="steps must be >= 1"):
        bin_events(ev, SHAPE, 0)
    with pytest.raises(TypeError, match="steps must be an int"):
        bin_events(ev, SHAPE, 2.0)  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(ValueError, match="binning must be 'time' or 'count'"):
        bin_events(ev, SHAPE, 2, "rate")  # type: ignore[arg-type]  # deliberately wrong: the error is under test


# ---------------------------------------------------------------- properties
def recordings() -> st.SearchStrategy[np.ndarray]:
    return event_recordings(sensor=SHAPE, max_events=40)


def naive_bins(t: list[int], steps: int, binning: str) -> list[int]:
    """The formulas of docs/model-format.md §6, one event at a time in Python integers."""
    if binning == "time":
        d = t[-1] - t[0] + 1
        return [((ti - t[0]) * steps) // d for ti in t]
    k = len(t) // steps
    return [steps - 1 if k == 0 else min(i // k, steps - 1) for i in range(len(t))]


@settings(max_examples=60, deadline=None)
@given(ev=recordings(), steps=st.integers(1, 12), binning=st.sampled_from(["time", "count"]))
def test_binning_matches_formula(ev: np.ndarray, steps: int, binning: str) -> None:
    f = bin_events(ev, SHAPE, steps, binning)  # type: ignore[arg-type]  # binning drawn as a str
    want = np.zeros((steps, *SHAPE), dtype=np.int64)
    if ev.size:
        for j, e in zip(naive_bins(ev["t"].tolist(), steps, binning), ev, strict=True):
            want[j, int(e["p"] > 0), e["y"], e["x"]] += 1
    np.testing.assert_array_equal(f, want)
    assert f.sum() == ev.size


@settings(max_examples=40, deadline=None)
@given(ev=recordings(), dt=st.integers(1, 3 * 10**6))
def test_windows_cover_every_event(ev: np.ndarray, dt: int) -> None:
    steps = max(window_count(ev, dt), 1)
    origin = int(ev["t"][0]) if ev.size else 0
    f = bin_events_window(ev, SHAPE, origin, dt, steps)
    assert f.sum() == ev.size
    if ev.size:
        assert f[-1].sum() > 0  # the last event lies in the last window


# ---------------------------------------------------------------- engine (native module)
@settings(max_examples=30, deadline=None)
@given(
    batch=st.lists(recordings(), min_size=1, max_size=3),
    steps=st.integers(1, 9),
    binning=st.sampled_from(["time", "count"]),
)
def test_engine_binning_matches_numpy(batch: list[np.ndarray], steps: int, binning: str) -> None:
    from snnsim import _core

    x, y, p, t, offsets = flatten_events(batch, SHAPE)
    got = _core.bin_events(x, y, p, t, offsets, SHAPE, steps, binning)
    want = np.stack([bin_events(ev, SHAPE, steps, binning) for ev in batch])  # type: ignore[arg-type]  # binning drawn as a str
    np.testing.assert_array_equal(got, want)
