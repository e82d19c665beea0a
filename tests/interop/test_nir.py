"""NIR interchange (snnsim.nir_interop): exact round trips, plain-NIR import semantics, errors."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import snnsim
from snnsim.errors import ModelError
from snnsim.nir_interop import from_nir, to_nir

STEPS = 8


def _mlp(rng: np.random.Generator) -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(12,))
    g.linear("fc1", "input", rng.normal(size=(16, 12)), rng.normal(size=16) * 0.1)
    g.dsr_if("sn1", "fc1", theta=rng.uniform(0.5, 1.5, 16), fire=rng.uniform(0.2, 0.5, 16))
    g.linear("fc2", "sn1", rng.normal(size=(16, 16)))
    g.dsr_lif("sn2", "fc2", theta=1.0, fire=0.4, leak=rng.uniform(0.5, 0.95, 16), gain=0.7)
    g.linear("fc3", "sn2", rng.normal(size=(16, 16)), rng.normal(size=16) * 0.1)
    g.scale("bn", "fc3", scale=rng.uniform(0.5, 1.5, 16), shift=rng.normal(size=16) * 0.1)
    g.dspike_lif("sn3", "bn", fire=0.5, leak=rng.uniform(0.3, 0.9, 16))
    g.linear("fc4", "sn3", rng.normal(size=(16, 16)))
    g.dsr_lif("sn4", "fc4", theta=0.8, fire=0.3, leak=1.0, gain=0.5)  # leak 1 -> NIR IF
    g.linear("fc5", "sn4", rng.normal(size=(16, 16)))
    g.dspike_lif("sn5", "fc5", fire=0.5, leak=1.0)  # leak 1 -> NIR IF
    g.linear("head", "sn5", rng.normal(size=(5, 16)))
    g.integrate("out", "head")
    g.set_output("out")
    return g


def _conv(rng: np.random.Generator) -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(2, 8, 8))
    g.conv2d("c1", "input", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4) * 0.1, padding=1)
    g.dsr_if("s1", "c1", theta=rng.uniform(0.5, 1.0, 4), fire=rng.uniform(0.2, 0.5, 4))
    g.sumpool2d("p1", "s1", 2)
    g.conv2d("c2", "p1", rng.normal(size=(4, 4, 3, 3)), padding=1)
    g.add("res", "c2", "p1")
    g.scale("sc", "res", scale=rng.uniform(0.5, 1.5, 4))
    g.dspike_lif("s2", "sc", fire=0.5, leak=0.9)
    g.conv2d("c3", "s2", rng.normal(size=(4, 4, 3, 3)), stride=1, padding=(1, 1))
    g.dsr_lif("s3", "c3", theta=1.0, fire=0.5, leak=rng.uniform(0.5, 0.9, 4), gain=0.6)
    g.avgpool2d("p2", "s3", 2, stride=2)
    g.flatten("f", "p2")
    g.linear("fc", "f", rng.normal(size=(10, 16)), rng.normal(size=10))
    g.dspike_lif("s4", "fc", fire=0.4, leak=rng.uniform(0.5, 0.9, 10))
    g.set_output("s4")
    return g


def _neurons(g: snnsim.Graph) -> list[str]:
    return [n.name for n in g.nodes if n.op in ("dsr_if", "dsr_lif", "dspike_lif")]


def _assert_same_graph(a: snnsim.Graph, b: snnsim.Graph) -> None:
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())
    ta, tb = a.tensor_dict(), b.tensor_dict()
    assert list(ta) == list(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape, k
        assert np.array_equal(ta[k], tb[k]), k


def _assert_same_run(a: snnsim.Graph, b: snnsim.Graph, x: np.ndarray) -> None:
    rec = _neurons(a)
    ra = snnsim.run(a, x, steps=STEPS, record=rec)
    rb = snnsim.run(b, x, steps=STEPS, record=rec)
    for k in rec:
        assert np.array_equal(ra.record[k], rb.record[k]), k
    assert np.array_equal(ra.output, rb.output)
    assert np.array_equal(ra.spikes, rb.spikes)
    assert sum(int(ra.record[k].sum()) for k in rec) > 0  # the comparison is not vacuous


@pytest.mark.parametrize("build", [_mlp, _conv], ids=["mlp", "conv"])
@pytest.mark.parametrize("via_file", [False, True], ids=["memory", "file"])
def test_round_trip_is_exact(build, via_file, tmp_path):
    rng = np.random.default_rng(1)
    g = build(rng)
    ng = to_nir(g)
    assert isinstance(ng, nir.NIRGraph)
    if via_file:
        path = tmp_path / "net.nir"
        nir.write(path, ng)
        ng = nir.read(path)
        h = from_nir(str(path))
        _assert_same_graph(g, h)
    h = from_nir(ng)
    _assert_same_graph(g, h)
    x = rng.uniform(0, 1, size=(3, *g.input_shape)).astype(np.float32)
    _assert_same_run(g, h, x)


def test_exported_node_types():
    g = _conv(np.random.default_rng(0))
    ng = to_nir(g)
    kinds = {k: type(v).__name__ for k, v in ng.nodes.items()}
    assert kinds["input"] == "Input" and kinds["output"] == "Output"
    assert kinds["c1"] == "Conv2d" and kinds["p1"] == "SumPool2d" and kinds["p2"] == "AvgPool2d"
    assert kinds["res"] == "Scale" and kinds["f"] == "Flatten" and kinds["fc"] == "Affine"
    assert kinds["s1"] == "IF" and kinds["s2"] == "LIF" and kinds["s3"] == "LIF"
    assert sorted(a for a, b in ng.edges if b == "res") == ["c2", "p1"]  # NIR sums incoming edges
    assert np.array_equal(ng.nodes["res"].scale, np.ones((4, 4, 4), np.float32))
    meta = json.loads(ng.nodes["s1"].metadata["snnsim"])
    assert meta["op"] == "dsr_if" and meta["reset"] == "subtract" and meta["compare"] == ">="
    # dspike LIF native fields: tau = 1/(1-leak), r = tau, v_leak = 0, v_threshold = fire
    s2 = ng.nodes["s2"]
    assert np.allclose(s2.tau, 10.0) and np.allclose(s2.r, 10.0)
    assert np.all(s2.v_leak == 0) and np.all(s2.v_threshold == 0.5) and np.all(s2.v_reset == 0)


def test_events_input_kind_round_trips(tmp_path):
    g = snnsim.Graph(input_shape=(2, 6, 6), input_kind="events")
    g.conv2d("c", "input", np.full((3, 2, 3, 3), 0.25))
    g.dspike_lif("s", "c", fire=0.5, leak=0.5)
    g.set_output("s")
    nir.write(tmp_path / "ev.nir", to_nir(g))
    _assert_same_graph(g, from_nir(tmp_path / "ev.nir"))


def test_scale_shift_on_features_exports_as_affine():
    rng = np.random.default_rng(2)
    g = _mlp(rng)
    ng = to_nir(g)
    assert type(ng.nodes["bn"]).__name__ == "Affine"
    # without the snnsim metadata a plain reader sees an equivalent diagonal Affine
    for node in ng.nodes.values():
        node.metadata = {}
    ng.metadata = {}
    h = from_nir(ng)
    assert h.node("bn").op == "linear"


def test_scale_shift_on_maps_is_rejected():
    g = snnsim.Graph(input_shape=(1, 4, 4))
    g.scale("bn", "input", scale=[2.0], shift=[0.5])
    g.dspike_lif("s", "bn", fire=0.5, leak=0.5)
    g.set_output("s")
    with pytest.raises(ModelError, match="'bn'.*shift"):
        to_nir(g)


def test_int_precision_is_rejected():
    g = snnsim.Graph(input_shape=(4,), precision="int", input_scale=0.1)
    g.linear("fc", "input", np.ones((2, 4), np.int8))
    g.dsr_if("s", "fc", theta=4, fire=2)
    g.set_output("s")
    with pytest.raises(ModelError, match="float32"):
        to_nir(g)


def test_dspike_native_fields_alone_reproduce_the_run():
    """Dyadic leaks survive leak -> tau -> leak exactly, so the plain-NIR reading of an exported
    Dspike network is the same network."""
    rng = np.random.default_rng(3)
    g = snnsim.Graph(input_shape=(6,))
    g.linear("fc1", "input", rng.normal(size=(8, 6)))
    g.dspike_lif("s1", "fc1", fire=0.5, leak=0.5)
    g.linear("fc2", "s1", rng.normal(size=(8, 8)), rng.normal(size=8))
    g.dspike_lif("s2", "fc2", fire=0.25, leak=[0.75] * 8)
    g.set_output("s2")
    ng = to_nir(g)
    for node in ng.nodes.values():
        node.metadata = {}
    ng.metadata = {}
    h = from_nir(ng)
    assert [n.op for n in h.nodes] == ["linear", "dspike_lif", "linear", "dspike_lif"]
    _assert_same_run(g, h, rng.uniform(0, 1, size=(4, 6)).astype(np.float32))


def _plain_graph():
    """Affine -> LIF -> Affine -> LIF, all values dyadic so float32 arithmetic is exact and the
    summation order cannot matter."""
    rng = np.random.default_rng(4)
    w1 = (rng.integers(-8, 9, size=(6, 5)) / 8).astype(np.float32)
    b1 = (rng.integers(-4, 5, size=6) / 16).astype(np.float32)
    w2 = (rng.integers(-8, 9, size=(3, 6)) / 4).astype(np.float32)
    b2 = np.zeros(3, np.float32)
    lif1 = dict(
        tau=np.full(6, 2.0), r=np.full(6, 2.0), v_leak=np.zeros(6), v_threshold=np.full(6, 0.5)
    )
    lif2 = dict(
        tau=np.full(3, 4.0),
        r=np.full(3, 2.0),
        v_leak=np.full(3, 0.25),
        v_threshold=np.full(3, 0.75),
    )
    nodes = {
        "in": nir.Input(input_type={"input": np.array([5])}),
        "a1": nir.Affine(weight=w1, bias=b1),
        "l1": nir.LIF(**{k: np.asarray(v, np.float32) for k, v in lif1.items()}),
        "a2": nir.Affine(weight=w2, bias=b2),
        "l2": nir.LIF(**{k: np.asarray(v, np.float32) for k, v in lif2.items()}),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("in", "a1"), ("a1", "l1"), ("l1", "a2"), ("a2", "l2"), ("l2", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges), (w1, b1, lif1, w2, b2, lif2)


def _euler_lif(v, x, p, dt=1.0):
    """NIR LIF, forward Euler: v += dt/tau*(v_leak - v + r*x); spike if v > thr; reset to 0."""
    v = v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * x)
    s = (v > p["v_threshold"]).astype(np.float64)
    return np.where(s > 0, 0.0, v), s


def test_plain_nir_lif_network_matches_numpy(tmp_path):
    ng, (w1, b1, lif1, w2, b2, lif2) = _plain_graph()
    path = tmp_path / "plain.nir"
    nir.write(path, ng)
    g = from_nir(path)
    ops = [n.op for n in g.nodes]
    # l1: gain r/tau = 1, v_leak 0 -> no scale; l2: gain 0.5, bias 1/16 -> scale node first
    assert ops == ["linear", "dspike_lif", "linear", "scale", "dspike_lif"], ops
    assert g.output == "l2"
    x = np.random.default_rng(5).integers(0, 5, size=(4, 5)) / 4
    res = snnsim.run(g, x.astype(np.float32), steps=STEPS, record=["l1", "l2"])
    for b in range(x.shape[0]):
        v1, v2 = np.zeros(6), np.zeros(3)
        for t in range(STEPS):
            v1, s1 = _euler_lif(v1, w1.astype(np.float64) @ x[b] + b1, lif1)
            v2, s2 = _euler_lif(v2, w2.astype(np.float64) @ s1 + b2, lif2)
            assert np.array_equal(res.record["l1"][b, t], s1), (b, t)
            assert np.array_equal(res.record["l2"][b, t], s2), (b, t)
    assert res.record["l1"].sum() > 0 and res.record["l2"].sum() > 0


def test_plain_nir_if_is_strict_hard_reset():
    """NIR IF with r = 0.5: v += 0.5*x, spike when v > 1 (strictly), reset to 0."""
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1])}),
        "lin": nir.Linear(weight=np.ones((1, 1), np.float32)),
        "if": nir.IF(r=np.full(1, 0.5, np.float32), v_threshold=np.ones(1, np.float32)),
        "out": nir.Output(output_type={"output": np.array([1])}),
    }
    ng = nir.NIRGraph(nodes=nodes, edges=[("in", "lin"), ("lin", "if"), ("if", "out")])
    g = from_nir(ng)
    assert [n.op for n in g.nodes] == ["linear", "scale", "dspike_lif"]
    res = snnsim.run(g, np.array([[1.0]], np.float32), steps=6, record=["if"])
    # v: 0.5, 1.0 (not > 1), 1.5 -> spike, reset 0, 0.5, 1.0, 1.5 -> spike
    assert res.record["if"][0, :, 0].tolist() == [0, 0, 1, 0, 0, 1]


def test_plain_nir_multiple_in_edges_become_add():
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "a": nir.Linear(weight=np.eye(2, dtype=np.float32)),
        "b": nir.Linear(weight=2 * np.eye(2, dtype=np.float32)),
        "i": nir.I(r=np.ones(2, np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    ng = nir.NIRGraph(
        nodes=nodes, edges=[("in", "a"), ("in", "b"), ("a", "i"), ("b", "i"), ("i", "out")]
    )
    g = from_nir(ng)
    assert [n.op for n in g.nodes] == ["linear", "linear", "add", "integrate"]
    res = snnsim.run(g, np.array([[1.0, 0.5]], np.float32), steps=4)
    assert np.allclose(res.output, [[3.0, 1.5]])


def _single(node, shape=(3,)):
    nodes = {
        "in": nir.Input(input_type={"input": np.array(shape)}),
        "n": node,
        "out": nir.Output(output_type={"output": np.array(shape)}),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("in", "n"), ("n", "out")], type_check=False)


@pytest.mark.parametrize(
    "node, pattern",
    [
        (
            nir.CubaLI(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
            "'n' \\(CubaLI\\)",
        ),
        (
            nir.CubaLIF(
                tau_syn=np.ones(3),
                tau_mem=np.ones(3),
                r=np.ones(3),
                v_leak=np.zeros(3),
                v_threshold=np.ones(3),
            ),
            "'n' \\(CubaLIF\\)",
        ),
        (nir.Delay(delay=np.full(3, 2.5)), "'n' \\(Delay\\).*one time step"),
        (
            nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.full(3, 0.5)),
            "'n' \\(IF\\).*v_reset",
        ),
        (
            nir.LIF(
                tau=np.full(3, 2.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, -1.0)
            ),
            "'n' \\(LIF\\).*v_threshold",
        ),
    ],
    ids=["CubaLI", "CubaLIF", "Delay", "IF-v_reset", "LIF-negative-threshold"],
)
def test_unsupported_nodes_raise_model_error(node, pattern):
    with pytest.raises(ModelError, match=pattern):
        from_nir(_single(node))


def test_unsupported_conv_and_pool_options():
    w = np.ones((2, 2, 3, 3), np.float32)
    conv = nir.Conv2d(
        input_shape=(5, 5), weight=w, stride=1, padding=0, dilation=2, groups=1, bias=np.zeros(2)
    )
    with pytest.raises(ModelError, match="'n' \\(Conv2d\\).*dilation"):
        from_nir(_single(conv, (2, 5, 5)))
    pool = nir.SumPool2d(
        kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1])
    )
    with pytest.raises(ModelError, match="'n' \\(SumPool2d\\).*padding"):
        from_nir(_single(pool, (2, 4, 4)))


def test_output_must_be_a_neuron():
    ng = _single(nir.Linear(weight=np.ones((3, 3), np.float32)))
    with pytest.raises(ModelError, match="spiking neuron or an integrator"):
        from_nir(ng)


@pytest.mark.parametrize("dt", [1.0, 1e-4, 1e-3])
def test_export_dt_scales_time_constants(dt):
    """to_nir(dt): Euler with step dt reproduces the discrete update; reading the native fields
    back with the same dt gives the same network (no spurious scale nodes)."""
    rng = np.random.default_rng(6)
    g = snnsim.Graph(input_shape=(6,))
    g.linear("fc1", "input", rng.normal(size=(8, 6)))
    g.dspike_lif("s1", "fc1", fire=0.5, leak=0.75)
    g.linear("fc2", "s1", rng.normal(size=(8, 8)))
    g.dspike_lif("s2", "fc2", fire=0.25, leak=1.0)
    g.linear("fc3", "s2", rng.normal(size=(3, 8)))
    g.integrate("out", "fc3")
    g.set_output("out")
    ng = to_nir(g, dt=dt)
    assert np.allclose(ng.nodes["s1"].tau, 4 * dt) and np.allclose(ng.nodes["s1"].r, 4.0)
    assert np.allclose(ng.nodes["s2"].r, 1 / dt) and np.allclose(ng.nodes["out"].r, 1 / dt)
    assert json.loads(ng.metadata["snnsim"])["dt"] == dt
    _assert_same_graph(g, from_nir(ng))  # metadata: exact whatever dt
    h = from_nir(_strip(ng), dt=dt)
    assert [n.op for n in h.nodes] == [
        "linear",
        "dspike_lif",
        "linear",
        "dspike_lif",
        "linear",
        "integrate",
    ]
    assert np.all(h.node("s1").tensors["leak"] == np.float32(0.75))
    _assert_same_run(g, h, rng.uniform(0, 1, size=(3, 6)).astype(np.float32))


def _strip(ng):
    for node in ng.nodes.values():
        node.metadata = {}
    ng.metadata = {}
    return ng


@pytest.mark.parametrize("dt", [0.0, -1.0, float("nan"), float("inf")])
def test_export_rejects_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be a finite positive number"):
        to_nir(_mlp(np.random.default_rng(0)), dt=dt)


def test_input_with_batch_dimension_is_dropped():
    """nirtorch's extract_nir_graph (Norse's exporter) writes the Input as [1, *shape]."""
    w = np.eye(3, dtype=np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 3])}),
        "fc": nir.Affine(weight=w, bias=np.zeros(3, np.float32)),
        "if": nir.IF(r=np.ones(3, np.float32), v_threshold=np.full(3, 0.5, np.float32)),
        "output": nir.Output(output_type={"output": np.array([1, 3])}),
    }
    ng = nir.NIRGraph(
        nodes=nodes, edges=[("input", "fc"), ("fc", "if"), ("if", "output")], type_check=False
    )
    g = from_nir(ng)
    assert g.input_shape == (3,)
    conv = nir.Conv2d(
        input_shape=(4, 4),
        weight=np.ones((2, 1, 3, 3), np.float32),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        bias=np.zeros(2, np.float32),
    )
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 1, 4, 4])}),
        "c": conv,
        "if": nir.IF(r=np.ones((2, 4, 4), np.float32), v_threshold=np.ones((2, 4, 4), np.float32)),
        "output": nir.Output(output_type={"output": np.array([2, 4, 4])}),
    }
    ng = nir.NIRGraph(
        nodes=nodes, edges=[("input", "c"), ("c", "if"), ("if", "output")], type_check=False
    )
    assert from_nir(ng).input_shape == (1, 4, 4)
    # a leading 1 the consumer does expect stays
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "c": conv,
        "if": nir.IF(r=np.ones((2, 4, 4), np.float32), v_threshold=np.ones((2, 4, 4), np.float32)),
        "output": nir.Output(output_type={"output": np.array([2, 4, 4])}),
    }
    ng = nir.NIRGraph(
        nodes=nodes, edges=[("input", "c"), ("c", "if"), ("if", "output")], type_check=False
    )
    assert from_nir(ng).input_shape == (1, 4, 4)


def test_gain_within_float32_rounding_of_one_adds_no_scale():
    """snnTorch writes tau = 1e-4/(1-beta) and r = tau/1e-4 in float32: dt*r/tau is 1 +- 1e-8 in
    float64 but exactly 1 in float32, so no scale node is inserted."""
    tau = np.float32(1e-4 / 0.25) * np.ones(3, np.float32)
    r = (tau / np.float32(1e-4)).astype(np.float32)
    lif = nir.LIF(
        tau=tau,
        r=r,
        v_leak=np.zeros(3, np.float32),
        v_threshold=np.ones(3, np.float32),
        v_reset=np.zeros(3, np.float32),
    )
    g = from_nir(_single(lif), dt=1e-4)
    assert [n.op for n in g.nodes] == ["dspike_lif"]
    assert np.all(g.node("n").tensors["leak"] == np.float32(0.75))


def test_input_kind_override():
    ng = _strip(to_nir(_conv(np.random.default_rng(0))))
    assert from_nir(ng).input_kind == "static"
    assert from_nir(ng, input_kind="events").input_kind == "events"
    with pytest.raises(ValueError, match="input_kind"):
        from_nir(ng, input_kind="frames")


# ---------------------------------------------------------------- leaky integrate <-> NIR LI
def _leaky_readout(rng: np.random.Generator, leak) -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(6,))
    g.linear("fc1", "input", rng.normal(size=(8, 6)), rng.normal(size=8) * 0.1)
    g.dspike_lif("s1", "fc1", fire=0.5, leak=0.75)
    g.linear("head", "s1", rng.normal(size=(5, 8)))
    g.integrate("out", "head", leak=leak)
    g.set_output("out")
    return g


@pytest.mark.parametrize("mode", ["engine", "reference"])
@pytest.mark.parametrize("via_file", [False, True], ids=["memory", "file"])
def test_leaky_integrate_round_trip_is_exact(mode, via_file, tmp_path):
    """A per-channel leak (one channel with leak 1: tau = r = inf natively) comes back bit-exact
    through the snnsim metadata, and so do the engine's and the reference's outputs."""
    rng = np.random.default_rng(7)
    leak = rng.uniform(0.3, 0.95, 5).astype(np.float32)
    leak[2] = 1.0
    g = _leaky_readout(rng, leak)
    ng = to_nir(g, dt=1e-3)
    assert type(ng.nodes["out"]).__name__ == "LI"
    if via_file:
        nir.write(tmp_path / "li.nir", ng)
        ng = nir.read(tmp_path / "li.nir")
        assert type(ng.nodes["out"]).__name__ == "LI"
    h = from_nir(ng)
    _assert_same_graph(g, h)
    assert np.array_equal(h.node("out").tensors["leak"], leak)
    x = rng.uniform(0, 1, size=(4, 6)).astype(np.float32)
    ra = snnsim.run(g, x, steps=STEPS, mode=mode, record=["s1"])
    rb = snnsim.run(h, x, steps=STEPS, mode=mode, record=["s1"])
    assert ra.record["s1"].sum() > 0
    assert np.array_equal(ra.record["s1"], rb.record["s1"])
    assert np.array_equal(ra.output, rb.output)
    # the leak matters: the same network without it gives another output
    plain = _leaky_readout(np.random.default_rng(7), None)
    assert not np.array_equal(snnsim.run(plain, x, steps=STEPS, mode=mode).output, ra.output)
    # the leak-1 channel has tau = r = inf: no native reading without the metadata
    with pytest.raises(ModelError, match="'out' \\(LI\\).*tau must be finite"):
        from_nir(_strip(ng))


@pytest.mark.parametrize("dt", [1.0, 1e-4])
def test_leaky_integrate_native_fields(dt):
    """LI: tau = dt/(1-leak), r = 1/(1-leak), v_leak = 0, so Euler with step dt is
    v <- leak*v + x; the plain reading (metadata stripped) gives the leaks back, no scale node.
    A leak of exactly 1 everywhere stays an I."""
    rng = np.random.default_rng(8)
    leak = np.array([0.5, 0.75, 0.875, 0.5, 0.75], np.float32)
    g = _leaky_readout(rng, leak)
    ng = to_nir(g, dt=dt)
    li = ng.nodes["out"]
    assert type(li).__name__ == "LI" and li.tau.shape == li.r.shape == li.v_leak.shape == (5,)
    steps = 1 / (1 - leak.astype(np.float64))
    assert np.allclose(li.tau, steps * dt, rtol=1e-7) and np.allclose(li.r, steps, rtol=1e-7)
    assert np.all(li.v_leak == 0)
    assert np.allclose(1 - dt / li.tau.astype(np.float64), leak) and np.allclose(
        dt * li.r / li.tau, 1.0
    )
    h = from_nir(_strip(ng), dt=dt)
    assert [n.op for n in h.nodes] == ["linear", "dspike_lif", "linear", "integrate"]
    assert np.array_equal(h.node("out").tensors["leak"], leak)
    _assert_same_run(g, h, rng.uniform(0, 1, size=(3, 6)).astype(np.float32))

    one = to_nir(_leaky_readout(rng, 1.0), dt=dt)
    assert type(one.nodes["out"]).__name__ == "I" and np.allclose(one.nodes["out"].r, 1 / dt)
    assert np.array_equal(from_nir(one).node("out").tensors["leak"], np.ones(1, np.float32))


def test_int_leaky_integrate_is_rejected():
    g = snnsim.Graph(input_shape=(4,), precision="int", input_scale=0.1)
    g.linear("fc", "input", np.ones((2, 4), np.int8))
    g.integrate("out", "fc", leak_m=np.array([3, 2], np.int32), f=2)
    g.set_output("out")
    with pytest.raises(ModelError, match="float32"):
        to_nir(g)


def _euler_li(v, x, p, dt=1.0):
    """NIR LI, forward Euler: v += dt/tau*(v_leak - v + r*x)."""
    return v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * x)


@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_plain_nir_li_output_matches_numpy(dt, tmp_path):
    """Affine -> LI -> Output: integrate(leak = 1 - dt/tau) after scale(dt*r/tau); the output
    V[T]/T for T = 1..STEPS is the Euler membrane at every step."""
    rng = np.random.default_rng(9)
    w = (rng.integers(-8, 9, size=(4, 5)) / 8).astype(np.float32)
    b = (rng.integers(-4, 5, size=4) / 16).astype(np.float32)
    p = {
        "tau": np.array([2.0, 4.0, 8.0, 1.0]) * dt,
        "r": np.array([2.0, 2.0, 8.0, 1.0]),
        "v_leak": np.zeros(4),
    }
    nodes = {
        "in": nir.Input(input_type={"input": np.array([5])}),
        "fc": nir.Affine(weight=w, bias=b),
        "li": nir.LI(**{k: np.asarray(v, np.float32) for k, v in p.items()}),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }
    nir.write(
        tmp_path / "li.nir",
        nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "li"), ("li", "out")]),
    )
    g = from_nir(tmp_path / "li.nir", dt=dt)
    assert [n.op for n in g.nodes] == ["linear", "scale", "integrate"] and g.output == "li"
    assert np.array_equal(
        g.node("li").tensors["leak"], np.array([0.5, 0.75, 0.875, 0.0], np.float32)
    )
    assert np.array_equal(
        g.node("li_in").tensors["scale"], np.array([1.0, 0.5, 1.0, 1.0], np.float32)
    )
    x = (rng.integers(0, 5, size=(3, 5)) / 4).astype(np.float32)
    v = np.zeros((3, 4))
    for t in range(1, STEPS + 1):
        v = _euler_li(v, x.astype(np.float64) @ w.T.astype(np.float64) + b, p, dt)
        for mode in ("engine", "reference"):
            out = snnsim.run(g, x, steps=t, mode=mode).output * t
            assert np.allclose(out, v, rtol=1e-6, atol=1e-6), (t, mode)
    assert np.abs(v).max() > 0.5


def test_plain_nir_hidden_li_with_v_leak_matches_numpy():
    """An LI feeding another node is a hidden (dense) integrate, as an I is; v_leak != 0 becomes
    the shift of its input scale (bias dt*v_leak/tau), as for LIF. Dyadic values: exact spikes."""
    rng = np.random.default_rng(10)
    w1 = (rng.integers(-8, 9, size=(6, 5)) / 8).astype(np.float32)
    w2 = (rng.integers(-8, 9, size=(3, 6)) / 4).astype(np.float32)
    li = {"tau": np.full(6, 2.0), "r": np.full(6, 1.0), "v_leak": np.full(6, 0.25)}
    lif = {
        "tau": np.full(3, 2.0),
        "r": np.full(3, 2.0),
        "v_leak": np.zeros(3),
        "v_threshold": np.full(3, 0.5),
    }
    nodes = {
        "in": nir.Input(input_type={"input": np.array([5])}),
        "fc1": nir.Linear(weight=w1),
        "li": nir.LI(**{k: np.asarray(v, np.float32) for k, v in li.items()}),
        "fc2": nir.Linear(weight=w2),
        "lif": nir.LIF(**{k: np.asarray(v, np.float32) for k, v in lif.items()}),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("in", "fc1"), ("fc1", "li"), ("li", "fc2"), ("fc2", "lif"), ("lif", "out")]
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=edges))
    assert [n.op for n in g.nodes] == ["linear", "scale", "integrate", "linear", "dspike_lif"]
    assert np.array_equal(g.node("li_in").tensors["shift"], np.full(6, 0.125, np.float32))
    x = (rng.integers(0, 5, size=(4, 5)) / 4).astype(np.float32)
    for mode in ("engine", "reference"):
        res = snnsim.run(g, x, steps=STEPS, mode=mode, record=["lif"])
        for bi in range(x.shape[0]):
            v1, v2 = np.zeros(6), np.zeros(3)
            for t in range(STEPS):
                v1 = _euler_li(v1, w1.astype(np.float64) @ x[bi], li)
                v2, s = _euler_lif(v2, w2.astype(np.float64) @ v1, lif)
                assert np.array_equal(res.record["lif"][bi, t], s), (mode, bi, t)
        assert 0 < res.record["lif"].sum() < res.record["lif"].size


@pytest.mark.parametrize(
    "fields, pattern",
    [
        (dict(tau=np.zeros(3)), "'n' \\(LI\\).*tau"),
        (dict(tau=np.full(3, np.inf)), "'n' \\(LI\\).*tau"),
        (
            dict(v_leak=np.full((3, 2, 2), 0.5) * np.arange(4).reshape(1, 2, 2)),
            "'n' \\(LI\\).*'v_leak'.*channel",
        ),
    ],
    ids=["tau-zero", "tau-inf", "v_leak-per-element"],
)
def test_plain_nir_li_errors_name_the_node(fields, pattern):
    shape = (3, 2, 2) if "v_leak" in fields else (3,)
    p = {"tau": np.full(shape, 2.0), "r": np.ones(shape), "v_leak": np.zeros(shape)}
    p.update(fields)
    node = nir.LI(
        **{k: np.broadcast_to(np.asarray(v, np.float32), shape).copy() for k, v in p.items()}
    )
    with pytest.raises(ModelError, match=pattern):
        from_nir(_single(node, shape))
