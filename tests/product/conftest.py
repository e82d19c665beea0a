"""Fixtures of the product tests: a real training run (the digits MLP config, one epoch, seconds
on a CPU) written by the trainer, and its exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import snnsim
from snnsim.train.configs import get_config
from snnsim.train.trainer import Trainer

CONFIG = "dsr-digits-mlp-if-t5"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training run directory (checkpoint.pt, metrics.json) of the digits DSR MLP (T = 5)."""
    out = tmp_path_factory.mktemp("run") / CONFIG
    threads = torch.get_num_threads()
    try:
        cfg = get_config(CONFIG).with_(epochs=2, num_threads=1, device="cpu")
        Trainer(cfg, out, progress=False).fit(log=None)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def int8_file(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "digits-int8.snn.safetensors"
    snnsim.export(run_dir, path, mode="int8")
    return path


@pytest.fixture(scope="session")
def float_file(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "digits-float32.snn.safetensors"
    snnsim.export(run_dir, path, mode="float32")
    return path
