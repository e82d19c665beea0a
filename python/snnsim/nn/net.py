"""The container for DSR-trained networks: wraps the input into a :class:`Seq`, runs the layers,
reads the logits out, and switches between the two backward forms."""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from torch import Tensor, nn

from .chunked import check_chunkable, chunked_rate_forward
from .dsr import DSRNeuronConfig, NeuronKind, as_channels_last, dsr_defaults
from .layers import ConvT, DSRNeuron, Flow, Readout, Seq, run_layers

__all__ = ["Mode", "DSRNet", "neuron_config", "make_neuron"]

Mode = Literal["rate", "step"]


def neuron_config(neuron: str, T: int, **overrides: object) -> DSRNeuronConfig | None:
    """The DSR neuron configuration for ``neuron`` (``"if"``, ``"lif"``; ``"relu"`` gives
    ``None``): the paper's defaults at ``T`` with ``overrides`` (``theta0``, ``alpha``,
    ``bound``, ``dt``, ``tau``, ``theta_grad_scale``, ``train_theta``; ``None`` values keep
    the default)."""
    if neuron == "relu":
        return None
    if neuron not in ("if", "lif"):
        raise ValueError(f"neuron must be 'if', 'lif' or 'relu', got {neuron!r}")
    kind: NeuronKind = neuron  # type: ignore[assignment]  # checked just above
    cfg = dsr_defaults(kind, T)
    kw = {k: v for k, v in overrides.items() if v is not None}
    return cfg.with_(**kw) if kw else cfg


def make_neuron(cfg: DSRNeuronConfig | None) -> nn.Module:
    """A :class:`DSRNeuron`, or ``nn.ReLU`` for the ANN baseline (``cfg=None``)."""
    return nn.ReLU(inplace=False) if cfg is None else DSRNeuron(cfg)


class DSRNet(nn.Module):
    """A network trained with DSR.

    ``body``: modules applied in order to a :class:`Seq` (or to a tensor for the ANN);
    ``cfg``: the neuron configuration (``None``: ANN, ReLU in place of neurons); ``T``: the
    number of time steps; ``mode``: ``"rate"`` (memory flat in ``T``) or ``"step"`` (the
    per-step reference backward); ``static_input``: images (``[B, C, H, W]``, the first
    layer's current is computed once and applied at every step) or sequences
    (``[B, T, C, H, W]``, e.g. event frames); ``channels_last``: store 4-D activations
    channels-last (often faster on CPU); ``time_chunk``: in the rate form, run the steps
    through the network this many at a time so the peak training memory does not grow with
    ``T`` (:mod:`snnsim.nn.chunked`; flat bodies only; costs one extra partial forward per
    batch norm on a time-varying input). ``None``: all steps at once. ``exact_bn_grad``
    (default on): in the rate form, add the batch norms' temporal-deviation weight-gradient
    term so the gradients equal the per-step form's (the public DSR code's) for IF networks
    (one extra weight-gradient op over the steps per conv/linear + batch norm). Off, the
    weight gradients of layers with time-varying input keep only the between-sample part of
    the batch-norm gradient: cheaper, but on the MNIST CNN at T = 5 the network then fits its
    training set about 1.5 points worse and tests 0.2-0.4 points lower
    (``benches/results/dsr_vs_spikingjelly.json``).
    """

    def __init__(
        self,
        body: Iterable[nn.Module],
        cfg: DSRNeuronConfig | None,
        T: int,
        mode: Mode = "rate",
        static_input: bool = True,
        channels_last: bool = False,
        time_chunk: int | None = None,
        exact_bn_grad: bool = True,
    ) -> None:
        super().__init__()
        if T < 1:
            raise ValueError(f"DSRNet: T must be >= 1, got {T}")
        if mode not in ("rate", "step"):
            raise ValueError(f"DSRNet: mode must be 'rate' or 'step', got {mode!r}")
        self.body = nn.Sequential(*body)
        self.readout = Readout(cfg)
        self.cfg = cfg
        self.T = T
        self.mode: Mode = mode
        self.static_input = static_input
        self.channels_last = channels_last
        self.time_chunk = time_chunk
        self.exact_bn_grad = exact_bn_grad

    @property
    def exact_bn_grad(self) -> bool:
        return self._exact_bn_grad

    @exact_bn_grad.setter
    def exact_bn_grad(self, on: bool) -> None:
        self._exact_bn_grad = bool(on)
        for m in self.modules():
            if hasattr(m, "exact_rate_grad"):
                m.exact_rate_grad = self._exact_bn_grad  # type: ignore[assignment]  # hasattr: a batch norm over time

    @property
    def channels_last(self) -> bool:
        return self._channels_last

    @channels_last.setter
    def channels_last(self, on: bool) -> None:
        self._channels_last = bool(on)
        for m in self.modules():
            if isinstance(m, ConvT):
                m.channels_last = self._channels_last

    @property
    def time_chunk(self) -> int | None:
        return self._time_chunk

    @time_chunk.setter
    def time_chunk(self, chunk: int | None) -> None:
        if chunk is not None:
            if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
                raise ValueError(f"DSRNet.time_chunk must be a positive int or None, got {chunk!r}")
            check_chunkable(self.body)
        self._time_chunk = chunk

    @property
    def is_ann(self) -> bool:
        return self.cfg is None

    def neurons(self) -> list[tuple[str, DSRNeuron]]:
        return [(n, m) for n, m in self.named_modules() if isinstance(m, DSRNeuron)]

    def thresholds(self) -> dict[str, float]:
        return {n: float(m.theta.detach()) for n, m in self.neurons()}

    def firing_rates(self) -> dict[str, float]:
        """Mean firing rate (spikes per neuron per step) of each neuron layer in the last
        forward pass."""
        return {n: float(m.last_rate) for n, m in self.neurons() if m.last_rate is not None}

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = as_channels_last(x)
        if self.is_ann:
            if not self.static_input:
                x = x.mean(1)  # ANN on sequences: the mean frame
            return self.readout(self.body(x))
        rate_mode = self.mode == "rate" and self.training and torch.is_grad_enabled()
        T = self.T
        if rate_mode and self.time_chunk is not None and self.time_chunk < T:
            return self._chunked(x)
        if self.static_input:
            flow: Flow = Seq(x, T, True, x if rate_mode else None)
        else:
            if x.ndim < 3 or x.shape[1] != T:
                raise ValueError(
                    f"DSRNet: a sequence input must be [B, T={T}, ...], got {list(x.shape)}"
                )
            steps = x.transpose(0, 1).reshape((T * x.shape[0],) + tuple(x.shape[2:]))
            if self.channels_last and steps.ndim == 4:
                steps = steps.contiguous(memory_format=torch.channels_last)
            flow = Seq(steps, T, False, x.mean(1) if rate_mode else None)
        return self.readout(run_layers(self.body, flow))

    def _chunked(self, x: Tensor) -> Tensor:
        T, chunk = self.T, self.time_chunk
        assert chunk is not None
        if self.static_input:
            return chunked_rate_forward(
                self.body, lambda t0, t1: Seq(x, t1 - t0, True), x, T, chunk, self.cfg
            )
        if x.ndim < 3 or x.shape[1] != T:
            raise ValueError(
                f"DSRNet: a sequence input must be [B, T={T}, ...], got {list(x.shape)}"
            )

        def source(t0: int, t1: int) -> Seq:
            steps = (
                x[:, t0:t1].transpose(0, 1).reshape(((t1 - t0) * x.shape[0],) + tuple(x.shape[2:]))
            )
            if self.channels_last and steps.ndim == 4:
                steps = steps.contiguous(memory_format=torch.channels_last)
            return Seq(steps, t1 - t0, False)

        return chunked_rate_forward(self.body, source, x.mean(1), T, chunk, self.cfg)
