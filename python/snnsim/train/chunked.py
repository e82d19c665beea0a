"""Time-chunked rate-form forward: training memory that does not grow with ``T``.

The rate form (:mod:`snnsim.train.dsr`) keeps only ``[B, ...]`` tensors for the backward, but
its forward still materialises every layer's ``[T*B, ...]`` step tensors, so the *peak* memory
grows with ``T``. Here the steps go through the network ``chunk`` at a time, each neuron layer
carrying its membrane from one chunk to the next, so no tensor larger than ``chunk*B`` rows is
ever alive. What the backward needs is accumulated on the way: every linear op's time-mean
output, every neuron layer's mean current ``I`` and mean output ``r``, the readout value.

Batch norm over time needs the statistics of all ``T*B`` values before it can normalise the
first chunk. They come from extra passes: for the k-th batch norm, one pass through the layers
before it (earlier batch norms already known) accumulates per-channel sums in float64. A
network with K batch norms on time-varying inputs costs K extra partial forward passes: time
traded for memory, as in gradient checkpointing. A batch norm on a static input (the first
conv of an image) is computed once from its ``[B, ...]`` tensor and costs nothing.

The result matches the unchunked rate form: the spikes are the same up to float rounding in
the batch-norm statistics (float64 sums here, torch's kernel there) and the means to rounding.

Supported bodies: flat sequences of :class:`ConvT`, :class:`LinearT`, :class:`BatchNormT`,
:class:`BatchNorm1dT`, :class:`AvgPoolT`, :class:`FlattenT`, :class:`DropoutT` and
:class:`DSRNeuron` (the MLP, the MNIST CNN, CIFARNet, VGG-11); residual blocks are refused.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dsr import (
    AffineRateFn,
    DSRNeuronConfig,
    DSRRateFn,
    ReadoutRateFn,
    dsr_forward_chunk,
    lif_weights,
    memory_format_of,
)
from .layers import (
    AvgPoolT,
    BatchNorm1dT,
    BatchNormT,
    ConvT,
    DropoutT,
    DSRNeuron,
    FlattenT,
    LinearT,
    Seq,
)

__all__ = ["chunked_rate_forward", "check_chunkable"]

_AFFINE = (ConvT, LinearT)
# the plain torch op of each layer (a Seq-aware layer's forward would treat the tensor as an ANN)
_PLAIN: dict[type, Callable[[nn.Module, Tensor], Tensor]] = {
    ConvT: nn.Conv2d.forward,
    LinearT: nn.Linear.forward,
    AvgPoolT: nn.AvgPool2d.forward,
    FlattenT: nn.Flatten.forward,
}
_BN = (BatchNormT, BatchNorm1dT)
_SHAPE = (AvgPoolT, FlattenT)
_SUPPORTED = _AFFINE + _BN + _SHAPE + (DropoutT, DSRNeuron)


def check_chunkable(body: nn.Sequential) -> None:
    """Raise ``ValueError`` naming the first module the chunked forward cannot run."""
    for name, m in body.named_children():
        if not isinstance(m, _SUPPORTED):
            raise ValueError(
                f"time_chunk: module {name!r} ({type(m).__name__}) is not supported by the time-chunked "
                "forward (flat sequences of conv/linear/batch-norm/pool/flatten/dropout/DSR neurons only)"
            )


class _Pass:
    """State of one pass through the time chunks."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.membranes: dict[int, Tensor] = {}
        self.I: dict[int, Tensor] = {}
        self.r: dict[int, Tensor] = {}
        self.spikes: dict[int, int] = {}
        self.values: dict[int, Tensor] = {}
        # exact batch-norm weight gradient (see layers._RateBatchNormFn): per linear op feeding
        # a batch norm from time-varying input, sum_{b,t} z (x) in and the input's time mean
        self.k_raw: dict[int, Tensor] = {}
        self.in_mean: dict[int, Tensor] = {}
        self.exact: set[int] = set()


def _time_sum(steps: Tensor, n: int) -> Tensor:
    return steps.reshape((n, steps.shape[0] // n) + tuple(steps.shape[1:])).sum(0)


@torch.no_grad()
def _apply(
    i: int,
    m: nn.Module,
    flow: Seq,
    st: _Pass,
    stats: dict[int, tuple[Tensor, Tensor]],
    masks: dict[int, Tensor],
    weights: dict[int, Tensor],
    t0: int,
    T: int,
) -> Seq:
    n = flow.T
    if isinstance(m, _AFFINE):
        out = Seq(_PLAIN[type(m)](m, flow.steps), n, flow.static)
        if st.collect:
            if flow.static:
                st.values[i] = out.steps
            else:
                part = _time_sum(out.steps, n) / T
                st.values[i] = part if i not in st.values else st.values[i].add_(part)
                if i in st.exact:
                    k = m.weight_grad(out.steps, flow.steps)
                    st.k_raw[i] = k if i not in st.k_raw else st.k_raw[i].add_(k)
                    mi = _time_sum(flow.steps, n) / T
                    st.in_mean[i] = mi if i not in st.in_mean else st.in_mean[i].add_(mi)
        return out
    if isinstance(m, _BN):
        mean, var = stats[i]
        y = F.batch_norm(flow.steps, mean, var, m.weight, m.bias, False, 0.0, m.eps)
        return Seq(y, n, flow.static)
    if isinstance(m, _SHAPE):
        return Seq(_PLAIN[type(m)](m, flow.steps), n, flow.static)
    if isinstance(m, DropoutT):
        if i not in masks:
            return flow
        mask = masks[i]
        if flow.static:
            return Seq(flow.steps * mask, n, True)
        return Seq(
            (flow.steps.reshape((n,) + tuple(mask.shape)) * mask).reshape(flow.steps.shape),
            n,
            False,
        )
    assert isinstance(m, DSRNeuron)
    x = flow.steps
    B = x.shape[0] if flow.static else x.shape[0] // n
    if i not in st.membranes:
        like = torch.zeros((B,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        like = like.contiguous(memory_format=memory_format_of(x))
        st.membranes[i], st.I[i], st.r[i], st.spikes[i] = like, like.clone(), like.clone(), 0
    out, k = dsr_forward_chunk(
        x,
        n,
        m.theta,
        m.cfg,
        flow.static,
        st.membranes[i],
        st.I[i],
        st.r[i],
        weights[i][t0 : t0 + n],
        T,
    )
    st.spikes[i] += k
    return Seq(out, n, False)


def _current_weights(cfg: DSRNeuronConfig, T: int, like: Tensor) -> Tensor:
    if cfg.kind == "lif":
        return lif_weights(T, cfg, like)
    return torch.full((T,), 1.0 / T, dtype=like.dtype, device=like.device)


def chunked_rate_forward(
    body: nn.Sequential,
    source: Callable[[int, int], Seq],
    rate_in: Tensor,
    T: int,
    chunk: int,
    readout_cfg: DSRNeuronConfig | None,
) -> Tensor:
    """The rate-form forward of ``body`` over ``T`` steps, ``chunk`` steps at a time; returns
    the logits (connected to the rate graph). ``source(t0, t1)``: the input steps ``t0..t1-1``
    as a :class:`Seq` (a static input: the same ``[B, ...]`` tensor); ``rate_in``: the input's
    time mean ``[B, ...]`` (the rate graph's leaf)."""
    if chunk < 1:
        raise ValueError(f"time_chunk must be >= 1, got {chunk}")
    check_chunkable(body)
    mods = list(body.children())
    for m in mods:
        if isinstance(m, DSRNeuron):
            with torch.no_grad():
                m.theta.clamp_(min=m.cfg.bound)
    like = rate_in
    weights = {
        i: _current_weights(m.cfg, T, like) for i, m in enumerate(mods) if isinstance(m, DSRNeuron)
    }
    masks: dict[int, Tensor] = {}
    stats: dict[int, tuple[Tensor, Tensor]] = {}
    var_all: dict[int, Tensor] = {}
    bounds = [(t0, min(T, t0 + chunk)) for t0 in range(0, T, chunk)]
    static_out: dict[int, Seq] = {}  # outputs of layers whose input is static: computed once

    def layers(flow: Seq, stop: int, st: _Pass, t0: int) -> Seq:
        for i in range(stop):
            m = mods[i]
            if flow.static and i in static_out:
                flow = Seq(static_out[i].steps, flow.T, True)
                if st.collect and isinstance(m, _AFFINE):
                    st.values[i] = flow.steps
                continue
            if isinstance(m, DropoutT) and m.training and m.p > 0 and i not in masks:
                shape = (flow.batch,) + tuple(flow.steps.shape[1:])
                masks[i] = torch.empty(
                    shape, dtype=flow.steps.dtype, device=flow.steps.device
                ).bernoulli_(1 - m.p) / (1 - m.p)
            was_static = flow.static
            flow = _apply(i, m, flow, st, stats, masks, weights, t0, T)
            if was_static and flow.static:
                static_out[i] = flow
        return flow

    def run(stop: int, collect: bool, bn_input: Callable[[Seq], bool]) -> None:
        st = _Pass(collect)
        for t0, t1 in bounds:
            if bn_input(layers(source(t0, t1), stop, st, t0)):
                return

    # batch-norm statistics, in order
    for k, m in enumerate(mods):
        if not isinstance(m, _BN):
            continue
        acc: dict[str, Any] = {"s": None, "q": None, "n": 0}

        def add(flow: Seq, acc: dict[str, Any] = acc) -> bool:
            z = flow.steps.double()
            dims = [0] + list(range(2, z.ndim))
            s, q = z.sum(dims), (z * z).sum(dims)
            acc["s"] = s if acc["s"] is None else acc["s"] + s
            acc["q"] = q if acc["q"] is None else acc["q"] + q
            acc["n"] += z.numel() // z.shape[1]
            return flow.static  # a static input: its statistics are complete after one chunk

        run(k, False, add)
        mean = acc["s"] / acc["n"]
        var = (acc["q"] / acc["n"] - mean * mean).clamp_min(0.0)
        stats[k] = (mean.to(like.dtype), var.to(like.dtype))
        var_all[k] = var.to(like.dtype)
        m.update_running(mean, var, acc["n"])

    # the full pass: outputs, means, spikes, readout value
    st = _Pass(True)
    st.exact = {
        i
        for i, m in enumerate(mods[:-1])
        if isinstance(m, _AFFINE) and isinstance(mods[i + 1], _BN) and mods[i + 1].exact_rate_grad
    }
    readout_value: Tensor | None = None
    rw = (
        lif_weights(T, readout_cfg, like)
        if (readout_cfg is not None and readout_cfg.kind == "lif")
        else None
    )
    last_static = False
    for t0, t1 in bounds:
        flow = layers(source(t0, t1), len(mods), st, t0)
        n = t1 - t0
        with torch.no_grad():
            if flow.static:
                part = flow.steps * (n / T)
            elif rw is None:
                part = _time_sum(flow.steps, n) / T
            else:
                part = torch.tensordot(
                    rw[t0:t1], flow.steps.reshape((n, -1) + tuple(flow.steps.shape[1:])), dims=1
                )
        readout_value = part if readout_value is None else readout_value + part
        last_static = flow.static
        del flow
    assert readout_value is not None

    # the rate graph on [B, ...] tensors
    rate = rate_in
    for i, m in enumerate(mods):
        if isinstance(m, _AFFINE):
            rate = AffineRateFn.apply(rate, m.weight, m.bias, st.values[i], m._spec())
        elif isinstance(m, _BN):
            cov = None
            if i - 1 in st.k_raw:  # K = sum z (x) in - T * zbar (x) inbar (the bias cancels)
                op = mods[i - 1]
                K = st.k_raw[i - 1] - T * op.weight_grad(st.values[i - 1], st.in_mean[i - 1])
                cov = (op.weight, K, T)
            rate = m.rate_graph(rate, var_all[i], cov)
        elif isinstance(m, _SHAPE):
            rate = _PLAIN[type(m)](m, rate)
        elif isinstance(m, DropoutT):
            if i in masks:
                rate = rate * masks[i]
        else:
            rate = DSRRateFn.apply(rate, m.theta, st.I[i], st.r[i], m.cfg)
            m.last_rate = torch.tensor(st.spikes[i] / (st.r[i].numel() * T))
    scale = 1.0
    if rw is not None and not last_static:
        scale = float(T * (rw.double() ** 2).sum())
    return ReadoutRateFn.apply(rate, readout_value, scale)
