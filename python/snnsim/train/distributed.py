"""Distributed data-parallel training with torch's own engine (``torch.distributed``).

``python -m snnsim.train`` runs unchanged under ``torchrun``: each process reads the
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` variables torchrun sets, joins the process group (gloo
on the CPU, nccl on CUDA), and :class:`~snnsim.train.trainer.Trainer` wraps the model in
``DistributedDataParallel``. What plain DDP does not give, the trainer adds:

* ``TrainConfig.batch_size`` is the *combined* batch: each of ``W`` processes takes
  ``batch_size / W`` rows of it (torch's ``DistributedSampler``, reshuffled every epoch), so
  the number of iterations, the learning-rate schedule and the data of each step do not depend
  on ``W`` and a run can resume on another number of processes;
* synchronised batch norm (``TrainConfig.sync_bn``, on by default): the DSR batch norm over
  ``T*B`` (both backward forms, the time-chunked forward and ``exact_bn_grad``) and tdBN take
  their statistics over every process (:mod:`snnsim.nn.syncbn`);
* random crops and flips are drawn for the combined batch and each process keeps its rows, so
  augmentation is independent of ``W`` too;
* Dspike's temperature search splits the finite-difference coordinates over the processes,
  sums the parts, and broadcasts rank 0's choice (:func:`temperature_search`);
* losses, accuracies and firing rates are reduced over the processes; rank 0 alone logs,
  shows progress and writes checkpoints and metrics (atomically); on resume rank 0 reads the
  checkpoint and broadcasts it.

DSR's trainable thresholds need nothing special: their custom gradients are sums over the
batch rows, which DDP averages like any other parameter's gradient.

Outside torchrun nothing here initialises anything: :func:`setup` returns a one-process
context. A caller that has already initialised a process group (tests, notebooks) gets a
context for it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..nn.layers import BatchNorm1dT, BatchNormT
from ..nn.syncbn import GroupRef
from ..nn.tdbn import TdBN

if TYPE_CHECKING:
    from ..nn.dspike import DspikeNet
    from .dspike import TemperatureSearch

__all__ = [
    "DistContext",
    "setup",
    "shutdown",
    "enable_sync_batchnorm",
    "local_batchnorm",
    "temperature_search",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    owns_group: bool = False  # initialised by :func:`setup`, destroyed by :func:`shutdown`

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that writes files and logs)."""
        return self.rank == 0

    # -------------------------------------------------------------- collectives
    def all_reduce(self, t: Tensor) -> Tensor:
        """Sum ``t`` over the processes, in place (a no-op for one process). With nccl a CPU
        tensor travels through this process's GPU."""
        if not self.enabled:
            return t
        if self.backend == "nccl" and t.device.type != "cuda":
            on_gpu = t.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu)
            t.copy_(on_gpu)
            return t
        dist.all_reduce(t)
        return t

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every process (pickled; small objects and state dicts)."""
        if not self.enabled:
            return obj
        box = [obj if self.rank == src else None]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        """Wait for every process (a no-op in a single process)."""
        if self.enabled:
            dist.barrier()


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def setup(device: str = "auto") -> DistContext:
    """The distributed context of this process.

    * A process group already initialised by the caller: its rank and size.
    * Started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment): joins the group
      (``env://`` rendezvous; backend nccl when ``device`` resolves to CUDA, else gloo; on
      CUDA the process uses GPU ``LOCAL_RANK``).
    * Otherwise: one process, nothing initialised.
    """
    if dist.is_available() and dist.is_initialized():
        return DistContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_int_env("LOCAL_RANK", 0),
            local_world_size=_int_env("LOCAL_WORLD_SIZE", 1),
            backend=str(dist.get_backend()),
            owns_group=False,
        )
    world = _int_env("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: start the run with torchrun"
        )
    local_rank = _int_env("LOCAL_RANK", 0)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but no CUDA device is available")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} CUDA "
                "devices: start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        local_world_size=_int_env("LOCAL_WORLD_SIZE", 1),
        backend=backend,
        owns_group=True,
    )


def shutdown(ctx: DistContext, synchronize: bool = False) -> None:
    """Destroy the process group if :func:`setup` created it.

    ``synchronize`` (a run that finished on every rank): wait for every rank first, so that no
    rank tears its connections down while another still uses them (with gloo that aborted a
    worker at exit now and then). After an error the ranks may not all get here, so no wait."""
    if ctx.owns_group and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def resolve_device(device: str, ctx: DistContext) -> torch.device:
    """``auto``: CUDA when present, else the CPU; in a distributed CUDA run ``auto`` and
    ``cuda`` mean this process's GPU (``cuda:LOCAL_RANK``)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return torch.device(device)


# ---------------------------------------------------------------------- batch norm
_SYNCABLE = (BatchNormT, BatchNorm1dT, TdBN)


def enable_sync_batchnorm(model: nn.Module, group: Any = None) -> int:
    """Make every DSR batch norm and tdBN layer of ``model`` take its training statistics over
    the processes of ``group`` (``None``: all). Returns how many layers were switched. Other
    batch-norm layers are refused (``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` handles
    plain torch layers on GPUs)."""
    n = 0
    for name, m in model.named_modules():
        if isinstance(m, _SYNCABLE):
            m.process_group = GroupRef(group)
            n += 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm):
            raise ValueError(
                f"sync_bn: layer {name!r} ({type(m).__name__}) is not a DSR batch norm or tdBN; "
                "convert it with torch.nn.SyncBatchNorm.convert_sync_batchnorm (GPU only) or "
                "set sync_bn=False"
            )
    return n


@contextlib.contextmanager
def local_batchnorm(model: nn.Module) -> Iterator[None]:
    """Within the block, synchronised layers use this process's rows only (e.g. for the
    temperature search, whose batch every process holds whole)."""
    saved = [(m, m.process_group) for m in model.modules() if isinstance(m, _SYNCABLE)]
    for m, _ in saved:
        m.process_group = None
    try:
        yield
    finally:
        for m, g in saved:
            m.process_group = g


# ---------------------------------------------------------------------- Dspike temperature
def temperature_search(
    model: DspikeNet,
    x: Tensor,
    y: Tensor,
    ctx: DistContext,
    db: float = 0.2,
    eps: float = 0.1,
    chunk: int = 64,
    progress: Callable[[int], object] | None = None,
) -> TemperatureSearch:
    """Algorithm 1 (:func:`snnsim.train.dspike.temperature_search`) in a distributed run:
    every process holds the same search batch ``(x, y)`` and model; process ``r`` computes the
    finite-difference gradient of its share of the first layer's coordinates, the shares are
    summed (the others are zero, so the sum is exact), every process scores the candidates,
    and rank 0's result is broadcast so all processes hold the same temperature. Sets
    ``model.temperature``; returns the :class:`~snnsim.train.dspike.TemperatureSearch`."""
    from .dspike import temperature_search as search

    with local_batchnorm(model):
        res = search(
            model,
            x,
            y,
            db=db,
            eps=eps,
            chunk=chunk,
            shard=(ctx.rank, ctx.world_size),
            reduce=ctx.all_reduce if ctx.enabled else None,
            progress=progress,
        )
    res = ctx.broadcast_object(res)
    model.temperature = res.b
    return res
