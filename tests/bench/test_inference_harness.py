"""The side-by-side inference benchmark (benches/inference.py) on tiny versions of its workloads.

The benchmark's claims rest on every engine running the same network: before timing, each
engine's spikes at every IF layer must equal the reference. These tests run that check for a
tiny network of each workload (same structure, same code path) across the installed peers and
both snnsim precisions, show that the check catches a one-unit threshold change and each peer's
known semantic differences, and run the harness end to end.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHES = Path(__file__).resolve().parents[2] / "benches"
sys.path.insert(0, str(BENCHES))

import inference  # noqa: E402
import inference_engines as E  # noqa: E402
import inference_nets as N  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = 3
OPTIONAL = {"sinabs"}  # installed with the `bench` extra only; the others come with `test`


@pytest.fixture(scope="module")
def nets() -> dict[str, N.Network]:
    out = {}
    for w in N.WORKLOADS:
        net = N.make_network(w, tiny=True)
        N.calibrate(net, batch=4)
        out[w] = net
    return out


def _input(net: N.Network) -> np.ndarray:
    return N.make_input(net, BATCH, seed=0)


@pytest.mark.parametrize("workload", N.WORKLOADS)
def test_reference_is_exact_and_active(nets: dict[str, N.Network], workload: str) -> None:
    """float32 and float64 give the same spikes (the exactness bound holds), every IF layer
    fires at a realistic rate and the thresholds are dyadic."""
    net = nets[workload]
    x = _input(net)
    r32 = N.evaluate(net, x)
    r64 = N.evaluate(net, x, dtype=torch.float64)
    assert r32.spikes.keys() == r64.spikes.keys() == {n.name for n in net.neurons()}
    for k in r32.spikes:
        assert torch.equal(r32.spikes[k], r64.spikes[k]), k
    for k, rate in r32.rates().items():
        assert 0.01 <= rate <= 0.5, (k, rate)
    for n in net.neurons():
        assert n.theta >= 1 and np.float32(n.theta_value) == n.theta * 2.0**-n.q_in
    assert r32.sops_per_sample > 0
    assert max(r32.max_units.values()) < N.SUM_LIMIT


def _snnsim_expresses(net: N.Network) -> bool:
    import snnsim

    try:
        N.to_graph(net, "float32")
    except snnsim.ModelError:
        return False
    return True


@pytest.mark.parametrize("engine", E.ENGINES)
@pytest.mark.parametrize("workload", N.WORKLOADS)
def test_engine_spikes_equal_reference(
    nets: dict[str, N.Network], workload: str, engine: str
) -> None:
    """Every engine reproduces the reference spikes of its neuron law at every IF layer; snnsim
    also its SOP count. snnsim may only refuse a network its Graph cannot express (E, while
    1-D event input does not exist), and then says why."""
    if E.LIBRARY[engine] in OPTIONAL and not E.available(engine):
        pytest.skip(f"{E.LIBRARY[engine]} is not installed (pip install -e '.[bench]')")
    net = nets[workload]
    x = _input(net)
    refs = {law: N.evaluate(net, x, law=law) for law in ("subtract", "zero")}
    try:
        eng = E.make_engine(engine, net, BATCH)
    except E.Unsupported as exc:
        assert engine.startswith("snnsim") and not _snnsim_expresses(net), str(exc)
        assert "event input" in str(exc)
        return
    xin, msg = inference.check_engine(eng, x, refs)
    assert msg is None, msg
    out = np.asarray(eng.run(xin))  # the timed call runs and yields one row per sample
    assert out.shape[0] == BATCH


def test_check_catches_a_one_unit_threshold_change(nets: dict[str, N.Network]) -> None:
    net = nets["B"]
    x = _input(net)
    ref = N.evaluate(net, x)
    layer = net.neurons()[0]
    layer.theta += 1
    try:
        eng = E.make_engine("torch_step", net, BATCH)
        msg = E.spike_mismatch(ref.spikes, eng.record(eng.prepare(x)), "torch_step")
    finally:
        layer.theta -= 1
    assert msg is not None and f"layer {layer.name!r}" in msg


class _SnnTorchStrict(E.SnnTorch):
    """snnTorch with its membranes starting at 0: fires at U > theta, not U >= theta."""

    def reset(self) -> None:
        for m in self.neurons.values():
            m.mem = torch.zeros(0)


def test_check_catches_peer_semantics(nets: dict[str, N.Network]) -> None:
    """Without the half-unit offset snnTorch's strict '>' changes spikes; Norse's reset to zero
    differs from the subtractive law: the check must see both."""
    net = nets["B"]
    x = _input(net)
    ref = N.evaluate(net, x)
    strict = _SnnTorchStrict(net, BATCH)
    assert E.spike_mismatch(ref.spikes, strict.record(strict.prepare(x)), "snntorch")
    norse = E.make_engine("norse", net, BATCH)
    assert E.spike_mismatch(ref.spikes, norse.record(norse.prepare(x)), "norse")


class _NoReset(E.TorchStep):
    """The per-step loop without its state reset between inferences."""

    def reset(self) -> None:
        pass


def test_check_catches_state_left_from_the_previous_inference(nets: dict[str, N.Network]) -> None:
    net = nets["A"]
    x = _input(net)
    refs = {"subtract": N.evaluate(net, x)}
    _, msg = inference.check_engine(_NoReset(net, BATCH), x, refs)
    assert msg is not None and "spike mismatch" in msg


def test_int_export_uses_integer_units(nets: dict[str, N.Network]) -> None:
    """The int graph holds int8 weights, integer thresholds (= the float thresholds in grid
    units) and sum pools; the float graph average pools."""
    net = nets["D"]
    gi, gf = N.to_graph(net, "int"), N.to_graph(net, "float32")
    ops_i = {n.name: n.op for n in gi.nodes}
    ops_f = {n.name: n.op for n in gf.nodes}
    assert ops_i["pool1"] == "sumpool2d" and ops_f["pool1"] == "avgpool2d"
    sn = net.neurons()[1]
    assert int(gi.node(sn.name).tensors["theta"][0]) == sn.theta
    assert float(gf.node(sn.name).tensors["theta"][0]) == sn.theta_value
    assert gi.node("conv1").tensors["weight"].dtype == np.int8


def test_harness_end_to_end(tmp_path: Path) -> None:
    """A tiny quick run: rows for every engine and workload asked for, checked and timed, the
    E rows of snnsim (event input of shape [F]) included, the sweep, the README tables."""
    out = tmp_path / "inference.json"
    engines = ["torch_step", "torch_multistep", "snnsim_float32", "snnsim_int8"]
    args = ["--tiny", "--quick", "--workloads", "B", "E", "--batches", "1", "2"]
    args += ["--threads", "1", "--no-memory", "--out", str(out), "--engines", *engines]
    inference.main(args)
    doc = json.loads(out.read_text())
    assert doc["preliminary"] is True and "quick" in doc["preliminary_reason"]
    assert doc["complete"] is True
    assert doc["load"]["start"]["loadavg"] and doc["versions"]["torch"]
    rows = doc["rows"]
    assert len(rows) == 2 * 2 * len(engines)
    for r in rows:  # snnsim runs E's event input of shape [F] too (input kinds beyond [C, H, W])
        assert r["status"] == "ok", r
        assert r["ms_per_sample"] > 0 and r["sops_per_s"] > 0
        assert r["spikes_checked"] == sorted(r["firing_rates"])
        assert r["fastest_peer"] in ("torch_step", "torch_multistep")
    sweep = doc["sweep"]
    assert {p["sweep"] for p in sweep["points"]} == {"input", "hidden", "both"}
    assert sweep["halving"], "each sweep kind has a pair of levels one half apart"
    targets = doc["targets"]
    assert {t["target"].split(" ")[0] for t in targets} == {">=", "time"}
    assert all(t["engine"].startswith("snnsim") and t["workload"] in ("B", "E") for t in targets)
    table = inference.render_tables(doc)
    assert "PRELIMINARY" in table and "| met |" in table
    assert "| B | 1 | 1 |" in table and "| E | 2 | 1 |" in table

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{inference.MARK_BEGIN}\nold\n{inference.MARK_END}\nrest\n")
    inference.main(["--out", str(out), "--readme-write", str(readme)])
    text = readme.read_text()
    assert "old" not in text and "| B | 2 | 1 |" in text and text.endswith("rest\n")


def test_check_only_mode(tmp_path: Path) -> None:
    """--check-only: every row's spikes checked, nothing timed, the table says so."""
    out = tmp_path / "check.json"
    args = ["--tiny", "--check-only", "--workloads", "C", "--batches", "2", "--threads", "1"]
    inference.main(args + ["--out", str(out), "--engines", "torch_multistep", "snnsim_int8"])
    doc = json.loads(out.read_text())
    assert doc["complete"] and "check-only" in doc["preliminary_reason"]
    assert [r["status"] for r in doc["rows"]] == ["ok", "ok"]
    assert all("ms_per_sample" not in r and r["spikes_checked"] for r in doc["rows"])
    assert doc["sweep"] is None and doc["targets"] == []
    assert "| C | 2 | 1 | checked | checked |" in inference.render_tables(doc)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_memory_probe_in_fresh_process(nets: dict[str, N.Network], tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "A.pkl"
    path.write_bytes(pickle.dumps(nets["A"]))
    mem = inference.measure_memory(path, "snnsim_float32", 2)
    assert "memory_error" not in mem, mem
    assert mem["peak_rss_mib"] >= mem["rss_before_engine_mib"] > 0


def test_sinabs_is_pinned_in_the_bench_extra() -> None:
    text = (BENCHES.parent / "pyproject.toml").read_text()
    bench = text.split("bench = [", 1)[1].split("]", 1)[0]
    for pin in ("spikingjelly==2.0.0", "snntorch==1.0.0", "norse==1.1.0", "sinabs==2.0.3"):
        assert pin in bench
    assert importlib.util.find_spec("torch") is not None
