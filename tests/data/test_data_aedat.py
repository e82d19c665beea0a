"""Tests of the AEDAT (DVS128) reader/writer and the DVS-CIFAR10 framing."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from snnsim.data import (
    EVENT_DTYPE,
    DataFormatError,
    count_frames,
    decode_dvs128,
    dvs_cifar10_events_dataset,
    dvs_cifar10_frames_dataset,
    dvs_cifar10_split,
    encode_dvs128,
    events_to_frames,
    list_dvs_cifar10_files,
    make_events,
    read_aedat,
    read_aedat_raw,
    read_dvs_cifar10_frames,
    resize_frames,
    split_header,
    write_aedat,
)
from snnsim.data.dvs_cifar10 import CLASSES

HEADER = b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n# Start-Time: whenever\r\n"


def _event_bytes(addr, ts):
    return addr.to_bytes(4, "big") + ts.to_bytes(4, "big")


def test_header_skipping_and_decoding(tmp_path):
    # row 5, column 10, polarity bit 1 -> address 0x0515; timestamp 0x00010203.
    body = (
        _event_bytes(0x0515, 0x00010203)
        + _event_bytes(0x7F00, 0x00010207)
        + _event_bytes(0x00FE, 0x00010209)
    )
    path = tmp_path / "rec.aedat"
    path.write_bytes(HEADER + body)
    a, t = read_aedat_raw(path)
    assert a.tolist() == [0x0515, 0x7F00, 0x00FE] and t.tolist() == [66051, 66055, 66057]
    raw = read_aedat(path, layout="raw")
    assert raw.dtype == EVENT_DTYPE
    assert [tuple(int(v) for v in e) for e in raw] == [
        (10, 5, 1, 66051),
        (0, 127, 0, 66055),
        (127, 0, 0, 66057),
    ]
    jaer = read_aedat(path)  # default layout: x mirrored, p = 1 - bit
    assert [tuple(int(v) for v in e) for e in jaer] == [
        (117, 5, 0, 66051),
        (127, 127, 1, 66055),
        (0, 0, 1, 66057),
    ]
    tr = read_aedat(path, layout="transposed")
    assert [tuple(int(v) for v in e) for e in tr] == [
        (122, 117, 0, 66051),
        (0, 127, 1, 66055),
        (127, 0, 1, 66057),
    ]


def test_split_header_lines_and_binary_hash():
    lines, body = split_header(HEADER + b"\x00\x01")
    assert lines == ["#!AER-DAT2.0", "# This is a raw AE data file", "# Start-Time: whenever"]
    assert body == b"\x00\x01"
    # A body that begins with the byte '#' followed by binary data is not a header line.
    lines, body = split_header(b"#\x00\x05\x15\x00\x00\x00\x01")
    assert lines == [] and len(body) == 8
    with pytest.raises(DataFormatError, match="no line ending"):
        split_header(b"#!AER-DAT2.0")


def test_no_header_and_aedat1(tmp_path):
    p2 = tmp_path / "nohead.aedat"
    p2.write_bytes(_event_bytes(0x0515, 3))
    assert read_aedat(p2, layout="raw")["x"].tolist() == [10]
    p1 = tmp_path / "v1.dat"
    p1.write_bytes(b"#!AER-DAT1.0\r\n" + (0x0515).to_bytes(2, "big") + (42).to_bytes(4, "big"))
    ev = read_aedat(p1, layout="raw")
    assert [tuple(int(v) for v in e) for e in ev] == [(10, 5, 1, 42)]


def test_aedat_errors(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        read_aedat(tmp_path / "missing.aedat")
    p = tmp_path / "trunc.aedat"
    p.write_bytes(HEADER + _event_bytes(0x0515, 3) + b"\x00\x00\x05")
    with pytest.raises(DataFormatError, match=r"trunc\.aedat: truncated AEDAT 2\.0 body: 11 bytes"):
        read_aedat(p)
    p3 = tmp_path / "v3.aedat"
    p3.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(DataFormatError, match="version '3.1' is not supported"):
        read_aedat(p3)


def test_garbage_is_not_read_as_a_recording(tmp_path):
    """Random bytes used to read as a valid empty recording."""
    rng = np.random.default_rng(0)
    p = tmp_path / "random.aedat"
    for n in (8, 800, 80_000):
        p.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        with pytest.raises(DataFormatError, match="not a DVS128 recording"):
            read_aedat(p)
    for n in (60, 600, 60_000):
        # with a version 1.0 header (16-bit addresses, 6-byte events) random events do not pass
        body = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        p.write_bytes(b"#!AER-DAT1.0\r\n" + body)
        with pytest.raises(DataFormatError, match="not a DVS128 recording"):
            read_aedat(p)
    # only special events: not a recording
    p.write_bytes(HEADER + _event_bytes(0x8000, 1) + _event_bytes(0x8001, 2))
    with pytest.raises(DataFormatError, match="none of its 2 events is a pixel event"):
        read_aedat(p)
    # an empty body is an empty recording
    p.write_bytes(HEADER)
    assert read_aedat(p).size == 0


def test_timestamp_wrap_is_unwrapped(tmp_path):
    p = tmp_path / "wrap.aedat"
    p.write_bytes(
        HEADER
        + _event_bytes(0x0515, 2**32 - 5)
        + _event_bytes(0x0515, 2**32 - 1)
        + _event_bytes(0x0515, 3)
    )
    assert read_aedat(p)["t"].tolist() == [2**32 - 5, 2**32 - 1, 2**32 + 3]
    p.write_bytes(HEADER + _event_bytes(0x0515, 100) + _event_bytes(0x0515, 50))
    with pytest.raises(DataFormatError, match="timestamps go backwards at pixel event 1"):
        read_aedat(p)


def test_special_events_dropped_or_rejected():
    a = np.array([0x0515, 0x8000, 0x0002], dtype=np.uint32)
    t = np.array([1, 2, 3])
    assert decode_dvs128(a, t, "raw")["t"].tolist() == [1, 3]
    with pytest.raises(DataFormatError, match="event 1 has a non-pixel address 0x00008000"):
        decode_dvs128(a, t, "raw", drop_special=False)


@st.composite
def dvs_events(draw):
    n = draw(st.integers(0, 30))

    def ints(lo: int, hi: int) -> st.SearchStrategy[list[int]]:
        return st.lists(st.integers(lo, hi), min_size=n, max_size=n)

    return make_events(
        draw(ints(0, 127)), draw(ints(0, 127)), draw(ints(0, 1)), sorted(draw(ints(0, 2**32 - 1)))
    )


@given(dvs_events(), st.sampled_from(["jaer", "transposed", "raw"]))
def test_address_roundtrip(ev, layout):
    a = encode_dvs128(ev, layout)
    assert (a & ~np.uint32(0x7FFF) == 0).all()
    np.testing.assert_array_equal(decode_dvs128(a, ev["t"], layout), ev)


@pytest.mark.parametrize("layout", ["jaer", "transposed", "raw"])
def test_file_roundtrip(tmp_path, layout):
    rng = np.random.default_rng(0)
    n = 500
    t = np.sort(rng.integers(0, 10**6, n))
    ev = make_events(rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), t)
    path = tmp_path / "c" / "x.aedat"
    write_aedat(path, ev, layout)
    assert path.read_bytes().startswith(b"#!AER-DAT2.0\r\n")
    np.testing.assert_array_equal(read_aedat(path, layout), ev)
    with pytest.raises(DataFormatError, match="x=128"):
        write_aedat(path, make_events([128], [0], [0], [0]))
    with pytest.raises(ValueError, match="header line"):
        write_aedat(path, ev, header=["no hash"])


def _events_n(n, seed=0):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), np.arange(n)
    )


@pytest.mark.parametrize(
    "e, per_frame",
    [
        (45, [2] * 19 + [7]),
        (40, [2] * 20),
        (7, [0] * 19 + [7]),
        (0, [0] * 20),
        (20, [1] * 20),
        (39, [1] * 19 + [20]),
    ],
)
def test_equal_count_framing(e, per_frame):
    ev = _events_n(e)
    frames = count_frames(ev, 20)
    assert frames.shape == (20, 2, 128, 128) and frames.dtype == np.float32
    assert frames.sum(axis=(1, 2, 3)).astype(int).tolist() == per_frame
    # Every event sits at (frame, p, y, x) given by its position in the stream.
    k = e // 20
    for i in range(e):
        j = min(i // k, 19) if k else 19
        assert frames[j, ev["p"][i], ev["y"][i], ev["x"][i]] >= 1


def test_framing_channels_positions():
    ev = make_events([3, 3, 100], [7, 7, 0], [1, 1, 0], [0, 1, 2])
    f = count_frames(ev, 1)
    assert f[0, 1, 7, 3] == 2 and f[0, 0, 0, 100] == 1 and f.sum() == 3
    with pytest.raises(DataFormatError, match="field 'y' must be in \\[0, 128\\)"):
        count_frames(make_events([0], [128], [0], [0]), 20)


def test_resize_to_48():
    ev = _events_n(1000)
    out = events_to_frames(ev)
    assert out.shape == (20, 2, 48, 48) and out.dtype == np.float32 and out.min() >= 0
    const = np.full((2, 2, 128, 128), 3.0, dtype=np.float32)
    for mode in ("area", "bilinear", "nearest"):
        np.testing.assert_allclose(resize_frames(const, 48, mode), 3.0, rtol=1e-6)
    # area == adaptive average pooling
    x = np.random.default_rng(1).random((1, 2, 128, 128)).astype(np.float32)
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 48).numpy()
    np.testing.assert_allclose(resize_frames(x, 48, "area"), ref, rtol=1e-5, atol=1e-6)
    assert resize_frames(x, None).shape == (1, 2, 128, 128)
    with pytest.raises(ValueError, match="mode"):
        resize_frames(x, 48, "bicubic")


def _make_tree(root, per_class=3):
    for label, cls in enumerate(CLASSES):
        for k in range(per_class):
            write_aedat(
                root / cls / f"cifar10_{cls}_{k}.aedat", _events_n(50 + k, seed=label * 10 + k)
            )


def test_dvs_cifar10_directory(tmp_path):
    _make_tree(tmp_path)
    (tmp_path / "README.txt").write_text("x")
    files, labels = list_dvs_cifar10_files(tmp_path)
    assert len(files) == 30 and labels.tolist() == sum(([c] * 3 for c in range(10)), [])
    assert files[0].name == "cifar10_airplane_0.aedat" and files[-1].parent.name == "truck"
    tr, te = dvs_cifar10_split(labels, 2 / 3)
    assert len(tr) == 20 and len(te) == 10 and not set(tr) & set(te)
    assert te.tolist() == [2 + 3 * c for c in range(10)]
    ds = dvs_cifar10_frames_dataset(tmp_path, "test", train_fraction=2 / 3, cache=True)
    assert len(ds) == 10 and ds.synthetic is False
    frames, lab = ds[3]
    assert tuple(frames.shape) == (20, 2, 48, 48) and frames.dtype == torch.float32 and lab == 3
    np.testing.assert_array_equal(frames.numpy(), read_dvs_cifar10_frames(files[te[3]]))
    assert ds[3][0] is frames  # cached
    ev_ds = dvs_cifar10_events_dataset(tmp_path)
    ev, lab = ev_ds[4]
    np.testing.assert_array_equal(ev, _events_n(51, seed=11))
    assert lab == 1


def test_dvs_cifar10_directory_errors(tmp_path):
    with pytest.raises(DataFormatError, match="directory not found"):
        list_dvs_cifar10_files(tmp_path / "none")
    (tmp_path / "airplane").mkdir()
    with pytest.raises(DataFormatError, match="automobile.*class folder 'automobile' not found"):
        list_dvs_cifar10_files(tmp_path)
    with pytest.raises(DataFormatError, match="no \\*.aedat files"):
        list_dvs_cifar10_files(tmp_path, classes=["airplane"])


def test_framing_matches_core_count_binning():
    import snnsim.events as core

    for e in (0, 7, 45, 1001):
        ev = _events_n(e, seed=e)
        ref = core.bin_events(ev, (2, 128, 128), 20, "count")
        np.testing.assert_array_equal(count_frames(ev, 20), ref.astype(np.float32))
