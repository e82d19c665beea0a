"""Hypothesis fuzzing of the public API (bounded by the ``ci`` profile): ``load`` on hostile
files, ``run`` on hostile arguments, ``Stream.feed`` on hostile chunks.

Whatever is drawn, the outcome is a result or one of the documented exceptions (``TypeError``
or an ``snnsim`` error naming the argument); a stream loses no event it accepted. The long
coverage-guided fuzzing of the engine is separate (cargo-fuzz, ``scripts/fuzz.sh``,
docs/robustness.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snnsim
from snnsim import InputError, SnnsimError, Stream
from snnsim.api import Model
from snnsim.graph import Precision
from snnsim.testing import event_recordings, mutated_model_files

FIXTURES = Path(__file__).parents[1] / "fixtures"
EXPECTED = (TypeError, SnnsimError)
SENSOR = (2, 6, 6)


@pytest.fixture(autouse=True, scope="module")
def small_memory_limit() -> Iterator[None]:
    """Fuzzed sizes must stay far from the machine's memory: 64 MiB per run."""
    snnsim.set_memory_limit(64 << 20)
    yield
    snnsim.set_memory_limit(None)


def event_model(precision: Precision) -> Model:
    rng = np.random.default_rng(4)
    g = snnsim.Graph(input_shape=SENSOR, precision=precision, input_kind="events")
    if precision == "int":
        g.conv2d("conv", "input", rng.integers(-2, 5, (2, 2, 3, 3)), padding=1)
        g.dsr_if("sn1", "conv", theta=4, fire=2)
        g.flatten("flat", "sn1")
        g.linear("fc", "flat", rng.integers(-3, 5, (3, 72)))
        g.dspike_lif("out", "fc", fire=3, leak_m=200, f=8)
    else:
        g.conv2d("conv", "input", rng.normal(0.3, 0.3, (2, 2, 3, 3)), padding=1)
        g.dsr_if("sn1", "conv", theta=1.0, fire=0.5)
        g.flatten("flat", "sn1")
        g.linear("fc", "flat", rng.normal(0.1, 0.3, (3, 72)))
        g.dsr_lif("out", "fc", theta=1.0, fire=0.5, leak=0.9, gain=1.0)
    g.set_output("out")
    return Model.from_graph(g)


MODELS = {p: event_model(p) for p in get_args(Precision)}


def zeros_input(m: Model) -> np.ndarray:
    dtype = np.int32 if m.precision == "int" else np.float32
    shape = (2, *m.input_shape) if m.input_kind == "events" else m.input_shape
    return np.ones(shape, dtype)


# ---------------------------------------------------------------- load
@given(mutated_model_files(base=(FIXTURES / "conv_int8.snn.safetensors").read_bytes()))
@settings(max_examples=100)
def test_fuzz_load_and_run_hostile_files(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("f") / "m.snn.safetensors"
    path.write_bytes(data)
    try:
        m = snnsim.load(path)
    except snnsim.ModelError:
        return
    if int(np.prod(m.input_shape)) > 1 << 14:
        return
    try:
        res = snnsim.run(m, zeros_input(m), steps=None if m.input_kind == "events" else 2)
    except EXPECTED:
        return
    assert res.output.shape == (1, m.n_outputs)


# ---------------------------------------------------------------- run
HOSTILE_INTS = st.sampled_from([0, 1, 2, 3, -1, 256, 257, 2**31, 2**63 - 1, 2**63, 10**9])
HOSTILE_ANY = st.one_of(HOSTILE_INTS, st.sampled_from([None, 1.0, "3", True, [2], np.int64(2)]))


@st.composite
def hostile_inputs(draw: Any) -> Any:
    kind = draw(st.sampled_from(["frames", "events", "events_list", "array", "junk"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "frames":
        t = draw(st.sampled_from([0, 1, 3]))
        shape = draw(st.sampled_from([(t, *SENSOR), (2, t, *SENSOR), (t, 2, 6, 5), (1,)]))
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.int64, bool]))
        a = rng.integers(0, 3, shape).astype(dtype)
        if dtype in (np.float32, np.float64) and a.size and draw(st.booleans()):
            with np.errstate(over="ignore"):  # 1e40 is inf in float32, on purpose
                a.flat[0] = draw(st.sampled_from([np.nan, np.inf, 0.5, 1e40]))
        return a
    if kind in ("events", "events_list"):
        ev = draw(event_recordings(sensor=SENSOR, max_events=30))
        if ev.size and draw(st.booleans()):
            field = draw(st.sampled_from(["x", "y", "p", "t"]))
            bad = {"p": [-1, 2, 3, -128]}.get(field, [-1, 6, 7, 2, -(2**15)])
            ev[field][draw(st.integers(0, ev.size - 1))] = draw(st.sampled_from(bad))
        return [ev, ev[: ev.size // 2]] if kind == "events_list" else ev
    if kind == "array":
        return rng.normal(size=draw(st.sampled_from([(8,), (3, 8), (0, 8)])))
    return draw(st.sampled_from([None, "image.png", 3, [1, 2], {"x": 1}]))


@given(
    precision=st.sampled_from(["float32", "int"]),
    inputs=hostile_inputs(),
    steps=st.one_of(st.none(), HOSTILE_ANY),
    threads=st.one_of(st.none(), HOSTILE_ANY),
    dt_us=st.one_of(st.none(), HOSTILE_INTS),
    binning=st.sampled_from(["time", "count", "rate"]),
    record=st.sampled_from([(), ("sn1",), ("fc",), ("nope",), "out", [1]]),
    mode=st.sampled_from(["engine", "engine", "reference", "gpu"]),
)
def test_fuzz_run_hostile_arguments(
    precision: str,
    inputs: Any,
    steps: Any,
    threads: Any,
    dt_us: Any,
    binning: str,
    record: Any,
    mode: str,
) -> None:
    m = MODELS[precision]
    try:
        res = snnsim.run(
            m,
            inputs,
            steps=steps,
            threads=threads,
            dt_us=dt_us,
            binning=binning,  # type: ignore[arg-type]  # drawn values include invalid ones
            record=record,
            mode=mode,  # type: ignore[arg-type]  # drawn values include invalid ones
        )
    except EXPECTED:
        return
    assert res.output.shape[1] == 3 and res.steps >= 1
    assert res.counts.spikes.shape[2] == res.steps


# ---------------------------------------------------------------- Stream.feed
@st.composite
def chunked_recording(draw: Any) -> list[np.ndarray]:
    """A recording cut into chunks, some of them made invalid (out of the sensor, back in
    time, a bad polarity, a wrong dtype)."""
    ev = draw(event_recordings(sensor=SENSOR, max_events=120))
    cuts = sorted(draw(st.lists(st.integers(0, max(0, ev.size)), max_size=6)))
    chunks = list(np.split(ev, cuts))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(chunks)))
        bad = ev[:3].copy() if ev.size else np.zeros(1, ev.dtype)
        how = draw(st.sampled_from(["x", "t", "p", "dtype"]))
        if how == "x":
            bad["x"] = SENSOR[2]
        elif how == "t":
            bad["t"] = -5
        elif how == "p":
            bad["p"] = 3
        else:
            bad = np.zeros((2, *SENSOR), np.int32)  # frames, not events
        chunks.insert(i, bad)
    return chunks


@given(
    precision=st.sampled_from(["float32", "int"]),
    chunks=chunked_recording(),
    dt_us=st.sampled_from([1, 7, 100, 5000]),
)
def test_fuzz_stream_feed_loses_no_accepted_event(
    precision: str, chunks: list[np.ndarray], dt_us: int
) -> None:
    m = MODELS[precision]
    s = Stream(m, dt_us=dt_us)
    accepted = []
    for c in chunks:
        try:
            s.feed(c)
        except (InputError, snnsim.LimitError, snnsim.NumericError):
            continue
        accepted.append(c)
    s.flush()
    fed = [c for c in accepted if c.size]
    if not fed:
        assert s.steps_done == 0
        return
    events = np.concatenate(fed)
    try:
        want = snnsim.run(m, events, dt_us=dt_us)
    except (snnsim.LimitError, snnsim.NumericError):
        return
    got = s.result()
    assert got.steps == want.steps == s.steps_done
    np.testing.assert_array_equal(got.counts.spikes, want.counts.spikes)
    np.testing.assert_array_equal(got.output, want.output)
