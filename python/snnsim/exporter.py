"""Export of trained networks (DSR and Dspike) to snnsim network files (docs/model-format.md).

:func:`export` (and :func:`export_graph`, which returns the :class:`~snnsim.graph.Graph` without
writing it) turns a trained sequential network into a float32 or an integer-exact graph:

* batch norm (over time, evaluation statistics) is folded into the preceding conv/linear;
* the value a spike carries (``theta`` for DSR IF, ``theta/dt`` for DSR LIF, 1 for Dspike) is
  folded into the next weighted layer, so the engine moves unit events; ``alpha`` sets the fire
  level ``fire = alpha*theta`` while the reset subtracts ``theta``;
* the DSR readout (the last neuron layer's representation) is the graph's output neuron (its
  spike count), the Dspike output layer ``linear -> integrate``.

Integer modes (``"int8"``, ``"int4"``, ``"int16"``, SPEC §2):

* weights quantised symmetrically (round half to even, clipped) with one scale per layer or, with
  ``per_channel=True``, per output channel (the output layer of a Dspike network keeps one scale
  so its logits stay comparable); every weighted layer's accumulator scale is its weight scale
  times the scale of the integers it receives (``input_scale`` for the static input, the folded
  spike value for spikes, ``1/k^2`` after a pool);
* average pools become ``sumpool2d`` with ``1/k^2`` folded into the next layer's weights;
* biases int32 in the accumulator scale; thresholds ``theta_q = max(1, round(theta/s))`` and
  ``fire_q = max(1, round(alpha*theta_q))``; Dspike ``fire_q = max(1, round(vth/s))``;
* LIF leak ``lambda`` and input factor ``(1-lambda)`` as fixed-point ``(m, f)`` pairs; the DSR
  LIF input factor also carries a gain ``G >= 1`` that puts the membrane on a finer grid
  (``theta_q`` near 2^12) where the int32 range allows it;
* the static input is quantised with ``input_scale`` (given; else ``max|calibration|/127``;
  else 1/127, right for inputs in [0, 1]).

Anything else (residual blocks, ReLU ANNs, pools with padding, grouped convs, a neuron not
preceded by a conv/linear...) raises :class:`ExportError` naming the module and the reason.
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
from .graph import Graph

__all__ = ["ExportError", "ExportMode", "export", "export_graph", "neuron_nodes", "weight_scale"]

ExportMode = Literal["float32", "int8", "int4", "int16"]
_QMAX = {"int4": 7, "int8": 127, "int16": 32767}
_BITS = {"int4": 4, "int8": 8, "int16": 16}
_I32 = 2**31 - 1
_THETA_TARGET = 2.0**12  # membrane resolution sought for DSR LIF layers (theta_q near this)


class ExportError(ModelError):
    """A network cannot be exported: the message names the module and the reason."""


# ---------------------------------------------------------------------- intermediate form
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
    module: Any


@dataclass
class _Pool:
    where: str
    kernel: tuple[int, int]
    stride: tuple[int, int]


@dataclass
class _Flatten:
    where: str


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _check_pool(where: str, m: nn.AvgPool2d) -> _Pool:
    if _pair(m.padding) != (0, 0):
        raise ExportError(f"module {where!r} ({type(m).__name__}): average pools with padding cannot be exported")
    if m.ceil_mode:
        raise ExportError(f"module {where!r} ({type(m).__name__}): ceil_mode pools cannot be exported")
    if getattr(m, "divisor_override", None):
        raise ExportError(f"module {where!r} ({type(m).__name__}): divisor_override is not supported")
    k = _pair(m.kernel_size)
    s = _pair(m.stride if m.stride is not None else m.kernel_size)
    return _Pool(where, k, s)


def _weighted(where: str, m: nn.Module) -> _Weighted:
    w = m.weight.detach().double().cpu().numpy()
    b = (m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0]))
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            raise ExportError(f"module {where!r} (Conv2d): only numeric zero padding can be exported")
        if m.groups != 1 or _pair(m.dilation) != (1, 1):
            raise ExportError(f"module {where!r} (Conv2d): grouped or dilated convolutions cannot be exported")
        return _Weighted(where, "conv2d", w, b, _pair(m.stride), _pair(m.padding))
    return _Weighted(where, "linear", w, b)


def _fold_bn(st: _Weighted, scale: np.ndarray, shift: np.ndarray) -> None:
    st.weight = st.weight * scale.reshape((-1,) + (1,) * (st.weight.ndim - 1))
    st.bias = st.bias * scale + shift


def _parse(model: nn.Module) -> tuple[str, list[Any], str, int, str]:
    """``(family, stages, input_kind, T, output_kind)`` of a supported model; ExportError else."""
    from .train.dspike import AvgPoolTD, ConvTD, DspikeNet, DspikeNeuron, FlattenTD, LinearTD
    from .train.layers import AvgPoolT, BatchNorm1dT, BatchNormT, ConvT, DropoutT, DSRNeuron, FlattenT, LinearT
    from .train.net import DSRNet
    from .train.tdbn import TdBN

    if isinstance(model, DSRNet):
        if model.is_ann:
            raise ExportError("model (DSRNet): an ANN (ReLU in place of the neurons) has no spiking network to export")
        family = "dsr"
    elif isinstance(model, DspikeNet):
        family = "dspike"
    else:
        raise ExportError(f"model ({type(model).__name__}): only DSRNet and DspikeNet models can be exported")
    stages: list[Any] = []
    for name, m in model.body.named_children():
        where = f"body.{name}"
        if isinstance(m, (ConvT, LinearT, ConvTD, LinearTD)):
            stages.append(_weighted(where, m))
        elif isinstance(m, (BatchNormT, BatchNorm1dT, TdBN)):
            if not stages or not isinstance(stages[-1], _Weighted):
                raise ExportError(f"module {where!r} ({type(m).__name__}): batch norm must directly follow a "
                                  f"conv/linear layer to be folded")
            if isinstance(m, TdBN):
                sc, sh = m.fold()
                sc, sh = sc.double().numpy(), sh.double().numpy()
            else:
                if m.running_mean is None or m.running_var is None:
                    raise ExportError(f"module {where!r} ({type(m).__name__}): batch norm without running statistics")
                inv = 1.0 / np.sqrt(m.running_var.detach().double().numpy() + m.eps)
                g = m.weight.detach().double().numpy() if m.weight is not None else 1.0
                bt = m.bias.detach().double().numpy() if m.bias is not None else 0.0
                sc = g * inv
                sh = bt - m.running_mean.detach().double().numpy() * sc
            _fold_bn(stages[-1], np.broadcast_to(sc, stages[-1].bias.shape), np.broadcast_to(sh, stages[-1].bias.shape))
        elif isinstance(m, (DSRNeuron, DspikeNeuron)):
            if not stages or not isinstance(stages[-1], _Weighted):
                raise ExportError(f"module {where!r} ({type(m).__name__}): a neuron must be fed by a conv/linear "
                                  f"layer (optionally through batch norm)")
            kind = "dspike_lif" if isinstance(m, DspikeNeuron) else ("dsr_if" if m.cfg.kind == "if" else "dsr_lif")
            if kind != "dspike_lif" and not float(m.theta.detach()) > 0:
                raise ExportError(f"module {where!r} (DSRNeuron): threshold theta = {float(m.theta.detach()):.4g} is "
                                  f"not > 0 (training clamps it to cfg.bound before each forward; clamp it too)")
            stages.append(_Neuron(where, kind, m))
        elif isinstance(m, (AvgPoolT, AvgPoolTD)):
            stages.append(_check_pool(where, m))
        elif isinstance(m, (FlattenT, FlattenTD)):
            if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
                raise ExportError(f"module {where!r} (Flatten): only flattening of each whole sample is supported")
            stages.append(_Flatten(where))
        elif isinstance(m, (DropoutT, nn.Dropout)):
            continue  # identity at inference
        else:
            raise ExportError(f"module {where!r} ({type(m).__name__}): not supported by export (sequential "
                              f"conv/linear, batch norm, DSR/Dspike neurons, average pools and flatten only)")
    if family == "dsr":
        if not stages or not isinstance(stages[-1], _Neuron):
            last = stages[-1].where if stages else "body"
            raise ExportError(f"module {last!r}: a DSR network must end with its readout neuron layer")
        out_kind = "neuron"
    else:
        if not stages or not isinstance(stages[-1], _Weighted):
            last = stages[-1].where if stages else "body"
            raise ExportError(f"module {last!r}: a Dspike network must end with its output linear layer")
        out_kind = "integrate"
    kind = "static" if model.static_input else "events"
    return family, stages, kind, int(model.T), out_kind


# ---------------------------------------------------------------------- helpers
def _spike_value(n: _Neuron) -> float:
    """What one spike carries to the next layer (folded into its weights)."""
    m = n.module
    if n.kind == "dspike_lif":
        return 1.0
    theta = float(m.theta.detach())
    return theta if n.kind == "dsr_if" else theta / float(m.cfg.dt)


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
    if mode not in _QMAX:
        raise ExportError(f"weight_scale: mode must be 'int8', 'int4' or 'int16', got {mode!r}")
    return _quantise(np.asarray(weight, dtype=np.float64), _QMAX[mode], per_channel)[1]


def _fixed_point(values: Sequence[float], f: int = 16) -> tuple[list[np.ndarray], int]:
    """``(m, f)`` with ``m = round(v * 2^f)`` for every array in ``values`` (f lowered until every
    ``m`` fits int32)."""
    while True:
        ms = [np.rint(np.asarray(v, dtype=np.float64) * 2.0**f) for v in values]
        if all(np.all(np.abs(m) <= _I32) for m in ms) or f == 1:
            return [m.astype(np.int64) for m in ms], f
        f -= 1


def _bound(wq: np.ndarray, xmax: float, bq: np.ndarray) -> float:
    """Largest |accumulator| a layer can produce for inputs bounded by ``xmax``."""
    return float((np.abs(wq.reshape(wq.shape[0], -1)).sum(axis=1) * xmax + np.abs(bq)).max())


# ---------------------------------------------------------------------- export
def export_graph(
    model: nn.Module,
    mode: ExportMode = "int8",
    *,
    input_shape: Sequence[int] | None = None,
    per_channel: bool = False,
    calibration: Any = None,
    input_scale: float | None = None,
) -> Graph:
    """The :class:`~snnsim.graph.Graph` of a trained ``model`` (a sequential
    :class:`~snnsim.train.net.DSRNet` or :class:`~snnsim.train.dspike.DspikeNet`), validated.

    ``mode``: ``"float32"`` or an integer width (``"int8"``, ``"int4"``, ``"int16"``).
    ``input_shape``: per sample, ``(C, H, W)`` or ``(F,)``; inferred from ``calibration`` (a batch
    of inputs) or, for a network starting with [flatten ->] linear, as ``(in_features,)``.
    ``per_channel``: one weight scale per output channel (int modes). ``input_scale``: the static
    input's quantisation step (int modes); default ``max|calibration|/127``, else 1/127.
    """
    if mode not in ("float32", "int8", "int4", "int16"):
        raise ExportError(f"export: mode must be 'float32', 'int8', 'int4' or 'int16', got {mode!r}")
    family, stages, in_kind, T, out_kind = _parse(model)
    calib = None
    if calibration is not None:
        calib = calibration.detach().cpu().numpy() if isinstance(calibration, torch.Tensor) else np.asarray(calibration)
    if input_shape is None:
        if calib is not None:
            input_shape = calib.shape[1:] if in_kind == "static" else calib.shape[2:]
        else:
            first = next(s for s in stages if not isinstance(s, _Flatten))
            if not (isinstance(first, _Weighted) and first.kind == "linear"):
                raise ExportError(f"module {first.where!r}: give input_shape (e.g. (1, 28, 28)) for a network "
                                  f"starting with a convolution")
            input_shape = (first.weight.shape[1],)
    input_shape = tuple(int(d) for d in input_shape)
    if family == "dspike" and mode == "float32":
        from .train.dspike import to_graph  # the Dspike float export lives with its training code

        return to_graph(model, input_shape)  # type: ignore[arg-type]

    integer = mode != "float32"
    if integer and in_kind == "static":
        if input_scale is None:
            if calib is not None and np.abs(calib).max() > 0:
                input_scale = float(np.abs(calib).max()) / 127.0
            else:
                input_scale = 1.0 / 127.0
        if not (math.isfinite(input_scale) and input_scale > 0):
            raise ExportError(f"export: input_scale must be a finite positive float, got {input_scale!r}")
    g = Graph(input_shape=input_shape, precision="int" if integer else "float32", input_kind=in_kind,
              input_scale=float(input_scale) if (integer and in_kind == "static") else None)
    counter: dict[str, int] = {}

    def name(kind: str) -> str:
        counter[kind] = counter.get(kind, 0) + 1
        return f"{kind}{counter[kind]}"

    prev = "input"
    # Value flowing between nodes: true value = carry * (the graph's value), per element.
    carry = float(input_scale) if (integer and in_kind == "static") else 1.0
    # Bound on |graph value| of an element (int overflow checks): int8 input, spikes, event counts.
    xmax = 128.0 if in_kind == "static" else 16.0
    acc_scale: np.ndarray | None = None  # accumulator scale of the last weighted layer, per channel
    acc_bound = 0.0
    qmax = _QMAX.get(mode, 0)
    ndim = len(input_shape)
    for i, st in enumerate(stages):
        if isinstance(st, _Flatten):
            if ndim > 1:
                prev = g.flatten(name("flat"), prev)
                ndim = 1
        elif isinstance(st, _Pool):
            if ndim != 3:
                raise ExportError(f"module {st.where!r}: a pool needs a [C, H, W] input")
            if integer:
                prev = g.sumpool2d(name("pool"), prev, st.kernel, st.stride)
                carry /= st.kernel[0] * st.kernel[1]
                xmax *= st.kernel[0] * st.kernel[1]
            else:
                prev = g.avgpool2d(name("pool"), prev, st.kernel, st.stride)
        elif isinstance(st, _Weighted):
            if (st.kind == "linear") != (ndim == 1):
                raise ExportError(f"module {st.where!r}: a {st.kind} layer cannot take a "
                                  f"{'flat' if ndim == 1 else '[C, H, W]'} input (flatten first)")
            is_out = out_kind == "integrate" and i == len(stages) - 1
            w = st.weight * carry
            kw: dict[str, Any] = {}
            if st.kind == "conv2d":
                kw = {"stride": st.stride, "padding": st.padding}
                nm = name("conv")
            else:
                nm = name("fc")
            if integer:
                wq, s = _quantise(w, qmax, per_channel and not is_out)
                bq = np.rint(st.bias / s)
                bound = _bound(wq, xmax, bq) * (T + 1)
                if bound > _I32:  # keep the accumulators and membranes inside int32
                    s = s * (bound / _I32) * 1.01
                    wq = np.clip(np.rint(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -qmax - 1, qmax).astype(np.int64)
                    bq = np.rint(st.bias / s)
                prev = getattr(g, st.kind)(nm, prev, wq, bq.astype(np.int64), weight_bits=_BITS[mode], **kw)
                acc_scale, acc_bound = s, _bound(wq, xmax, bq)
            else:
                w32, b32 = w.astype(np.float32), st.bias.astype(np.float32)
                prev = getattr(g, st.kind)(nm, prev, w32, b32, **kw)
            if is_out:
                prev = g.integrate("out", prev)
            ndim = 1 if st.kind == "linear" else 3
        elif isinstance(st, _Neuron):
            prev = _emit_neuron(g, name("sn"), prev, st, integer, acc_scale, acc_bound, T)
            carry = _spike_value(st)
            xmax = 1.0
    g.set_output(prev)
    try:
        g.validate()
    except ModelError as exc:  # pragma: no cover - a bug of this module
        raise ExportError(f"export produced an invalid graph: {exc}") from exc
    return g


def _emit_neuron(g: Graph, nm: str, prev: str, st: _Neuron, integer: bool, s: np.ndarray | None,
                 acc_bound: float, T: int) -> str:
    m = st.module
    if st.kind == "dspike_lif":
        if not integer:
            return g.dspike_lif(nm, prev, fire=np.float32(m.vth), leak=np.float32(m.leak))
        assert s is not None
        fire = np.maximum(1, np.rint(m.vth / s)).astype(np.int64)
        (leak_m,), f = _fixed_point([m.leak])
        return g.dspike_lif(nm, prev, fire=_chan(fire), leak_m=leak_m.reshape(1), f=f)
    cfg = m.cfg
    theta_t = m.theta.detach().float().cpu()
    if not integer:
        fire_t = cfg.alpha * theta_t  # as the training simulation computes it (float32)
        if st.kind == "dsr_if":
            return g.dsr_if(nm, prev, theta=theta_t.numpy(), fire=fire_t.numpy())
        leak_t = torch.tensor(cfg.leak, dtype=torch.float32)
        gain_t = 1.0 - leak_t
        return g.dsr_lif(nm, prev, theta=theta_t.numpy(), fire=fire_t.numpy(), leak=leak_t.numpy(),
                         gain=gain_t.numpy())
    assert s is not None
    theta = float(theta_t)
    if st.kind == "dsr_if":
        theta_q = np.maximum(1, np.rint(theta / s))
        fire_q = np.maximum(1, np.rint(cfg.alpha * theta_q))
        return g.dsr_if(nm, prev, theta=_chan(theta_q), fire=_chan(fire_q))
    lam = float(cfg.leak)
    # Membrane gain G: theta_q near 2^12 where the int32 range allows (U <= G * |I| at most).
    base = float(np.min(theta / s))
    G = max(1.0, _THETA_TARGET / max(base, 1e-30))
    G = max(1.0, min(G, _I32 / max(4.0 * acc_bound * max(T, 1), 1.0)))
    theta_q = np.maximum(1, np.rint(theta * G / s))
    fire_q = np.maximum(1, np.rint(cfg.alpha * theta_q))
    (leak_m, gain_m), f = _fixed_point([lam, (1.0 - lam) * G])
    return g.dsr_lif(nm, prev, theta=_chan(theta_q), fire=_chan(fire_q), leak_m=leak_m.reshape(1),
                     gain_m=gain_m.reshape(1), f=f)


def _chan(a: np.ndarray) -> np.ndarray:
    """A per-channel int parameter, ``[1]`` when all channels agree."""
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    return a[:1] if np.all(a == a[0]) else a


def export(
    model: nn.Module,
    path: str | os.PathLike[str] | None,
    mode: ExportMode = "int8",
    *,
    input_shape: Sequence[int] | None = None,
    per_channel: bool = False,
    calibration: Any = None,
    input_scale: float | None = None,
) -> Graph:
    """Export a trained DSR or Dspike network and write it to ``path`` with :func:`snnsim.save`
    (``path=None``: only build it). Returns the :class:`~snnsim.graph.Graph`. Arguments as
    :func:`export_graph`; raises :class:`ExportError` (a ValueError) for what cannot be
    exported."""
    g = export_graph(model, mode, input_shape=input_shape, per_channel=per_channel, calibration=calibration,
                     input_scale=input_scale)
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
