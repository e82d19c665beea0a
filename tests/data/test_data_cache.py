"""The on-disk cache of generated datasets: location, keys (parameters and version), atomic
entries, recovery from unreadable entries, and the SYNTHETIC N-MNIST generator reading it."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from snnsim.data.cache import cache_dir, cached_arrays

synth = importlib.import_module("snnsim.data.synthetic_nmnist")


def test_location_follows_snnsim_cache_or_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "data"
    monkeypatch.delenv("SNNSIM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "snnsim" / "data"


def test_built_once_then_read_keyed_by_params_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path))
    calls: list[int] = []

    def build(v: int) -> dict[str, np.ndarray]:
        calls.append(v)
        return {"a": np.arange(5) * v, "b": np.full((2, 2), float(v))}

    first = cached_arrays("toy", {"v": 2}, 1, lambda: build(2))
    again = cached_arrays("toy", {"v": 2}, 1, lambda: build(2))
    assert calls == [2]
    for k in first:
        assert np.array_equal(first[k], again[k])
    cached_arrays("toy", {"v": 3}, 1, lambda: build(3))  # other parameters
    cached_arrays("toy", {"v": 2}, 2, lambda: build(2))  # a new generator version
    assert calls == [2, 3, 2]
    files = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert len(files) == 6 and not any(".tmp" in f for f in files)  # 3 entries + sidecars
    meta = json.loads(next((tmp_path / "data").glob("*.json")).read_text())
    assert meta["kind"] == "toy" and sorted(meta["arrays"]) == ["a", "b"]
    cached_arrays("toy", {"v": 2}, 1, lambda: build(2), enabled=False)
    assert calls == [2, 3, 2, 2]


def test_unreadable_or_foreign_entry_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path))
    cached_arrays("toy", {"v": 1}, 1, lambda: {"a": np.ones(3)})
    entry = next((tmp_path / "data").glob("*.npz"))
    entry.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        got = cached_arrays("toy", {"v": 1}, 1, lambda: {"a": np.zeros(3)})
    assert np.array_equal(got["a"], np.zeros(3))
    # an entry stored under another key at the same path (a hash collision) is not used
    np.savez(entry, a=np.full(3, 7.0), __snnsim_cache_key__=np.asarray("something else"))
    got = cached_arrays("toy", {"v": 1}, 1, lambda: {"a": np.full(3, 5.0)})
    assert np.array_equal(got["a"], np.full(3, 5.0))


def test_synthetic_nmnist_reads_its_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path))
    calls: list[int] = []
    real = synth.synthesize_events

    def counting(images, *a, **kw):
        calls.append(len(images))
        return real(images, *a, **kw)

    monkeypatch.setattr(synth, "synthesize_events", counting)
    a = synth.synthetic_nmnist("test", n=6, batch_size=4)
    b = synth.synthetic_nmnist("test", n=6, batch_size=2)  # batch size is not part of the key
    c = synth.synthetic_nmnist("test", n=6, cache=False)
    assert calls == [4, 2, 6]  # a generated, b read, c generated without the cache
    for x, y, z in zip(a.events, b.events, c.events, strict=True):
        assert np.array_equal(x, y) and np.array_equal(x, z)
        assert x.dtype == z.dtype
    assert list(a.labels) == list(b.labels)
    cfg = synth.SyntheticNMNISTConfig(jitter_us=50.0)
    synth.synthetic_nmnist("test", n=6, config=cfg)  # another generator parameter
    synth.synthetic_nmnist("test", n=6, seed=1)  # another seed
    assert sum(calls) == 6 * 4
