"""Inputs beyond 2-d cameras: per-step tensors of any shape (input kind "sequence"), 1-d event
streams (tonic's audio convention), conv1d and 1-d pools, one-step delays (recurrent graphs).

Every run is compared between the Rust engine and the torch reference: integer precision
bit-exact (spikes, counts, outputs), and the reference itself against torch's own ops or a
hand-written loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import snnsim
from snnsim.errors import InputError, ModelError
from snnsim.events import bin_events, sensor_input_shape
from snnsim.inputs import quantize
from snnsim.testing import NetworkCase, networks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COUNTS = ("spikes", "sops", "macs", "aux_ops", "state_updates")


def _same(a: snnsim.RunResult, b: snnsim.RunResult, names: list[str]) -> None:
    for n in names:
        np.testing.assert_array_equal(a.record[n], b.record[n], err_msg=n)
    for k in COUNTS:
        np.testing.assert_array_equal(getattr(a.counts, k), getattr(b.counts, k), err_msg=k)
    np.testing.assert_array_equal(a.output, b.output)


def _mlp(shape: tuple[int, ...], kind: str, precision: str = "int", scale: float | None = None):
    """flatten -> linear -> DSR IF -> linear -> integrate on an input of ``shape``."""
    rng = np.random.default_rng(len(shape))
    g = snnsim.Graph(input_shape=shape, precision=precision, input_kind=kind, input_scale=scale)
    n_in = int(np.prod(shape))
    if precision == "int":
        w1 = rng.integers(-20, 21, size=(16, n_in)).astype(np.int8)
        w2 = rng.integers(-20, 21, size=(4, 16)).astype(np.int8)
        neuron = {"theta": 40, "fire": 20}
    else:
        w1 = rng.standard_normal((16, n_in)).astype(np.float32)
        w2 = rng.standard_normal((4, 16)).astype(np.float32)
        neuron = {"theta": 1.0, "fire": 0.5}
    g.flatten("flat", "input")
    g.linear("fc1", "flat", w1)
    g.dsr_if("sn1", "fc1", **neuron)
    g.linear("fc2", "sn1", w2)
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


# ---------------------------------------------------------------------- per-step tensors
@pytest.mark.parametrize("shape", [(20,), (2, 10), (2, 3, 4)])
def test_spike_trains_of_any_shape_run_bit_exact(shape: tuple[int, ...]) -> None:
    g = _mlp(shape, "sequence")
    rng = np.random.default_rng(1)
    x = (rng.random((3, 12, *shape)) < 0.3).astype(np.float32)  # binary spike trains
    eng = snnsim.run(g, x, record=["sn1"])
    ref = snnsim.run(g, x, record=["sn1"], mode="reference")
    _same(eng, ref, ["sn1"])
    # event-driven: the first layer processes only the nonzero input elements
    fc1 = eng.layer_names.index("fc1")
    nnz = (x != 0).reshape(3, 12, -1).sum(axis=2)
    np.testing.assert_array_equal(eng.counts.sops[:, fc1], nnz * 16)
    assert eng.counts.macs[:, fc1].sum() == 0


def test_graded_sequence_is_quantised_with_the_input_scale() -> None:
    scale = 1 / 32
    g = _mlp((6,), "sequence", scale=scale)
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, size=(2, 9, 6)).astype(np.float32)
    q = quantize(x, scale)
    a = snnsim.run(g, x, record=["sn1"])
    b = snnsim.run(g, q, record=["sn1"])  # integers are taken as quantised
    c = snnsim.run(g, x, record=["sn1"], mode="reference")
    _same(a, b, ["sn1"])
    _same(a, c, ["sn1"])


def test_sequence_input_errors_name_the_problem() -> None:
    g = _mlp((6,), "sequence")  # int, no input scale
    with pytest.raises(InputError, match="whole numbers"):
        snnsim.run(g, np.full((1, 3, 6), 0.5, dtype=np.float32))
    with pytest.raises(InputError, match=r"\[-128, 127\]"):
        snnsim.run(g, np.full((1, 3, 6), 300, dtype=np.int32))
    with pytest.raises(InputError, match="input_shape"):
        snnsim.run(g, np.zeros((1, 3, 7), dtype=np.int32))
    with pytest.raises(InputError, match="T >= 1"):
        snnsim.run(g, np.zeros((1, 0, 6), dtype=np.int32))
    with pytest.raises(InputError, match="does not match"):
        snnsim.run(g, np.zeros((1, 3, 6), dtype=np.int32), steps=4)


@pytest.mark.parametrize("precision", ["int", "float32"])
def test_stream_of_a_sequence_in_chunks_equals_one_run(precision: str) -> None:
    g = _mlp((2, 10), "sequence", precision=precision)
    rng = np.random.default_rng(3)
    x = (rng.random((1, 20, 2, 10)) < 0.4).astype(np.float32)
    whole = snnsim.run(g, x, record=["sn1"])
    s = snnsim.Stream(g, record=["sn1"])
    for lo, hi in [(0, 1), (1, 8), (8, 20)]:
        s.feed_frames(x[0, lo:hi])
    got = s.result()
    _same(got, whole, ["sn1"])


# ---------------------------------------------------------------------- 1-d events (tonic)
SHD_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])  # tonic's SHD dtype


def _audio_events(n: int, channels: int, seed: int, dtype: np.dtype = SHD_DTYPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=dtype)
    ev["t"] = np.sort(rng.integers(0, 1_000_000, size=n))
    ev["x"] = rng.integers(0, channels, size=n)
    ev["p"] = 1  # SHD's artificial polarity
    return ev


def test_tonic_sensor_sizes_map_to_input_shapes() -> None:
    assert sensor_input_shape((700, 1, 1)) == (1, 700)  # SHD, SSC
    assert sensor_input_shape((64, 1, 1)) == (1, 64)  # NTIDIGITS
    assert sensor_input_shape((34, 34, 2)) == (2, 34, 34)  # N-MNIST
    with pytest.raises(InputError, match="sensor_size"):
        sensor_input_shape((10, 1, 3))


@pytest.mark.parametrize("shape", [(1, 40), (40,)])
@pytest.mark.parametrize("binning", ["time", "count"])
def test_one_d_events_run_bit_exact(shape: tuple[int, ...], binning: str) -> None:
    g = _mlp(shape, "events")
    recs = [_audio_events(n, 40, seed) for seed, n in enumerate([300, 5, 0, 1000])]
    eng = snnsim.run(g, recs, steps=10, binning=binning, record=["sn1"])
    ref = snnsim.run(g, recs, steps=10, binning=binning, record=["sn1"], mode="reference")
    _same(eng, ref, ["sn1"])
    frames = np.stack([bin_events(r, shape, 10, binning) for r in recs])
    assert frames.shape == (4, 10, *shape)
    assert frames.sum() == sum(len(r) for r in recs)
    _same(snnsim.run(g, frames, record=["sn1"]), eng, ["sn1"])


def test_two_polarity_1d_events_use_the_polarity_as_channel() -> None:
    dtype = np.dtype([("x", np.int16), ("p", np.bool_), ("t", np.uint32)])
    ev = np.array([(3, True, 0), (3, False, 5), (7, True, 9)], dtype=dtype)
    f = bin_events(ev, (2, 8), 1)
    assert f[0, 1, 3] == 1 and f[0, 0, 3] == 1 and f[0, 1, 7] == 1 and f.sum() == 3
    g = _mlp((2, 8), "events")
    _same(
        snnsim.run(g, ev, steps=2, record=["sn1"]),
        snnsim.run(g, ev, steps=2, record=["sn1"], mode="reference"),
        ["sn1"],
    )


def test_one_d_events_errors_name_the_field() -> None:
    g = _mlp((1, 40), "events")
    ev = _audio_events(10, 40, 0)
    ev["x"][4] = 40
    with pytest.raises(InputError, match="'x' = 40 at index 4"):
        snnsim.run(g, ev, steps=4)
    no_x = np.zeros(3, dtype=[("t", np.int64), ("p", np.int64)])
    with pytest.raises(InputError, match="'x'"):
        snnsim.run(g, no_x, steps=4)
    g2 = _mlp((2, 40), "events")  # two channels: the polarity is needed
    no_p = np.zeros(3, dtype=[("t", np.int64), ("x", np.int64)])
    with pytest.raises(InputError, match="'p'"):
        snnsim.run(g2, no_p, steps=4)


def test_tonic_toframe_output_runs_unchanged() -> None:
    tonic = pytest.importorskip("tonic")
    ev = _audio_events(500, 700, 4)
    to_frame = tonic.transforms.ToFrame(sensor_size=(700, 1, 1), n_time_bins=8)
    frames = to_frame(ev.copy())
    assert frames.shape == (8, 1, 700) and frames.dtype == np.int16
    g = _mlp(sensor_input_shape((700, 1, 1)), "events")
    eng = snnsim.run(g, frames, record=["sn1"])
    ref = snnsim.run(g, frames, record=["sn1"], mode="reference")
    _same(eng, ref, ["sn1"])
    assert eng.steps == 8


def test_stream_of_1d_events_in_chunks_equals_one_run() -> None:
    g = _mlp((1, 40), "events")
    ev = _audio_events(400, 40, 5)
    whole = snnsim.run(g, ev, dt_us=50_000, record=["sn1"])
    s = snnsim.Stream(g, dt_us=50_000, record=["sn1"])
    for part in np.array_split(ev, 7):
        s.feed(part)
    s.flush()
    _same(s.result(), whole, ["sn1"])


# ---------------------------------------------------------------------- conv1d, 1-d pools
def test_conv1d_and_pools_match_torch() -> None:
    rng = np.random.default_rng(6)
    g = snnsim.Graph(input_shape=(3, 17), input_kind="sequence")
    w = rng.standard_normal((5, 3, 4)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    g.conv1d("conv", "input", w, bias, stride=2, padding=1)
    g.dsr_if("sn", "conv", theta=1.0, fire=0.5)
    g.avgpool1d("avg", "sn", 2)
    g.sumpool1d("sum", "sn", 3, stride=1)
    g.flatten("fa", "avg")
    g.flatten("fs", "sum")
    g.linear("la", "fa", np.ones((2, 5 * 4), np.float32))
    g.linear("ls", "fs", np.ones((2, 5 * 6), np.float32))
    g.add("o", "la", "ls")
    g.integrate("out", "o")
    g.set_output("out")
    assert g.shapes()["conv"] == (5, 8) and g.shapes()["avg"] == (5, 4)
    from snnsim.reference import ReferenceNetwork

    net = ReferenceNetwork(g)
    x = torch.from_numpy(rng.standard_normal((2, 3, 17)).astype(np.float32))
    values, _ = net.step(x, net.init_state("sparse"))
    want = F.conv1d(x, torch.from_numpy(w), torch.from_numpy(bias), stride=2, padding=1)
    torch.testing.assert_close(values["conv"], want, rtol=1e-6, atol=1e-6)
    s = values["sn"]
    torch.testing.assert_close(values["avg"], F.avg_pool1d(s, 2))
    torch.testing.assert_close(values["sum"], F.avg_pool1d(s, 3, 1) * 3)
    seq = (rng.random((2, 6, 3, 17)) < 0.5).astype(np.float32)
    a = snnsim.run(g, seq, record=["sn"])
    b = snnsim.run(g, seq, record=["sn"], mode="reference")
    np.testing.assert_array_equal(a.record["sn"], b.record["sn"])
    for k in COUNTS:
        np.testing.assert_array_equal(getattr(a.counts, k), getattr(b.counts, k), err_msg=k)
    np.testing.assert_array_equal(a.counts.dense_macs, b.counts.dense_macs)


def test_one_d_ops_reject_other_ranks() -> None:
    g = snnsim.Graph(input_shape=(1, 4, 4))
    g.conv1d("c", "input", np.ones((1, 1, 2), np.float32))
    g.dsr_if("s", "c", theta=1.0, fire=0.5)
    g.set_output("s")
    with pytest.raises(ModelError, match=r"\[C, L\]"):
        g.validate()


# ---------------------------------------------------------------------- recurrence
def _recurrent_int(steps_in: np.ndarray) -> tuple[snnsim.Graph, np.ndarray]:
    """A recurrent DSR IF layer with its spikes computed by a hand-written integer loop."""
    rng = np.random.default_rng(7)
    n_in, n = steps_in.shape[-1], 6
    w = rng.integers(-9, 10, size=(n, n_in)).astype(np.int8)
    wr = rng.integers(-9, 10, size=(n, n)).astype(np.int8)
    theta, fire = 12, 6
    g = snnsim.Graph(input_shape=(n_in,), precision="int", input_kind="sequence")
    g.linear("fc", "input", w)
    g.delay("prev", "sn", shape=(n,))  # the neuron is added below: a cycle through the delay
    g.linear("rec", "prev", wr)
    g.add("sum", "fc", "rec")
    g.dsr_if("sn", "sum", theta=theta, fire=fire)
    g.set_output("sn")
    b, t = steps_in.shape[:2]
    v = np.zeros((b, n), np.int64)
    s = np.zeros((b, n), np.int64)
    out = np.zeros((b, t, n), np.uint8)
    for k in range(t):
        u = v + steps_in[:, k].astype(np.int64) @ w.T.astype(np.int64) + s @ wr.T.astype(np.int64)
        s = (u >= fire).astype(np.int64)
        v = u - theta * s
        out[:, k] = s
    return g, out


def test_recurrent_layer_matches_a_hand_written_loop() -> None:
    rng = np.random.default_rng(8)
    x = (rng.random((4, 25, 10)) < 0.3).astype(np.int32)
    g, want = _recurrent_int(x)
    assert [n.name for n in g.topological_order()] == ["fc", "prev", "rec", "sum", "sn"]
    for mode in ("engine", "reference"):
        r = snnsim.run(g, x, mode=mode, record=["sn"])
        np.testing.assert_array_equal(r.record["sn"], want, err_msg=mode)
    a = snnsim.run(g, x, record=["sn"])
    b = snnsim.run(g, x, record=["sn"], mode="reference")
    _same(a, b, ["sn"])
    # the recurrent weights see last step's spikes: event-driven, counted as SOPs
    rec = a.layer_names.index("rec")
    np.testing.assert_array_equal(a.counts.sops[:, rec, 1:], want[:, :-1].sum(axis=2) * 6)
    assert a.counts.sops[:, rec, 0].sum() == 0


def test_recurrent_stream_carries_the_delayed_spikes() -> None:
    rng = np.random.default_rng(9)
    x = (rng.random((1, 30, 10)) < 0.3).astype(np.int32)
    g, want = _recurrent_int(x)
    s = snnsim.Stream(g, record=["sn"])
    for lo, hi in [(0, 3), (3, 4), (4, 30)]:
        s.feed_frames(x[0, lo:hi])
    np.testing.assert_array_equal(s.result().record["sn"], want)


def test_cycles_need_a_delay_and_delays_do_not_chain() -> None:
    g = snnsim.Graph(input_shape=(3,))
    g.linear("fc", "input", np.eye(3, dtype=np.float32))
    g.add("a", "fc", "sn")
    g.dsr_if("sn", "a", theta=1.0, fire=0.5)
    g.set_output("sn")
    with pytest.raises(ModelError, match="cycle"):
        g.validate()
    g = snnsim.Graph(input_shape=(3,))
    g.delay("d1", "input")
    g.delay("d2", "d1")
    g.linear("fc", "d2", np.eye(3, dtype=np.float32))
    g.dsr_if("sn", "fc", theta=1.0, fire=0.5)
    g.set_output("sn")
    with pytest.raises(ModelError, match="do not chain"):
        g.validate()
    g = snnsim.Graph(input_shape=(3,))
    g.delay("d", "sn", shape=(4,))
    g.linear("fc", "d", np.ones((3, 4), dtype=np.float32))
    g.dsr_if("sn", "fc", theta=1.0, fire=0.5)
    g.set_output("sn")
    with pytest.raises(ModelError, match="shape"):
        g.validate()
    with pytest.raises(ModelError, match="give the shape"):
        snnsim.Graph(input_shape=(3,)).delay("d", "later")


def test_a_delay_of_a_static_input_is_zero_then_the_input() -> None:
    g = snnsim.Graph(input_shape=(2,), precision="int", input_scale=1.0)
    g.delay("d", "input")
    g.linear("fc", "d", np.eye(2, dtype=np.int8))
    g.integrate("out", "fc")
    g.set_output("out")
    x = np.array([[3, -2]], np.int32)
    for mode in ("engine", "reference"):
        r = snnsim.run(g, x, steps=5, mode=mode)
        np.testing.assert_array_equal(r.output_sum, [[12, -8]])  # 4 of 5 steps


# ---------------------------------------------------------------------- property tests
@given(networks(precision="int", input_kind="sequence", recurrent=True, max_steps=16))
def test_recurrent_sequence_networks_are_bit_exact(case: NetworkCase) -> None:
    names = [n.name for n in case.graph.topological_order() if n.op in snnsim.graph.NEURON_OPS]
    try:
        ref = snnsim.run(case.graph, case.frames, mode="reference", record=names)
    except snnsim.NumericError:
        with pytest.raises(snnsim.NumericError):
            snnsim.run(case.graph, case.frames, record=names)
        return
    _same(snnsim.run(case.graph, case.frames, record=names), ref, names)


@given(networks(precision="int", input_kind="events", max_steps=12), st.integers(1, 5))
def test_streams_of_any_network_equal_one_run(case: NetworkCase, cut: int) -> None:
    names = [n.name for n in case.graph.topological_order() if n.op in snnsim.graph.NEURON_OPS]
    x = case.frames[:1]
    try:
        whole = snnsim.run(case.graph, x, record=names)
    except snnsim.NumericError:
        return
    s = snnsim.Stream(case.graph, record=names)
    s.feed_frames(x[0, :cut])
    if cut < x.shape[1]:
        s.feed_frames(x[0, cut:])
    _same(s.result(), snnsim.run(case.graph, x[:, : max(cut, x.shape[1])], record=names), names)
    _same(s.result(), whole, names)


def test_batch_validation_reports_what_per_recording_validation_reports() -> None:
    """validate_recordings checks a batch at once; every error is the per-recording one."""
    from snnsim.events import validate_events, validate_recordings

    good = [_audio_events(n, 40, s) for s, n in enumerate([30, 0, 12])]
    validate_recordings(good, (1, 40))
    bad_cases = []
    b = [r.copy() for r in good]
    b[2]["x"][5] = 40
    bad_cases.append(b)
    b = [r.copy() for r in good]
    b[0]["t"][7] = b[0]["t"][6] - 1
    bad_cases.append(b)
    b = [r.copy() for r in good]
    b[2]["p"][3] = 2
    bad_cases.append(b)
    b = [r.copy() for r in good]  # 0 in one recording, -1 in another: fine
    b[0]["p"] = 0
    b[2]["p"] = -1
    validate_recordings(b, (1, 40))
    b = [r.copy() for r in good]
    b[2]["p"][:2] = [0, -1]
    bad_cases.append(b)
    for recs in bad_cases:
        with pytest.raises(InputError) as one:
            for i, r in enumerate(recs):
                validate_events(r, (1, 40), what=f"events[{i}]")
        with pytest.raises(InputError) as batch:
            validate_recordings(recs, (1, 40))
        assert str(batch.value) == str(one.value)
    # decreasing across recordings is not an error (each starts anew)
    late = [good[0], good[0][:1].copy()]
    late[1]["t"] = 0
    validate_recordings(late, (1, 40))
