"""Dspike experiments (``benches/train_dspike_mnist.py``): adaptive temperature (Algorithm 1),
fixed temperature, rectangular and triangular surrogates, and Time Inheritance Training (TIT),
on MNIST-5k and the SYNTHETIC N-MNIST-like event data.

Every run goes through the one trainer (:class:`snnsim.train.trainer.Trainer`: progress bars,
the temperature search with its own progress bar, checkpoints, distributed runs) with the
:class:`~snnsim.train.configs.TrainConfig` :func:`to_train_config` builds; the registry holds
the same runs by name (``dspike-mnist5k-cnn-adaptive-t4``...,
``python -m snnsim.train --list``).

    cfg = ExperimentConfig(dataset="mnist5k", method="dspike-adaptive", T=4, seed=0, epochs=3)
    row = run_experiment(cfg)        # {"method", "T", "seed", "acc", "epochs", ...}

Methods: ``dspike-adaptive`` (b0, search every epoch), ``dspike-fixed`` (b = b0 throughout),
``rect`` (Eq. 7, width ``a``), ``triangle`` (Eq. 8). ``tit_from = T_src``: start from the model
trained at ``T_src`` (``init_state`` or trained first) and fine-tune at ``T``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from ..models import create_model
from ..nn.dspike import DspikeNet
from .checkpoint import save_checkpoint
from .configs import TrainConfig, model_kwargs
from .dspike import inherit
from .trainer import Trainer

__all__ = [
    "ExperimentConfig",
    "to_train_config",
    "load_data",
    "build_model",
    "evaluate",
    "run_experiment",
    "METHODS",
]

METHODS = ("dspike-adaptive", "dspike-fixed", "rect", "triangle")
DATASETS = ("mnist5k", "synthetic-nmnist")
_SURROGATE = {
    "dspike-adaptive": "dspike",
    "dspike-fixed": "dspike",
    "rect": "rect",
    "triangle": "triangle",
}


@dataclass
class ExperimentConfig:
    """One Dspike experiment of the paper's table: dataset, surrogate (and whether the
    temperature is searched), time steps ``T``, epochs, optimiser settings and Time Inheritance."""

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
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")


def to_train_config(cfg: ExperimentConfig, T: int | None = None) -> TrainConfig:
    """The trainer's configuration of an experiment (at ``T`` steps, default ``cfg.T``):
    Adam without weight decay, cosine learning rate, no augmentation."""
    T = cfg.T if T is None else T
    mk: dict[str, Any] = dict(
        surrogate=_SURROGATE[cfg.method], b=cfg.b0, a=cfg.a, leak=cfg.leak, vth=cfg.vth
    )
    if cfg.dataset == "synthetic-nmnist":
        mk.update(in_channels=2, image_size=34, static_input=False)
    return TrainConfig(
        name=f"dspike-{cfg.dataset}-{cfg.method}-t{T}-s{cfg.seed}",
        model="dspike-mnist-cnn",
        dataset=cfg.dataset,
        neuron="dspike",
        T=T,
        model_kwargs=mk,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer="adam",
        lr=cfg.lr,
        weight_decay=0.0,
        schedule="cosine",
        seed=cfg.seed,
        device=cfg.device,
        num_threads=torch.get_num_threads(),
        n_train=cfg.n_train,
        n_test=cfg.n_test,
        temperature_search=cfg.method == "dspike-adaptive",
        fdg_batch=cfg.fdg_batch,
        fdg_eps=cfg.eps,
        fdg_db=cfg.db,
        fdg_chunk=cfg.fdg_chunk,
    )


# ---------------------------------------------------------------------- data
def load_data(
    dataset: str, T: int, n_train: int | None = None, n_test: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` (``n_train``/``n_test``: fixed random subsets):
    MNIST-5k images ``[N, 1, 28, 28]`` or SYNTHETIC N-MNIST event frames
    ``[N, T, 2, 34, 34]`` (event counts, time binning; the events come from the data
    cache after their first generation)."""
    from .trainer import load_datasets

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}")
    cfg = to_train_config(ExperimentConfig(dataset=dataset, T=T, n_train=n_train, n_test=n_test))
    tr, te = load_datasets(cfg)
    if not (isinstance(tr, TensorDataset) and isinstance(te, TensorDataset)):
        raise TypeError(f"{dataset}: expected in-memory tensor datasets")
    xtr, ytr = tr.tensors
    xte, yte = te.tensors
    return xtr, ytr.long(), xte, yte.long()


def build_model(cfg: ExperimentConfig, T: int | None = None) -> DspikeNet:
    """The experiment's DspikeNet (from the registry) at ``T`` steps (default ``cfg.T``)."""
    tcfg = to_train_config(cfg, T)
    return _dspike_net(create_model(tcfg.model, **model_kwargs(tcfg)))


def _dspike_net(model: torch.nn.Module) -> DspikeNet:
    if not isinstance(model, DspikeNet):
        raise TypeError(f"expected a Dspike network (DspikeNet), got {type(model).__name__}")
    return model


@torch.no_grad()
def evaluate(model: DspikeNet, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    p = next(model.parameters())
    correct = 0
    for i in range(0, len(y), batch_size):
        out = model(x[i : i + batch_size].to(p.device, p.dtype))
        correct += int((out.argmax(1).cpu() == y[i : i + batch_size]).sum())
    return correct / max(1, len(y))


def _fit(
    cfg: ExperimentConfig,
    T: int,
    model: DspikeNet | None,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    log: Callable[[str], None],
    progress: bool,
) -> Trainer:
    xtr, ytr, xte, yte = data
    tr = Trainer(
        to_train_config(cfg, T),
        None,
        progress=progress,
        model=model,
        datasets=(TensorDataset(xtr, ytr), TensorDataset(xte, yte)),
    )
    tr.fit(log=log)
    return tr


def run_experiment(
    cfg: ExperimentConfig,
    log: Callable[[str], None] = print,
    init_state: dict[str, Any] | None = None,
    save_to: str | Path | None = None,
    data: Any = None,
    progress: bool = False,
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
    model: DspikeNet | None = None
    if cfg.tit_from is not None:
        if cfg.tit_from <= cfg.T:
            raise ValueError("TIT initialises a shorter latency: tit_from must exceed T")
        if init_state is None:
            log(f"  TIT: training the source network at T={cfg.tit_from}")
            src_data = (
                load_data(cfg.dataset, cfg.tit_from, cfg.n_train, cfg.n_test)
                if cfg.dataset != "mnist5k"
                else data
            )
            src = _fit(replace(cfg, tit_from=None), cfg.tit_from, None, src_data, log, progress)
            src_model = _dspike_net(src.model)
        else:
            src_model = build_model(cfg, T=cfg.tit_from)
            src_model.load_state_dict(init_state["model"])
            if init_state.get("b") is not None:
                src_model.temperature = float(init_state["b"])
        model = inherit(src_model, cfg.T)
        row["method"] = f"{cfg.method}+tit{cfg.tit_from}"
        row["tit_from"] = cfg.tit_from
        row["acc_inherited"] = evaluate(model, data[2], data[3])
    tr = _fit(cfg, cfg.T, model, data, log, progress)
    hist = tr.history
    row.update(acc=hist[-1]["test_acc"], epochs=cfg.epochs, acc_curve=[h["test_acc"] for h in hist])
    if cfg.method.startswith("dspike"):
        row["eps"] = cfg.eps
        row["b0"] = cfg.b0
        row["temperatures"] = [h.get("temperature") for h in hist]
        if cfg.method == "dspike-adaptive":
            row["cosines"] = [h.get("temperature_cosines") for h in hist]
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
        rates=hist[-1]["firing_rates"],
    )
    if save_to is not None:
        trained = _dspike_net(tr.model)
        save_checkpoint(
            save_to,
            {"model": trained.state_dict(), "b": trained.temperature, "config": asdict(cfg)},
        )
    return row
