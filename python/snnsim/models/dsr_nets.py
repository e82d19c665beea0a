"""DSR network architectures (Meng et al., CVPR 2022, and its supplement), registered by name.

Every factory takes ``neuron`` (``"if"``, ``"lif"``, or ``"relu"`` for the ANN baseline with
ReLU in place of the neurons), ``T`` (time steps), ``mode`` (``"rate"`` or ``"step"``, see
:mod:`snnsim.train.dsr`), ``num_classes`` and neuron overrides (``theta0``, ``alpha``,
``bound``, ``dt``, ``tau``, ``theta_grad_scale``, ``train_theta``); the paper's defaults at
``T`` fill the rest. Each spiking layer is ``weights -> batch norm over time -> neuron``; the
first such layer encodes static images (its current is computed once and applied at every
step), and the last neuron layer's representation is the logits.

========================  ===========================================================
``dsr-mlp``               Linear-BN1d-neuron per hidden layer, Linear-BN1d-neuron head
``dsr-mnist-cnn``         conv(1,32,3)-BN-N-AP2-conv(32,64,3)-BN-N-AP2-FC(3136,10)-BN1d-N
``dsr-cifarnet``          128C3-256C3-AP2-512C3-AP2-1024C3-512C3-FC1024-FC512-FC(classes)
``dsr-vgg11``             VGG-11 for DVS (2x48x48 frames), dropout 0.1 after neurons,
                          one FC, BN1d + neuron head
``dsr-preresnet18``       PreAct-ResNet-18 (64..512 channels) with the DSR head
``dsr-preresnet{20..110}`` CIFAR PreAct-ResNets (supplement Table S1, 16/32/64 channels)
========================  ===========================================================

The DSR head: ``BN -> neuron -> AvgPool -> neuron -> Linear -> BN1d -> neuron``.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from ..train.layers import (
    AvgPoolT,
    BatchNorm1dT,
    BatchNormT,
    ConvT,
    DropoutT,
    FlattenT,
    LinearT,
    add_flows,
)
from ..train.net import DSRNet, Mode, make_neuron, neuron_config
from .registry import register

__all__ = ["PreActBlock", "conv_bn_neuron"]


def _cfg(neuron: str, T: int, kw: dict[str, Any]):
    keys = ("theta0", "alpha", "bound", "dt", "tau", "theta_grad_scale", "train_theta")
    unknown = set(kw) - set(keys)
    if unknown:
        raise TypeError(f"unknown model arguments: {sorted(unknown)}")
    return neuron_config(neuron, T, **kw)


def conv_bn_neuron(cin: int, cout: int, cfg, k: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    """``conv (no bias) -> BN over time -> neuron``."""
    return [ConvT(cin, cout, k, stride=stride, padding=padding, bias=False), BatchNormT(cout), make_neuron(cfg)]


def fc_bn_neuron(fin: int, fout: int, cfg) -> list[nn.Module]:
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
    channels_last: bool = False,
    **kw: Any,
) -> DSRNet:
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
    """VGG-11 for DVS-CIFAR10 frames ``[B, T, 2, 48, 48]``: 64C3-128C3-AP2-256C3-256C3-AP2-
    512C3-512C3-AP2-512C3-512C3-AP2, dropout after every neuron, one FC + BN1d + neuron."""
    cfg = _cfg(neuron, T, kw)
    plan: list[int | str] = [64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"]
    body: list[nn.Module] = []
    c, size = in_channels, image_size
    for item in plan:
        if item == "A":
            body.append(AvgPoolT(2))
            size //= 2
        else:
            body += conv_bn_neuron(c, int(item), cfg)
            if dropout > 0:
                body.append(DropoutT(dropout))
            c = int(item)
    body += [FlattenT(), *fc_bn_neuron(c * size * size, num_classes, cfg)]
    return DSRNet(body, cfg, T, mode, static_input=static_input, channels_last=channels_last)


class PreActBlock(nn.Module):
    """Pre-activation basic block over time: ``BN -> neuron -> conv -> BN -> neuron -> conv``
    plus the shortcut (identity on the input stream, or a 1x1 conv on the first neuron's
    spikes when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, cfg) -> None:
        super().__init__()
        self.bn1 = BatchNormT(cin)
        self.sn1 = make_neuron(cfg)
        self.conv1 = ConvT(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = BatchNormT(cout)
        self.sn2 = make_neuron(cfg)
        self.conv2 = ConvT(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = ConvT(cin, cout, 1, stride=stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):  # type: ignore[no-untyped-def]
        out = self.sn1(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(self.sn2(self.bn2(self.conv1(out))))
        return add_flows(out, sc)


def _dsr_head(c: int, pool: int, num_classes: int, cfg) -> list[nn.Module]:
    return [
        BatchNormT(c),
        make_neuron(cfg),
        AvgPoolT(pool),
        make_neuron(cfg),
        FlattenT(),
        LinearT(c, num_classes, bias=False),
        BatchNorm1dT(num_classes),
        make_neuron(cfg),
    ]


def _preresnet(
    widths: Sequence[int], blocks: Sequence[int], num_classes: int, in_channels: int, image_size: int,
    neuron: str, T: int, mode: Mode, channels_last: bool, kw: dict[str, Any],
) -> DSRNet:
    cfg = _cfg(neuron, T, kw)
    body: list[nn.Module] = [ConvT(in_channels, widths[0], 3, padding=1, bias=False)]
    c, size = widths[0], image_size
    for i, (w, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            body.append(PreActBlock(c, w, stride, cfg))
            size = size // stride
            c = w
    body += _dsr_head(c, size, num_classes, cfg)
    return DSRNet(body, cfg, T, mode, channels_last=channels_last)


@register("dsr-preresnet18")
def dsr_preresnet18(
    num_classes: int = 10, in_channels: int = 3, image_size: int = 32, neuron: str = "if", T: int = 20,
    mode: Mode = "rate", channels_last: bool = False, widths: Sequence[int] = (64, 128, 256, 512), **kw: Any,
) -> DSRNet:
    """PreAct-ResNet-18 (stem conv 3x3 -> 64, stages of 2 blocks at 64/128/256/512) with the DSR
    head (average pooling only). ``widths``: the four stage widths (smaller for quick runs)."""
    if len(widths) != 4:
        raise ValueError(f"dsr-preresnet18: widths needs 4 stage widths, got {list(widths)}")
    return _preresnet(tuple(widths), (2, 2, 2, 2), num_classes, in_channels, image_size, neuron, T, mode,
                      channels_last, kw)


def _register_cifar_preresnet(depth: int) -> None:
    if (depth - 2) % 6:
        raise ValueError(depth)
    n = (depth - 2) // 6

    @register(f"dsr-preresnet{depth}")
    def factory(
        num_classes: int = 10, in_channels: int = 3, image_size: int = 32, neuron: str = "if", T: int = 20,
        mode: Mode = "rate", channels_last: bool = False, widths: Sequence[int] = (16, 32, 64), **kw: Any,
    ) -> DSRNet:
        if len(widths) != 3:
            raise ValueError(f"dsr-preresnet{depth}: widths needs 3 stage widths, got {list(widths)}")
        return _preresnet(tuple(widths), (n, n, n), num_classes, in_channels, image_size, neuron, T, mode,
                          channels_last, kw)

    factory.__name__ = f"dsr_preresnet{depth}"
    factory.__doc__ = (f"PreAct-ResNet-{depth} ({n} blocks per stage at 16/32/64 channels, ``widths`` to "
                       f"change them) with the DSR head.")


for _depth in (20, 32, 44, 56, 110):
    _register_cifar_preresnet(_depth)
