"""A trained Dspike CNN exported with ``export_graph`` (tdBN folded, float32) runs in the Rust
engine with the torch model's spikes: per sample, step and layer, spikes are identical except
where the torch membrane lies within FLOAT_TOL of the fire level (the float rule of
tests/engine/test_parity.py); after a sample's first such flip its states legitimately differ
and it is not compared further.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnsim
from _trained import torch_record, train_dspike_mnist
from snnsim.data import load_mnist5k_split
from snnsim.exporter import ExportError, export_graph, neuron_nodes
from snnsim.models import create_model
from snnsim.nn.dspike import AvgPoolTD, ConvTD, DspikeNet, DspikeNeuron, FlattenTD, LinearTD
from snnsim.nn.surrogates import make_surrogate
from snnsim.nn.tdbn import TdBN
from snnsim.testing import FLOAT_TOLERANCE as FLOAT_TOL

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _compare(
    model: DspikeNet, graph: snnsim.Graph, x: torch.Tensor, steps: int | None
) -> dict[str, int]:
    out, spike_list, margin_list, _ = torch_record(model, x)
    names = neuron_nodes(graph)
    assert len(names) == len(spike_list)
    spikes, margins = (
        dict(zip(names, spike_list, strict=True)),
        dict(zip(names, margin_list, strict=True)),
    )
    res = snnsim.run(graph, x.numpy(), steps=steps, record=names)
    stats = {"samples": x.shape[0], "diverged": 0, "flips": 0, "spikes": 0}
    T = model.T
    for b in range(x.shape[0]):
        stats["spikes"] += int(sum(spikes[n][b].sum() for n in names))
        diverged = False
        for t in range(T):
            for n in names:
                a, e = spikes[n][b, t], res.record[n][b, t]
                assert a.shape == e.shape
                diff = a != e
                if not diff.any():
                    continue
                dist = np.abs(margins[n][b, t][diff])
                assert dist.max() <= FLOAT_TOL, (
                    f"sample {b} step {t} layer {n}: |U - fire| = {dist.max():.3g}"
                )
                stats["flips"] += int(diff.sum())
                diverged = True
                break
            if diverged:
                stats["diverged"] += 1
                break
        if not diverged:
            np.testing.assert_allclose(res.output[b], out[b], rtol=1e-4, atol=1e-4)
            assert int(res.prediction[b]) == int(np.argmax(out[b]))
    return stats


def test_trained_mnist_cnn_matches_the_engine() -> None:
    T = 4
    xtr, ytr = load_mnist5k_split("train")
    model = train_dspike_mnist(torch.from_numpy(xtr), torch.from_numpy(ytr).long(), T=T)
    graph = export_graph(model, "float32", input_shape=(1, 28, 28))
    assert [n.op for n in graph.nodes] == [
        "conv2d",
        "dspike_lif",
        "avgpool2d",
        "conv2d",
        "dspike_lif",
        "avgpool2d",
        "flatten",
        "linear",
        "integrate",
    ]
    xte, _ = load_mnist5k_split("test")
    xt = torch.from_numpy(xte[::25][:40].copy())
    stats = _compare(model, graph, xt, steps=T)
    assert stats["spikes"] > 1000
    assert stats["diverged"] <= stats["samples"] // 10, stats


def test_event_cnn_matches_the_engine() -> None:
    torch.manual_seed(1)
    T = 3
    model = create_model("dspike-mnist-cnn", T=T, in_channels=2, image_size=34, static_input=False)
    frames = torch.from_numpy(
        np.random.RandomState(0).poisson(0.3, size=(8, T, 2, 34, 34)).astype(np.float32)
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(frames)  # BN running statistics
    graph = export_graph(model, "float32", input_shape=(2, 34, 34))
    assert graph.input_kind == "events"
    stats = _compare(model, graph, frames, steps=None)
    assert stats["spikes"] > 100
    assert stats["diverged"] <= 1, stats


def _net(*body: torch.nn.Module) -> DspikeNet:
    return DspikeNet(body, T=2, surrogate=make_surrogate("dspike", b=1.0, w=0.5))


def test_export_rejects_dspike_layers_the_engine_cannot_run() -> None:
    sg = make_surrogate("dspike", b=1.0, w=0.5)
    conv_ok = [ConvTD(1, 4, 3, bias=False), TdBN(4, 1.0, 0.5), DspikeNeuron(sg)]
    tail = [FlattenTD(), LinearTD(4 * 6 * 6, 10)]
    shape = (1, 8, 8)
    export_graph(_net(*conv_ok, *tail), "float32", input_shape=shape).validate()
    cases = [
        (_net(ConvTD(1, 4, 3, dilation=2), DspikeNeuron(sg), *tail), "body.0", "dilated"),
        (_net(*conv_ok, AvgPoolTD(2, padding=1), *tail), "body.3", "padding"),
        (_net(*conv_ok, torch.nn.ReLU(), *tail), "body.3", "not supported"),
        (_net(*conv_ok, FlattenTD()), "body.3", "output linear"),
    ]
    for net, where, reason in cases:
        with pytest.raises(ExportError, match=reason) as info:
            export_graph(net, "float32", input_shape=shape)
        assert repr(where) in str(info.value)
    with pytest.raises(ExportError, match="give input_shape"):
        export_graph(_net(*conv_ok, *tail), "float32")
    assert issubclass(ExportError, ValueError)
