"""Layers that run a spiking network over ``T`` time steps for DSR training.

Between layers flows a :class:`Seq`: the per-step tensor ``steps`` (``[T*B, ...]``, time-major:
step ``t`` is rows ``t*B .. t*B+B-1``), or, for a *static* sequence (the same value at every
step, e.g. the first layer's current for an image), one ``[B, ...]`` tensor; and, in the
``"rate"`` training mode, ``rate``: the graph tensor ``[B, ...]`` whose value is the uniform
time mean of ``steps`` and through which the gradient flows (see :mod:`snnsim.nn.dsr`).

Every layer also accepts a plain tensor and then acts as the ordinary torch layer, so the same
model definition with ReLU in place of the neurons is the ANN baseline.

The layers subclass the torch layers (``ConvT`` is an ``nn.Conv2d``, ``BatchNormT`` an
``nn.BatchNorm2d``...), so their parameters sit where export code expects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import DsrIFParams, DsrLIFParams
from .dsr import (
    AffineRateFn,
    DSRNeuronConfig,
    DSRRateFn,
    DSRStepFn,
    ReadoutRateFn,
    dsr_forward,
    lif_weights,
    memory_format_of,
    spike_value,
)

__all__ = [
    "Seq",
    "Flow",
    "ConvT",
    "LinearT",
    "BatchNormT",
    "BatchNorm1dT",
    "AvgPoolT",
    "FlattenT",
    "DropoutT",
    "DSRNeuron",
    "Readout",
    "add_flows",
    "run_layers",
    "time_mean",
]


def time_mean(x: Tensor, T: int) -> Tensor:
    """Uniform mean over the steps of a time-major ``[T*B, ...]`` tensor (a channels-last one
    is reduced as the flat ``[T, B*H*W*C]`` array it is in memory, several times faster, and
    the mean stays channels-last)."""
    B = x.shape[0] // T
    if x.ndim == 4 and memory_format_of(x) == torch.channels_last:
        C, H, W = x.shape[1:]
        m = x.permute(0, 2, 3, 1).reshape(T, -1).mean(0)
        return m.reshape(B, H, W, C).permute(0, 3, 1, 2)
    return x.reshape((T, B) + tuple(x.shape[1:])).mean(0)


@dataclass
class Seq:
    """A sequence of ``T`` tensors flowing between layers (see the module docstring)."""

    steps: Tensor
    T: int
    static: bool = False
    rate: Tensor | None = None
    # rate form: the linear op that produced ``steps`` from time-varying input steps (``(op,
    # input steps)``), for the exact batch-norm weight gradient (see :class:`_RateBatchNormFn`)
    producer: tuple[Any, Tensor] | None = None
    # and the time means of that op's input and output (``(input mean, output mean)``)
    producer_means: tuple[Tensor, Tensor] | None = None

    @property
    def batch(self) -> int:
        return self.steps.shape[0] if self.static else self.steps.shape[0] // self.T

    def expanded(self) -> Tensor:
        """``[T*B, ...]`` even when static."""
        if not self.static:
            return self.steps
        s = self.steps
        return (
            s.unsqueeze(0)
            .expand((self.T,) + tuple(s.shape))
            .reshape((self.T * s.shape[0],) + tuple(s.shape[1:]))
        )

    def mean(self) -> Tensor:
        return self.steps if self.static else time_mean(self.steps, self.T)

    def map(self, fn: Any, rate_fn: Any = None) -> "Seq":
        """Apply a cheap op to both the steps and (with autograd) the rate graph."""
        rate = None if self.rate is None else (rate_fn or fn)(self.rate)
        return Seq(fn(self.steps), self.T, self.static, rate)


Flow = Union[Tensor, Seq]


# ---------------------------------------------------------------------- linear ops
class _AffineMixin:
    # provided by the torch layer this is mixed into (Conv2d, Linear)
    weight: Tensor
    bias: Any

    def _spec(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _seq_forward(self, x: Seq, plain: Any) -> Seq:
        if x.rate is None:
            return Seq(plain(x.steps), x.T, x.static)
        with torch.no_grad():
            steps = plain(x.steps)
            value = steps if x.static else time_mean(steps, x.T)
        rate = AffineRateFn.apply(x.rate, self.weight, self.bias, value, self._spec())
        if x.static:
            return Seq(steps, x.T, x.static, rate)
        return Seq(steps, x.T, x.static, rate, (self, x.steps), (x.rate.detach(), value))

    @torch.no_grad()
    def weight_grad(self, grad_out: Tensor, inp: Tensor) -> Tensor:
        """``dL/dweight`` of this op for ``grad_out`` at its output and input ``inp``."""
        spec = self._spec()
        if spec[0] == "linear":
            return grad_out.reshape(-1, grad_out.shape[-1]).t() @ inp.reshape(-1, inp.shape[-1])
        _, stride, padding, dilation, groups = spec
        return torch.ops.aten.convolution_backward(
            grad_out.contiguous(memory_format=memory_format_of(inp)),
            inp,
            self.weight,
            None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            [False, True, False],
        )[1]


class ConvT(_AffineMixin, nn.Conv2d):
    """``nn.Conv2d`` over a :class:`Seq` (a static input is convolved once).

    ``channels_last`` (set by :class:`~snnsim.nn.net.DSRNet`): store the output
    channels-last. The input alone cannot decide it when it has one channel (an MNIST image is
    contiguous in both formats, and convolution then keeps the plain format), so the first conv
    converts its output and every layer after it follows."""

    channels_last: bool = False

    def _spec(self) -> tuple[Any, ...]:
        if isinstance(self.padding, str) or self.padding_mode != "zeros":
            raise ValueError("ConvT supports numeric zero padding only")
        return ("conv2d", self.stride, self.padding, self.dilation, self.groups)

    def _conv(self, x: Tensor) -> Tensor:
        y = nn.Conv2d.forward(self, x)
        if self.channels_last and y.ndim == 4:
            y = y.contiguous(memory_format=torch.channels_last)
        return y

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if isinstance(x, Tensor):
            return self._conv(x)
        return self._seq_forward(x, self._conv)


class LinearT(_AffineMixin, nn.Linear):
    """``nn.Linear`` over a :class:`Seq`."""

    def _spec(self) -> tuple[Any, ...]:
        return ("linear",)

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if isinstance(x, Tensor):
            return super().forward(x)
        return self._seq_forward(x, super().forward)


# ---------------------------------------------------------------------- batch norm over time
class _BNTMixin:
    """Batch norm over time: in training the statistics are taken over the ``T*B`` step
    tensors together (a static sequence: over ``B``, the same thing). In the rate mode the
    graph recomputes the normalisation from the time means ``z̄`` with
    ``var = var_B(z̄) + within`` (the law of total variance; ``within``, the mean temporal
    variance, enters as a constant), so its value equals the per-step statistics exactly and
    the gradient flows through the mean and the between-sample variance.

    ``exact_rate_grad`` (set per network by :attr:`DSRNet.exact_bn_grad`, on by default): also
    give the producing linear op the weight-gradient term of the steps' temporal deviations, so
    the rate form's gradients equal the per-step form's for IF networks (see
    :class:`_RateBatchNormFn`); costs one weight-gradient op over the ``T*B`` steps in the
    forward."""

    # provided by the torch batch norm this is mixed into
    weight: nn.Parameter
    bias: nn.Parameter
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None
    eps: float
    momentum: float | None
    track_running_stats: bool
    training: bool

    exact_rate_grad: bool = False
    # distributed training: statistics over every process (snnsim.nn.syncbn), else None
    process_group: Any = None

    def _synced(self) -> bool:
        return self.process_group is not None and self.training

    def _seq_forward(self, x: Seq, plain: Any) -> Seq:
        if x.rate is None:
            return Seq(plain(x.steps), x.T, x.static)
        z = x.steps
        with torch.no_grad():
            # one pass: normalised steps, batch mean/invstd over T*B, running-stat update
            momentum = self._momentum_now()
            steps, _, invstd = torch.native_batch_norm(
                z,
                self.weight,
                self.bias,
                self.running_mean,
                self.running_var,
                True,
                0.0 if momentum is None else momentum,
                self.eps,
            )
            var_all = invstd.double().pow(-2).sub(self.eps).to(z.dtype)
            cov = None
            if self.exact_rate_grad and x.producer is not None and not x.static:
                # K = sum_{b,t} (z - zbar) (x) in = sum z (x) in - T * sum_b zbar (x) inbar:
                # one weight-gradient op over the steps and one over the means (the rate
                # graph's values), no [T*B] deviation tensor
                op, inp = x.producer
                T = x.T
                K = op.weight_grad(z, inp)
                if x.producer_means is not None:
                    in_mean, z_mean = x.producer_means
                    K -= T * op.weight_grad(z_mean, in_mean)
                else:
                    K -= T * op.weight_grad(time_mean(z, T), time_mean(inp, T))
                cov = (op.weight, K, T)
        return Seq(steps, x.T, x.static, self.rate_graph(x.rate, var_all, cov))

    def _momentum_now(self) -> float | None:
        """Counts the batch (when running statistics are tracked) and returns the momentum."""
        momentum = self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return momentum

    @torch.no_grad()
    def update_running(self, mean: Tensor, var: Tensor, count: int) -> None:
        """The running-statistics update of one training batch whose statistics over ``count``
        values per channel are ``mean`` and the biased ``var`` (as ``native_batch_norm``)."""
        momentum = self._momentum_now()
        if not self.track_running_stats or self.running_mean is None or self.running_var is None:
            return
        m = 0.0 if momentum is None else momentum
        unbiased = var * (count / max(count - 1, 1))
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)

    def rate_graph(
        self, zb: Tensor, var_all: Tensor, cov: tuple[Tensor, Tensor, int] | None = None
    ) -> Tensor:
        """The normalisation on the rate graph ``zb`` (time means, ``[B, C, ...]``) given the
        per-channel variance over all ``T*B`` step values (see the class docstring); one
        fused forward and one batch-norm backward kernel (:class:`_RateBatchNormFn`).
        ``cov = (W, K, T)``: the producing op's weight and the weight gradient of the steps'
        deviations from their time means, for the exact weight gradient."""
        if self.process_group is not None:
            from .syncbn import rate_graph

            return rate_graph(self, zb, var_all, cov)
        w_op, K, T = cov if cov is not None else (None, None, 1)
        return _RateBatchNormFn.apply(zb, var_all, self.weight, self.bias, self.eps, w_op, K, T)

    def rate_graph_reference(self, zb: Tensor, var_all: Tensor) -> Tensor:
        """:meth:`rate_graph` written as plain autograd ops (the definition it is tested
        against)."""
        dims = [0] + list(range(2, zb.ndim))
        shape = [1, -1] + [1] * (zb.ndim - 2)
        mu = zb.mean(dim=dims, keepdim=True)
        d = zb - mu
        between = (d * d).mean(dim=dims)
        within = (var_all - between.detach()).clamp_min(0.0)
        inv = torch.rsqrt(between + within + self.eps).reshape(shape)
        y = d * inv
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


class _RateBatchNormFn(torch.autograd.Function):
    """``y = (zb - mu) * rsqrt(between + within + eps) * w + b`` with ``mu``, ``between`` the
    batch mean and (biased) variance of ``zb`` and ``within = max(var_all - between, 0)`` a
    constant. Because ``within`` is constant, the gradient is exactly the standard batch-norm
    backward evaluated with ``invstd = rsqrt(between + within + eps)``, so torch's own kernel
    computes it (instead of ~15 element-wise autograd ops).

    Exact weight gradient of the producing op. With per-step statistics the batch norm's
    gradient at step ``t`` is ``(s/T)(g_b - mean(g) - xhat_{b,t} m2)`` (``g = dL/dy * w``,
    ``m2 = mean(g * xbar_hat)``): its last term varies over the steps, and the linear op's
    weight gradient sums it against each step's input. The rate graph sees only the time
    means, so it misses ``-(s^2 m2 / T) K`` with ``K = sum_{b,t} (z_{b,t} - zbar_b) * in_{b,t}``
    (the op's weight gradient of the deviations, computed in the forward while the steps are
    alive: weight-sized, flat in ``T``). With it (``w_op``, ``K`` given) the rate form's weight
    gradients equal the per-step form's (the public code's) on networks with batch norm too."""

    @staticmethod
    def forward(
        ctx: Any,
        zb: Tensor,
        var_all: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        eps: float,
        w_op: Tensor | None = None,
        K: Tensor | None = None,
        T: int = 1,
    ) -> Tensor:
        # per-channel mean and biased variance in one pass (torch.var_mean over the batch and
        # spatial dims is several times slower on the CPU)
        mu, between = torch.batch_norm_update_stats(zb, None, None, 0.0)
        var = torch.maximum(var_all.to(between.dtype), between)
        invstd = torch.rsqrt(var + eps)
        ctx.save_for_backward(zb, weight, mu, invstd, K)
        ctx.eps, ctx.T = eps, T
        return F.batch_norm(zb, mu, var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:
        zb, weight, mu, invstd, K = ctx.saved_tensors
        need = ctx.needs_input_grad
        gz, gw, gb = torch.ops.aten.native_batch_norm_backward(
            gy.contiguous(memory_format=memory_format_of(zb)),
            zb,
            weight,
            None,
            None,
            mu,
            invstd,
            True,
            ctx.eps,
            [need[0], weight is not None and need[2], weight is not None and need[3]],
        )
        g_op = None
        if K is not None and need[5]:
            shape = [1, -1] + [1] * (zb.ndim - 2)
            g = gy if weight is None else gy * weight.reshape(shape)
            dims = [0] + list(range(2, zb.ndim))
            m2 = (g * (zb - mu.reshape(shape))).mean(dims) * invstd  # mean(g * xbar_hat)
            coef = -(invstd * invstd * m2) / ctx.T
            g_op = K * coef.reshape([-1] + [1] * (K.ndim - 1))
        return gz, None, gw, gb, None, g_op, None, None


class BatchNormT(_BNTMixin, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over time (statistics over ``T*B``)."""

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if self._synced():
            from .syncbn import bnt_forward

            return bnt_forward(self, x)
        if isinstance(x, Tensor):
            return super().forward(x)
        return self._seq_forward(x, super().forward)


class BatchNorm1dT(_BNTMixin, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over time (statistics over ``T*B``)."""

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if self._synced():
            from .syncbn import bnt_forward

            return bnt_forward(self, x)
        if isinstance(x, Tensor):
            return super().forward(x)
        return self._seq_forward(x, super().forward)


# ---------------------------------------------------------------------- shape ops
class AvgPoolT(nn.AvgPool2d):
    """``nn.AvgPool2d`` applied at every step."""

    @property
    def window(self) -> int | None:
        """``k`` for a plain non-overlapping ``k x k`` pool (what a neuron layer can pool
        inside its own forward, :meth:`DSRNeuron.forward_pooled`), else ``None``."""
        k, st, pad = self.kernel_size, self.stride, self.padding
        if isinstance(k, tuple):
            if len(set(k)) != 1:
                return None
            k = k[0]
        st = st[0] if isinstance(st, tuple) and len(set(st)) == 1 else st
        pad = pad[0] if isinstance(pad, tuple) and len(set(pad)) == 1 else pad
        if st != k or pad != 0 or self.ceil_mode or self.divisor_override is not None:
            return None
        return int(k)

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if isinstance(x, Tensor):
            return super().forward(x)
        return x.map(super().forward)


class FlattenT(nn.Flatten):
    """``nn.Flatten`` (from dim 1) applied at every step."""

    def forward(self, x: Flow) -> Flow:  # type: ignore[override]  # takes a Seq as well as a Tensor
        if isinstance(x, Tensor):
            return super().forward(x)
        return x.map(super().forward)


class DropoutT(nn.Module):
    """Dropout with one mask per sample shared by all ``T`` steps (so a dropped neuron is silent
    for the whole sequence, and both backward forms see the same network)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"DropoutT: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Flow) -> Flow:
        if not self.training or self.p == 0:
            return x
        if isinstance(x, Tensor):
            return F.dropout(x, self.p, True)
        B = x.batch
        shape = (B,) + tuple(x.steps.shape[1:])
        mask = torch.empty(shape, dtype=x.steps.dtype, device=x.steps.device).bernoulli_(
            1 - self.p
        ) / (1 - self.p)
        if x.static:
            steps = x.steps * mask
        else:
            steps = (x.steps.reshape((x.T,) + shape) * mask).reshape(x.steps.shape)
        rate = None if x.rate is None else x.rate * mask
        return Seq(steps, x.T, x.static, rate)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def run_layers(layers: nn.Sequential, x: Flow) -> Flow:
    """Apply ``layers`` in order; a DSR neuron layer followed by a plain average pool pools
    inside its own forward (:meth:`DSRNeuron.forward_pooled`)."""
    mods = list(layers.children())
    i = 0
    while i < len(mods):
        m = mods[i]
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(m, DSRNeuron) and isinstance(nxt, AvgPoolT) and isinstance(x, Seq):
            x = m.forward_pooled(x, nxt)
            i += 2
        else:
            x = m(x)
            i += 1
    return x


def add_flows(a: Flow, b: Flow) -> Flow:
    """Sum of two flows (residual connections)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a + b
    if not (isinstance(a, Seq) and isinstance(b, Seq)):
        raise TypeError("add_flows: cannot add a Seq and a plain tensor")
    if a.static and b.static:
        steps = a.steps + b.steps
        static = True
    else:
        steps = a.expanded() + b.expanded()
        static = False
    rate = None
    if a.rate is not None or b.rate is not None:
        ra = a.rate if a.rate is not None else a.mean().detach()
        rb = b.rate if b.rate is not None else b.mean().detach()
        rate = ra + rb
    return Seq(steps, a.T, static, rate)


# ---------------------------------------------------------------------- neurons
class DSRNeuron(nn.Module):
    """A layer of DSR neurons (IF or LIF) with one trainable threshold ``theta`` (kept
    ``>= cfg.bound`` before every training forward), firing at ``alpha*theta``.

    Input: a :class:`Seq` of currents. Output: a :class:`Seq` of the value each spike carries
    (``theta`` IF, ``theta/dt`` LIF) at every step. ``last_rate`` holds the mean firing rate
    (spikes per neuron per step) of the last forward pass.
    """

    def __init__(self, cfg: DSRNeuronConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.theta = nn.Parameter(torch.tensor(float(cfg.theta0)), requires_grad=cfg.train_theta)
        self.last_rate: Tensor | None = None

    @property
    def alpha(self) -> float:
        return self.cfg.alpha

    def params(self) -> DsrIFParams | DsrLIFParams:
        """The neuron's parameters for :mod:`snnsim.neurons` (float), e.g. for export. Note
        that an exported network must also scale the next layer's weights by the value a spike
        carries (:meth:`spike_value`)."""
        th = self.theta.detach()
        if self.cfg.kind == "if":
            return DsrIFParams(theta=th, fire=self.cfg.alpha * th)
        lam = torch.tensor(self.cfg.leak, dtype=th.dtype)
        return DsrLIFParams(theta=th, fire=self.cfg.alpha * th, leak=lam, gain=1.0 - lam)

    def spike_value(self) -> Tensor:
        return spike_value(self.theta.detach(), self.cfg)

    def forward(self, x: Flow) -> Seq:
        return self._forward(x, None)

    def forward_pooled(self, x: Flow, pool: AvgPoolT) -> Seq:
        """``pool(self(x))``, with the pooling done inside the neuron's native forward where it
        can be (rate form or no autograd, and no forward hooks that want the full-size spikes;
        these are then never stored)."""
        k = pool.window
        if (
            k is None
            or self._hooked()
            or (
                isinstance(x, Seq)
                and x.rate is None
                and torch.is_grad_enabled()
                and (x.steps.requires_grad or self.theta.requires_grad)
            )
        ):
            return pool(self(x))
        return self._forward(x, pool)

    def _hooked(self) -> bool:
        """Whether forward hooks (this module's or global ones) expect to see the full-size
        spikes: then the neuron and the pool run as two modules."""
        from torch.nn.modules import module as _m

        return bool(
            self._forward_hooks
            or self._forward_pre_hooks
            or _m._global_forward_hooks
            or _m._global_forward_pre_hooks
        )

    def _forward(self, x: Flow, pool: AvgPoolT | None) -> Seq:
        if isinstance(x, Tensor):
            raise TypeError("DSRNeuron needs a Seq input (use ReLU for an ANN)")
        if self.training:
            with torch.no_grad():
                self.theta.clamp_(min=self.cfg.bound)
        T, cfg = x.T, self.cfg
        n_out = x.steps[0].numel() * x.batch * T
        k = None if pool is None else pool.window
        if x.rate is not None:
            fwd = dsr_forward(x.steps, T, self.theta, cfg, x.static, pool=k)
            rate = DSRRateFn.apply(x.rate, self.theta, fwd.I, fwd.r, cfg)
            if pool is not None:
                rate = nn.AvgPool2d.forward(pool, rate)
            y = Seq(fwd.out, T, False, rate)
            self.last_rate = fwd.spikes / n_out
            return y
        if pool is not None:
            fwd = dsr_forward(x.steps, T, self.theta, cfg, x.static, pool=k)
            self.last_rate = fwd.spikes / n_out
            return Seq(fwd.out, T, False)
        if torch.is_grad_enabled() and (x.steps.requires_grad or self.theta.requires_grad):
            y = Seq(DSRStepFn.apply(x.steps, self.theta, T, cfg, x.static), T, False)
        else:
            fwd = dsr_forward(x.steps, T, self.theta, cfg, x.static)
            y = Seq(fwd.out, T, False)
            self.last_rate = fwd.spikes / n_out
            return y
        with torch.no_grad():
            self.last_rate = y.steps.sum() / (
                spike_value(self.theta.detach(), cfg) * y.steps.numel()
            )
        return y

    def extra_repr(self) -> str:
        c = self.cfg
        s = f"kind={c.kind!r}, theta0={c.theta0}, alpha={c.alpha}, bound={c.bound}"
        if c.kind == "lif":
            s += f", dt={c.dt}, tau={c.tau}"
        return s + f", grad_scale={c.grad_scale}, train_theta={c.train_theta}"


class Readout(nn.Module):
    """The last spiking layer's representation as logits: the mean (IF) or lambda-weighted mean
    (LIF) of the values its spikes carry. Plain tensors pass through (ANN)."""

    def __init__(self, cfg: DSRNeuronConfig | None) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, x: Flow) -> Tensor:
        if isinstance(x, Tensor):
            return x
        T, cfg = x.T, self.cfg
        value_fn: Callable[[Tensor], Tensor]
        if cfg is None or cfg.kind == "if" or x.static:
            value_fn = lambda s: s if x.static else time_mean(s, T)  # noqa: E731 - one-line law per branch
            scale = 1.0
        else:
            w = lif_weights(T, cfg, x.steps)
            value_fn = lambda s: torch.tensordot(w, s.reshape((T, -1) + tuple(s.shape[1:])), dims=1)  # noqa: E731 - one-line law per branch
            scale = float(T * (w.double() ** 2).sum())
        if x.rate is None:
            return value_fn(x.steps)
        with torch.no_grad():
            value = value_fn(x.steps)
        return ReadoutRateFn.apply(x.rate, value, scale)
