"""Energy model: the default cost table, the per-op costs, the byte model and the report."""

from __future__ import annotations

import numpy as np
import pytest

from snnsim import Graph
from snnsim.api import Model
from snnsim.energy import CostTable, EnergyReport, ModelInfo, energy
from snnsim.reference import dense_macs
from snnsim.result import COUNT_FIELDS, Counts, RunResult


def float_graph() -> Graph:
    g = Graph(input_shape=(8,))
    g.linear("fc1", "input", np.ones((16, 8)))
    g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    g.linear("fc2", "sn1", np.ones((4, 16)))
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


def int_graph(bits2: int = 4) -> Graph:
    g = Graph(input_shape=(8,), precision="int", input_scale=0.1)
    g.linear("fc1", "input", np.ones((16, 8), dtype=np.int8), weight_bits=8)
    g.scale("bn", "fc1", m=np.ones(16), f=4)
    g.dspike_lif("sn1", "bn", fire=5, leak_m=100, f=8)
    g.linear("fc2", "sn1", np.ones((4, 16), dtype=np.int8), weight_bits=bits2)
    g.dsr_lif("sn2", "fc2", theta=4, fire=2, leak_m=200, gain_m=256, f=8)
    g.set_output("sn2")
    return g


def make_counts(graph: Graph, batch: int, steps: int, **per_node: dict[str, int]) -> Counts:
    """Counts with ``per_node[name][field]`` at every sample and step."""
    names = graph.node_names
    arrays = {f: np.zeros((batch, len(names), steps), dtype=np.uint64) for f in COUNT_FIELDS}
    for name, fields in per_node.items():
        for f, v in fields.items():
            arrays[f][:, names.index(name), :] = v
    ops = tuple(n.op for n in graph.topological_order())
    return Counts(**arrays, layer_names=tuple(names), layer_ops=ops, dense_macs=dense_macs(graph))


def test_default_table_is_horowitz_45nm() -> None:
    t = CostTable()
    got = (t.fp32_mac, t.fp32_add, t.int8_add, t.int8_mult, t.int32_add, t.int32_mult)
    assert got == (4.6, 0.9, 0.03, 0.2, 0.1, 3.1)
    assert t.fp32_mult + t.fp32_add == pytest.approx(t.fp32_mac)
    assert t.memory_64bit == 20.0
    assert CostTable.horowitz_45nm("sram_8kb").memory_64bit == 10.0
    assert CostTable.horowitz_45nm("sram_1mb").memory_64bit == 100.0
    assert CostTable.horowitz_45nm("dram").memory_64bit == 1300.0
    assert "1MB SRAM" in CostTable.horowitz_45nm("sram_1mb").name


def test_table_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="memory must be one of"):
        CostTable.horowitz_45nm("l3")
    with pytest.raises(ValueError, match="'fp32_add'.*-1"):
        CostTable(fp32_add=-1.0)
    with pytest.raises(ValueError, match="'int8_mult'"):
        CostTable(int8_mult=float("nan"))


def test_float_energy_by_hand() -> None:
    g = float_graph()
    # batch 2, 3 steps; per sample and step: fc1 64 MACs, sn1 16 updates + 5 spikes,
    # fc2 20 SOPs, out 4 updates
    c = make_counts(
        g,
        2,
        3,
        fc1={"macs": 64},
        sn1={"state_updates": 16, "spikes": 5},
        fc2={"sops": 20},
        out={"state_updates": 4},
    )
    r = energy(c, g)
    t = CostTable()
    assert isinstance(r, EnergyReport) and r.batch_size == 2 and r.steps == 3
    assert r.mac_pj.sum() == pytest.approx(3 * 64 * 4.6)
    assert r.sop_pj.sum() == pytest.approx(3 * 20 * 0.9)
    assert r.neuron_pj.sum() == pytest.approx(3 * (16 * 0.9 + 5 * 0.9 + 4 * 0.9))
    assert r.synaptic_pj == pytest.approx(3 * (64 * 4.6 + 20 * 0.9))
    assert r.compute_pj == pytest.approx(r.synaptic_pj + r.neuron_pj.sum())
    # bytes: 4-byte weights per MAC/SOP; 4 bytes read + 4 written per state update
    assert r.bytes_read.sum() == pytest.approx(3 * ((64 + 20) * 4 + (16 + 4) * 4))
    assert r.bytes_written.sum() == pytest.approx(3 * (16 + 4) * 4)
    mem = (r.bytes_read.sum() + r.bytes_written.sum()) / 8 * t.memory_64bit
    assert r.memory_total_pj == pytest.approx(mem)
    assert r.total_pj == pytest.approx(r.compute_pj + mem)
    assert r.compute_j == pytest.approx(r.compute_pj * 1e-12)
    assert r.total_j == pytest.approx(r.total_pj * 1e-12)
    assert r.neurobench() == {"Effective_MACs": 192.0, "Effective_ACs": 60.0, "Dense": 128.0 + 64.0}
    assert r.dense_pj == pytest.approx(192 * 4.6)


def test_int_energy_by_hand() -> None:
    g = int_graph(bits2=4)
    c = make_counts(
        g,
        1,
        2,
        fc1={"macs": 100},
        bn={"aux_ops": 16},
        sn1={"state_updates": 16, "spikes": 3},
        fc2={"sops": 12},
        sn2={"state_updates": 4, "spikes": 1},
    )
    r = energy(c, ModelInfo.from_graph(g))
    assert r.mac_pj.sum() == pytest.approx(2 * 100 * (0.2 + 0.1))  # int8 mult + int32 add
    assert r.sop_pj.sum() == pytest.approx(2 * 12 * 0.1)  # int32 add
    assert r.aux_pj.sum() == pytest.approx(2 * 16 * (3.1 + 0.1))  # fixed-point scale
    fx = 3.1 + 0.1
    neuron = (
        16 * (fx + 0.1) + 4 * (2 * fx + 0.1) + 1 * 0.1
    )  # dspike: 1 fx; dsr_lif: 2 fx; dsr reset
    assert r.neuron_pj.sum() == pytest.approx(2 * neuron)
    # int8 weights 1 byte per MAC, int4 weights half a byte per SOP
    assert r.bytes_read.sum() == pytest.approx(2 * (100 * 1 + 12 * 0.5 + (16 + 4) * 4))


def test_int16_weights_cost_int32_multiplies() -> None:
    g = int_graph(bits2=16)
    c = make_counts(g, 1, 1, fc2={"macs": 10})
    r = energy(c, g)
    assert r.mac_pj.sum() == pytest.approx(10 * (3.1 + 0.1))
    assert r.bytes_read.sum() == pytest.approx(10 * 2)


def test_energy_is_per_sample() -> None:
    g = float_graph()
    one = energy(make_counts(g, 1, 4, fc2={"sops": 7}), g)
    many = energy(make_counts(g, 5, 4, fc2={"sops": 7}), g)
    assert many.total_pj == pytest.approx(one.total_pj)
    assert many.effective_acs == one.effective_acs == 28


def test_custom_table_and_report_text() -> None:
    g = float_graph()
    c = make_counts(g, 1, 1, fc1={"macs": 1})
    t = CostTable(fp32_mac=1.0, memory_64bit=0.0, name="unit test table")
    r = energy(c, g, t)
    assert r.compute_pj == pytest.approx(1.0) and r.memory_total_pj == 0.0
    text = r.summary()
    assert "unit test table" in text and "compute only" in text and "compute + memory" in text
    assert "Effective_MACs" in text
    d = r.as_dict()
    for k in (
        "compute_pj",
        "total_pj",
        "compute_j",
        "total_j",
        "Effective_MACs",
        "Effective_ACs",
        "Dense",
    ):
        assert k in d


def test_accepts_run_result_and_model() -> None:
    g = float_graph()
    c = make_counts(g, 1, 2, fc2={"sops": 3})
    res = RunResult(output=np.zeros((1, 4)), prediction=np.zeros(1, np.int64), counts=c, steps=2)
    assert energy(res, Model.from_graph(g)).sop_pj.sum() == pytest.approx(2 * 3 * 0.9)


def test_layer_mismatch_and_wrong_types() -> None:
    c = make_counts(float_graph(), 1, 1)
    with pytest.raises(ValueError, match="do not match the model's layers"):
        energy(c, int_graph())
    with pytest.raises(TypeError, match="model_info must be"):
        energy(c, "net.safetensors")
    with pytest.raises(TypeError, match="counts must be"):
        energy({"sops": 1}, float_graph())  # type: ignore[arg-type]  # deliberately wrong: the error is under test


def test_counts_totals() -> None:
    g = float_graph()
    c = make_counts(g, 2, 3, fc1={"macs": 64}, fc2={"sops": 2})
    per = c.per_layer()
    np.testing.assert_array_equal(per["macs"], [2 * 3 * 64, 0, 0, 0])
    np.testing.assert_array_equal(per["dense_macs"], [2 * 128, 0, 2 * 64, 0])
    assert c.total()["sops"] == 12 and c.total()["dense_macs"] == 2 * 192
    joined = Counts.concat([c, c])
    assert joined.steps == 6 and joined.total()["macs"] == 2 * c.total()["macs"]
