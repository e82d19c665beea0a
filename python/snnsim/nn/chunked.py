"""Time-chunked rate-form forward: training memory that does not grow with ``T``.

The rate form (:mod:`snnsim.nn.dsr`) keeps only ``[B, ...]`` tensors for the backward, but
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

In a distributed run with synchronised batch norm the per-channel sums are all-reduced over the
processes before each batch norm's statistics are formed, and the rate graph's batch norms
reduce over every process too (:mod:`snnsim.nn.syncbn`).

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
_PLAIN: dict[type, Callable[[Any, Tensor], Tensor]] = {
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
                f"time_chunk: module {name!r} ({type(m).__name__}) is not supported by the "
                "time-chunked forward (flat sequences of conv/linear/batch-norm/pool/flatten/"
                "dropout/DSR neurons only)"
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
        st.membranes[i] = like
        st.I[i] = like.clone()
        st.r[i] = like.clone()
        st.spikes[i] = 0
    steps_out, count = dsr_forward_chunk(
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
    st.spikes[i] += count
    return Seq(steps_out, n, False)


def _current_weights(cfg: DSRNeuronConfig, T: int, like: Tensor) -> Tensor:
    if cfg.kind == "lif":
        return lif_weights(T, cfg, like)
    return torch.full((T,), 1.0 / T, dtype=like.dtype, device=like.device)


def _all_reduce_sums(acc: dict[str, Any], group: Any) -> None:
    """Sum the per-channel ``s``, ``q`` and the count ``n`` over the processes of ``group``."""
    import torch.distributed as dist

    C = acc["s"].shape[0]
    n = torch.full((1,), float(acc["n"]), dtype=torch.float64, device=acc["s"].device)
    buf = torch.cat([acc["s"], acc["q"], n])
    dist.all_reduce(buf, group=group)
    acc["s"], acc["q"], acc["n"] = buf[:C], buf[C : 2 * C], int(buf[2 * C])


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
    run = _ChunkedRun(list(body.children()), source, rate_in, T, chunk)
    run.bn_statistics()
    st, readout_value, last_static, rw = run.full_pass(readout_cfg)
    rate = run.rate_graph(st)
    scale = 1.0
    if rw is not None and not last_static:
        scale = float(T * (rw.double() ** 2).sum())
    return ReadoutRateFn.apply(rate, readout_value, scale)


class _ChunkedRun:
    """One time-chunked forward: the layers, the chunk bounds and what the passes share
    (dropout masks, batch-norm statistics, outputs of layers on a static input)."""

    def __init__(
        self,
        mods: list[nn.Module],
        source: Callable[[int, int], Seq],
        rate_in: Tensor,
        T: int,
        chunk: int,
    ) -> None:
        for m in mods:
            if isinstance(m, DSRNeuron):
                with torch.no_grad():
                    m.theta.clamp_(min=m.cfg.bound)
        self.mods, self.source, self.rate_in, self.T = mods, source, rate_in, T
        self.weights = {
            i: _current_weights(m.cfg, T, rate_in)
            for i, m in enumerate(mods)
            if isinstance(m, DSRNeuron)
        }
        self.masks: dict[int, Tensor] = {}
        self.stats: dict[int, tuple[Tensor, Tensor]] = {}
        self.var_all: dict[int, Tensor] = {}
        self.bounds = [(t0, min(T, t0 + chunk)) for t0 in range(0, T, chunk)]
        self.static_out: dict[int, Seq] = {}  # outputs of layers on a static input: computed once

    def layers(self, flow: Seq, stop: int, st: _Pass, t0: int) -> Seq:
        for i in range(stop):
            m = self.mods[i]
            if flow.static and i in self.static_out:
                flow = Seq(self.static_out[i].steps, flow.T, True)
                if st.collect and isinstance(m, _AFFINE):
                    st.values[i] = flow.steps
                continue
            if isinstance(m, DropoutT) and m.training and m.p > 0 and i not in self.masks:
                shape = (flow.batch,) + tuple(flow.steps.shape[1:])
                self.masks[i] = torch.empty(
                    shape, dtype=flow.steps.dtype, device=flow.steps.device
                ).bernoulli_(1 - m.p) / (1 - m.p)
            was_static = flow.static
            flow = _apply(i, m, flow, st, self.stats, self.masks, self.weights, t0, self.T)
            if was_static and flow.static:
                self.static_out[i] = flow
        return flow

    def bn_statistics(self) -> None:
        """Every batch norm's statistics over all ``T*B`` values, in order: one pass through
        the layers before it (a static input: one chunk) accumulating float64 sums."""
        for k, m in enumerate(self.mods):
            if not isinstance(m, _BN):
                continue
            acc: dict[str, Any] = {"s": None, "q": None, "n": 0}
            st = _Pass(False)
            for t0, t1 in self.bounds:
                flow = self.layers(self.source(t0, t1), k, st, t0)
                z = flow.steps.double()
                dims = [0] + list(range(2, z.ndim))
                s, q = z.sum(dims), (z * z).sum(dims)
                acc["s"] = s if acc["s"] is None else acc["s"] + s
                acc["q"] = q if acc["q"] is None else acc["q"] + q
                acc["n"] += z.numel() // z.shape[1]
                if flow.static:  # a static input: its statistics are complete after one chunk
                    break
            if getattr(m, "process_group", None) is not None:  # distributed: every process
                _all_reduce_sums(acc, m.process_group.group)
            mean = acc["s"] / acc["n"]
            var = (acc["q"] / acc["n"] - mean * mean).clamp_min(0.0)
            dtype = self.rate_in.dtype
            self.stats[k] = (mean.to(dtype), var.to(dtype))
            self.var_all[k] = var.to(dtype)
            m.update_running(mean, var, acc["n"])

    def full_pass(
        self, readout_cfg: DSRNeuronConfig | None
    ) -> tuple[_Pass, Tensor, bool, Tensor | None]:
        """The pass that collects outputs, means and spikes; returns its state, the readout
        value, whether the last flow was static, and the LIF readout weights (``None``: IF)."""
        T, mods = self.T, self.mods
        st = _Pass(True)
        st.exact = {
            i
            for i, m in enumerate(mods[:-1])
            if isinstance(m, _AFFINE)
            and isinstance(mods[i + 1], _BN)
            and mods[i + 1].exact_rate_grad
        }
        readout_value: Tensor | None = None
        rw = (
            lif_weights(T, readout_cfg, self.rate_in)
            if (readout_cfg is not None and readout_cfg.kind == "lif")
            else None
        )
        last_static = False
        for t0, t1 in self.bounds:
            flow = self.layers(self.source(t0, t1), len(mods), st, t0)
            n = t1 - t0
            with torch.no_grad():
                if flow.static:
                    part = flow.steps * (n / T)
                elif rw is None:
                    part = _time_sum(flow.steps, n) / T
                else:
                    steps = flow.steps.reshape((n, -1) + tuple(flow.steps.shape[1:]))
                    part = torch.tensordot(rw[t0:t1], steps, dims=1)
            readout_value = part if readout_value is None else readout_value + part
            last_static = flow.static
            del flow
        assert readout_value is not None
        return st, readout_value, last_static, rw

    def rate_graph(self, st: _Pass) -> Tensor:
        """The rate graph on ``[B, ...]`` tensors."""
        T, mods = self.T, self.mods
        rate = self.rate_in
        for i, m in enumerate(mods):
            if isinstance(m, _AFFINE):
                rate = AffineRateFn.apply(rate, m.weight, m.bias, st.values[i], m._spec())
            elif isinstance(m, _BN):
                cov = None
                if i - 1 in st.k_raw:  # K = sum z (x) in - T * zbar (x) inbar (the bias cancels)
                    op = mods[i - 1]
                    assert isinstance(op, _AFFINE)
                    K = st.k_raw[i - 1] - T * op.weight_grad(st.values[i - 1], st.in_mean[i - 1])
                    cov = (op.weight, K, T)
                rate = m.rate_graph(rate, self.var_all[i], cov)
            elif isinstance(m, _SHAPE):
                rate = _PLAIN[type(m)](m, rate)
            elif isinstance(m, DropoutT):
                if i in self.masks:
                    rate = rate * self.masks[i]
            else:
                rate = DSRRateFn.apply(rate, m.theta, st.I[i], st.r[i], m.cfg)
                m.last_rate = torch.tensor(st.spikes[i] / (st.r[i].numel() * T))
        return rate
