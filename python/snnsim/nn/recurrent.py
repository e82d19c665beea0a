"""Recurrent spiking layers: a neuron layer whose input at step ``n`` adds its own spikes of step
``n - 1`` through recurrent weights (docs/semantics.md §4.4)::

    c[n] = x[n] + W_rec (a * s[n-1]) + b_rec,   s[0-1] = 0

with ``a`` the value a spike carries (1 for Dspike, ``theta`` for DSR IF). Export writes it as
``add(x, linear(delay(neuron)))`` (:mod:`snnsim.exporter`), which the engine runs event-driven.

* :class:`RecurrentDspikeNeuron` — the Dspike LIF of :class:`~snnsim.nn.dspike.DspikeNeuron`
  with the surrogate gradient through time (backpropagation through the recurrence, every step).
* :class:`RecurrentDSRNeuron` — the DSR IF neuron. Its gradient is DSR's (the mapping from the
  mean input current to the spike representation, docs/semantics.md §1.1) with the recurrent
  input taken as an input like any other: the mean current is ``I = mean_n x[n] + W_rec r_d +
  b_rec`` with ``r_d = (theta/N) sum_n s[n-1]`` the delayed representation, and the recurrent
  spikes are constants of the backward pass (no gradient flows through ``r_d`` into ``theta``
  or earlier steps: a one-step truncation, DSR having no time axis to propagate along). So,
  with ``G`` the upstream gradient summed over the steps and ``m = 1[0 <= I <= theta]``:
  ``dL/dx[n] = G m / N``, ``dL/dW_rec = (G m) r_d^T``, ``dL/db_rec = G m``,
  ``dL/dtheta = sum G 1[I > theta]``.

Both take and return time-major tensors ``[T, N, F]`` (the layers of :mod:`snnsim.nn.dspike`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..neurons import DspikeLIFParams, DsrIFParams, dspike_lif_step, dsr_if_step
from .dspike import DspikeNeuron
from .dsr import DSRNeuronConfig, DSRStepFn
from .surrogates import Surrogate

__all__ = ["RecurrentDspikeNeuron", "RecurrentDSRNeuron", "delayed"]


def delayed(s: Tensor) -> Tensor:
    """``s`` one step later along the time axis 0: ``out[0] = 0``, ``out[n] = s[n-1]``."""
    return torch.cat([torch.zeros_like(s[:1]), s[:-1]], dim=0)


class RecurrentDspikeNeuron(DspikeNeuron):
    """Dspike LIF neurons with recurrent weights ``rec`` (``features x features``): currents
    ``[T', N, F]`` (``T' = 1``: the same at every step) -> spikes ``[T, N, F]``. Trained with
    the surrogate gradient through every step (the recurrence included)."""

    def __init__(
        self,
        features: int,
        surrogate: Surrogate,
        leak: float = 0.5,
        vth: float = 0.5,
        T: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(surrogate, leak=leak, vth=vth, T=T)
        self.features = int(features)
        self.rec = nn.Linear(self.features, self.features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Currents ``[T', N, F]`` -> spikes ``[T, N, F]``."""
        T = x.shape[0] if x.shape[0] > 1 else self.T
        if x.shape[0] not in (1, T) or x.shape[-1] != self.features:
            raise ValueError(
                f"RecurrentDspikeNeuron: input {list(x.shape)} is not [1 or {T}, N, "
                f"{self.features}]"
            )
        p = DspikeLIFParams(
            fire=torch.tensor(self.vth, dtype=x.dtype, device=x.device),
            leak=torch.tensor(self.leak, dtype=x.dtype, device=x.device),
        )
        spike_fn: Callable[[Tensor], Tensor] = self.surrogate
        margins: list[Tensor] = []
        if self.record:

            def spike_fn(m: Tensor) -> Tensor:  # records the margins U - vth
                margins.append(m.detach())
                return self.surrogate(m)

        v = torch.zeros_like(x[0])
        s = torch.zeros_like(x[0])
        outs = []
        for t in range(T):
            c = (x[t] if x.shape[0] > 1 else x[0]) + self.rec(s)
            s, v = dspike_lif_step(c, v, p, spike_fn=spike_fn)
            outs.append(s)
        out = torch.stack(outs)
        if self.record:
            self.recorded = {"spikes": [o.detach() for o in outs], "margins": margins}
        self.last_rate = float(out.detach().mean())
        return out

    def extra_repr(self) -> str:
        return f"features={self.features}, " + super().extra_repr()


class RecurrentDSRNeuron(nn.Module):
    """DSR IF neurons with recurrent weights ``rec`` and one trainable threshold ``theta``:
    currents ``[T, N, F]`` -> the value each spike carries (``theta * s``) ``[T, N, F]``. The
    gradient is the one stated in the module docstring."""

    def __init__(self, features: int, cfg: DSRNeuronConfig, bias: bool = False) -> None:
        super().__init__()
        if cfg.kind != "if":
            raise ValueError("RecurrentDSRNeuron: only the IF neuron (cfg.kind 'if')")
        self.cfg = cfg
        self.features = int(features)
        self.theta = nn.Parameter(torch.tensor(float(cfg.theta0)), requires_grad=cfg.train_theta)
        self.rec = nn.Linear(self.features, self.features, bias=bias)
        self.last_rate: float | None = None

    def spike_value(self) -> Tensor:
        """The value one spike carries to the next layer: ``theta`` (IF)."""
        return self.theta.detach()

    @torch.no_grad()
    def simulate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The forward alone: the spike values ``theta * s`` and the currents the neurons
        received (``x[n] + W_rec y[n-1] + b_rec``), both ``[T, N, F]``."""
        theta = self.theta.detach().to(x.dtype)
        p = DsrIFParams(theta=theta, fire=self.cfg.alpha * theta)
        v = torch.zeros_like(x[0])
        y = torch.zeros_like(x[0])
        outs, currents = [], []
        for t in range(x.shape[0]):
            c = x[t] + self.rec(y)
            s, v = dsr_if_step(c, v, p)
            y = s * theta
            outs.append(y)
            currents.append(c)
        return torch.stack(outs), torch.stack(currents)

    def forward(self, x: Tensor) -> Tensor:
        """Currents ``[T, N, F]`` -> spike values ``[T, N, F]``."""
        if x.ndim != 3 or x.shape[-1] != self.features:
            raise ValueError(
                f"RecurrentDSRNeuron: input {list(x.shape)} is not [T, N, {self.features}]"
            )
        if self.training:
            with torch.no_grad():
                self.theta.clamp_(min=self.cfg.bound)
        T, N = x.shape[0], x.shape[1]
        y, c = self.simulate(x)
        # the currents as a graph of x and W_rec with the recurrent spikes as constants; the
        # values stay those of the loop (c + (g - g) == c exactly), so the feed-forward DSR
        # neuron on them fires exactly as the loop did
        g = x + self.rec(delayed(y))
        cur = c + (g - g.detach())
        out = DSRStepFn.apply(cur.reshape(T * N, -1), self.theta, T, self.cfg, False)
        self.last_rate = float((y != 0).float().mean())
        return out.reshape(T, N, -1)

    def extra_repr(self) -> str:
        return f"features={self.features}, cfg={self.cfg}"
