"""Threshold-dependent batch normalisation (tdBN, Zheng et al., AAAI 2021) for Dspike networks.

Input: a time-major tensor ``[T, N, C, *spatial]`` (``T = 1`` for a static sequence, the same
value at every step). In training the statistics of channel ``c`` are taken over all ``T*N``
samples and the spatial positions together, and the normalised value is scaled by
``alpha * Vth``::

    y = gamma * alpha * Vth * (x - mean) / sqrt(var + eps) + beta

(``var`` biased; the running variance gets the unbiased estimate over the values seen).
A static input (``T = 1``) repeated ``T`` times has the same mean and biased variance as the
single copy, so it is normalised once (its running variance then uses the ``N*H*W`` distinct
values for the unbiased correction, a relative difference below ``1/(N*H*W)``).

``groups`` (set by the finite-difference tool, normally 1): the ``N`` samples are ``groups``
independent batches of ``N / groups`` (group-major), each normalised with its own statistics
and without updating the running statistics — ``groups`` perturbed copies of the network
evaluated in one pass give the same losses as ``groups`` separate passes.
``update_stats = False`` keeps the running statistics frozen in training mode.
``process_group`` (set by :func:`snnsim.train.distributed.enable_sync_batchnorm`, normally
``None``): in training with ``groups == 1`` the statistics span every process of a distributed
run (:mod:`snnsim.nn.syncbn`).

:meth:`TdBN.fold` returns the per-channel ``(scale, shift)`` of the evaluation-mode transform
``y = scale * x + shift`` for folding into the preceding conv/linear.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TdBN"]


class TdBN(nn.Module):
    """tdBN over ``[T, N, C, ...]`` with learnable ``weight`` (gamma) and ``bias`` (beta)."""

    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self,
        channels: int,
        alpha: float = 1.0,
        vth: float = 0.5,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.alpha = float(alpha)
        self.vth = float(vth)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.groups = 1
        self.update_stats = True
        self.process_group: Any = None

    @property
    def scale(self) -> float:
        return self.alpha * self.vth

    def _shape(self, x: Tensor) -> list[int]:
        return [1, -1] + [1] * (x.ndim - 3)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 3 or x.shape[2] != self.channels:
            raise ValueError(f"TdBN: expected [T, N, {self.channels}, ...], got {list(x.shape)}")
        T, N = x.shape[0], x.shape[1]
        g = self.weight * self.scale
        if not self.training:
            flat = x.reshape((T * N,) + tuple(x.shape[2:]))
            y = F.batch_norm(
                flat, self.running_mean, self.running_var, g, self.bias, False, 0.0, self.eps
            )
            return y.reshape(x.shape)
        if self.groups == 1 and self.process_group is not None:
            from .syncbn import tdbn_forward

            return tdbn_forward(self, x)
        if self.groups == 1:
            flat = x.reshape((T * N,) + tuple(x.shape[2:]))
            if self.update_stats:
                y = F.batch_norm(
                    flat,
                    self.running_mean,
                    self.running_var,
                    g,
                    self.bias,
                    True,
                    self.momentum,
                    self.eps,
                )
            else:
                y = F.batch_norm(flat, None, None, g, self.bias, True, 0.0, self.eps)
            return y.reshape(x.shape)
        G = self.groups
        if N % G:
            raise ValueError(f"TdBN: {N} samples do not split into {G} groups")
        xg = x.reshape((T, G, N // G) + tuple(x.shape[2:]))
        dims = [0, 2] + list(range(4, xg.ndim))
        mean = xg.mean(dim=dims, keepdim=True)
        var = ((xg - mean) ** 2).mean(dim=dims, keepdim=True)
        cshape = [1, 1, 1, -1] + [1] * (xg.ndim - 4)
        y = (xg - mean) * torch.rsqrt(var + self.eps) * g.reshape(cshape) + self.bias.reshape(
            cshape
        )
        return y.reshape(x.shape)

    @torch.no_grad()
    def fold(self) -> tuple[Tensor, Tensor]:
        """Evaluation transform as ``y = scale * x + shift`` per channel."""
        inv = torch.rsqrt(self.running_var + self.eps)
        scale = self.weight * self.scale * inv
        shift = self.bias - self.running_mean * scale
        return scale, shift

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, alpha={self.alpha}, vth={self.vth}, eps={self.eps}, "
            f"momentum={self.momentum}"
        )
