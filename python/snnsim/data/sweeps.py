"""A generated 1-d event task: frequency sweeps on a cochlea-like sensor of ``channels`` channels.

Each recording is a structured event array with tonic's SHD dtype (``t`` microseconds, ``x`` the
channel, ``p = 1``) on a sensor ``(channels, 1, 1)``, lasting ``duration_us``. Four classes
trace a path through the channels over time:

* 0: rising (low to high channels), 1: falling (high to low),
* 2: rising then falling, 3: falling then rising;

each with a random start and end channel, speed jitter, a spread of +-1 channel around the path
and uniform background events. Classes 0 and 1 (and 2 and 3) visit the same channels equally
often: only the order of the events in time tells them apart, so a network must keep state
across steps (slowly leaking membranes or a recurrent layer); per-channel event rates alone
cannot separate them.

Deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

from .shd import SHD_DTYPE

N_CLASSES = 4


def _path(cls: int, u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Channel position at normalised time ``u`` in [0, 1] for class ``cls``."""
    if cls == 0:
        return lo + (hi - lo) * u
    if cls == 1:
        return hi - (hi - lo) * u
    tri = 1.0 - np.abs(2.0 * u - 1.0)  # 0 -> 1 -> 0
    return lo + (hi - lo) * tri if cls == 2 else hi - (hi - lo) * tri


def make_sweeps(
    n: int,
    *,
    channels: int = 32,
    duration_us: int = 100_000,
    events: int = 120,
    noise: float = 0.15,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` recordings (balanced classes in random order) and their labels (int64 ``[n]``).
    ``events``: mean events on the path per recording (Poisson); ``noise``: background events
    as a fraction of them."""
    if n < 1 or channels < 4 or duration_us < 1 or events < 1 or noise < 0:
        raise ValueError(
            "make_sweeps: need n >= 1, channels >= 4, duration_us >= 1, events >= 1, noise >= 0"
        )
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % N_CLASSES).astype(np.int64)
    recs = []
    for cls in labels:
        k = int(rng.poisson(events))
        u = np.sort(rng.random(k)) ** rng.uniform(0.8, 1.25)  # speed jitter
        lo = rng.uniform(0, 0.25 * channels)
        hi = rng.uniform(0.75 * channels, channels - 1)
        x = np.rint(_path(int(cls), u, lo, hi) + rng.normal(0.0, 1.0, size=k))
        m = int(rng.poisson(noise * events))
        xb = rng.integers(0, channels, size=m)
        ub = rng.random(m)
        t = np.concatenate([u, ub]) * (duration_us - 1)
        xs = np.clip(np.concatenate([x, xb]), 0, channels - 1)
        order = np.argsort(t, kind="stable")
        ev = np.zeros(k + m, dtype=SHD_DTYPE)
        ev["t"] = t[order].astype(np.int64)
        ev["x"] = xs[order].astype(np.int64)
        ev["p"] = 1
        recs.append(ev)
    return recs, labels
