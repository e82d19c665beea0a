"""NIR import and export of recurrent graphs (cycles through one-step delays) and of Conv1d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, reject

import snnsim
from snnsim.errors import ModelError
from snnsim.graph import NEURON_OPS
from snnsim.testing import NetworkCase, networks

nir = pytest.importorskip("nir")
from snnsim.nir_interop import from_nir, to_nir  # noqa: E402

H = 5


def _recurrent_graph() -> snnsim.Graph:
    rng = np.random.default_rng(0)
    g = snnsim.Graph(input_shape=(2, 12), input_kind="sequence")
    g.conv1d("conv", "input", rng.standard_normal((3, 2, 3)).astype(np.float32), padding=1)
    g.dspike_lif("sn0", "conv", fire=0.5, leak=0.8)
    g.flatten("flat", "sn0")
    g.linear("fc", "flat", rng.standard_normal((H, 36)).astype(np.float32))
    g.delay("prev", "sn", shape=(H,))
    g.linear("rec", "prev", rng.standard_normal((H, H)).astype(np.float32))
    g.add("sum", "fc", "rec")
    g.dspike_lif("sn", "sum", fire=0.5, leak=0.9)
    g.linear("out_fc", "sn", rng.standard_normal((3, H)).astype(np.float32))
    g.integrate("out", "out_fc")
    g.set_output("out")
    return g


def _x(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((2, 15, *shape)) < 0.4).astype(np.float32)


def test_recurrent_conv1d_graph_round_trips_exactly(tmp_path) -> None:
    g = _recurrent_graph()
    ng = to_nir(g, dt=1e-4)
    assert isinstance(ng.nodes["prev"], nir.Delay) and isinstance(ng.nodes["conv"], nir.Conv1d)
    assert ("sn", "prev") in ng.edges and ("prev", "rec") in ng.edges  # the cycle is kept
    nir.write(tmp_path / "rec.nir", ng)
    back = from_nir(str(tmp_path / "rec.nir"))
    assert back.to_json() == g.to_json()
    x = _x((2, 12))
    a = snnsim.run(g, x, record=["sn"])
    b = snnsim.run(back, x, record=["sn"])
    np.testing.assert_array_equal(a.record["sn"], b.record["sn"])


def _strip(ng):
    for n in ng.nodes.values():
        n.metadata = {}
    ng.metadata = {}
    return ng


def test_plain_delay_node_and_conv1d_import() -> None:
    g = _recurrent_graph()
    plain = from_nir(_strip(to_nir(g)), input_kind="sequence")
    ops = {n.op for n in plain.nodes}
    assert {"conv1d", "delay", "dspike_lif"} <= ops
    x = _x((2, 12), seed=2)
    a = snnsim.run(g, x, record=["sn"])
    b = snnsim.run(plain, x, record=["sn"])
    np.testing.assert_array_equal(a.record["sn"], b.record["sn"])


def test_cycle_without_a_delay_node_reads_as_one_step_late() -> None:
    """A peer's recurrent layer: LIF -> Affine -> back into the LIF, no Delay node."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((H, 4)).astype(np.float32)
    wr = rng.standard_normal((H, H)).astype(np.float32)
    ng = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([4])}),
            "fc": nir.Linear(weight=w),
            "lif": nir.IF(r=np.ones(H), v_threshold=np.full(H, 0.7), v_reset=np.zeros(H)),
            "rec": nir.Linear(weight=wr),
            "out": nir.Output(output_type={"output": np.array([H])}),
        },
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
        type_check=False,
    )
    g = from_nir(ng, input_kind="sequence")
    assert sum(n.op == "delay" for n in g.nodes) == 1
    x = (rng.random((1, 20, 4)) < 0.5).astype(np.float32)
    r = snnsim.run(g, x, record=[g.output])
    v, s = np.zeros(H, np.float32), np.zeros(H, np.float32)
    want = []
    for t in range(20):
        u = v + (w @ x[0, t] + wr @ s).astype(np.float32)
        s = (u > 0.7).astype(np.float32)
        v = np.where(s > 0, 0, u).astype(np.float32)
        want.append(s)
    np.testing.assert_array_equal(r.record[g.output][0], np.array(want))


def test_pool1d_has_no_nir_form() -> None:
    g = snnsim.Graph(input_shape=(1, 8), input_kind="sequence")
    g.sumpool1d("p", "input", 2)
    g.flatten("f", "p")
    g.linear("fc", "f", np.ones((2, 4), np.float32))
    g.integrate("out", "fc")
    g.set_output("out")
    with pytest.raises(ModelError, match="1-d pool"):
        to_nir(g)


def test_snntorch_20_input_network_runs_on_spike_trains() -> None:
    """The case that motivated per-step input: a snnTorch MLP on 20 inputs exported to NIR,
    imported as a sequence model and run on binary spike trains (and graded values), with
    snnTorch's own spikes."""
    snn = pytest.importorskip("snntorch")
    torch = pytest.importorskip("torch")
    from snntorch.export_nir import export_to_nir

    rng = np.random.default_rng(11)
    lin1 = torch.nn.Linear(20, 12)
    lin1.weight.data = torch.tensor(
        np.round(rng.normal(0, 0.6, (12, 20)) * 8) / 8, dtype=torch.float32
    )
    lin1.bias.data = torch.zeros(12)
    lin2 = torch.nn.Linear(12, 3)
    lin2.weight.data = torch.tensor(
        np.round(rng.normal(0, 0.6, (3, 12)) * 8) / 8, dtype=torch.float32
    )
    lin2.bias.data = torch.zeros(3)
    lif1 = snn.Leaky(
        beta=torch.full((12,), 0.75),
        threshold=torch.full((12,), 1.0),
        init_hidden=True,
        reset_mechanism="zero",
    )
    lif2 = snn.Leaky(
        beta=torch.full((3,), 0.5),
        threshold=torch.full((3,), 0.5),
        init_hidden=True,
        reset_mechanism="zero",
        output=True,
    )
    net = torch.nn.Sequential(lin1, lif1, lin2, lif2)
    ng = export_to_nir(net, torch.zeros(1, 20), ignore_dims=[0])
    g = from_nir(ng, dt=1e-4, input_kind="sequence")
    assert g.input_kind == "sequence" and tuple(g.input_shape) == (20,)
    names = [n.name for n in g.nodes if n.op == "dspike_lif"]
    for x in (
        (rng.random((4, 16, 20)) < 0.3).astype(np.float32),  # spike trains
        (np.round(rng.uniform(0, 1.5, (4, 16, 20)) * 4) / 4).astype(np.float32),  # graded
    ):
        for m in (lif1, lif2):
            m.reset_hidden()
        want = []
        with torch.no_grad():
            for t in range(x.shape[1]):
                spk, _ = net(torch.from_numpy(x[:, t]))
                want.append(spk.numpy())
        got = snnsim.run(g, x, record=names)
        assert np.stack(want).any() and got.record[names[0]].any()
        np.testing.assert_array_equal(got.record[names[-1]], np.stack(want, axis=1))


@given(networks(precision="float32", recurrent=True, max_steps=6, max_batch=2))
def test_random_recurrent_graphs_round_trip_through_nir(case: NetworkCase) -> None:
    g = case.graph
    try:
        ng = to_nir(g)
    except ModelError:  # 1-d pools and shifted scales on [C, H, W] have no NIR form
        reject()
    back = from_nir(ng)
    assert back.to_json() == g.to_json()
    names = [n.name for n in g.nodes if n.op in NEURON_OPS]
    a = snnsim.run(
        g, case.inputs, steps=case.steps if case.static is not None else None, record=names
    )
    b = snnsim.run(
        back, case.inputs, steps=case.steps if case.static is not None else None, record=names
    )
    for n in names:
        np.testing.assert_array_equal(a.record[n], b.record[n])
