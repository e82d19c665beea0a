"""On-disk cache for generated datasets (e.g. the SYNTHETIC N-MNIST-like events, about 16 s
per 1000 recordings to generate).

Location: ``$SNNSIM_CACHE/data`` when ``SNNSIM_CACHE`` is set, else ``~/.cache/snnsim/data``.
An entry is one ``.npz`` file named by the generator's name and a SHA-256 of its parameters
and version (``<kind>-<hash16>.npz``), with a ``.json`` beside it saying what it holds. The
key is stored inside the file as well and checked on load, so a changed generator (bump its
version) or changed parameters never read an old entry. Files are written atomically
(:func:`snnsim.atomic.atomic_write`): a crash leaves no partial entry, and processes writing
the same entry at once leave one whole file. An entry that cannot be read is regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import atomic_write

__all__ = ["cache_dir", "cache_key", "cached_arrays"]

_KEY_FIELD = "__snnsim_cache_key__"


def cache_dir() -> Path:
    """The data cache directory (not created here)."""
    root = os.environ.get("SNNSIM_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "snnsim"
    return base / "data"


def cache_key(kind: str, params: dict[str, Any], version: int) -> str:
    """The canonical JSON of ``(kind, version, params)``; its SHA-256 names the entry."""
    return json.dumps({"kind": kind, "version": int(version), "params": params}, sort_keys=True)


def _entry(kind: str, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{kind}-{digest}.npz"


def _read(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = str(z[_KEY_FIELD]) if _KEY_FIELD in z.files else None
            if stored != key:
                return None
            return {k: z[k] for k in z.files if k != _KEY_FIELD}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"data cache entry {path} unreadable ({exc}); regenerating", stacklevel=3)
        return None


def cached_arrays(
    kind: str,
    params: dict[str, Any],
    version: int,
    build: Callable[[], dict[str, np.ndarray]],
    enabled: bool = True,
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns for ``params``, read from the cache when an entry for
    ``(kind, params, version)`` exists, else built and stored. ``params`` must be
    JSON-serialisable and determine the result completely; ``version`` changes whenever the
    generator's output does. ``enabled=False`` just calls ``build()``."""
    if not enabled:
        return build()
    key = cache_key(kind, params, version)
    path = _entry(kind, key)
    if path.is_file():
        got = _read(path, key)
        if got is not None:
            return got
    arrays = build()
    if _KEY_FIELD in arrays:
        raise ValueError(f"cached_arrays: {_KEY_FIELD!r} is reserved")
    payload: dict[str, Any] = dict(arrays)
    payload[_KEY_FIELD] = np.asarray(key)
    try:
        atomic_write(path, lambda f: np.savez(f, **payload))
        meta = {"kind": kind, "version": version, "params": params, "arrays": sorted(arrays)}
        atomic_write(path.with_suffix(".json"), lambda f: json.dump(meta, f, indent=2), mode="w")
    except OSError as exc:  # a read-only or full disk: the data is still usable
        warnings.warn(f"data cache: could not write {path} ({exc})", stacklevel=2)
    return arrays
