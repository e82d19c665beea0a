"""The user-facing API: input preparation, argument errors of run()/Stream, and (with the
native engine built) results of the engine, the reference and streaming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import snnsim
from snnsim import Graph, InputError, ModelError, Stream, run
from snnsim.api import Model
from snnsim.inputs import prepare_frames, prepare_static, quantize
from snnsim.result import COUNT_FIELDS, RunResult

EV_SHAPE = (2, 6, 6)
EV_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])


def static_graph(precision: str = "float32") -> Graph:
    rng = np.random.default_rng(0)
    if precision == "float32":
        g = Graph(input_shape=(8,))
        g.linear("fc1", "input", rng.normal(size=(16, 8)), rng.normal(size=16) * 0.1)
        g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
        g.linear("fc2", "sn1", rng.normal(size=(4, 16)))
        g.dsr_if("sn2", "fc2", theta=1.0, fire=0.5)
    else:
        g = Graph(input_shape=(8,), precision="int", input_scale=1 / 32)
        g.linear(
            "fc1", "input", rng.integers(-20, 21, size=(16, 8)), rng.integers(-50, 50, size=16)
        )
        g.dsr_if("sn1", "fc1", theta=600, fire=300)
        g.linear("fc2", "sn1", rng.integers(-40, 60, size=(4, 16)))
        g.dsr_lif("sn2", "fc2", theta=80, fire=40, leak_m=230, gain_m=256, f=8)
    g.set_output("sn2")
    return g


def event_graph(precision: str = "float32") -> Graph:
    rng = np.random.default_rng(1)
    g = Graph(input_shape=EV_SHAPE, precision=precision, input_kind="events")  # type: ignore[arg-type]  # precision drawn as a str
    if precision == "float32":
        g.conv2d("conv1", "input", rng.normal(0.4, 0.3, size=(3, 2, 3, 3)), padding=1)
        g.dsr_if("sn1", "conv1", theta=1.0, fire=0.5)
        g.sumpool2d("pool", "sn1", 2)
        g.flatten("flat", "pool")
        g.linear("fc", "flat", rng.normal(0.1, 0.3, size=(5, 27)))
        g.dsr_if("sn2", "fc", theta=1.0, fire=0.5)
    else:
        g.conv2d("conv1", "input", rng.integers(-2, 6, size=(3, 2, 3, 3)), padding=1)
        g.dsr_if("sn1", "conv1", theta=8, fire=4)
        g.sumpool2d("pool", "sn1", 2)
        g.flatten("flat", "pool")
        g.linear("fc", "flat", rng.integers(-3, 6, size=(5, 27)))
        g.dsr_if("sn2", "fc", theta=6, fire=3)
    g.set_output("sn2")
    return g


def recording(n: int, seed: int, t0: int = 0, span: int = 10_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EV_DTYPE)
    ev["t"] = np.sort(rng.integers(t0, t0 + span, size=n))
    ev["x"] = rng.integers(0, EV_SHAPE[2], size=n)
    ev["y"] = rng.integers(0, EV_SHAPE[1], size=n)
    ev["p"] = rng.choice([-1, 1], size=n)
    return ev


# ---------------------------------------------------------------- quantisation
def test_quantize_rounds_half_to_even_and_clips() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 1000.0, -1000.0], dtype=np.float32)
    q = quantize(x, 1.0)
    assert q.dtype == np.int32
    np.testing.assert_array_equal(q, [0, 2, 2, 0, -2, 0, 127, -128])
    np.testing.assert_array_equal(
        quantize(np.array([0.25, 0.75]), 0.5), [0, 2]
    )  # 0.5 -> 0, 1.5 -> 2


def test_quantize_rejects_bad_scale() -> None:
    for s in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="scale"):
            quantize(np.zeros(2), s)


# ---------------------------------------------------------------- static input preparation
def test_static_single_sample_and_batch() -> None:
    a = prepare_static(np.arange(8), (8,), "float32", None)
    assert a.shape == (1, 8) and a.dtype == np.float32 and a.flags.c_contiguous
    b = prepare_static(np.ones((3, 8), dtype=np.float64), (8,), "float32", None)
    assert b.shape == (3, 8) and b.dtype == np.float32


def test_static_torch_tensors() -> None:
    t = torch.linspace(-1, 1, 16).reshape(2, 8)
    np.testing.assert_array_equal(prepare_static(t, (8,), "float32", None), t.numpy())
    half = prepare_static(t.to(torch.bfloat16), (8,), "float32", None)
    assert half.dtype == np.float32
    q = prepare_static(t.requires_grad_(), (8,), "int", 0.5)
    np.testing.assert_array_equal(q, quantize(t.detach().numpy(), 0.5))


def test_static_int_precision() -> None:
    q = prepare_static(np.array([0.25, 0.75, -3.0, 100.0, 1.0, 0, 0, 0]), (8,), "int", 0.5)
    assert q.dtype == np.int32
    np.testing.assert_array_equal(q[0], [0, 2, -6, 127, 2, 0, 0, 0])
    ints = prepare_static(np.array([-128, 127, 0, 1, 2, 3, 4, 5], dtype=np.int16), (8,), "int", 0.5)
    np.testing.assert_array_equal(ints[0], [-128, 127, 0, 1, 2, 3, 4, 5])  # taken as quantised


def test_static_int_out_of_range() -> None:
    with pytest.raises(
        InputError, match=r"already quantised.*\[-128, 127\].*got 128 at index \[0, 3\]"
    ):
        prepare_static(np.array([0, 0, 0, 128, 0, 0, 0, 0]), (8,), "int", 0.5)


@pytest.mark.parametrize(
    "bad", [np.array(["a"] * 8), np.zeros(8, dtype=complex), np.array([None] * 8)]
)
def test_static_wrong_dtype(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="not numeric"):
        prepare_static(bad, (8,), "float32", None)


def test_static_not_an_array() -> None:
    with pytest.raises(TypeError, match="numpy array or a torch tensor, got list"):
        prepare_static([0.0] * 8, (8,), "float32", None)
    with pytest.raises(TypeError, match="complex"):
        prepare_static(torch.zeros(8, dtype=torch.complex64), (8,), "float32", None)


def test_static_wrong_shape() -> None:
    with pytest.raises(InputError, match=r"shape \[2, 7\].*per-sample shape \[8\]"):
        prepare_static(np.zeros((2, 7)), (8,), "float32", None)
    with pytest.raises(InputError, match="batch size 0"):
        prepare_static(np.zeros((0, 8)), (8,), "float32", None)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_static_non_finite(value: float) -> None:
    x = np.zeros((2, 8))
    x[1, 5] = value
    for precision in ("float32", "int"):
        with pytest.raises(InputError, match=r"non-finite.*index \[1, 5\]"):
            prepare_static(x, (8,), precision, 0.5)


def test_static_float64_overflowing_float32() -> None:
    with pytest.raises(InputError, match="after conversion to float32"):
        prepare_static(np.full(8, 1e300), (8,), "float32", None)


# ---------------------------------------------------------------- frames preparation
def test_frames_shapes_and_dtypes() -> None:
    f = prepare_frames(np.zeros((4, *EV_SHAPE), dtype=np.uint8), EV_SHAPE, "int")
    assert f.shape == (1, 4, *EV_SHAPE) and f.dtype == np.int32
    f = prepare_frames(np.zeros((2, 3, *EV_SHAPE), dtype=np.int64), EV_SHAPE, "float32")
    assert f.shape == (2, 3, *EV_SHAPE) and f.dtype == np.float32


def test_frames_zero_steps() -> None:
    with pytest.raises(InputError, match=r"T = 0 time steps"):
        prepare_frames(np.zeros((2, 0, *EV_SHAPE)), EV_SHAPE, "float32")


def test_frames_wrong_shape() -> None:
    with pytest.raises(InputError, match=r"frames have shape \[2, 3, 2, 6, 5\]"):
        prepare_frames(np.zeros((2, 3, 2, 6, 5)), EV_SHAPE, "float32")


def test_frames_int_precision_needs_whole_counts() -> None:
    f = np.zeros((1, 2, *EV_SHAPE))
    f[0, 1, 1, 2, 3] = 0.5
    with pytest.raises(InputError, match=r"whole-number.*0.5 at index \[0, 1, 1, 2, 3\]"):
        prepare_frames(f, EV_SHAPE, "int")
    f[0, 1, 1, 2, 3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        prepare_frames(f, EV_SHAPE, "int")


# ---------------------------------------------------------------- run(): argument errors
# These are detected before the engine is touched, so they hold without the native module.
def test_static_needs_steps() -> None:
    with pytest.raises(InputError, match="static input needs steps"):
        run(static_graph(), np.zeros(8))


@pytest.mark.parametrize("steps", [0, -3])
def test_steps_must_be_positive(steps: int) -> None:
    with pytest.raises(InputError, match=f"steps must be >= 1.*got {steps}"):
        run(static_graph(), np.zeros(8), steps=steps)


@pytest.mark.parametrize("steps", [2.0, "4", True])
def test_steps_must_be_int(steps: Any) -> None:
    with pytest.raises(TypeError, match="steps must be an int"):
        run(static_graph(), np.zeros(8), steps=steps)


def test_bad_mode_binning_threads_record() -> None:
    g = static_graph()
    with pytest.raises(ValueError, match="mode must be 'engine' or 'reference', got 'gpu'"):
        run(g, np.zeros(8), steps=2, mode="gpu")  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(ValueError, match="binning must be"):
        run(g, np.zeros(8), steps=2, binning="rate")  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(InputError, match="threads must be between 1 and 256"):
        run(g, np.zeros(8), steps=2, threads=0)
    with pytest.raises(InputError, match="record: no node named 'sn9'"):
        run(g, np.zeros(8), steps=2, record=["sn1", "sn9"])
    with pytest.raises(InputError, match="record: node 'fc1' is a 'linear' node"):
        run(g, np.zeros(8), steps=2, record="fc1")


def test_wrong_model_argument() -> None:
    with pytest.raises(TypeError, match="model must be a path, a Graph or an snnsim Model"):
        run(42, np.zeros(8), steps=2)  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    bad = static_graph()
    bad.node("sn1").tensors["theta"][:] = 0
    with pytest.raises(ModelError, match="'sn1'.*'theta'"):
        run(bad, np.zeros(8), steps=2)


def test_corrupt_model_path(tmp_path: Path) -> None:
    p = tmp_path / "bad.snn.safetensors"
    p.write_bytes(b"\x00" * 3)
    with pytest.raises(ModelError, match="too short"):
        run(p, np.zeros(8), steps=2)


def test_input_errors_through_run() -> None:
    g = static_graph()
    with pytest.raises(InputError, match="per-sample shape"):
        run(g, np.zeros((2, 9)), steps=2)
    with pytest.raises(InputError, match="non-finite"):
        run(g, np.full(8, np.nan), steps=2)
    with pytest.raises(TypeError, match="not numeric"):
        run(g, np.array(["x"] * 8), steps=2)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        run(g, "image.png", steps=2)


def test_wrong_input_kinds() -> None:
    with pytest.raises(InputError, match="input kind is 'static'"):
        run(static_graph(), recording(5, 0), steps=2)
    with pytest.raises(InputError, match="dt_us applies to event recordings only"):
        run(static_graph(), np.zeros(8), steps=2, dt_us=100)
    with pytest.raises(TypeError, match="element 1 is ndarray"):
        run(event_graph(), [recording(5, 0), np.zeros((3, *EV_SHAPE))], steps=2)
    with pytest.raises(InputError, match="list of recordings is empty"):
        run(event_graph(), [], steps=2)


def test_event_run_errors() -> None:
    g = event_graph()
    with pytest.raises(InputError, match="needs steps .* or dt_us"):
        run(g, recording(5, 0))
    bad = recording(5, 0)
    bad["x"][2] = 6
    with pytest.raises(InputError, match=r"events\[1\]: field 'x' = 6 at index 2"):
        run(g, [recording(5, 1), bad], steps=3)
    with pytest.raises(InputError, match="dt_us must be >= 1"):
        run(g, recording(5, 0), dt_us=0)
    with pytest.raises(TypeError, match="dt_us must be an int"):
        run(g, recording(5, 0), dt_us=1.5)  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(InputError, match="cannot derive steps"):
        run(g, [np.zeros(0, EV_DTYPE)], dt_us=100)


def test_frames_run_errors() -> None:
    g = event_graph()
    with pytest.raises(InputError, match=r"steps = 4 does not match the frames' T = 3"):
        run(g, np.zeros((2, 3, *EV_SHAPE)), steps=4)
    with pytest.raises(InputError, match="T = 0"):
        run(g, np.zeros((2, 0, *EV_SHAPE)))


def test_model_wrapper_properties(tmp_path: Path) -> None:
    g = event_graph("int")
    path = tmp_path / "ev.snn.safetensors"
    snnsim.save(g, path)
    m = snnsim.load(path)
    assert m.input_shape == EV_SHAPE and m.precision == "int" and m.input_kind == "events"
    assert m.node_names == ["conv1", "sn1", "pool", "flat", "fc", "sn2"]
    assert m.output == "sn2" and m.n_outputs == 5 and m.path == str(path)
    assert m.node_shapes["pool"] == (3, 3, 3)
    assert "precision='int'" in repr(m)


def test_stream_argument_errors() -> None:
    with pytest.raises(TypeError, match="dt_us must be an int"):
        Stream(event_graph(), dt_us="100")  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(InputError, match="origin_us must be >= 0"):
        Stream(event_graph(), dt_us=100, origin_us=-1)


# ---------------------------------------------------------------- native engine and reference
def assert_same_result(a: RunResult, b: RunResult) -> None:
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.prediction, b.prediction)
    assert a.counts.layer_names == b.counts.layer_names and a.steps == b.steps
    for f in COUNT_FIELDS:
        np.testing.assert_array_equal(a.counts.get(f), b.counts.get(f), err_msg=f)
    assert a.record.keys() == b.record.keys()
    for k in a.record:
        np.testing.assert_array_equal(a.record[k], b.record[k], err_msg=k)


def test_engine_static_run(tmp_path: Path) -> None:
    g = static_graph()
    x = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
    res = run(g, x, steps=6, record=["sn1"])
    L = len(g.nodes)
    assert res.output.shape == (3, 4) and res.output.dtype == np.float64
    assert res.prediction.shape == (3,) and res.steps == 6
    np.testing.assert_array_equal(res.prediction, np.argmax(res.output, axis=1))
    for f in COUNT_FIELDS:
        assert res.counts.get(f).shape == (3, L, 6) and res.counts.get(f).dtype == np.uint64
    assert res.record["sn1"].shape == (3, 6, 16) and res.record["sn1"].dtype == np.uint8
    np.testing.assert_array_equal(res.record["sn1"].sum(axis=2), res.spikes[:, 1, :])
    np.testing.assert_array_equal(res.counts.dense_macs, [128, 0, 64, 0])
    assert "sn1" in res.summary()
    # path and Model give the same result as the in-memory Graph
    snnsim.save(g, tmp_path / "s.snn.safetensors")
    assert_same_result(res, run(tmp_path / "s.snn.safetensors", x, steps=6, record="sn1"))
    m = snnsim.load(tmp_path / "s.snn.safetensors")
    assert_same_result(res, run(m, x, steps=6, record=["sn1"]))
    assert sorted(m.engine.node_names) == sorted(m.node_names)


def test_engine_and_reference_agree_in_int_precision() -> None:
    g = static_graph("int")
    x = np.random.default_rng(6).normal(size=(4, 8))
    a = run(g, x, steps=7, record=["sn1", "sn2"])
    b = run(g, x, steps=7, record=["sn1", "sn2"], mode="reference")
    assert_same_result(a, b)
    np.testing.assert_array_equal(a.counts.dense_macs, b.counts.dense_macs)


def test_engine_events_and_reference_agree() -> None:
    g = event_graph("int")
    batch = [recording(200, 1), recording(3, 2), np.zeros(0, EV_DTYPE), recording(50, 3, t0=10**6)]
    for binning in ("time", "count"):
        a = run(g, batch, steps=5, binning=binning, record=["sn1"])  # type: ignore[arg-type]  # binning drawn as a str
        b = run(g, batch, steps=5, binning=binning, record=["sn1"], mode="reference")  # type: ignore[arg-type]  # binning drawn as a str
        assert_same_result(a, b)
        assert a.output.shape == (4, 5) and a.steps == 5
        # conv 3x3 pad 1 on 6x6 (border taps clipped): 3 out x 2 in x 16 x 16 valid taps
        np.testing.assert_array_equal(a.counts.dense_macs, [3 * 2 * 16 * 16, 0, 0, 0, 27 * 5, 0])
        np.testing.assert_array_equal(b.counts.dense_macs, a.counts.dense_macs)


def test_events_equal_their_frames() -> None:
    from snnsim.events import bin_events

    g = event_graph("int")
    batch = [recording(120, 4), recording(80, 5)]
    frames = np.stack([bin_events(ev, EV_SHAPE, 6, "count") for ev in batch])
    assert_same_result(run(g, batch, steps=6, binning="count"), run(g, frames))


def test_dt_windows_one_shot() -> None:
    g = event_graph("int")
    ev = recording(300, 7, t0=5_000, span=2_000)
    res = run(g, ev, dt_us=250)
    d = int(ev["t"][-1]) - int(ev["t"][0]) + 1
    assert res.steps == -(-d // 250)
    assert run(g, ev, dt_us=250, steps=3).steps == 3


@pytest.mark.parametrize("precision", ["int", "float32"])
def test_stream_chunks_equal_one_shot(precision: str) -> None:
    model = Model.from_graph(event_graph(precision))
    ev = recording(400, 8, t0=1_000, span=5_000)
    ev["t"][100:110] = ev["t"][100]  # a run of equal timestamps across a split point
    ev["t"] = np.maximum.accumulate(ev["t"])
    want = run(model, ev, dt_us=300, record=["sn1"])
    rng = np.random.default_rng(9)
    for splits in (
        [],
        [105],
        [1, 2, 3, 399],
        sorted(rng.choice(np.arange(1, 400), 25, replace=False)),
    ):
        s = Stream(model, dt_us=300, record=["sn1"])
        steps = 0
        for chunk in np.split(ev, splits):
            steps += s.feed(chunk).steps
            assert s.steps_done == steps
        steps += s.flush().steps
        assert steps == want.steps == s.steps_done
        assert_same_result(s.result(), want)
        np.testing.assert_array_equal(s.output, want.output)
        np.testing.assert_array_equal(s.prediction, want.prediction)


def test_stream_errors_and_frames() -> None:
    model = Model.from_graph(event_graph("int"))
    s = Stream(model, dt_us=100)
    s.feed(recording(20, 1, t0=500, span=400))
    with pytest.raises(InputError, match="chunks must continue in time"):
        s.feed(recording(5, 2, t0=0, span=100))
    with pytest.raises(InputError, match="flush"):
        s.feed_frames(np.zeros((2, *EV_SHAPE), dtype=np.int32))
    with pytest.raises(InputError, match="needs a model with event input"):
        Stream(static_graph(), dt_us=100).feed(recording(3, 1))

    frames = np.random.default_rng(3).integers(0, 3, size=(7, *EV_SHAPE))
    want = run(model, frames[None])
    fs = Stream(model)
    fs.feed_frames(frames[:3])
    fs.feed_frames(frames[3:])
    assert_same_result(fs.result(), want)
    assert fs.steps_done == 7


def test_stream_explicit_origin() -> None:
    from snnsim.events import bin_events_window

    model = Model.from_graph(event_graph("int"))
    ev = recording(100, 11, t0=1_000, span=2_000)
    s = Stream(model, dt_us=400, origin_us=200, record="sn1")
    assert s.steps_done == 0 and s.prediction.tolist() == [0]
    s.feed(ev[:50])
    s.feed(ev[50:])
    s.flush()
    steps = (int(ev["t"][-1]) - 200) // 400 + 1  # windows from t = 200 us, the first ones empty
    frames = bin_events_window(ev, EV_SHAPE, 200, 400, steps)
    assert_same_result(s.result(), run(model, frames[None], record="sn1"))
    with pytest.raises(InputError, match="already run"):
        s.feed(ev[-1:])
    with pytest.raises(InputError, match="before origin_us = 5000"):
        Stream(model, dt_us=400, origin_us=5_000).feed(ev)
