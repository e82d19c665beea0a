"""DSR neurons for training (Meng et al., CVPR 2022): forward = the true SNN over ``T`` steps,
backward = the spike-representation mapping (docs/semantics.md §1.1).

The forward pass simulates each neuron layer with the step functions of
:mod:`snnsim.neurons` (:func:`~snnsim.neurons.dsr_if_step`, :func:`~snnsim.neurons.dsr_lif_step`);
no autograd graph is built through time. The backward pass differentiates the mapping of Eq. 17,

* IF:  ``r = clamp(I, 0, theta)`` with ``I`` the mean input current over the ``T`` steps;
* LIF: ``r = clamp(I / tau, 0, theta / dt)`` with ``I`` the lambda-weighted mean current,

and the threshold gradient of Eq. 19 (the upstream gradient where ``I`` exceeds the upper
bound of the clamp), scaled by ``theta_grad_scale`` (the public code's choice: 1 for IF, ``dt``
for LIF, where the exact factor ``1/dt`` collapses thresholds).

Two backward forms, selected per network (``mode``):

``"step"`` (:class:`DSRStepFn`, the per-step reference form of the public DSR code)
    The neuron's forward takes the currents of all steps ``[T*B, ...]`` and returns the value
    each spike carries (``theta`` for IF, ``theta/dt`` for LIF) at every step. Its backward
    collapses the upstream gradient over time (``G = sum_t dL/dout_t`` for IF, ``T`` times
    the lambda-weighted mean for LIF) and spreads ``G * mask / T`` (``/tau`` for LIF) uniformly
    back over the steps. Autograd keeps every step's input to the linear ops, so memory grows
    with ``T``.

``"rate"`` (:class:`DSRRateFn`, :class:`AffineRateFn`, :class:`ReadoutRateFn`)
    The same gradient computed on ``[B, ...]`` tensors: every layer's spikes are simulated
    under ``torch.no_grad()``, and a parallel graph carries each layer's time-averaged value
    (the uniform mean over the steps of what flows between layers). The linear ops' backward
    uses that mean of their input, so what autograd keeps does not grow with ``T``. For
    networks without batch norm the weight and threshold gradients equal the ``"step"``
    form's (the upstream gradient of a linear op is constant over time in that form). With
    batch norm over time, the gradient through the batch variance keeps only its between-sample
    part (the within-sample temporal variance enters as a constant), see
    :class:`snnsim.nn.layers.BatchNormT`.

Units: currents and thresholds are in the membrane's units; ``dt`` and ``tau`` in the same
(arbitrary) time unit, ``lambda = exp(-dt/tau)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor
from torch.autograd import Function

from ..native import optional_core
from ..neurons import DsrIFParams, DsrLIFParams, dsr_if_step, dsr_lif_step

__all__ = [
    "NeuronKind",
    "DSRNeuronConfig",
    "dsr_defaults",
    "lif_weights",
    "simulate_dsr",
    "dsr_forward",
    "dsr_forward_chunk",
    "DSRForward",
    "mean_current",
    "DSRStepFn",
    "DSRRateFn",
    "AffineRateFn",
    "ReadoutRateFn",
    "as_channels_last",
    "memory_format_of",
]

NeuronKind = Literal["if", "lif"]


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DSRNeuronConfig:
    """Hyperparameters of one DSR neuron layer.

    ``theta0``: initial threshold; ``alpha``: fire at ``U >= alpha*theta``; ``bound``: lower
    bound kept on the trainable threshold; ``dt``, ``tau``: LIF time step and time constant
    (unused by IF); ``theta_grad_scale``: factor on the Eq. 19 gradient (``None``: 1 for IF,
    ``dt`` for LIF, as the public code); ``train_theta``: threshold trainable or fixed.
    """

    kind: NeuronKind = "if"
    theta0: float = 6.0
    alpha: float = 0.5
    bound: float = 0.01
    dt: float = 0.05
    tau: float = 1.0
    theta_grad_scale: float | None = None
    train_theta: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("if", "lif"):
            raise ValueError(f"DSRNeuronConfig.kind must be 'if' or 'lif', got {self.kind!r}")
        if not self.theta0 > 0 or not self.bound > 0:
            raise ValueError(
                f"DSRNeuronConfig: theta0 and bound must be > 0, got {self.theta0}, {self.bound}"
            )
        if not 0 < self.alpha <= 1:
            raise ValueError(f"DSRNeuronConfig.alpha must be in (0, 1], got {self.alpha}")
        if not self.dt > 0 or not self.tau > 0:
            raise ValueError(
                f"DSRNeuronConfig: dt and tau must be > 0, got dt={self.dt}, tau={self.tau}"
            )

    @property
    def grad_scale(self) -> float:
        if self.theta_grad_scale is not None:
            return float(self.theta_grad_scale)
        return 1.0 if self.kind == "if" else float(self.dt)

    @property
    def leak(self) -> float:
        """LIF ``lambda = exp(-dt/tau)``."""
        return math.exp(-self.dt / self.tau)

    def with_(self, **kw: Any) -> "DSRNeuronConfig":
        return replace(self, **kw)


def dsr_defaults(kind: NeuronKind, T: int) -> DSRNeuronConfig:
    """The paper's defaults by latency (docs/semantics.md §1.1): IF ``theta0 = 6, alpha = 0.5,
    bound = 0.01``; LIF ``tau = 1`` and ``T >= 16``: ``theta0 0.3, bound 5e-4, dt 0.05,
    alpha 0.3``; ``8 <= T <= 15``: as ``T = 20`` with ``alpha 0.4``; ``T <= 7``: ``theta0 0.6,
    bound 1e-3, dt 0.1, alpha 0.5``."""
    if T < 1:
        raise ValueError(f"dsr_defaults: T must be >= 1, got {T}")
    if kind == "if":
        return DSRNeuronConfig(kind="if", theta0=6.0, alpha=0.5, bound=0.01)
    if kind != "lif":
        raise ValueError(f"dsr_defaults: kind must be 'if' or 'lif', got {kind!r}")
    if T >= 16:
        return DSRNeuronConfig(kind="lif", theta0=0.3, alpha=0.3, bound=5e-4, dt=0.05, tau=1.0)
    if T >= 8:
        return DSRNeuronConfig(kind="lif", theta0=0.3, alpha=0.4, bound=5e-4, dt=0.05, tau=1.0)
    return DSRNeuronConfig(kind="lif", theta0=0.6, alpha=0.5, bound=1e-3, dt=0.1, tau=1.0)


def lif_weights(T: int, cfg: DSRNeuronConfig, like: Tensor) -> Tensor:
    """Normalised LIF weights ``w_n = lambda^(T-n) / sum_m lambda^(T-m)``, ``n = 1..T``."""
    lam = cfg.leak
    w = torch.tensor([lam ** (T - n) for n in range(1, T + 1)], dtype=torch.float64)
    return (w / w.sum()).to(device=like.device, dtype=like.dtype)


def _time_view(x: Tensor, T: int) -> Tensor:
    return x.reshape((T, x.shape[0] // T) + tuple(x.shape[1:]))


def mean_current(x: Tensor, T: int, static: bool, cfg: DSRNeuronConfig) -> Tensor:
    """``I`` of the mapping: the mean of the per-step currents ``x`` (``[T*B, ...]``, time-major)
    for IF, the lambda-weighted mean for LIF; a static current ``[B, ...]`` is its own mean."""
    if static:
        return x
    xt = _time_view(x, T)
    if cfg.kind == "if":
        return xt.mean(0)
    w = lif_weights(T, cfg, x)
    return torch.tensordot(w, xt, dims=1)


def _upper(theta: Tensor, cfg: DSRNeuronConfig) -> Tensor:
    """Upper bound of the clamp in units of ``I``: ``theta`` (IF), ``theta*tau/dt`` (LIF)."""
    return theta if cfg.kind == "if" else theta * (cfg.tau / cfg.dt)


def spike_value(theta: Tensor, cfg: DSRNeuronConfig) -> Tensor:
    """The value one spike carries to the next layer: ``theta`` (IF) or ``theta/dt`` (LIF)."""
    return theta if cfg.kind == "if" else theta / cfg.dt


# ---------------------------------------------------------------------- simulation
def _torch_law(theta: Tensor, cfg: DSRNeuronConfig, like: Tensor) -> tuple[Any, Any]:
    """The step function of :mod:`snnsim.neurons` and its parameters for ``theta`` (already in
    ``like``'s dtype): firing at ``alpha*theta``, LIF leak ``lambda`` and gain ``1 - lambda``."""
    fire = cfg.alpha * theta
    if cfg.kind == "if":
        return DsrIFParams(theta=theta, fire=fire), dsr_if_step
    leak = torch.tensor(cfg.leak, dtype=like.dtype, device=like.device)
    return DsrLIFParams(theta=theta, fire=fire, leak=leak, gain=1.0 - leak), dsr_lif_step


def _native_law(theta: Tensor, cfg: DSRNeuronConfig) -> dict[str, Any]:
    """The ``law`` argument of ``snnsim._core.dsr_forward``: the kind and the constants, the
    same float32 values as :func:`_torch_law` computes (``theta`` already float32)."""
    p, _ = _torch_law(theta, cfg, theta)
    law: dict[str, Any] = {
        "kind": cfg.kind,
        "theta": float(theta),
        "fire": float(p.fire),
        "value": float(spike_value(theta, cfg)),
    }
    if cfg.kind == "lif":
        law.update(leak=float(p.leak), gain=float(p.gain))
    return law


@torch.no_grad()
def simulate_dsr(
    x: Tensor, T: int, theta: Tensor, cfg: DSRNeuronConfig, static: bool = False
) -> Tensor:
    """Run the DSR neuron over ``T`` steps from a zero membrane and return the value each spike
    carries at every step, ``[T*B, ...]`` time-major (``spike_value * s``).

    ``x``: the currents ``[T*B, ...]`` (time-major), or with ``static=True`` one current
    ``[B, ...]`` applied at every step. ``theta``: scalar tensor.
    """
    theta = theta.detach().to(dtype=x.dtype)
    B = x.shape[0] if static else x.shape[0] // T
    shape = (B,) + tuple(x.shape[1:])
    p, step = _torch_law(theta, cfg, x)
    value = spike_value(theta, cfg)
    fmt = memory_format_of(x)
    out = _empty((T * B,) + tuple(x.shape[1:]), x, fmt)
    v = _empty(shape, x, fmt).zero_()
    for t in range(T):
        xt = x if static else x[t * B : (t + 1) * B]
        s, v = step(xt, v, p)
        torch.mul(s, value, out=out[t * B : (t + 1) * B])
    return out


@dataclass(frozen=True)
class DSRForward:
    """What one neuron layer's forward produces: ``out`` (``[T*B, ...]``, the value carried at
    every step), ``I`` (the mean input current of the mapping, ``[B, ...]``), ``r`` (the uniform
    time mean of ``out``) and ``spikes`` (how many spikes fired, a 0-d tensor)."""

    out: Tensor
    I: Tensor
    r: Tensor
    spikes: Tensor


def _flat(t: Tensor) -> Tensor | None:
    """A flat view of ``t`` in memory order (contiguous or channels-last), else ``None``."""
    if t.is_contiguous():
        return t.view(-1)
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).reshape(-1)
    return None


def _flat_np(t: Tensor) -> Any:
    """The numpy array of :func:`_flat` for a tensor allocated in its memory format (always
    flat in memory order)."""
    f = _flat(t)
    if f is None:
        raise RuntimeError(f"tensor of shape {tuple(t.shape)} is not dense in memory order")
    return f.numpy()


@torch.no_grad()
def dsr_forward(
    x: Tensor,
    T: int,
    theta: Tensor,
    cfg: DSRNeuronConfig,
    static: bool = False,
    pool: int | None = None,
) -> DSRForward:
    """One DSR neuron layer's forward: :func:`simulate_dsr`, :func:`mean_current` and the time
    mean of the outputs together. On the CPU in float32 this is one fused pass in the native
    core (``snnsim._core.dsr_forward``), bit-identical in its spikes to the torch step
    functions; elsewhere (CUDA, float64, no native module) it is the torch code.

    ``pool=k``: the outputs go through a ``k x k`` average pool (stride ``k``, no padding, as
    ``nn.AvgPool2d(k)``) before they are returned, so ``out`` is the pooled ``[T*B, C, H/k,
    W/k]``; natively the full-size outputs are never stored. ``I`` and ``r`` stay full size."""
    core = optional_core("dsr_forward")
    xf = (
        _flat(x)
        if (core is not None and x.device.type == "cpu" and x.dtype == torch.float32)
        else None
    )
    poolable = (
        pool is not None and x.ndim == 4 and x.shape[2] % pool == 0 and x.shape[3] % pool == 0
    )
    if core is None or xf is None or (pool is not None and not poolable):
        out = simulate_dsr(x, T, theta, cfg, static)
        r = out.reshape((T, out.shape[0] // T) + tuple(out.shape[1:])).mean(0)
        spikes = (out != 0).sum()
        if pool is not None:
            out = torch.nn.functional.avg_pool2d(out, pool)
        return DSRForward(out, mean_current(x, T, static, cfg), r, spikes)
    B = x.shape[0] if static else x.shape[0] // T
    fmt = memory_format_of(x)
    out_shape = tuple(x.shape[1:])
    native_pool = None
    if pool is not None:
        C, H, W = x.shape[1:]
        out_shape = (C, H // pool, W // pool)
        native_pool = (pool, C, H, W, fmt == torch.channels_last)
    out = _empty((T * B,) + out_shape, x, fmt)
    I = _empty((B,) + tuple(x.shape[1:]), x, fmt)
    r = torch.empty_like(I)
    options: dict[str, Any] = {"pool": native_pool}
    if cfg.kind == "lif" and not static:
        options["current_weights"] = lif_weights(T, cfg, x).numpy()
    n = core.dsr_forward(
        xf.numpy(),
        _flat_np(out),
        _flat_np(I),
        _flat_np(r),
        T,
        static,
        _native_law(theta.detach().to(dtype=x.dtype), cfg),
        options,
    )
    return DSRForward(out, I, r, torch.tensor(float(n)))


@torch.no_grad()
def dsr_forward_chunk(
    x: Tensor,
    steps: int,
    theta: Tensor,
    cfg: DSRNeuronConfig,
    static: bool,
    membrane: Tensor,
    I_acc: Tensor,
    r_acc: Tensor,
    current_weights: Tensor,
    T: int,
) -> tuple[Tensor, int]:
    """Steps ``t0 .. t0+steps-1`` of a layer whose whole run has ``T`` steps (time-chunked
    training): continues from ``membrane`` (``[B, ...]``, updated in place), adds this chunk's
    share of the means to ``I_acc`` (``sum_t w_t x_t`` with ``current_weights``, the chunk's
    slice of the whole run's weights) and ``r_acc`` (``sum_t out_t / T``). Returns the chunk's
    outputs ``[steps*B, ...]`` and its spike count. The spikes are those of one whole run."""
    core = optional_core("dsr_forward")
    B = x.shape[0] if static else x.shape[0] // steps
    fmt = memory_format_of(x)
    out = _empty((steps * B,) + tuple(x.shape[1:]), x, fmt)
    th = theta.detach().to(dtype=x.dtype)
    if (
        core is not None
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and all(_flat(t) is not None for t in (x, membrane, I_acc, r_acc))
        and all(memory_format_of(t) == fmt for t in (membrane, I_acc, r_acc))
    ):
        n = core.dsr_forward(
            _flat_np(x),
            _flat_np(out),
            _flat_np(I_acc),
            _flat_np(r_acc),
            steps,
            static,
            _native_law(th, cfg),
            {
                "current_weights": current_weights.to(torch.float32).numpy(),
                "membrane": _flat_np(membrane),
                "accumulate": 1.0 / T,
            },
        )
        return out, int(n)
    p, step = _torch_law(th, cfg, x)
    value = spike_value(th, cfg)
    v = membrane
    n = 0
    for t in range(steps):
        xt = x if static else x[t * B : (t + 1) * B]
        s, v = step(xt, v, p)
        torch.mul(s, value, out=out[t * B : (t + 1) * B])
        I_acc.add_(xt * current_weights[t].to(x.dtype))
        r_acc.add_(out[t * B : (t + 1) * B] / T)
        n += int(s.sum())
    membrane.copy_(v)
    return out, n


# ---------------------------------------------------------------------- autograd: per-step form
def _native_mask_grads(
    G: Tensor,
    I: Tensor,
    theta: Tensor,
    ub: Tensor,
    cfg: DSRNeuronConfig,
    need_theta: bool,
) -> tuple[Tensor, Tensor | None] | None:
    """:func:`_mask_grads` in one fused native pass (CPU, float32, equal shapes in one memory
    order), else ``None``."""
    core = optional_core("dsr_rate_backward")
    if (
        core is None
        or G.device.type != "cpu"
        or G.dtype != torch.float32
        or I.dtype != torch.float32
        or G.shape != I.shape
    ):
        return None
    fmt = memory_format_of(I)
    gI = torch.empty_like(I, memory_format=fmt)
    If, Gf, out = _flat(I), _flat(G.contiguous(memory_format=fmt)), _flat(gI)
    if If is None or Gf is None or out is None:
        return None
    over = core.dsr_rate_backward(
        Gf.numpy(),
        If.numpy(),
        out.numpy(),
        float(ub),
        cfg.kind == "lif",
        float(cfg.tau) if cfg.kind == "lif" else 1.0,
    )
    gtheta = None
    if need_theta:
        gtheta = torch.tensor(over * cfg.grad_scale, dtype=theta.dtype).reshape(theta.shape)
    return gI, gtheta


def _mask_grads(
    G: Tensor,
    I: Tensor,
    theta: Tensor,
    cfg: DSRNeuronConfig,
    need_theta: bool,
) -> tuple[Tensor, Tensor | None]:
    """``dL/dI`` and ``dL/dtheta`` of the mapping given ``G = dL/dr`` (docs/semantics.md §1.1).
    On the CPU in float32 one fused native pass (``snnsim._core.dsr_rate_backward``) computes
    both."""
    ub = _upper(theta.detach(), cfg)
    native = _native_mask_grads(G, I, theta, ub, cfg, need_theta)
    if native is not None:
        return native
    if cfg.kind == "if":
        mask = (I >= 0) & (I <= ub)
        gI = G * mask
    else:
        mask = (I > 0) & (I < ub)
        gI = G * mask / cfg.tau
    gtheta = None
    if need_theta:
        gtheta = (G * (I > ub)).sum() * cfg.grad_scale
        gtheta = gtheta.reshape(theta.shape).to(theta.dtype)
    return gI, gtheta


class DSRStepFn(Function):
    """Per-step DSR neuron (the public code's backward). ``apply(x, theta, T, cfg, static)``:
    ``x`` ``[T*B, ...]`` time-major (or ``[B, ...]`` static), ``theta`` scalar tensor; returns
    ``[T*B, ...]``: the value carried by each step's spikes. Only ``I`` (``[B, ...]``) is saved."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, theta: Tensor, T: int, cfg: DSRNeuronConfig, static: bool
    ) -> Tensor:
        fwd = dsr_forward(x.detach(), T, theta, cfg, static)
        out, I = fwd.out, fwd.I
        ctx.save_for_backward(I, theta)
        ctx.T, ctx.cfg, ctx.static = T, cfg, static
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        I, theta = ctx.saved_tensors
        T, cfg, static = ctx.T, ctx.cfg, ctx.static
        go = _time_view(grad_out, T)
        if cfg.kind == "if":
            G = go.sum(0)
        else:
            G = torch.tensordot(lif_weights(T, cfg, go), go, dims=1) * T
        gI, gtheta = _mask_grads(G, I, theta, cfg, ctx.needs_input_grad[1])
        gx = None
        if ctx.needs_input_grad[0]:
            if static:
                gx = gI  # the same current at every step: sum over t of gI / T
            else:
                gx = (gI / T).unsqueeze(0).expand((T,) + tuple(gI.shape)).reshape(grad_out.shape)
        return gx, gtheta, None, None, None


# ---------------------------------------------------------------------- autograd: rate form
class DSRRateFn(Function):
    """Rate-graph DSR neuron. ``apply(I_graph, theta, I, r, cfg)``: returns ``r`` (the time mean
    of the simulated outputs, ``[B, ...]``); backward: ``dL/dI_graph = G*mask`` (``/tau`` LIF)
    with ``G = dL/dr`` and the mask of ``I`` (the exact mean current of the forward), and
    ``dL/dtheta`` of Eq. 19. ``I_graph`` only routes the gradient."""

    @staticmethod
    def forward(
        ctx: Any, I_graph: Tensor, theta: Tensor, I: Tensor, r: Tensor, cfg: DSRNeuronConfig
    ) -> Tensor:
        ctx.save_for_backward(I, theta)
        ctx.cfg = cfg
        return r  # returned as is (autograd makes it a view): no copy

    @staticmethod
    def backward(ctx: Any, G: Tensor) -> tuple[Tensor | None, ...]:
        I, theta = ctx.saved_tensors
        gI, gtheta = _mask_grads(G, I, theta, ctx.cfg, ctx.needs_input_grad[1])
        return gI, gtheta, None, None, None


class ReadoutRateFn(Function):
    """Rate-graph readout: returns ``value`` (the logits, e.g. the lambda-weighted LIF
    representation) and passes ``scale * grad`` to the rate graph ``r``. ``scale = T *
    sum_t w_t^2`` reproduces the per-step form, where the weighted readout gives
    ``dL/dout_t = w_t dL/dr`` and the neuron collapses ``T * sum_t w_t dL/dout_t``."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, value: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return value

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        return g * ctx.scale, None, None


class AffineRateFn(Function):
    """A linear op (``conv2d`` or ``linear``) in the rate graph whose forward value is already
    known. ``apply(r_in, weight, bias, value, spec)`` returns ``value`` (the time mean of the
    op's per-step outputs, computed without grad) and back-propagates as ``op(r_in)`` would,
    keeping only ``r_in`` (``[B, ...]``). ``spec``: ``("linear",)`` or ``("conv2d", stride,
    padding, dilation, groups)``."""

    @staticmethod
    def forward(
        ctx: Any,
        r_in: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        value: Tensor,
        spec: tuple[Any, ...],
    ) -> Tensor:
        ctx.save_for_backward(r_in, weight)
        ctx.spec = spec
        ctx.has_bias = bias is not None
        ctx.bias_shape = None if bias is None else list(bias.shape)
        return value

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        r_in, weight = ctx.saved_tensors
        spec = ctx.spec
        need_in, need_w, need_b = (
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            ctx.needs_input_grad[2],
        )
        gin = gw = gb = None
        if spec[0] == "linear":
            if need_in:
                gin = g @ weight
            if need_w:
                gw = g.reshape(-1, g.shape[-1]).t() @ r_in.reshape(-1, r_in.shape[-1])
            if need_b:
                gb = g.reshape(-1, g.shape[-1]).sum(0)
        else:
            _, stride, padding, dilation, groups = spec
            gin, gw, gb = torch.ops.aten.convolution_backward(
                g.contiguous(memory_format=memory_format_of(r_in)),
                r_in,
                weight,
                ctx.bias_shape if ctx.has_bias else None,
                list(stride),
                list(padding),
                list(dilation),
                False,
                [0, 0],
                groups,
                [need_in, need_w, bool(need_b and ctx.has_bias)],
            )
        return gin, gw, gb, None, None


def _empty(shape: tuple[int, ...], like: Tensor, fmt: torch.memory_format) -> Tensor:
    """An uninitialised tensor of ``like``'s dtype and device stored in ``fmt`` (4-D only may be
    channels-last), allocated that way (``empty(...).contiguous(fmt)`` would copy)."""
    if len(shape) != 4:
        fmt = torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def memory_format_of(t: Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-D tensor stored that way, else ``contiguous_format``. A tensor
    both formats describe (one channel, or 1x1 maps) counts as channels-last when its strides
    say so (channel stride 1, as :func:`as_channels_last` makes them)."""
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        if not t.is_contiguous() or (t.stride(1) == 1 and t.shape[1] * t.shape[2] * t.shape[3] > 1):
            return torch.channels_last
    return torch.contiguous_format


def as_channels_last(x: Tensor) -> Tensor:
    """``x`` (4-D) stored channels-last. A one-channel tensor is already laid out that way, but
    torch keeps its plain strides and its convolutions then run the (several times slower)
    plain-format kernel: it gets channels-last strides over the same memory instead."""
    if x.ndim != 4:
        return x
    if x.shape[1] == 1 and x.is_contiguous():
        H, W = x.shape[2], x.shape[3]
        return x.as_strided(x.shape, (H * W, 1, W, 1))
    return x.contiguous(memory_format=torch.channels_last)
