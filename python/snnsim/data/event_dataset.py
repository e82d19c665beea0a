"""Small torch ``Dataset`` wrappers for event recordings (in memory or read from files).

Items are ``(events, label)`` with ``events`` a structured array of
:data:`~snnsim.data.event_arrays.EVENT_DTYPE` (t in microseconds) unless a ``transform`` turns
it into something else. torch's default collate cannot stack ragged event arrays; use
:func:`collate_events` with a ``DataLoader``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

Transform = Callable[[np.ndarray], Any]


class EventDataset(Dataset[tuple[Any, int]]):
    """Recordings held in memory.

    Attributes:
        events: list of event arrays, one per sample.
        labels: int64 array ``[N]``.
        sensor_size: ``(W, H, C)`` of the sensor (tonic order).
        synthetic: ``True`` when the recordings were generated rather than measured.
    """

    synthetic: bool = False

    def __init__(
        self,
        events: Sequence[np.ndarray],
        labels: Sequence[int] | np.ndarray,
        sensor_size: tuple[int, int, int],
        transform: Transform | None = None,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.int64)
        if labels_arr.shape != (len(events),):
            raise ValueError(
                f"EventDataset: {len(events)} recordings but labels has shape {labels_arr.shape}"
            )
        self.events = list(events)
        self.labels = labels_arr
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        ev = self.events[i]
        return (self.transform(ev) if self.transform else ev), int(self.labels[i])


class EventFileDataset(Dataset[tuple[Any, int]]):
    """Recordings read lazily from files with ``reader(path) -> event array``.

    Attributes:
        files: list of paths, one per sample.
        labels: int64 array ``[N]``.
        sensor_size: ``(W, H, C)`` of the sensor.
    """

    synthetic: bool = False

    def __init__(
        self,
        files: Sequence[str | Path],
        labels: Sequence[int] | np.ndarray,
        reader: Callable[[Path], np.ndarray],
        sensor_size: tuple[int, int, int],
        transform: Transform | None = None,
    ) -> None:
        labels_arr = np.asarray(labels, dtype=np.int64)
        if labels_arr.shape != (len(files),):
            raise ValueError(
                f"EventFileDataset: {len(files)} files but labels has shape {labels_arr.shape}"
            )
        self.files = [Path(f) for f in files]
        self.labels = labels_arr
        self.reader = reader
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        ev = self.reader(self.files[i])
        return (self.transform(ev) if self.transform else ev), int(self.labels[i])


def collate_events(batch: Sequence[tuple[Any, int]]) -> tuple[list[Any], torch.Tensor]:
    """``DataLoader`` collate for ragged recordings: ``(list of items, int64 label tensor)``."""
    items = [b[0] for b in batch]
    labels = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.int64)
    return items, labels
