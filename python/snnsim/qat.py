"""Quantisation-aware fine-tuning (QAT) of trained DSR networks and Dspike CNNs for the integer
export (:func:`snnsim.export`, modes ``"int8"`` / ``"int4"`` / ``"int16"``).

:func:`qat_finetune` fine-tunes a trained model for a few epochs with fake-quantised weights:
in every forward each conv/linear weight of ``model.body`` is replaced by the value the integer
export will give it, ``scale * clip(round(w/scale), -qmax-1, qmax)``, and the backward uses a
straight-through estimator (the gradient passes unchanged where ``w/scale`` lies inside the
clip range, zero outside). Afterwards the weights are left ON the grid and the model is exported
with the ordinary :func:`snnsim.export`, whose quantisation then loses nothing more.

The grid is the exporter's (:func:`snnsim.exporter.weight_scale`, the same function the export
uses, not a copy), computed on the weight **after batch-norm folding**: for a conv/linear
followed by a batch norm (``BatchNormT``, ``BatchNorm1dT``, ``TdBN``) with per-channel
evaluation transform ``a = gamma/sqrt(running_var+eps)`` (tdBN: times ``alpha*vth``), the
weight used is ``Q(w*a)/a``, so the folded weight the exporter sees is ``Q(w*a)``. For that to be
the grid the export sees, the running statistics are frozen during QAT (momentum 0; the batch
statistics still normalise in training, as in any QAT with BN); ``gamma`` keeps training and
the grid follows it. The value a spike carries (``theta``), the input scale and the ``1/k^2``
of a pool, which the exporter also folds in, are per-layer scalars: they scale the weight and
its step together and leave the integer weights unchanged. Exceptions (documented, rare): the
export enlarges a layer's step when its int32 accumulator bound would overflow (not at int8 /
int4 widths on these networks), and ``round`` ties may fall differently in the last float bit.
The output layer of a Dspike network keeps one scale (as in the export) even with
``per_channel=True``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .exporter import QMAX, ExportError, weight_scale

__all__ = [
    "QATMode",
    "fake_quant",
    "FakeQuantWeight",
    "attach_fake_quant",
    "detach_fake_quant",
    "qat_finetune",
]

QATMode = Literal["int8", "int4", "int16"]


class _FakeQuantSTE(torch.autograd.Function):
    """``scale * clip(round(w/scale), lo, hi)``; backward: identity where ``lo <= w/scale <= hi``,
    zero outside (no gradient to ``scale``)."""

    @staticmethod
    def forward(ctx: Any, w: Tensor, scale: Tensor, lo: int, hi: int) -> Tensor:
        r = w / scale
        ctx.save_for_backward((r >= lo) & (r <= hi))
        return torch.clamp(torch.round(r), lo, hi) * scale

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        (inside,) = ctx.saved_tensors
        return grad * inside.to(grad.dtype), None, None, None


def fake_quant(w: Tensor, scale: Tensor | float, mode: QATMode = "int8") -> Tensor:
    """``w`` on the symmetric grid of ``mode``: ``scale * clip(round(w/scale), -qmax-1, qmax)``
    (``round``: half to even, like the exporter's ``np.rint``); ``scale`` a scalar or ``[out]``
    (one step per output channel). Straight-through gradient: identity inside the clip range,
    zero outside."""
    if mode not in QMAX:
        raise ValueError(f"fake_quant: mode must be 'int8', 'int4' or 'int16', got {mode!r}")
    qmax = QMAX[mode]
    s = torch.as_tensor(scale, dtype=w.dtype, device=w.device)
    if s.ndim == 1 and w.ndim > 1:
        s = s.reshape((-1,) + (1,) * (w.ndim - 1))
    return _FakeQuantSTE.apply(w, s, -qmax - 1, qmax)


def _bn_fold_scale(bn: Any) -> Tensor:
    """Per-channel evaluation scale of a batch norm (what the exporter folds into the weight)."""
    from .nn.tdbn import TdBN

    inv = torch.rsqrt(bn.running_var.detach() + bn.eps)
    if isinstance(bn, TdBN):
        return bn.weight.detach() * bn.scale * inv
    g = bn.weight.detach() if bn.weight is not None else torch.ones_like(inv)
    return g * inv


class FakeQuantWeight(nn.Module):
    """A weight parametrisation (``torch.nn.utils.parametrize``): the weight as the integer export
    will see it, ``Q(w*a)/a`` with ``a`` the following batch norm's evaluation scale (1 without
    one) and ``Q`` :func:`fake_quant` on the exporter's grid (:func:`~snnsim.exporter.weight_scale`
    of ``w*a``, recomputed at every forward, treated as a constant)."""

    def __init__(self, mode: QATMode, per_channel: bool, bn: nn.Module | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.per_channel = per_channel
        self._bn = [bn]  # a list: not registered as a submodule

    def fold(self, w: Tensor) -> Tensor | None:
        bn = self._bn[0]
        if bn is None:
            return None
        a = _bn_fold_scale(bn).to(w.dtype)
        return torch.where(a == 0, torch.ones_like(a), a).reshape((-1,) + (1,) * (w.ndim - 1))

    def forward(self, w: Tensor) -> Tensor:
        a = self.fold(w)
        wf = w if a is None else w * a
        s = weight_scale(wf.detach().double().cpu().numpy(), self.mode, self.per_channel)
        q = fake_quant(wf, torch.from_numpy(s).to(device=w.device, dtype=w.dtype), self.mode)
        return q if a is None else q / a


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module | None, bool]]:
    """``(name, layer, following batch norm or None, is_output)`` for each conv/linear of
    ``model.body`` (a sequential DSRNet / DspikeNet)."""
    from .nn.dspike import DspikeNet
    from .nn.layers import BatchNorm1dT, BatchNormT
    from .nn.net import DSRNet
    from .nn.tdbn import TdBN

    if not isinstance(model, (DSRNet, DspikeNet)):
        raise ExportError(
            f"qat: only DSRNet and DspikeNet models are supported, got {type(model).__name__}"
        )
    kids = list(model.body.named_children())
    out: list[tuple[str, nn.Module, nn.Module | None, bool]] = []
    for i, (name, m) in enumerate(kids):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nxt = kids[i + 1][1] if i + 1 < len(kids) else None
            bn = (
                nxt
                if isinstance(nxt, (BatchNormT, BatchNorm1dT, TdBN, nn.BatchNorm1d, nn.BatchNorm2d))
                else None
            )
            out.append((f"body.{name}", m, bn, False))
    if isinstance(model, DspikeNet) and out:
        out[-1] = out[-1][:3] + (True,)
    return out


def attach_fake_quant(
    model: nn.Module, mode: QATMode = "int8", per_channel: bool = False
) -> list[str]:
    """Register :class:`FakeQuantWeight` on every conv/linear weight of ``model.body``; returns
    their names. :func:`detach_fake_quant` removes them."""
    if mode not in QMAX:
        raise ValueError(f"qat: mode must be 'int8', 'int4' or 'int16', got {mode!r}")
    names = []
    for name, m, bn, is_out in _weighted_layers(model):
        parametrize.register_parametrization(
            m, "weight", FakeQuantWeight(mode, per_channel and not is_out, bn)
        )
        names.append(name)
    return names


def detach_fake_quant(model: nn.Module, leave_quantised: bool = True) -> None:
    """Remove the fake-quant parametrisations; ``leave_quantised``: the weights keep their
    on-grid values (``Q(w*a)/a``), else the latent float weights are restored."""
    for _, m, _, _ in _weighted_layers(model):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=leave_quantised)


def _batches(
    train_data: Any, batch_size: int, gen: torch.Generator
) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(train_data, (tuple, list)) and len(train_data) == 2:
        x, y = (
            torch.as_tensor(np.asarray(v)) if not isinstance(v, Tensor) else v for v in train_data
        )
        y = y.long()
        idx = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            j = idx[i : i + batch_size]
            yield x[j].float(), y[j]
    else:  # an iterable of (x, y) batches (e.g. a DataLoader)
        for xb, yb in train_data:
            yield torch.as_tensor(xb).float(), torch.as_tensor(yb).long()


def _augment(x: Tensor, padding: int, gen: torch.Generator) -> Tensor:
    if padding <= 0 or x.ndim != 4:
        return x
    from .train.trainer import augment_batch

    return augment_batch(x, padding, False, gen)


def _check_input_scale(scale: float | None) -> None:
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise ValueError(
            f"qat_finetune: input_scale must be a finite positive float, got {scale!r}"
        )


def _input_signed(signed: bool | None, train_data: Any) -> bool | None:
    """The input grid's signedness: as given, else (None) as the export chooses it from
    calibration data like ``train_data``: unsigned when its inputs are non-negative (for an
    iterable of batches, decided per batch)."""
    if signed is not None and not isinstance(signed, (bool, np.bool_)):
        raise ValueError(f"qat_finetune: input_signed must be True, False or None, got {signed!r}")
    if signed is None and isinstance(train_data, (tuple, list)) and len(train_data) == 2:
        x = train_data[0]
        lo = float(x.min()) if len(x) else 0.0
        return lo < 0
    return None if signed is None else bool(signed)


def _input_grid(x: Tensor, scale: float | None, signed: bool | None = True) -> Tensor:
    """``x`` on the export's 8-bit input grid (``round`` half to even, as the quantiser):
    ``[-128, 127]`` (``signed``) or ``[0, 255]``; ``signed`` None: unsigned when the batch is
    non-negative."""
    if scale is None:
        return x
    if signed is None:
        signed = bool(x.min() < 0) if x.numel() else True
    lo, hi = (-128, 127) if signed else (0, 255)
    return torch.clamp(torch.round(x / scale), lo, hi) * scale


def qat_finetune(
    model: nn.Module,
    train_data: Any,
    mode: QATMode = "int8",
    epochs: int = 1,
    lr: float = 5e-3,
    per_channel: bool = False,
    *,
    optimizer: Literal["sgd", "adam"] = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    crop_padding: int = 0,
    freeze_bn_stats: bool = True,
    input_scale: float | None = None,
    input_signed: bool | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """Fine-tune a trained ``model`` (sequential :class:`~snnsim.nn.net.DSRNet` or
    :class:`~snnsim.nn.dspike.DspikeNet`) in place with fake-quantised weights for the
    integer export ``mode`` (``"int4"``, ``"int8"``, ``"int16"``) and ``per_channel`` weight
    scales (pass the same to :func:`snnsim.export` afterwards).

    ``train_data``: ``(x, y)`` (arrays or tensors; shuffled each epoch with ``seed``) or an
    iterable of ``(x, y)`` batches. Cross-entropy on the model's output, ``optimizer`` (SGD with
    ``momentum`` or Adam) at ``lr`` with a cosine decay to 0 over the ``epochs``; random crops
    with ``crop_padding`` (images). ``freeze_bn_stats``: keep the batch norms' running statistics
    (the grid is computed after folding them; see the module docstring). ``input_scale``: the
    static input's quantisation step in the integer export (its ``input_scale``, by default
    ``max|calibration|/255`` for a non-negative input, else ``/127``); given, every training
    batch is put on that 8-bit grid after the crop, ``clip(round(x/input_scale), lo, hi) *
    input_scale`` with ``[lo, hi]`` = ``[0, 255]`` (unsigned) or ``[-128, 127]`` (signed), so the
    fine-tuning sees the input the engine will (on MNIST the signed grid of 1/127 alone moved
    about 0.5% of a LIF CNN's predictions; the unsigned grid of 1/255 holds 8-bit images
    exactly). ``input_signed``: the export's (:func:`snnsim.export`'s ``input_signed``); None:
    as the export chooses it for calibration data like ``train_data`` (unsigned when the
    inputs are non-negative). Returns the model in eval mode with its weights left on the
    quantisation grid.
    """
    if epochs < 1:
        raise ValueError(f"qat_finetune: epochs must be >= 1, got {epochs}")
    _check_input_scale(input_scale)
    in_signed = _input_signed(input_signed, train_data)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    bns: list[Any] = [bn for _, _, bn, _ in _weighted_layers(model) if bn is not None]
    saved_momentum = [bn.momentum for bn in bns]
    attach_fake_quant(model, mode, per_channel)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"qat_finetune: optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    if isinstance(train_data, (tuple, list)) and len(train_data) == 2:
        per_epoch = math.ceil(len(train_data[1]) / batch_size)
    else:
        per_epoch = len(train_data)
    total, step = max(1, epochs * per_epoch), 0
    try:
        if freeze_bn_stats:
            for bn in bns:
                bn.momentum = 0.0
        for e in range(epochs):
            model.train()
            loss_sum, correct, n = 0.0, 0, 0
            for xb, yb in _batches(train_data, batch_size, gen):
                for g in opt.param_groups:
                    g["lr"] = 0.5 * lr * (1.0 + math.cos(math.pi * step / total))
                xb = _input_grid(_augment(xb, crop_padding, gen), input_scale, in_signed)
                dev = next(model.parameters()).device  # train where the model lives (CPU or CUDA)
                xb, yb = xb.to(dev), yb.to(dev)
                with parametrize.cached():
                    out = model(xb)
                    loss = F.cross_entropy(out, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                opt.step()
                step += 1
                loss_sum += float(loss.detach()) * len(yb)
                correct += int((out.detach().argmax(1) == yb).sum())
                n += len(yb)
            if log is not None:
                log(
                    f"qat {mode} epoch {e + 1}/{epochs}: loss {loss_sum / max(n, 1):.4f} "
                    f"acc {correct / max(n, 1):.4f}"
                )
    finally:
        for bn, m in zip(bns, saved_momentum, strict=True):
            bn.momentum = m
        detach_fake_quant(model, leave_quantised=True)
        # DSR thresholds: the same clamp a training forward applies, so the export accepts them
        for m in model.modules():
            cfg = getattr(m, "cfg", None)
            theta = getattr(m, "theta", None)
            if isinstance(theta, Tensor) and cfg is not None and hasattr(cfg, "bound"):
                with torch.no_grad():
                    theta.clamp_(min=cfg.bound)
    return model.eval()
