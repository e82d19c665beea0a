"""N-MNIST recordings (``.bin`` files): reader, writer and directory listing.

File format (the original release, one file per recording, no header): a sequence of 5-byte
(40-bit) events, each

* byte 0: x address (pixel column, 0..33 on the 34x34 sensor),
* byte 1: y address (pixel row, 0..33),
* byte 2: bit 7 polarity (1 = ON, 0 = OFF), bits 6..0 timestamp bits 22..16,
* byte 3: timestamp bits 15..8,
* byte 4: timestamp bits 7..0,

timestamps in microseconds (23 bits, so at most 8 388 607 us). Events are returned as
:data:`~snnsim.data.event_arrays.EVENT_DTYPE` arrays (p = 1 for ON) in file order.

Directory layout: ``root/Train/<digit>/*.bin`` and ``root/Test/<digit>/*.bin`` with digit
folders ``0`` .. ``9``; files are listed in sorted name order, classes in digit order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from .errors import DataFormatError
from .event_arrays import as_events, empty_events
from .event_dataset import EventFileDataset, Transform

SENSOR_SIZE = (34, 34, 2)
"""(W, H, C) of the N-MNIST sensor crop, tonic order."""
BYTES_PER_EVENT = 5
MAX_TIMESTAMP_US = (1 << 23) - 1
SPLIT_DIRS = {"train": "Train", "test": "Test"}

Split = Literal["train", "test"]


def decode_nmnist_bytes(
    data: bytes, source: str = "<bytes>", check_sensor: bool = True
) -> np.ndarray:
    """Decode the 5-byte events of an N-MNIST file body into an event array.

    Args:
        data: the file content.
        source: name used in error messages (the file path).
        check_sensor: require ``x, y < 34``.

    Raises:
        DataFormatError: when the length is not a multiple of 5 or an address is off-sensor.
    """
    if len(data) % BYTES_PER_EVENT:
        raise DataFormatError(
            f"{source}: truncated N-MNIST file: {len(data)} bytes is not a multiple of "
            f"{BYTES_PER_EVENT} (the last event has {len(data) % BYTES_PER_EVENT} bytes)"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, BYTES_PER_EVENT)
    out = empty_events(raw.shape[0])
    out["x"] = raw[:, 0]
    out["y"] = raw[:, 1]
    out["p"] = raw[:, 2] >> 7
    b2 = (raw[:, 2] & 0x7F).astype(np.int64)
    out["t"] = (b2 << 16) | (raw[:, 3].astype(np.int64) << 8) | raw[:, 4].astype(np.int64)
    if check_sensor and out.size:
        w, h = SENSOR_SIZE[0], SENSOR_SIZE[1]
        for field, lim in (("x", w), ("y", h)):
            bad = out[field] >= lim
            if bad.any():
                i = int(np.argmax(bad))
                raise DataFormatError(
                    f"{source}: event {i} has {field}={int(out[field][i])}, outside the {w}x{h} "
                    "N-MNIST sensor"
                )
    return out


def encode_nmnist_events(events: np.ndarray, name: str = "events") -> bytes:
    """Encode an event array into the N-MNIST 5-byte format (inverse of
    :func:`decode_nmnist_bytes`). Requires ``0 <= x, y <= 255``, ``0 <= t < 2**23`` us."""
    ev = as_events(events, name)
    for field, lim in (("x", 255), ("y", 255), ("t", MAX_TIMESTAMP_US)):
        col = ev[field]
        bad = (col < 0) | (col > lim)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataFormatError(
                f"{name}: event {i} has {field}={int(col[i])}, the N-MNIST format allows 0..{lim}"
            )
    t = ev["t"].astype(np.int64)
    raw = np.empty((ev.size, BYTES_PER_EVENT), dtype=np.uint8)
    raw[:, 0] = ev["x"]
    raw[:, 1] = ev["y"]
    raw[:, 2] = ((ev["p"].astype(np.int64) & 1) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def read_nmnist_file(path: str | Path, check_sensor: bool = True) -> np.ndarray:
    """Read one N-MNIST ``.bin`` recording (see the module docstring for the format)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: N-MNIST file not found")
    return decode_nmnist_bytes(path.read_bytes(), str(path), check_sensor)


def write_nmnist_file(path: str | Path, events: np.ndarray) -> None:
    """Write an event array as an N-MNIST ``.bin`` file (parent directories are created)."""
    path = Path(path)
    data = encode_nmnist_events(events, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def list_nmnist_files(root: str | Path, split: Split = "train") -> tuple[list[Path], np.ndarray]:
    """``(files, labels)`` of ``root/Train`` or ``root/Test``: all ``<digit>/*.bin`` files in
    digit order then sorted name order; labels int64. Missing digit folders are allowed (a
    partial copy), but the split directory must exist and hold at least one file."""
    if split not in SPLIT_DIRS:
        raise ValueError(f"list_nmnist_files: split must be 'train' or 'test', got {split!r}")
    base = Path(root) / SPLIT_DIRS[split]
    if not base.is_dir():
        raise DataFormatError(f"{base}: N-MNIST split directory not found")
    files: list[Path] = []
    labels: list[int] = []
    for digit in range(10):
        d = base / str(digit)
        if not d.is_dir():
            continue
        found = sorted(p for p in d.glob("*.bin") if p.is_file())
        files.extend(found)
        labels.extend([digit] * len(found))
    if not files:
        raise DataFormatError(f"{base}: no <digit>/*.bin files found")
    return files, np.asarray(labels, dtype=np.int64)


def nmnist_dataset(
    root: str | Path, split: Split = "train", transform: Transform | None = None
) -> EventFileDataset:
    """A torch dataset of ``(events, label)`` read lazily from an N-MNIST directory."""
    files, labels = list_nmnist_files(root, split)
    return EventFileDataset(files, labels, read_nmnist_file, SENSOR_SIZE, transform)
