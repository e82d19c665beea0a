"""Finite-difference gradients (FDG) and their comparison with autograd / surrogate gradients.

The FDG of a loss ``L`` with respect to a parameter tensor ``w`` (Li et al., NeurIPS 2021,
Eq. 10) is, coordinate by coordinate, the central difference::

    g_k = (L(w + eps e_k) - L(w - eps e_k)) / (2 eps)

:func:`finite_difference_grad` evaluates it either

* one coordinate at a time, with ``loss_fn()`` a closure computing the scalar loss from the
  current value of ``param`` (the parameter is perturbed in place and restored bit-exactly);
* or batched: ``batched_loss_fn(deltas)`` takes ``K`` perturbations ``[K, *param.shape]`` and
  returns the ``K`` losses at ``param + delta`` in one pass (e.g. a network whose first layer
  is evaluated with ``K`` weight sets, see
  :meth:`snnsim.nn.dspike.DspikeNet.first_layer_losses`); ``chunk`` perturbations per call
  bound the memory.

``coords`` restricts the estimate to a subset of flat indices (the others are returned as 0 and
the same subset should be compared, :func:`cosine_similarity` takes ``coords`` too).

:func:`autograd_grad` gives the (true or surrogate) gradient of the same loss by backprop.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["finite_difference_grad", "autograd_grad", "cosine_similarity"]

LossFn = Callable[[], Tensor]
BatchedLossFn = Callable[[Tensor], Tensor]


@torch.no_grad()
def finite_difference_grad(
    param: Tensor,
    eps: float = 0.1,
    *,
    loss_fn: LossFn | None = None,
    batched_loss_fn: BatchedLossFn | None = None,
    chunk: int = 64,
    coords: Sequence[int] | Tensor | None = None,
    progress: Callable[[int], object] | None = None,
) -> Tensor:
    """Central-difference gradient of the loss with respect to ``param`` (same shape, float64
    accumulation, returned in ``param``'s dtype). Give ``loss_fn`` (closure) or
    ``batched_loss_fn`` (perturbations ``[K, *shape]`` -> losses ``[K]``). ``progress(k)`` is
    called after every ``k`` coordinates done (e.g. a progress bar's ``update``)."""
    if eps <= 0:
        raise ValueError(f"finite_difference_grad: eps must be > 0, got {eps}")
    if (loss_fn is None) == (batched_loss_fn is None):
        raise ValueError("finite_difference_grad: give exactly one of loss_fn and batched_loss_fn")
    n = param.numel()
    idx = (
        torch.arange(n) if coords is None else torch.as_tensor(coords, dtype=torch.long).reshape(-1)
    )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"finite_difference_grad: coords outside [0, {n})")
    grad = torch.zeros(n, dtype=torch.float64)
    if loss_fn is not None:
        flat = param.data.view(-1)
        for k in idx.tolist():
            orig = flat[k].clone()
            flat[k] = orig + eps
            lp = float(loss_fn())
            flat[k] = orig - eps
            lm = float(loss_fn())
            flat[k] = orig
            grad[k] = (lp - lm) / (2.0 * eps)
            if progress is not None:
                progress(1)
        return grad.to(param.dtype).reshape(param.shape)
    assert batched_loss_fn is not None  # exactly one of the two, checked above
    if chunk < 1:
        raise ValueError(f"finite_difference_grad: chunk must be >= 1, got {chunk}")
    half = max(1, chunk // 2)
    for start in range(0, idx.numel(), half):
        sel = idx[start : start + half]
        m = sel.numel()
        deltas = torch.zeros((2 * m, n), dtype=param.dtype, device=param.device)
        rows = torch.arange(m, device=param.device)
        deltas[rows, sel.to(param.device)] = eps
        deltas[rows + m, sel.to(param.device)] = -eps
        losses = (
            batched_loss_fn(deltas.reshape((2 * m,) + tuple(param.shape))).detach().double().cpu()
        )
        if losses.shape != (2 * m,):
            raise ValueError(
                f"batched_loss_fn returned shape {list(losses.shape)}, expected [{2 * m}]"
            )
        grad[sel] = (losses[:m] - losses[m:]) / (2.0 * eps)
        if progress is not None:
            progress(m)
    return grad.to(param.dtype).reshape(param.shape)


def autograd_grad(loss_fn: LossFn, param: Tensor) -> Tensor:
    """Gradient of ``loss_fn()`` with respect to ``param`` by backprop (the surrogate gradient
    for spiking networks). Other parameters' ``.grad`` are left untouched."""
    with torch.enable_grad():
        loss = loss_fn()
        (g,) = torch.autograd.grad(loss, [param])
    return g.detach()


def cosine_similarity(a: Tensor, b: Tensor, coords: Sequence[int] | Tensor | None = None) -> float:
    """Cosine similarity of two gradients (flattened; optionally only the flat ``coords``).
    0 when either is the zero vector."""
    a = a.detach().reshape(-1).double().cpu()
    b = b.detach().reshape(-1).double().cpu()
    if coords is not None:
        c = torch.as_tensor(coords, dtype=torch.long).reshape(-1)
        a, b = a[c], b[c]
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(a @ b) / (na * nb)
