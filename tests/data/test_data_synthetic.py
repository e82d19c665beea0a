"""Tests of the SYNTHETIC N-MNIST-like generator."""

import dataclasses

import numpy as np
import pytest

from snnsim.data import (
    EVENT_DTYPE,
    SyntheticNMNISTConfig,
    load_mnist5k_split,
    nmnist_dataset,
    save_synthetic_nmnist,
    synthesize_events,
    synthetic_nmnist,
)
from snnsim.data.synthetic_nmnist import displacements


@pytest.fixture(scope="module")
def images():
    x, _ = load_mnist5k_split("test")
    return x[:6]


def _square():
    img = np.zeros((28, 28))
    img[8:20, 8:20] = 1.0
    return img[None]


def test_plausible_events(images):
    cfg = SyntheticNMNISTConfig()
    evs = synthesize_events(images, seed=0)
    assert len(evs) == len(images)
    for ev in evs:
        assert ev.dtype == EVENT_DTYPE
        assert 500 < ev.size < 20000
        assert (
            ev["x"].min() >= 0 and ev["x"].max() < 34 and ev["y"].min() >= 0 and ev["y"].max() < 34
        )
        assert set(np.unique(ev["p"]).tolist()) == {0, 1}
        assert (np.diff(ev["t"]) >= 0).all()
        assert ev["t"][0] >= 0 and ev["t"][-1] <= cfg.duration_us + 10 * cfg.jitter_us
        # Activity in each of the three saccades.
        per_saccade = np.bincount(np.minimum(ev["t"] // cfg.saccade_us, 2), minlength=3)
        assert (per_saccade > 0.1 * ev.size).all()


def test_events_follow_the_image():
    ev = synthesize_events(_square(), seed=0)[0]
    # Padded square covers rows/cols 11..22; the motion moves it by at most 3 px.
    assert ev["x"].min() >= 11 - 3 and ev["x"].max() <= 22 + 3
    assert ev["y"].min() >= 11 - 3 and ev["y"].max() <= 22 + 3
    blank = synthesize_events(np.zeros((1, 28, 28)), seed=0)[0]
    assert blank.size == 0


def test_deterministic_and_batch_independent(images):
    a = synthesize_events(images, seed=7, keys=np.arange(10, 16))
    b = synthesize_events(images, seed=7, keys=np.arange(10, 16))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    part = synthesize_events(images[3:], seed=7, keys=np.arange(13, 16))
    for x, y in zip(a[3:], part, strict=True):
        np.testing.assert_array_equal(x, y)
    other = synthesize_events(images[:1], seed=8, keys=[10])[0]
    assert not np.array_equal(other, a[0])


def test_refractory_period_respected(images):
    cfg = SyntheticNMNISTConfig(jitter_us=0.0, refractory_us=500, max_events_per_sample=8)
    ev = synthesize_events(images[:2], config=cfg)[0]
    pix = ev["y"].astype(np.int64) * 34 + ev["x"]
    order = np.lexsort((ev["t"], pix))
    same = np.diff(pix[order]) == 0
    gaps = np.diff(ev["t"][order])[same]
    assert gaps.min() >= 500


def test_displacements_triangle():
    cfg = SyntheticNMNISTConfig()
    t, dx, dy = displacements(cfg)
    assert t.shape == (300,) and t[0] == 1000 and t[-1] == 300_000
    assert dx.shape == (301,)
    assert dx[0] == pytest.approx(dx[-1]) and dy[0] == pytest.approx(dy[-1])
    assert np.abs(dx).max() <= 3 and np.abs(dy).max() <= 3
    assert dx.mean() == pytest.approx(0.0, abs=0.05) and dy.mean() == pytest.approx(0.0, abs=0.05)


def test_config_validation():
    with pytest.raises(ValueError, match="threshold"):
        synthesize_events(_square(), config=SyntheticNMNISTConfig(threshold=0.0))
    with pytest.raises(ValueError, match="multiple of sample_us"):
        synthesize_events(_square(), config=SyntheticNMNISTConfig(sample_us=700))
    with pytest.raises(ValueError, match="images must be"):
        synthesize_events(np.zeros((2, 34, 34)))
    noisy = synthesize_events(
        np.zeros((1, 28, 28)), config=SyntheticNMNISTConfig(noise_rate_hz=5.0)
    )[0]
    assert 0 < noisy.size and (np.diff(noisy["t"]) >= 0).all()


def test_dataset_is_marked_synthetic_and_saves_as_nmnist(tmp_path):
    ds = synthetic_nmnist("test", n=4, seed=1)
    assert ds.synthetic is True and type(ds).synthetic is True
    assert ds.describe()["synthetic"] is True
    assert len(ds) == 4 and ds.sensor_size == (34, 34, 2)
    _, y = load_mnist5k_split("test")
    assert ds.labels.tolist() == y[:4].tolist()
    again = synthetic_nmnist("test", n=4, seed=1)
    for a, b in zip(ds.events, again.events, strict=True):
        np.testing.assert_array_equal(a, b)
    paths = save_synthetic_nmnist(ds, tmp_path)
    assert "SYNTHETIC" in (tmp_path / "SYNTHETIC.txt").read_text()
    assert all(p.parent.parent.name == "Test" for p in paths)
    back = nmnist_dataset(tmp_path, "test")
    assert len(back) == 4
    got = {f.name: back[i] for i, f in enumerate(back.files)}
    for p, ev, lab in zip(paths, ds.events, ds.labels, strict=True):
        np.testing.assert_array_equal(got[p.name][0], ev)
        assert got[p.name][1] == lab
    assert dataclasses.asdict(ds.config) == ds.describe()["config"]


def test_events_accepted_by_core_validation(images):
    import snnsim.events as core

    for ev in synthesize_events(images[:2], seed=3):
        core.validate_events(ev, (2, 34, 34))
