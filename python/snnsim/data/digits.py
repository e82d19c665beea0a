"""scikit-learn's 8x8 handwritten digits (1797 images) with a fixed, stratified split.

Source: ``sklearn.datasets.load_digits()``; pixel values 0..16. Images are returned as float32
in ``[0, 1]`` (value / 16) with shape ``[N, 1, 8, 8]``; labels as int64 ``[N]``.

The split (fixed, seed 0, train fraction 0.8 by default): one ``np.random.RandomState(seed)``
is shared by all classes; for each class ``c = 0, ..., 9`` in that order,
``idx = rng.permutation(np.where(y == c)[0])``; the first ``floor(train_fraction * n_c)``
entries of ``idx`` go to train, the rest to test; the per-class blocks are concatenated in
class order. With the defaults this gives 1433 train and 364 test images.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .errors import DataFormatError

N_CLASSES = 10
DEFAULT_TRAIN_FRACTION = 0.8
DEFAULT_SEED = 0

Split = Literal["train", "test"]


@lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits dataset needs scikit-learn (pip install 'snnsim[data]')"
        ) from exc
    bunch = load_digits()
    x = np.asarray(bunch.images)
    y = np.asarray(bunch.target)
    if x.ndim != 3 or x.shape[1:] != (8, 8) or y.shape != (x.shape[0],):
        raise DataFormatError(f"sklearn load_digits(): expected images [N, 8, 8], got {x.shape}")
    if x.min() < 0 or x.max() > 16:
        raise DataFormatError(
            f"sklearn load_digits(): pixel values outside 0..16 ({x.min()}..{x.max()})"
        )
    images = (x[:, None, :, :] / 16.0).astype(np.float32)
    labels = y.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits_all() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 samples in scikit-learn's order: images float32 ``[N, 1, 8, 8]`` in [0, 1],
    labels int64 ``[N]`` (fresh copies)."""
    images, labels = _load_raw()
    return images.copy(), labels.copy()


def digits_split_indices(
    labels: np.ndarray | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """The stratified train/test index arrays (int64) described in the module docstring."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"digits split: train_fraction must be in (0, 1), got {train_fraction}")
    y = _load_raw()[1] if labels is None else np.asarray(labels)
    rng = np.random.RandomState(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.where(y == c)[0])
        n_train = int(math.floor(train_fraction * idx.size))
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    return np.concatenate(train).astype(np.int64), np.concatenate(test).astype(np.int64)


def load_digits_split(
    split: Split,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 ``[n, 1, 8, 8]`` in [0, 1] and int64 labels ``[n]`` of one split."""
    if split not in ("train", "test"):
        raise ValueError(f"load_digits_split: split must be 'train' or 'test', got {split!r}")
    images, labels = _load_raw()
    train_idx, test_idx = digits_split_indices(labels, train_fraction, seed)
    idx = train_idx if split == "train" else test_idx
    return images[idx], labels[idx]


def digits_datasets(
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    seed: int = DEFAULT_SEED,
) -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` torch ``TensorDataset`` s of ``(image [1, 8, 8] float32, label int64)``."""
    out = []
    for split in ("train", "test"):
        x, y = load_digits_split(split, train_fraction, seed)
        out.append(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))
    return out[0], out[1]
