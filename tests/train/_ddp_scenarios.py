"""Training scenarios run once in one process (by the tests) and once under ``torchrun`` with
two gloo processes (this file as a script), to compare the two.

    torchrun --standalone --nproc-per-node 2 tests/train/_ddp_scenarios.py OUT NAME [NAME...]

writes ``OUT/NAME-rank<r>.pt`` per scenario and process: the final model state, the history
(timings stripped) and the Dspike temperature. A name ``resume:DIR:NAME`` resumes scenario
NAME from the checkpoint in ``DIR`` (written by a one-process run) and trains it to the end.

Everything runs in float64 so float rounding (1e-16 relative) cannot flip a spike and the
comparison can be tight.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from snnsim.models.dsr_nets import conv_bn_neuron, fc_bn_neuron
from snnsim.nn.layers import AvgPoolT, FlattenT
from snnsim.nn.net import DSRNet, neuron_config
from snnsim.train.configs import TrainConfig
from snnsim.train.trainer import Trainer


def images(n: int, shape: tuple[int, ...], classes: int, seed: int) -> TensorDataset:
    """``n`` noisy copies of ``classes`` random prototypes in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand((classes,) + shape, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = (0.7 * proto[y] + 0.3 * torch.rand((n,) + shape, generator=g)).clamp(0, 1)
    return TensorDataset(x, y)


Case = tuple[TrainConfig, tuple[Dataset, Dataset], nn.Module | None]
Scenario = Callable[[], Case]


def small_dsr_cnn(T: int) -> DSRNet:
    """conv4-BN-IF-pool-conv6-BN-IF-pool-FC-BN1d-IF on 1x12x12 images (the MNIST CNN's
    layers, narrower)."""
    cfg = neuron_config("if", T)
    body = [
        *conv_bn_neuron(1, 4, cfg),
        AvgPoolT(2),
        *conv_bn_neuron(4, 6, cfg),
        AvgPoolT(2),
        FlattenT(),
        *fc_bn_neuron(6 * 3 * 3, 4, cfg),
    ]
    return DSRNet(body, cfg, T)


def dsr_cnn() -> Case:
    """DSR CNN (conv-BN-IF-pool x2, FC-BN1d-IF), rate form with the time-chunked forward and
    the exact batch-norm gradient, trainable thresholds, random crops and flips."""
    torch.manual_seed(3)
    cfg = TrainConfig(
        name="ddp-dsr-cnn",
        model="dsr-mnist-cnn",
        dataset="synthetic",
        neuron="if",
        T=4,
        time_chunk=2,
        exact_bn_grad=True,
        epochs=2,
        batch_size=16,
        eval_batch_size=12,
        lr=0.05,
        crop_padding=2,
        flip=True,
        seed=3,
        num_threads=1,
        dtype="float64",
    )
    data = (images(32, (1, 12, 12), 4, 1), images(20, (1, 12, 12), 4, 2))
    return cfg, data, small_dsr_cnn(cfg.T)


def dsr_mlp_step() -> Case:
    """DSR MLP (FC-BN1d-LIF), per-step backward, SGD with warmup."""
    cfg = TrainConfig(
        name="ddp-dsr-mlp-step",
        model="dsr-mlp",
        dataset="synthetic",
        neuron="lif",
        T=3,
        mode="step",
        model_kwargs={"in_features": 144, "hidden": (24,), "num_classes": 4},
        epochs=2,
        batch_size=8,
        eval_batch_size=16,
        lr=0.05,
        warmup_epochs=0.5,
        seed=5,
        num_threads=1,
        dtype="float64",
    )
    return cfg, (images(24, (1, 12, 12), 4, 3), images(16, (1, 12, 12), 4, 4)), None


def ann_mlp() -> Case:
    """The ANN twin (ReLU, batch norm on plain tensors), Adam."""
    cfg = TrainConfig(
        name="ddp-ann-mlp",
        model="dsr-mlp",
        dataset="synthetic",
        neuron="relu",
        T=1,
        model_kwargs={"in_features": 144, "hidden": (24,), "num_classes": 4},
        epochs=2,
        batch_size=8,
        optimizer="adam",
        lr=1e-2,
        weight_decay=0.0,
        seed=6,
        num_threads=1,
        dtype="float64",
    )
    return cfg, (images(24, (1, 12, 12), 4, 5), images(16, (1, 12, 12), 4, 6)), None


def dspike_cnn() -> Case:
    """Dspike CNN (conv-tdBN-LIF-pool x2, FC) with the temperature search every epoch."""
    cfg = TrainConfig(
        name="ddp-dspike-cnn",
        model="dspike-mnist-cnn",
        dataset="synthetic",
        neuron="dspike",
        T=3,
        model_kwargs={"in_channels": 1, "image_size": 12, "channels": (4, 6), "num_classes": 4},
        epochs=3,
        batch_size=8,
        optimizer="adam",
        lr=5e-3,
        weight_decay=0.0,
        seed=7,
        num_threads=1,
        dtype="float64",
        temperature_search=True,
        fdg_batch=6,
        fdg_chunk=16,
        fdg_db=0.4,
    )
    return cfg, (images(24, (1, 12, 12), 4, 7), images(16, (1, 12, 12), 4, 8)), None


def dsr_cnn_rate() -> Case:
    """:func:`dsr_cnn` without time chunks: the rate form's batch norm over all steps at once
    (with the exact batch-norm gradient from the steps' deviations)."""
    cfg, data, model = dsr_cnn()
    model.time_chunk = None  # type: ignore[union-attr]  # a DSRNet
    return cfg.with_(name="ddp-dsr-cnn-rate", time_chunk=None, seed=4), data, model


def dsr_cnn_local_bn() -> Case:
    """:func:`dsr_cnn` with per-process batch-norm statistics (``sync_bn=False``): a control
    that must NOT equal the one-process run."""
    cfg, data, model = dsr_cnn()
    return cfg.with_(sync_bn=False), data, model


SCENARIOS: dict[str, Scenario] = {
    "dsr-cnn": dsr_cnn,
    "dsr-cnn-rate": dsr_cnn_rate,
    "dsr-cnn-local-bn": dsr_cnn_local_bn,
    "dsr-mlp-step": dsr_mlp_step,
    "ann-mlp": ann_mlp,
    "dspike-cnn": dspike_cnn,
}


def strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch records without timings and the process count (they differ between runs)."""
    return [{k: v for k, v in h.items() if "sec" not in k and k != "world_size"} for h in history]


def result(tr: Trainer) -> dict[str, Any]:
    return {
        "state": {k: v.detach().clone() for k, v in tr.model.state_dict().items()},
        "history": strip(tr.history),
        "temperature": getattr(tr.model, "temperature", None),
        "world_size": tr.ctx.world_size,
    }


def run(name: str, out_dir: str | Path | None = None, resume: bool = False) -> dict[str, Any]:
    """Train scenario ``name`` to the end (resuming from ``out_dir`` when asked)."""
    cfg, data, model = SCENARIOS[name]()
    tr = Trainer(cfg, out_dir, progress=False, model=model, datasets=data)
    if resume and not tr.resume():
        raise RuntimeError(f"no checkpoint in {out_dir}")
    tr.fit(log=None)
    return result(tr)


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    torch.set_num_threads(1)
    out = Path(argv[0])
    rank = int(os.environ.get("RANK", "0"))
    try:
        for spec in argv[1:]:
            if spec.startswith("resume:"):
                _, run_dir, name = spec.split(":", 2)
                res = run(name, run_dir, resume=True)
                tag = f"resume-{name}"
            else:
                res, tag = run(spec), spec
            torch.save(res, out / f"{tag}-rank{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
