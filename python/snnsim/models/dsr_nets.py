"""DSR network architectures (Meng et al., CVPR 2022, and its supplement), registered by name.

Every factory takes ``neuron`` (``"if"``, ``"lif"``, or ``"relu"`` for the ANN baseline with
ReLU in place of the neurons), ``T`` (time steps), ``mode`` (``"rate"`` or ``"step"``, see
:mod:`snnsim.nn.dsr`), ``num_classes`` and neuron overrides (``theta0``, ``alpha``,
``bound``, ``dt``, ``tau``, ``theta_grad_scale``, ``train_theta``); the paper's defaults at
``T`` fill the rest. Each spiking layer is ``weights -> batch norm over time -> neuron``; the
first such layer encodes static images (its current is computed once and applied at every
step), and the last neuron layer's representation is the logits.

========================  ===========================================================
``dsr-mlp``               Linear-BN1d-neuron per hidden layer, Linear-BN1d-neuron head
``dsr-mnist-cnn``         conv(1,32,3)-BN-N-AP2-conv(32,64,3)-BN-N-AP2-FC(3136,10)-BN1d-N
``dsr-cifarnet``          128C3-256C3-AP2-512C3-AP2-1024C3-512C3-FC1024-FC512-FC(classes)
``dsr-vgg11``             VGG-11 for DVS (2x48x48 frames): 64C3-AP2-128C3-AP2-256C3-256C3-AP2-
                          512C3-512C3-AP2-512C3-512C3-AP2, dropout 0.1 after neurons,
                          one FC, BN1d + neuron head
``dsr-preresnet18``       PreAct-ResNet-18 (64..512 channels) with the DSR head
``dsr-preresnet{20..110}`` CIFAR PreAct-ResNets (supplement Table S1, 16/32/64 channels)
========================  ===========================================================

The DSR head: ``BN -> neuron -> AvgPool -> neuron -> [dropout] -> Linear -> BN1d -> neuron``.

The PreAct-ResNets and VGG-11 follow the structure and initialisation of the public DSR code
(``cifar/modules/preresnet.py``, ``cifar/modules/vgg.py``): every conv has a bias except the
ResNet stem, the classifier linear has a bias; conv weights are Kaiming-normal (fan-out, ReLU
gain), batch norm starts at weight 1 / bias 0 and the classifier bias at 0 (VGG: conv biases 0
as well, classifier weight N(0, 0.01) before the pooling fold described in :func:`dsr_vgg11`).
The other models keep bias-free weighted layers before their batch norms.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..nn.dsr import DSRNeuronConfig
from ..nn.layers import (
    AvgPoolT,
    BatchNorm1dT,
    BatchNormT,
    ConvT,
    DropoutT,
    FlattenT,
    Flow,
    LinearT,
    add_flows,
)
from ..nn.net import DSRNet, Mode, make_neuron, neuron_config
from .registry import register

__all__ = ["PreActBlock", "conv_bn_neuron", "fold_adaptive_avg_pool"]


def _cfg(neuron: str, T: int, kw: dict[str, Any]) -> DSRNeuronConfig | None:
    keys = ("theta0", "alpha", "bound", "dt", "tau", "theta_grad_scale", "train_theta")
    unknown = set(kw) - set(keys)
    if unknown:
        raise TypeError(f"unknown model arguments: {sorted(unknown)}")
    return neuron_config(neuron, T, **kw)


def conv_bn_neuron(
    cin: int,
    cout: int,
    cfg: DSRNeuronConfig | None,
    k: int = 3,
    stride: int = 1,
    padding: int = 1,
    bias: bool = False,
) -> list[nn.Module]:
    """``conv (bias only if asked) -> BN over time -> neuron``."""
    return [
        ConvT(cin, cout, k, stride=stride, padding=padding, bias=bias),
        BatchNormT(cout),
        make_neuron(cfg),
    ]


def fc_bn_neuron(fin: int, fout: int, cfg: DSRNeuronConfig | None) -> list[nn.Module]:
    return [LinearT(fin, fout, bias=False), BatchNorm1dT(fout), make_neuron(cfg)]


@register("dsr-mlp")
def dsr_mlp(
    in_features: int = 784,
    hidden: Sequence[int] = (800,),
    num_classes: int = 10,
    neuron: str = "if",
    T: int = 5,
    mode: Mode = "rate",
    **kw: Any,
) -> DSRNet:
    cfg = _cfg(neuron, T, kw)
    body: list[nn.Module] = [FlattenT()]
    f = in_features
    for h in hidden:
        body += fc_bn_neuron(f, h, cfg)
        f = h
    body += fc_bn_neuron(f, num_classes, cfg)
    return DSRNet(body, cfg, T, mode)


@register("dsr-mnist-cnn")
def dsr_mnist_cnn(
    num_classes: int = 10,
    in_channels: int = 1,
    neuron: str = "if",
    T: int = 5,
    mode: Mode = "rate",
    channels_last: bool = True,
    **kw: Any,
) -> DSRNet:
    """The MNIST CNN; activations channels-last by default (on the CPU its convolutions, batch
    norms and pools run 2-8x faster that way)."""
    cfg = _cfg(neuron, T, kw)
    body = [
        *conv_bn_neuron(in_channels, 32, cfg),
        AvgPoolT(2),
        *conv_bn_neuron(32, 64, cfg),
        AvgPoolT(2),
        FlattenT(),
        *fc_bn_neuron(64 * 7 * 7, num_classes, cfg),
    ]
    return DSRNet(body, cfg, T, mode, channels_last=channels_last)


@register("dsr-cifarnet")
def dsr_cifarnet(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    neuron: str = "if",
    T: int = 20,
    mode: Mode = "rate",
    channels_last: bool = False,
    **kw: Any,
) -> DSRNet:
    cfg = _cfg(neuron, T, kw)
    s = image_size // 4
    body = [
        *conv_bn_neuron(in_channels, 128, cfg),
        *conv_bn_neuron(128, 256, cfg),
        AvgPoolT(2),
        *conv_bn_neuron(256, 512, cfg),
        AvgPoolT(2),
        *conv_bn_neuron(512, 1024, cfg),
        *conv_bn_neuron(1024, 512, cfg),
        FlattenT(),
        *fc_bn_neuron(512 * s * s, 1024, cfg),
        *fc_bn_neuron(1024, 512, cfg),
        *fc_bn_neuron(512, num_classes, cfg),
    ]
    return DSRNet(body, cfg, T, mode, channels_last=channels_last)


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """The input index ranges ``[start, end)`` that ``nn.AdaptiveAvgPool2d`` averages for each of
    its ``out`` outputs along an axis of length ``size``."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def fold_adaptive_avg_pool(weight: torch.Tensor, size: int) -> torch.Tensor:
    """The weight ``[out, C, size, size]`` of a linear layer on the flattened ``[C, size, size]``
    map that computes what ``weight`` (``[out, C, P, P]``, a linear layer on the flattened
    ``AdaptiveAvgPool2d(P)`` of that map) computes: adaptive average pooling is linear, so it
    folds into the weight (each pooled cell spreads its weight over its window, divided by the
    window's area). For a 1x1 map (pooling replicates it) the result is the sum over the
    ``P*P`` cells."""
    out, c, p, q = weight.shape
    if p != q:
        raise ValueError(f"fold_adaptive_avg_pool: square pooled grid expected, got {p}x{q}")
    folded = weight.new_zeros((out, c, size, size))
    wins = _adaptive_windows(size, p)
    for i, (r0, r1) in enumerate(wins):
        for j, (c0, c1) in enumerate(wins):
            area = (r1 - r0) * (c1 - c0)
            folded[:, :, r0:r1, c0:c1] += weight[:, :, i : i + 1, j : j + 1] / area
    return folded


_VGG11_STAGES: tuple[tuple[int, ...], ...] = ((64,), (128,), (256, 256), (512, 512), (512, 512))
_VGG_POOLED = 7  # the public classifier reads AdaptiveAvgPool2d((7, 7)) of the last feature map


@register("dsr-vgg11")
def dsr_vgg11(
    num_classes: int = 10,
    in_channels: int = 2,
    image_size: int = 48,
    dropout: float = 0.1,
    static_input: bool = False,
    neuron: str = "if",
    T: int = 20,
    mode: Mode = "rate",
    channels_last: bool = False,
    **kw: Any,
) -> DSRNet:
    """VGG-11 for DVS-CIFAR10 frames ``[B, T, 2, 48, 48]``, as the public code's ``vgg11``: five
    stages 64C3 / 128C3 / 256C3-256C3 / 512C3-512C3 / 512C3-512C3, each ending with a 2x2
    average pool (48 -> 24 -> 12 -> 6 -> 3 -> 1: the last pool, like torch's, averages the
    top-left 2x2 of the 3x3 map); every conv (with bias) is followed by BN, a neuron and dropout
    (``dropout``, 0.1 in the paper); the classifier is one linear layer + BN1d + neuron.

    The public classifier is ``Linear(512*7*7)`` on ``AdaptiveAvgPool2d((7, 7))`` of the last
    feature map. Adaptive average pooling is a fixed linear map, so here it is folded into the
    linear layer: ``Linear(512*s*s)`` on the flattened ``s x s`` map (``s = 1`` at 48x48, where
    the pooling only replicates each channel 49 times and the linear weight is the sum of the 49
    replicated weights; see :func:`fold_adaptive_avg_pool`). The forward functions are the same
    (for ``s <= 7``, every folded weight is reachable) and the initial weight is the public
    ``N(0, 0.01)`` 7x7 weight folded (``N(0, 0.07)`` at ``s = 1``); what differs is the
    parametrisation: SGD on the 49 replicas moves their sum 49 times as far per step as SGD on
    the folded weight does. A pool stage whose input is already 1x1 (inputs smaller than
    32x32, e.g. quick runs at 16x16) is left out, as it would be empty."""
    cfg = _cfg(neuron, T, kw)
    body: list[nn.Module] = []
    c, size = in_channels, image_size
    for stage in _VGG11_STAGES:
        for width in stage:
            body += conv_bn_neuron(c, width, cfg, bias=True)
            if dropout > 0:
                body.append(DropoutT(dropout))
            c = width
        if size >= 2:
            body.append(AvgPoolT(2))
            size //= 2
    fc = LinearT(c * size * size, num_classes)
    body += [FlattenT(), fc, BatchNorm1dT(num_classes), make_neuron(cfg)]
    _public_init(body, conv_bias_zero=True)
    with torch.no_grad():
        w7 = torch.empty(num_classes, c, _VGG_POOLED, _VGG_POOLED).normal_(0.0, 0.01)
        fc.weight.copy_(fold_adaptive_avg_pool(w7, size).reshape(num_classes, -1))
    return DSRNet(body, cfg, T, mode, static_input=static_input, channels_last=channels_last)


def _public_init(modules: Sequence[nn.Module], conv_bias_zero: bool) -> None:
    """The public code's initialisation: conv weights Kaiming-normal (fan-out, ReLU gain), conv
    biases zero (VGG) or torch's default (PreAct-ResNet), batch norm weight 1 / bias 0, linear
    biases zero (linear weights: torch's default, or set by the caller)."""
    for top in modules:
        for m in top.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if conv_bias_zero and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)


class PreActBlock(nn.Module):
    """Pre-activation basic block over time, as the public DSR code's: ``s = neuron(BN(x))``, then
    ``conv(dropout(neuron(BN(conv(s))))) + shortcut(s)``. The shortcut takes the first neuron's
    output ``s`` (the values its spikes carry), not the block input: the identity when the shape
    is kept, else a 1x1 conv with the stride. All three convs have a bias."""

    def __init__(
        self, cin: int, cout: int, stride: int, cfg: DSRNeuronConfig | None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = BatchNormT(cin)
        self.sn1 = make_neuron(cfg)
        self.conv1 = ConvT(cin, cout, 3, stride=stride, padding=1)
        self.bn2 = BatchNormT(cout)
        self.sn2 = make_neuron(cfg)
        self.dropout = DropoutT(dropout)
        self.conv2 = ConvT(cout, cout, 3, stride=1, padding=1)
        self.shortcut = ConvT(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None

    def forward(self, x: Flow) -> Flow:
        s = self.sn1(self.bn1(x))
        out = self.conv2(self.dropout(self.sn2(self.bn2(self.conv1(s)))))
        return add_flows(out, s if self.shortcut is None else self.shortcut(s))


def _dsr_head(
    c: int, pool: int, num_classes: int, cfg: DSRNeuronConfig | None, dropout: float = 0.0
) -> list[nn.Module]:
    return [
        BatchNormT(c),
        make_neuron(cfg),
        AvgPoolT(pool),
        make_neuron(cfg),
        FlattenT(),
        DropoutT(dropout),
        LinearT(c, num_classes),
        BatchNorm1dT(num_classes),
        make_neuron(cfg),
    ]


def _preresnet(
    widths: Sequence[int],
    blocks: Sequence[int],
    num_classes: int,
    in_channels: int,
    image_size: int,
    neuron: str,
    T: int,
    mode: Mode,
    channels_last: bool,
    dropout: float,
    kw: dict[str, Any],
) -> DSRNet:
    cfg = _cfg(neuron, T, kw)
    body: list[nn.Module] = [ConvT(in_channels, widths[0], 3, padding=1, bias=False)]
    c, size = widths[0], image_size
    for i, (w, n) in enumerate(zip(widths, blocks, strict=False)):
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            body.append(PreActBlock(c, w, stride, cfg, dropout))
            size = math.ceil(size / stride)
            c = w
    body += _dsr_head(c, size, num_classes, cfg, dropout)
    _public_init(body, conv_bias_zero=False)
    return DSRNet(body, cfg, T, mode, channels_last=channels_last)


@register("dsr-preresnet18")
def dsr_preresnet18(
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int = 32,
    neuron: str = "if",
    T: int = 20,
    mode: Mode = "rate",
    channels_last: bool = False,
    widths: Sequence[int] = (64, 128, 256, 512),
    dropout: float = 0.0,
    **kw: Any,
) -> DSRNet:
    """PreAct-ResNet-18 (stem conv 3x3 -> 64 without bias, stages of 2 blocks at 64/128/256/512)
    with the DSR head (average pooling only). ``widths``: the four stage widths (smaller for quick
    runs); ``dropout``: in each block before its second conv and in the head before the linear
    layer (0 in the public code's default)."""
    if len(widths) != 4:
        raise ValueError(f"dsr-preresnet18: widths needs 4 stage widths, got {list(widths)}")
    return _preresnet(
        tuple(widths),
        (2, 2, 2, 2),
        num_classes,
        in_channels,
        image_size,
        neuron,
        T,
        mode,
        channels_last,
        dropout,
        kw,
    )


def _register_cifar_preresnet(depth: int) -> None:
    if (depth - 2) % 6:
        raise ValueError(depth)
    n = (depth - 2) // 6

    @register(f"dsr-preresnet{depth}")
    def factory(
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        neuron: str = "if",
        T: int = 20,
        mode: Mode = "rate",
        channels_last: bool = False,
        widths: Sequence[int] = (16, 32, 64),
        dropout: float = 0.0,
        **kw: Any,
    ) -> DSRNet:
        if len(widths) != 3:
            raise ValueError(
                f"dsr-preresnet{depth}: widths needs 3 stage widths, got {list(widths)}"
            )
        return _preresnet(
            tuple(widths),
            (n, n, n),
            num_classes,
            in_channels,
            image_size,
            neuron,
            T,
            mode,
            channels_last,
            dropout,
            kw,
        )

    factory.__name__ = f"dsr_preresnet{depth}"
    factory.__doc__ = (
        f"PreAct-ResNet-{depth} ({n} blocks per stage at 16/32/64 channels, ``widths`` to "
        f"change them) with the DSR head; blocks and initialisation as "
        f":func:`dsr_preresnet18` (``dropout`` likewise)."
    )


for _depth in (20, 32, 44, 56, 110):
    _register_cifar_preresnet(_depth)
