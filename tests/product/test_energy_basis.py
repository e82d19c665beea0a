"""The energy comparison: the SNN against the equivalent ANNs on the same basis (compute with
compute, compute + memory with compute + memory), the ANN quantised to the SNN's weight width,
and the break-even firing rate (checked by scaling the spike-driven counts to it)."""

from __future__ import annotations

import numpy as np
import pytest

from snnsim import CostTable, Graph, energy
from snnsim.result import Counts


def _graph(precision: str = "float32") -> Graph:
    g = Graph(
        input_shape=(4,), precision=precision, input_scale=0.1 if precision == "int" else None
    )
    if precision == "float32":
        g.linear("fc1", "input", np.ones((8, 4), np.float32))
        g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
        g.linear("fc2", "sn1", np.ones((3, 8), np.float32))
    else:
        g.linear("fc1", "input", np.ones((8, 4), np.int8), weight_bits=8)
        g.dsr_if("sn1", "fc1", theta=np.array([4]), fire=np.array([2]))
        g.linear("fc2", "sn1", np.ones((3, 8), np.int8), weight_bits=8)
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


def _counts(spikes_per_step: int, steps: int = 5) -> Counts:
    """One sample: fc1 runs 32 MACs once (static input), sn1 has 8 neurons, every spike drives 3
    SOPs in fc2, out integrates 3 values."""
    L, T = 4, steps
    z = {
        k: np.zeros((1, L, T), np.uint64)
        for k in ("spikes", "sops", "macs", "aux_ops", "state_updates")
    }
    z["macs"][0, 0, 0] = 32
    z["spikes"][0, 1, :] = spikes_per_step
    z["sops"][0, 2, :] = 3 * spikes_per_step
    z["state_updates"][0, 1, :] = 8
    z["state_updates"][0, 3, :] = 3
    return Counts(
        **z,
        layer_names=("fc1", "sn1", "fc2", "out"),
        layer_ops=("linear", "dsr_if", "linear", "integrate"),
        dense_macs=np.array([32, 0, 24, 0], np.uint64),
    )


def test_same_basis_numbers_float32():
    t = CostTable()
    e = energy(_counts(2), _graph(), t)
    ann = e.ann["ann_fp32"]
    assert ann["compute_pj"] == pytest.approx(56 * 4.6)
    assert ann["memory_pj"] == pytest.approx(56 * 4 / 8 * 20)  # one 4-byte weight per MAC
    assert ann["total_pj"] == pytest.approx(ann["compute_pj"] + ann["memory_pj"])
    # float32 SNN: the same-width ANN is the float32 ANN
    assert e.ann["ann_same_width"] == ann
    cmp = e.comparison()
    assert cmp["snn"]["total_pj"] == pytest.approx(e.total_pj)
    assert cmp["ann_fp32"]["ratio_total"] == pytest.approx(ann["total_pj"] / e.total_pj)
    assert cmp["ann_fp32"]["ratio_compute"] == pytest.approx(ann["compute_pj"] / e.compute_pj)
    assert e.firing_rate == pytest.approx(2 / 8)
    assert e.activation_sparsity == pytest.approx(0.75)


def test_same_width_ann_for_int8():
    t = CostTable()
    e = energy(_counts(2), _graph("int"), t)
    same, fp = e.ann["ann_same_width"], e.ann["ann_fp32"]
    assert same["weight_bits"] == 8 and fp["weight_bits"] == 32
    assert same["compute_pj"] == pytest.approx(56 * (0.2 + 0.1))  # int8 mult + int32 add
    assert same["memory_pj"] == pytest.approx(56 * 1 / 8 * 20)
    assert fp["compute_pj"] == pytest.approx(56 * 4.6)
    assert e.dense_pj == pytest.approx(same["compute_pj"])


@pytest.mark.parametrize("precision", ["float32", "int"])
@pytest.mark.parametrize("against", ["ann_fp32", "ann_same_width"])
@pytest.mark.parametrize("memory", [True, False])
def test_break_even_rate_is_where_the_energies_meet(precision, against, memory):
    t = CostTable()
    g = _graph(precision)
    e = energy(_counts(2), g, t)
    r = e.break_even_rate(against, memory=memory)
    key = "total_pj" if memory else "compute_pj"
    ann = e.ann[against][key]
    if r == 0.0:
        # the fixed part alone costs more: even without spikes the SNN loses
        e0 = energy(_counts(0), g, t)
        assert (e0.total_pj if memory else e0.compute_pj) >= ann
        return
    assert 0 < r

    # spikes are counted in whole numbers: check the linear model at the break-even point
    # against two real count sets around it
    def snn(n: int) -> float:
        en = energy(_counts(n), g, t)
        return en.total_pj if memory else en.compute_pj

    slope = snn(3) - snn(2)
    at_rate = snn(2) + slope * (r * 8 - 2)  # 8 neurons: rate r is r*8 spikes per step
    assert at_rate == pytest.approx(ann, rel=1e-9)
    assert snn(int(np.floor(r * 8))) <= ann + 1e-9 and snn(int(np.ceil(r * 8)) + 1) > ann


def test_summary_states_the_basis_and_the_table_once():
    e = energy(_counts(2), _graph("int"))
    text = e.summary()
    assert "SNN compute only" in text and "SNN compute + memory" in text
    assert "ANN float32" in text and "ANN same width" in text and "8-bit weights" in text
    assert "firing rate of" in text
    assert text.count("cost table:") == 1
    d = e.as_dict()
    for k in ("Effective_MACs", "Effective_ACs", "Dense", "ActivationSparsity", "firing_rate"):
        assert k in d
