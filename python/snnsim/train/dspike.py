"""Dspike training (Li et al., "Differentiable Spike", NeurIPS 2021): layers, the network
container, the temperature search (Algorithm 1), Time Inheritance Training and export.

Tensors flow between layers time-major, ``[T', N, ...]``: ``T' = T`` per-step values, or
``T' = 1`` for a static sequence (a static image's first-layer current, computed once and
applied at every step, SPEC §4). Weighted layers run on the ``T'*N`` rows at once; tdBN
(:class:`~snnsim.train.tdbn.TdBN`) normalises over ``T*N``; :class:`DspikeNeuron` runs the LIF
of SPEC §1.2 step by step through the ONE implementation :func:`snnsim.neurons.dspike_lif_step`
with a surrogate (:mod:`snnsim.train.surrogates`) attached through its ``spike_fn`` hook::

    u_pre[n] = k u[n-1] + c[n];  s[n] = 1[u_pre[n] > Vth];  u[n] = u_pre[n] (1 - s[n])

The output layer integrates without firing: ``y = (1/T) sum_n (W x[n] + b)`` (the graph's
``linear -> integrate``; the engine's output ``V[N]/N``).

Algorithm 1 (:func:`temperature_search`): once per epoch, the FDG of the first weighted
layer's weights on one batch (central differences, ``eps`` 0.1) is compared by cosine
similarity with the surrogate gradient at ``b - db``, ``b`` and ``b + db``; the best candidate
becomes the temperature. The forward pass does not depend on ``b``, so the FDG is computed
once per search.

Time Inheritance Training: :func:`inherit` copies a network trained at ``T`` into one at
``T' < T`` (same weights and BN statistics) for fine-tuning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..graph import Graph
from ..neurons import DspikeLIFParams, dspike_lif_step
from .fdg import autograd_grad, cosine_similarity, finite_difference_grad
from .surrogates import B_MIN, DspikeSurrogate, Surrogate
from .tdbn import TdBN

__all__ = [
    "ConvTD",
    "LinearTD",
    "AvgPoolTD",
    "FlattenTD",
    "DspikeNeuron",
    "BasicBlockTD",
    "DspikeNet",
    "TemperatureSearch",
    "select_temperature",
    "temperature_search",
    "inherit",
    "to_graph",
]


def _flat(x: Tensor) -> Tensor:
    return x.reshape((x.shape[0] * x.shape[1],) + tuple(x.shape[2:]))


def _unflat(y: Tensor, T: int) -> Tensor:
    return y.reshape((T, y.shape[0] // T) + tuple(y.shape[1:]))


# ---------------------------------------------------------------------- layers
class ConvTD(nn.Conv2d):
    """``nn.Conv2d`` on ``[T', N, C, H, W]`` (a static ``T' = 1`` input is convolved once).
    :meth:`forward_stacked` evaluates ``K`` weight sets at once (for the FDG)."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return _unflat(super().forward(_flat(x)), x.shape[0])

    def forward_stacked(self, x: Tensor, weights: Tensor) -> Tensor:
        """``weights [K, *weight.shape]`` -> ``[T', K*N, Cout, ...]`` (sample index ``k*N + n``)."""
        K, T, N = weights.shape[0], x.shape[0], x.shape[1]
        w = weights.reshape((K * self.out_channels,) + tuple(self.weight.shape[1:]))
        b = None if self.bias is None else self.bias.repeat(K)
        y = F.conv2d(_flat(x), w, b, self.stride, self.padding, self.dilation, self.groups)
        y = y.reshape((T, N, K, self.out_channels) + tuple(y.shape[2:])).transpose(1, 2)
        return y.reshape((T, K * N, self.out_channels) + tuple(y.shape[4:]))


class LinearTD(nn.Linear):
    """``nn.Linear`` on ``[T', N, F]``."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x)

    def forward_stacked(self, x: Tensor, weights: Tensor) -> Tensor:
        K, T, N = weights.shape[0], x.shape[0], x.shape[1]
        y = torch.einsum("tnf,kof->tkno", x, weights)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(T, K * N, self.out_features)


class AvgPoolTD(nn.AvgPool2d):
    """``nn.AvgPool2d`` (no padding) at every step."""

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return _unflat(super().forward(_flat(x)), x.shape[0])


class FlattenTD(nn.Module):
    """Flatten each sample (``[T', N, C, H, W] -> [T', N, C*H*W]``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], x.shape[1], -1)


class DspikeNeuron(nn.Module):
    """A layer of Dspike LIF neurons: leak ``k``, firing level ``vth`` (strict ``>``), hard
    reset; the surrogate gradient of the (shared, mutable) ``surrogate``.

    Input ``[T', N, ...]`` currents (``T' = 1``: the same current at every step); output the
    spikes ``[T, N, ...]``. With ``record = True`` the last forward keeps, per step, the spikes
    and the margins ``U - vth`` (``recorded``). ``last_rate``: the mean firing rate.
    """

    def __init__(
        self, surrogate: Surrogate, leak: float = 0.5, vth: float = 0.5, T: int = 1
    ) -> None:
        super().__init__()
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"DspikeNeuron: leak must be in [0, 1], got {leak}")
        if vth <= 0:
            raise ValueError(f"DspikeNeuron: vth must be > 0, got {vth}")
        self.surrogate = surrogate
        self.leak = float(leak)
        self.vth = float(vth)
        self.T = int(T)
        self.record = False
        self.recorded: dict[str, list[Tensor]] = {}
        self.last_rate: float | None = None

    def params(self) -> DspikeLIFParams:
        return DspikeLIFParams(fire=self.vth, leak=self.leak)

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[0] if x.shape[0] > 1 else self.T
        if x.shape[0] not in (1, T):
            raise ValueError(f"DspikeNeuron: input has {x.shape[0]} steps, expected 1 or {T}")
        p = DspikeLIFParams(
            fire=torch.tensor(self.vth, dtype=x.dtype, device=x.device),
            leak=torch.tensor(self.leak, dtype=x.dtype, device=x.device),
        )
        spike_fn: Callable[[Tensor], Tensor] = self.surrogate
        margins: list[Tensor] = []
        if self.record:

            def spike_fn(m: Tensor) -> Tensor:  # noqa: F811 - records the margins
                margins.append(m.detach())
                return self.surrogate(m)

        v = torch.zeros_like(x[0])
        outs = []
        for t in range(T):
            s, v = dspike_lif_step(x[t] if x.shape[0] > 1 else x[0], v, p, spike_fn=spike_fn)
            outs.append(s)
        out = torch.stack(outs)
        if self.record:
            self.recorded = {"spikes": [o.detach() for o in outs], "margins": margins}
        self.last_rate = float(out.detach().mean())
        return out

    def extra_repr(self) -> str:
        return f"leak={self.leak}, vth={self.vth}, T={self.T}, surrogate={self.surrogate!r}"


class BasicBlockTD(nn.Module):
    """ResNet basic block: ``conv3x3-tdBN-LIF-conv3x3-tdBN (+ shortcut) -> LIF``. Downsampling
    (``stride = 2``) uses a stride-2 first conv and an average-pool shortcut
    ``AvgPool2 -> conv1x1 -> tdBN``; a width change at stride 1 uses ``conv1x1 -> tdBN``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        surrogate: Surrogate,
        leak: float,
        vth: float,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        self.conv1 = ConvTD(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = TdBN(cout, alpha, vth)
        self.sn1 = DspikeNeuron(surrogate, leak, vth)
        self.conv2 = ConvTD(cout, cout, 3, padding=1, bias=False)
        # tdBN on a residual branch: alpha = 1/sqrt(2) (the two branches add up).
        self.bn2 = TdBN(cout, alpha / np.sqrt(2.0), vth)
        short: list[nn.Module] = []
        if stride != 1:
            short.append(AvgPoolTD(stride))
        if stride != 1 or cin != cout:
            short += [ConvTD(cin, cout, 1, bias=False), TdBN(cout, alpha / np.sqrt(2.0), vth)]
        self.shortcut = nn.Sequential(*short)
        self.sn2 = DspikeNeuron(surrogate, leak, vth)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        sc = self.shortcut(x)
        if sc.shape[0] != y.shape[0]:  # a static input meets per-step values
            sc = sc.expand((y.shape[0],) + tuple(sc.shape[1:]))
        return self.sn2(y + sc)


# ---------------------------------------------------------------------- network
class DspikeNet(nn.Module):
    """A Dspike network: ``body`` (time-distributed layers ending with the output
    ``LinearTD``) run for ``T`` steps; logits = the output layer's mean over the steps.

    ``static_input``: images ``[B, C, H, W]`` (first current computed once) or event frames
    ``[B, T, C, H, W]``. ``surrogate`` is shared by every neuron (:meth:`set_surrogate`,
    :attr:`temperature`).
    """

    def __init__(
        self, body: Iterable[nn.Module], T: int, surrogate: Surrogate, static_input: bool = True
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)
        self.static_input = static_input
        self._T = 1
        self.surrogate = surrogate
        self.set_surrogate(surrogate)
        self.T = T

    # ------------------------------------------------------------------ settings
    @property
    def T(self) -> int:
        return self._T

    @T.setter
    def T(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"DspikeNet: T must be >= 1, got {value}")
        self._T = int(value)
        for m in self.neurons():
            m.T = self._T

    def neurons(self) -> list[DspikeNeuron]:
        return [m for m in self.modules() if isinstance(m, DspikeNeuron)]

    def set_surrogate(self, surrogate: Surrogate) -> None:
        self.surrogate = surrogate
        for m in self.neurons():
            m.surrogate = surrogate

    @property
    def temperature(self) -> float | None:
        return self.surrogate.b if isinstance(self.surrogate, DspikeSurrogate) else None

    @temperature.setter
    def temperature(self, b: float) -> None:
        if not isinstance(self.surrogate, DspikeSurrogate):
            raise TypeError("the temperature belongs to the Dspike surrogate")
        self.surrogate.b = b

    def first_layer(self) -> nn.Module:
        """The first weighted layer (the one the temperature search differentiates)."""
        for m in self.body.modules():
            if isinstance(m, (ConvTD, LinearTD)):
                return m
        raise ValueError("DspikeNet: no weighted layer")

    def firing_rates(self) -> dict[str, float]:
        return {
            n: m.last_rate
            for n, m in self.named_modules()
            if isinstance(m, DspikeNeuron) and m.last_rate is not None
        }

    # ------------------------------------------------------------------ forward
    def _time_major(self, x: Tensor) -> Tensor:
        if self.static_input:
            return x.unsqueeze(0)
        if x.ndim < 3 or x.shape[1] != self.T:
            raise ValueError(
                f"DspikeNet: event frames must be [B, T={self.T}, ...], got {list(x.shape)}"
            )
        return x.transpose(0, 1)

    def _readout(self, y: Tensor) -> Tensor:
        if y.shape[0] == 1:
            return y[0]
        return y.mean(0)

    def forward(self, x: Tensor) -> Tensor:
        return self._readout(self.body(self._time_major(x)))

    def forward_first_stacked(self, x: Tensor, weights: Tensor) -> Tensor:
        """Logits ``[K, B, classes]`` of ``K`` copies of the network whose first weighted layer
        uses ``weights[k]``; every tdBN normalises each copy with its own batch statistics
        (training mode) without touching the running statistics."""
        if not isinstance(self.body[0], (ConvTD, LinearTD)):
            raise ValueError(
                "forward_first_stacked: the body must start with its first weighted layer"
            )
        K, B = weights.shape[0], x.shape[0]
        bns = [m for m in self.modules() if isinstance(m, TdBN)]
        try:
            for m in bns:
                m.groups = K
            h = self.body[0].forward_stacked(self._time_major(x), weights)
            for layer in list(self.body)[1:]:
                h = layer(h)
        finally:
            for m in bns:
                m.groups = 1
        return self._readout(h).reshape(K, B, -1)

    def first_layer_losses(self, x: Tensor, y: Tensor, deltas: Tensor) -> Tensor:
        """Cross-entropy losses ``[K]`` at first-layer weights ``W + deltas[k]``."""
        w = self.first_layer().weight.detach()
        logits = self.forward_first_stacked(x, w.unsqueeze(0) + deltas)
        K, B, C = logits.shape
        ce = F.cross_entropy(logits.reshape(K * B, C), y.repeat(K), reduction="none")
        return ce.reshape(K, B).mean(1)


class _FrozenStats:
    """Context: tdBN layers keep their running statistics (training-mode forward)."""

    def __init__(self, model: nn.Module) -> None:
        self.bns = [m for m in model.modules() if isinstance(m, TdBN)]

    def __enter__(self) -> None:
        self.saved = [m.update_stats for m in self.bns]
        for m in self.bns:
            m.update_stats = False

    def __exit__(self, *exc: Any) -> None:
        for m, s in zip(self.bns, self.saved, strict=True):
            m.update_stats = s


# ---------------------------------------------------------------------- Algorithm 1
@dataclass
class TemperatureSearch:
    """Result of one search: the chosen temperature and the cosine similarity of each
    candidate's surrogate gradient with the FDG."""

    b: float
    candidates: list[float]
    cosines: list[float]
    fdg_norm: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def select_temperature(
    b: float,
    fdg: Tensor,
    surrogate_grad: Callable[[float], Tensor],
    db: float = 0.2,
    b_min: float = 0.05,
) -> TemperatureSearch:
    """Among ``{b - db, b, b + db}`` (those ``>= b_min``) pick the temperature whose surrogate
    gradient ``surrogate_grad(b')`` has the highest cosine similarity with ``fdg`` (ties: the
    first, i.e. the smaller temperature)."""
    cands = [c for c in (b - db, b, b + db) if c >= b_min - 1e-12] or [b]
    cands = [round(max(float(c), B_MIN), 6) for c in cands]
    cos = [cosine_similarity(surrogate_grad(c), fdg) for c in cands]
    best = int(np.argmax(cos))
    return TemperatureSearch(
        b=cands[best], candidates=cands, cosines=cos, fdg_norm=float(fdg.double().norm())
    )


def temperature_search(
    model: DspikeNet,
    x: Tensor,
    y: Tensor,
    db: float = 0.2,
    eps: float = 0.1,
    chunk: int = 64,
    coords: Sequence[int] | None = None,
    apply: bool = True,
    shard: tuple[int, int] = (0, 1),
    reduce: Callable[[Tensor], Tensor] | None = None,
    progress: Callable[[int], None] | None = None,
) -> TemperatureSearch:
    """Algorithm 1 on the batch ``(x, y)``: FDG of the first layer's weights (batched
    perturbations, ``chunk`` copies per pass; training-mode tdBN, running statistics frozen),
    then :func:`select_temperature`. Sets ``model.temperature`` when ``apply``. The model's
    train/eval mode is restored.

    Distributed use (:func:`snnsim.train.distributed.temperature_search`): ``shard = (r, W)``
    computes the FDG of the ``r``-th of ``W`` contiguous blocks of coordinates only (the
    others are 0) and ``reduce`` sums the partial FDGs over the processes. ``progress(k)``:
    called after every ``k`` coordinates of this process's block."""
    if not isinstance(model.surrogate, DspikeSurrogate):
        raise TypeError("temperature_search needs a Dspike surrogate")
    layer = model.first_layer()
    rank, world = shard
    if not 0 <= rank < world:
        raise ValueError(
            f"temperature_search: shard must be (rank, world) with 0 <= rank < world, got {shard}"
        )
    mine: Sequence[int] | None = coords
    if world > 1:
        every = list(range(layer.weight.numel())) if coords is None else list(coords)
        mine = every[len(every) * rank // world : len(every) * (rank + 1) // world]
    was_training = model.training
    b0 = model.surrogate.b
    model.train()
    try:
        with _FrozenStats(model), torch.no_grad():
            fdg = finite_difference_grad(
                layer.weight,
                eps,
                batched_loss_fn=lambda d: model.first_layer_losses(x, y, d),
                chunk=chunk,
                coords=mine,
                progress=progress,
            )
            if reduce is not None:
                fdg = reduce(fdg)

        def sg(b: float) -> Tensor:
            model.surrogate.b = b
            with _FrozenStats(model):
                g = autograd_grad(lambda: F.cross_entropy(model(x), y), layer.weight)
            return g if coords is None else _mask(g, coords)

        res = select_temperature(b0, fdg if coords is None else _mask(fdg, coords), sg, db)
    finally:
        model.surrogate.b = b0
        model.train(was_training)
    if apply:
        model.surrogate.b = res.b
    return res


def _mask(g: Tensor, coords: Sequence[int]) -> Tensor:
    return g.reshape(-1)[torch.as_tensor(coords, dtype=torch.long, device=g.device)]


# ---------------------------------------------------------------------- TIT
def inherit(model: DspikeNet, T: int) -> DspikeNet:
    """Time Inheritance Training: a copy of ``model`` (weights, tdBN statistics, surrogate
    state) running at ``T`` steps, to be fine-tuned. The surrogate object is copied too."""
    new = copy.deepcopy(model)
    new.set_surrogate(copy.deepcopy(model.surrogate))
    new.T = T
    return new


# ---------------------------------------------------------------------- export
def to_graph(model: DspikeNet, input_shape: Sequence[int] | None = None) -> Graph:
    """The float32 :class:`~snnsim.graph.Graph` of a sequential Dspike network (convs/linears,
    tdBN folded into the preceding weights and bias, Dspike LIF neurons, average pools,
    flatten, and the output ``LinearTD -> integrate``). ``input_shape`` ``(C, H, W)`` is needed
    for event models (and for static ones whose first layer is a conv, inferred otherwise from
    ``in_channels`` only when given)."""
    layers = list(model.body)
    if input_shape is None:
        raise ValueError("to_graph: give input_shape, e.g. (1, 28, 28)")
    g = Graph(
        input_shape=tuple(int(d) for d in input_shape),
        precision="float32",
        input_kind="static" if model.static_input else "events",
    )
    prev = "input"
    i = 0
    counter = {"conv": 0, "fc": 0, "sn": 0, "pool": 0, "flat": 0}

    def name(kind: str) -> str:
        counter[kind] += 1
        return f"{kind}{counter[kind]}"

    with torch.no_grad():
        while i < len(layers):
            m = layers[i]
            if isinstance(m, (ConvTD, LinearTD)):
                w = m.weight.detach().double()
                b = (
                    m.bias.detach().double()
                    if m.bias is not None
                    else torch.zeros(w.shape[0], dtype=torch.float64)
                )
                if i + 1 < len(layers) and isinstance(layers[i + 1], TdBN):
                    scale, shift = layers[i + 1].fold()
                    scale, shift = scale.double(), shift.double()
                    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
                    b = b * scale + shift
                    i += 1
                if isinstance(m, ConvTD):
                    if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                        raise ValueError("to_graph: only plain zero-padded convs are exported")
                    prev = g.conv2d(
                        name("conv"),
                        prev,
                        w.float().numpy(),
                        b.float().numpy(),
                        stride=tuple(m.stride),
                        padding=tuple(m.padding),
                    )
                else:
                    prev = g.linear(name("fc"), prev, w.float().numpy(), b.float().numpy())
            elif isinstance(m, DspikeNeuron):
                prev = g.dspike_lif(
                    name("sn"), prev, fire=np.float32(m.vth), leak=np.float32(m.leak)
                )
            elif isinstance(m, AvgPoolTD):
                if m.padding not in (0, (0, 0)) or m.ceil_mode:
                    raise ValueError("to_graph: average pools without padding only")
                prev = g.avgpool2d(name("pool"), prev, m.kernel_size, m.stride)
            elif isinstance(m, FlattenTD):
                prev = g.flatten(name("flat"), prev)
            else:
                raise ValueError(
                    f"to_graph: cannot export layer {type(m).__name__} (sequential CNNs only)"
                )
            i += 1
    if not isinstance(layers[-1], LinearTD):
        raise ValueError("to_graph: the body must end with the output LinearTD")
    g.integrate("out", prev)
    g.set_output("out")
    g.validate()
    return g


def neuron_names(model: DspikeNet) -> list[str]:
    """Graph node names (``sn1``, ``sn2``...) of the model's neurons, in body order."""
    return [
        f"sn{k + 1}" for k, _ in enumerate(m for m in model.body if isinstance(m, DspikeNeuron))
    ]
