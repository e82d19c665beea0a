"""Training loop for DSR networks (and their ANN twins) and Dspike networks, in one process or
distributed over several with ``torchrun`` (:mod:`snnsim.train.distributed`).

* Optimiser: SGD (momentum, optional Nesterov) or Adam; weight decay on every parameter, the
  thresholds included (the L2 regularisation of the DSR paper).
* Learning rate: linear warmup over ``warmup_epochs`` then cosine to 0, set every iteration.
* Augmentation on batched tensors: random crop with zero padding, horizontal flip.
* Dspike (``temperature_search``): Algorithm 1 at the start of every epoch on ``fdg_batch``
  random training samples; the temperature is stored in checkpoints.
* Data order: torch's ``DistributedSampler`` (one process: its single replica), reshuffled at
  every epoch; ``batch_size`` is the combined batch of all processes.
* Determinism: at the start of epoch ``e`` the global torch RNG (dropout), the data order, the
  augmentation generator and the search batch are seeded from ``(seed, e)``; with the model
  and optimiser state restored from the end-of-epoch checkpoint, ``resume`` continues exactly
  as an uninterrupted run (same metrics), on any number of processes.
* Safety: a non-finite loss stops training before the optimiser step, and non-finite
  parameters or batch-norm statistics at the end of an epoch stop it before the checkpoint is
  written, with :class:`TrainingDiverged` saying where and why; the last good checkpoint stays.
  ``resume`` refuses a checkpoint trained with another configuration unless
  ``allow_config_change`` (the change is then recorded, the recorded start configuration and
  seed are kept).
* Output (``out_dir``): ``metrics.json`` (the start configuration, any configuration changes,
  and one record per epoch: losses, accuracies, learning rate, seconds, per-layer firing rates,
  thresholds, temperature) and ``checkpoint.pt``, both rewritten atomically after every epoch
  by rank 0.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from ..nn.dspike import DspikeNet
from ..nn.net import DSRNet
from . import distributed
from .checkpoint import (
    CheckpointError,
    Tempered,
    effective_config,
    load_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from .configs import TrainConfig, model_kwargs
from .distributed import DistContext

__all__ = [
    "Trainer",
    "TrainingDiverged",
    "ConfigMismatch",
    "train",
    "load_datasets",
    "resolve_device",
    "augment_batch",
    "epoch_seed",
    "lr_at",
    "config_diff",
]

_SEED_STRIDE = 1_000_003
# fields that may differ between a checkpoint and the run resuming it: where and how the run
# executes, not what it trains
RUNTIME_FIELDS = frozenset(
    {"name", "device", "num_threads", "data_root", "eval_batch_size", "note", "requires_gpu"}
    | {"sync_bn", "eval_every"}
)
_STATE_KEYS = ("config", "epoch", "model", "optimizer", "history")


# What the trainer sets on a model when the model has it (DSRNet; the Dspike temperature is
# checkpoint.Tempered); isinstance on these is hasattr on the attribute.
@runtime_checkable
class _ExactBnGrad(Protocol):
    exact_bn_grad: bool


@runtime_checkable
class _TimeChunked(Protocol):
    time_chunk: int | None


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss, parameter or batch-norm statistic and stopped; the
    message says where, the likely cause, and which checkpoint is kept."""


class ConfigMismatch(ValueError):
    """``resume`` found a checkpoint trained with another configuration."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return (int(seed) * _SEED_STRIDE + int(epoch) * 7919 + 12345) % (2**63 - 1)


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU."""
    return distributed.resolve_device(device, DistContext())


def lr_at(step: int, total: int, warmup: int, base: float, schedule: str) -> float:
    """Learning rate at iteration ``step`` (0-based) of ``total``: linear warmup over
    ``warmup`` iterations, then cosine from ``base`` to 0 (or constant)."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    span = max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


def augment_batch(
    x: Tensor, padding: int, flip: bool, gen: torch.Generator, shard: tuple[int, int] = (0, 1)
) -> Tensor:
    """Random crop (zero padding ``padding`` on each side, one offset per sample) and random
    horizontal flip of a batch ``[B, ..., H, W]`` (any leading dims, e.g. ``[B, T, C, H, W]``;
    one crop and flip per sample). ``gen`` is a CPU generator.

    ``shard = (r, W)``: ``x`` holds rows ``r, r + W, ...`` of a combined batch of ``W * B``
    rows (a distributed run); the random values are drawn for the combined batch and this
    process keeps its rows, so every row gets the augmentation it gets in one process."""
    r, world = shard
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    n = B * world
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)[r::world].to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=gen)[r::world].to(x.device)
        rows = oy[:, None] + torch.arange(H, device=x.device)[None, :]  # [B, H]
        cols = ox[:, None] + torch.arange(W, device=x.device)[None, :]  # [B, W]
        lead = x.shape[1:-2]
        flat = xp.reshape((B, -1) + tuple(xp.shape[-2:]))  # [B, L, H+2p, W+2p]
        idx_r = rows[:, None, :, None].expand(B, flat.shape[1], H, xp.shape[-1])
        flat = flat.gather(2, idx_r)
        idx_c = cols[:, None, None, :].expand(B, flat.shape[1], H, W)
        flat = flat.gather(3, idx_c)
        x = flat.reshape((B,) + tuple(lead) + (H, W))
    if flip:
        f = (torch.rand(n, generator=gen) < 0.5)[r::world]
        if bool(f.any()):
            f = f.to(x.device)
            x = torch.where(f.reshape((B,) + (1,) * (x.ndim - 1)), x.flip(-1), x)
    return x


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fields (outside :data:`RUNTIME_FIELDS`) whose values differ between two configuration
    dictionaries (compared as JSON, so tuples equal lists): ``{field: {"from", "to"}}``."""
    a, b = _jsonable(old), _jsonable(new)
    out = {}
    for k in sorted(set(a) | set(b)):
        if k in RUNTIME_FIELDS:
            continue
        if a.get(k) != b.get(k):
            out[k] = {"from": a.get(k), "to": b.get(k)}
    return out


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(d, default=str))
    return out


# ---------------------------------------------------------------------- data
def _subset_indices(n_total: int, n: int | None) -> np.ndarray | None:
    """A fixed random subset (seed 0) of ``n`` of ``n_total`` indices in increasing order
    (datasets stored class by class would otherwise give a few classes only); ``None``: all."""
    if n is None or n >= n_total:
        return None
    return np.sort(np.random.RandomState(0).permutation(n_total)[:n])


def dataset_size(ds: Dataset[Any]) -> int:
    """The number of samples of ``ds`` (torch's ``Dataset`` type does not promise a length;
    every dataset snnsim trains on has one)."""
    if not isinstance(ds, Sized):
        raise TypeError(f"a training dataset needs a length (__len__), got {type(ds).__name__}")
    return len(ds)


def _take(ds: Dataset[Any], n: int | None) -> Dataset[Any]:
    idx = _subset_indices(dataset_size(ds), n)
    if idx is None:
        return ds
    if isinstance(ds, TensorDataset):
        t = torch.from_numpy(idx)
        return TensorDataset(*(x[t] for x in ds.tensors))
    return Subset(ds, idx.tolist())


def event_frames(events: list[np.ndarray], T: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Event counts ``[N, T, C, H, W]`` (float32, equal time bins per recording) of each
    recording in ``events``."""
    from ..events import bin_events

    if not events:
        return np.zeros((0, T) + shape, dtype=np.float32)
    return np.stack([bin_events(ev, shape, T, "time") for ev in events]).astype(np.float32)


def _synthetic_nmnist(cfg: TrainConfig, progress: bool) -> tuple[Dataset[Any], Dataset[Any]]:
    from ..data import synthetic_nmnist

    out = []
    splits: tuple[tuple[Literal["train", "test"], int, int | None], ...] = (
        ("train", 4000, cfg.n_train),
        ("test", 1000, cfg.n_test),
    )
    for split, size, n in splits:
        idx = _subset_indices(size, n)
        ds = synthetic_nmnist(split, seed=0, indices=idx, progress=progress)
        frames = event_frames(list(ds.events), cfg.T, (2, 34, 34))
        labels = np.asarray(ds.labels, dtype=np.int64)
        out.append(TensorDataset(torch.from_numpy(frames), torch.from_numpy(labels)))
    return out[0], out[1]


def load_datasets(cfg: TrainConfig, progress: bool = False) -> tuple[Dataset[Any], Dataset[Any]]:
    """``(train, test)`` datasets of ``cfg.dataset`` (``n_train``/``n_test``: fixed random
    subsets). Generated data (SYNTHETIC N-MNIST events) comes from the data cache
    (:mod:`snnsim.data.cache`) after its first generation."""
    root = cfg.data_root or os.environ.get("SNNSIM_DATA")
    pair: tuple[Dataset[Any], Dataset[Any]]
    if cfg.dataset == "synthetic-nmnist":
        return _synthetic_nmnist(cfg, progress)
    if cfg.dataset == "mnist5k":
        from ..data import mnist5k_datasets

        pair = mnist5k_datasets()
    elif cfg.dataset == "digits":
        from ..data import digits_datasets

        pair = digits_datasets()
    elif cfg.dataset in ("cifar10", "cifar100"):
        from ..data import cifar_datasets

        if root is None:
            raise FileNotFoundError(f"{cfg.name}: CIFAR needs data_root or $SNNSIM_DATA")
        pair = cifar_datasets(root, "cifar10" if cfg.dataset == "cifar10" else "cifar100")
    elif cfg.dataset == "dvs-cifar10":
        from ..data import dvs_cifar10_frames_dataset

        if root is None:
            raise FileNotFoundError(f"{cfg.name}: DVS-CIFAR10 needs data_root or $SNNSIM_DATA")
        kw = dict(n_frames=cfg.T, size=48, cache=True)
        pair = (
            dvs_cifar10_frames_dataset(root, "train", **kw),
            dvs_cifar10_frames_dataset(root, "test", **kw),
        )
    elif cfg.dataset == "synthetic":
        g = torch.Generator().manual_seed(1234)
        proto = torch.rand(4, 1, 12, 12, generator=g)

        def make(n: int) -> TensorDataset:
            y = torch.randint(0, 4, (n,), generator=g)
            x = (proto[y] + 0.3 * torch.rand(n, 1, 12, 12, generator=g)).clamp(0, 1)
            return TensorDataset(x, y)

        pair = (make(96), make(48))
    else:
        raise ValueError(f"{cfg.name}: unknown dataset {cfg.dataset!r}")
    return _take(pair[0], cfg.n_train), _take(pair[1], cfg.n_test)


class _Batches:
    """Batches of this process's share of a dataset. Training order: a ``DistributedSampler``
    (``world`` replicas, this one ``rank``), reshuffled at every epoch; evaluation: rows
    ``rank, rank + world, ...`` in order. Tensor datasets are sliced in memory (on the
    device), others go through a ``DataLoader``."""

    def __init__(
        self,
        ds: Dataset[Any],
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
    ) -> None:
        self.batch_size, self.device, self.shuffle = batch_size, device, shuffle
        self.ds, self.rank, self.world = ds, rank, world
        n = dataset_size(ds)
        self.sampler: DistributedSampler[int] | None = None
        if shuffle:
            self.sampler = DistributedSampler(
                ds, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
            )
            self.n_local = len(self.sampler)
        else:
            self.n_local = len(range(rank, n, world))
        self.tensors: tuple[Tensor, Tensor] | None = None
        if isinstance(ds, TensorDataset):
            x, y = ds.tensors[0], ds.tensors[1]
            self.tensors = (x.to(device), y.to(device))

    def __len__(self) -> int:
        return (self.n_local + self.batch_size - 1) // self.batch_size

    def indices(self, epoch: int) -> list[int]:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return list(self.sampler)
        return list(range(self.rank, dataset_size(self.ds), self.world))

    def rows(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        """The samples ``idx`` (dataset indices) as one batch on the device."""
        if self.tensors is not None:
            t = torch.as_tensor(idx, dtype=torch.long, device=self.device)
            return self.tensors[0][t], self.tensors[1][t]
        items = [self.ds[i] for i in idx]
        x = torch.stack([torch.as_tensor(a) for a, _ in items])
        y = torch.as_tensor([int(b) for _, b in items])
        return x.to(self.device), y.to(self.device)

    def iterate(self, epoch: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.indices(epoch)
        if self.tensors is not None:
            x, y = self.tensors
            t = torch.as_tensor(order, dtype=torch.long).to(self.device)
            for i in range(0, len(order), self.batch_size):
                idx = t[i : i + self.batch_size]
                yield x[idx], y[idx]
            return
        loader = DataLoader(
            Subset(self.ds, order), batch_size=self.batch_size, shuffle=False, num_workers=0
        )
        for xb, yb in loader:
            yield xb.to(self.device), torch.as_tensor(yb).to(self.device)


# ---------------------------------------------------------------------- trainer
@dataclass
class EpochStats:
    """One training epoch: mean loss and accuracy over the combined batch, firing rates by layer
    (spikes per neuron per step), wall-clock and process CPU seconds."""

    loss: float
    acc: float
    rates: dict[str, float]
    seconds: float
    cpu_seconds: float = 0.0  # process CPU time (all threads), robust to other load on the machine


class Trainer:
    """Train ``cfg`` into ``out_dir`` (``None``: no files). ``progress``: tqdm bars (rank 0).
    ``model``/``datasets``: use these instead of building them from ``cfg``. ``dist``: the
    distributed context (default :func:`snnsim.train.distributed.setup`: the process group
    the caller initialised, the one ``torchrun``'s environment describes, or one process)."""

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path | None = None,
        progress: bool = True,
        model: nn.Module | None = None,
        datasets: tuple[Dataset[Any], Dataset[Any]] | None = None,
        dist: DistContext | None = None,
    ) -> None:
        self.cfg = cfg
        self.ctx = dist if dist is not None else distributed.setup(cfg.device)
        ctx = self.ctx
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress and ctx.is_main
        self.device = distributed.resolve_device(cfg.device, ctx)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        if cfg.batch_size % ctx.world_size:
            raise ValueError(
                f"{cfg.name}: batch_size={cfg.batch_size} (the combined batch) is not divisible "
                f"by the {ctx.world_size} processes of this run"
            )
        self._set_threads()
        torch.manual_seed(cfg.seed)
        self.model = self._build_model(model).to(self.device, self.dtype)
        train_ds, test_ds = datasets if datasets is not None else self._load_data()
        self.train_batches = _Batches(
            train_ds,
            cfg.batch_size // ctx.world_size,
            self.device,
            shuffle=True,
            rank=ctx.rank,
            world=ctx.world_size,
            seed=epoch_seed(cfg.seed, 0),
        )
        self.test_batches = _Batches(
            test_ds, cfg.eval_batch_size, self.device, False, ctx.rank, ctx.world_size
        )
        if cfg.normalize is not None:
            mean, std = cfg.normalize
            shape = (1, -1, 1, 1)
            self._mean = torch.tensor(mean, device=self.device, dtype=self.dtype).reshape(shape)
            self._std = torch.tensor(std, device=self.device, dtype=self.dtype).reshape(shape)
        self.opt = self._optimizer()
        self.train_model: nn.Module = self.model
        if ctx.enabled:
            if cfg.sync_bn:
                distributed.enable_sync_batchnorm(self.model)
            self.train_model = _ddp(self.model, self.device, sync_buffers=not cfg.sync_bn)
        self.iters_per_epoch = len(self.train_batches)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []
        self.start_config: dict[str, Any] = cfg.to_dict()
        self.config_changes: list[dict[str, Any]] = []
        self._last_search: dict[str, Any] = {}  # this epoch's temperature search

    # ------------------------------------------------------------------ construction
    def _set_threads(self) -> None:
        if self.device.type != "cpu" or self.cfg.num_threads <= 0:
            return
        n = self.cfg.num_threads
        if self.ctx.enabled:  # processes on one machine share its cores
            per = (os.cpu_count() or 1) // max(1, self.ctx.local_world_size)
            n = max(1, min(n, per))
        torch.set_num_threads(n)

    def _build_model(self, model: nn.Module | None) -> nn.Module:
        from ..models import create_model

        cfg = self.cfg
        if model is None:
            model = create_model(cfg.model, **model_kwargs(cfg))
        if cfg.exact_bn_grad:
            if not isinstance(model, _ExactBnGrad):
                raise ValueError(
                    f"exact_bn_grad: model {cfg.model!r} ({type(model).__name__}) is not a "
                    "DSR network"
                )
            model.exact_bn_grad = True
        if cfg.time_chunk is not None:
            if not isinstance(model, _TimeChunked):
                raise ValueError(
                    f"time_chunk: model {cfg.model!r} ({type(model).__name__}) has no "
                    "time-chunked forward"
                )
            model.time_chunk = cfg.time_chunk
        if cfg.temperature_search and not hasattr(model, "temperature"):
            raise ValueError(
                f"temperature_search: model {cfg.model!r} ({type(model).__name__}) has no "
                "Dspike temperature"
            )
        if cfg.init_from is not None:
            _init_from(model, cfg.init_from)
        return model

    def _load_data(self) -> tuple[Dataset[Any], Dataset[Any]]:
        """Rank 0 first (it may generate and cache the data), then the others."""
        ctx = self.ctx
        if not ctx.is_main:
            ctx.barrier()
        pair = load_datasets(self.cfg, progress=self.progress)
        if ctx.is_main:
            ctx.barrier()
        return pair

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = list(self.model.parameters())
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov,
                weight_decay=cfg.weight_decay,
            )
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ helpers
    def _prep(self, x: Tensor, train: bool, gen: torch.Generator | None) -> Tensor:
        x = x.to(self.dtype)
        if train and (self.cfg.crop_padding > 0 or self.cfg.flip):
            assert gen is not None  # training batches come with the epoch's generator
            shard = (self.ctx.rank, self.ctx.world_size)
            x = augment_batch(x, self.cfg.crop_padding, self.cfg.flip, gen, shard)
        if self.cfg.normalize is not None:
            if x.ndim == 5:
                x = (x - self._mean.unsqueeze(1)) / self._std.unsqueeze(1)
            else:
                x = (x - self._mean) / self._std
        return x

    def _rate_names(self) -> list[str]:
        from ..nn.dspike import DspikeNeuron

        if isinstance(self.model, DSRNet):
            return [n for n, _ in self.model.neurons()]
        return [n for n, m in self.model.named_modules() if isinstance(m, DspikeNeuron)]

    def _rates(self) -> dict[str, Any]:
        """Firing rate of each neuron layer in the last forward (tensors or floats)."""
        if isinstance(self.model, DSRNet):
            return {n: m.last_rate for n, m in self.model.neurons() if m.last_rate is not None}
        fr = getattr(self.model, "firing_rates", None)
        return fr() if callable(fr) else {}

    def _bar(self, it: Any, total: int, desc: str) -> Any:
        if not self.progress:
            return it
        from tqdm.auto import tqdm

        return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)

    def _reduce(self, values: list[Any]) -> list[float]:
        """Sum scalars (tensors or numbers) over the processes; one collective."""
        t = torch.tensor(
            [float(v) for v in values], dtype=torch.float64, device=self._comm_device()
        )
        return self.ctx.all_reduce(t).tolist()

    def _comm_device(self) -> torch.device:
        return self.device if self.ctx.backend == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ safety
    def _checkpoint_note(self) -> str:
        path = None if self.out_dir is None else self.out_dir / "checkpoint.pt"
        if path is None:
            return "no checkpoint is written by this run (no output directory)"
        if self.epoch == 0 or not path.exists():
            return f"no epoch had finished, so no checkpoint was written to {path}"
        return f"the last good checkpoint (after epoch {self.epoch}) is kept at {path}"

    def _nonfinite_state(self) -> list[str]:
        """Names of parameters and floating buffers holding NaN or inf."""
        bad = []
        for kind, items in (
            ("parameter", self.model.named_parameters()),
            ("buffer", self.model.named_buffers()),
        ):
            for name, t in items:
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad.append(f"{kind} {name}")
        return bad

    def _check_loss(self, loss: Tensor, x: Tensor, e: int, i: int) -> None:
        """Stop (every process) before the optimiser step when any process's loss is NaN or
        inf."""
        bad = (~torch.isfinite(loss.detach())).to(torch.float64).reshape(1)
        bad = self.ctx.all_reduce(bad.to(self._comm_device()))
        if float(bad) == 0:
            return
        n_bad_x = int((~torch.isfinite(x)).sum())
        if n_bad_x:
            cause = (
                f"this process's input batch holds {n_bad_x} NaN/inf values: the training data "
                "is not finite"
            )
        elif not bool(torch.isfinite(loss)):
            state = self._nonfinite_state()
            cause = (
                f"non-finite {', '.join(state[:4])}" if state else "the loss overflowed"
            ) + " (try a lower learning rate)"
        else:
            cause = "another process's loss is not finite"
        raise TrainingDiverged(
            f"[{self.cfg.name}] training stopped: the loss is {float(loss):g} at epoch {e + 1}, "
            f"iteration {i + 1}/{self.iters_per_epoch}; {cause}; {self._checkpoint_note()}"
        )

    def _check_grads(self, x: Tensor, e: int, i: int) -> None:
        """Stop before the optimiser step when a gradient holds NaN or inf (DDP has already
        averaged the gradients, so every process decides alike)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return
        norms = torch._foreach_norm(grads)
        if bool(torch.isfinite(torch.stack(norms)).all()):
            return
        bad = [
            n
            for n, p in self.model.named_parameters()
            if p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ]
        n_bad_x = int((~torch.isfinite(x)).sum())
        cause = (
            f"this process's input batch holds {n_bad_x} NaN/inf values: the training data is "
            "not finite; "
            if n_bad_x
            else ""
        )
        raise TrainingDiverged(
            f"[{self.cfg.name}] training stopped: non-finite gradient of "
            f"{', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''} at epoch {e + 1}, iteration "
            f"{i + 1}/{self.iters_per_epoch} (the parameters were not updated); {cause}"
            f"{self._checkpoint_note()}"
        )

    def _check_state(self) -> None:
        """Stop before writing a checkpoint whose parameters or statistics are not finite."""
        bad = self._nonfinite_state()
        if self._reduce([len(bad)])[0] == 0:
            return
        where = ", ".join(bad[:6]) + (" ..." if len(bad) > 6 else "") if bad else "another process"
        raise TrainingDiverged(
            f"[{self.cfg.name}] training stopped after epoch {self.epoch + 1}: non-finite "
            f"{where}; {self._checkpoint_note()}"
        )

    # ------------------------------------------------------------------ epochs
    def _search(self, e: int) -> dict[str, Any]:
        """Dspike's temperature search on ``fdg_batch`` random training samples (the same on
        every process)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed((epoch_seed(cfg.seed, e) + 1) % (2**63 - 1))
        n = dataset_size(self.train_batches.ds)
        idx = torch.randperm(n, generator=gen)[: cfg.fdg_batch].tolist()
        xb, yb = self.train_batches.rows(idx)
        x = self._prep(xb, False, None)
        model = self.model
        if not isinstance(model, DspikeNet):
            raise TypeError(f"temperature_search: {type(model).__name__} is not a DspikeNet")
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            w = model.first_layer().weight.numel()
            r, world = self.ctx.rank, self.ctx.world_size
            share = w * (r + 1) // world - w * r // world  # this process's coordinates
            bar = tqdm(total=share, desc=f"temperature search (epoch {e + 1})", leave=False)
        try:
            res = distributed.temperature_search(
                model,
                x,
                yb,
                self.ctx,
                db=cfg.fdg_db,
                eps=cfg.fdg_eps,
                chunk=cfg.fdg_chunk,
                progress=None if bar is None else bar.update,
            )
        finally:
            if bar is not None:
                bar.close()
        return {
            "temperature_candidates": res.candidates,
            "temperature_cosines": [round(c, 6) for c in res.cosines],
            "sec_search": time.perf_counter() - t0,
        }

    def train_epoch(self) -> EpochStats:
        """Train epoch ``self.epoch`` (0-based) over this process's share of the batches."""
        cfg, model, ctx = self.cfg, self.train_model, self.ctx
        e = self.epoch
        seed = epoch_seed(cfg.seed, e)
        torch.manual_seed((seed + ctx.rank) % (2**63 - 1))  # dropout: one stream per process
        gen = torch.Generator().manual_seed(seed)
        if cfg.temperature_search:
            self._last_search = self._search(e)
        model.train()
        total = cfg.epochs * self.iters_per_epoch
        warm = int(round(cfg.warmup_epochs * self.iters_per_epoch))
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        rate_sum: dict[str, Any] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        bar = self._bar(
            self.train_batches.iterate(e), self.iters_per_epoch, f"epoch {e + 1}/{cfg.epochs}"
        )
        for i, (xb, yb) in enumerate(bar):
            lr = lr_at(e * self.iters_per_epoch + i, total, warm, cfg.lr, cfg.schedule)
            for g in self.opt.param_groups:
                g["lr"] = lr
            x = self._prep(xb, True, gen)
            out = model(x)
            loss = F.cross_entropy(out, yb)
            self._check_loss(loss, x, e, i)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self._check_grads(x, e, i)
            self.opt.step()
            with torch.no_grad():
                loss_sum += loss.detach().double() * yb.shape[0]
                correct += (out.argmax(1) == yb).sum()
            n += yb.shape[0]
            for k, v in self._rates().items():
                rate_sum[k] = rate_sum[k] + v if k in rate_sum else v
            if self.progress and (i % 10 == 0 or i == self.iters_per_epoch - 1):
                post = {"loss": f"{float(loss_sum) / n:.4f}", "acc": f"{float(correct) / n:.4f}"}
                if rate_sum:
                    mean_rate = float(sum(rate_sum.values())) / len(rate_sum) / (i + 1)
                    post["rate"] = f"{mean_rate:.3f}"
                bar.set_postfix(post)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        names = self._rate_names()
        iters = max(1, self.iters_per_epoch)
        red = self._reduce([loss_sum, correct, n] + [rate_sum.get(a, 0.0) for a in names])
        rates = {
            a: red[3 + j] / iters / ctx.world_size for j, a in enumerate(names) if a in rate_sum
        }
        return EpochStats(red[0] / max(red[2], 1), red[1] / max(red[2], 1), rates, secs, cpu)

    @torch.no_grad()
    def evaluate(self) -> EpochStats:
        """Loss, accuracy and firing rates on the test set (each process evaluates its share;
        the sums are reduced)."""
        model = self.model
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        rate_sum: dict[str, float] = {}
        t0 = time.perf_counter()
        for xb, yb in self.test_batches.iterate():
            out = model(self._prep(xb, False, None))
            loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
            n += yb.shape[0]
            for k2, v in self._rates().items():
                rate_sum[k2] = rate_sum.get(k2, 0.0) + float(v) * yb.shape[0]
        secs = time.perf_counter() - t0
        names = self._rate_names()
        red = self._reduce([loss_sum, correct, n] + [rate_sum.get(a, 0.0) for a in names])
        total = max(red[2], 1)
        present = set(rate_sum) if not self.ctx.enabled else set(names)
        rates = {a: red[3 + j] / total for j, a in enumerate(names) if a in present}
        return EpochStats(red[0] / total, red[1] / total, rates, secs)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The checkpoint dict: model, optimiser, epoch, history, configuration (and the Dspike
        temperature)."""
        st: dict[str, Any] = {
            "config": self.start_config,
            "config_changes": self.config_changes,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "history": self.history,
            "world_size": self.ctx.world_size,
        }
        temperature = getattr(self.model, "temperature", None)
        if temperature is not None:
            st["temperature"] = float(temperature)
        return st

    def effective_config(self) -> dict[str, Any]:
        """The configuration the last epoch was trained with: the start configuration with
        the recorded changes applied."""
        cfg = dict(self.start_config)
        for ch in self.config_changes:
            for k, v in ch["changes"].items():
                cfg[k] = v["to"]
        return cfg

    def load_state(self, st: dict[str, Any]) -> None:
        """Restore model, optimiser, epoch, history and configuration from checkpoint ``st``."""
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.epoch = int(st["epoch"])
        self.history = list(st["history"])
        self.start_config = dict(st["config"])
        self.config_changes = list(st.get("config_changes", []))
        if st.get("temperature") is not None and isinstance(self.model, Tempered):
            self.model.temperature = float(st["temperature"])

    def resume(self, allow_config_change: bool = False) -> bool:
        """Load ``out_dir/checkpoint.pt`` if present; return whether it was loaded.

        Rank 0 reads the file and broadcasts it. A checkpoint trained with another
        configuration (fields outside :data:`RUNTIME_FIELDS`, e.g. ``seed``, ``epochs``,
        ``lr``) raises :class:`ConfigMismatch` unless ``allow_config_change``; then the
        change is recorded in ``config_changes`` (the start configuration, its seed included,
        stays as recorded). Works across a change of the number of processes."""
        if self.out_dir is None:
            return False
        path = self.out_dir / "checkpoint.pt"
        payload: Any = None
        if self.ctx.is_main:
            try:
                payload = ("ok", load_checkpoint(path, "cpu", required=_STATE_KEYS))
            except FileNotFoundError:
                payload = ("missing", None)
            except CheckpointError as exc:
                payload = ("error", str(exc))
        kind, body = self.ctx.broadcast_object(payload)
        if kind == "missing":
            return False
        if kind == "error":
            raise CheckpointError(body)
        changes = config_diff(effective_config(body), self.cfg.to_dict())
        if changes and not allow_config_change:
            listed = "; ".join(f"{k}: {v['from']!r} -> {v['to']!r}" for k, v in changes.items())
            raise ConfigMismatch(
                f"resume: {path} was trained with another configuration ({listed}); resume "
                "with the checkpoint's values, or allow the change explicitly "
                "(--allow-config-change / allow_config_change=True), which is then recorded"
            )
        self.load_state(body)
        if changes:
            self.config_changes.append({"after_epoch": self.epoch, "changes": changes})
        return True

    def _write(self) -> None:
        if self.out_dir is None or not self.ctx.is_main:
            return
        save_checkpoint(self.out_dir / "checkpoint.pt", self.state())
        doc: dict[str, Any] = {"config": self.start_config}
        if self.config_changes:
            doc["config_changes"] = self.config_changes
        doc["epochs"] = self.history
        write_json_atomic(self.out_dir / "metrics.json", doc)

    def fit(
        self, log: Callable[[str], None] | None = print, stop_after: int | None = None
    ) -> list[dict[str, Any]]:
        """Train until ``cfg.epochs`` epochs are done (or, with ``stop_after``, until that many
        are, as an interrupted run would); return the per-epoch records. Only rank 0 logs."""
        if not self.ctx.is_main:
            log = None
        end = self.cfg.epochs if stop_after is None else min(stop_after, self.cfg.epochs)
        while self.epoch < end:
            self._last_search = {}
            tr = self.train_epoch()
            k = max(1, self.cfg.eval_every)
            do_eval = (
                (self.epoch + 1) % k == 0
                or self.epoch + 1 == end
                or self.epoch + 1 == self.cfg.epochs
            )
            ev = self.evaluate() if do_eval else EpochStats(float("nan"), float("nan"), {}, 0.0)
            self._check_state()
            self.epoch += 1
            rec = self._record(tr, ev, do_eval)
            self.history.append(rec)
            self._write()
            if log is not None:
                log(self._log_line(tr, ev, rec))
        return self.history

    def _record(self, tr: EpochStats, ev: EpochStats, do_eval: bool) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "epoch": self.epoch,
            "lr_end": self.opt.param_groups[0]["lr"],
            "train_loss": tr.loss,
            "train_acc": tr.acc,
            "test_loss": ev.loss if do_eval else None,
            "test_acc": ev.acc if do_eval else None,
            "sec_train": tr.seconds,
            "cpu_sec_train": tr.cpu_seconds,
            "sec_eval": ev.seconds,
            "firing_rates": ev.rates,
            "thresholds": self.model.thresholds() if isinstance(self.model, DSRNet) else {},
            "world_size": self.ctx.world_size,
        }
        temperature = getattr(self.model, "temperature", None)
        if temperature is not None:
            rec["temperature"] = float(temperature)
        rec.update(self._last_search)
        return rec

    def _log_line(self, tr: EpochStats, ev: EpochStats, rec: dict[str, Any]) -> str:
        mean_rate = sum(ev.rates.values()) / len(ev.rates) if ev.rates else float("nan")
        extra = f" b {rec['temperature']:.2f}" if "temperature" in rec else ""
        search = f" + {rec['sec_search']:.1f}s search" if "sec_search" in rec else ""
        return (
            f"[{self.cfg.name}] epoch {self.epoch}/{self.cfg.epochs} loss {tr.loss:.4f} "
            f"train {tr.acc:.4f} test {ev.acc:.4f} rate {mean_rate:.3f}{extra} "
            f"({tr.seconds:.1f}s + {ev.seconds:.1f}s{search})"
        )


def _ddp(model: nn.Module, device: torch.device, sync_buffers: bool) -> nn.Module:
    """``DistributedDataParallel(model)``; buffers (batch-norm running statistics) are copied
    from rank 0 at every forward only when ``sync_buffers`` (synchronised batch norm keeps
    them equal by itself)."""
    import inspect

    ddp = nn.parallel.DistributedDataParallel
    kw: dict[str, Any] = {"device_ids": [device.index] if device.type == "cuda" else None}
    if "forward_sync_buffers" in inspect.signature(ddp).parameters:  # newer torch
        kw["forward_sync_buffers"] = sync_buffers
    else:
        kw["broadcast_buffers"] = sync_buffers
    return ddp(model, **kw)


def _init_from(model: nn.Module, source: str) -> None:
    """Load the model weights (and Dspike temperature) of the checkpoint ``source`` (a file or
    a run directory holding ``checkpoint.pt``) into ``model``."""
    p = Path(source)
    if p.is_dir():
        p = p / "checkpoint.pt"
    st = load_checkpoint(p, "cpu", required=("model",))
    try:
        model.load_state_dict(st["model"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"init_from: the weights in {p} do not fit this model ({exc})"
        ) from None
    b = st.get("temperature", st.get("b"))
    if b is not None and isinstance(model, Tempered) and model.temperature is not None:
        model.temperature = float(b)


def train(
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    allow_config_change: bool = False,
    stop_after: int | None = None,
) -> Trainer:
    """Build a :class:`Trainer` for ``cfg``, optionally resume from ``out_dir``, and fit
    (until ``stop_after`` epochs are done, if given)."""
    tr = Trainer(cfg, out_dir, progress=progress)
    if resume and tr.resume(allow_config_change) and log is not None and tr.ctx.is_main:
        log(f"[{cfg.name}] resumed after epoch {tr.epoch}")
    tr.fit(log, stop_after)
    return tr
