"""The Heidelberg spiking data sets (SHD, SSC) in their HDF5 form, read as tonic reads them.

A file holds ``spikes/times`` (one float array per sample, seconds), ``spikes/units`` (one
integer array per sample: the cochlea channel, 0..699) and ``labels`` (one integer per sample).
:func:`read_shd` returns each sample as a structured event array with tonic's ``HSD`` dtype
(fields ``t``, ``x``, ``p``: ``t`` in microseconds, ``x`` the channel, ``p = 1``), which
:func:`snnsim.run` takes directly for a model with input ``[1, 700]`` or ``[700]``
(:func:`snnsim.events.sensor_input_shape` of ``SHD_SENSOR_SIZE``). Timestamps are converted as
tonic does: ``int(times * 1e6)`` (truncation); samples whose times are not sorted are sorted
(stably), since snnsim requires non-decreasing timestamps.

``h5py`` is needed (the ``data`` extra). :func:`write_shd` writes the same layout (test
fixtures, small subsets).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from .errors import DataFormatError

#: tonic's ``sensor_size`` of SHD and SSC: 700 channels, one row, one polarity.
SHD_SENSOR_SIZE = (700, 1, 1)
#: tonic's event dtype of the HSD data sets.
SHD_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])


def _h5py() -> Any:
    try:
        import h5py  # type: ignore[import-untyped]  # h5py ships no type information
    except ImportError as exc:  # pragma: no cover - h5py is in the data and test extras
        raise ImportError("reading SHD files needs h5py: pip install 'snnsim[data]'") from exc
    return h5py


def read_shd(
    path: str | os.PathLike[str], *, limit: int | None = None, channels: int = 700
) -> tuple[list[np.ndarray], np.ndarray]:
    """Read an SHD/SSC HDF5 file: the recordings (structured arrays ``t, x, p``; ``t`` in
    microseconds) and the labels (int64 ``[N]``). ``limit`` reads only the first samples;
    ``channels`` bounds ``x`` (``0 <= x < channels``). Raises :class:`DataFormatError` naming
    the path and field for a missing dataset, mismatched lengths or out-of-range values."""
    h5py = _h5py()
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataFormatError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataFormatError(f"{p}: not an HDF5 file ({exc})") from None
    with f:
        for key in ("spikes/times", "spikes/units", "labels"):
            if key not in f:
                raise DataFormatError(
                    f"{p}: missing dataset {key!r} (an SHD file has "
                    "spikes/times, spikes/units and labels)"
                )
        times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"]
        n = len(labels)
        if len(times) != n or len(units) != n:
            raise DataFormatError(
                f"{p}: {len(times)} 'spikes/times', {len(units)} 'spikes/units' and {n} "
                "'labels' (one of each per sample)"
            )
        n = n if limit is None else min(n, int(limit))
        recordings = [_sample(p, i, times[i], units[i], channels) for i in range(n)]
        y = np.asarray(labels[:n]).astype(np.int64)
    return recordings, y


def _sample(path: str, i: int, t: np.ndarray, x: np.ndarray, channels: int) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(x)
    if t.shape != x.shape or t.ndim != 1:
        raise DataFormatError(
            f"{path}: sample {i} has {t.size} times and {x.size} units (one per spike)"
        )
    if t.size and (not np.all(np.isfinite(t)) or t.min() < 0):
        raise DataFormatError(
            f"{path}: sample {i}: field 'spikes/times' holds negative or "
            "non-finite times (seconds >= 0 expected)"
        )
    if x.size and (x.min() < 0 or x.max() >= channels):
        bad = int(x.max() if x.max() >= channels else x.min())
        raise DataFormatError(
            f"{path}: sample {i}: field 'spikes/units' = {bad} is outside [0, {channels})"
        )
    ev = np.zeros(t.size, dtype=SHD_DTYPE)
    ev["t"] = (t * 1e6).astype(np.int64)  # tonic's conversion (truncation)
    ev["x"] = x
    ev["p"] = 1
    if ev.size > 1 and np.any(ev["t"][1:] < ev["t"][:-1]):
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


def write_shd(
    path: str | os.PathLike[str],
    times_s: Sequence[np.ndarray],
    units: Sequence[np.ndarray],
    labels: Sequence[int],
) -> None:
    """Write recordings in the SHD layout: per sample ``times_s`` (float seconds) and ``units``
    (channels), and ``labels``; variable-length datasets as in the published files."""
    h5py = _h5py()
    if not len(times_s) == len(units) == len(labels):
        raise ValueError("write_shd: times_s, units and labels need one entry per sample")
    with h5py.File(os.fspath(path), "w") as f:
        ft = f.create_dataset(
            "spikes/times", (len(times_s),), dtype=h5py.vlen_dtype(np.dtype("float32"))
        )
        fu = f.create_dataset(
            "spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.dtype("uint16"))
        )
        for i, (t, u) in enumerate(zip(times_s, units, strict=True)):
            ft[i] = np.asarray(t, dtype=np.float32)
            fu[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
