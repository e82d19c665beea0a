"""Tests of the N-MNIST .bin reader/writer and directory listing."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from snnsim.data import (
    EVENT_DTYPE,
    DataFormatError,
    collate_events,
    decode_nmnist_bytes,
    encode_nmnist_events,
    list_nmnist_files,
    make_events,
    nmnist_dataset,
    read_nmnist_file,
    write_nmnist_file,
)

# Hand-assembled events (x, y, p, t) and their 5 bytes each.
HAND = [
    ((5, 33, 1, 0x012345), bytes([0x05, 0x21, 0x81, 0x23, 0x45])),
    ((0, 0, 0, 0x7FFFFF), bytes([0x00, 0x00, 0x7F, 0xFF, 0xFF])),
    ((33, 7, 1, 0x000100), bytes([0x21, 0x07, 0x80, 0x01, 0x00])),
    ((12, 19, 0, 0x410000), bytes([0x0C, 0x13, 0x41, 0x00, 0x00])),
]


def test_decode_hand_computed_bytes(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(b"".join(b for _, b in HAND))
    ev = read_nmnist_file(path)
    assert ev.dtype == EVENT_DTYPE
    assert [tuple(int(v) for v in e) for e in ev] == [e for e, _ in HAND]


def test_encode_hand_computed_bytes():
    cols = list(zip(*[e for e, _ in HAND], strict=True))
    assert encode_nmnist_events(make_events(*cols)) == b"".join(b for _, b in HAND)


@st.composite
def nmnist_events(draw):
    n = draw(st.integers(0, 40))

    def ints(lo: int, hi: int) -> st.SearchStrategy[list[int]]:
        return st.lists(st.integers(lo, hi), min_size=n, max_size=n)

    x, y, p = draw(ints(0, 33)), draw(ints(0, 33)), draw(ints(0, 1))
    t = sorted(draw(ints(0, (1 << 23) - 1)))
    return make_events(x, y, p, t)


@given(nmnist_events())
def test_roundtrip_bytes(ev):
    data = encode_nmnist_events(ev)
    assert len(data) == 5 * ev.size
    np.testing.assert_array_equal(decode_nmnist_bytes(data), ev)


def test_roundtrip_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    ev = make_events(
        rng.integers(0, 34, n),
        rng.integers(0, 34, n),
        rng.integers(0, 2, n),
        np.sort(rng.integers(0, 300_000, n)),
    )
    path = tmp_path / "a" / "b.bin"
    write_nmnist_file(path, ev)
    assert path.stat().st_size == 5 * n
    np.testing.assert_array_equal(read_nmnist_file(path), ev)


def test_truncated_file(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(HAND[0][1] + HAND[1][1][:3])
    with pytest.raises(
        DataFormatError, match=r"bad\.bin: truncated N-MNIST file: 8 bytes is not a multiple of 5"
    ):
        read_nmnist_file(path)


def test_empty_and_missing_and_offsensor(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    assert read_nmnist_file(tmp_path / "empty.bin").size == 0
    with pytest.raises(DataFormatError, match="not found"):
        read_nmnist_file(tmp_path / "missing.bin")
    (tmp_path / "off.bin").write_bytes(bytes([40, 1, 0, 0, 1]))
    with pytest.raises(DataFormatError, match=r"off\.bin: event 0 has x=40, outside the 34x34"):
        read_nmnist_file(tmp_path / "off.bin")
    assert read_nmnist_file(tmp_path / "off.bin", check_sensor=False)["x"].tolist() == [40]


def test_writer_rejects_unencodable(tmp_path):
    with pytest.raises(DataFormatError, match="t=8388608"):
        write_nmnist_file(tmp_path / "x.bin", make_events([0], [0], [1], [1 << 23]))
    with pytest.raises(DataFormatError, match="x=300"):
        encode_nmnist_events(make_events([300], [0], [1], [0]))
    assert not (tmp_path / "x.bin").exists()


def test_directory_reader(tmp_path):
    rng = np.random.default_rng(3)
    expected = {}
    for folder in ("Train", "Test"):
        for digit in (0, 3, 9):
            for k in (2, 1):
                n = int(rng.integers(1, 20))
                ev = make_events(
                    rng.integers(0, 34, n),
                    rng.integers(0, 34, n),
                    rng.integers(0, 2, n),
                    np.arange(n),
                )
                path = tmp_path / folder / str(digit) / f"{k:05d}.bin"
                write_nmnist_file(path, ev)
                expected[path] = (ev, digit)
    (tmp_path / "Train" / "3" / "notes.txt").write_text("ignored")
    files, labels = list_nmnist_files(tmp_path, "train")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "Train/0/00001.bin", "Train/0/00002.bin", "Train/3/00001.bin",
        "Train/3/00002.bin", "Train/9/00001.bin", "Train/9/00002.bin",
    ]  # fmt: skip
    assert labels.tolist() == [0, 0, 3, 3, 9, 9]
    ds = nmnist_dataset(tmp_path, "test")
    assert len(ds) == 6 and ds.sensor_size == (34, 34, 2)
    for i in range(len(ds)):
        ev, lab = ds[i]
        exp_ev, exp_lab = expected[ds.files[i]]
        np.testing.assert_array_equal(ev, exp_ev)
        assert lab == exp_lab
    items, labs = collate_events([ds[0], ds[1]])
    assert len(items) == 2 and labs.tolist() == [0, 0]


def test_directory_errors(tmp_path):
    with pytest.raises(DataFormatError, match="Train: N-MNIST split directory not found"):
        list_nmnist_files(tmp_path, "train")
    (tmp_path / "Test" / "1").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="no <digit>/\\*.bin files"):
        list_nmnist_files(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        list_nmnist_files(tmp_path, "validation")
