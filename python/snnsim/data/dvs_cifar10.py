"""DVS-CIFAR10 (CIFAR10-DVS): AEDAT recordings turned into equal-count frames.

The release holds 10 000 DVS128 recordings (AEDAT 2.0, read with :mod:`snnsim.data.aedat`),
1000 per class, in one folder per class: ``root/<class name>/*.aedat`` with the CIFAR-10
class names ``airplane automobile bird cat deer dog frog horse ship truck`` (label = index in
that tuple). Files are listed in sorted name order.

Frames (the usual preprocessing for this dataset):

1. Equal event counts: with ``E`` events and ``N`` frames (default 20), ``k = E // N``; frame
   ``j`` takes events ``[k*j, k*(j+1))`` and the last frame also takes the remainder, so with
   ``E < N`` every event lands in the last frame (the engine's ``"count"`` binning).
2. Each frame counts events per ``(polarity, y, x)``: ``[N, 2, 128, 128]``, channel = p
   (0 OFF, 1 ON).
3. Resize to ``size x size`` (default 48) with ``torch.nn.functional.interpolate``; the default
   ``mode="area"`` averages the counts over each output pixel's source area (adaptive average
   pooling; the result is a mean count per source pixel, not a sum). ``"bilinear"`` (with
   ``align_corners=False``, no antialiasing) and ``"nearest"`` are also available, and
   ``size=None`` keeps 128x128.

There is no official train/test split; :func:`dvs_cifar10_split` gives a deterministic one
(the first 90% of each class's files in sorted order to train, the rest to test).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .aedat import SENSOR_SIZE, Layout, read_aedat
from .errors import DataFormatError
from .event_arrays import validate_events
from .event_dataset import EventFileDataset, Transform

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
N_FRAMES = 20
FRAME_SIZE = 48
ResizeMode = Literal["area", "bilinear", "nearest"]


def count_frames(
    events: np.ndarray,
    n_frames: int = N_FRAMES,
    sensor_size: tuple[int, int] = (128, 128),
    name: str = "events",
) -> np.ndarray:
    """Equal-event-count frames ``[n_frames, 2, H, W]`` (float32 counts) of one recording.

    ``sensor_size`` is ``(W, H)``. Events off the sensor raise :class:`DataFormatError`; an
    empty recording gives all-zero frames.
    """
    if n_frames < 1:
        raise ValueError(f"count_frames: n_frames must be >= 1, got {n_frames}")
    w, h = int(sensor_size[0]), int(sensor_size[1])
    ev = validate_events(events, (w, h), sorted_t=False, name=name)
    e = ev.size
    k = e // n_frames
    if k:
        frame = np.minimum(np.arange(e, dtype=np.int64) // k, n_frames - 1)
    else:
        frame = np.full(e, n_frames - 1, dtype=np.int64)
    flat = ((frame * 2 + ev["p"].astype(np.int64)) * h + ev["y"].astype(np.int64)) * w + ev[
        "x"
    ].astype(np.int64)
    counts = np.bincount(flat, minlength=n_frames * 2 * h * w)
    return counts.reshape(n_frames, 2, h, w).astype(np.float32)


def resize_frames(
    frames: np.ndarray, size: int | None = FRAME_SIZE, mode: ResizeMode = "area"
) -> np.ndarray:
    """Resize ``[N, C, H, W]`` frames to ``[N, C, size, size]`` float32 (see the module
    docstring for the modes); ``size=None`` returns the frames as float32 unchanged."""
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"resize_frames: expected frames [N, C, H, W], got shape {x.shape}")
    if size is None:
        return x
    if size < 1:
        raise ValueError(f"resize_frames: size must be >= 1, got {size}")
    t = torch.from_numpy(np.ascontiguousarray(x))
    if mode == "area":
        out = F.interpolate(t, size=(size, size), mode="area")
    elif mode == "bilinear":
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    elif mode == "nearest":
        out = F.interpolate(t, size=(size, size), mode="nearest")
    else:
        raise ValueError(
            f"resize_frames: mode must be 'area', 'bilinear' or 'nearest', got {mode!r}"
        )
    return out.numpy()


def events_to_frames(
    events: np.ndarray,
    n_frames: int = N_FRAMES,
    size: int | None = FRAME_SIZE,
    resize_mode: ResizeMode = "area",
    name: str = "events",
) -> np.ndarray:
    """DVS128 events -> float32 frames ``[n_frames, 2, size, size]`` (equal counts, resized)."""
    frames = count_frames(events, n_frames, (SENSOR_SIZE[0], SENSOR_SIZE[1]), name)
    return resize_frames(frames, size, resize_mode)


def read_dvs_cifar10_frames(
    path: str | Path,
    n_frames: int = N_FRAMES,
    size: int | None = FRAME_SIZE,
    resize_mode: ResizeMode = "area",
    layout: Layout = "jaer",
) -> np.ndarray:
    """Read one recording and return its frames ``[n_frames, 2, size, size]`` (float32)."""
    return events_to_frames(read_aedat(path, layout), n_frames, size, resize_mode, str(path))


def list_dvs_cifar10_files(
    root: str | Path, classes: Sequence[str] = CLASSES, pattern: str = "*.aedat"
) -> tuple[list[Path], np.ndarray]:
    """``(files, labels)`` of ``root/<class>/<pattern>``: classes in the given order (label =
    position), files in sorted name order. Every class folder must exist."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: DVS-CIFAR10 directory not found")
    files: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            raise DataFormatError(f"{d}: class folder '{cls}' not found")
        found = sorted(p for p in d.glob(pattern) if p.is_file())
        files.extend(found)
        labels.extend([label] * len(found))
    if not files:
        raise DataFormatError(f"{root}: no {pattern} files in the class folders")
    return files, np.asarray(labels, dtype=np.int64)


def dvs_cifar10_split(
    labels: np.ndarray, train_fraction: float = 0.9
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of listed files: for each class (in label order) the first
    ``floor(train_fraction * n_c)`` of its files in list order go to train, the rest to test.
    Returns int64 index arrays ``(train, test)``."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(
            f"dvs_cifar10_split: train_fraction must be in (0, 1), got {train_fraction}"
        )
    y = np.asarray(labels)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.where(y == c)[0]
        n_train = int(math.floor(train_fraction * idx.size))
        train.append(idx[:n_train])
        test.append(idx[n_train:])
    empty = np.zeros(0, dtype=np.int64)
    return (
        np.concatenate(train).astype(np.int64) if train else empty,
        np.concatenate(test).astype(np.int64) if test else empty,
    )


class DVSCIFAR10Frames(Dataset[tuple[torch.Tensor, int]]):
    """Torch dataset of ``(frames float32 tensor [n_frames, 2, size, size], label)`` read
    lazily from AEDAT files (optionally kept in memory after the first read)."""

    synthetic = False

    def __init__(
        self,
        files: Sequence[str | Path],
        labels: Sequence[int] | np.ndarray,
        n_frames: int = N_FRAMES,
        size: int | None = FRAME_SIZE,
        resize_mode: ResizeMode = "area",
        layout: Layout = "jaer",
        cache: bool = False,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.int64)
        if labels_arr.shape != (len(files),):
            raise ValueError(
                f"DVSCIFAR10Frames: {len(files)} files but labels has shape {labels_arr.shape}"
            )
        self.files = [Path(f) for f in files]
        self.labels = labels_arr
        self.n_frames = n_frames
        self.size = size
        self.resize_mode = resize_mode
        self.layout = layout
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._cache is not None and i in self._cache:
            return self._cache[i], int(self.labels[i])
        frames = torch.from_numpy(
            read_dvs_cifar10_frames(
                self.files[i], self.n_frames, self.size, self.resize_mode, self.layout
            )
        )
        if self._cache is not None:
            self._cache[i] = frames
        return frames, int(self.labels[i])


def dvs_cifar10_frames_dataset(
    root: str | Path,
    split: Literal["train", "test", "all"] = "all",
    train_fraction: float = 0.9,
    **kwargs: Any,
) -> DVSCIFAR10Frames:
    """Frames dataset of a DVS-CIFAR10 directory (``split`` per :func:`dvs_cifar10_split`);
    ``kwargs`` go to :class:`DVSCIFAR10Frames` (n_frames, size, resize_mode, layout, cache)."""
    files, labels = list_dvs_cifar10_files(root)
    if split != "all":
        if split not in ("train", "test"):
            raise ValueError(
                f"dvs_cifar10_frames_dataset: split must be 'train', 'test' or 'all', got {split!r}"
            )
        tr, te = dvs_cifar10_split(labels, train_fraction)
        idx = tr if split == "train" else te
        files, labels = [files[i] for i in idx], labels[idx]
    return DVSCIFAR10Frames(files, labels, **kwargs)


def dvs_cifar10_events_dataset(
    root: str | Path, layout: Layout = "jaer", transform: Transform | None = None
) -> EventFileDataset:
    """Torch dataset of the raw ``(events, label)`` of every recording under ``root``."""
    files, labels = list_dvs_cifar10_files(root)
    return EventFileDataset(
        files, labels, functools.partial(read_aedat, layout=layout), SENSOR_SIZE, transform
    )
