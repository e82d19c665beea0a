"""Workloads of the side-by-side inference benchmark (``benches/inference.py``).

A workload is a small feed-forward network description (:class:`Network`: linear, conv, average
pool, flatten, IF neurons and pre-activation residual blocks) with its input generator. Every
engine of the benchmark is built from the same description, so every engine has the same
weights, thresholds and inputs.

Exactness. Weights are int8 integers times ``2**-KW``, static inputs are integers times
``2**-input_exp`` and event inputs are 0/1, so every value in the network is an integer number
of "grid units" (``2**-q`` for a per-node exponent ``q``). :func:`evaluate` checks that every
sum of absolute terms (weighted sums, pools, adds) stays below ``SUM_LIMIT = 2**24`` units and
every membrane below ``UNIT_LIMIT = 2**22`` units: float32 then holds every partial sum exactly
(24-bit significand) whatever the summation order, so every float32 engine must give
*identical* spikes, and the int8 export
(:func:`to_graph` with ``precision="int"``) computes the same integers.

The neuron is snnsim's ``dsr_if`` with fire level equal to theta: ``U = V + x``,
``s = U >= theta``, ``V = U - theta*s`` (reset by subtraction). ``law="zero"`` is the same with
reset to zero (``V = 0`` after a spike), the only IF reset Norse provides.

Thresholds are calibrated layer by layer (:func:`evaluate` with ``target=``) on a calibration
batch so that each IF layer fires close to a target rate (spikes per neuron per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

KW = 7  # weights are int8 integers times 2**-KW
SUM_LIMIT = 2**24  # bound on sums of |terms| (weighted sums, pools, adds), in grid units
UNIT_LIMIT = 2**22  # bound on |U| of every IF, in grid units (room for snnTorch's half unit)
Law = Literal["subtract", "zero"]


# ---------------------------------------------------------------------- network description
@dataclass
class Linear:
    """Fully connected layer without bias; ``weight`` int8 ``[out, in]`` (value ``w*2**-KW``)."""

    name: str
    weight: np.ndarray


@dataclass
class Conv:
    """2-D convolution without bias; ``weight`` int8 ``[out, in, kh, kw]``."""

    name: str
    weight: np.ndarray
    stride: int = 1
    padding: int = 0


@dataclass
class AvgPool:
    """Average pool, kernel = stride = ``k`` (a power of two), no padding."""

    name: str
    k: int


@dataclass
class Flatten:
    name: str


@dataclass
class IF:
    """IF neuron layer. ``theta``: threshold in units of its input grid ``2**-q_in`` (set by
    calibration); ``q_in`` and ``shape`` (per-sample input shape) are set by :func:`annotate`."""

    name: str
    theta: int = 0
    q_in: int = 0
    shape: tuple[int, ...] = ()

    @property
    def theta_value(self) -> float:
        """The threshold as a (dyadic, float32-exact) real number."""
        return float(self.theta) * 2.0**-self.q_in

    @property
    def half_unit(self) -> float:
        """Half a grid unit: on the grid, ``U >= theta`` is ``U + half_unit > theta``."""
        return 2.0 ** -(self.q_in + 1)


@dataclass
class Block:
    """Pre-activation residual block: ``s = sn1(x)``, ``y = conv2(sn2(conv1(s)))``, output
    ``y + shortcut(s)`` (identity when ``short`` is None, else a 1x1 strided conv)."""

    name: str
    sn1: IF
    conv1: Conv
    sn2: IF
    conv2: Conv
    short: Conv | None = None


Layer = Union[Linear, Conv, AvgPool, Flatten, IF, Block]


@dataclass
class Network:
    """A workload's network. ``input_kind``: ``"static"`` (an analog input ``[B, *input_shape]``
    applied at every step) or ``"events"`` (0/1 frames ``[B, T, *input_shape]``).
    ``input_exp``: static inputs are integers times ``2**-input_exp``."""

    name: str
    input_shape: tuple[int, ...]
    input_kind: str
    steps: int
    layers: list[Layer]
    input_exp: int = 0
    description: str = ""
    input_note: str = ""
    target_rate: float = 0.10
    input_rate: float = 0.0  # fraction of ones per frame (events)

    def neurons(self) -> list[IF]:
        """Every IF layer in execution order."""
        out: list[IF] = []
        for layer in self.layers:
            if isinstance(layer, IF):
                out.append(layer)
            elif isinstance(layer, Block):
                out += [layer.sn1, layer.sn2]
        return out

    def weighted(self) -> Iterator[Linear | Conv]:
        for layer in self.layers:
            if isinstance(layer, (Linear, Conv)):
                yield layer
            elif isinstance(layer, Block):
                yield from (c for c in (layer.conv1, layer.conv2, layer.short) if c is not None)

    def describe(self) -> list[str]:
        """Human-readable layer list (for the JSON)."""
        return [_describe(layer) for layer in self.layers]


def _describe(layer: Layer) -> str:
    if isinstance(layer, Linear):
        return f"{layer.name}: linear {layer.weight.shape[1]}->{layer.weight.shape[0]}"
    if isinstance(layer, Conv):
        o, i, kh, kw = layer.weight.shape
        return f"{layer.name}: conv {i}->{o} {kh}x{kw} s{layer.stride} p{layer.padding}"
    if isinstance(layer, AvgPool):
        return f"{layer.name}: avgpool {layer.k}"
    if isinstance(layer, Flatten):
        return f"{layer.name}: flatten"
    if isinstance(layer, IF):
        return f"{layer.name}: IF theta={layer.theta_value:g}"
    sc = "identity" if layer.short is None else _describe(layer.short)
    return (
        f"{layer.name}: preact block [{_describe(layer.sn1)}; {_describe(layer.conv1)}; "
        f"{_describe(layer.sn2)}; {_describe(layer.conv2)}; shortcut {sc}]"
    )


def float_weight(layer: Linear | Conv) -> torch.Tensor:
    """The layer's float32 weight ``w * 2**-KW`` (exact)."""
    return torch.from_numpy(layer.weight.astype(np.float32) * np.float32(2.0**-KW))


# ---------------------------------------------------------------------- shapes and grids
def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _weighted_shape(layer: Linear | Conv, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(layer, Linear):
        if shape != (layer.weight.shape[1],):
            raise ValueError(f"{layer.name}: input shape {shape} does not fit {_describe(layer)}")
        return (int(layer.weight.shape[0]),)
    o, i, kh, kw = layer.weight.shape
    if len(shape) != 3 or shape[0] != i:
        raise ValueError(f"{layer.name}: input shape {shape} does not fit {_describe(layer)}")
    s, p = layer.stride, layer.padding
    return (int(o), _conv_out(shape[1], kh, s, p), _conv_out(shape[2], kw, s, p))


def _step(layer: Layer, shape: tuple[int, ...], q: int) -> tuple[tuple[int, ...], int]:
    """Output shape and grid exponent of ``layer`` for an input of ``shape`` on grid ``2**-q``."""
    if isinstance(layer, (Linear, Conv)):
        return _weighted_shape(layer, shape), q + KW
    if isinstance(layer, AvgPool):
        if layer.k & (layer.k - 1):
            raise ValueError(f"{layer.name}: pool size {layer.k} is not a power of two")
        return (shape[0], shape[1] // layer.k, shape[2] // layer.k), q + 2 * int(math.log2(layer.k))
    if isinstance(layer, Flatten):
        return (int(np.prod(shape)),), q
    if isinstance(layer, IF):
        layer.q_in, layer.shape = q, shape
        return shape, 0
    layer.sn1.q_in, layer.sn1.shape = q, shape
    s1 = _weighted_shape(layer.conv1, shape)
    layer.sn2.q_in, layer.sn2.shape = KW, s1
    out = _weighted_shape(layer.conv2, s1)
    short = shape if layer.short is None else _weighted_shape(layer.short, shape)
    if short != out:
        raise ValueError(f"{layer.name}: shortcut shape {short} != main branch shape {out}")
    return out, KW  # conv outputs are on 2**-KW, spikes (the identity shortcut) on 1


def annotate(net: Network) -> dict[str, tuple[tuple[int, ...], int]]:
    """Set every IF's ``q_in`` and ``shape``; return each layer's output (shape, grid exponent)."""
    shape, q = tuple(net.input_shape), net.input_exp
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for layer in net.layers:
        shape, q = _step(layer, shape, q)
        out[layer.name] = (shape, q)
    return out


# ---------------------------------------------------------------------- workloads
def _weights(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 32.0) -> np.ndarray:
    return np.clip(np.rint(rng.normal(0.0, sigma, size=shape)), -127, 127).astype(np.int8)


def _lin(rng: np.random.Generator, name: str, fin: int, fout: int) -> Linear:
    return Linear(name, _weights(rng, (fout, fin)))


def _conv(
    rng: np.random.Generator, name: str, cin: int, cout: int, k: int = 3, s: int = 1, p: int = 1
) -> Conv:
    return Conv(name, _weights(rng, (cout, cin, k, k)), stride=s, padding=p)


def mlp(
    name: str, sizes: tuple[int, ...], steps: int, kind: str, rng: np.random.Generator
) -> Network:
    """``sizes[0]-...-sizes[-1]`` with an IF after every linear layer."""
    layers: list[Layer] = []
    for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers += [_lin(rng, f"fc{i + 1}", fin, fout), IF(f"sn{i + 1}")]
    exp = 7 if kind == "static" else 0
    return Network(name, (sizes[0],), kind, steps, layers, input_exp=exp)


def event_cnn(
    name: str, size: int, widths: tuple[int, int], steps: int, rng: np.random.Generator
) -> Network:
    """conv(2->w0) 3x3 p1 - IF - avgpool 2 - conv(w0->w1) 3x3 p1 - IF - avgpool 2 - flatten -
    linear 10 - IF on ``2 x size x size`` events."""
    w0, w1 = widths
    side = (size // 2) // 2
    layers: list[Layer] = [
        _conv(rng, "conv1", 2, w0),
        IF("sn1"),
        AvgPool("pool1", 2),
        _conv(rng, "conv2", w0, w1),
        IF("sn2"),
        AvgPool("pool2", 2),
        Flatten("flat"),
        _lin(rng, "fc", w1 * side * side, 10),
        IF("out"),
    ]
    return Network(name, (2, size, size), "events", steps, layers)


def preact_resnet18(
    name: str, size: int, widths: tuple[int, int, int, int], steps: int, rng: np.random.Generator
) -> Network:
    """PreAct-ResNet-18 as snnsim's ``dsr-preresnet18`` without batch norm and biases: stem conv
    3x3 (static input, computed once), 4 stages of 2 pre-activation blocks (strides 1, 2, 2, 2;
    1x1 conv shortcut where the shape changes), head IF - avgpool - IF - flatten - linear 10 -
    IF."""
    layers: list[Layer] = [_conv(rng, "stem", 3, widths[0])]
    c, side = widths[0], size
    for i, w in enumerate(widths):
        for j in range(2):
            stride = 2 if (i > 0 and j == 0) else 1
            n = f"b{i + 1}{j + 1}"
            short = (
                _conv(rng, f"{n}.short", c, w, k=1, s=stride, p=0)
                if stride != 1 or c != w
                else None
            )
            layers.append(
                Block(
                    n,
                    IF(f"{n}.sn1"),
                    _conv(rng, f"{n}.conv1", c, w, s=stride),
                    IF(f"{n}.sn2"),
                    _conv(rng, f"{n}.conv2", w, w),
                    short,
                )
            )
            c, side = w, (side + stride - 1) // stride
    pool = 1 << (side.bit_length() - 1)  # the map is side x side; side is a power of two here
    layers += [
        IF("head.sn1"),
        AvgPool("head.pool", pool),
        IF("head.sn2"),
        Flatten("head.flat"),
        _lin(rng, "fc", c * (side // pool) ** 2, 10),
        IF("out"),
    ]
    return Network(name, (3, size, size), "static", steps, layers, input_exp=6)


def vgg11(
    name: str, size: int, widths: tuple[int, ...], steps: int, rng: np.random.Generator
) -> Network:
    """VGG-11 as snnsim's ``dsr-vgg11`` without batch norm, biases and dropout: stages
    w0 / w1 / w2-w2 / w3-w3 / w3-w3 of conv 3x3 p1 - IF, each stage ending with an average
    pool 2 (48 -> 24 -> 12 -> 6 -> 3 -> 1), then flatten - linear 10 - IF."""
    stages = [[widths[0]], [widths[1]], [widths[2]] * 2, [widths[3]] * 2, [widths[3]] * 2]
    layers: list[Layer] = []
    c, side, k = 2, size, 0
    for si, stage in enumerate(stages):
        for w in stage:
            k += 1
            layers += [_conv(rng, f"conv{k}", c, w), IF(f"sn{k}")]
            c = w
        if side >= 2:
            layers.append(AvgPool(f"pool{si + 1}", 2))
            side //= 2
    layers += [Flatten("flat"), _lin(rng, "fc", c * side * side, 10), IF("out")]
    return Network(name, (2, size, size), "events", steps, layers)


WORKLOADS = ("A", "B", "C", "D", "E")
BIG_BATCH = {"A": 64, "B": 32, "C": 32, "D": 32, "E": 32}


def make_network(
    workload: str, *, tiny: bool = False, seed: int = 0, input_rate: float | None = None
) -> Network:
    """The uncalibrated network of ``workload`` (thresholds 0; see :func:`calibrate`).
    ``tiny``: a reduced version with the same structure (for tests and smoke checks)."""
    rng = np.random.default_rng([seed, ord(workload)])
    if workload == "A":
        sizes = (64, 32, 32, 10) if tiny else (784, 800, 800, 10)
        net = mlp("A", sizes, 5 if tiny else 20, "static", rng)
        net.description = "MLP 784-800-800-10 IF, T=20, static input"
        net.input_note = "MNIST-5k test images, pixels rounded to multiples of 1/128"
    elif workload == "B":
        net = event_cnn(
            "B", 12 if tiny else 34, (8, 16) if tiny else (32, 64), 4 if tiny else 10, rng
        )
        net.description = (
            "2x34x34 events (5 % ones per frame), T=10: conv32 3x3 p1 - IF - avgpool2 - "
            "conv64 3x3 p1 - IF - avgpool2 - flatten - linear 10 - IF"
        )
    elif workload == "C":
        w = (4, 8, 8, 8) if tiny else (64, 128, 256, 512)
        net = preact_resnet18("C", 16 if tiny else 32, w, 3 if tiny else 5, rng)
        net.description = "PreAct-ResNet-18, 3x32x32 static input, T=5, thresholds for ~10 % firing"
        net.input_note = "random images: N(0, 40) rounded, clipped to [-127, 127], times 2**-6"
    elif workload == "D":
        w = (4, 8, 8, 8) if tiny else (64, 128, 256, 512)
        net = vgg11("D", 16 if tiny else 48, w, 3 if tiny else 10, rng)
        net.description = "VGG-11 on 2x48x48 DVS-like events (5 % ones per frame), T=10"
    elif workload == "E":
        sizes = (40, 16, 16, 5) if tiny else (700, 256, 256, 20)
        net = mlp("E", sizes, 8 if tiny else 100, "events", rng)
        net.description = "700-channel audio-like events (5 % ones per step), 700-256-256-20, T=100"
    else:
        raise ValueError(f"workload must be one of {WORKLOADS}, got {workload!r}")
    if tiny:
        net.description = "tiny version (test size) of " + net.description
    if net.input_kind == "events":
        net.input_rate = 0.05 if input_rate is None else input_rate
        net.input_note = f"Bernoulli 0/1 frames, {net.input_rate:.1%} ones per frame"
    annotate(net)
    return net


def make_input(net: Network, batch: int, seed: int) -> np.ndarray:
    """A batch of inputs: float32 ``[B, *input_shape]`` (static) or ``[B, T, *input_shape]``
    0/1 frames (events); deterministic in ``seed``."""
    rng = np.random.default_rng([seed, batch, ord(net.name[0])])
    if net.input_kind == "events":
        shape = (batch, net.steps, *net.input_shape)
        return (rng.random(shape) < net.input_rate).astype(np.float32)
    if net.name == "A" and net.input_shape == (784,):
        return _mnist_batch(batch, seed)
    q = np.clip(np.rint(rng.normal(0.0, 40.0, size=(batch, *net.input_shape))), -127, 127)
    return (q * 2.0**-net.input_exp).astype(np.float32)


def _mnist_batch(batch: int, seed: int) -> np.ndarray:
    from snnsim.data import load_mnist5k_split

    images, _ = load_mnist5k_split("test")
    idx = np.random.default_rng(seed).choice(len(images), size=batch, replace=batch > len(images))
    pix = images[idx].reshape(batch, -1).astype(np.float64)
    return (np.rint(pix * 127) / 128).astype(np.float32)


# ---------------------------------------------------------------------- reference evaluation
@dataclass
class Trace:
    """What :func:`evaluate` computed: spikes of every IF layer (bool ``[T, B, *shape]``),
    exact SOPs and MACs per sample (snnsim's counting rules, docs/model-format.md §4), the
    largest value seen per node in grid units, and the output spike counts ``[B, n_out]``."""

    spikes: dict[str, torch.Tensor]
    sops_per_sample: float
    macs_per_sample: float
    max_units: dict[str, float]
    output: torch.Tensor

    def rates(self) -> dict[str, float]:
        """Spikes per neuron per step of every IF layer."""
        return {k: float(v.float().mean()) for k, v in self.spikes.items()}


def fan_map(h: int, w: int, k: int, s: int, p: int) -> np.ndarray:
    """For each input position of an ``h x w`` map: the number of conv windows containing it."""
    ho, wo = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
    fan = np.zeros((h, w), dtype=np.int64)
    for oy in range(ho):
        y0 = oy * s - p
        for ox in range(wo):
            x0 = ox * s - p
            fan[max(y0, 0) : min(y0 + k, h), max(x0, 0) : min(x0 + k, w)] += 1
    return fan


class _Evaluator:
    """Multi-step evaluation of a :class:`Network` on whole sequences ``[T, B, ...]``."""

    def __init__(self, net: Network, law: Law, dtype: torch.dtype, target: float | None) -> None:
        self.net, self.law, self.dtype, self.target = net, law, dtype, target
        self.spikes: dict[str, torch.Tensor] = {}
        self.max_units: dict[str, float] = {}
        self.sops = 0.0
        self.macs = 0.0
        self.batch = 0

    # values are (tensor, kind, q): kind "static" ([B, ...]), "sparse" or "dense" ([T, B, ...])
    def run(self, x: np.ndarray) -> Trace:
        t = torch.from_numpy(x).to(self.dtype)
        self.batch = t.shape[0]
        if self.net.input_kind == "events":
            val = (t.transpose(0, 1), "sparse", 0)
        else:
            val = (t, "static", self.net.input_exp)
        for layer in self.net.layers:
            val = self.layer(layer, val)
        out = val[0].sum(0)
        return Trace(
            self.spikes, self.sops / self.batch, self.macs / self.batch, self.max_units, out
        )

    def _check(self, name: str, units: float, limit: int = SUM_LIMIT) -> None:
        self.max_units[name] = max(self.max_units.get(name, 0.0), units)
        if units >= limit:
            raise ValueError(
                f"{self.net.name}/{name}: a membrane or sum of |terms| reaches {units:.3g} grid "
                f"units (limit {limit}); float32 results would not be exact"
            )

    def layer(
        self, layer: Layer, val: tuple[torch.Tensor, str, int]
    ) -> tuple[torch.Tensor, str, int]:
        x, kind, q = val
        if isinstance(layer, (Linear, Conv)):
            return self.weighted(layer, x, kind, q)
        if isinstance(layer, AvgPool):
            y = self._seq(lambda v: F.avg_pool2d(v, layer.k), x, kind)
            self._check(layer.name, float(x.abs().max()) * layer.k**2 * 2.0**q)
            return y, kind, q + 2 * int(math.log2(layer.k))
        if isinstance(layer, Flatten):
            return self._seq(lambda v: v.flatten(1), x, kind), kind, q
        if isinstance(layer, IF):
            return self.neuron(layer, x, kind, q), "sparse", 0
        return self.block(layer, x, kind, q)

    def _seq(self, fn: Any, x: torch.Tensor, kind: str) -> torch.Tensor:
        if kind == "static":
            return fn(x)
        y = fn(x.flatten(0, 1))
        return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])

    def weighted(
        self, layer: Linear | Conv, x: torch.Tensor, kind: str, q: int
    ) -> tuple[torch.Tensor, str, int]:
        w = float_weight(layer).to(self.dtype)
        if isinstance(layer, Linear):
            fn, fn_abs = (lambda v: F.linear(v, w)), (lambda v: F.linear(v, w.abs()))
        else:
            s, p = layer.stride, layer.padding
            fn = lambda v: F.conv2d(v, w, stride=s, padding=p)  # noqa: E731
            fn_abs = lambda v: F.conv2d(v, w.abs(), stride=s, padding=p)  # noqa: E731
        y = self._seq(fn, x, kind)
        bound = self._seq(fn_abs, x.abs(), kind)
        self._check(layer.name, float(bound.max()) * 2.0 ** (q + KW))
        self._count(layer, x, kind)
        return y, ("static" if kind == "static" else "dense"), q + KW

    def _fanout(self, layer: Linear | Conv, x: torch.Tensor) -> torch.Tensor:
        """Fan-out of every input element of one sample/step (``x.shape[-k:]``)."""
        if isinstance(layer, Linear):
            return torch.full((x.shape[-1],), float(layer.weight.shape[0]), dtype=torch.float64)
        o, _, k, _ = layer.weight.shape
        fan = fan_map(x.shape[-2], x.shape[-1], k, layer.stride, layer.padding)
        return torch.from_numpy(fan * o).to(torch.float64)

    def _count(self, layer: Linear | Conv, x: torch.Tensor, kind: str) -> None:
        fan = self._fanout(layer, x)
        if kind == "sparse":  # every nonzero input element, every step
            nz = (x != 0).to(torch.float64)
            per_pos = nz.sum(dim=tuple(range(nz.dim() - fan.dim())))
            self.sops += float((per_pos * fan).sum())
        elif kind == "static":  # all input elements, once
            channels = 1 if isinstance(layer, Linear) else x.shape[1]
            self.macs += float(fan.sum()) * channels * self.batch
        else:
            raise ValueError(f"{layer.name}: a weighted layer on a dense input is not modelled")

    def neuron(self, layer: IF, x: torch.Tensor, kind: str, q: int) -> torch.Tensor:
        steps = self.net.steps
        seq = x.unsqueeze(0).expand(steps, *x.shape) if kind == "static" else x
        if self.target is not None:
            layer.theta = calibrate_theta(seq, q, self.target, self.law)
        if layer.theta < 1:
            raise ValueError(f"{self.net.name}/{layer.name}: threshold not set (calibrate first)")
        s, umax = if_run(seq, layer.theta_value, self.law)
        self._check(layer.name, umax * 2.0**q, UNIT_LIMIT)
        self.spikes[layer.name] = s.bool()
        return s

    def block(self, b: Block, x: torch.Tensor, kind: str, q: int) -> tuple[torch.Tensor, str, int]:
        s = self.neuron(b.sn1, x, kind, q)
        y, _, qy = self.weighted(b.conv1, s, "sparse", 0)
        s2 = self.neuron(b.sn2, y, "dense", qy)
        y, _, qy = self.weighted(b.conv2, s2, "sparse", 0)
        if b.short is None:
            sc, qs = s, 0
        else:
            sc, _, qs = self.weighted(b.short, s, "sparse", 0)
        out = y + sc
        self._check(f"{b.name}.add", float((y.abs() + sc.abs()).max()) * 2.0 ** max(qy, qs))
        return out, "dense", max(qy, qs)


def if_run(seq: torch.Tensor, theta: float, law: Law) -> tuple[torch.Tensor, float]:
    """IF neurons over ``seq`` ``[T, ...]``: spikes (same dtype, 0/1) and the largest |U|."""
    v = torch.zeros_like(seq[0])
    out = torch.empty_like(seq)
    umax = 0.0
    for t in range(seq.shape[0]):
        u = v + seq[t]
        umax = max(umax, float(u.abs().max()))
        s = (u >= theta).to(seq.dtype)
        out[t] = s
        v = u - s * theta if law == "subtract" else u * (1 - s)
    return out, umax


def calibrate_theta(seq: torch.Tensor, q: int, target: float, law: Law) -> int:
    """The threshold (in grid units ``2**-q``, >= 1) whose firing rate on ``seq`` is closest to
    ``target``; the rate does not increase with the threshold, so a bisection finds it."""
    units = seq.to(torch.float64) * 2.0**q  # integers, exact in float64

    def rate(theta: int) -> float:
        return float(if_run(units, float(theta), law)[0].mean())

    hi = max(2, int(units.clamp(min=0).cumsum(0).max()) + 2)  # no neuron reaches it: rate 0
    lo = 1
    if rate(lo) <= target:
        return lo
    while hi - lo > 1:  # invariant: rate(lo) > target >= rate(hi)
        mid = (lo + hi) // 2
        if rate(mid) > target:
            lo = mid
        else:
            hi = mid
    return lo if abs(rate(lo) - target) < abs(rate(hi) - target) else hi


def evaluate(
    net: Network,
    x: np.ndarray,
    *,
    law: Law = "subtract",
    dtype: torch.dtype = torch.float32,
    target: float | None = None,
) -> Trace:
    """Evaluate ``net`` on ``x`` with plain torch ops, layer by layer over all steps, and check
    the exactness bound. With ``target``, set each IF's threshold (in order) to the one whose
    firing rate on ``x`` is closest to ``target`` first."""
    with torch.no_grad():
        return _Evaluator(net, law, dtype, target).run(x)


def calibrate(net: Network, *, batch: int, seed: int = 1234, target: float | None = None) -> Trace:
    """Set the thresholds of ``net`` for ``target`` firing (default ``net.target_rate``) on a
    calibration batch of its own inputs (seed ``seed``, distinct from the timing inputs)."""
    x = make_input(net, batch, seed)
    net.target_rate = net.target_rate if target is None else target
    return evaluate(net, x, dtype=torch.float64, target=net.target_rate)


# ---------------------------------------------------------------------- snnsim export
def to_graph(net: Network, precision: str) -> Any:
    """The same network as a ``snnsim.Graph``: ``"float32"`` (dsr_if with fire = theta) or
    ``"int"`` (int8 weights, thresholds in accumulator units, sum pools instead of average pools
    with the 1/k^2 folded into the units, and a fixed-point shift putting an identity shortcut's
    spikes on the conv grid). Raises ``snnsim.ModelError`` if snnsim cannot express it."""
    import snnsim

    is_int = precision == "int"
    scale = 2.0**-net.input_exp if (is_int and net.input_kind == "static") else None
    g = snnsim.Graph(
        input_shape=tuple(net.input_shape),
        precision="int" if is_int else "float32",
        input_kind=net.input_kind,  # type: ignore[arg-type]
        input_scale=scale,
    )
    cur, q = "input", net.input_exp
    for layer in net.layers:
        cur, q = _graph_layer(g, layer, cur, q, is_int)
    g.set_output(cur)
    g.validate()
    return g


def _graph_weighted(g: Any, layer: Linear | Conv, cur: str, is_int: bool) -> str:
    w = layer.weight if is_int else float_weight(layer).numpy()
    if isinstance(layer, Linear):
        return g.linear(layer.name, cur, w)
    return g.conv2d(layer.name, cur, w, stride=layer.stride, padding=layer.padding)


def _graph_if(g: Any, layer: IF, cur: str, is_int: bool) -> str:
    th = layer.theta if is_int else np.float32(layer.theta_value)
    return g.dsr_if(layer.name, cur, theta=th, fire=th)


def _graph_layer(g: Any, layer: Layer, cur: str, q: int, is_int: bool) -> tuple[str, int]:
    if isinstance(layer, (Linear, Conv)):
        return _graph_weighted(g, layer, cur, is_int), q + KW
    if isinstance(layer, AvgPool):
        if is_int:
            return g.sumpool2d(layer.name, cur, layer.k), q + 2 * int(math.log2(layer.k))
        return g.avgpool2d(layer.name, cur, layer.k), q + 2 * int(math.log2(layer.k))
    if isinstance(layer, Flatten):
        return g.flatten(layer.name, cur), q
    if isinstance(layer, IF):
        return _graph_if(g, layer, cur, is_int), 0
    s = _graph_if(g, layer.sn1, cur, is_int)
    y = _graph_if(g, layer.sn2, _graph_weighted(g, layer.conv1, s, is_int), is_int)
    y = _graph_weighted(g, layer.conv2, y, is_int)
    if layer.short is not None:
        sc = _graph_weighted(g, layer.short, s, is_int)
    elif is_int:  # spikes (grid 1) onto the conv grid 2**-KW: (2^(KW+1)*s + 1) >> 1 = 2^KW*s
        sc = g.scale(f"{layer.name}.shift", s, m=np.array([2 ** (KW + 1)]), f=1)
    else:
        sc = s
    return g.add(f"{layer.name}.add", y, sc), KW
