"""Training configurations by name.

Paper rows (``dsr-<dataset>-<model>-<neuron>-t<T>``) follow the table rows of Meng et al.
(CVPR 2022) and need the dataset on disk (``data_root`` or ``$SNNSIM_DATA``) and, to finish in
reasonable time, a GPU (``requires_gpu``; ``--force`` runs them anyway). Their recipe is the one
the paper and its supplement describe as far as this file's author could establish it: SGD with
momentum 0.9, batch 128, cosine schedule, weight decay (5e-4 CIFAR, 1e-4 DVS), lr 0.1, 200
(CIFAR) / 300 (DVS) epochs, random crop + flip; check it against the supplement before quoting
a reproduction. Neuron hyperparameters are the paper's defaults per ``T`` (:func:`dsr_defaults`).

CPU rows (``dsr-mnist5k-*``, ``ann-mnist5k-*``) train on the 4000/1000 MNIST-5k split in
minutes: SGD 0.9, wd 5e-4, batch 64, 15 epochs, cosine, random crop with padding 2, lr 0.05
at T = 5 (0.1 at T >= 10).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["TrainConfig", "CONFIGS", "get_config", "list_configs"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. ``model_kwargs`` go to
    :func:`snnsim.models.create_model` together with ``neuron``, ``T`` and ``mode``."""

    name: str
    model: str
    dataset: str  # mnist5k | digits | cifar10 | cifar100 | dvs-cifar10 | synthetic
    neuron: str = "if"  # if | lif | relu (ANN baseline)
    T: int = 5
    mode: str = "rate"  # rate | step
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 64
    eval_batch_size: int = 500
    eval_every: int = 1  # evaluate every k epochs (and after the last)
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    crop_padding: int = 0
    flip: bool = False
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    seed: int = 0
    device: str = "auto"
    num_threads: int = 2
    channels_last: bool = False
    time_chunk: int | None = None  # DSR rate form: steps per chunk (peak memory flat in T)
    data_root: str | None = None
    requires_gpu: bool = False
    note: str = ""

    def with_(self, **kw: Any) -> "TrainConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIGS: dict[str, TrainConfig] = {}


def _add(cfg: TrainConfig) -> None:
    if cfg.name in CONFIGS:
        raise ValueError(f"duplicate config {cfg.name!r}")
    CONFIGS[cfg.name] = cfg


def get_config(name: str) -> TrainConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; known: {sorted(CONFIGS)}") from None


def list_configs() -> list[str]:
    return sorted(CONFIGS)


# ---------------------------------------------------------------------- CPU: MNIST-5k
def _mnist_lr(T: int) -> float:
    return 0.05 if T <= 5 else 0.1


for _n in ("if", "lif"):
    for _T in (5, 10, 20):
        _add(TrainConfig(
            name=f"dsr-mnist5k-cnn-{_n}-t{_T}", model="dsr-mnist-cnn", dataset="mnist5k", neuron=_n, T=_T,
            lr=_mnist_lr(_T), crop_padding=2, note="CPU benchmark recipe (benches/train_dsr_mnist.py)",
        ))
    _add(TrainConfig(
        name=f"dsr-mnist5k-mlp-{_n}-t5", model="dsr-mlp", dataset="mnist5k", neuron=_n, T=5, lr=0.05,
        crop_padding=2, model_kwargs={"hidden": (800,)},
    ))
for _lr, _tag in ((0.05, "lr005"), (0.1, "lr01")):
    _add(TrainConfig(
        name=f"ann-mnist5k-cnn-{_tag}", model="dsr-mnist-cnn", dataset="mnist5k", neuron="relu", T=1, lr=_lr,
        crop_padding=2, note="the same CNN with ReLU in place of the neurons, same recipe",
    ))
_add(TrainConfig(
    name="dsr-digits-mlp-if-t5", model="dsr-mlp", dataset="digits", neuron="if", T=5, lr=0.05, epochs=10,
    batch_size=32, model_kwargs={"in_features": 64, "hidden": (128,)}, note="seconds-long smoke run",
))

# ---------------------------------------------------------------------- paper rows (GPU)
_CIFAR_NORM = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_NORM = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_PAPER = "recipe per the DSR paper/supplement as recalled (SGD 0.9, lr 0.1, cosine); verify before quoting"

for _ds, _classes, _norm in (("cifar10", 10, _CIFAR_NORM), ("cifar100", 100, _CIFAR100_NORM)):
    for _n in ("if", "lif"):
        for _T in (20, 10, 5):
            _add(TrainConfig(
                name=f"dsr-{_ds}-preresnet18-{_n}-t{_T}", model="dsr-preresnet18", dataset=_ds, neuron=_n, T=_T,
                model_kwargs={"num_classes": _classes}, epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4,
                crop_padding=4, flip=True, normalize=_norm, requires_gpu=True, note=_PAPER,
            ))
        _add(TrainConfig(
            name=f"dsr-{_ds}-cifarnet-{_n}-t20", model="dsr-cifarnet", dataset=_ds, neuron=_n, T=20,
            model_kwargs={"num_classes": _classes}, epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4,
            crop_padding=4, flip=True, normalize=_norm, requires_gpu=True, note=_PAPER,
        ))

for _depth in (20, 32, 44, 56, 110):
    for _n in ("if", "lif"):
        _add(TrainConfig(
            name=f"dsr-cifar10-preresnet{_depth}-{_n}-t20", model=f"dsr-preresnet{_depth}", dataset="cifar10",
            neuron=_n, T=20, epochs=200, batch_size=128, lr=0.1, weight_decay=5e-4, crop_padding=4, flip=True,
            normalize=_CIFAR_NORM, requires_gpu=True, note=_PAPER + " (supplement Table S1)",
        ))

for _n in ("if", "lif"):
    for _T in (20, 10):
        _add(TrainConfig(
            name=f"dsr-dvscifar10-vgg11-{_n}-t{_T}", model="dsr-vgg11", dataset="dvs-cifar10", neuron=_n, T=_T,
            model_kwargs={"dropout": 0.1}, epochs=300, batch_size=128, lr=0.1, weight_decay=1e-4,
            crop_padding=4, flip=True, requires_gpu=True, note=_PAPER + "; frames: 48x48, equal event counts",
        ))
