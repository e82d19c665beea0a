"""Training loop for DSR networks (and their ANN baselines).

* Optimiser: SGD (momentum, optional Nesterov) or Adam; weight decay on every parameter, the
  thresholds included (the L2 regularisation of the paper).
* Learning rate: linear warmup over ``warmup_epochs`` then cosine to 0, set every iteration.
* Augmentation on batched tensors: random crop with zero padding, horizontal flip.
* Determinism: at the start of epoch ``e`` the global torch RNG (dropout) and the data order
  and augmentation generator are seeded from ``(seed, e)``; with the model and optimiser state
  restored from the end-of-epoch checkpoint, ``resume`` continues exactly as an uninterrupted
  run (same metrics).
* Output (``out_dir``): ``metrics.json`` (the config and one record per epoch: losses,
  accuracies, learning rate, seconds, per-layer firing rates and thresholds) and
  ``checkpoint.pt``, both rewritten atomically after every epoch.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .checkpoint import load_checkpoint, save_checkpoint, write_json_atomic
from .configs import TrainConfig
from .net import DSRNet

__all__ = [
    "Trainer",
    "train",
    "load_datasets",
    "resolve_device",
    "augment_batch",
    "epoch_seed",
    "lr_at",
]

_SEED_STRIDE = 1_000_003


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return (int(seed) * _SEED_STRIDE + int(epoch) * 7919 + 12345) % (2**63 - 1)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def augment_batch(x: Tensor, padding: int, flip: bool, gen: torch.Generator) -> Tensor:
    """Random crop (zero padding ``padding`` on each side, one offset per sample) and random
    horizontal flip of a batch ``[B, ..., H, W]`` (any leading dims, e.g. ``[B, T, C, H, W]``;
    one crop and flip per sample). ``gen`` is a CPU generator."""
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    if padding > 0:
        xp = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (B,), generator=gen).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (B,), generator=gen).to(x.device)
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
        f = torch.rand(B, generator=gen) < 0.5
        if bool(f.any()):
            f = f.to(x.device)
            x = torch.where(f.reshape((B,) + (1,) * (x.ndim - 1)), x.flip(-1), x)
    return x


# ---------------------------------------------------------------------- data
def load_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, test)`` datasets of ``cfg.dataset``."""
    root = cfg.data_root or os.environ.get("SNNSIM_DATA")
    if cfg.dataset == "mnist5k":
        from ..data import mnist5k_datasets

        return mnist5k_datasets()
    if cfg.dataset == "digits":
        from ..data import digits_datasets

        return digits_datasets()
    if cfg.dataset in ("cifar10", "cifar100"):
        from ..data import cifar_datasets

        if root is None:
            raise FileNotFoundError(f"{cfg.name}: CIFAR needs data_root or $SNNSIM_DATA")
        return cifar_datasets(root, cfg.dataset)  # type: ignore[arg-type]
    if cfg.dataset == "dvs-cifar10":
        from ..data import dvs_cifar10_frames_dataset

        if root is None:
            raise FileNotFoundError(f"{cfg.name}: DVS-CIFAR10 needs data_root or $SNNSIM_DATA")
        kw = dict(n_frames=cfg.T, size=48, cache=True)
        return (
            dvs_cifar10_frames_dataset(root, "train", **kw),
            dvs_cifar10_frames_dataset(root, "test", **kw),
        )
    if cfg.dataset == "synthetic":
        g = torch.Generator().manual_seed(1234)
        proto = torch.rand(4, 1, 12, 12, generator=g)

        def make(n: int) -> TensorDataset:
            y = torch.randint(0, 4, (n,), generator=g)
            x = (proto[y] + 0.3 * torch.rand(n, 1, 12, 12, generator=g)).clamp(0, 1)
            return TensorDataset(x, y)

        return make(96), make(48)
    raise ValueError(f"{cfg.name}: unknown dataset {cfg.dataset!r}")


class _Batches:
    """Batches of a dataset: tensor datasets are sliced in memory (on the device), others go
    through a ``DataLoader``. The order is a permutation drawn from ``gen``."""

    def __init__(self, ds: Dataset, batch_size: int, device: torch.device, shuffle: bool) -> None:
        self.batch_size, self.device, self.shuffle = batch_size, device, shuffle
        self.ds = ds
        self.tensors: tuple[Tensor, Tensor] | None = None
        if isinstance(ds, TensorDataset):
            x, y = ds.tensors[0], ds.tensors[1]
            self.tensors = (x.to(device), y.to(device))

    def __len__(self) -> int:
        n = len(self.ds)  # type: ignore[arg-type]
        return (n + self.batch_size - 1) // self.batch_size

    def iterate(self, gen: torch.Generator | None) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.ds)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        if self.tensors is not None:
            x, y = self.tensors
            order = order.to(self.device)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                yield x[idx], y[idx]
            return
        loader = DataLoader(
            torch.utils.data.Subset(self.ds, order.tolist()),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=0,
        )
        for xb, yb in loader:
            yield xb.to(self.device), torch.as_tensor(yb).to(self.device)


# ---------------------------------------------------------------------- trainer
@dataclass
class EpochStats:
    loss: float
    acc: float
    rates: dict[str, float]
    seconds: float
    cpu_seconds: float = 0.0  # process CPU time (all threads), robust to other load on the machine


class Trainer:
    """Train ``cfg`` into ``out_dir`` (``None``: no files). ``progress``: tqdm bars."""

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path | None = None,
        progress: bool = True,
        model: nn.Module | None = None,
        datasets: tuple[Dataset, Dataset] | None = None,
    ) -> None:
        from ..models import create_model

        self.cfg = cfg
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu" and cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        if model is None:
            kw = dict(cfg.model_kwargs)
            kw.setdefault("neuron", cfg.neuron)
            kw.setdefault("T", cfg.T)
            kw.setdefault("mode", cfg.mode)
            if cfg.channels_last:
                kw.setdefault("channels_last", True)
            model = create_model(cfg.model, **kw)
        if cfg.exact_bn_grad:
            if not hasattr(model, "exact_bn_grad"):
                raise ValueError(
                    f"exact_bn_grad: model {cfg.model!r} ({type(model).__name__}) is not a DSR network"
                )
            model.exact_bn_grad = True
        if cfg.time_chunk is not None:
            if not hasattr(model, "time_chunk"):
                raise ValueError(
                    f"time_chunk: model {cfg.model!r} ({type(model).__name__}) has no time-chunked forward"
                )
            model.time_chunk = cfg.time_chunk
        self.model = model.to(self.device)
        train_ds, test_ds = datasets if datasets is not None else load_datasets(cfg)
        self.train_batches = _Batches(train_ds, cfg.batch_size, self.device, shuffle=True)
        self.test_batches = _Batches(test_ds, cfg.eval_batch_size, self.device, shuffle=False)
        if cfg.normalize is not None:
            mean, std = cfg.normalize
            shape = (1, -1, 1, 1)
            self._mean = torch.tensor(mean, device=self.device).reshape(shape)
            self._std = torch.tensor(std, device=self.device).reshape(shape)
        params = list(self.model.parameters())
        if cfg.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=cfg.lr,
                momentum=cfg.momentum,
                nesterov=cfg.nesterov,
                weight_decay=cfg.weight_decay,
            )
        elif cfg.optimizer == "adam":
            self.opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            raise ValueError(f"{cfg.name}: unknown optimizer {cfg.optimizer!r}")
        self.iters_per_epoch = len(self.train_batches)
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ helpers
    def _prep(self, x: Tensor, train: bool, gen: torch.Generator | None) -> Tensor:
        x = x.float()
        if train and (self.cfg.crop_padding > 0 or self.cfg.flip):
            x = augment_batch(x, self.cfg.crop_padding, self.cfg.flip, gen)  # type: ignore[arg-type]
        if self.cfg.normalize is not None:
            if x.ndim == 5:
                x = (x - self._mean.unsqueeze(1)) / self._std.unsqueeze(1)
            else:
                x = (x - self._mean) / self._std
        return x

    def _rates(self) -> dict[str, float]:
        return self.model.firing_rates() if isinstance(self.model, DSRNet) else {}

    def _rate_tensors(self) -> dict[str, Tensor]:
        if not isinstance(self.model, DSRNet):
            return {}
        return {n: m.last_rate for n, m in self.model.neurons() if m.last_rate is not None}

    def _bar(self, it: Any, total: int, desc: str) -> Any:
        if not self.progress:
            return it
        from tqdm.auto import tqdm

        return tqdm(it, total=total, desc=desc, leave=False, dynamic_ncols=True)

    # ------------------------------------------------------------------ epochs
    def train_epoch(self) -> EpochStats:
        cfg, model = self.cfg, self.model
        e = self.epoch
        seed = epoch_seed(cfg.seed, e)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model.train()
        total = cfg.epochs * self.iters_per_epoch
        warm = int(round(cfg.warmup_epochs * self.iters_per_epoch))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        rate_sum: dict[str, float] = {}
        t0, c0 = time.perf_counter(), time.process_time()
        bar = self._bar(
            self.train_batches.iterate(gen), self.iters_per_epoch, f"epoch {e + 1}/{cfg.epochs}"
        )
        for i, (xb, yb) in enumerate(bar):
            lr = lr_at(e * self.iters_per_epoch + i, total, warm, cfg.lr, cfg.schedule)
            for g in self.opt.param_groups:
                g["lr"] = lr
            x = self._prep(xb, True, gen)
            out = model(x)
            loss = F.cross_entropy(out, yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * yb.shape[0]
                correct += (out.argmax(1) == yb).sum()
            n += yb.shape[0]
            for k, v in self._rate_tensors().items():
                rate_sum[k] = rate_sum[k] + v if k in rate_sum else v.clone()
            if self.progress and (i % 10 == 0 or i == self.iters_per_epoch - 1):
                post = {"loss": f"{float(loss_sum) / n:.4f}", "acc": f"{float(correct) / n:.4f}"}
                if rate_sum:
                    post["rate"] = f"{float(sum(rate_sum.values())) / len(rate_sum) / (i + 1):.3f}"
                bar.set_postfix(post)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        k = max(1, self.iters_per_epoch)
        return EpochStats(
            float(loss_sum) / n,
            float(correct) / n,
            {a: float(b) / k for a, b in rate_sum.items()},
            secs,
            cpu,
        )

    @torch.no_grad()
    def evaluate(self) -> EpochStats:
        model = self.model
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        rate_sum: dict[str, float] = {}
        nb = 0
        t0 = time.perf_counter()
        for xb, yb in self.test_batches.iterate(None):
            out = model(self._prep(xb, False, None))
            loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
            n += yb.shape[0]
            for k2, v in self._rates().items():
                rate_sum[k2] = rate_sum.get(k2, 0.0) + v * yb.shape[0]
            nb += 1
        secs = time.perf_counter() - t0
        return EpochStats(loss_sum / n, correct / n, {a: b / n for a, b in rate_sum.items()}, secs)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "history": self.history,
        }

    def load_state(self, st: dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.epoch = int(st["epoch"])
        self.history = list(st["history"])

    def resume(self) -> bool:
        """Load ``out_dir/checkpoint.pt`` if present; return whether it was loaded."""
        if self.out_dir is None:
            return False
        path = self.out_dir / "checkpoint.pt"
        if not path.exists():
            return False
        self.load_state(load_checkpoint(path, self.device))
        return True

    def _write(self) -> None:
        if self.out_dir is None:
            return
        save_checkpoint(self.out_dir / "checkpoint.pt", self.state())
        write_json_atomic(
            self.out_dir / "metrics.json", {"config": self.cfg.to_dict(), "epochs": self.history}
        )

    def fit(
        self, log: Callable[[str], None] | None = print, stop_after: int | None = None
    ) -> list[dict[str, Any]]:
        """Train until ``cfg.epochs`` epochs are done (or, with ``stop_after``, until that many
        are, as an interrupted run would); return the per-epoch records."""
        end = self.cfg.epochs if stop_after is None else min(stop_after, self.cfg.epochs)
        while self.epoch < end:
            tr = self.train_epoch()
            k = max(1, self.cfg.eval_every)
            do_eval = (
                (self.epoch + 1) % k == 0
                or self.epoch + 1 == end
                or self.epoch + 1 == self.cfg.epochs
            )
            ev = self.evaluate() if do_eval else EpochStats(float("nan"), float("nan"), {}, 0.0)
            self.epoch += 1
            rec = {
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
            }
            self.history.append(rec)
            self._write()
            if log is not None:
                mean_rate = sum(ev.rates.values()) / len(ev.rates) if ev.rates else float("nan")
                log(
                    f"[{self.cfg.name}] epoch {self.epoch}/{self.cfg.epochs} loss {tr.loss:.4f} "
                    f"train {tr.acc:.4f} test {ev.acc:.4f} rate {mean_rate:.3f} ({tr.seconds:.1f}s + {ev.seconds:.1f}s)"
                )
        return self.history


def train(
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> Trainer:
    """Build a :class:`Trainer` for ``cfg``, optionally resume from ``out_dir``, and fit."""
    tr = Trainer(cfg, out_dir, progress=progress)
    if resume and tr.resume() and log is not None:
        log(f"[{cfg.name}] resumed after epoch {tr.epoch}")
    tr.fit(log)
    return tr
