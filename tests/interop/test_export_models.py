"""Every model of the registry, at a size CI can afford, briefly trained (Adam steps, then batch
norm statistics re-estimated so that they and the thresholds are non-trivial), exported:

* int8, int4, int16: the torch reference and the Rust engine give identical spikes at every
  neuron layer and step and identical predictions on every test sample;
* float32: predictions agree with the torch model on >= 99.9% of the samples (so, with fewer than
  1000 samples, on all of them), and spikes are the torch model's except where its membrane lies
  within FLOAT_TOL of the fire level (tests/_trained.py);
* models without a spiking network (the ReLU ANN baselines) and structures the format cannot
  express raise ExportError naming the module.

Run with ``-s`` to see the flip counts and the int16/int8 agreement with the float export.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snnsim
from _trained import compare_float, int_exact, sgd_steps
from snnsim.data import load_mnist5k_split
from snnsim.exporter import ExportError, export_graph, lif_readout_int, neuron_nodes
from snnsim.models import create_model, list_models
from snnsim.nn.dspike import DspikeNeuron
from snnsim.nn.layers import BatchNormT, ConvT, DSRNeuron
from snnsim.nn.net import DSRNet, neuron_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# id: (registry name, overrides, input shape, test samples, optimiser steps)
CASES = {
    "dsr-mlp": ("dsr-mlp", dict(T=3, hidden=(64,), theta0=1.0), (784,), 120, 20),
    "dsr-mnist-cnn": ("dsr-mnist-cnn", dict(T=3, theta0=1.0), (1, 28, 28), 60, 10),
    "dsr-cifarnet": ("dsr-cifarnet", dict(T=2, image_size=8, theta0=1.0), (3, 8, 8), 16, 3),
    "dsr-vgg11": ("dsr-vgg11", dict(T=2, image_size=16, theta0=0.5), (2, 16, 16), 24, 4),
    "dsr-preresnet18": (
        "dsr-preresnet18",
        dict(T=2, image_size=16, widths=(8, 8, 16, 16), theta0=1.0),
        (3, 16, 16),
        60,
        15,
    ),
    "dsr-preresnet20": (
        "dsr-preresnet20",
        dict(T=3, image_size=16, widths=(8, 16, 16), theta0=1.0),
        (3, 16, 16),
        60,
        15,
    ),
    "dsr-preresnet20-lif": (
        "dsr-preresnet20",
        dict(T=3, image_size=16, widths=(8, 16, 16), neuron="lif", theta0=0.1),
        (3, 16, 16),
        60,
        15,
    ),
    "dsr-preresnet32": (
        "dsr-preresnet32",
        dict(T=2, image_size=8, widths=(4, 8, 8), theta0=1.0),
        (3, 8, 8),
        40,
        5,
    ),
    "dsr-preresnet44": (
        "dsr-preresnet44",
        dict(T=2, image_size=8, widths=(4, 4, 8), theta0=1.0),
        (3, 8, 8),
        30,
        4,
    ),
    "dsr-preresnet56": (
        "dsr-preresnet56",
        dict(T=2, image_size=8, widths=(4, 4, 4), theta0=1.0),
        (3, 8, 8),
        30,
        4,
    ),
    "dsr-preresnet110": (
        "dsr-preresnet110",
        dict(T=2, image_size=8, widths=(4, 4, 4), theta0=1.0),
        (3, 8, 8),
        20,
        3,
    ),
    "dspike-mnist-cnn": ("dspike-mnist-cnn", dict(T=3), (1, 28, 28), 60, 10),
    "dspike-resnet18": (
        "dspike-resnet18",
        dict(T=2, stem=(8, 8, 8), widths=(8, 16, 16, 32)),
        (3, 16, 16),
        60,
        15,
    ),
}


@functools.lru_cache(maxsize=None)
def _mnist(n: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    xtr, ytr = load_mnist5k_split("train")
    idx = np.random.RandomState(0).permutation(len(ytr))[:n]
    return torch.from_numpy(xtr[idx]), torch.from_numpy(ytr[idx]).long()


def _inputs(shape: tuple[int, ...], T: int, static: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-5k digits shaped for the model (flat, 28x28, or pooled to 14x14 and padded to 16x16 /
    pooled to 7x7 and padded to 8x8 with the channel repeated); for event models, per-step
    events drawn with the pixel intensity as rate."""
    x, y = _mnist()
    if len(shape) == 1:
        return x.reshape(len(x), -1), y
    c, h, _ = shape
    if h == 16:
        x = F.pad(F.avg_pool2d(x, 2), (1, 1, 1, 1))
    elif h == 8:
        x = F.pad(F.avg_pool2d(x, 4), (0, 1, 0, 1))
    x = x.expand(-1, c, -1, -1).contiguous()
    if static:
        return x, y
    g = torch.Generator().manual_seed(1)
    ev = (torch.rand((len(x), T) + tuple(x.shape[1:]), generator=g) < 0.5 * x.unsqueeze(1)).float()
    return ev, y


@functools.lru_cache(maxsize=None)
def _trained(case: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    name, kw, shape, n_test, steps = CASES[case]
    torch.manual_seed(0)
    model = create_model(name, **kw)
    x, y = _inputs(shape, model.T, model.static_input)
    sgd_steps(model, x[:512], y[:512], steps=steps, batch=32 if steps <= 5 else 64)
    return model, x[:64], x[512 : 512 + n_test]


def test_every_registry_model_is_covered() -> None:
    assert {c[0] for c in CASES.values()} == set(list_models())


@pytest.mark.parametrize("case", list(CASES))
def test_export_guarantees(case: str) -> None:
    model, calib, xt = _trained(case)
    shape = CASES[case][2]
    steps = model.T if model.static_input else None
    float_graph = export_graph(model, "float32", input_shape=shape)
    names = neuron_nodes(float_graph)
    n_torch = sum(isinstance(m, (DSRNeuron, DspikeNeuron)) for m in model.modules())
    assert len(names) == n_torch
    ref_float = snnsim.run(float_graph, xt.numpy(), steps=steps, record=names)
    for mode in ("int8", "int4", "int16"):
        g = export_graph(model, mode, input_shape=shape, calibration=calib)
        assert g.precision == "int" and set(neuron_nodes(g)) == set(names)
        total, pred = int_exact(g, xt.numpy(), steps)
        print(
            f"{case} {mode}: {len(g.nodes)} nodes, {total} spikes, engine == reference "
            "(0 mismatches); "
            f"predictions as float32 on {float((pred == ref_float.prediction).mean()):.1%}"
        )
    stats = compare_float(model, float_graph, xt)
    print(f"{case} float32 vs torch: {stats}")
    assert stats["pred_flips"] <= stats["samples"] // 1000, stats
    assert stats["diverged"] <= max(1, stats["samples"] // 20), stats


def test_residual_graph_structure() -> None:
    """Residual streams are add nodes; stream batch norm is a scale node; int adds get fixed-point
    rescales so both branches are on one grid; the DSR LIF readout is a leaky integrator."""
    model, calib, _ = _trained("dsr-preresnet20-lif")
    gf = export_graph(model, "float32", input_shape=(3, 16, 16))
    ops = [n.op for n in gf.nodes]
    assert ops.count("add") == 9 and ops[-1] == "integrate" and gf.output == "out"
    assert gf.node("out").tensors["leak"][0] == np.float32(model.cfg.leak)
    assert ops[:3] == ["conv2d", "scale", "dsr_lif"]
    gi = export_graph(model, "int8", input_shape=(3, 16, 16), calibration=calib)
    out = gi.node("out")
    R, leak_m, f = lif_readout_int(model.cfg.leak)
    assert out.attrs["f"] == f and int(out.tensors["leak_m"][0]) == leak_m
    pre = gi.node(out.inputs[0])
    assert pre.op == "scale" and int(pre.tensors["m"][0]) == 2 * R and pre.attrs["f"] == 1
    for n in gi.nodes:
        if n.op == "add":
            assert len(n.inputs) == 2
    dres, calib, _ = _trained("dspike-resnet18")
    g = export_graph(dres, "int16", input_shape=(3, 16, 16), calibration=calib)
    adds = [n for n in g.nodes if n.op == "add"]
    assert len(adds) == 8
    assert any(
        g.node(i).op == "scale" for n in adds for i in n.inputs
    )  # identity spikes put on the conv grid
    assert [n.op for n in g.nodes][-4:] == ["sumpool2d", "flatten", "linear", "integrate"]


@pytest.mark.parametrize("name", ["dsr-mlp", "dsr-mnist-cnn", "dsr-preresnet20", "dsr-vgg11"])
def test_ann_baselines_raise(name: str) -> None:
    kw = {"image_size": 16} if name == "dsr-vgg11" else {}
    with pytest.raises(ExportError, match="ANN"):
        export_graph(create_model(name, neuron="relu", **kw), "int8", input_shape=(3, 32, 32))


def test_unsupported_structures_raise() -> None:
    cfg = neuron_config("if", 2)
    relu = DSRNet(
        [ConvT(1, 4, 3, padding=1), DSRNeuron(cfg), nn.ReLU(), ConvT(4, 4, 3), DSRNeuron(cfg)],
        cfg,
        2,
    )
    with pytest.raises(ExportError, match=r"body\.2.*ReLU"):
        export_graph(relu, "float32", input_shape=(1, 8, 8))
    bn_pool = DSRNet(
        [ConvT(1, 4, 3), DSRNeuron(cfg), BatchNormT(4), nn.AvgPool2d(2), DSRNeuron(cfg)], cfg, 2
    )
    with pytest.raises(ExportError, match=r"body\.2.*batch norm"):
        export_graph(bn_pool, "int8", input_shape=(1, 8, 8))
    no_readout = DSRNet([ConvT(1, 4, 3), DSRNeuron(cfg), ConvT(4, 2, 3)], cfg, 2)
    with pytest.raises(ExportError, match="readout neuron"):
        export_graph(no_readout, "float32", input_shape=(1, 8, 8))
    blk = create_model("dsr-preresnet20", T=2, image_size=8, widths=(4, 4, 4))
    blk.body[1].sn2 = nn.ReLU()
    with pytest.raises(ExportError, match=r"body\.1\.sn2"):
        export_graph(blk, "int8", input_shape=(3, 8, 8))
