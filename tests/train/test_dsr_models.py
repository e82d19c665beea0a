"""The DSR registry models against the structure of the public DSR code (``cifar/modules``):
pre-activation blocks whose shortcut takes the first neuron's spikes, conv/linear biases and
initialisation, VGG-11's five pooling stages with the adaptive 7x7 pooling folded into its
classifier, and the export of those structures (spike shortcuts into ``add`` nodes, biases)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snnsim.exporter import export_graph
from snnsim.models import create_model
from snnsim.models.dsr_nets import PreActBlock, fold_adaptive_avg_pool
from snnsim.nn.layers import AvgPoolT, BatchNorm1dT, BatchNormT, ConvT, DSRNeuron, LinearT, Seq
from snnsim.nn.net import neuron_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _block_run(blk: PreActBlock, x: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode block output steps and the first neuron's output steps."""
    seen: dict[str, Seq] = {}
    h = blk.sn1.register_forward_hook(lambda m, i, o: seen.__setitem__("s", o))
    try:
        with torch.no_grad():
            out = blk(Seq(x, T, True))
    finally:
        h.remove()
    return out.steps, seen["s"].steps


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3 + 0.5)


@pytest.mark.parametrize("cin, cout, stride", [(4, 4, 1), (4, 6, 2)])
def test_preact_shortcut_takes_the_first_neurons_spikes(cin: int, cout: int, stride: int) -> None:
    """With the residual branch silenced (conv2 weight and bias zero), the block's output is the
    shortcut alone: the first neuron's spike values (identity), or the 1x1 strided conv of them
    (projection) - never the block's raw input."""
    torch.manual_seed(0)
    T = 3
    blk = PreActBlock(cin, cout, stride, neuron_config("if", T, theta0=0.5)).eval()
    _randomise_bn(blk)
    with torch.no_grad():
        blk.conv2.weight.zero_()
        blk.conv2.bias.zero_()
    x = torch.randn(5, cin, 8, 8) * 2
    out, s = _block_run(blk, x, T)
    assert s.abs().sum() > 0 and set(torch.unique(s).tolist()) <= {
        0.0,
        float(blk.sn1.spike_value()),
    }
    if stride == 1 and cin == cout:
        assert blk.shortcut is None
        assert torch.equal(out, s)
        assert not torch.allclose(out, x.repeat(T, 1, 1, 1))
    else:
        assert isinstance(blk.shortcut, ConvT) and blk.shortcut.stride == (stride, stride)
        with torch.no_grad():
            assert torch.equal(
                out, F.conv2d(s, blk.shortcut.weight, blk.shortcut.bias, stride=stride)
            )


def test_preact_block_is_the_public_composition() -> None:
    """``conv2(neuron2(bn2(conv1(s)))) + shortcut(s)`` with ``s = neuron1(bn1(x))``, step by
    step."""
    torch.manual_seed(1)
    T = 2
    cfg = neuron_config("if", T, theta0=0.5)
    blk = PreActBlock(4, 4, 1, cfg).eval()
    _randomise_bn(blk, 1)
    x = torch.randn(3, 4, 6, 6) * 2
    out, s = _block_run(blk, x, T)
    with torch.no_grad():
        z = F.conv2d(s, blk.conv1.weight, blk.conv1.bias, padding=1)
        s2 = blk.sn2(blk.bn2(Seq(z, T, False))).steps
        ref = F.conv2d(s2, blk.conv2.weight, blk.conv2.bias, padding=1) + s
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_preresnet_biases_and_initialisation() -> None:
    """Every block conv and shortcut conv has a bias, the stem conv none; the classifier linear has
    a zero bias; conv weights Kaiming-normal with fan-out; batch norms start at 1 / 0."""
    torch.manual_seed(0)
    m = create_model("dsr-preresnet18", T=2, widths=(16, 32, 32, 64))
    stem = m.body[0]
    assert isinstance(stem, ConvT) and stem.bias is None
    blocks = [b for b in m.body if isinstance(b, PreActBlock)]
    assert len(blocks) == 8 and sum(b.shortcut is not None for b in blocks) == 3
    for b in blocks:
        for conv in (b.conv1, b.conv2) + ((b.shortcut,) if b.shortcut is not None else ()):
            assert conv.bias is not None and conv.bias.requires_grad
    fc = [x for x in m.body if isinstance(x, LinearT)]
    assert len(fc) == 1 and fc[0].bias is not None and torch.count_nonzero(fc[0].bias) == 0
    for x in m.modules():
        if isinstance(x, (BatchNormT, BatchNorm1dT)):
            assert torch.all(x.weight == 1) and torch.all(x.bias == 0)
    # kaiming_normal_(fan_out, relu): std = sqrt(2 / (cout * k * k))
    w = blocks[-1].conv2.weight
    expected = (2.0 / (w.shape[0] * w.shape[2] * w.shape[3])) ** 0.5
    assert float(w.detach().std()) == pytest.approx(expected, rel=0.05)
    w = stem.weight
    assert float(w.detach().std()) == pytest.approx((2.0 / (w.shape[0] * 9)) ** 0.5, rel=0.15)
    res20 = create_model("dsr-preresnet20", T=2, widths=(4, 8, 8))
    assert res20.body[0].bias is None
    assert all(b.conv1.bias is not None for b in res20.body if isinstance(b, PreActBlock))


@pytest.mark.parametrize(
    "image_size, pools, size", [(48, 5, 1), (64, 5, 2), (32, 5, 1), (16, 4, 1)]
)
def test_vgg11_stages_and_classifier(image_size: int, pools: int, size: int) -> None:
    """Five stages each ending with a 2x2 average pool (48 -> 24 -> 12 -> 6 -> 3 -> 1; a pool of a
    1x1 map is left out), 8 convs with zero biases, each followed by BN, neuron, dropout; one
    linear layer on the ``512*s*s`` map (the adaptive 7x7 pooling folded in) + BN1d + neuron."""
    torch.manual_seed(0)
    m = create_model("dsr-vgg11", T=2, image_size=image_size)
    kinds = [type(x).__name__ for x in m.body]
    assert (
        kinds.count("AvgPoolT") == pools
        and kinds.count("ConvT") == 8
        and kinds.count("DropoutT") == 8
    )
    assert kinds[-4:] == ["FlattenT", "LinearT", "BatchNorm1dT", "DSRNeuron"]
    convs = [x for x in m.body if isinstance(x, ConvT)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert all(c.bias is not None and torch.count_nonzero(c.bias) == 0 for c in convs)
    # the public stage ends: a pool after conv 1, 2, 4, 6, 8
    pos = [i for i, k in enumerate(kinds) if k in ("ConvT", "AvgPoolT")]
    order = "".join("C" if kinds[i] == "ConvT" else "P" for i in pos)
    assert order == "CPCPCCPCCPCC" + ("P" if pools == 5 else "")
    fc = m.body[-3]
    assert isinstance(fc, LinearT) and fc.in_features == 512 * size * size and fc.bias is not None
    assert torch.count_nonzero(fc.bias) == 0
    if size == 1:  # the sum of 49 N(0, 0.01) replicas
        assert float(fc.weight.detach().std()) == pytest.approx(0.07, rel=0.2)
    x = torch.rand(2, 2, 2, image_size, image_size)
    assert m(x).shape == (2, 10)


@pytest.mark.parametrize("s", [1, 2, 3, 5, 7, 9])
def test_adaptive_pool_fold_equals_the_public_classifier(s: int) -> None:
    """``Linear(C*49)(flatten(AdaptiveAvgPool2d(7)(x))) == Linear(C*s*s)(flatten(x))`` with the
    folded weight, for any ``s x s`` map."""
    g = torch.Generator().manual_seed(s)
    w = torch.randn(5, 3, 7, 7, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, s, s, generator=g, dtype=torch.float64)
    ref = F.adaptive_avg_pool2d(x, 7).flatten(1) @ w.reshape(5, -1).T
    got = x.flatten(1) @ fold_adaptive_avg_pool(w, s).reshape(5, -1).T
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    if s == 1:
        torch.testing.assert_close(fold_adaptive_avg_pool(w, 1)[..., 0, 0], w.sum((2, 3)))


def _trace_to_neuron(g, name: str) -> str:
    """Follow single-input ``scale`` nodes back to the node that feeds them."""
    n = g.node(name)
    while n.op == "scale":
        n = g.node(n.inputs[0])
    return n.name


@pytest.mark.parametrize("mode", ["float32", "int8", "int16"])
def test_export_adds_the_first_neurons_spikes(mode: str) -> None:
    """In the exported PreAct-ResNet, every block's ``add`` sums its conv2 branch and a branch
    fed by the block's first neuron (directly through a scale for the identity, or through the
    shortcut conv); conv biases reach the graph (conv2's unfolded, as in torch, in float32)."""
    torch.manual_seed(0)
    model = create_model("dsr-preresnet20", T=2, image_size=8, widths=(4, 6, 6), theta0=0.5).eval()
    _randomise_bn(model)
    with torch.no_grad():
        for b in model.body:
            if isinstance(b, PreActBlock):
                b.conv2.bias.uniform_(-0.5, 0.5)
    g = export_graph(model, mode, input_shape=(3, 8, 8), calibration=torch.rand(4, 3, 8, 8))
    blocks = [b for b in model.body if isinstance(b, PreActBlock)]
    adds = [n for n in g.topological_order() if n.op == "add"]
    assert len(adds) == len(blocks) == 9
    consumers: dict[str, list[str]] = {}
    for n in g.nodes:
        for i in n.inputs:
            consumers.setdefault(i, []).append(n.name)
    for blk, add in zip(blocks, adds, strict=True):
        branches = [_trace_to_neuron(g, i) for i in add.inputs]
        conv2 = next(
            b for b in branches if g.node(b).op == "conv2d" and g.node(b).attrs["kernel"] == [3, 3]
        )
        (other,) = [b for b in branches if b != conv2]
        if blk.shortcut is None:
            first = other  # the identity branch: the first neuron's spikes themselves
        else:
            assert g.node(other).op == "conv2d" and g.node(other).attrs["kernel"] == [1, 1]
            first = g.node(other).inputs[0]
        assert g.node(first).op == "dsr_if"
        # the first neuron also feeds conv1, whose neuron (sn2) feeds conv2
        (conv1,) = [
            c
            for c in consumers[first]
            if g.node(c).op == "conv2d" and g.node(c).attrs["kernel"] == [3, 3]
        ]
        sn2 = g.node(g.node(conv2).inputs[0])
        assert sn2.op == "dsr_if" and _trace_to_neuron(g, sn2.inputs[0]) == conv1
        bias = g.node(conv2).tensors["bias"]
        assert np.count_nonzero(bias) > 0
        if mode == "float32":
            np.testing.assert_array_equal(bias, blk.conv2.bias.detach().numpy().astype(np.float32))


def test_ann_baselines_have_the_same_structure() -> None:
    """ReLU in place of the neurons: the same convs, biases and pooling stages."""
    vgg = create_model("dsr-vgg11", neuron="relu", T=1)
    assert not any(isinstance(x, DSRNeuron) for x in vgg.modules())
    assert sum(isinstance(x, AvgPoolT) for x in vgg.body) == 5
    assert vgg(torch.rand(2, 1, 2, 48, 48)).shape == (2, 10)
    res = create_model("dsr-preresnet20", neuron="relu", T=1, widths=(4, 8, 8))
    assert res(torch.rand(2, 3, 32, 32)).shape == (2, 10)
