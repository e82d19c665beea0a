"""Dspike training procedures (Li et al., "Differentiable Spike", NeurIPS 2021): the
temperature search (Algorithm 1) and Time Inheritance Training, on the layers of
:mod:`snnsim.nn.dspike`.

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
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.dspike import DspikeNet
from ..nn.surrogates import B_MIN, DspikeSurrogate
from ..nn.tdbn import TdBN
from .fdg import autograd_grad, cosine_similarity, finite_difference_grad

__all__ = [
    "FrozenStats",
    "TemperatureSearch",
    "select_temperature",
    "temperature_search",
    "inherit",
]


class FrozenStats:
    """Context manager: the tdBN layers of ``model`` keep their running statistics during
    training-mode forwards (used by the temperature search, which must not change them)."""

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
    progress: Callable[[int], object] | None = None,
) -> TemperatureSearch:
    """Algorithm 1 on the batch ``(x, y)``: FDG of the first layer's weights (batched
    perturbations, ``chunk`` copies per pass; training-mode tdBN, running statistics frozen),
    then :func:`select_temperature`. Sets ``model.temperature`` when ``apply``. The model's
    train/eval mode is restored.

    Distributed use (:func:`snnsim.train.distributed.temperature_search`): ``shard = (r, W)``
    computes the FDG of the ``r``-th of ``W`` contiguous blocks of coordinates only (the
    others are 0) and ``reduce`` sums the partial FDGs over the processes. ``progress(k)``:
    called after every ``k`` coordinates of this process's block."""
    surrogate = model.surrogate  # shared by every neuron: setting its b sets the temperature
    if not isinstance(surrogate, DspikeSurrogate):
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
    b0 = surrogate.b
    model.train()
    try:
        with FrozenStats(model), torch.no_grad():
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
            surrogate.b = b
            with FrozenStats(model):
                g = autograd_grad(lambda: F.cross_entropy(model(x), y), layer.weight)
            return g if coords is None else _mask(g, coords)

        res = select_temperature(b0, fdg if coords is None else _mask(fdg, coords), sg, db)
    finally:
        surrogate.b = b0
        model.train(was_training)
    if apply:
        surrogate.b = res.b
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
