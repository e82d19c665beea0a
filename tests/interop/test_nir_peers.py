"""NIR interchange against the real peer libraries: snnTorch, SpikingJelly and Norse.

Each peer is checked both ways on the same kind of network (Linear/Conv + the peer's LIF/IF,
deterministic weights, random binary input spike trains of ``T`` steps):

* peer -> NIR -> snnsim: the peer's exporter writes the file, :func:`snnsim.nir_interop.from_nir`
  reads it, :func:`snnsim.run` runs it (engine and reference), and the spikes of every neuron
  layer at every step are compared with the peer's own forward;
* snnsim -> NIR -> peer: :func:`snnsim.nir_interop.to_nir` writes the file, the peer's importer
  reads it, and the peer's spikes are compared with snnsim's.

Where the two agree the test asserts identical spikes. Where a peer's NIR semantics differ
(threshold comparison, reset, tau discretisation, ignored fields) the test asserts the documented
difference exactly: the peer equals snnsim under a stated conversion, and does *not* equal it
without the conversion. The interop matrix is in ``docs/nir.md``.

Weights, biases, thresholds and leaks are dyadic (small multiples of powers of two) unless noted,
so every float32 sum and product is exact, summation order cannot matter, and membranes land
exactly on thresholds: that makes the strict ``>`` (NIR, snnTorch, Norse, snnsim's Dspike
neuron) and the non-strict ``>=`` (SpikingJelly) comparisons observably different.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import nir
import numpy as np
import pytest
import torch

import snnsim
from snnsim.nir_interop import from_nir, to_nir

T = 10  # time steps
B = 4  # samples
MODES = ("engine", "reference")
SNNTORCH_DT = 1e-4  # the step snnTorch's NIR importer and exporter hard-code
SJ_DT = 1e-4  # SpikingJelly's default (export_to_nir / import_from_nir argument dt)


# ---------------------------------------------------------------------- helpers
def _dyadic(rng: np.random.Generator, shape: Any, denom: int, span: int = 8) -> np.ndarray:
    """Integers in [-span, span] / denom, as float32 (exact in every float32 operation here)."""
    return (rng.integers(-span, span + 1, size=shape) / denom).astype(np.float32)


def _frames(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.4) -> np.ndarray:
    """Random binary input spike trains, [B, T, *shape]."""
    return (rng.random((B, T, *shape)) < p).astype(np.float32)


def _run(g: snnsim.Graph, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """snnsim spikes per recorded node, [B, T, *shape]; engine and reference must agree exactly."""
    out = {}
    for mode in MODES:
        res = snnsim.run(g, x, steps=T, mode=mode, record=names)
        for k in names:
            if k in out:
                assert np.array_equal(out[k], res.record[k]), (mode, k)
            else:
                out[k] = np.asarray(res.record[k], dtype=np.float32)
    return out


def _neuron_names(g: snnsim.Graph) -> list[str]:
    return [n.name for n in g.nodes if n.op in ("dsr_if", "dsr_lif", "dspike_lif")]


def _strip(ng: Any) -> Any:
    """Drop snnsim's metadata, so a reader sees only NIR's native fields (as a peer does)."""
    for node in ng.nodes.values():
        node.metadata = {}
    ng.metadata = {}
    return ng


def _shift_fire(g: snnsim.Graph, direction: float) -> snnsim.Graph:
    """Move every Dspike firing level one float32 ulp towards ``direction``. For float32
    membranes ``U > nextafter(f, -inf)`` is ``U >= f``: the conversion between a strict and a
    non-strict threshold comparison."""
    for n in g.nodes:
        if n.op == "dspike_lif":
            f = n.tensors["fire"].astype(np.float32)
            n.tensors["fire"] = np.nextafter(f, np.float32(direction))
    return g


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], pairs: list[tuple[str, str]]) -> bool:
    return all(np.array_equal(a[i], b[j].reshape(a[i].shape)) for i, j in pairs)


def _assert_same(
    peer: dict[str, np.ndarray], ours: dict[str, np.ndarray], pairs: list[tuple[str, str]]
) -> None:
    for i, j in pairs:
        p, o = peer[i], ours[j].reshape(peer[i].shape)
        assert np.array_equal(p, o), f"{i} vs {j}: {int((p != o).sum())} of {p.size} spikes differ"
    assert all(peer[i].sum() > 0 for i, _ in pairs)  # not vacuous: every layer fires


def _hooked_forward(
    net: Any, modules: dict[str, Any], step: Callable[[Any], None], batched: bool = True
) -> dict[str, np.ndarray]:
    """Run ``step(t)`` for t in range(T) and collect the spikes each module returns:
    [B, T, ...] (``batched``) or [T, ...]."""
    rec: dict[str, list[np.ndarray]] = {k: [] for k in modules}
    hooks = []
    for k, m in modules.items():

        def hook(_m, _a, out, k=k):
            spk = out[0] if isinstance(out, tuple) else out
            rec[k].append(spk.detach().numpy().astype(np.float32).copy())

        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for t in range(T):
                step(t)
    finally:
        for h in hooks:
            h.remove()
    return {k: np.stack(v, axis=1 if batched else 0) for k, v in rec.items()}


# ====================================================================== snnTorch
def _snntorch_net(rng: np.random.Generator, reset: str, beta1: float = 0.75):
    import snntorch as snn

    lin1 = torch.nn.Linear(32, 16)
    lin1.weight.data = torch.tensor(_dyadic(rng, (16, 32), 8))
    lin1.bias.data = torch.tensor(_dyadic(rng, 16, 16))
    lin2 = torch.nn.Linear(16, 4)
    lin2.weight.data = torch.tensor(_dyadic(rng, (4, 16), 4))
    lin2.bias.data = torch.tensor(_dyadic(rng, 4, 16))
    # vector beta/threshold: with scalars snnTorch's export fails type inference (see below)
    lif1 = snn.Leaky(
        beta=torch.full((16,), beta1),
        threshold=torch.full((16,), 1.0),
        init_hidden=True,
        reset_mechanism=reset,
    )
    lif2 = snn.Leaky(
        beta=torch.full((4,), 0.5),
        threshold=torch.full((4,), 0.5),
        init_hidden=True,
        reset_mechanism=reset,
        output=True,
    )
    return torch.nn.Sequential(torch.nn.Flatten(), lin1, lif1, lin2, lif2)


def _snntorch_export(net):
    from snntorch.export_nir import export_to_nir

    # ignore_dims=[0]: without it the Input keeps the batch dimension and snnTorch's own type
    # inference fails ("type mismatch: input.output: [[1 2 4 4]] -> ...")
    return export_to_nir(net, torch.zeros(1, 2, 4, 4), ignore_dims=[0])


def _snntorch_forward(net, x):
    return _hooked_forward(
        net, {"lif1": net[2], "lif2": net[4]}, lambda t: net(torch.tensor(x[:, t]))
    )


def test_snntorch_export_zero_reset_is_identical(tmp_path):
    """snnTorch Leaky(reset_mechanism="zero") -> NIR LIF (tau = 1e-4/(1-beta), r = tau/1e-4,
    v_reset = 0) -> snnsim dspike_lif(leak = beta, fire = threshold): identical spikes.

    snnTorch keeps the pre-reset membrane and zeroes it at the start of the next step (its
    "reset delay"); NIR resets right after the spike. The stored membrane differs by that step,
    the spikes do not (both compare with strict '>')."""
    rng = np.random.default_rng(10)
    net = _snntorch_net(rng, "zero")
    x = _frames(rng, (2, 4, 4))
    ng = _snntorch_export(net)
    assert {k: type(v).__name__ for k, v in ng.nodes.items()} == {
        "input": "Input",
        "0": "Flatten",
        "1": "Affine",
        "2": "LIF",
        "3": "Affine",
        "4": "LIF",
        "output": "Output",
    }
    assert np.allclose(ng.nodes["2"].tau, SNNTORCH_DT / 0.25) and np.all(ng.nodes["2"].v_reset == 0)
    peer = _snntorch_forward(net, x)

    g = from_nir(ng, dt=SNNTORCH_DT, input_kind="events")
    assert [n.op for n in g.nodes] == [
        "flatten",
        "linear",
        "dspike_lif",
        "linear",
        "dspike_lif",
    ]  # r*dt/tau == 1
    assert np.all(g.node("2").tensors["leak"] == 0.75) and np.all(
        g.node("4").tensors["leak"] == 0.5
    )
    pairs = [("lif1", "2"), ("lif2", "4")]
    _assert_same(peer, _run(g, x, ["2", "4"]), pairs)
    # the comparison is sensitive to '>' vs '>=' (membranes hit the threshold exactly)
    assert not _same(peer, _run(_shift_fire(g, -np.inf), x, ["2", "4"]), pairs)

    # the file read back from disk is the same network
    nir.write(tmp_path / "snntorch.nir", ng)
    g2 = from_nir(tmp_path / "snntorch.nir", dt=SNNTORCH_DT, input_kind="events")
    _assert_same(peer, _run(g2, x, ["2", "4"]), pairs)


def test_snntorch_export_subtract_reset_is_written_as_zero_reset():
    """snnTorch's default reset_mechanism="subtract" is exported with v_reset = 0 like the zero
    reset: the file does not say "subtract", so every NIR reader (snnsim included) runs a
    hard-reset neuron. Documented precisely:

    * snnsim's import of the subtract-reset export == snnTorch's *zero*-reset twin (same
      weights), and != snnTorch's subtract-reset forward;
    * snnTorch's subtract-reset forward == snnsim ``dsr_lif(leak=beta, gain=1,
      theta=threshold/beta, fire=nextafter(threshold, +inf))``: snnTorch subtracts the full
      threshold *after* the leak (U[n] = beta*U[n-1] + x[n] - thr*s[n-1]) and compares with '>'.
    """
    rng = np.random.default_rng(11)
    net = _snntorch_net(rng, "subtract", beta1=0.5)
    x = _frames(rng, (2, 4, 4))
    peer_sub = _snntorch_forward(net, x)
    ng = _snntorch_export(net)
    assert np.all(ng.nodes["2"].v_reset == 0) and np.all(ng.nodes["4"].v_reset == 0)

    twin = _snntorch_net(np.random.default_rng(11), "zero", beta1=0.5)
    peer_zero = _snntorch_forward(twin, x)
    g = from_nir(ng, dt=SNNTORCH_DT, input_kind="events")
    ours = _run(g, x, ["2", "4"])
    pairs = [("lif1", "2"), ("lif2", "4")]
    _assert_same(peer_zero, ours, pairs)
    assert not _same(peer_sub, ours, pairs)

    # the subtract-reset forward as an snnsim DSR network
    w = {n.name: n.tensors for n in g.nodes if n.op == "linear"}
    h = snnsim.Graph(input_shape=(2, 4, 4), input_kind="events")
    h.flatten("f", "input")
    h.linear("fc1", "f", w["1"]["weight"], w["1"]["bias"])
    h.dsr_lif(
        "s1",
        "fc1",
        theta=1.0 / 0.5,
        fire=np.nextafter(np.float32(1.0), np.float32(2)),
        leak=0.5,
        gain=1.0,
    )
    h.linear("fc2", "s1", w["3"]["weight"], w["3"]["bias"])
    h.dsr_lif(
        "s2",
        "fc2",
        theta=0.5 / 0.5,
        fire=np.nextafter(np.float32(0.5), np.float32(1)),
        leak=0.5,
        gain=1.0,
    )
    h.set_output("s2")
    _assert_same(peer_sub, _run(h, x, ["s1", "s2"]), [("lif1", "s1"), ("lif2", "s2")])


def test_snntorch_export_scalar_parameters_fail_type_inference():
    """A Leaky with a scalar beta/threshold (snnTorch's usual way) exports 0-d NIR parameters, and
    snnTorch's own ``infer_types`` then rejects the graph: the exporter needs per-neuron vectors."""
    import snntorch as snn

    net = torch.nn.Sequential(
        torch.nn.Linear(6, 5), snn.Leaky(beta=0.75, init_hidden=True, output=True)
    )
    from snntorch.export_nir import export_to_nir

    with pytest.raises(ValueError, match="Type inference error: type mismatch"):
        export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0])


def _snnsim_mlp(rng: np.random.Generator, per_channel: bool = False) -> snnsim.Graph:
    """Flatten -> Linear -> Dspike LIF -> Linear -> Dspike IF (leak 1: NIR IF) on [2, 4, 4] event
    frames."""
    g = snnsim.Graph(input_shape=(2, 4, 4), input_kind="events")
    g.flatten("f", "input")
    g.linear("fc1", "f", _dyadic(rng, (16, 32), 8), _dyadic(rng, 16, 16))
    leak = np.where(np.arange(16) % 2 == 0, 0.75, 0.5) if per_channel else 0.75
    g.dspike_lif("s1", "fc1", fire=1.0, leak=leak)
    g.linear("fc2", "s1", _dyadic(rng, (4, 16), 4), _dyadic(rng, 4, 16))
    g.dspike_lif("s2", "fc2", fire=0.5, leak=1.0)
    g.set_output("s2")
    return g


def _snntorch_import(ng):
    from snntorch.import_nir import import_from_nir

    return import_from_nir(ng)


def _snntorch_run_imported(m, x, names):
    """snnTorch's importer maps NIR Flatten(start_dim=0) to torch Flatten(0), which would also
    flatten a batch: run the samples one at a time, resetting the neurons' state in between."""
    import snntorch as snn

    mods = {k: getattr(m, k) for k in names}
    assert all(isinstance(mod, snn.Leaky) for mod in mods.values())
    per_sample = []
    for b in range(x.shape[0]):
        for mod in mods.values():
            mod.reset_mem()
        per_sample.append(
            _hooked_forward(m, mods, lambda t, b=b: m(torch.tensor(x[b, t])), batched=False)
        )
    return {k: np.stack([o[k] for o in per_sample]) for k in names}


def test_snntorch_import_of_snnsim_lif_is_identical():
    """snnsim dspike_lif -> to_nir(dt=1e-4) -> snnTorch Leaky(beta = 1 - 1e-4/tau, reset "zero",
    reset_delay=False): identical spikes. With the default dt=1 snnTorch (which assumes
    1e-4) would read a leak of 1 - 1e-4/tau, i.e. almost no leak."""
    rng = np.random.default_rng(12)
    g = _snnsim_mlp(rng)
    g.node("s2").tensors["leak"] = np.array([0.5], np.float32)  # snnTorch cannot load IF (below)
    x = _frames(rng, (2, 4, 4))
    ours = _run(g, x, ["s1", "s2"])
    m = _snntorch_import(to_nir(g, dt=SNNTORCH_DT))
    # snnTorch keeps beta in float64, 1 - 1e-4/float32(tau): 0.75 + 1.2e-8, not 0.75. So its
    # membrane can differ from snnsim's float32 one by a few 1e-8 after a leak step, and a spike
    # could flip where a membrane lands exactly on the threshold; none does here (checked below)
    assert np.allclose(m.s1.beta.numpy(), 0.75, atol=2e-8) and m.s1.reset_mechanism == "zero"
    peer = _snntorch_run_imported(m, x, ["s1", "s2"])
    _assert_same(peer, ours, [("s1", "s1"), ("s2", "s2")])

    # tau discretisation: the default dt=1 file means "tau = 4 steps" to NIR but 4 s to
    # snnTorch (beta = 1 - 1e-4/4): a different network
    m1 = _snntorch_import(to_nir(g))
    assert np.allclose(m1.s1.beta.numpy(), 1 - 1e-4 / 4.0)
    assert not _same(
        _snntorch_run_imported(m1, x, ["s1", "s2"]), ours, [("s1", "s1"), ("s2", "s2")]
    )


def test_snntorch_import_of_nir_if_is_not_an_if():
    """snnTorch's importer turns a NIR IF into ``Leaky(beta=0.9)`` with the default subtractive
    reset (an IF has no leak and NIR resets to v_reset), and asserts r == 1, which rules out any
    step other than 1 (NIR IF: v += dt*r*x, so r = 1/dt)."""
    rng = np.random.default_rng(13)
    g = _snnsim_mlp(rng)  # s2: dspike_lif with leak 1 -> NIR IF
    with pytest.raises(AssertionError, match="r != 1 not supported"):
        _snntorch_import(to_nir(g, dt=SNNTORCH_DT))
    m = _snntorch_import(to_nir(g))  # dt=1: r = 1
    assert float(m.s2.beta) == pytest.approx(0.9) and m.s2.reset_mechanism == "subtract"
    x = _frames(rng, (2, 4, 4))
    ours = _run(g, x, ["s2"])
    peer = _snntorch_run_imported(m, x, ["s1", "s2"])
    assert not np.array_equal(peer["s2"], ours["s2"])


def test_snntorch_import_of_dsr_neurons_sees_plain_nir():
    """snnsim's DSR neurons (fire at >= alpha*theta, subtract theta) travel as NIR IF/LIF with
    v_reset = 0 plus snnsim metadata; a peer reads only the native fields, i.e. a hard-reset,
    strict '>' neuron at the firing level. snnTorch's forward of the file == snnsim's own
    reading of it without the metadata, and != the DSR network."""
    rng = np.random.default_rng(14)
    g = snnsim.Graph(input_shape=(2, 4, 4), input_kind="events")
    g.flatten("f", "input")
    g.linear("fc1", "f", _dyadic(rng, (16, 32), 8), _dyadic(rng, 16, 16))
    g.dsr_lif("s1", "fc1", theta=1.0, fire=0.5, leak=0.75, gain=1.0)
    g.linear("fc2", "s1", _dyadic(rng, (4, 16), 4), _dyadic(rng, 4, 16))
    g.dsr_lif("s2", "fc2", theta=0.5, fire=0.25, leak=0.5, gain=1.0)
    g.set_output("s2")
    x = _frames(rng, (2, 4, 4))
    ng = to_nir(g, dt=SNNTORCH_DT)
    peer = _snntorch_run_imported(_snntorch_import(ng), x, ["s1", "s2"])
    plain = from_nir(_strip(to_nir(g, dt=SNNTORCH_DT)), dt=SNNTORCH_DT, input_kind="events")
    assert [n.op for n in plain.nodes] == [
        "flatten",
        "linear",
        "dspike_lif",
        "linear",
        "dspike_lif",
    ]
    pairs = [("s1", "s1"), ("s2", "s2")]
    _assert_same(peer, _run(plain, x, ["s1", "s2"]), pairs)
    assert not _same(peer, _run(g, x, ["s1", "s2"]), pairs)


# ====================================================================== SpikingJelly
def _sj():
    import spikingjelly  # noqa: F401 - the peer under test (pinned in the test extra)
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir, import_from_nir

    return functional, neuron, export_to_nir, import_from_nir


def _sj_net(rng: np.random.Generator, v_reset: float | None = 0.0):
    _, neuron, _, _ = _sj()
    conv = torch.nn.Conv2d(2, 4, 3, padding=1)
    conv.weight.data = torch.tensor(_dyadic(rng, (4, 2, 3, 3), 8))
    conv.bias.data = torch.tensor(_dyadic(rng, 4, 16))
    lin = torch.nn.Linear(16, 5)
    lin.weight.data = torch.tensor(_dyadic(rng, (5, 16), 4))
    lin.bias.data = torch.tensor(_dyadic(rng, 5, 16))
    return torch.nn.Sequential(
        conv,
        neuron.IFNode(v_threshold=1.0, v_reset=v_reset),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        lin,
        neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=v_reset),
    )


def test_spikingjelly_export_is_identical_up_to_the_comparison():
    """SpikingJelly IFNode/LIFNode (hard reset to 0) -> NIR IF(r = 1/dt) / LIF(tau = tau*dt, r = 1,
    v_leak = v_reset) -> snnsim dspike_lif (LIF: scale 1/tau, leak 1 - 1/tau). SpikingJelly fires
    when v >= v_threshold, NIR (and snnsim's import) when v > v_threshold: the spikes are identical
    once the firing level is lowered by one float32 ulp (U > nextafter(f, -inf) <=> U >= f), and
    differ without it (membranes hit the threshold exactly)."""
    functional, _, export_to_nir, _ = _sj()
    rng = np.random.default_rng(20)
    net = _sj_net(rng)
    x = _frames(rng, (2, 4, 4))
    ng = export_to_nir(net, torch.zeros(B, 2, 4, 4), dt=SJ_DT)
    kinds = [type(ng.nodes[k]).__name__ for k in ng.nodes]
    assert kinds == ["Input", "Conv2d", "IF", "AvgPool2d", "Flatten", "Affine", "LIF", "Output"]
    functional.reset_net(net)
    peer = _hooked_forward(net, {"if": net[1], "lif": net[5]}, lambda t: net(torch.tensor(x[:, t])))

    g = from_nir(ng, dt=SJ_DT, input_kind="events")
    names = _neuron_names(g)
    assert [n.op for n in g.nodes] == [
        "conv2d",
        "dspike_lif",
        "avgpool2d",
        "flatten",
        "linear",
        "scale",
        "dspike_lif",
    ]
    pairs = list(zip(["if", "lif"], names, strict=True))
    assert not _same(peer, _run(g, x, names), pairs)
    _assert_same(peer, _run(_shift_fire(g, -np.inf), x, names), pairs)


def test_spikingjelly_export_rejects_soft_reset_and_snnsim_rejects_nonzero_reset():
    """SpikingJelly's soft reset (v_reset=None, subtract the threshold) has no NIR field: its
    exporter refuses it. A hard reset to a nonzero v_reset is exported, and snnsim's importer
    refuses it (its hard-reset neuron resets to 0), naming the node."""
    _, _, export_to_nir, _ = _sj()
    with pytest.raises(NotImplementedError, match="NIR does not distinguish soft reset"):
        export_to_nir(_sj_net(np.random.default_rng(21), v_reset=None), torch.zeros(1, 2, 4, 4))
    ng = export_to_nir(_sj_net(np.random.default_rng(21), v_reset=-0.25), torch.zeros(1, 2, 4, 4))
    with pytest.raises(snnsim.ModelError, match=r"NIR node '_1' \(IF\): v_reset != 0"):
        from_nir(ng, dt=SJ_DT)


def _sj_run_imported(m, x, names):
    state = None
    rec: dict[str, list[np.ndarray]] = {k: [] for k in names}
    hooks = [
        getattr(m, k).register_forward_hook(
            lambda _m, _a, o, k=k: rec[k].append(o[0].detach().numpy().copy())
        )
        for k in names
    ]
    try:
        with torch.no_grad():
            for t in range(T):
                _, state = m(torch.tensor(x[:, t]), state)
    finally:
        for h in hooks:
            h.remove()
    return {k: np.stack(v, axis=1).astype(np.float32) for k, v in rec.items()}


def test_spikingjelly_import_of_snnsim_is_identical_up_to_the_comparison():
    """snnsim dspike_lif -> to_nir(dt=1e-4) -> SpikingJelly LIFNode(tau = tau_nir/dt,
    decay_input=False since r = tau/dt) and IFNode (r = 1/dt). SpikingJelly compares with '>=':
    it reproduces snnsim's spikes exactly when the exported firing levels are raised by one
    float32 ulp, and differs at the exact-threshold hits otherwise."""
    _, _, _, import_from_nir = _sj()
    rng = np.random.default_rng(22)
    g = _snnsim_mlp(rng)
    x = _frames(rng, (2, 4, 4))
    ours = _run(g, x, ["s1", "s2"])
    pairs = [("s1", "s1"), ("s2", "s2")]
    m = import_from_nir(to_nir(g, dt=SJ_DT), dt=SJ_DT)
    assert m.s1.module.decay_input is False and m.s1.module.tau == pytest.approx(4.0)
    assert not _same(_sj_run_imported(m, x, ["s1", "s2"]), ours, pairs)
    up = _shift_fire(_snnsim_mlp(np.random.default_rng(22)), np.inf)
    m = import_from_nir(to_nir(up, dt=SJ_DT), dt=SJ_DT)
    _assert_same(_sj_run_imported(m, x, ["s1", "s2"]), ours, pairs)


def test_spikingjelly_import_needs_uniform_parameters_and_matching_dt():
    """SpikingJelly neurons have one scalar tau/threshold per layer: snnsim's per-channel leaks are
    refused; and a file written for another step is refused."""
    _, _, _, import_from_nir = _sj()
    g = _snnsim_mlp(np.random.default_rng(23), per_channel=True)
    with pytest.raises(ValueError, match="nir.LIF.tau must be uniform across all neurons"):
        import_from_nir(to_nir(g, dt=SJ_DT), dt=SJ_DT)
    # written with dt=1 (tau = 4 steps, r = 4), read with 1e-4: tau/dt = 40000, r matches neither
    with pytest.raises(ValueError, match=r"nir.LIF.r must equal 1 or tau / dt"):
        import_from_nir(to_nir(_snnsim_mlp(np.random.default_rng(23))), dt=SJ_DT)


# ====================================================================== Norse
def _norse():
    import norse.torch as nt
    from norse.torch.utils.export_nir import to_nir as norse_to_nir
    from norse.torch.utils.import_nir import from_nir as norse_from_nir

    return nt, norse_to_nir, norse_from_nir


def _norse_net(rng: np.random.Generator, tau_mem_inv: float, second: str, dt: float):
    """Linear(6, 8) -> LIFBoxCell -> Linear(8, 3) -> IAFCell or LIFBoxCell, cells stepping by
    ``dt`` (a cell argument, separate from the exporter's: the two must be given the same value).
    Norse's exporter needs every neuron parameter as a full vector (v_leak, v_reset too), else
    nir's shape check fails."""
    nt, _, _ = _norse()
    lin1 = torch.nn.Linear(6, 8)
    lin1.weight.data = torch.tensor(_dyadic(rng, (8, 6), 8))
    lin1.bias.data = torch.tensor(_dyadic(rng, 8, 16))
    lin2 = torch.nn.Linear(8, 3)
    lin2.weight.data = torch.tensor(_dyadic(rng, (3, 8), 4))
    lin2.bias.data = torch.tensor(_dyadic(rng, 3, 16))

    def lif(n, th):
        return nt.LIFBoxCell(
            nt.LIFBoxParameters(
                tau_mem_inv=torch.full((n,), tau_mem_inv),
                v_th=torch.full((n,), th),
                v_leak=torch.zeros(n),
                v_reset=torch.zeros(n),
            ),
            dt=dt,
        )

    out = (
        nt.IAFCell(nt.IAFParameters(v_th=torch.full((3,), 0.5), v_reset=torch.zeros(3)), dt=dt)
        if second == "if"
        else lif(3, 0.5)
    )
    return nt.SequentialState(lin1, lif(8, 1.0), lin2, out)


def _norse_forward(net, x: np.ndarray) -> dict[str, np.ndarray]:
    """Static input: the same x [B, 6] at every step."""
    state = None
    rec: dict[str, list[np.ndarray]] = {"1": [], "3": []}
    hooks = [
        net[int(k)].register_forward_hook(
            lambda _m, _a, o, k=k: rec[k].append(o[0].detach().numpy().copy())
        )
        for k in rec
    ]
    try:
        with torch.no_grad():
            for _ in range(T):
                _, state = net(torch.tensor(x), state)
    finally:
        for h in hooks:
            h.remove()
    return {k: np.stack(v, axis=1).astype(np.float32) for k, v in rec.items()}


def test_norse_export_with_unit_step_is_identical():
    """Norse LIFBoxCell/IAFCell with dt=1 -> NIR LIF(tau = dt/tau_mem_inv, r = 1) / IF(r = 1) ->
    snnsim (scale dt/tau, leak 1 - dt/tau; IF unscaled): identical spikes (all compare with '>'
    and reset to 0). Norse's file has a batch dimension on its Input ([1, 6]): snnsim drops it."""
    _, norse_to_nir, _ = _norse()
    rng = np.random.default_rng(30)
    net = _norse_net(rng, tau_mem_inv=0.5, second="if", dt=1.0)
    x = _dyadic(rng, (B, 6), 4)
    with torch.no_grad():
        ng = norse_to_nir(net, torch.zeros(1, 6), dt=1.0)
    assert list(np.asarray(ng.nodes["input"].input_type["input"])) == [1, 6]
    peer = _norse_forward(net, x)
    g = from_nir(ng, dt=1.0)
    assert g.input_shape == (6,)
    assert [n.op for n in g.nodes] == ["linear", "scale", "dspike_lif", "linear", "dspike_lif"]
    pairs = [("1", "1"), ("3", "3")]
    _assert_same(peer, _run(g, x, ["1", "3"]), pairs)
    assert not _same(peer, _run(_shift_fire(g, -np.inf), x, ["1", "3"]), pairs)  # '>' matters here


def test_norse_export_with_default_step_writes_tau_times_dt():
    """With Norse's default dt=1e-3 its exporter writes tau = dt/tau_mem_inv, i.e. tau*dt rather
    than tau (2e-6 s for tau = 2 ms), and IF with r = 1 whatever dt (Norse's IAF adds its input
    unscaled). A NIR reader reproduces Norse's LIF only with the step dt**2 (1e-6): then the
    spikes are identical here (up to float32 rounding of tau, see below); with dt = 1e-3 it
    reads leak = 1 - 1e-3/2e-6 < 0 (another network). A file mixing LIF and IF therefore has no
    step that reproduces Norse unless dt = 1."""
    _, norse_to_nir, _ = _norse()
    rng = np.random.default_rng(31)
    dt = 1e-3
    net = _norse_net(rng, tau_mem_inv=500.0, second="lif", dt=dt)  # 1 - dt*500 = 0.5 per step
    x = _dyadic(rng, (B, 6), 4)
    with torch.no_grad():
        ng = norse_to_nir(net, torch.zeros(1, 6), dt=dt)
    # Norse leaves torch tensors (not numpy arrays) in the NIR nodes; snnsim reads either
    tau, r = np.asarray(ng.nodes["1"].tau), np.asarray(ng.nodes["1"].r)
    assert np.allclose(tau, dt / 500.0) and np.all(r == 1)
    peer = _norse_forward(net, x)
    pairs = [("1", "1"), ("3", "3")]
    g = from_nir(ng, dt=dt * dt)
    # float32(2e-6) is not exact: the leak read back is 0.5 + 1 ulp (Norse steps with exactly 0.5);
    # no membrane of this network sits within that ulp of a threshold, so the spikes agree
    assert np.all(g.node("1").tensors["leak"] == np.nextafter(np.float32(0.5), np.float32(1)))
    _assert_same(peer, _run(g, x, ["1", "3"]), pairs)
    assert np.all(from_nir(ng, dt=dt).node("1").tensors["leak"] < 0)


def test_norse_export_of_leaky_integrator_readout_is_identical():
    """Norse LIBoxCell (dt=1) -> NIR LI(tau = dt/tau_mem_inv, r = 1, v_leak) -> snnsim: a leaky
    integrate (leak 1 - dt/tau) after scale(dt/tau, shift dt*v_leak/tau). Norse's membrane
    ``v += dt*tau_mem_inv*((v_leak - v) + x)`` is its output; snnsim's output is V[T]/T. Norse
    starts the membrane at v_leak, snnsim (and NIR's reading here) at 0: the two differ by
    exactly leak**T * v_leak, i.e. they are equal for every T where v_leak = 0. Norse reads no
    NIR LI (it only writes it): its importer drops the node without a word."""
    nt, norse_to_nir, norse_from_nir = _norse()
    rng = np.random.default_rng(33)
    net = _norse_net(rng, tau_mem_inv=0.5, second="if", dt=1.0)
    net[3] = nt.LIBoxCell(
        nt.LIBoxParameters(
            tau_mem_inv=torch.tensor([0.5, 0.25, 0.5]), v_leak=torch.tensor([0.0, 0.25, -0.5])
        ),
        dt=1.0,
    )
    x = _dyadic(rng, (B, 6), 4)
    with torch.no_grad():
        ng = norse_to_nir(net, torch.zeros(1, 6), dt=1.0)
    assert isinstance(ng.nodes["3"], nir.LI)
    g = from_nir(ng, dt=1.0)
    assert [n.op for n in g.nodes] == [
        "linear",
        "scale",
        "dspike_lif",
        "linear",
        "scale",
        "integrate",
    ]
    assert np.array_equal(g.node("3").tensors["leak"], np.array([0.5, 0.75, 0.5], np.float32))
    peer = _norse_forward(net, x)  # "1": LIF spikes, "3": LI membrane, [B, T, n]
    assert np.abs(peer["3"]).max() > 0.5 and peer["1"].sum() > 0
    leak, v_leak = np.array([0.5, 0.75, 0.5]), np.array([0.0, 0.25, -0.5])
    for t in range(1, T + 1):
        offset = leak**t * v_leak  # Norse's initial v_leak, decayed (exact: dyadic)
        for mode in MODES:
            res = snnsim.run(g, x, steps=t, mode=mode, record=["1"])
            assert np.array_equal(res.record["1"], peer["1"][:, :t]), (mode, t)
            assert np.array_equal(
                res.output, (peer["3"][:, t - 1].astype(np.float64) - offset) / t
            ), (mode, t)
            assert np.array_equal(
                res.output[:, 0], peer["3"][:, t - 1, 0].astype(np.float64) / t
            ), (mode, t)
            assert not np.array_equal(
                res.output[:, 1:], peer["3"][:, t - 1, 1:].astype(np.float64) / t
            )

    h = snnsim.Graph(input_shape=(3,))
    h.linear("fc", "input", np.eye(3))
    h.integrate("out", "fc", leak=0.5)
    h.set_output("out")
    assert "out" not in dict(norse_from_nir(to_nir(h), dt=1.0).named_children())


def _norse_run_imported(m, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """nirtorch's executor keeps every node's latest output in ``state.cache``."""
    state = None
    rec: dict[str, list[np.ndarray]] = {k: [] for k in names}
    with torch.no_grad():
        for _ in range(T):
            _, state = m(torch.tensor(x), state)
            for k in names:
                rec[k].append(state.cache[k].detach().numpy().copy())
    return {k: np.stack(v, axis=1).astype(np.float32) for k, v in rec.items()}


def _snnsim_static_mlp(rng: np.random.Generator) -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(6,))
    g.linear("fc1", "input", _dyadic(rng, (8, 6), 8), _dyadic(rng, 8, 16))
    g.dspike_lif("s1", "fc1", fire=0.5, leak=0.75)
    g.linear("fc2", "s1", _dyadic(rng, (3, 8), 4), _dyadic(rng, 3, 16))
    g.dspike_lif("s2", "fc2", fire=0.5, leak=1.0)  # NIR IF
    g.set_output("s2")
    return g


def test_norse_import_ignores_r():
    """snnsim -> to_nir (dt=1) -> Norse from_nir(dt=1): Norse's LIFBoxCell integrates
    dt/tau*(x + v_leak - v) and ignores NIR's r (it logs a warning), so snnsim's LIF export
    (r = tau: v <- leak*v + x) runs in Norse with its input scaled by 1/tau. Precisely: Norse's
    spikes == snnsim's reading of the same file with r set to 1, != snnsim's network. The IF
    (r = 1) is identical."""
    _, _, norse_from_nir = _norse()
    rng = np.random.default_rng(32)
    g = _snnsim_static_mlp(rng)
    x = _dyadic(rng, (B, 6), 2)
    ours = _run(g, x, ["s1", "s2"])
    logging.disable(logging.WARNING)
    try:
        m = norse_from_nir(to_nir(g), dt=1.0)
    finally:
        logging.disable(logging.NOTSET)
    peer = _norse_run_imported(m, x, ["s1", "s2"])
    assert not np.array_equal(peer["s1"], ours["s1"])

    ng = _strip(to_nir(g))
    ng.nodes["s1"].r = np.ones_like(ng.nodes["s1"].r)
    as_norse = from_nir(ng, dt=1.0)  # scale 1/4, leak 3/4
    _assert_same(peer, _run(as_norse, x, ["s1", "s2"]), [("s1", "s1"), ("s2", "s2")])

    # without a LIF layer (IF only) Norse and snnsim agree on the exported network itself
    h = snnsim.Graph(input_shape=(6,))
    h.linear("fc", "input", _dyadic(rng, (5, 6), 8), _dyadic(rng, 5, 16))
    h.dspike_lif("s", "fc", fire=0.5, leak=1.0)
    h.set_output("s")
    _assert_same(
        _norse_run_imported(norse_from_nir(to_nir(h), dt=1.0), x, ["s"]),
        _run(h, x, ["s"]),
        [("s", "s")],
    )
