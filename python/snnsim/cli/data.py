"""Datasets named on the command line: bundled splits, numpy files and event recordings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from ..errors import InputError

BUNDLED = ("mnist5k", "mnist5k:train", "mnist5k:test", "digits", "digits:train", "digits:test")

HELP = (
    "data: 'mnist5k' (the bundled MNIST-5k test split, 1000 images; 'mnist5k:train' the 4000 "
    "training images), 'digits[:train|test]' (scikit-learn's 8x8 digits), a .npz file with "
    "arrays 'x' (or 'images') and optionally 'y' (or 'labels'), a .npy file (an image batch, or "
    "one structured event recording with fields x, y, p, t), or event files (.npy recordings, "
    "N-MNIST .bin, .aedat)"
)


@dataclass
class Data:
    """Inputs as the data loader gives them (an array, or a list of event recordings), labels
    (or None) and a short description."""

    x: Any
    y: np.ndarray | None
    name: str

    def __len__(self) -> int:
        return len(self.x)

    def limit(self, n: int | None) -> "Data":
        """The first ``n`` samples (all for ``None``); ``InputError`` for ``n < 1``."""
        if n is None:
            return self
        if n < 1:
            raise InputError(f"--limit must be >= 1, got {n}")
        y = None if self.y is None else self.y[:n]
        return Data(self.x[:n], y, f"{self.name} (first {min(n, len(self.x))})")


def _bundled(spec: str) -> Data:
    name, _, split_arg = spec.partition(":")
    # the loaders check the split and name it in their error
    split = cast(Literal["train", "test"], split_arg or "test")
    if name == "mnist5k":
        from ..data import load_mnist5k_split

        x, y = load_mnist5k_split(split)
    else:
        from ..data import load_digits_split

        x, y = load_digits_split(split)
    return Data(x, y, f"{name} {split} split ({len(y)} samples)")


def _npz(path: str) -> Data:
    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        xk = next((k for k in ("x", "images", "inputs") if k in keys), None)
        if xk is None:
            raise InputError(
                f"{path}: a .npz needs an array 'x' (or 'images'); it holds {sorted(keys)}"
            )
        yk = next((k for k in ("y", "labels") if k in keys), None)
        x = f[xk]
        y = None if yk is None else np.asarray(f[yk]).astype(np.int64)
    if y is not None and len(y) != len(x):
        raise InputError(f"{path}: {len(x)} inputs but {len(y)} labels")
    return Data(x, y, f"{os.path.basename(path)} ({len(x)} samples)")


def _event_file(path: str) -> np.ndarray:
    low = path.lower()
    if low.endswith(".npy"):
        ev: np.ndarray = np.load(path, allow_pickle=False)
        if ev.dtype.names is None:
            raise InputError(f"{path}: not a structured event array (fields x, y, p, t)")
        return ev
    if low.endswith(".bin"):
        from ..data import read_nmnist_file

        return read_nmnist_file(path)
    if low.endswith(".aedat"):
        from ..data import read_aedat

        return read_aedat(path)
    raise InputError(f"{path}: unknown file type (expected .npz, .npy, .bin or .aedat)")


def load_data(specs: list[str]) -> Data:
    """The dataset named by ``specs`` (one bundled name or file, or several event files)."""
    if not specs:
        raise InputError("no data given (" + HELP + ")")
    if len(specs) == 1 and specs[0] in BUNDLED:
        return _bundled(specs[0])
    for p in specs:
        if p in BUNDLED:
            raise InputError(f"{p!r}: a bundled dataset must be the only data argument")
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file (and not a bundled dataset: {BUNDLED})")
    if len(specs) == 1 and specs[0].lower().endswith(".npz"):
        return _npz(specs[0])
    if len(specs) == 1 and specs[0].lower().endswith(".npy"):
        a = np.load(specs[0], allow_pickle=False)
        if a.dtype.names is None:
            return Data(a, None, f"{os.path.basename(specs[0])} ({len(a)} samples)")
    recs = [_event_file(p) for p in specs]
    return Data(recs, None, f"{len(recs)} event recording(s)")
