"""Dspike experiment loop: data, training with the per-epoch temperature search (Algorithm 1),
baselines (fixed temperature, rectangular and triangular surrogates) and Time Inheritance
Training (TIT), on MNIST-5k and the SYNTHETIC N-MNIST-like event data.

The DSR trainer (:mod:`snnsim.train.trainer`) has no epoch-start hook, so this module keeps its
own small loop (Adam, cosine learning rate, cross-entropy on the integrated output) and reuses
the atomic checkpoint writer of :mod:`snnsim.train.checkpoint`.

    cfg = ExperimentConfig(dataset="mnist5k", method="dspike-adaptive", T=4, seed=0, epochs=3)
    row = run_experiment(cfg)        # {"method", "T", "seed", "acc", "epochs", ...}

Methods: ``dspike-adaptive`` (b0, search every epoch), ``dspike-fixed`` (b = b0 throughout),
``rect`` (Eq. 7, width ``a``), ``triangle`` (Eq. 8). ``tit_from = T_src``: start from the model
trained at ``T_src`` (``init_state`` or trained first) and fine-tune at ``T``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import create_model
from .checkpoint import save_checkpoint
from .dspike import DspikeNet, inherit, temperature_search

__all__ = [
    "ExperimentConfig",
    "load_data",
    "build_model",
    "evaluate",
    "train",
    "run_experiment",
    "METHODS",
]

METHODS = ("dspike-adaptive", "dspike-fixed", "rect", "triangle")
DATASETS = ("mnist5k", "synthetic-nmnist")


@dataclass
class ExperimentConfig:
    dataset: str = "mnist5k"
    method: str = "dspike-adaptive"
    T: int = 4
    seed: int = 0
    epochs: int = 3
    lr: float = 2e-3
    batch_size: int = 64
    b0: float = 1.0
    db: float = 0.2
    eps: float = 0.1
    a: float = 1.0
    leak: float = 0.5
    vth: float = 0.5
    fdg_batch: int = 16
    fdg_chunk: int = 48
    n_train: int | None = None
    n_test: int | None = None
    tit_from: int | None = None
    device: str = "cuda" if torch.cuda.is_available() else "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")


# ---------------------------------------------------------------------- data
def _subset(n_total: int, n: int | None) -> np.ndarray:
    """A fixed random subset (seed 0) of ``n`` indices (the splits are stored class by class,
    so a prefix would hold one or two digits only)."""
    idx = np.arange(n_total)
    if n is None or n >= n_total:
        return idx
    return np.sort(np.random.RandomState(0).permutation(n_total)[:n])


@lru_cache(maxsize=2)
def _synthetic_events(split: str) -> tuple[list[np.ndarray], np.ndarray]:
    from ..data import synthetic_nmnist

    ds = synthetic_nmnist(split, seed=0)
    return list(ds.events), np.asarray(ds.labels)


def _frames(events: list[np.ndarray], T: int) -> np.ndarray:
    from ..events import bin_events

    return np.stack([bin_events(ev, (2, 34, 34), T, "time") for ev in events]).astype(np.float32)


def load_data(
    dataset: str, T: int, n_train: int | None = None, n_test: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` (``n_train``/``n_test``: fixed random subsets):
    MNIST-5k images ``[N, 1, 28, 28]`` or SYNTHETIC
    N-MNIST event frames ``[N, T, 2, 34, 34]`` (event counts, time binning)."""
    if dataset == "mnist5k":
        from ..data import load_mnist5k_split

        xtr, ytr = load_mnist5k_split("train")
        xte, yte = load_mnist5k_split("test")
        i, j = _subset(len(ytr), n_train), _subset(len(yte), n_test)
        xtr, ytr, xte, yte = xtr[i], ytr[i], xte[j], yte[j]
    elif dataset == "synthetic-nmnist":
        etr, ytr = _synthetic_events("train")
        ete, yte = _synthetic_events("test")
        i, j = _subset(len(ytr), n_train), _subset(len(yte), n_test)
        xtr, ytr = _frames([etr[k] for k in i], T), ytr[i]
        xte, yte = _frames([ete[k] for k in j], T), yte[j]
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    return (
        torch.from_numpy(np.ascontiguousarray(xtr)),
        torch.from_numpy(np.asarray(ytr, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(xte)),
        torch.from_numpy(np.asarray(yte, dtype=np.int64)),
    )


def build_model(cfg: ExperimentConfig, T: int | None = None) -> DspikeNet:
    surrogate = {
        "dspike-adaptive": "dspike",
        "dspike-fixed": "dspike",
        "rect": "rect",
        "triangle": "triangle",
    }[cfg.method]
    kw: dict[str, Any] = dict(
        T=T or cfg.T, surrogate=surrogate, b=cfg.b0, a=cfg.a, leak=cfg.leak, vth=cfg.vth
    )
    if cfg.dataset == "synthetic-nmnist":
        kw.update(in_channels=2, image_size=34, static_input=False)
    return create_model("dspike-mnist-cnn", **kw)  # type: ignore[return-value]


# ---------------------------------------------------------------------- loop
@torch.no_grad()
def evaluate(model: DspikeNet, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, len(y), batch_size):
        out = model(x[i : i + batch_size].to(dev))
        correct += int((out.argmax(1).cpu() == y[i : i + batch_size]).sum())
    return correct / max(1, len(y))


EpochHook = Callable[[DspikeNet, int, dict[str, Any]], None]


def train(
    model: DspikeNet,
    cfg: ExperimentConfig,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    epochs: int | None = None,
    on_epoch_start: EpochHook | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train ``model``; per epoch: ``on_epoch_start`` (e.g. the temperature search), one pass
    over the shuffled training set, evaluation. Returns the per-epoch history."""
    epochs = cfg.epochs if epochs is None else epochs
    xtr, ytr, xte, yte = data
    dev = torch.device(cfg.device)
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(ytr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(cfg.seed + 1000)
    history: list[dict[str, Any]] = []
    for ep in range(epochs):
        rec: dict[str, Any] = {"epoch": ep + 1}
        t0 = time.time()
        if on_epoch_start is not None:
            on_epoch_start(model, ep, rec)
        t1 = time.time()
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(ytr), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            xb, yb = xtr[idx].to(dev), ytr[idx].to(dev)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        rec.update(
            loss=total / n, acc=evaluate(model, xte, yte), train_s=time.time() - t1, hook_s=t1 - t0
        )
        if model.temperature is not None:
            rec["b"] = model.temperature
        rec["rates"] = model.firing_rates()
        history.append(rec)
        log(
            f"  epoch {ep + 1}/{epochs}: loss {rec['loss']:.4f} acc {rec['acc']:.4f}"
            + (f" b {rec['b']:.2f}" if "b" in rec else "")
            + f" ({rec['train_s']:.0f}s + {rec['hook_s']:.0f}s)"
        )
    return history


def search_hook(cfg: ExperimentConfig, data: tuple[Tensor, Tensor, Tensor, Tensor]) -> EpochHook:
    """Algorithm 1 at the start of every epoch, on one random training batch of
    ``cfg.fdg_batch`` samples."""
    xtr, ytr = data[0], data[1]
    gen = torch.Generator().manual_seed(cfg.seed + 2000)

    def hook(model: DspikeNet, ep: int, rec: dict[str, Any]) -> None:
        dev = next(model.parameters()).device
        idx = torch.randperm(len(ytr), generator=gen)[: cfg.fdg_batch]
        res = temperature_search(
            model, xtr[idx].to(dev), ytr[idx].to(dev), db=cfg.db, eps=cfg.eps, chunk=cfg.fdg_chunk
        )
        rec.update(b_candidates=res.candidates, cosines=[round(c, 4) for c in res.cosines])

    return hook


def _fit(
    cfg: ExperimentConfig, model: DspikeNet, data: Any, epochs: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    hook = search_hook(cfg, data) if cfg.method == "dspike-adaptive" else None
    return train(model, cfg, data, epochs, hook, log)


def run_experiment(
    cfg: ExperimentConfig,
    log: Callable[[str], None] = print,
    init_state: dict[str, Any] | None = None,
    save_to: str | Path | None = None,
    data: Any = None,
) -> dict[str, Any]:
    """Train one configuration and return its result row. With ``cfg.tit_from`` the model is
    initialised from the network trained at ``tit_from`` steps (``init_state``: its saved
    ``{"model": state_dict, "b": temperature}``; trained here first when absent)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    t0 = time.time()
    data = data if data is not None else load_data(cfg.dataset, cfg.T, cfg.n_train, cfg.n_test)
    row: dict[str, Any] = {
        "dataset": cfg.dataset,
        "method": cfg.method,
        "T": cfg.T,
        "seed": cfg.seed,
    }
    if cfg.tit_from is not None:
        if cfg.tit_from <= cfg.T:
            raise ValueError("TIT initialises a shorter latency: tit_from must exceed T")
        src = build_model(cfg, T=cfg.tit_from)
        if init_state is None:
            log(f"  TIT: training the source network at T={cfg.tit_from}")
            src_cfg = replace(cfg, T=cfg.tit_from, tit_from=None)
            src_data = (
                load_data(cfg.dataset, cfg.tit_from, cfg.n_train, cfg.n_test)
                if cfg.dataset != "mnist5k"
                else data
            )
            _fit(src_cfg, src, src_data, cfg.epochs, log)
        else:
            src.load_state_dict(init_state["model"])
            if init_state.get("b") is not None:
                src.temperature = float(init_state["b"])
        model = inherit(src, cfg.T)
        row["method"] = f"{cfg.method}+tit{cfg.tit_from}"
        row["tit_from"] = cfg.tit_from
        row["acc_inherited"] = evaluate(model.to(torch.device(cfg.device)), data[2], data[3])
    else:
        model = build_model(cfg)
    hist = _fit(cfg, model, data, cfg.epochs, log)
    row.update(acc=hist[-1]["acc"], epochs=cfg.epochs, acc_curve=[h["acc"] for h in hist])
    if cfg.method.startswith("dspike"):
        row["eps"] = cfg.eps
        row["b0"] = cfg.b0
        row["temperatures"] = [h.get("b") for h in hist]
        if cfg.method == "dspike-adaptive":
            row["cosines"] = [h.get("cosines") for h in hist]
    if cfg.method in ("rect", "triangle"):
        row["a"] = cfg.a
    row.update(
        n_train=len(data[1]),
        n_test=len(data[3]),
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        leak=cfg.leak,
        vth=cfg.vth,
        time_s=round(time.time() - t0, 1),
        rates=hist[-1]["rates"],
    )
    if save_to is not None:
        save_checkpoint(
            save_to, {"model": model.state_dict(), "b": model.temperature, "config": asdict(cfg)}
        )
    return row
