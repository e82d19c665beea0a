"""CIFAR-10 and CIFAR-100 from local directories in the official "python version" format.

Expected files (the extracted archives ``cifar-10-batches-py/`` and ``cifar-100-python/``;
``root`` may be that directory or its parent):

* CIFAR-10: ``data_batch_1`` .. ``data_batch_5`` (train, in that order), ``test_batch``,
  ``batches.meta`` (``b'label_names'``, 10 names).
* CIFAR-100: ``train``, ``test`` (``b'fine_labels'`` in 0..99 and ``b'coarse_labels'`` in
  0..19), ``meta`` (``b'fine_label_names'``, ``b'coarse_label_names'``).

Each file is a pickled dict with bytes keys. ``b'data'`` is a uint8 array ``[N, 3072]``: per
row the 1024 red, then 1024 green, then 1024 blue values of a 32x32 image in row-major order,
so ``data.reshape(N, 3, 32, 32)`` gives channels-first images. Labels are lists of ints.

Images are returned as uint8 ``[N, 3, 32, 32]`` (values 0..255; :func:`cifar_to_float32` maps
them to [0, 1]) and labels as int64 ``[N]``.

The files are read with a restricted unpickler that only admits numpy arrays, dtypes and the
codec helper that protocol-2 pickles use for bytes; anything else (a tampered file) is refused
with :class:`DataFormatError` instead of being executed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .errors import DataFormatError

Split = Literal["train", "test"]
LabelKind = Literal["fine", "coarse"]

CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR100_DIRNAME = "cifar-100-python"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR100_META_FILE = "meta"
IMAGE_SHAPE = (3, 32, 32)

_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR file into a dict with bytes keys (str keys are encoded)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: CIFAR file not found")
    raw = path.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # pickle raises many types on garbage input
        raise DataFormatError(
            f"{path}: not a valid CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.encode() if isinstance(k, str) else k): v for k, v in obj.items()}


def _field(d: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in d:
        have = ", ".join(repr(k) for k in d)
        raise DataFormatError(f"{path}: missing key {key!r} (has {have})")
    return d[key]


def _images(d: dict[bytes, Any], path: Path) -> np.ndarray:
    data = _field(d, b"data", path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
    ):
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(f"{path}: key b'data' must be a uint8 array [N, 3072], got {desc}")
    return data.reshape(data.shape[0], *IMAGE_SHAPE)


def _labels(d: dict[bytes, Any], key: bytes, n: int, n_classes: int, path: Path) -> np.ndarray:
    raw = _field(d, key, path)
    try:
        labels = np.asarray(raw)
    except Exception as exc:  # pragma: no cover - defensive
        raise DataFormatError(f"{path}: key {key!r} is not a list of ints") from exc
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataFormatError(
            f"{path}: key {key!r} must be a list of ints, got {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != n:
        raise DataFormatError(
            f"{path}: key {key!r} has {labels.shape[0]} labels but b'data' has {n} rows"
        )
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise DataFormatError(
            f"{path}: key {key!r} has label {int(bad)} outside 0..{n_classes - 1}"
        )
    return labels.astype(np.int64)


def _names(d: dict[bytes, Any], key: bytes, n: int, path: Path) -> list[str]:
    raw = _field(d, key, path)
    if not isinstance(raw, (list, tuple)) or len(raw) != n:
        raise DataFormatError(f"{path}: key {key!r} must be a list of {n} names")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]


def _resolve_dir(root: str | Path, dirname: str, marker: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: CIFAR directory not found")
    if not (root / marker).exists() and (root / dirname).is_dir():
        return root / dirname
    return root


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR: split must be 'train' or 'test', got {split!r}")


def load_cifar10(root: str | Path, split: Split = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` (0..9) of a CIFAR-10 split.

    ``train`` concatenates ``data_batch_1`` .. ``data_batch_5`` in order (50000 images in the
    official release), ``test`` reads ``test_batch`` (10000).
    """
    _check_split(split)
    d = _resolve_dir(root, CIFAR10_DIRNAME, CIFAR10_TEST_FILE)
    names = CIFAR10_TRAIN_FILES if split == "train" else (CIFAR10_TEST_FILE,)
    xs, ys = [], []
    for name in names:
        path = d / name
        batch = _load_pickle(path)
        x = _images(batch, path)
        xs.append(x)
        ys.append(_labels(batch, b"labels", x.shape[0], 10, path))
    return np.concatenate(xs), np.concatenate(ys)


def cifar10_label_names(root: str | Path) -> list[str]:
    """The 10 class names from ``batches.meta`` (``airplane`` .. ``truck`` officially)."""
    d = _resolve_dir(root, CIFAR10_DIRNAME, CIFAR10_TEST_FILE)
    path = d / CIFAR10_META_FILE
    return _names(_load_pickle(path), b"label_names", 10, path)


def load_cifar100(
    root: str | Path, split: Split = "train", label_kind: LabelKind = "fine"
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]`` of a CIFAR-100 split.

    ``label_kind="fine"`` gives the 100 classes (``b'fine_labels'``), ``"coarse"`` the 20
    superclasses (``b'coarse_labels'``).
    """
    _check_split(split)
    if label_kind not in ("fine", "coarse"):
        raise ValueError(
            f"load_cifar100: label_kind must be 'fine' or 'coarse', got {label_kind!r}"
        )
    d = _resolve_dir(root, CIFAR100_DIRNAME, "test")
    path = d / split
    batch = _load_pickle(path)
    x = _images(batch, path)
    key, n_classes = (b"fine_labels", 100) if label_kind == "fine" else (b"coarse_labels", 20)
    return x, _labels(batch, key, x.shape[0], n_classes, path)


def cifar100_label_names(root: str | Path, label_kind: LabelKind = "fine") -> list[str]:
    """Class names from ``meta``: 100 fine names or 20 coarse names."""
    if label_kind not in ("fine", "coarse"):
        raise ValueError(
            f"cifar100_label_names: label_kind must be 'fine' or 'coarse', got {label_kind!r}"
        )
    d = _resolve_dir(root, CIFAR100_DIRNAME, "test")
    path = d / CIFAR100_META_FILE
    key, n = (b"fine_label_names", 100) if label_kind == "fine" else (b"coarse_label_names", 20)
    return _names(_load_pickle(path), key, n, path)


def cifar_to_float32(images: np.ndarray) -> np.ndarray:
    """uint8 images (0..255) to float32 in [0, 1] (value / 255), same shape."""
    if images.dtype != np.uint8:
        raise ValueError(f"cifar_to_float32: expected uint8 images, got {images.dtype}")
    return images.astype(np.float32) / np.float32(255.0)


def cifar_datasets(
    root: str | Path,
    dataset: Literal["cifar10", "cifar100"] = "cifar10",
    label_kind: LabelKind = "fine",
) -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` torch ``TensorDataset`` s of ``(image [3, 32, 32] float32 in [0, 1],
    label int64)``. No normalisation or augmentation is applied."""
    out = []
    for split in ("train", "test"):
        if dataset == "cifar10":
            x, y = load_cifar10(root, split)
        elif dataset == "cifar100":
            x, y = load_cifar100(root, split, label_kind)
        else:
            raise ValueError(
                f"cifar_datasets: dataset must be 'cifar10' or 'cifar100', got {dataset!r}"
            )
        out.append(TensorDataset(torch.from_numpy(cifar_to_float32(x)), torch.from_numpy(y)))
    return out[0], out[1]
