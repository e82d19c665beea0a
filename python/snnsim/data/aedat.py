"""AEDAT 1.0/2.0 (jAER) files from a DVS128 sensor: reader and writer.

File format: optional ASCII header lines, each starting with ``#`` and ending with ``\\n``
(jAER writes ``\\r\\n``; the first line ``#!AER-DAT2.0`` names the version), followed by the
events, all big-endian:

* AEDAT 2.0: 8 bytes per event -- a 32-bit address, then a 32-bit timestamp in microseconds;
* AEDAT 1.0: 6 bytes per event -- a 16-bit address, then a 32-bit timestamp.

A file without a version line is read as 2.0. AEDAT 3.x/4.x files are refused.

DVS128 address word: bit 0 polarity bit, bits 1..7 column, bits 8..14 row, bit 15 set for
special (non-pixel) events, which are dropped by default. jAER reads polarity bit 0 as ON.

What is not a DVS128 recording is refused rather than read as one (random bytes used to read
as a valid empty recording): an address with any of bits 16..31 set, pixel-event timestamps
that go backwards (other than a wrap of the 32-bit microsecond counter, which is unwrapped), or
a non-empty body without a single pixel event.

Decoded coordinates depend on ``layout`` (raw column ``cx``, raw row ``ry``, polarity bit ``b``):

* ``"jaer"`` (default): ``x = 127 - cx``, ``y = ry``, ``p = 1 - b`` -- jAER's coordinates
  (x mirrored as in jAER's DVS128 extractor, y pointing up, p = 1 for ON);
* ``"transposed"``: ``x = 127 - ry``, ``y = 127 - cx``, ``p = 1 - b`` -- the orientation used by
  several public DVS-CIFAR10 pipelines;
* ``"raw"``: ``x = cx``, ``y = ry``, ``p = b``.

Events are returned as :data:`~snnsim.data.event_arrays.EVENT_DTYPE` arrays in file order; the
timestamps are the file's (not shifted to start at 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .errors import DataFormatError
from .event_arrays import as_events, empty_events

Layout = Literal["jaer", "transposed", "raw"]
LAYOUTS = ("jaer", "transposed", "raw")
SENSOR_SIZE = (128, 128, 2)
"""(W, H, C) of the DVS128 sensor."""
SPECIAL_BIT = 0x8000
DEFAULT_HEADER = ("#!AER-DAT2.0", "# written by snnsim.data.aedat (DVS128 addresses)")


def split_header(data: bytes, source: str = "<bytes>") -> tuple[list[str], bytes]:
    """Split an AEDAT file into its header lines (without line endings) and the event body.

    A header line starts with ``#`` at the current position and runs to the next ``\\n``; it
    may hold no control bytes other than tab and ``\\r`` (so binary event data that happens to
    begin with the byte ``#`` is not taken for a header line).
    """
    lines: list[str] = []
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"#":
        end = data.find(b"\n", pos)
        line = data[pos:end] if end >= 0 else data[pos:]
        if any(c < 0x20 and c not in (0x09, 0x0D) for c in line):
            break
        if end < 0:
            raise DataFormatError(f"{source}: header line at byte {pos} has no line ending")
        lines.append(line.rstrip(b"\r").decode("latin-1"))
        pos = end + 1
    return lines, data[pos:]


def _version(lines: list[str], source: str) -> int:
    for line in lines:
        if line.startswith("#!AER-DAT"):
            ver = line[len("#!AER-DAT") :].strip()
            major = ver.split(".")[0]
            if major == "1":
                return 1
            if major == "2":
                return 2
            raise DataFormatError(
                f"{source}: AEDAT version {ver!r} is not supported (only 1.x and 2.x)"
            )
    return 2


def read_aedat_raw(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The raw ``(addresses uint32, timestamps int64 in us)`` of an AEDAT 1.0/2.0 file."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: AEDAT file not found")
    lines, body = split_header(path.read_bytes(), str(path))
    version = _version(lines, str(path))
    if version == 2:
        dtype = np.dtype([("a", ">u4"), ("t", ">u4")])
    else:
        dtype = np.dtype([("a", ">u2"), ("t", ">u4")])
    if len(body) % dtype.itemsize:
        raise DataFormatError(
            f"{path}: truncated AEDAT {version}.0 body: {len(body)} bytes is not a multiple of "
            f"{dtype.itemsize} bytes per event"
        )
    raw = np.frombuffer(body, dtype=dtype)
    return raw["a"].astype(np.uint32), raw["t"].astype(np.int64)


def decode_dvs128(
    addresses: np.ndarray,
    timestamps: np.ndarray,
    layout: Layout = "jaer",
    drop_special: bool = True,
) -> np.ndarray:
    """Decode DVS128 address words into an event array (see the module docstring for
    ``layout``). With ``drop_special`` events with bit 15 or higher set are removed; otherwise
    they raise :class:`DataFormatError`."""
    if layout not in LAYOUTS:
        raise ValueError(f"decode_dvs128: layout must be one of {LAYOUTS}, got {layout!r}")
    a = np.asarray(addresses, dtype=np.uint32)
    t = np.asarray(timestamps, dtype=np.int64)
    if a.shape != t.shape or a.ndim != 1:
        raise ValueError(
            f"decode_dvs128: addresses {a.shape} and timestamps {t.shape} must be equal 1-D"
        )
    special = (a & ~np.uint32(0x7FFF)) != 0
    if special.any():
        if not drop_special:
            i = int(np.argmax(special))
            raise DataFormatError(f"event {i} has a non-pixel address 0x{int(a[i]):08x}")
        a, t = a[~special], t[~special]
    b = (a & 1).astype(np.int16)
    cx = ((a >> 1) & 0x7F).astype(np.int16)
    ry = ((a >> 8) & 0x7F).astype(np.int16)
    out = empty_events(a.size)
    if layout == "jaer":
        out["x"], out["y"], out["p"] = 127 - cx, ry, 1 - b
    elif layout == "transposed":
        out["x"], out["y"], out["p"] = 127 - ry, 127 - cx, 1 - b
    else:
        out["x"], out["y"], out["p"] = cx, ry, b
    out["t"] = t
    return out


def encode_dvs128(events: np.ndarray, layout: Layout = "jaer", name: str = "events") -> np.ndarray:
    """Inverse of :func:`decode_dvs128`: uint32 DVS128 address words of an event array."""
    if layout not in LAYOUTS:
        raise ValueError(f"encode_dvs128: layout must be one of {LAYOUTS}, got {layout!r}")
    ev = as_events(events, name)
    for field in ("x", "y"):
        col = ev[field]
        bad = (col < 0) | (col > 127)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataFormatError(
                f"{name}: event {i} has {field}={int(col[i])}, DVS128 needs 0..127"
            )
    x = ev["x"].astype(np.uint32)
    y = ev["y"].astype(np.uint32)
    p = ev["p"].astype(np.uint32) & 1
    if layout == "jaer":
        cx, ry, b = 127 - x, y, 1 - p
    elif layout == "transposed":
        cx, ry, b = 127 - y, 127 - x, 1 - p
    else:
        cx, ry, b = x, y, p
    return ((ry << 8) | (cx << 1) | b).astype(np.uint32)


def read_aedat(path: str | Path, layout: Layout = "jaer", drop_special: bool = True) -> np.ndarray:
    """Read a DVS128 AEDAT 1.0/2.0 recording into an event array (t in us).

    Raises :class:`DataFormatError` for a file that is not one (see the module docstring):
    addresses beyond 16 bits, timestamps that go backwards, no pixel event in a non-empty body.
    """
    a, t = read_aedat_raw(path)
    try:
        _check_addresses(a)
        ev = decode_dvs128(a, t, layout, drop_special)
        if a.size and ev.size == 0:
            raise DataFormatError(
                f"none of its {a.size} events is a pixel event (all have special addresses); "
                "not a DVS128 recording?"
            )
        ev["t"] = _unwrap_timestamps(ev["t"])
        return ev
    except DataFormatError as exc:
        raise DataFormatError(f"{path}: {exc}") from None


_WRAP = 1 << 32  # AEDAT 2.0 timestamps: a 32-bit microsecond counter


def _check_addresses(a: np.ndarray) -> None:
    bad = np.flatnonzero(a > 0xFFFF)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"event {i} has address 0x{int(a[i]):08x} with bits above 15 set; not a DVS128 "
            "recording?"
        )


def _unwrap_timestamps(t: np.ndarray) -> np.ndarray:
    """Timestamps made non-decreasing across wraps of the 32-bit counter (a drop of more than
    half its range); any other backwards step is an error."""
    t = np.asarray(t, dtype=np.int64)
    if t.size < 2:
        return t
    step = np.diff(t)
    wraps = step < -(_WRAP // 2)
    out = t + np.concatenate([[0], np.cumsum(wraps)]) * _WRAP
    back = np.flatnonzero(np.diff(out) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise DataFormatError(
            f"timestamps go backwards at pixel event {i} ({int(t[i - 1])} us, then "
            f"{int(t[i])} us); not a DVS128 recording?"
        )
    return out


def write_aedat(
    path: str | Path,
    events: np.ndarray,
    layout: Layout = "jaer",
    header: Sequence[str] = DEFAULT_HEADER,
) -> None:
    """Write an event array as an AEDAT 2.0 file with DVS128 addresses.

    Every header line must start with ``#`` (lines end with ``\\r\\n``); ``t`` must fit in an
    unsigned 32-bit timestamp (us).
    """
    path = Path(path)
    ev = as_events(events, str(path))
    t = ev["t"]
    if t.size and (t.min() < 0 or t.max() > 0xFFFFFFFF):
        raise DataFormatError(f"{path}: timestamps must be in 0..2**32-1 us for AEDAT 2.0")
    for line in header:
        if not line.startswith("#") or "\n" in line or "\r" in line:
            raise ValueError(
                f"write_aedat: header line {line!r} must start with '#' and hold no line break"
            )
    body = np.empty(ev.size, dtype=[("a", ">u4"), ("t", ">u4")])
    body["a"] = encode_dvs128(ev, layout, str(path))
    body["t"] = t
    head = "".join(line + "\r\n" for line in header).encode("latin-1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + body.tobytes())
