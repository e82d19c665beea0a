"""The promise of snnsim: the Rust engine gives the same spikes as the torch reference.

Random networks (snnsim.testing.networks) mixing Linear/Conv2d/pools/Add/Flatten/Scale with
DSR-IF, DSR-LIF and Dspike-LIF neurons, T in 1..32, batch 1..8, static and event inputs,
int4/int8/int16 weights:

* integer precision: spikes identical at every layer and step, counts identical, outputs
  identical — zero mismatches, including tie-prone networks (small integers hitting the fire
  level exactly);
* float32 precision: summation order differs, so a spike may differ only where the reference
  membrane lies within FLOAT_TOL of the fire level; every sample's first divergence is checked
  against that and the flips are counted (printed with -s).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import snnsim
from snnsim.errors import SnnsimError
from snnsim.graph import NEURON_OPS
from snnsim.testing import FLOAT_TOLERANCE, NetworkCase, networks

COUNT_KINDS = ("spikes", "sops", "macs", "aux_ops", "state_updates")
FLOAT_TOL = FLOAT_TOLERANCE

FLOAT_STATS = {"samples": 0, "diverged": 0, "flips": 0, "spikes": 0}


def _neurons(case: NetworkCase) -> list[str]:
    return [n.name for n in case.graph.topological_order() if n.op in NEURON_OPS]


def _run(case: NetworkCase, mode: str, **kw):
    return snnsim.run(
        case.graph,
        case.inputs,
        steps=case.steps if case.static is not None else None,
        mode=mode,
        record=_neurons(case),
        **kw,
    )


def _both(case: NetworkCase, **kw):
    """Run both executors; if one raises (integer overflow), the other must raise too."""
    try:
        ref = _run(case, "reference", **kw)
    except SnnsimError as exc:
        with pytest.raises(SnnsimError):
            _run(case, "engine", **kw)
        note(f"both raised: {exc}")
        return None, None
    return ref, _run(case, "engine", **kw)


@given(networks(precision="int"))
def test_integer_precision_is_bit_exact(case: NetworkCase) -> None:
    note(f"seed={case.seed} nodes={[(n.name, n.op) for n in case.graph.topological_order()]}")
    ref, eng = _both(case)
    if ref is None:
        return
    for name in _neurons(case):
        a, b = ref.record[name], eng.record[name]
        assert a.shape == b.shape
        mismatches = int(np.count_nonzero(a != b))
        assert mismatches == 0, f"layer {name}: {mismatches} spike mismatches"
    for kind in COUNT_KINDS:
        np.testing.assert_array_equal(
            getattr(ref.counts, kind), getattr(eng.counts, kind), err_msg=kind
        )
    np.testing.assert_array_equal(ref.counts.dense_macs, eng.counts.dense_macs)
    np.testing.assert_array_equal(ref.output, eng.output)
    np.testing.assert_array_equal(ref.prediction, eng.prediction)


@given(st.data())
def test_int_ties_at_fire_level_fire(data: st.DataObject) -> None:
    """Inputs built to land exactly on the fire level: DSR fires (>=), Dspike does not (>)."""
    fire = data.draw(st.integers(1, 1000))
    theta = data.draw(st.integers(fire, 2 * fire))
    width = data.draw(st.integers(1, 16))
    g = snnsim.Graph(input_shape=(width,), precision="int", input_scale=1.0)
    w = np.eye(width, dtype=np.int8) * 1
    g.linear("fc", "input", w, bias=np.full(width, fire - 1, dtype=np.int32))
    g.dsr_if("dsr", "fc", theta=theta, fire=fire)
    g.linear("fc2", "input", w, bias=np.full(width, fire - 1, dtype=np.int32))
    g.dspike_lif("dsp", "fc2", fire=fire, leak_m=0, f=1)
    g.integrate("out", "dsr")
    g.set_output("out")
    x = np.ones((1, width), dtype=np.int32)  # current = 1 + (fire - 1) = fire exactly
    for mode in ("engine", "reference"):
        r = snnsim.run(g, x, steps=1, mode=mode, record=["dsr", "dsp"])
        assert r.record["dsr"].sum() == width, mode
        assert r.record["dsp"].sum() == 0, mode


@pytest.mark.parametrize("alpha_num, alpha_den", [(1, 1), (1, 2)])
@given(data=st.data())
def test_if_law_for_constant_input(alpha_num: int, alpha_den: int, data: st.DataObject) -> None:
    """docs/semantics.md §1.1: constant input I* to an IF neuron gives
    clamp(floor(N I*/theta + 1 - alpha), 0, N) spikes after N steps (exact rationals; integer
    precision, engine and reference)."""
    from fractions import Fraction

    theta = 2 * data.draw(st.integers(1, 60))  # even so that alpha*theta is an integer
    fire = theta * alpha_num // alpha_den
    n_steps = data.draw(st.integers(1, 32))
    currents = np.array(
        data.draw(st.lists(st.integers(-2 * theta, 2 * theta), min_size=1, max_size=32)),
        dtype=np.int32,
    )
    width = len(currents)
    g = snnsim.Graph(input_shape=(width,), precision="int", input_scale=1.0)
    g.linear("fc", "input", np.zeros((width, width), dtype=np.int8), bias=currents)
    g.dsr_if("sn", "fc", theta=theta, fire=fire)
    g.set_output("sn")
    alpha = Fraction(alpha_num, alpha_den)
    want = [
        min(max((Fraction(n_steps * int(i), theta) + 1 - alpha).__floor__(), 0), n_steps)
        for i in currents
    ]
    for mode in ("engine", "reference"):
        r = snnsim.run(
            g, np.zeros((1, width), dtype=np.int32), steps=n_steps, mode=mode, record=["sn"]
        )
        got = r.record["sn"][0].sum(axis=0).tolist()
        assert got == want, (mode, currents.tolist(), theta, fire, n_steps)


def _pre_reset_membranes(case: NetworkCase) -> dict[str, np.ndarray]:
    """Reference membrane U (before firing/reset) of every neuron node: name -> [B, T, *shape]."""
    import torch

    from snnsim.reference import ReferenceNetwork

    net = ReferenceNetwork(case.graph)
    nodes = [n for n in net.order if n.op in NEURON_OPS]
    state = net.init_state("static" if case.static is not None else "sparse")
    out: dict[str, list[np.ndarray]] = {n.name: [] for n in nodes}
    for step in range(case.steps):
        x = torch.from_numpy(case.static if case.static is not None else case.frames[:, step])
        before = {n.name: state.membranes.get(n.name) for n in nodes}
        values, _ = net.step(x, state)
        for n in nodes:
            t = {k: torch.as_tensor(v) for k, v in n.tensors.items()}
            shape = (1, -1) + (1,) * (values[n.inputs[0]].dim() - 2)
            p = {k: v.reshape(shape) for k, v in t.items()}
            xin = values[n.inputs[0]]
            v = before[n.name] if before[n.name] is not None else torch.zeros_like(xin)
            if n.op == "dsr_if":
                u = v + xin
            elif n.op == "dsr_lif":
                u = p["leak"] * v + p["gain"] * xin
            else:
                u = p["leak"] * v + xin
            out[n.name].append((u - p["fire"]).numpy())
    return {k: np.stack(v, axis=1) for k, v in out.items()}


@given(networks(precision="float32"))
def test_float_precision_flips_only_near_the_fire_level(case: NetworkCase) -> None:
    """float32: compare step by step, layer by layer; at a sample's first divergence every
    differing spike must have |U - fire| <= FLOAT_TOL * max(1, |fire|) in the reference; after it
    the sample's states legitimately differ and it is not compared further."""
    note(f"seed={case.seed}")
    ref, eng = _both(case)
    names = _neurons(case)
    margins = _pre_reset_membranes(case)
    fires = {
        n.name: np.abs(n.tensors["fire"]).max() for n in case.graph.nodes if n.op in NEURON_OPS
    }
    batch = ref.prediction.shape[0]
    FLOAT_STATS["samples"] += batch
    for b in range(batch):
        FLOAT_STATS["spikes"] += int(sum(ref.record[n][b].sum() for n in names))
        for step in range(case.steps):
            diverged = False
            for name in names:
                diff = ref.record[name][b, step] != eng.record[name][b, step]
                if not diff.any():
                    continue
                dist = np.abs(margins[name][b, step][diff])
                tol = FLOAT_TOL * max(1.0, float(fires[name]))
                assert dist.max() <= tol, (
                    f"sample {b}, step {step}, layer {name}: spike differs {dist.max():.3g} from "
                    "the fire level"
                )
                FLOAT_STATS["flips"] += int(diff.sum())
                diverged = True
                break
            if diverged:
                FLOAT_STATS["diverged"] += 1
                break
        else:
            np.testing.assert_allclose(ref.output[b], eng.output[b], rtol=1e-4, atol=1e-4)


def teardown_module() -> None:
    if FLOAT_STATS["samples"]:
        print(
            f"\nfloat32 parity: {FLOAT_STATS['samples']} samples, {FLOAT_STATS['spikes']} "
            f"reference spikes, {FLOAT_STATS['diverged']} samples diverged, "
            f"{FLOAT_STATS['flips']} spikes flipped at the first divergence"
        )
