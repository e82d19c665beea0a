"""Dspike layers (Li et al., "Differentiable Spike", NeurIPS 2021) and the network container.

Tensors flow between layers time-major, ``[T', N, ...]``: ``T' = T`` per-step values, or
``T' = 1`` for a static sequence (a static image's first-layer current, computed once and
applied at every step, docs/semantics.md §4). Weighted layers run on the ``T'*N`` rows at once;
tdBN (:class:`~snnsim.nn.tdbn.TdBN`) normalises over ``T*N``; :class:`DspikeNeuron` runs the LIF
of docs/semantics.md §1.2 step by step through the ONE implementation
:func:`snnsim.neurons.dspike_lif_step` with a surrogate (:mod:`snnsim.nn.surrogates`) attached
through its ``spike_fn`` hook::

    u_pre[n] = k u[n-1] + c[n];  s[n] = 1[u_pre[n] > Vth];  u[n] = u_pre[n] (1 - s[n])

The output layer integrates without firing: ``y = (1/T) sum_n (W x[n] + b)`` (the graph's
``linear -> integrate``; the engine's output ``V[N]/N``).

The temperature search (Algorithm 1) and Time Inheritance Training are in
:mod:`snnsim.train.dspike`; export to the engine is :func:`snnsim.exporter.export_graph`.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons import DspikeLIFParams, dspike_lif_step
from .surrogates import DspikeSurrogate, Surrogate
from .tdbn import TdBN

__all__ = [
    "ConvTD",
    "LinearTD",
    "AvgPoolTD",
    "FlattenTD",
    "GlobalAvgPoolTD",
    "DspikeNeuron",
    "BasicBlockTD",
    "DspikeNet",
]


def _flat(x: Tensor) -> Tensor:
    return x.reshape((x.shape[0] * x.shape[1],) + tuple(x.shape[2:]))


def _unflat(y: Tensor, T: int) -> Tensor:
    return y.reshape((T, y.shape[0] // T) + tuple(y.shape[1:]))


# ---------------------------------------------------------------------- layers
class ConvTD(nn.Conv2d):
    """``nn.Conv2d`` on ``[T', N, C, H, W]`` (a static ``T' = 1`` input is convolved once).
    :meth:`forward_stacked` evaluates ``K`` weight sets at once (for the FDG)."""

    def forward(self, x: Tensor) -> Tensor:
        """``[T', N, C, H, W] -> [T', N, Cout, Ho, Wo]``."""
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

    def forward(self, x: Tensor) -> Tensor:
        """``[T', N, F] -> [T', N, out_features]``."""
        return super().forward(x)

    def forward_stacked(self, x: Tensor, weights: Tensor) -> Tensor:
        """``weights [K, out, in]`` -> ``[T', K*N, out]`` (sample index ``k*N + n``)."""
        K, T, N = weights.shape[0], x.shape[0], x.shape[1]
        y = torch.einsum("tnf,kof->tkno", x, weights)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(T, K * N, self.out_features)


class AvgPoolTD(nn.AvgPool2d):
    """``nn.AvgPool2d`` (no padding) at every step."""

    def forward(self, x: Tensor) -> Tensor:
        """``[T', N, C, H, W] -> [T', N, C, Ho, Wo]``."""
        return _unflat(super().forward(_flat(x)), x.shape[0])


class FlattenTD(nn.Module):
    """Flatten each sample (``[T', N, C, H, W] -> [T', N, C*H*W]``)."""

    def forward(self, x: Tensor) -> Tensor:
        """``[T', N, C, H, W] -> [T', N, C*H*W]``."""
        return x.reshape(x.shape[0], x.shape[1], -1)


class GlobalAvgPoolTD(nn.Module):
    """Mean over the spatial positions at every step: ``[T', N, C, H, W] -> [T', N, C]``."""

    def forward(self, x: Tensor) -> Tensor:
        """``[T', N, C, H, W] -> [T', N, C]``."""
        return x.mean(dim=(3, 4))


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
        """The float parameters for :func:`snnsim.neurons.dspike_lif_step`."""
        return DspikeLIFParams(fire=self.vth, leak=self.leak)

    def forward(self, x: Tensor) -> Tensor:
        """Currents ``[T', N, ...]`` -> spikes ``[T, N, ...]`` (0/1 in ``x``'s dtype)."""
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

            def spike_fn(m: Tensor) -> Tensor:  # records the margins
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
        """Spikes or currents ``[T', N, C, H, W]`` -> spikes ``[T, N, Cout, Ho, Wo]``."""
        y = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        sc = self.shortcut(x)
        if sc.shape[0] != y.shape[0]:  # a static input meets per-step values
            sc = sc.expand((y.shape[0],) + tuple(sc.shape[1:]))
        out: Tensor = self.sn2(y + sc)
        return out


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
        """Time steps per forward (setting it sets every neuron's; ``>= 1``)."""
        return self._T

    @T.setter
    def T(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"DspikeNet: T must be >= 1, got {value}")
        self._T = int(value)
        for m in self.neurons():
            m.T = self._T

    def neurons(self) -> list[DspikeNeuron]:
        """The Dspike neuron layers, in module order."""
        return [m for m in self.modules() if isinstance(m, DspikeNeuron)]

    def set_surrogate(self, surrogate: Surrogate) -> None:
        """Use ``surrogate`` (one shared object) in every neuron."""
        self.surrogate = surrogate
        for m in self.neurons():
            m.surrogate = surrogate

    @property
    def temperature(self) -> float | None:
        """The Dspike surrogate's temperature ``b`` (``None`` for another surrogate; setting it
        then raises ``TypeError``)."""
        return self.surrogate.b if isinstance(self.surrogate, DspikeSurrogate) else None

    @temperature.setter
    def temperature(self, b: float) -> None:
        if not isinstance(self.surrogate, DspikeSurrogate):
            raise TypeError("the temperature belongs to the Dspike surrogate")
        self.surrogate.b = b

    def first_layer(self) -> ConvTD | LinearTD:
        """The first weighted layer (the one the temperature search differentiates)."""
        for m in self.body.modules():
            if isinstance(m, (ConvTD, LinearTD)):
                return m
        raise ValueError("DspikeNet: no weighted layer")

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate (spikes per neuron per step) of each neuron layer in the last
        forward, by module name."""
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
        """Logits ``[B, classes]``: the output layer's mean over the ``T`` steps; ``x`` is
        ``[B, C, H, W]`` (static) or ``[B, T, C, H, W]`` (event frames)."""
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
