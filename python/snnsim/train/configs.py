"""Training configurations by name: one registry for DSR, its ANN twins and Dspike.

``python -m snnsim.train --list`` shows every configuration with its dataset, ``T``, epochs
and parameter count; ``--config NAME`` trains one (or ``--config FILE.json``: a
:class:`TrainConfig` written as JSON).

Paper rows (``dsr-<dataset>-<model>-<neuron>-t<T>``) follow the table rows of Meng et al.
(CVPR 2022) and need the dataset on disk (``data_root`` or ``$SNNSIM_DATA``) and, to finish in
reasonable time, a GPU (``requires_gpu``; ``--force`` runs them anyway). Their recipe is the
public DSR code's (README command per dataset and neuron, argparse defaults of
``cifar/main_single_gpu.py``): SGD with momentum 0.9, batch 128, lr 0.05, weight decay 5e-4,
400-iteration warmup then cosine, 200 (CIFAR) / 300 (DVS) epochs, random crop (padding 4) with
flip on CIFAR and without on DVS. Each row's ``note`` names its source and what of the public
recipe this trainer does not reproduce. Neuron hyperparameters are the paper's defaults per
``T`` (:func:`dsr_defaults`).

CPU rows (``dsr-mnist5k-*``, ``ann-mnist5k-*``) train on the 4000/1000 MNIST-5k split in
minutes: SGD 0.9, wd 5e-4, batch 64, 15 epochs, cosine, random crop with padding 2, lr 0.05
at T = 5 (0.1 at T >= 10).

Dspike rows (``dspike-<dataset>-cnn-<method>-t<T>``, Li et al., NeurIPS 2021) are the CPU
experiments of ``benches/train_dspike_mnist.py``: the small Dspike CNN, Adam lr 2e-3, batch
64, 3 epochs, cosine, no weight decay, no augmentation; ``method`` is ``adaptive`` (the
temperature search of Algorithm 1 at the start of every epoch), ``fixed`` (b = 1 throughout),
``rect`` or ``triangle`` (those surrogates, width 1). Datasets: ``mnist5k`` and
``snmnist`` (SYNTHETIC N-MNIST-like events rendered from MNIST-5k, 2000/500 samples, binned
into ``T`` frames; not N-MNIST).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "TrainConfig",
    "CONFIGS",
    "get_config",
    "list_configs",
    "load_config_file",
    "model_kwargs",
    "describe_configs",
]

DATASETS = (
    "mnist5k",
    "digits",
    "cifar10",
    "cifar100",
    "dvs-cifar10",
    "synthetic",
    "synthetic-nmnist",
)
_CHOICES: dict[str, tuple[Any, ...]] = {
    "dataset": DATASETS,
    "mode": ("rate", "step"),
    "optimizer": ("sgd", "adam"),
    "schedule": ("cosine", "constant"),
    "dtype": ("float32", "float64"),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs. ``model_kwargs`` go to
    :func:`snnsim.models.create_model` together with ``neuron``, ``T`` and ``mode`` (each only
    where the model's factory takes it).

    ``batch_size`` is the combined batch of one optimiser step: a distributed run of ``W``
    processes gives each ``batch_size / W`` rows (:mod:`snnsim.train.distributed`).
    ``eval_batch_size`` is per process. ``sync_bn``: in a distributed run, batch norms take
    their statistics over every process (the run then equals a one-process run on the
    combined batch up to float rounding). ``dtype``: the parameters' and inputs' float type
    (``float64`` for exact comparisons; the native DSR kernel runs in float32 only).
    ``n_train``/``n_test``: a fixed random subset (seed 0) of that many samples.
    ``temperature_search`` (Dspike): Algorithm 1 on ``fdg_batch`` random training samples at
    the start of every epoch (step ``fdg_db``, finite-difference step ``fdg_eps``,
    ``fdg_chunk`` perturbed copies per pass). ``init_from``: a checkpoint whose model weights
    (and Dspike temperature) initialise the network, e.g. Time Inheritance Training from a
    network trained at a larger ``T``.
    """

    name: str
    model: str
    dataset: str  # one of DATASETS
    neuron: str = "if"  # if | lif | relu (ANN baseline) | dspike
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
    # DSR rate form: True forces the batch norms' temporal-deviation weight-gradient term on
    # (DSR networks have it on by default; False keeps the network's setting)
    exact_bn_grad: bool = False
    data_root: str | None = None
    requires_gpu: bool = False
    note: str = ""
    sync_bn: bool = True
    dtype: str = "float32"
    n_train: int | None = None
    n_test: int | None = None
    temperature_search: bool = False
    fdg_batch: int = 16
    fdg_eps: float = 0.1
    fdg_db: float = 0.2
    fdg_chunk: int = 48
    init_from: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TrainConfig {self.name!r}: {name} must be one of {allowed}, "
                    f"got {getattr(self, name)!r}"
                )
        positive = ("T", "batch_size", "eval_batch_size", "eval_every", "fdg_batch", "fdg_chunk")
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(
                    f"TrainConfig {self.name!r}: {name} must be a positive int, got {v!r}"
                )
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(
                f"TrainConfig {self.name!r}: epochs must be an int >= 0, got {self.epochs!r}"
            )
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(
                    f"TrainConfig {self.name!r}: {name} must be a positive int or None, got {v!r}"
                )
        for name in ("lr", "fdg_eps", "fdg_db"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(
                    f"TrainConfig {self.name!r}: {name} must be > 0, got {getattr(self, name)!r}"
                )
        if self.weight_decay < 0 or self.warmup_epochs < 0 or self.crop_padding < 0:
            raise ValueError(
                f"TrainConfig {self.name!r}: weight_decay, warmup_epochs and crop_padding must "
                f"be >= 0, got {self.weight_decay!r}, {self.warmup_epochs!r}, "
                f"{self.crop_padding!r}"
            )

    @property
    def family(self) -> str:
        """``"dspike"``, ``"ann"`` (ReLU twin) or ``"dsr"``."""
        if self.model.startswith("dspike-"):
            return "dspike"
        return "ann" if self.neuron == "relu" else "dsr"

    def with_(self, **kw: Any) -> "TrainConfig":
        """A copy with the fields in ``kw`` changed (validated)."""
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a JSON-able dict (as checkpoints store it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The inverse of :meth:`to_dict` (also for JSON, where tuples became lists); unknown
        keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        kw = dict(d)
        if kw.get("normalize") is not None:
            kw["normalize"] = tuple(tuple(float(v) for v in part) for part in kw["normalize"])
        return cls(**kw)


CONFIGS: dict[str, TrainConfig] = {}


def _add(cfg: TrainConfig) -> None:
    if cfg.name in CONFIGS:
        raise ValueError(f"duplicate config {cfg.name!r}")
    CONFIGS[cfg.name] = cfg


def get_config(name: str) -> TrainConfig:
    """The registered configuration ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; known: {sorted(CONFIGS)}") from None


def list_configs() -> list[str]:
    """Names of the registered configurations, sorted."""
    return sorted(CONFIGS)


def load_config_file(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from a JSON file of its fields (``name``, ``model`` and
    ``dataset`` required; the others default)."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"config file {p}: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config file {p}: expected a JSON object, got {type(d).__name__}")
    try:
        return TrainConfig.from_dict(d)
    except TypeError as exc:  # a required field missing
        raise ValueError(f"config file {p}: {exc}") from None


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The keyword arguments :func:`snnsim.models.create_model` gets for ``cfg``: its
    ``model_kwargs`` plus ``neuron``, ``T``, ``mode`` and ``channels_last`` where the model's
    factory takes them."""
    from ..models.registry import accepts

    kw = dict(cfg.model_kwargs)
    for key, value in (("neuron", cfg.neuron), ("T", cfg.T), ("mode", cfg.mode)):
        if accepts(cfg.model, key):
            kw.setdefault(key, value)
    if cfg.channels_last:
        if not accepts(cfg.model, "channels_last"):
            raise ValueError(
                f"TrainConfig {cfg.name!r}: channels_last=True but model {cfg.model!r} has no "
                "channels_last option"
            )
        kw.setdefault("channels_last", True)
    return kw


_PARAM_COUNTS: dict[str, int] = {}  # parameter counts by model and arguments (T aside)


def describe_configs(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per configuration for ``--list``: name, family, model, dataset, T, epochs,
    parameter count (the model built on torch's meta device), GPU needed."""
    from ..models.registry import parameter_count

    counts = _PARAM_COUNTS
    rows = []
    for name in names if names is not None else list_configs():
        cfg = get_config(name)
        kw = model_kwargs(cfg)
        key = json.dumps(
            [cfg.model, {k: v for k, v in kw.items() if k not in ("T", "mode")}],
            sort_keys=True,
            default=str,
        )
        if key not in counts:
            counts[key] = parameter_count(cfg.model, **kw)
        rows.append(
            {
                "name": cfg.name,
                "family": cfg.family,
                "model": cfg.model,
                "dataset": cfg.dataset,
                "T": cfg.T,
                "epochs": cfg.epochs,
                "params": counts[key],
                "gpu": cfg.requires_gpu,
            }
        )
    return rows


# ---------------------------------------------------------------------- CPU: MNIST-5k
def _mnist_lr(T: int) -> float:
    return 0.05 if T <= 5 else 0.1


for _n in ("if", "lif"):
    for _T in (5, 10, 20):
        _add(
            TrainConfig(
                name=f"dsr-mnist5k-cnn-{_n}-t{_T}",
                model="dsr-mnist-cnn",
                dataset="mnist5k",
                neuron=_n,
                T=_T,
                lr=_mnist_lr(_T),
                crop_padding=2,
                note="CPU benchmark recipe (benches/train_dsr_mnist.py)",
            )
        )
    _add(
        TrainConfig(
            name=f"dsr-mnist5k-mlp-{_n}-t5",
            model="dsr-mlp",
            dataset="mnist5k",
            neuron=_n,
            T=5,
            lr=0.05,
            crop_padding=2,
            model_kwargs={"hidden": (800,)},
        )
    )
for _lr, _tag in ((0.05, "lr005"), (0.1, "lr01")):
    _add(
        TrainConfig(
            name=f"ann-mnist5k-cnn-{_tag}",
            model="dsr-mnist-cnn",
            dataset="mnist5k",
            neuron="relu",
            T=1,
            lr=_lr,
            crop_padding=2,
            note="the same CNN with ReLU in place of the neurons, same recipe",
        )
    )
_add(
    TrainConfig(
        name="dsr-digits-mlp-if-t5",
        model="dsr-mlp",
        dataset="digits",
        neuron="if",
        T=5,
        lr=0.05,
        epochs=10,
        batch_size=32,
        model_kwargs={"in_features": 64, "hidden": (128,)},
        note="seconds-long smoke run",
    )
)

# ---------------------------------------------------------------------- paper rows (GPU)
# Source: the public DSR code (github.com/qymeng94/DSR): the README's command per dataset and
# neuron, with the argparse defaults of cifar/main_single_gpu.py for everything not on the
# command line: SGD (momentum 0.9, no Nesterov) over all parameters, thresholds included, lr
# 0.05, weight decay 5e-4, batch 128, 200 epochs (DVS command: lr 0.05, 300 epochs), a linear
# warmup over the first 400 iterations, cosine decay; CIFAR: random crop (padding 4) + flip and
# the code's normalisation constants; DVS: no flip, no normalisation. IF commands add
# ``--Vth 6 --alpha 0.5 --Vth_bound 0.01``; LIF commands use the code's neuron defaults (Vth 0.3,
# alpha 0.3, Vth_bound 5e-4, delta_t 0.05, tau 1). Both equal ``dsr_defaults`` at T = 20 (IF at
# every T), so ``model_kwargs`` carry no neuron overrides.
_CIFAR_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))  # as the public code (cifar10)
_CIFAR100_NORM = (
    (0.5071, 0.4867, 0.4408),
    (0.2675, 0.2565, 0.2761),
)  # as the public code (cifar100)
_WARMUP_ITERS = 400  # the public code's --warmup, counted in iterations
_BATCH = 128


def _warmup_epochs(n_train: int) -> float:
    """The public code's 400-iteration warmup in epochs (last partial batch kept, as its
    loaders)."""
    return _WARMUP_ITERS / -(-n_train // _BATCH)


_PAPER_CIFAR: dict[str, Any] = dict(
    epochs=200,
    batch_size=_BATCH,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    nesterov=False,
    weight_decay=5e-4,
    warmup_epochs=_warmup_epochs(50_000),
    schedule="cosine",
    crop_padding=4,
    flip=True,
    requires_gpu=True,
)
_PAPER_DVS: dict[str, Any] = dict(
    epochs=300,
    batch_size=_BATCH,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    nesterov=False,
    weight_decay=5e-4,
    warmup_epochs=_warmup_epochs(9_000),
    schedule="cosine",
    crop_padding=4,
    flip=False,
    normalize=None,
    requires_gpu=True,
)
_SCHED_NOTE = (
    "not expressible here: the public code sets the cosine lr once per epoch, "
    "0.5*lr*(1+cos(pi*e/epochs)) for epoch e over all epochs (warmup included, so the last epoch "
    "keeps a small nonzero lr), and its warmup ramps to the current epoch's lr; here the lr is set "
    "per iteration, cosine over the post-warmup iterations down to 0"
)


def _paper_note(src: str, T: int, neuron: str, T_public: int = 20) -> str:
    parts = [f"public DSR code: {src}"]
    if T != T_public:
        parts.append(
            f"the README commands run at the code's default T = {T_public}; this row is that "
            f"recipe at T = {T}"
        )
        if neuron == "lif":
            parts.append(
                f"LIF neuron values at T = {T} come from dsr_defaults (the paper), the public "
                "code has no per-T setting"
            )
    parts.append(_SCHED_NOTE)
    return "; ".join(parts)


for _ds, _classes, _norm in (("cifar10", 10, _CIFAR_NORM), ("cifar100", 100, _CIFAR100_NORM)):
    for _n in ("if", "lif"):
        for _T in (20, 10, 5):
            _add(
                TrainConfig(
                    name=f"dsr-{_ds}-preresnet18-{_n}-t{_T}",
                    model="dsr-preresnet18",
                    dataset=_ds,
                    neuron=_n,
                    T=_T,
                    model_kwargs={"num_classes": _classes},
                    normalize=_norm,
                    **_PAPER_CIFAR,
                    note=_paper_note(
                        f"README command for {_ds} preresnet.resnet18_{_n} with the "
                        "cifar/main_single_gpu.py defaults",
                        _T,
                        _n,
                    ),
                )
            )
        _add(
            TrainConfig(
                name=f"dsr-{_ds}-cifarnet-{_n}-t20",
                model="dsr-cifarnet",
                dataset=_ds,
                neuron=_n,
                T=20,
                model_kwargs={"num_classes": _classes},
                normalize=_norm,
                **_PAPER_CIFAR,
                note=_paper_note(
                    f"no CIFARNet in the public code; the README {_ds} recipe for {_n.upper()} "
                    "(PreAct-ResNet-18) is carried over unchanged",
                    20,
                    _n,
                ),
            )
        )

for _depth in (20, 32, 44, 56, 110):
    for _n in ("if", "lif"):
        _add(
            TrainConfig(
                name=f"dsr-cifar10-preresnet{_depth}-{_n}-t20",
                model=f"dsr-preresnet{_depth}",
                dataset="cifar10",
                neuron=_n,
                T=20,
                normalize=_CIFAR_NORM,
                **_PAPER_CIFAR,
                note=_paper_note(
                    f"no PreAct-ResNet-{_depth} in the public code (supplement Table S1); the "
                    f"README cifar10 recipe for {_n.upper()} (PreAct-ResNet-18) is carried over "
                    "unchanged",
                    20,
                    _n,
                ),
            )
        )

_DVS_DATA_NOTE = (
    "public code's data: T equal-event-count frames (frames = T), raw counts without "
    "normalisation, resized 128 -> 48, random crop 48 with padding 4 (one offset for all frames), "
    "no flip, train = files 0..899 of each class by numeric file index, test = 900..999; the "
    "loader here differs in two things TrainConfig cannot set: it resizes by area averaging (the "
    "public code: torchvision Resize, bilinear) and it takes the first 90% of each class in "
    "sorted name order (lexicographic, not numeric)"
)
for _n in ("if", "lif"):
    for _T in (20, 10):
        _add(
            TrainConfig(
                name=f"dsr-dvscifar10-vgg11-{_n}-t{_T}",
                model="dsr-vgg11",
                dataset="dvs-cifar10",
                neuron=_n,
                T=_T,
                model_kwargs={"dropout": 0.1},
                **_PAPER_DVS,
                note=_paper_note(
                    f"README command for CIFAR10DVS vgg.vgg11_{_n} (--lr 0.05 --epochs 300) with "
                    "the cifar/main_single_gpu.py defaults",
                    _T,
                    _n,
                )
                + "; "
                + _DVS_DATA_NOTE,
            )
        )

# ---------------------------------------------------------------------- Dspike (CPU)
# The defaults of snnsim.train.dspike_experiment.ExperimentConfig (benches/train_dspike_mnist.py).
_DSPIKE_METHODS = {
    "adaptive": dict(surrogate="dspike", search=True),
    "fixed": dict(surrogate="dspike", search=False),
    "rect": dict(surrogate="rect", search=False),
    "triangle": dict(surrogate="triangle", search=False),
}
_DSPIKE_DATA: dict[str, dict[str, Any]] = {
    "mnist5k": dict(dataset="mnist5k", model_kwargs={}),
    "snmnist": dict(
        dataset="synthetic-nmnist",
        n_train=2000,
        n_test=500,
        model_kwargs={"in_channels": 2, "image_size": 34, "static_input": False},
        note="SYNTHETIC N-MNIST-like events (not N-MNIST), binned into T frames",
    ),
}
for _tag, _data in _DSPIKE_DATA.items():
    for _method, _m in _DSPIKE_METHODS.items():
        for _T in (6, 4, 2):
            _kw = dict(_data)
            _mk = dict(_kw.pop("model_kwargs"))
            _mk.update(surrogate=_m["surrogate"], b=1.0, a=1.0, leak=0.5, vth=0.5)
            _add(
                TrainConfig(
                    name=f"dspike-{_tag}-cnn-{_method}-t{_T}",
                    model="dspike-mnist-cnn",
                    neuron="dspike",
                    T=_T,
                    model_kwargs=_mk,
                    epochs=3,
                    batch_size=64,
                    optimizer="adam",
                    lr=2e-3,
                    weight_decay=0.0,
                    schedule="cosine",
                    temperature_search=bool(_m["search"]),
                    **_kw,
                )
            )
