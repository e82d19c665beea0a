"""A small recurrent spiking network trained on the generated 1-d sweep task
(:func:`snnsim.data.make_sweeps`): the recipe shared by ``benches/recurrent_sweeps.py`` and the
tests.

The network (:func:`sweep_net`) is a :class:`~snnsim.nn.dspike.DspikeNet` on event frames
``[B, T, 1, channels]`` (the recordings binned into ``T`` equal time bins, as
``snnsim.run(model, recordings, steps=T)`` bins them): flatten -> linear -> a recurrent
Dspike (surrogate gradient through time) or recurrent DSR IF layer -> linear readout, the
logits the readout's mean over the steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..events import bin_events
from ..nn.dspike import DspikeNet, DspikeNeuron, FlattenTD, LinearTD
from ..nn.dsr import dsr_defaults
from ..nn.recurrent import RecurrentDspikeNeuron, RecurrentDSRNeuron
from ..nn.surrogates import DspikeSurrogate

#: the recurrent layer: Dspike, DSR IF, or (baseline) a plain Dspike layer without recurrence
Kind = Literal["dspike", "dsr", "dspike-feedforward"]


def sweep_frames(recordings: Sequence[np.ndarray], channels: int, T: int) -> torch.Tensor:
    """Event counts ``[B, T, 1, channels]`` (float32): each recording binned into ``T`` steps
    (``"time"`` binning)."""
    return torch.from_numpy(
        np.stack([bin_events(r, (1, channels), T) for r in recordings]).astype(np.float32)
    )


def sweep_net(kind: Kind, channels: int, hidden: int, classes: int, T: int) -> DspikeNet:
    """The recurrent network (see the module docstring); ``kind`` picks its recurrent layer."""
    sur = DspikeSurrogate(b=3.0)
    layer: torch.nn.Module
    if kind == "dspike":
        layer = RecurrentDspikeNeuron(hidden, sur, leak=0.9, vth=0.5, T=T)
    elif kind == "dspike-feedforward":
        layer = DspikeNeuron(sur, leak=0.9, vth=0.5, T=T)
    else:
        layer = RecurrentDSRNeuron(hidden, dsr_defaults("if", T).with_(theta0=1.0))
    body = [FlattenTD(), LinearTD(channels, hidden), layer, LinearTD(hidden, classes)]
    return DspikeNet(body, T=T, surrogate=sur, static_input=False)


@dataclass
class SweepTraining:
    """A trained network, its training time (seconds) and its float accuracy on the test
    frames."""

    model: DspikeNet
    seconds: float
    test_acc: float


def train_sweeps(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    kind: Kind = "dspike",
    hidden: int = 48,
    epochs: int = 12,
    batch: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
) -> SweepTraining:
    """Train :func:`sweep_net` with Adam and cross-entropy; ``x`` frames ``[B, T, 1, C]``."""
    torch.manual_seed(seed)
    T, channels = int(x.shape[1]), int(x.shape[-1])
    model = sweep_net(kind, channels, hidden, int(y.max()) + 1, T)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=g).split(batch):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = float((model(x_test).argmax(1) == y_test).float().mean())
    return SweepTraining(model, seconds, acc)
