"""Export of trained networks (DSR and Dspike) to snnsim network files (docs/model-format.md).

:func:`export` (and :func:`export_graph`, which returns the :class:`~snnsim.graph.Graph` without
writing it) turns a trained network into a float32 or an integer-exact graph. Supported: the
sequential :class:`~snnsim.nn.net.DSRNet` and :class:`~snnsim.nn.dspike.DspikeNet`
models, the DSR pre-activation ResNets (:class:`~snnsim.models.dsr_nets.PreActBlock`, the DSR
head) and the Dspike ResNet (:class:`~snnsim.nn.dspike.BasicBlockTD`, global average pool):

* batch norm (over time, evaluation statistics) directly after a conv/linear is folded into it;
  batch norm on a residual stream (pre-activation blocks, the DSR head) becomes a per-channel
  ``scale`` node (``x*scale + shift``) in front of its neuron;
* the value a spike carries (``theta`` for DSR IF, ``theta/dt`` for DSR LIF, 1 for Dspike) is
  folded into the next weighted layer, so the engine moves unit events (where spikes reach a
  neuron through a pool, a float ``scale`` node multiplies them first, as torch does); ``alpha``
  sets the fire level ``fire = alpha*theta`` while the reset subtracts ``theta``;
* residual connections are ``add`` nodes; a branch of unit spikes (the identity shortcut of a
  pre-activation block or of the Dspike block) is scaled by the value its spikes carry (float)
  or rescaled onto the other branch's grid (int) first;
* conv/linear biases (the pre-activation blocks' convs and shortcut convs, the classifier) are
  kept: folded with a following batch norm, or added to the accumulator;
* the DSR readout: the last neuron layer's spike count (IF) or, for LIF, whose readout weights
  step ``n`` by ``lambda^(T-n)``, a leaky ``integrate`` (leak ``lambda``) of its spikes — the
  same argmax; the Dspike output layer is ``linear -> integrate``.

Integer modes (``"int8"``, ``"int4"``, ``"int16"``, docs/semantics.md §2):

* weights quantised symmetrically (round half to even, clipped) with one scale per layer or, with
  ``per_channel=True``, per output channel (the output layer of a Dspike network keeps one scale
  so its logits stay comparable); every weighted layer's accumulator scale is its weight scale
  times the scale of the integers it receives (``input_scale`` for the static input, the folded
  spike value for spikes, ``1/k^2`` after a pool); a layer's scale is enlarged where its
  worst-case accumulator over ``T + 1`` steps would leave int32;
* average pools become ``sumpool2d`` with ``1/k^2`` folded into what follows (a pool feeding a
  neuron gets an exact integer gain in front of the neuron instead);
* the branches of an ``add`` are brought to one integer grid (per channel, the finest of the
  branches' scales unless int32 bounds need a coarser one) by fixed-point ``scale`` nodes
  ``(m*x + 2^(f-1)) >> f``; batch norm on a residual stream is a fixed-point ``scale`` with a
  shift onto a grid where the next threshold is near 2^16 units;
* biases int32 in the accumulator scale; thresholds ``theta_q = max(1, round(theta/s))`` and
  ``fire_q = max(1, round(alpha*theta_q))``; Dspike ``fire_q = max(1, round(vth/s))``;
* LIF leak ``lambda`` and input factor ``(1-lambda)`` as fixed-point ``(m, f)`` pairs; the DSR
  LIF input factor also carries a gain ``G >= 1`` that puts the membrane on a finer grid
  (``theta_q`` near 2^24) where the int32 range allows it; both factors keep all the fraction
  bits int32 allows (``f`` up to 31); the LIF readout integrates ``R*s`` (``R`` a power of two,
  the membrane kept below 2^30) with ``leak_m = round(lambda*2^f)`` (:func:`lif_readout_int`);
* the static input is quantised to 8 bits with ``input_scale``: unsigned, ``[0, 255]``
  (``input.signed`` false), when the calibration data (else the known preprocessing: a run's
  dataset gives images in [0, 1], then its normalisation) are non-negative, with step
  ``max|calibration|/255`` (1/255 for images in [0, 1]: lossless for 8-bit images); signed,
  ``[-128, 127]``, otherwise, with step ``max|calibration|/127`` (a bare model without
  calibration data: 1/127); ``input_signed`` and ``input_scale`` choose explicitly.

Anything else (ReLU ANNs, pools with padding, grouped convs, a neuron not fed by a conv/linear,
batch norm, pool or residual add...) raises :class:`ExportError` naming the module and the
reason.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .graph import Graph, InputKind
from .models.dsr_nets import PreActBlock
from .nn.dspike import (
    AvgPoolTD,
    BasicBlockTD,
    ConvTD,
    DspikeNet,
    DspikeNeuron,
    FlattenTD,
    GlobalAvgPoolTD,
    LinearTD,
)
from .nn.layers import (
    AvgPoolT,
    BatchNorm1dT,
    BatchNormT,
    ConvT,
    DropoutT,
    DSRNeuron,
    FlattenT,
    LinearT,
)
from .nn.net import DSRNet
from .nn.recurrent import RecurrentDspikeNeuron, RecurrentDSRNeuron
from .nn.tdbn import TdBN

__all__ = [
    "ExportError",
    "ExportMode",
    "QMAX",
    "TrainedRun",
    "export",
    "export_graph",
    "load_trained",
    "neuron_nodes",
    "weight_scale",
]

ExportMode = Literal["float32", "int8", "int4", "int16"]
#: Largest integer weight of each integer mode (symmetric: weights lie in ``[-QMAX-1, QMAX]``).
QMAX = {"int4": 7, "int8": 127, "int16": 32767}
_BITS = {"int4": 4, "int8": 8, "int16": 16}
_I32 = 2**31 - 1
_THETA_TARGET = 2.0**12  # membrane resolution sought for DSR neurons (theta_q near this)
_STREAM_GRID = (
    2.0**16
)  # int: units per threshold of a neuron fed by batch norm on a residual stream
_LIF_THETA_TARGET = 2.0**24  # membrane resolution sought for DSR LIF neurons (theta_q near this)
_FX_F = 31  # fraction bits sought for LIF leaks and input factors (lowered until m fits int32)
_READOUT_ROOM = 2.0**30  # int LIF readout: bound on its membrane (headroom below int32)


class ExportError(ModelError):
    """A network cannot be exported: the message names the module and the reason."""


# ---------------------------------------------------------------------- the modules export knows
_WEIGHTED = (ConvT, LinearT, ConvTD, LinearTD)
_BATCH_NORMS = (BatchNormT, BatchNorm1dT, TdBN)
_NEURONS = (DSRNeuron, DspikeNeuron, RecurrentDSRNeuron)  # RecurrentDspikeNeuron is a Dspike
_RECURRENT = (RecurrentDspikeNeuron, RecurrentDSRNeuron)
_POOLS = (AvgPoolT, AvgPoolTD)
_FLATTENS = (FlattenT, FlattenTD)
_DROPOUTS = (DropoutT, nn.Dropout)
WeightedLayer = ConvT | LinearT | ConvTD | LinearTD
BatchNormLayer = BatchNormT | BatchNorm1dT | TdBN
NeuronLayer = DSRNeuron | DspikeNeuron | RecurrentDSRNeuron
Network = DSRNet | DspikeNet


# ---------------------------------------------------------------------- parsed modules
@dataclass
class _Weighted:
    where: str
    kind: str  # "linear" | "conv2d"
    weight: np.ndarray  # float64, BN folded
    bias: np.ndarray  # float64 [out]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass
class _Neuron:
    where: str
    kind: str  # "dsr_if" | "dsr_lif" | "dspike_lif"
    module: NeuronLayer


@dataclass
class _Pool:
    where: str
    kernel: tuple[int, int]
    stride: tuple[int, int]


@dataclass
class _Val:
    """A value of the graph being built: its node, per-sample shape, ``carry`` (per channel,
    the true value of one unit of the graph value), ``bound`` (largest |graph value|, for the
    int32 checks) and whether it holds a neuron's unit spikes."""

    node: str
    shape: tuple[int, ...]
    carry: np.ndarray
    bound: float
    spikes: bool = False


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _check_pool(where: str, m: AvgPoolT | AvgPoolTD) -> _Pool:
    if _pair(m.padding) != (0, 0):
        raise ExportError(
            f"module {where!r} ({type(m).__name__}): average pools with padding cannot be exported"
        )
    if m.ceil_mode:
        raise ExportError(
            f"module {where!r} ({type(m).__name__}): ceil_mode pools cannot be exported"
        )
    if getattr(m, "divisor_override", None):
        raise ExportError(
            f"module {where!r} ({type(m).__name__}): divisor_override is not supported"
        )
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    return _Pool(where, k, s)


def _weighted(where: str, m: WeightedLayer) -> _Weighted:
    w = m.weight.detach().double().cpu().numpy()
    b = m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0])
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            raise ExportError(
                f"module {where!r} (Conv2d): only numeric zero padding can be exported"
            )
        if m.groups != 1 or _pair(m.dilation) != (1, 1):
            raise ExportError(
                f"module {where!r} (Conv2d): grouped or dilated convolutions cannot be exported"
            )
        return _Weighted(where, "conv2d", w, b, _pair(m.stride), _pair(m.padding))
    return _Weighted(where, "linear", w, b)


def _bn_affine(where: str, m: BatchNormLayer) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation-mode batch norm as ``y = scale*x + shift`` per channel (float64)."""
    if isinstance(m, TdBN):
        scale, shift = m.fold()
        return scale.detach().double().cpu().numpy(), shift.detach().double().cpu().numpy()
    mean, var = m.running_mean, m.running_var
    if mean is None or var is None:
        raise ExportError(
            f"module {where!r} ({type(m).__name__}): batch norm without running statistics"
        )
    inv = 1.0 / np.sqrt(var.detach().double().cpu().numpy() + m.eps)
    g = m.weight.detach().double().cpu().numpy() if m.weight is not None else np.ones_like(inv)
    bt = m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros_like(inv)
    sc = g * inv
    return sc, bt - mean.detach().double().cpu().numpy() * sc


def _fold_bn(st: _Weighted, scale: np.ndarray, shift: np.ndarray) -> None:
    scale = np.broadcast_to(scale, st.bias.shape)
    shift = np.broadcast_to(shift, st.bias.shape)
    st.weight = st.weight * scale.reshape((-1,) + (1,) * (st.weight.ndim - 1))
    st.bias = st.bias * scale + shift


def _neuron(where: str, m: NeuronLayer) -> _Neuron:
    if isinstance(m, DspikeNeuron):
        return _Neuron(where, "dspike_lif", m)
    kind = "dsr_if" if m.cfg.kind == "if" else "dsr_lif"
    theta = float(m.theta.detach())
    if not theta > 0:
        raise ExportError(
            f"module {where!r} (DSRNeuron): threshold theta = {theta:.4g} is not > 0 (training "
            f"clamps it to cfg.bound before each forward; clamp it too)"
        )
    return _Neuron(where, kind, m)


# ---------------------------------------------------------------------- helpers
def _spike_value(n: _Neuron) -> float:
    """What one spike carries to the next layer (folded into its weights): the float32 value
    the training simulation multiplies the spikes by."""
    if isinstance(n.module, DspikeNeuron):
        return 1.0
    return float(n.module.spike_value().float())


def _theta_in(n: _Neuron) -> float:
    """The neuron's threshold in units of its input current."""
    m = n.module
    return float(m.vth) if isinstance(m, DspikeNeuron) else float(m.theta.detach())


def _quantise(w: np.ndarray, qmax: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantisation: ``(w_q, scale [out])`` with ``w ~ w_q * scale``."""
    flat = np.abs(w.reshape(w.shape[0], -1))
    amax = flat.max(axis=1) if per_channel else np.full(w.shape[0], flat.max())
    amax = np.where(amax > 0, amax, 1.0)
    scale = amax / qmax
    q = np.clip(np.rint(w / scale.reshape((-1,) + (1,) * (w.ndim - 1))), -qmax - 1, qmax)
    return q.astype(np.int64), scale


def weight_scale(weight: Any, mode: ExportMode, per_channel: bool = False) -> np.ndarray:
    """The symmetric quantisation step(s) the integer export uses for ``weight`` (a float array,
    output channels first, BN and the incoming spike value already folded): ``[out]`` float64,
    ``max|w|/qmax`` per layer (repeated) or per output channel; the integer weights are
    ``clip(rint(w/scale), -qmax-1, qmax)``. Public for quantisation-aware training
    (:mod:`snnsim.qat`); the export itself may still enlarge a scale to keep int32 accumulators
    in range."""
    if mode not in QMAX:
        raise ExportError(f"weight_scale: mode must be 'int8', 'int4' or 'int16', got {mode!r}")
    return _quantise(np.asarray(weight, dtype=np.float64), QMAX[mode], per_channel)[1]


def _fixed_point(values: Sequence[float], f: int = 16) -> tuple[list[np.ndarray], int]:
    """``(m, f)`` with ``m = round(v * 2^f)`` for every array in ``values`` (f lowered until every
    ``m`` fits int32)."""
    while True:
        ms = [np.rint(np.asarray(v, dtype=np.float64) * 2.0**f) for v in values]
        if all(np.all(np.abs(m) <= _I32) for m in ms) or f == 1:
            return [m.astype(np.int64) for m in ms], f
        f -= 1


def _ratio_fixed_point(r: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """``(m, f)`` with ``m / 2^f ~ r`` and the largest ``f <= 31`` for which ``|m|`` fits int32."""
    rmax = float(np.abs(r).max())
    if rmax >= 2.0**30:
        raise ExportError(
            f"{where}: rescale factor {rmax:.3g} does not fit a fixed-point multiplier"
        )
    f = 31 if rmax == 0 else int(min(31, math.floor(math.log2(_I32 / rmax))))
    m = np.rint(r * 2.0**f)
    while f > 1 and np.abs(m).max() > _I32:
        f -= 1
        m = np.rint(r * 2.0**f)
    return m.astype(np.int64), f


def _bound(wq: np.ndarray, xmax: float, bq: np.ndarray) -> float:
    """Largest |accumulator| a layer can produce for inputs bounded by ``xmax``."""
    return float((np.abs(wq.reshape(wq.shape[0], -1)).sum(axis=1) * xmax + np.abs(bq)).max())


def _chan(a: np.ndarray) -> np.ndarray:
    """A per-channel int parameter, ``[1]`` when all channels agree."""
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    return a[:1] if np.all(a == a[0]) else a


def _chan_f(a: np.ndarray) -> np.ndarray:
    """A per-channel float32 parameter, ``[1]`` when all channels agree."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    return a[:1] if np.all(a == a[0]) else a


# ---------------------------------------------------------------------- graph emission
class _Emitter:
    """Builds the graph value by value (see :class:`_Val`); one method per kind of step."""

    def __init__(self, g: Graph, mode: str, per_channel: bool, T: int) -> None:
        self.g = g
        self.integer = mode != "float32"
        self.qmax = QMAX.get(mode, 0)
        self.bits = _BITS.get(mode, 8)
        self.per_channel = per_channel
        self.T = T
        self.counter: dict[str, int] = {}

    def name(self, kind: str) -> str:
        self.counter[kind] = self.counter.get(kind, 0) + 1
        return f"{kind}{self.counter[kind]}"

    # ------------------------------------------------------------------ layers
    def weighted(self, v: _Val, st: _Weighted, is_out: bool = False) -> _Val:
        if (st.kind == "linear") != (len(v.shape) == 1):
            raise ExportError(
                f"module {st.where!r}: a {st.kind} layer cannot take a "
                f"{'flat' if len(v.shape) == 1 else '[C, H, W]'} input (flatten first)"
            )
        cin = st.weight.shape[1]
        if v.shape[0] != cin:
            raise ExportError(
                f"module {st.where!r}: expects {cin} input channels/features, gets {v.shape[0]}"
            )
        w = st.weight * v.carry.reshape((1, -1) + (1,) * (st.weight.ndim - 2))
        kw: dict[str, Any] = {}
        if st.kind == "conv2d":
            kw = {"stride": st.stride, "padding": st.padding}
            nm = self.name("conv")
        else:
            nm = self.name("fc")
        g = self.g
        if not self.integer:
            node = getattr(g, st.kind)(
                nm, v.node, w.astype(np.float32), st.bias.astype(np.float32), **kw
            )
            return _Val(node, tuple(g.shapes()[node]), np.ones(w.shape[0]), 0.0)
        qmax = self.qmax
        wq, s = _quantise(w, qmax, self.per_channel and not is_out)
        bq = np.rint(st.bias / s)
        bound = _bound(wq, v.bound, bq) * (self.T + 1)
        if bound > _I32:  # keep the accumulators and membranes inside int32
            s = s * (bound / _I32) * 1.01
            wq = np.clip(
                np.rint(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -qmax - 1, qmax
            ).astype(np.int64)
            bq = np.rint(st.bias / s)
        node = getattr(g, st.kind)(nm, v.node, wq, bq.astype(np.int64), weight_bits=self.bits, **kw)
        return _Val(node, tuple(g.shapes()[node]), s, _bound(wq, v.bound, bq))

    def pool(self, v: _Val, st: _Pool) -> _Val:
        if len(v.shape) != 3:
            raise ExportError(f"module {st.where!r}: a pool needs a [C, H, W] input")
        kh, kw = st.kernel
        if v.shape[1] < kh or v.shape[2] < kw:
            raise ExportError(
                f"module {st.where!r}: pool kernel {list(st.kernel)} larger than its input "
                f"{list(v.shape[1:])}"
            )
        if self.integer:
            node = self.g.sumpool2d(self.name("pool"), v.node, st.kernel, st.stride)
            return _Val(node, tuple(self.g.shapes()[node]), v.carry / (kh * kw), v.bound * kh * kw)
        node = self.g.avgpool2d(self.name("pool"), v.node, st.kernel, st.stride)
        return _Val(node, tuple(self.g.shapes()[node]), v.carry, v.bound)

    def flatten(self, v: _Val) -> _Val:
        if len(v.shape) == 1:
            return v
        per = int(np.prod(v.shape[1:]))
        node = self.g.flatten(self.name("flat"), v.node)
        return _Val(node, (v.shape[0] * per,), np.repeat(v.carry, per), v.bound, v.spikes)

    def unit(self, v: _Val) -> _Val:
        """Float: the value with carry 1 (a ``scale`` node multiplying by the carry if needed)."""
        if self.integer or np.all(v.carry == 1.0):
            return v
        node = self.g.scale(self.name("scale"), v.node, scale=_chan_f(v.carry))
        return _Val(node, v.shape, np.ones_like(v.carry), v.bound)

    def rescale(self, v: _Val, target: np.ndarray, where: str) -> _Val:
        """Int: the value on the grid ``target`` (per channel), by a fixed-point ``scale``."""
        target = np.broadcast_to(np.asarray(target, dtype=np.float64), v.carry.shape)
        if np.allclose(v.carry, target, rtol=1e-12, atol=0.0):
            return v
        m, f = _ratio_fixed_point(v.carry / target, where)
        node = self.g.scale(self.name("scale"), v.node, m=_chan(m), f=f)
        return _Val(node, v.shape, target.copy(), float(np.abs(m).max()) * v.bound / 2.0**f + 1.0)

    def gain(self, v: _Val, theta: float) -> _Val:
        """Int: an exact integer gain ``G`` (``fx(2G, x, 1) = G*x``) in front of a neuron fed by a
        pool, so that its threshold is resolved near 2^12 units (int32 bounds allowing)."""
        if not self.integer:
            return v
        units = float(np.min(theta / v.carry))
        G = 2 ** max(0, int(math.floor(math.log2(max(_THETA_TARGET / max(units, 1e-30), 1.0)))))
        G = min(G, 2**29)
        while G > 1 and (v.bound * G) * (self.T + 2) > _I32:
            G //= 2
        if G == 1:
            return v
        node = self.g.scale(self.name("scale"), v.node, m=np.array([2 * G]), f=1)
        return _Val(node, v.shape, v.carry / G, v.bound * G)

    def affine(self, v: _Val, sc: np.ndarray, sh: np.ndarray, theta: float, where: str) -> _Val:
        """Batch norm on a stream: ``y = sc*x + sh`` as a ``scale`` node. Int: onto the grid
        ``theta / 2^16`` of the neuron it feeds (coarser if int32 bounds need it)."""
        c = v.shape[0]
        if sc.shape != (c,):
            raise ExportError(
                f"module {where!r}: batch norm over {sc.shape[0]} channels on a value with {c}"
            )
        if not self.integer:
            node = self.g.scale(
                self.name("scale"),
                v.node,
                scale=(sc * v.carry).astype(np.float32),
                shift=sh.astype(np.float32),
            )
            return _Val(node, v.shape, np.ones(c), 0.0)
        true_bound = float(np.max(np.abs(sc) * v.carry * v.bound + np.abs(sh)))
        s_out = max(theta / _STREAM_GRID, true_bound * (self.T + 2) / _I32 * 1.01)
        m, f = _ratio_fixed_point(sc * v.carry / s_out, where)
        shift = np.rint(sh / s_out).astype(np.int64)
        node = self.g.scale(self.name("scale"), v.node, m=_chan(m), shift=_chan(shift), f=f)
        bound = float(np.abs(m).max()) * v.bound / 2.0**f + 1.0 + float(np.abs(shift).max())
        return _Val(node, v.shape, np.full(c, s_out), bound)

    def add(self, vals: list[_Val], where: str) -> _Val:
        shape = vals[0].shape
        if any(x.shape != shape for x in vals):
            raise ExportError(
                f"module {where!r}: residual branches of shapes {[list(x.shape) for x in vals]} "
                f"cannot be added"
            )
        if not self.integer:
            vals = [self.unit(x) for x in vals]
            node = self.g.add(self.name("add"), *[x.node for x in vals])
            return _Val(node, shape, np.ones(shape[0]), 0.0)
        target = np.min(np.stack([x.carry for x in vals]), axis=0)
        true_bound = sum(x.carry * x.bound for x in vals)
        target = np.maximum(target, true_bound * (self.T + 2) / _I32 * 1.01)
        vals = [self.rescale(x, target, where) for x in vals]
        node = self.g.add(self.name("add"), *[x.node for x in vals])
        return _Val(node, shape, target, float(sum(x.bound for x in vals)))

    # ------------------------------------------------------------------ neurons
    def neuron(self, v: _Val, st: _Neuron) -> _Val:
        g, m = self.g, st.module
        nm = self.name("sn")
        if not self.integer:
            v = self.unit(v)
            if isinstance(m, DspikeNeuron):
                node = g.dspike_lif(nm, v.node, fire=np.float32(m.vth), leak=np.float32(m.leak))
            else:
                cfg = m.cfg
                theta_t = m.theta.detach().float().cpu()
                fire_t = cfg.alpha * theta_t  # as the training simulation computes it (float32)
                if st.kind == "dsr_if":
                    node = g.dsr_if(nm, v.node, theta=theta_t.numpy(), fire=fire_t.numpy())
                else:
                    leak_t = torch.tensor(cfg.leak, dtype=torch.float32)
                    node = g.dsr_lif(
                        nm,
                        v.node,
                        theta=theta_t.numpy(),
                        fire=fire_t.numpy(),
                        leak=leak_t.numpy(),
                        gain=(1.0 - leak_t).numpy(),
                    )
        else:
            node = self._int_neuron(nm, v, st)
        return _Val(node, v.shape, np.full(v.shape[0], _spike_value(st)), 1.0, spikes=True)

    def _int_neuron(self, nm: str, v: _Val, st: _Neuron) -> str:
        g, m, s = self.g, st.module, v.carry
        if isinstance(m, DspikeNeuron):
            fire = np.maximum(1, np.rint(m.vth / s)).astype(np.int64)
            (leak_m,), f = _fixed_point([m.leak])
            return g.dspike_lif(nm, v.node, fire=_chan(fire), leak_m=leak_m.reshape(1), f=f)
        cfg = m.cfg
        theta = float(m.theta.detach().float())
        if st.kind == "dsr_if":
            theta_q = np.maximum(1, np.rint(theta / s))
            fire_q = np.maximum(1, np.rint(cfg.alpha * theta_q))
            return g.dsr_if(nm, v.node, theta=_chan(theta_q), fire=_chan(fire_q))
        lam = float(cfg.leak)
        # Membrane gain G: theta_q near 2^24 where the int32 range allows. Each step rounds the
        # two products by half a unit each; under the leak that adds up to about 1/(1 - lambda)
        # units, which must stay far below the int16 weights' resolution. For any number of
        # steps |U| <= G*|x|max + theta_q + 1/(1 - lambda) + 1 (the leak sums the input to at
        # most G*|x|max; a reset goes at most theta_q below the firing level).
        base = float(np.min(theta / s))
        room = _I32 / 1.01 - 2.0 / (1.0 - lam) - 2.0
        g_max = room / (v.bound + float(np.max(theta / s)) + 1.0)
        G = max(1.0, min(_LIF_THETA_TARGET / max(base, 1e-30), g_max))
        theta_q = np.maximum(1, np.rint(theta * G / s))
        fire_q = np.maximum(1, np.rint(cfg.alpha * theta_q))
        # All fraction bits int32 allows: with f = 16 the factors were off by up to 1e-4
        # (relative), enough to flip spikes of int16 networks that the float law does not flip.
        (leak_m, gain_m), f = _fixed_point([lam, (1.0 - lam) * G], f=_FX_F)
        return g.dsr_lif(
            nm,
            v.node,
            theta=_chan(theta_q),
            fire=_chan(fire_q),
            leak_m=leak_m.reshape(1),
            gain_m=gain_m.reshape(1),
            f=f,
        )

    def recurrent(self, v: _Val, st: _Neuron, rec: nn.Linear, where: str) -> _Val:
        """A recurrent neuron layer: ``neuron(v + linear_rec(delay(neuron)))``, the delay
        reading the layer's own spikes of the previous step."""
        if len(v.shape) != 1:
            raise ExportError(f"module {where!r}: a recurrent layer needs a flat input")
        n = v.shape[0]
        sn = f"sn{self.counter.get('sn', 0) + 1}"  # the name neuron() gives below
        d = self.g.delay(self.name("delay"), sn, shape=(n,))
        prev = _Val(d, (n,), np.full(n, _spike_value(st)), 1.0, spikes=True)
        w = rec.weight.detach().double().cpu().numpy()
        b = (
            rec.bias.detach().double().cpu().numpy()
            if rec.bias is not None
            else np.zeros(n, dtype=np.float64)
        )
        r = self.weighted(prev, _Weighted(f"{where}.rec", "linear", w, b))
        out = self.neuron(self.add([v, r], where), st)
        if out.node != sn:  # pragma: no cover - a bug of this module
            raise ExportError(f"module {where!r}: recurrent neuron named {out.node!r}, not {sn!r}")
        return out

    def lif_readout(self, v: _Val, lam: float) -> _Val:
        """A leaky integrator of the output spikes: ``V = lambda*V + s`` (int: ``R*s`` into
        ``fx(leak_m, V, f)``, see :func:`lif_readout_int`), the DSR LIF readout up to a positive
        factor."""
        g = self.g
        if not self.integer:
            node = g.integrate("out", v.node, leak=np.float32(lam))
        else:
            R, leak_m, f = lif_readout_int(lam)
            x = g.scale(self.name("scale"), v.node, m=np.array([2 * R]), f=1)
            node = g.integrate("out", x, leak_m=np.array([leak_m]), f=f)
        return _Val(node, v.shape, v.carry, 0.0)


def lif_readout_int(lam: float) -> tuple[int, int, int]:
    """The integer DSR LIF readout ``V = fx(leak_m, V, f) + R*s``: ``(R, leak_m, f)`` with
    ``leak_m / 2^f`` the leak ``lam`` to all the fraction bits int32 allows and ``R`` (a power
    of two) the value of one spike, as large as keeps ``V`` below ``2^30`` for any number of
    steps (``V <= (R + 1) / (1 - lam)``). Each step rounds by at most half a unit, so two
    classes whose float readouts differ by more than about ``T / R`` of a spike keep their
    order (with ``R = 4096`` and ``f = 16`` near-ties of the float readout were reordered)."""
    if not 0.0 < lam < 1.0:
        raise ExportError(f"LIF readout: leak lambda must lie in (0, 1), got {lam!r}")
    steps = 1.0 / (1.0 - lam) + 1.0  # bound on sum_k lam^k, plus one for the rounding
    R = 2 ** max(0, min(29, int(math.floor(math.log2(_READOUT_ROOM / steps))) - 1))
    (leak_m,), f = _fixed_point([lam], f=_FX_F)
    return R, int(leak_m), f


# ---------------------------------------------------------------------- walking the model
class _Walker:
    """Emits a model's modules in order (look-ahead for batch norm folding and for pools that
    feed a neuron)."""

    def __init__(self, em: _Emitter, family: str) -> None:
        self.em = em
        self.family = family
        #: node name -> the torch modules it was made from (a conv and its folded batch norm...)
        self.modules: dict[str, list[str]] = {}

    def _claim(self, before: int, wheres: list[str]) -> None:
        """Map the nodes emitted since ``before`` (not claimed by a nested block) to ``wheres``."""
        for n in self.em.g.nodes[before:]:
            self.modules.setdefault(n.name, list(wheres))

    def run(self, items: list[tuple[str, nn.Module]], v: _Val, last_is_out: bool = False) -> _Val:
        em = self.em
        items = [(w, m) for w, m in items if not isinstance(m, _DROPOUTS)]  # identity at inference
        i = 0
        while i < len(items):
            where, m = items[i]
            before, wheres = len(em.g.nodes), [where]
            nxt = items[i + 1][1] if i + 1 < len(items) else None
            nxt_neuron = nxt if isinstance(nxt, _NEURONS) else None
            if isinstance(m, _WEIGHTED):
                st = _weighted(where, m)
                if isinstance(nxt, _BATCH_NORMS):
                    _fold_bn(st, *_bn_affine(items[i + 1][0], nxt))
                    wheres.append(items[i + 1][0])
                    i += 1
                is_out = last_is_out and i == len(items) - 1
                v = em.weighted(v, st, is_out=is_out)
            elif isinstance(m, _BATCH_NORMS):
                if nxt_neuron is None:
                    raise ExportError(
                        f"module {where!r} ({type(m).__name__}): batch norm must directly follow a "
                        f"conv/linear layer (folded) or directly precede a neuron (a scale node)"
                    )
                sn = _neuron(items[i + 1][0], nxt_neuron)
                v = em.affine(v, *_bn_affine(where, m), theta=_theta_in(sn), where=where)
            elif isinstance(m, _NEURONS):
                v = self._neuron(where, m, v)
            elif isinstance(m, (*_POOLS, GlobalAvgPoolTD)):
                pool = _check_pool(where, m) if isinstance(m, _POOLS) else self._global(where, v)
                if nxt_neuron is not None:
                    v = em.unit(v)  # float: torch pools the values the spikes carry
                v = em.pool(v, pool)
                if isinstance(m, GlobalAvgPoolTD):
                    v = em.flatten(v)
                if nxt_neuron is not None:
                    v = em.gain(v, _theta_in(_neuron(items[i + 1][0], nxt_neuron)))
            elif isinstance(m, _FLATTENS):
                if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
                    raise ExportError(
                        f"module {where!r} (Flatten): only flattening of each whole sample is "
                        "supported"
                    )
                v = em.flatten(v)
            elif type(m) is PreActBlock:
                v = self.preact(where, m, v)
            elif type(m) is BasicBlockTD:
                v = self.basic(where, m, v)
            else:
                what = (
                    "conv/linear, batch norm, DSR/Dspike neurons, average pools, flatten, dropout, "
                    "PreActBlock and BasicBlockTD"
                )
                raise ExportError(
                    f"module {where!r} ({type(m).__name__}): not supported by export ({what} only)"
                )
            self._claim(before, wheres)
            i += 1
        return v

    def _neuron(self, where: str, m: NeuronLayer, v: _Val) -> _Val:
        """A neuron layer, recurrent (``neuron(v + linear(delay(neuron)))``) or not."""
        if isinstance(m, _RECURRENT):
            return self.em.recurrent(v, _neuron(where, m), m.rec, where)
        return self.em.neuron(v, _neuron(where, m))

    @staticmethod
    def _global(where: str, v: _Val) -> _Pool:
        if len(v.shape) != 3:
            raise ExportError(f"module {where!r}: a global average pool needs a [C, H, W] input")
        return _Pool(where, (v.shape[1], v.shape[2]), (v.shape[1], v.shape[2]))

    def preact(self, where: str, blk: PreActBlock, x: _Val) -> _Val:
        """``s = neuron(BN(x))``, then ``(conv -> BN -> neuron -> conv)(s) + shortcut(s)``: the
        shortcut is the first neuron's spikes themselves (identity) or a conv of them, so the
        ``add`` sums spikes (float: times the value they carry; int: put on the conv branch's
        grid by a fixed-point ``scale``) and currents, as in the Dspike ResNet."""
        for name in ("bn1", "bn2"):
            if not isinstance(getattr(blk, name), nn.BatchNorm2d):
                raise ExportError(f"module {where}.{name!r}: expected a batch norm")
        for name in ("sn1", "sn2"):
            if not isinstance(getattr(blk, name), _NEURONS):
                raise ExportError(
                    f"module '{where}.{name}' ({type(getattr(blk, name)).__name__}): a spiking "
                    f"neuron is needed (an ANN block has no spiking network to export)"
                )
        if blk.shortcut is not None and not isinstance(blk.shortcut, _WEIGHTED):
            raise ExportError(
                f"module '{where}.shortcut' ({type(blk.shortcut).__name__}): expected a conv or "
                f"no shortcut (identity)"
            )
        s = self.run([(f"{where}.bn1", blk.bn1), (f"{where}.sn1", blk.sn1)], x)
        sc = s if blk.shortcut is None else self.run([(f"{where}.shortcut", blk.shortcut)], s)
        inner = [
            (f"{where}.conv1", blk.conv1),
            (f"{where}.bn2", blk.bn2),
            (f"{where}.sn2", blk.sn2),
        ]
        drop = getattr(blk, "dropout", None)
        if drop is not None:
            inner.append((f"{where}.dropout", drop))
        y = self.run(inner + [(f"{where}.conv2", blk.conv2)], s)
        return self.em.add([y, sc], where)

    def basic(self, where: str, blk: BasicBlockTD, x: _Val) -> _Val:
        """``neuron((conv-BN-neuron-conv-BN) + shortcut)``; the shortcut is the input spikes or
        ``[pool ->] conv1x1 -> BN`` of them."""
        y = self.run(
            [
                (f"{where}.conv1", blk.conv1),
                (f"{where}.bn1", blk.bn1),
                (f"{where}.sn1", blk.sn1),
                (f"{where}.conv2", blk.conv2),
                (f"{where}.bn2", blk.bn2),
            ],
            x,
        )
        sc = self.run([(f"{where}.shortcut.{n}", m) for n, m in blk.shortcut.named_children()], x)
        return self.run([(f"{where}.sn2", blk.sn2)], self.em.add([y, sc], where))


def _network(model: nn.Module) -> Network:
    """``model`` as the network it must be (an SNN DSRNet or a DspikeNet), else ExportError."""
    if isinstance(model, DSRNet):
        if model.is_ann:
            raise ExportError(
                "model (DSRNet): an ANN (ReLU in place of the neurons) has no spiking network to "
                "export"
            )
        return model
    if isinstance(model, DspikeNet):
        return model
    raise ExportError(
        f"model ({type(model).__name__}): only DSRNet and DspikeNet models can be exported"
    )


def _first_weighted(model: Network) -> WeightedLayer | None:
    for m in model.body.modules():
        if isinstance(m, _WEIGHTED):
            return m
    return None


# ---------------------------------------------------------------------- export
#: Per-sample shape of each dataset as its loader gives it (for checkpoints of conv networks).
DATASET_SHAPES: dict[str, tuple[int, ...]] = {
    "mnist5k": (1, 28, 28),
    "digits": (1, 8, 8),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "synthetic": (1, 12, 12),
}


def _preprocess_meta(
    model: Network,
    input_shape: tuple[int, ...],
    data_shape: Sequence[int] | None,
    normalize: Any,
) -> dict[str, Any] | None:
    """The ``preprocess`` entry of the file's metadata (static input only)."""
    if not model.static_input:
        return None
    shape = [int(d) for d in (data_shape if data_shape is not None else input_shape)]
    if int(np.prod(shape)) != int(np.prod(input_shape)):
        raise ExportError(
            f"export: data_shape {shape} does not hold the {int(np.prod(input_shape))} values of "
            f"input_shape {list(input_shape)}"
        )
    mean = std = None
    if normalize is not None:
        try:
            mean = [float(v) for v in np.atleast_1d(np.asarray(normalize[0], dtype=np.float64))]
            std = [float(v) for v in np.atleast_1d(np.asarray(normalize[1], dtype=np.float64))]
        except (TypeError, ValueError, IndexError):
            raise ExportError(
                f"export: normalize must be (mean, std) per channel, got {normalize!r}"
            ) from None
    return {
        "input_shape": shape,
        "rescale": 1.0,
        "mean": mean,
        "std": std,
        "flatten": shape != list(input_shape),
    }


def _normalized_range(pre: dict[str, Any] | None) -> tuple[float, float] | None:
    """The range of inputs in [0, 1] after the recorded normalisation (None without one)."""
    if pre is None or pre["mean"] is None:
        return None
    mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
    ends = np.stack([-mean / std, (1.0 - mean) / std])
    return float(ends.min()), float(ends.max())


def _unit_input_signed(normalize: Any) -> bool | None:
    """Whether images in [0, 1] need a signed input after ``normalize`` (``(mean, std)`` per
    channel, or None): True when some channel's normalised range goes below 0; None for a
    malformed ``normalize`` (reported by the export)."""
    if normalize is None:
        return False
    try:
        mean = np.atleast_1d(np.asarray(normalize[0], dtype=np.float64))
        std = np.atleast_1d(np.asarray(normalize[1], dtype=np.float64))
        with np.errstate(all="ignore"):
            return bool(np.min(np.minimum(-mean / std, (1.0 - mean) / std)) < 0)
    except (TypeError, ValueError, IndexError):
        return None


def _input_quant(
    given: float | None,
    signed: bool | None,
    calib: np.ndarray | None,
    pre: dict[str, Any] | None,
) -> tuple[float, bool]:
    """The static input's quantisation step and signedness (int modes), see
    :func:`export_graph`."""
    if signed is not None and not isinstance(signed, (bool, np.bool_)):
        raise ExportError(f"export: input_signed must be True, False or None, got {signed!r}")
    lo_hi: tuple[float, float] | None = None
    if calib is not None and calib.size and np.abs(calib).max() > 0:
        lo_hi = float(calib.min()), float(calib.max())
    elif _normalized_range(pre) is not None:
        lo_hi = _normalized_range(pre)
    if signed is None:
        # known non-negative input (calibration data or the recorded preprocessing): unsigned
        signed = lo_hi is None or lo_hi[0] < 0
    elif not signed and calib is not None and calib.size and float(calib.min()) < 0:
        raise ExportError(
            f"export: input_signed=False but the calibration data hold negative values "
            f"(min {float(calib.min()):.6g}); an unsigned input takes [0, 255] * input_scale"
        )
    scale = given
    if scale is None:
        top = 127.0 if signed else 255.0
        if lo_hi is not None:
            scale = max(abs(lo_hi[0]), abs(lo_hi[1])) / top
        else:
            scale = 1.0 / top  # inputs in [0, 1] (or [-1, 1] when signed)
    if not (math.isfinite(scale) and scale > 0):
        raise ExportError(f"export: input_scale must be a finite positive float, got {scale!r}")
    return float(scale), bool(signed)


def export_graph(
    model: nn.Module,
    mode: ExportMode = "int8",
    *,
    input_shape: Sequence[int] | None = None,
    per_channel: bool = False,
    calibration: Any = None,
    input_scale: float | None = None,
    normalize: Any = None,
    data_shape: Sequence[int] | None = None,
    source: dict[str, Any] | None = None,
    input_kind: InputKind | None = None,
    input_signed: bool | None = None,
) -> Graph:
    """The :class:`~snnsim.graph.Graph` of a trained ``model`` (a
    :class:`~snnsim.nn.net.DSRNet` or :class:`~snnsim.nn.dspike.DspikeNet`: sequential,
    or the registry's residual networks), validated.

    ``mode``: ``"float32"`` or an integer width (``"int8"``, ``"int4"``, ``"int16"``).
    ``input_shape``: per sample, ``(C, H, W)`` or ``(F,)``; inferred from ``calibration`` (a batch
    of inputs) or, for a network starting with [flatten ->] linear, as ``(in_features,)``.
    ``per_channel``: one weight scale per output channel (int modes). ``input_signed`` (int
    modes, static or sequence input): quantise the input to signed 8 bits, ``[-128, 127]``
    (True), or unsigned, ``[0, 255]`` (False, the file's ``input.signed`` false); default
    (None): unsigned when the ``calibration`` data are non-negative, else (with ``normalize``,
    for images in [0, 1]) when the normalised range is, signed otherwise (a sequence input:
    signed). ``input_scale``: the static input's quantisation step (int modes); default
    ``max|calibration|`` over 255 (unsigned) or 127 (signed), else (with ``normalize``) the
    largest normalised value of an input in [0, 1] over the same, else 1/255 (unsigned) or
    1/127 (signed).

    The graph's :attr:`~snnsim.graph.Graph.meta` records what the network was trained with
    (docs/model-format.md §1.1): ``T`` (the default number of steps of :func:`snnsim.run`), the
    input preprocessing (``normalize`` = ``(mean, std)`` per channel, as the training applied it
    to the loader's images; ``data_shape`` = the per-sample shape the loader gives, default the
    calibration batch's or ``input_shape``; a network that flattens its input first accepts both)
    and, per node, the torch modules it was made from. ``source``: extra JSON-able facts about
    the origin (run name, checkpoint...), stored as ``meta["source"]``.
    """
    if mode not in ("float32", "int8", "int4", "int16"):
        raise ExportError(
            f"export: mode must be 'float32', 'int8', 'int4' or 'int16', got {mode!r}"
        )
    net = _network(model)
    family = "dsr" if isinstance(net, DSRNet) else "dspike"
    in_kind: InputKind = input_kind or ("static" if net.static_input else "events")
    if in_kind not in ("static", "events", "sequence") or (
        (in_kind == "static") != bool(net.static_input)
    ):
        raise ExportError(
            f"export: input_kind {in_kind!r} does not fit a network with "
            f"{'static' if net.static_input else 'per-step'} input"
        )
    T = int(net.T)
    calib = None
    if calibration is not None:
        calib = (
            calibration.detach().cpu().numpy()
            if isinstance(calibration, torch.Tensor)
            else np.asarray(calibration)
        )
        if data_shape is None and in_kind == "static":
            data_shape = calib.shape[1:]
    if input_shape is None:
        if calib is not None:
            input_shape = calib.shape[1:] if in_kind == "static" else calib.shape[2:]
        else:
            first = _first_weighted(net)
            if first is None or not isinstance(first, nn.Linear):
                where = next((n for n, m in net.body.named_modules() if m is first), "body")
                raise ExportError(
                    f"module {'body.' + where!r}: give input_shape (e.g. (1, 28, 28)) for a "
                    f"network starting with a convolution"
                )
            input_shape = (first.in_features,)
    input_shape = tuple(int(d) for d in input_shape)
    pre = _preprocess_meta(net, input_shape, data_shape, normalize)
    integer = mode != "float32"
    # the static input's quantisation step and signedness (int modes only)
    q_scale, q_signed = None, True
    if integer and in_kind == "static":
        q_scale, q_signed = _input_quant(input_scale, input_signed, calib, pre)
    if integer and in_kind == "sequence":
        q_scale = float(input_scale) if input_scale is not None else 1.0
        q_signed = True if input_signed is None else bool(input_signed)
    g = Graph(
        input_shape=input_shape,
        precision="int" if integer else "float32",
        input_kind=in_kind,
        input_scale=q_scale,
        input_signed=q_signed,
    )
    em = _Emitter(g, mode, per_channel, T)
    # Carry of the input: its quantisation step (int static), else 1; bound: the largest
    # |input integer| (128 signed, 255 unsigned), event counts (16).
    carry = q_scale if q_scale is not None else 1.0
    c0 = input_shape[0]
    x_bound = 16.0 if in_kind == "events" else (128.0 if q_signed else 255.0)
    x = _Val("input", input_shape, np.full(c0, carry), x_bound)
    items = [(f"body.{n}", m) for n, m in net.body.named_children()]
    walker = _Walker(em, family)
    v = walker.run(items, x, last_is_out=(family == "dspike"))
    out_node = g.node(v.node) if v.node != "input" else None
    before = len(g.nodes)
    if isinstance(net, DSRNet):
        if out_node is None or out_node.op not in ("dsr_if", "dsr_lif"):
            last = items[-1][0] if items else "body"
            raise ExportError(
                f"module {last!r}: a DSR network must end with its readout neuron layer"
            )
        if out_node.op == "dsr_lif":
            assert net.cfg is not None  # _network refuses the ANN (cfg None)
            v = em.lif_readout(v, float(net.cfg.leak))
    else:
        if out_node is None or out_node.op not in ("linear",):
            last = items[-1][0] if items else "body"
            raise ExportError(
                f"module {last!r}: a Dspike network must end with its output linear layer"
            )
        v = _Val(g.integrate("out", v.node), v.shape, v.carry, 0.0)
    walker._claim(before, ["readout"])
    g.set_output(v.node)
    g.meta = _meta(net, family, mode, per_channel, pre, walker.modules, source)
    try:
        g.validate()
    except ModelError as exc:  # pragma: no cover - a bug of this module
        raise ExportError(f"export produced an invalid graph: {exc}") from exc
    return g


def _meta(
    model: Network,
    family: str,
    mode: str,
    per_channel: bool,
    pre: dict[str, Any] | None,
    modules: dict[str, list[str]],
    source: dict[str, Any] | None,
) -> dict[str, Any]:
    src: dict[str, Any] = {
        "family": family,
        "class": type(model).__name__,
        "export_mode": mode,
        "per_channel": bool(per_channel),
    }
    cfg = getattr(model, "cfg", None)
    if family == "dsr" and cfg is not None:
        src["neuron"] = str(cfg.kind)
    src.update(source or {})
    meta: dict[str, Any] = {"version": 1, "T": int(model.T), "modules": modules, "source": src}
    if pre is not None:
        meta["preprocess"] = pre
    return meta


@dataclass
class TrainedRun:
    """A trained network read back from a training run: the torch ``model`` (eval mode, on the
    CPU), the run's ``config`` (a dict, as the checkpoint stores it), the ``checkpoint`` path,
    the number of ``epoch`` s done and the last recorded test accuracy (``None`` if absent)."""

    model: nn.Module
    config: dict[str, Any]
    checkpoint: str
    epoch: int
    test_acc: float | None

    @property
    def name(self) -> str:
        """The run's name (its config's ``name``, else its directory's)."""
        return str(self.config.get("name", os.path.basename(os.path.dirname(self.checkpoint))))

    @property
    def normalize(self) -> Any:
        """The run's input normalisation ``(mean, std)`` per channel, or ``None``."""
        return self.config.get("normalize")

    @property
    def data_shape(self) -> tuple[int, ...] | None:
        """Per-sample shape of the run's dataset as its loader gives it, if known."""
        return DATASET_SHAPES.get(str(self.config.get("dataset")))


def checkpoint_path(src: str | os.PathLike[str]) -> str:
    """The checkpoint file of ``src`` (a run directory holding ``checkpoint.pt``, or the file);
    ``FileNotFoundError`` naming what was tried."""
    p = os.fspath(src)
    if os.path.isdir(p):
        ck = os.path.join(p, "checkpoint.pt")
        if not os.path.isfile(ck):
            raise FileNotFoundError(f"{p}: a run directory must hold checkpoint.pt (not found)")
        return ck
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: no such run directory or checkpoint file")
    return p


def load_trained(src: str | os.PathLike[str], device: str = "cpu") -> TrainedRun:
    """Rebuild the trained torch model of a run directory (``runs/NAME``) or of its
    ``checkpoint.pt`` (as written by ``python -m snnsim.train``): the model is created from the
    registry with the run's config and its weights loaded. ``ExportError`` for a file that is
    not such a checkpoint."""
    from .models import create_model
    from .train.checkpoint import Tempered, effective_config, load_checkpoint
    from .train.configs import TrainConfig, model_kwargs

    ck = checkpoint_path(src)
    try:
        st = load_checkpoint(ck, device)
    except Exception as exc:  # torch raises many kinds for a file that is no checkpoint
        raise ExportError(f"{ck}: not a torch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(st, dict) or not isinstance(st.get("config"), dict) or "model" not in st:
        keys = sorted(st) if isinstance(st, dict) else type(st).__name__
        raise ExportError(
            f"{ck}: not an snnsim training checkpoint (expected keys 'config' and 'model', "
            f"got {keys})"
        )
    cfg_d = effective_config(st)
    known = set(TrainConfig.__dataclass_fields__)
    model_name, run_name = cfg_d.get("model"), cfg_d.get("name")
    try:
        cfg = TrainConfig(**{k: v for k, v in cfg_d.items() if k in known})
        model_name, run_name = cfg.model, cfg.name
        model = create_model(cfg.model, **model_kwargs(cfg))
        model.load_state_dict(st["model"])
        if st.get("temperature") is not None and isinstance(model, Tempered):
            model.temperature = float(st["temperature"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ExportError(
            f"{ck}: cannot rebuild model {model_name!r} of run {run_name!r}: {exc}"
        ) from None
    model.eval()
    hist = st.get("history") or []
    accs = [
        float(h["test_acc"]) for h in hist if isinstance(h, dict) and h.get("test_acc") is not None
    ]
    return TrainedRun(
        model=model,
        config=cfg_d,
        checkpoint=os.path.abspath(ck),
        epoch=int(st.get("epoch", len(hist))),
        test_acc=accs[-1] if accs else None,
    )


def export(
    model: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str] | None,
    mode: ExportMode = "int8",
    *,
    input_shape: Sequence[int] | None = None,
    per_channel: bool = False,
    calibration: Any = None,
    input_scale: float | None = None,
    normalize: Any = None,
    data_shape: Sequence[int] | None = None,
    input_kind: InputKind | None = None,
    input_signed: bool | None = None,
) -> Graph:
    """Export a trained DSR or Dspike network and write it to ``path`` with :func:`snnsim.save`
    (``path=None``: only build it). Returns the :class:`~snnsim.graph.Graph`.

    ``model``: the torch model, or a training run directory / its ``checkpoint.pt`` (the model is
    rebuilt with :func:`load_trained`; its dataset gives ``data_shape`` and its config
    ``normalize``, and, without ``calibration``, its images in [0, 1] make the static input
    unsigned unless the normalisation makes it negative). Other arguments as
    :func:`export_graph`; raises :class:`ExportError` (a ValueError) for what cannot be
    exported."""
    source: dict[str, Any] | None = None
    if isinstance(model, (str, os.PathLike)):
        run = load_trained(model)
        model = run.model
        source = {
            "run": run.name,
            "checkpoint": run.checkpoint,
            "epoch": run.epoch,
            "test_acc": run.test_acc,
            "dataset": run.config.get("dataset"),
        }
        normalize = run.normalize if normalize is None else normalize
        if input_signed is None and calibration is None and getattr(model, "static_input", False):
            input_signed = _unit_input_signed(normalize)  # the loaders give images in [0, 1]
        if data_shape is None and calibration is None:
            data_shape = run.data_shape
        if input_shape is None and calibration is None and run.data_shape is not None:
            first = _first_weighted(model) if isinstance(model, (DSRNet, DspikeNet)) else None
            if not isinstance(first, nn.Linear):
                input_shape = run.data_shape
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch module, a run directory or a checkpoint path, got "
            f"{type(model).__name__}"
        )
    g = export_graph(
        model,
        mode,
        input_shape=input_shape,
        per_channel=per_channel,
        calibration=calibration,
        input_scale=input_scale,
        normalize=normalize,
        data_shape=data_shape,
        source=source,
        input_kind=input_kind,
        input_signed=input_signed,
    )
    if path is not None:
        from .model_file import save

        save(g, path)
    return g


def neuron_nodes(graph: Any) -> list[str]:
    """Names of the neuron nodes of ``graph`` (a Graph, a loaded Model or a file path) in
    topological order (the model's neuron layers, in order): what to pass as ``record`` to
    :func:`snnsim.run`."""
    from .api import Model, load
    from .graph import NEURON_OPS

    if isinstance(graph, (str, os.PathLike)):
        graph = load(graph)
    if isinstance(graph, Model):
        graph = graph.graph
    return [n.name for n in graph.topological_order() if n.op in NEURON_OPS]
