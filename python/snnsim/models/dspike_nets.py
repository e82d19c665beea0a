"""Dspike network architectures (Li et al., NeurIPS 2021), registered by name.

Every factory takes ``T``, ``surrogate`` (``"dspike"``, ``"rect"``, ``"triangle"`` or a
:class:`~snnsim.nn.surrogates.Surrogate`), ``b`` (initial Dspike temperature, 1.0),
``w`` (Dspike half-width, 0.5), ``a`` (rect/triangle width, 1.0), ``leak`` (LIF leak factor
``k``, 0.5), ``vth`` (firing level, 0.5), ``alpha`` (tdBN scale, 1.0) and ``num_classes``.
Spiking layers are ``weights -> tdBN -> Dspike LIF``; the output layer is a linear layer
integrated without firing (logits = its mean over the ``T`` steps).

=====================  ===================================================================
``dspike-mnist-cnn``   conv(C,16,3)-tdBN-LIF-AP2-conv(16,32,3)-tdBN-LIF-AP2-FC(.,10)
                       (small, for CPU runs; static images or event frames; exportable
                       with :func:`snnsim.export`); ``channels`` and
                       ``pool`` give deeper stacks
``dspike-resnet18``    CIFAR ResNet-18: 3-conv stem (3x3, 64 channels), 4 stages of 2
                       basic blocks (64, 128, 256, 512), average-pool downsampling
                       shortcuts, global average pool, FC output
=====================  ===================================================================
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..nn.dspike import (
    AvgPoolTD,
    BasicBlockTD,
    ConvTD,
    DspikeNet,
    DspikeNeuron,
    FlattenTD,
    GlobalAvgPoolTD,
    LinearTD,
)
from ..nn.surrogates import Surrogate, make_surrogate
from ..nn.tdbn import TdBN
from .registry import register

__all__ = ["build_surrogate", "dspike_mnist_cnn", "dspike_resnet18"]


def build_surrogate(
    surrogate: str | Surrogate = "dspike", b: float = 1.0, w: float = 0.5, a: float = 1.0
) -> Surrogate:
    if isinstance(surrogate, Surrogate):
        return surrogate
    if surrogate == "dspike":
        return make_surrogate("dspike", b=b, w=w)
    return make_surrogate(surrogate, a=a)


def _conv_bn_neuron(
    cin: int, cout: int, sg: Surrogate, leak: float, vth: float, alpha: float
) -> list[nn.Module]:
    """3x3 conv (no bias) -> tdBN scaled by alpha*Vth -> Dspike LIF neuron."""
    return [
        ConvTD(cin, cout, 3, padding=1, bias=False),
        TdBN(cout, alpha, vth),
        DspikeNeuron(sg, leak, vth),
    ]


@register("dspike-mnist-cnn")
def dspike_mnist_cnn(
    T: int = 4,
    in_channels: int = 1,
    image_size: int = 28,
    channels: Sequence[int] = (16, 32),
    num_classes: int = 10,
    static_input: bool = True,
    surrogate: str | Surrogate = "dspike",
    b: float = 1.0,
    w: float = 0.5,
    a: float = 1.0,
    leak: float = 0.5,
    vth: float = 0.5,
    alpha: float = 1.0,
    pool: Sequence[bool] | None = None,
) -> DspikeNet:
    """``pool[i]``: a 2x2 average pool after the ``i``-th spiking conv layer (default: after
    every one), so deeper stacks keep their resolution."""
    sg = build_surrogate(surrogate, b, w, a)
    pools = [True] * len(channels) if pool is None else [bool(p) for p in pool]
    if len(pools) != len(channels):
        raise ValueError(
            f"dspike-mnist-cnn: pool needs one flag per conv layer ({len(channels)}), got {pools}"
        )
    body: list[nn.Module] = []
    c, s = in_channels, image_size
    for cout, p in zip(channels, pools, strict=True):
        body += _conv_bn_neuron(c, cout, sg, leak, vth, alpha)
        if p:
            if s < 2:
                raise ValueError(f"dspike-mnist-cnn: cannot pool a {s}x{s} map (pool={pools})")
            body.append(AvgPoolTD(2))
            s //= 2
        c = cout
    body += [FlattenTD(), LinearTD(c * s * s, num_classes)]
    return DspikeNet(body, T, sg, static_input=static_input)


@register("dspike-resnet18")
def dspike_resnet18(
    T: int = 6,
    in_channels: int = 3,
    num_classes: int = 10,
    stem: Sequence[int] = (64, 64, 64),
    widths: Sequence[int] = (64, 128, 256, 512),
    blocks: Sequence[int] = (2, 2, 2, 2),
    static_input: bool = True,
    surrogate: str | Surrogate = "dspike",
    b: float = 1.0,
    w: float = 0.5,
    a: float = 1.0,
    leak: float = 0.5,
    vth: float = 0.5,
    alpha: float = 1.0,
) -> DspikeNet:
    sg = build_surrogate(surrogate, b, w, a)
    body: list[nn.Module] = []
    c = in_channels
    for cout in stem:
        body += _conv_bn_neuron(c, cout, sg, leak, vth, alpha)
        c = cout
    for stage, (cout, n) in enumerate(zip(widths, blocks, strict=False)):
        for j in range(n):
            stride = 2 if (stage > 0 and j == 0) else 1
            body.append(BasicBlockTD(c, cout, stride, sg, leak, vth, alpha))
            c = cout
    body += [GlobalAvgPoolTD(), LinearTD(c, num_classes)]
    return DspikeNet(body, T, sg, static_input=static_input)
