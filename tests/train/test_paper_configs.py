"""The paper rows' recipe against the public DSR code (README commands and the argparse
defaults of cifar/main_single_gpu.py in github.com/qymeng94/DSR)."""

from __future__ import annotations

import pytest

from snnsim.nn.net import neuron_config
from snnsim.train.configs import get_config

CIFAR10_NORM = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_NORM = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))

# README: IF adds --Vth 6 --alpha 0.5 --Vth_bound 0.01; LIF keeps the code defaults.
PUBLIC_IF = dict(theta0=6.0, alpha=0.5, bound=0.01)
PUBLIC_LIF = dict(theta0=0.3, alpha=0.3, bound=5e-4, dt=0.05, tau=1.0)

CIFAR_ROWS = [
    ("dsr-cifar10-preresnet18-if-t20", CIFAR10_NORM),
    ("dsr-cifar10-preresnet18-lif-t20", CIFAR10_NORM),
    ("dsr-cifar100-preresnet18-if-t20", CIFAR100_NORM),
    ("dsr-cifar100-preresnet18-lif-t20", CIFAR100_NORM),
    ("dsr-cifar10-preresnet56-lif-t20", CIFAR10_NORM),
    ("dsr-cifar10-cifarnet-if-t20", CIFAR10_NORM),
]
DVS_ROWS = [
    "dsr-dvscifar10-vgg11-if-t20",
    "dsr-dvscifar10-vgg11-lif-t20",
    "dsr-dvscifar10-vgg11-lif-t10",
]


def _iters(n_train: int, batch: int) -> int:
    return -(-n_train // batch)


@pytest.mark.parametrize("name,norm", CIFAR_ROWS)
def test_cifar_rows_follow_public_code(name: str, norm: tuple) -> None:
    c = get_config(name)
    assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.weight_decay) == (
        "sgd",
        0.05,
        0.9,
        False,
        5e-4,
    )
    assert (c.epochs, c.batch_size, c.schedule) == (200, 128, "cosine")
    assert (c.crop_padding, c.flip) == (4, True)
    assert c.normalize == norm
    # 400 warmup iterations at 391 iterations per epoch (50 000 images, batch 128, last batch kept)
    assert round(c.warmup_epochs * _iters(50_000, c.batch_size)) == 400
    assert c.requires_gpu
    assert "public DSR code" in c.note and "verify" not in c.note


@pytest.mark.parametrize("name", DVS_ROWS)
def test_dvs_rows_follow_public_code(name: str) -> None:
    c = get_config(name)
    assert (c.optimizer, c.lr, c.momentum, c.nesterov, c.weight_decay) == (
        "sgd",
        0.05,
        0.9,
        False,
        5e-4,
    )
    assert (c.epochs, c.batch_size, c.schedule) == (300, 128, "cosine")
    assert (c.crop_padding, c.flip, c.normalize) == (4, False, None)
    assert c.model_kwargs.get("dropout") == 0.1
    # 9000 training recordings -> 71 iterations per epoch
    assert round(c.warmup_epochs * _iters(9_000, c.batch_size)) == 400
    assert "public DSR code" in c.note


@pytest.mark.parametrize("name", [n for n, _ in CIFAR_ROWS] + DVS_ROWS[:2])
def test_t20_neuron_values_match_readme_commands(name: str) -> None:
    c = get_config(name)
    assert c.T == 20
    overrides = {k: v for k, v in c.model_kwargs.items() if k not in ("num_classes", "dropout")}
    cfg = neuron_config(c.neuron, c.T, **overrides)
    expected = PUBLIC_IF if c.neuron == "if" else PUBLIC_LIF
    for key, value in expected.items():
        assert getattr(cfg, key) == pytest.approx(value), (name, key)
    assert cfg.train_theta
    assert cfg.grad_scale == pytest.approx(1.0 if c.neuron == "if" else 0.05)
