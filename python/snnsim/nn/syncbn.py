"""Batch norm whose training statistics span every process of a distributed run.

In a DistributedDataParallel run each process holds ``1/W`` of the batch. With the statistics
taken over the local rows only, the network a run of ``W`` processes trains is not the one a
single process trains on the combined batch. Synchronised batch norm takes the per-channel
mean and variance over the rows of every process, and its backward all-reduces the two
per-channel sums the batch-norm gradient needs (``sum dL/dy`` and ``sum dL/dy * (x - mean)``),
so forward values, running statistics and gradients equal the single-process ones (up to float
rounding; DDP's gradient average then gives the combined batch's gradient).

``torch.nn.SyncBatchNorm`` does this for GPU tensors of plain layers only. The layers here
need more: the DSR batch norm over time (:class:`~snnsim.nn.layers.BatchNormT`) takes its
statistics over the ``T*B`` step values and replays the normalisation on the rate graph (the
``[B, ...]`` time means) with a variance floor and, with ``exact_bn_grad``, an extra weight
gradient for the producing linear op; tdBN (:class:`~snnsim.nn.tdbn.TdBN`) normalises
``[T, N, C, ...]`` over ``T*N``. Both run on the CPU (gloo) as well as on GPUs (nccl).

A layer is synchronised by setting its ``process_group`` attribute to a :class:`GroupRef`
(:func:`snnsim.train.distributed.enable_sync_batchnorm`); in training mode it then calls
:func:`bnt_forward` / :func:`tdbn_forward` / :func:`rate_graph` here. Evaluation uses the
running statistics and never communicates.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.autograd import Function

from .layers import Flow, Seq, time_mean

__all__ = [
    "GroupRef",
    "global_moments",
    "SyncBatchNormFn",
    "bnt_forward",
    "rate_graph",
    "tdbn_forward",
]


class GroupRef:
    """The process group a synchronised layer reduces over (``None``: the default group).
    Copies of a model (``copy.deepcopy``, e.g. Time Inheritance) share it."""

    def __init__(self, group: Any = None) -> None:
        self.group = group

    def __deepcopy__(self, memo: dict[int, Any]) -> "GroupRef":
        return self

    def __repr__(self) -> str:
        return f"GroupRef({self.group!r})"


def _group(m: Any) -> Any:
    return m.process_group.group


def _dims(x: Tensor) -> list[int]:
    return [0] + list(range(2, x.ndim))


def _cshape(x: Tensor) -> list[int]:
    return [1, -1] + [1] * (x.ndim - 2)


@torch.no_grad()
def global_moments(x: Tensor, group: Any) -> tuple[Tensor, Tensor, int]:
    """Per-channel mean and biased variance of ``x`` (``[N, C, ...]``, channels in dim 1) over
    the rows of every process in ``group``, and the number of values per channel. Each process
    sends its count, mean and sum of squared deviations; they are combined in float64 (Chan's
    pairwise formula), so the result does not depend on how the rows are split."""
    C = x.shape[1]
    n = x.numel() // C if C else 0
    if n:
        var, mean = torch.var_mean(x, _dims(x), correction=0)
    else:
        var = mean = torch.zeros(C, dtype=x.dtype, device=x.device)
    local = torch.cat(
        [
            torch.full((1,), float(n), dtype=torch.float64, device=x.device),
            mean.double(),
            var.double() * n,
        ]
    )
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, local, group=group)
    every = torch.stack(parts)
    counts, means, m2 = every[:, :1], every[:, 1 : 1 + C], every[:, 1 + C :]
    total = float(counts.sum())
    if total == 0:
        raise ValueError("synchronised batch norm: no process holds any rows")
    g_mean = (counts * means).sum(0) / total
    g_m2 = m2.sum(0) + (counts * (means - g_mean) ** 2).sum(0)
    return g_mean.to(x.dtype), (g_m2 / total).to(x.dtype), int(total)


class SyncBatchNormFn(Function):
    """``y = (x - mean) * rsqrt(var + eps) * weight + bias`` with ``mean``/``var`` the
    statistics of the rows of every process (:func:`global_moments`; ``var`` may carry a
    floor, as the DSR rate graph's). The backward is batch norm's, with the two per-channel
    sums all-reduced over ``group`` and divided by the global ``count``.

    ``w_op``, ``K``, ``T`` (DSR ``exact_bn_grad``): the producing linear op's weight and the
    weight gradient of the steps' deviations from their time means (this process's rows); the
    op then receives ``-(invstd^2 m2 / T) K`` with ``m2`` the global mean of
    ``dL/dy * weight * xhat``, the term of
    :class:`snnsim.nn.layers._RateBatchNormFn`."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        mean: Tensor,
        var: Tensor,
        eps: float,
        count: int,
        group: Any,
        w_op: Tensor | None = None,
        K: Tensor | None = None,
        T: int = 1,
    ) -> Tensor:
        """Normalise ``x`` with statistics reduced over every process of the group."""
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(x, weight, mean, invstd, K)
        ctx.count, ctx.group, ctx.T = count, group, T
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:
        """Gradients with the statistics' terms reduced over every process."""
        x, weight, mean, invstd, K = ctx.saved_tensors
        dims, shape = _dims(x), _cshape(x)
        xmu = x - mean.reshape(shape)
        sum_dy = gy.sum(dims)
        sum_dy_xmu = (gy * xmu).sum(dims)
        red = torch.stack([sum_dy, sum_dy_xmu])
        dist.all_reduce(red, group=ctx.group)
        mean_dy, mean_dy_xmu = red[0] / ctx.count, red[1] / ctx.count
        scale = invstd if weight is None else invstd * weight
        need = ctx.needs_input_grad
        gx = gw = gb = g_op = None
        if need[0]:
            gx = (
                gy - mean_dy.reshape(shape) - xmu * (invstd * invstd * mean_dy_xmu).reshape(shape)
            ) * scale.reshape(shape)
        if weight is not None and need[1]:
            gw = sum_dy_xmu * invstd  # this process's rows; DDP sums/averages the rest
        if need[2]:
            gb = sum_dy
        if K is not None and need[8]:
            m2 = mean_dy_xmu * invstd * (1.0 if weight is None else weight)
            coef = -(invstd * invstd * m2) / ctx.T
            g_op = K * coef.reshape([-1] + [1] * (K.ndim - 1))
        return gx, gw, gb, None, None, None, None, None, g_op, None, None


def _normalise(m: Any, x: Tensor, weight: Tensor | None, update: bool) -> Tensor:
    """Differentiable synchronised batch norm of ``x`` with ``m``'s affine parameters; the
    running statistics move when ``update``."""
    mean, var, n = global_moments(x.detach(), _group(m))
    if update:
        _update_running(m, mean, var, n)
    return SyncBatchNormFn.apply(x, weight, m.bias, mean, var, m.eps, n, _group(m))


def _update_running(m: Any, mean: Tensor, var: Tensor, n: int) -> None:
    if hasattr(m, "update_running"):  # BatchNormT / BatchNorm1dT: counts the batch as well
        m.update_running(mean, var, n)
        return
    with torch.no_grad():  # tdBN: a fixed momentum, unbiased running variance
        mom = m.momentum
        m.running_mean.mul_(1 - mom).add_(mean.to(m.running_mean.dtype), alpha=mom)
        unbiased = var * (n / max(n - 1, 1))
        m.running_var.mul_(1 - mom).add_(unbiased.to(m.running_var.dtype), alpha=mom)


def bnt_forward(m: Any, x: Flow) -> Flow:
    """Training forward of a synchronised :class:`~snnsim.nn.layers.BatchNormT` /
    ``BatchNorm1dT``: a plain tensor (ANN) or a :class:`Seq` (per-step form: statistics and
    gradient over the ``T*B`` steps of every process; rate form: the steps normalised without
    autograd, the rate graph through :func:`rate_graph`)."""
    if isinstance(x, Tensor):
        return _normalise(m, x, m.weight, m.track_running_stats)
    if x.rate is None:
        return Seq(_normalise(m, x.steps, m.weight, m.track_running_stats), x.T, x.static)
    z = x.steps
    with torch.no_grad():
        mean, var_all, n = global_moments(z, _group(m))
        m.update_running(mean, var_all, n)
        steps = F.batch_norm(z, mean, var_all, m.weight, m.bias, False, 0.0, m.eps)
        cov = None
        if m.exact_rate_grad and x.producer is not None and not x.static:
            op, inp = x.producer
            T = x.T
            d = (z.reshape((T, -1) + tuple(z.shape[1:])) - time_mean(z, T)).reshape(z.shape)
            cov = (op.weight, op.weight_grad(d, inp), T)
    return Seq(steps, x.T, x.static, rate_graph(m, x.rate, var_all, cov))


def rate_graph(
    m: Any, zb: Tensor, var_all: Tensor, cov: tuple[Tensor, Tensor, int] | None = None
) -> Tensor:
    """:meth:`~snnsim.nn.layers._BNTMixin.rate_graph` with the between-sample statistics
    of the time means ``zb`` taken over every process (``var_all``: the global variance of
    the step values, already reduced)."""
    mu, between, n = global_moments(zb.detach(), _group(m))
    var = torch.maximum(var_all.to(between.dtype), between)
    w_op, K, T = cov if cov is not None else (None, None, 1)
    return SyncBatchNormFn.apply(zb, m.weight, m.bias, mu, var, m.eps, n, _group(m), w_op, K, T)


def tdbn_forward(m: Any, x: Tensor) -> Tensor:
    """Training forward of a synchronised :class:`~snnsim.nn.tdbn.TdBN` (``groups == 1``):
    ``[T, N, C, ...]`` normalised over the ``T*N`` rows of every process."""
    T, N = x.shape[0], x.shape[1]
    flat = x.reshape((T * N,) + tuple(x.shape[2:]))
    y = _normalise(m, flat, m.weight * m.scale, m.update_stats)
    return y.reshape(x.shape)
