"""The torch reference executor (snnsim.reference): counting rules on hand-computed graphs,
output/prediction/record rules, input validation, overflow errors, and a spike-for-spike,
count-for-count comparison with an independent numpy implementation of docs/model-format.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnsim
from snnsim.errors import InputError, ModelError, SnnsimError
from snnsim.graph import Graph
from snnsim.reference import (
    COUNT_KEYS,
    ReferenceNetwork,
    axis_fanout,
    dense_macs,
    fanout_map,
    run_reference,
    value_kinds,
)

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return request.param


def idx(g: Graph, name: str) -> int:
    return g.node_names.index(name)


def check_result_structure(r: dict, g: Graph, b: int, t: int) -> None:
    n_out = int(np.prod(g.shapes()[g.output]))
    assert set(r) == {"output", "output_sum", "prediction", "counts", "record"}
    assert r["output"].dtype == np.float64 and r["output"].shape == (b, n_out)
    assert r["output_sum"].dtype == np.float64 and r["output_sum"].shape == (b, n_out)
    assert r["prediction"].dtype == np.int64 and r["prediction"].shape == (b,)
    assert set(r["counts"]) == set(COUNT_KEYS)
    for v in r["counts"].values():
        assert v.dtype == np.uint64 and v.shape == (b, len(g.nodes), t)


# ---------------------------------------------------------------------- hand-computed counts
def mlp(precision: str = "float32") -> Graph:
    """input [4] static -> fc1 (identity, 4x4) -> sn1 (IF) -> fc2 (3x4) -> out (integrate)."""
    g = Graph(
        input_shape=(4,), precision=precision, input_scale=1.0 if precision == "int" else None
    )
    eye = np.eye(4, dtype=np.int8 if precision == "int" else np.float32)
    g.linear("fc1", "input", eye)
    if precision == "int":
        g.dsr_if("sn1", "fc1", theta=4, fire=2)
    else:
        g.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    w2 = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]])
    g.linear("fc2", "sn1", w2.astype(np.int8 if precision == "int" else np.float32))
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


@pytest.mark.parametrize("precision", ["float32", "int"])
def test_linear_after_neuron_counts(device, precision):
    g = mlp(precision)
    if precision == "int":
        x = np.array([[0, 1, 2, 4], [4, 4, -3, 1]], dtype=np.int32)  # theta 4, fire 2
    else:
        x = np.array([[0.0, 0.25, 0.5, 1.0], [1.0, 1.0, -0.75, 0.25]], dtype=np.float32)
    t = 5
    r = run_reference(g, static=x, steps=t, record=["sn1"], device=device)
    check_result_structure(r, g, 2, t)
    spikes = r["record"]["sn1"]
    assert spikes.dtype == np.uint8 and spikes.shape == (2, t, 4)
    c = r["counts"]
    nnz = spikes.reshape(2, t, -1).sum(2)
    # static first layer: 4*4 MACs at step 0 only
    assert c["macs"][:, idx(g, "fc1")].tolist() == [[16, 0, 0, 0, 0]] * 2
    assert c["sops"][:, idx(g, "fc1")].sum() == 0
    # linear after a neuron: sops = nnz * out_features, no macs
    np.testing.assert_array_equal(c["sops"][:, idx(g, "fc2")], nnz * 3)
    assert c["macs"][:, idx(g, "fc2")].sum() == 0
    np.testing.assert_array_equal(c["spikes"][:, idx(g, "sn1")], nnz)
    assert (c["state_updates"][:, idx(g, "sn1")] == 4).all() and (
        c["state_updates"][:, idx(g, "out")] == 3
    ).all()
    assert (c["state_updates"][:, idx(g, "fc1")] == 0).all() and c["aux_ops"].sum() == 0
    assert c["spikes"][:, idx(g, "out")].sum() == 0
    # hand-checked spike trains (rate = round-half-up(x/theta * N) for the IF law, alpha = 1/2)
    assert spikes[0].sum(0).tolist() == [0, 1, 3, 5]
    assert spikes[1].sum(0).tolist() == [5, 5, 0, 1]
    # output: integrate membrane / T; prediction = first argmax
    counts = spikes.sum(1).astype(np.float64)
    w2 = g.node("fc2").tensors["weight"].astype(np.float64)
    np.testing.assert_array_equal(r["output_sum"], counts @ w2.T)
    np.testing.assert_array_equal(r["output"], counts @ w2.T / t)
    assert r["prediction"].tolist() == [2, 2]
    assert dense_macs(g).tolist() == [16, 0, 12, 0] and dense_macs(g).dtype == np.uint64


def test_conv_border_fanout_sops(device):
    g = Graph(input_shape=(1, 3, 3), input_kind="events")
    g.conv2d("c", "input", np.ones((2, 1, 3, 3), np.float32), padding=1)
    g.dsr_if("s", "c", theta=1.0, fire=1.0)
    g.set_output("s")
    frames = np.zeros((1, 3, 1, 3, 3), np.float32)
    frames[0, 0, 0, 0, 0] = 1  # corner: 2 x 2 windows x 2 channels = 8
    frames[0, 1, 0, 1, 1] = 3  # centre: 3 x 3 x 2 = 18 (a count of 3 is one nonzero element)
    frames[0, 2, 0, 0, 1] = 1  # edge: 2 x 3 x 2 = 12
    frames[0, 2, 0, 2, 2] = 1  # corner: 8
    r = run_reference(g, frames=frames, device=device)
    assert r["counts"]["sops"][0, 0].tolist() == [8, 18, 20]
    assert r["counts"]["macs"].sum() == 0
    assert dense_macs(g).tolist() == [2 * 7 * 7, 0]  # out_channels * (2 + 3 + 2)^2


def test_conv_stride_fanout_uncovered_border(device):
    # 4x4 input, 3x3 kernel, stride 2, no padding: one window covering rows/cols 0..2
    g = Graph(input_shape=(1, 4, 4), input_kind="events")
    g.conv2d("c", "input", np.ones((3, 1, 3, 3), np.float32), stride=2)
    g.dsr_if("s", "c", theta=1.0, fire=1.0)
    g.set_output("s")
    frames = np.zeros((1, 2, 1, 4, 4), np.float32)
    frames[0, 0, 0, 3, :] = 1  # last row: not in any window
    frames[0, 1, 0, 2, 2] = 1  # in the only window: fan-out 3 channels
    r = run_reference(g, frames=frames, device=device)
    assert r["counts"]["sops"][0, 0].tolist() == [0, 3]


def brute_fanout(h, w, kh, kw, sh, sw, ph, pw):
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    fan = np.zeros((h, w), np.int64)
    for oy in range(ho):
        for ox in range(wo):
            for dy in range(kh):
                for dx in range(kw):
                    y, x = oy * sh - ph + dy, ox * sw - pw + dx
                    if 0 <= y < h and 0 <= x < w:
                        fan[y, x] += 1
    return fan


@pytest.mark.parametrize("seed", range(20))
def test_fanout_map_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 9, size=2)
    kh, kw = rng.integers(1, 5, size=2)
    sh, sw = rng.integers(1, 4, size=2)
    ph, pw = rng.integers(0, 3, size=2)
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    g = Graph(input_shape=(2, int(h), int(w)))
    g.conv2d(
        "c",
        "input",
        np.ones((3, 2, kh, kw), np.float32),
        stride=(int(sh), int(sw)),
        padding=(int(ph), int(pw)),
    )
    fm = fanout_map(g.node("c"), (2, int(h), int(w)))
    np.testing.assert_array_equal(fm, 3 * brute_fanout(h, w, kh, kw, sh, sw, ph, pw))
    assert (
        axis_fanout(int(h), int(kh), int(sh), int(ph)).sum()
        == brute_fanout(h, 1, kh, 1, sh, 1, ph, 0).sum()
    )


def test_pool_add_scale_counts_and_kinds(device):
    g = Graph(input_shape=(1, 4, 4), input_kind="events")
    g.sumpool2d("sp", "input", 2, stride=1)  # 3x3 windows of 2x2
    g.avgpool2d("ap", "input", 2)
    g.add("ad", "ap", "ap")
    g.scale("z", "ad", scale=np.array([2.0], np.float32))  # zero shift: sparse
    g.scale(
        "d", "ad", scale=np.array([2.0], np.float32), shift=np.array([0.5], np.float32)
    )  # dense
    g.add("mix", "z", "d")
    g.integrate("out", "sp")
    g.integrate("o2", "mix")
    g.set_output("out")
    kinds = value_kinds(g, "sparse")
    assert [kinds[n] for n in ("sp", "ap", "ad", "z", "d", "mix", "out")] == [
        "sparse",
        "sparse",
        "sparse",
        "sparse",
        "dense",
        "dense",
        "dense",
    ]
    frames = np.zeros((1, 2, 1, 4, 4), np.float32)
    frames[0, 0, 0, 0, 0] = 1  # corner: in 1 sumpool window, 1 avgpool window
    frames[0, 0, 0, 1, 1] = 2  # in 4 sumpool windows, 1 avgpool window
    frames[0, 1, 0, 3, 2] = 1  # bottom edge: 2 sumpool windows
    r = run_reference(g, frames=frames, device=device)
    aux = r["counts"]["aux_ops"][0]
    assert aux[idx(g, "sp")].tolist() == [5, 2]
    assert aux[idx(g, "ap")].tolist() == [2, 1]
    # ap has 1 nonzero window at both steps; add counts processed elements of each input
    assert aux[idx(g, "ad")].tolist() == [2, 2]
    assert aux[idx(g, "z")].tolist() == [1, 1] and aux[idx(g, "d")].tolist() == [1, 1]
    assert aux[idx(g, "mix")].tolist() == [1 + 4, 1 + 4]  # sparse z: nnz; dense d: all 4
    # integrate output: V[T] / T; sumpool values: step 0 window (0,0) = 1 + 2 = 3
    out_sum = r["output_sum"][0].reshape(3, 3)
    assert out_sum[0, 0] == 3 and out_sum[2, 1] == 1 and out_sum[2, 2] == 1 and out_sum[1, 1] == 2
    np.testing.assert_array_equal(r["output"], r["output_sum"] / 2)


def test_static_add_mixed_counts(device):
    g = Graph(input_shape=(3,))
    g.scale("sc", "input", scale=np.array([1.0, 1.0, 1.0], np.float32))  # static
    g.dsr_if("n", "input", theta=0.5, fire=0.5)
    g.add("mix", "sc", "n")  # static + sparse -> dense
    g.linear("fc", "mix", np.ones((2, 3), np.float32))
    g.dsr_if("o", "fc", theta=1.0, fire=1.0)
    g.set_output("o")
    k = value_kinds(g, "static")
    assert (k["sc"], k["n"], k["mix"], k["fc"]) == ("static", "sparse", "dense", "dense")
    x = np.array([[0.5, 0.0, 0.0]], np.float32)  # n spikes every step at element 0 only
    r = run_reference(g, static=x, steps=3, device=device)
    aux = r["counts"]["aux_ops"][0]
    assert aux[idx(g, "sc")].tolist() == [3, 0, 0]
    assert aux[idx(g, "mix")].tolist() == [3 + 1, 1, 1]
    assert r["counts"]["macs"][0, idx(g, "fc")].tolist() == [6, 6, 6]
    assert r["counts"]["sops"][0].sum() == 0


def test_flatten_keeps_static_kind(device):
    g = Graph(input_shape=(1, 2, 2))
    g.flatten("fl", "input")
    g.linear("fc", "fl", np.ones((3, 4), np.float32))
    g.dsr_if("s", "fc", theta=1.0, fire=1.0)
    g.set_output("s")
    assert value_kinds(g)["fl"] == "static" and value_kinds(g)["fc"] == "static"
    r = run_reference(g, static=np.ones((2, 1, 2, 2), np.float32), steps=4, device=device)
    assert r["counts"]["macs"][:, idx(g, "fc")].tolist() == [[12, 0, 0, 0]] * 2


# ---------------------------------------------------------------------- output, prediction, record
def test_output_neuron_rate_and_first_argmax_on_ties(device):
    g = Graph(input_shape=(2,))
    g.linear("fc", "input", np.array([[1, 0], [0, 1], [1, 0], [0, 0]], np.float32))
    g.dsr_if("s", "fc", theta=1.0, fire=1.0)
    g.set_output("s")
    x = np.array([[0.5, 0.25], [0.25, 0.5], [0.0, 0.0]], np.float32)
    r = run_reference(g, static=x, steps=4, device=device)
    assert r["output_sum"].tolist() == [[2, 1, 2, 0], [1, 2, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(r["output"], r["output_sum"] / 4)
    assert r["prediction"].tolist() == [0, 1, 0]  # ties resolved by the first index


def test_record_shapes_and_errors(device):
    g = Graph(input_shape=(2, 5, 5), input_kind="events")
    g.conv2d("c", "input", np.ones((3, 2, 3, 3), np.float32) * 0.25)
    g.dspike_lif(
        "s", "c", fire=np.array([0.5, 1.0, 2.0], np.float32), leak=np.array([0.5], np.float32)
    )
    g.flatten("fl", "s")
    g.linear("fc", "fl", np.ones((4, 27), np.float32))
    g.dsr_lif("o", "fc", theta=1.0, fire=0.5, leak=0.5, gain=0.5)
    g.set_output("o")
    frames = (np.random.default_rng(0).random((2, 6, 2, 5, 5)) < 0.3).astype(np.int32)
    r = run_reference(g, frames=frames, record=["s", "o", "s"], device=device)
    check_result_structure(r, g, 2, 6)
    assert set(r["record"]) == {"s", "o"}
    assert r["record"]["s"].shape == (2, 6, 3, 3, 3) and r["record"]["s"].dtype == np.uint8
    assert r["record"]["o"].shape == (2, 6, 4)
    np.testing.assert_array_equal(r["record"]["o"].sum(1), r["output_sum"])
    np.testing.assert_array_equal(
        r["counts"]["spikes"][:, idx(g, "s")], r["record"]["s"].reshape(2, 6, -1).sum(2)
    )
    with pytest.raises(InputError, match="'nope'"):
        run_reference(g, frames=frames, record=["nope"])
    with pytest.raises(InputError, match="'fc'"):
        run_reference(g, frames=frames, record=["fc"])


def test_integrate_not_recordable():
    g = mlp()
    with pytest.raises(InputError, match="'out'"):
        run_reference(g, static=np.zeros((1, 4), np.float32), steps=2, record=["out"])


def test_input_validation():
    g = mlp()
    x = np.zeros((1, 4), np.float32)
    with pytest.raises(InputError):
        run_reference(g, static=x)  # no steps
    with pytest.raises(InputError):
        run_reference(g, static=x, frames=x[:, None], steps=1)
    with pytest.raises(InputError):
        run_reference(g)
    with pytest.raises(InputError):
        run_reference(g, static=np.zeros((1, 5), np.float32), steps=2)
    with pytest.raises(InputError):
        run_reference(g, frames=np.zeros((1, 3, 4), np.float32), steps=2)
    with pytest.raises(InputError):
        run_reference(g, static=np.full((1, 4), np.nan, np.float32), steps=2)
    gi = mlp("int")
    with pytest.raises(InputError):
        run_reference(gi, static=np.zeros((1, 4), np.float32), steps=2)
    with pytest.raises(InputError):
        run_reference(gi, static=np.full((1, 4), 128, np.int32), steps=2)
    bad = mlp()
    bad.node("sn1").tensors["theta"] = np.array([-1.0], np.float32)
    with pytest.raises(ModelError):
        run_reference(bad, static=x, steps=1)


def test_frames_give_steps_and_int_counts_frames(device):
    g = mlp("int")
    frames = np.zeros((1, 3, 4), np.int32)
    frames[0, :, 3] = [5, 0, 5]
    r = run_reference(g, frames=frames, device=device)
    assert r["counts"]["spikes"].shape == (1, 4, 3)
    # frames are per-step (sparse) input: fc1 scatters nonzero elements, counted as sops
    assert r["counts"]["sops"][0, idx(g, "fc1")].tolist() == [4, 0, 4]
    assert r["counts"]["macs"].sum() == 0


# ---------------------------------------------------------------------- int precision specifics
def test_int_avgpool_and_scale_fixed_point(device):
    g = Graph(input_shape=(2, 2, 2), precision="int", input_kind="events")
    g.avgpool2d("ap", "input", 2, m=3, f=2)  # (3*sum + 2) >> 2
    g.scale("sc", "ap", m=np.array([5, -3], np.int32), shift=np.array([1, 0], np.int32), f=1)
    g.integrate("o", "sc")
    g.set_output("o")
    frames = np.array([[[[[1, 2], [0, 0]], [[-1, -2], [0, 0]]]]], np.int32)  # [1, 1, 2, 2, 2]
    r = run_reference(g, frames=frames, device=device)
    # channel 0: sum 3 -> (9 + 2) >> 2 = 2 -> (10 + 1) >> 1 = 5, + 1 = 6
    # channel 1: sum -3 -> (-9 + 2) >> 2 = -2 -> (6 + 1) >> 1 = 3, + 0 = 3
    assert r["output_sum"].tolist() == [[6.0, 3.0]]


def test_int_overflow_names_node_and_step(device):
    g = Graph(input_shape=(2,), precision="int", input_kind="static", input_scale=1.0)
    g.linear("fc", "input", np.array([[1, 1]], np.int16), weight_bits=16)
    g.integrate("acc", "fc")
    g.set_output("acc")
    frames = np.full((1, 3, 2), 2**29, np.int32)  # fc = 2**30 per step; acc overflows at step 1
    with pytest.raises(SnnsimError, match=r"node 'acc' at step 1"):
        run_reference(g, frames=frames, device=device)
    frames = np.full((1, 2, 2), 2**30, np.int32)  # fc = 2**31: overflows at step 0
    with pytest.raises(SnnsimError, match=r"node 'fc' at step 0"):
        run_reference(g, frames=frames, device=device)


def test_int_linear_exact_beyond_float64_single_pass(device):
    """max|x| * sum|w| >= 2**53 forces the split evaluation; the result must stay exact."""
    rng = np.random.default_rng(5)
    k = 1024
    w = rng.integers(-32767, 32768, size=(3, k)).astype(np.int16)
    g = Graph(input_shape=(k,), precision="int", input_kind="static", input_scale=1.0)
    g.linear("fc", "input", w, weight_bits=16)
    g.integrate("o", "fc")
    g.set_output("o")
    # big inputs whose weighted sum nearly cancels: x = 2**30 + small, paired with +w / -w
    w[:, k // 2 :] = -w[:, : k // 2]
    g.node("fc").tensors["weight"] = w
    base = rng.integers(0, 4, size=k // 2)
    x = np.concatenate([2**30 + base, 2**30 + base + rng.integers(0, 2, size=k // 2)]).astype(
        np.int32
    )
    want = w.astype(object) @ x.astype(object)
    r = run_reference(g, frames=x[None, None, :], device=device)
    assert r["output_sum"][0].tolist() == [float(v) for v in want]


# ---------------------------------------------------------------------- independent numpy model
def _fx(m, x, f):
    return (np.asarray(m, np.int64) * np.asarray(x, np.int64) + (1 << (f - 1))) >> f


def _chan(p, ndim):
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _np_conv(x, w, stride, pad):
    b, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    y = np.zeros((b, o, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
            y = y + np.einsum("bchw,oc->bohw", patch, w[:, :, i, j].astype(x.dtype))
    return y


def _np_pool(x, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    b, c, h, wd = x.shape
    ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
    y = np.zeros((b, c, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y = y + x[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw]
    return y


def numpy_model(g: Graph, static=None, frames=None, steps=None):  # noqa: C901 - one oracle, op by op
    """Straight transcription of docs/model-format.md §2-§5 in numpy (int64 or float32)."""
    is_int = g.precision == "int"
    dt = np.int64 if is_int else np.float32
    shapes = g.shapes()
    order = g.topological_order()
    in_kind = "static" if static is not None else "sparse"
    inp = (static if static is not None else frames).astype(dt)
    t_steps = steps if static is not None else frames.shape[1]
    b = inp.shape[0]
    kinds = {"input": in_kind}
    for n in order:
        ks = [kinds[i] for i in n.inputs]
        if n.op in ("dsr_if", "dsr_lif", "dspike_lif"):
            kinds[n.name] = "sparse"
        elif n.op == "integrate":
            kinds[n.name] = "dense"
        elif n.op == "flatten":
            kinds[n.name] = ks[0]
        elif all(k == "static" for k in ks):
            kinds[n.name] = "static"
        elif n.op in ("sumpool2d", "avgpool2d", "add") and all(k == "sparse" for k in ks):
            kinds[n.name] = "sparse"
        elif (
            n.op == "scale"
            and ks[0] == "sparse"
            and ("shift" not in n.tensors or not n.tensors["shift"].any())
        ):
            kinds[n.name] = "sparse"
        else:
            kinds[n.name] = "dense"
    L = len(order)
    counts = {k: np.zeros((b, L, t_steps), np.uint64) for k in COUNT_KEYS}
    mem = {
        n.name: np.zeros((b,) + shapes[n.name], dt)
        for n in order
        if n.op in ("dsr_if", "dsr_lif", "dspike_lif", "integrate")
    }
    rec = {n.name: [] for n in order if n.op in ("dsr_if", "dsr_lif", "dspike_lif")}
    out_acc = np.zeros((b,) + shapes[g.output], np.float64)

    def processed(x, kind, step):
        if kind == "sparse":
            return (x != 0).reshape(b, -1).sum(1)
        return np.full(b, x[0].size if (kind == "dense" or step == 0) else 0)

    def fan_sum(n, x, kind, step):
        if n.op == "linear":
            return processed(x, kind, step) * n.attrs["out_features"]
        a = n.attrs
        pad = a.get("padding", [0, 0]) if n.op == "conv2d" else [0, 0]
        fan = brute_fanout(x.shape[2], x.shape[3], *a["kernel"], *a["stride"], *pad)
        if n.op == "conv2d":
            fan = fan * a["out_channels"]
        if kind == "sparse":
            mask = x != 0
        elif kind == "dense" or step == 0:
            mask = np.ones_like(x, bool)
        else:
            mask = np.zeros_like(x, bool)
        return (mask * fan[None, None]).reshape(b, -1).sum(1)

    for step in range(t_steps):
        vals = {"input": inp if static is not None else inp[:, step]}
        for li, n in enumerate(order):
            ins = [vals[i] for i in n.inputs]
            x, a, T = ins[0], n.attrs, n.tensors
            if n.op == "linear":
                y = x @ T["weight"].astype(dt).T + (T["bias"].astype(dt) if "bias" in T else 0)
            elif n.op == "conv2d":
                y = _np_conv(x, T["weight"], a["stride"], a["padding"])
                if "bias" in T:
                    y = y + T["bias"].astype(dt).reshape(1, -1, 1, 1)
            elif n.op == "sumpool2d":
                y = _np_pool(x, a["kernel"], a["stride"])
            elif n.op == "avgpool2d":
                s = _np_pool(x, a["kernel"], a["stride"])
                y = (
                    _fx(a["m"], s, a["f"])
                    if is_int
                    else s / np.float32(a["kernel"][0] * a["kernel"][1])
                )
            elif n.op == "flatten":
                y = x.reshape(b, -1)
            elif n.op == "add":
                y = ins[0]
                for o in ins[1:]:
                    y = y + o
            elif n.op == "scale":
                if is_int:
                    y = _fx(_chan(T["m"], x.ndim), x, a["f"])
                else:
                    y = x * _chan(T["scale"], x.ndim)
                if "shift" in T:
                    y = y + _chan(T["shift"], x.ndim).astype(dt)
            else:
                v = mem[n.name]
                P = {k: _chan(t_, x.ndim).astype(dt) for k, t_ in T.items()}
                if n.op == "integrate":
                    y = v + x
                    mem[n.name] = y
                elif n.op == "dsr_if":
                    u = v + x
                    s = (u >= P["fire"]).astype(dt)
                    mem[n.name], y = u - P["theta"] * s, s
                elif n.op == "dsr_lif":
                    if is_int:
                        u = _fx(P["leak_m"], v, a["f"]) + _fx(P["gain_m"], x, a["f"])
                    else:
                        u = (P["leak"] * v) + (P["gain"] * x)
                    s = (u >= P["fire"]).astype(dt)
                    mem[n.name], y = u - P["theta"] * s, s
                else:  # dspike_lif
                    u = (_fx(P["leak_m"], v, a["f"]) if is_int else P["leak"] * v) + x
                    s = (u > P["fire"]).astype(dt)
                    mem[n.name], y = np.where(s != 0, 0, u).astype(dt), s
                counts["state_updates"][:, li, step] = int(np.prod(shapes[n.name]))
                if n.op != "integrate":
                    counts["spikes"][:, li, step] = (y != 0).reshape(b, -1).sum(1)
                    rec[n.name].append(y.astype(np.uint8))
            vals[n.name] = y
            ks = [kinds[i] for i in n.inputs]
            if n.op in ("linear", "conv2d"):
                counts["sops" if ks[0] == "sparse" else "macs"][:, li, step] = fan_sum(
                    n, x, ks[0], step
                )
            elif n.op in ("sumpool2d", "avgpool2d"):
                counts["aux_ops"][:, li, step] = fan_sum(n, x, ks[0], step)
            elif n.op == "add":
                counts["aux_ops"][:, li, step] = sum(
                    processed(t_, k, step) for t_, k in zip(ins, ks, strict=True)
                )
            elif n.op == "scale":
                counts["aux_ops"][:, li, step] = processed(x, ks[0], step)
        if g.node(g.output).op != "integrate":
            out_acc += vals[g.output]
    if g.node(g.output).op == "integrate":
        out_acc = mem[g.output].astype(np.float64)
    out_sum = out_acc.reshape(b, -1)
    return {
        "output_sum": out_sum,
        "output": out_sum / t_steps,
        "prediction": np.argmax(out_sum / t_steps, axis=1),
        "counts": counts,
        "record": {k: np.stack(v, 1) for k, v in rec.items()},
    }


def random_net(precision: str, input_kind: str, seed: int, out: str = "out") -> Graph:
    """Every op, a static/sparse/dense mix and a dangling branch. Float values are dyadic and
    small so that float32 sums are exact in any order (spikes comparable bit for bit)."""
    rng = np.random.default_rng(seed)
    is_int = precision == "int"
    g = Graph(
        input_shape=(2, 6, 6),
        precision=precision,
        input_kind=input_kind,
        input_scale=0.01 if (is_int and input_kind == "static") else None,
    )

    def w(*shape, lim=3):
        a = rng.integers(-lim, lim + 1, size=shape)
        return a.astype(np.int8) if is_int else (a / 8).astype(np.float32)

    def pos(lo, hi, size, scale):
        a = rng.integers(lo, hi, size=size)
        return a.astype(np.int32) if is_int else (a / scale).astype(np.float32)

    sc_in = 64 if input_kind == "static" else 1  # typical |input|
    g.conv2d("c1", "input", w(3, 2, 3, 3), pos(-4, 5, 3, 8), padding=1)
    th1 = pos(2, 6, 3, 1) * (sc_in if is_int else 1)
    g.dsr_if("n1", "c1", theta=th1, fire=np.maximum(th1 // 2, 1) if is_int else th1 / 2)
    g.sumpool2d("p1", "n1", 2)
    if is_int:
        g.avgpool2d("p2", "n1", 2, m=3, f=2)
    else:
        g.avgpool2d("p2", "n1", 2)
    g.add("a1", "p1", "p2")
    if is_int:
        g.scale("sc", "a1", m=pos(1, 17, 3, 1), shift=pos(-2, 3, 3, 1), f=3)
    else:
        g.scale("sc", "a1", scale=pos(1, 17, 3, 8), shift=pos(-2, 3, 3, 4))
    g.conv2d("c2", "sc", w(4, 3, 2, 2), stride=1, padding=1)
    th2 = pos(2, 6, 4, 1 if is_int else 4)
    if is_int:
        g.dsr_lif(
            "n2",
            "c2",
            theta=th2,
            fire=np.maximum(th2 // 2, 1),
            leak_m=pos(8, 17, 4, 1),
            gain_m=pos(4, 17, 4, 1),
            f=4,
        )
    else:
        g.dsr_lif(
            "n2",
            "c2",
            theta=th2,
            fire=th2 / 2,
            leak=np.array([0.5], np.float32),
            gain=np.array([0.5], np.float32),
        )
    g.flatten("fl", "n2")
    g.linear("l1", "fl", w(10, 64), pos(-1, 2, 10, 4))
    if is_int:
        g.dspike_lif("n3", "l1", fire=pos(1, 4, 10, 1), leak_m=pos(0, 8, 10, 1), f=3)
    else:
        g.dspike_lif("n3", "l1", fire=pos(1, 4, 10, 2), leak=np.array([0.75], np.float32))
    g.linear("l2", "n3", w(5, 10))
    g.integrate("out", "l2")
    g.dsr_if(
        "n5", "l2", theta=pos(2, 3, 1, 1 if is_int else 4), fire=pos(1, 2, 1, 1 if is_int else 4)
    )
    # dangling branch: static (or sparse) + sparse -> dense
    g.add("mix", "c1", "n1")
    g.scale(
        "sc2", "mix", **({"m": pos(1, 9, 3, 1), "f": 2} if is_int else {"scale": pos(1, 9, 3, 4)})
    )
    g.dsr_if("n4", "sc2", theta=th1, fire=th1)
    g.set_output(out)
    g.validate()
    return g


@pytest.mark.parametrize("precision", ["int", "float32"])
@pytest.mark.parametrize("input_kind", ["static", "events"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_numpy_model(device, precision, input_kind, seed):
    out = "out" if seed != 1 else "n5"
    g = random_net(precision, input_kind, seed, out=out)
    rng = np.random.default_rng(100 + seed)
    b, t = 2, 6
    dt = np.int32 if precision == "int" else np.float32
    neurons = ["n1", "n2", "n3", "n4", "n5"]
    if input_kind == "static":
        x = (
            rng.integers(-128, 128, size=(b, 2, 6, 6))
            if precision == "int"
            else rng.integers(-8, 9, size=(b, 2, 6, 6)) / 4
        )
        x = x.astype(dt)
        r = run_reference(g, static=x, steps=t, record=neurons, device=device)
        want = numpy_model(g, static=x, steps=t)
    else:
        x = (rng.random((b, t, 2, 6, 6)) < 0.3).astype(dt) * rng.integers(
            1, 3, size=(b, t, 2, 6, 6)
        ).astype(dt)
        r = run_reference(g, frames=x, record=neurons, device=device)
        want = numpy_model(g, frames=x)
    check_result_structure(r, g, b, t)
    for k in neurons:
        np.testing.assert_array_equal(r["record"][k], want["record"][k], err_msg=k)
    for k in COUNT_KEYS:
        np.testing.assert_array_equal(r["counts"][k], want["counts"][k], err_msg=k)
    np.testing.assert_array_equal(r["output_sum"], want["output_sum"])
    np.testing.assert_array_equal(r["output"], want["output"])
    np.testing.assert_array_equal(r["prediction"], want["prediction"])
    # the network is not trivially silent
    for k in ("n1", "n2", "n3", "n4"):
        assert r["counts"]["spikes"][:, idx(g, k)].sum() > 0, k
    assert r["counts"]["sops"].sum() > 0


def test_dense_macs_values():
    g = random_net("float32", "static", 0)
    dm = dense_macs(g)
    assert dm.dtype == np.uint64 and dm.shape == (len(g.nodes),)
    assert dm[idx(g, "c1")] == 2 * 3 * brute_fanout(6, 6, 3, 3, 1, 1, 1, 1).sum()
    assert dm[idx(g, "c2")] == 3 * 4 * brute_fanout(3, 3, 2, 2, 1, 1, 1, 1).sum()
    assert dm[idx(g, "l1")] == 640 and dm[idx(g, "l2")] == 50
    assert dm[idx(g, "p1")] == 0 and dm[idx(g, "n1")] == 0


# ---------------------------------------------------------------------- the module API
def test_reference_network_step_api_matches_forward(device):
    g = random_net("int", "events", 3)
    net = ReferenceNetwork(g, device=device)
    frames = (
        (torch.rand(2, 4, 2, 6, 6, generator=torch.Generator().manual_seed(0)) < 0.3)
        .to(torch.int64)
        .to(device)
    )
    trace = net(frames=frames, record=["n2"], count=True)
    assert trace.outputs.shape == (2, 4, 5) and trace.spikes["n2"].shape == (2, 4, 4, 4, 4)
    state = net.init_state("sparse")
    for n in range(4):
        values, counts = net.step(frames[:, n], state, count=True)
        assert torch.equal(values["out"], trace.outputs[:, n])
        assert torch.equal(values["n2"], trace.spikes["n2"][:, n])
        for k in COUNT_KEYS:
            assert torch.equal(counts[k], trace.counts[k][:, :, n])
    assert state.step == 4
    assert trace.output_sum.dtype == torch.float64


def _add_graph(signs, kind="events"):
    """input -> one identity-like int16 linear per sign -> add -> integrate (int, 2 features)."""
    g = Graph(input_shape=(2,), precision="int", input_kind=kind, input_scale=1.0)
    names = []
    for k, s in enumerate(signs):
        names.append(g.linear(f"fc{k}", "input", np.eye(2, dtype=np.int16) * s, weight_bits=16))
    g.add("sum", *names)
    g.integrate("o", "sum")
    g.set_output("o")
    return g


@pytest.mark.parametrize("mode", ["engine", "reference"])
def test_int_add_decides_overflow_on_the_exact_sum(mode):
    """A partial sum may leave int32 if the whole sum fits; two terms beyond it are an error
    naming the add node (the engine sums in int32 with a fallback to the wide sum)."""
    frames = np.full((1, 1, 2), 2**30, np.int32)
    r = snnsim.run(_add_graph([1, 1, -1]), frames, mode=mode)  # 2**30 + 2**30 - 2**30
    assert r.output.tolist() == [[2.0**30, 2.0**30]]
    r = snnsim.run(_add_graph([-1, 1, 1]), frames, mode=mode)
    assert r.output.tolist() == [[2.0**30, 2.0**30]]
    with pytest.raises(SnnsimError, match=r"node 'sum'.* at step 0"):
        snnsim.run(_add_graph([1, 1]), frames, mode=mode)
    with pytest.raises(SnnsimError, match=r"node 'sum'.* at step 0"):
        snnsim.run(_add_graph([-1, -1, -1]), frames, mode=mode)


@pytest.mark.parametrize("mode", ["engine", "reference"])
def test_int_add_of_sparse_and_dense_terms(mode):
    """Events (a sparse term) plus linear outputs (dense terms), over several steps (the
    output is the integrated sum per step)."""
    g = Graph(input_shape=(3,), precision="int", input_kind="events", input_scale=1.0)
    g.linear("fc", "input", np.array([[2, 0, 0], [0, -3, 0], [1, 1, 1]], np.int16), weight_bits=16)
    g.add("sum", "input", "fc")
    g.integrate("o", "sum")
    g.set_output("o")
    frames = np.array([[[1, 0, 2], [0, 5, 0], [7, 7, 7]]], np.int32)  # [B=1, T=3, 3]
    w = np.array([[2, 0, 0], [0, -3, 0], [1, 1, 1]])
    want = sum(f + w @ f for f in frames[0])
    r = snnsim.run(g, frames, mode=mode)
    assert (np.asarray(r.output) * 3).round(9).tolist() == [[float(v) for v in want]]
