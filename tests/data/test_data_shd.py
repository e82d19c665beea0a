"""The SHD/SSC HDF5 reader on a small generated file: tonic's event dtype and timestamp
conversion, errors naming the field, and the recordings run unchanged in the engine."""

from __future__ import annotations

import numpy as np
import pytest

import snnsim
from snnsim.data import SHD_DTYPE, SHD_SENSOR_SIZE, DataFormatError, read_shd, write_shd
from snnsim.events import sensor_input_shape

h5py = pytest.importorskip("h5py")


def _fixture(path, n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    times, units = [], []
    for _ in range(n):
        k = int(rng.integers(0, 200))
        times.append(np.sort(rng.uniform(0, 1.0, size=k)).astype(np.float32))
        units.append(rng.integers(0, 700, size=k).astype(np.uint16))
    labels = rng.integers(0, 20, size=n)
    write_shd(path, times, units, labels)
    return times, units, labels


def test_reads_what_was_written_as_tonic_does(tmp_path) -> None:
    times, units, labels = _fixture(tmp_path / "shd.h5")
    recs, y = read_shd(tmp_path / "shd.h5")
    np.testing.assert_array_equal(y, labels)
    assert len(recs) == len(times)
    for ev, t, u in zip(recs, times, units, strict=True):
        assert ev.dtype == SHD_DTYPE
        np.testing.assert_array_equal(ev["x"], u)
        np.testing.assert_array_equal(ev["t"], (t.astype(np.float64) * 1e6).astype(np.int64))
        assert np.all(ev["p"] == 1)
    tonic = pytest.importorskip("tonic")
    from tonic.io import make_structured_array

    want = make_structured_array(
        times[1].astype(np.float64) * 1e6, units[1], 1, dtype=tonic.datasets.SHD.dtype
    )
    for f in ("t", "x", "p"):
        np.testing.assert_array_equal(recs[1][f], want[f])
    assert tonic.datasets.SHD.sensor_size == SHD_SENSOR_SIZE
    assert read_shd(tmp_path / "shd.h5", limit=2)[1].shape == (2,)


def test_recordings_run_in_the_engine_as_in_the_reference(tmp_path) -> None:
    _fixture(tmp_path / "shd.h5", n=4, seed=1)
    recs, _ = read_shd(tmp_path / "shd.h5")
    shape = sensor_input_shape(SHD_SENSOR_SIZE)
    rng = np.random.default_rng(2)
    g = snnsim.Graph(input_shape=shape, precision="int", input_kind="events")
    g.conv1d("conv", "input", rng.integers(-20, 21, size=(4, 1, 7)).astype(np.int8), stride=3)
    g.dsr_if("sn1", "conv", theta=30, fire=15)
    g.sumpool1d("pool", "sn1", 4)
    g.flatten("flat", "pool")
    n = g.shapes()["flat"][0]
    g.linear("fc", "flat", rng.integers(-20, 21, size=(20, n)).astype(np.int8))
    g.integrate("out", "fc")
    g.set_output("out")
    a = snnsim.run(g, recs, steps=20, record=["sn1"])
    b = snnsim.run(g, recs, steps=20, record=["sn1"], mode="reference")
    np.testing.assert_array_equal(a.record["sn1"], b.record["sn1"])
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.counts.sops, b.counts.sops)


def test_bad_files_name_the_field(tmp_path) -> None:
    with pytest.raises(DataFormatError, match="no such file"):
        read_shd(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros(2, np.uint16))
    with pytest.raises(DataFormatError, match="spikes/times"):
        read_shd(tmp_path / "partial.h5")
    write_shd(tmp_path / "wide.h5", [np.array([0.1], np.float32)], [np.array([800])], [0])
    with pytest.raises(DataFormatError, match="'spikes/units' = 800"):
        read_shd(tmp_path / "wide.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        read_shd(tmp_path / "text.h5")
