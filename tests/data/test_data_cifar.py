"""Tests of the CIFAR-10/100 readers on small fake batches in the official pickle format."""

import collections
import pickle

import numpy as np
import pytest

from snnsim.data import (
    DataFormatError,
    cifar10_label_names,
    cifar100_label_names,
    cifar_datasets,
    cifar_to_float32,
    load_cifar10,
    load_cifar100,
)

CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _dump(path, obj):
    # Protocol 2 with bytes keys, like the official (Python 2) files.
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _batch(rng, n, label_key=b"labels", n_classes=10):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, n_classes, size=n).tolist()
    return {
        b"batch_label": b"fake batch",
        label_key: labels,
        b"data": data,
        b"filenames": [b"f.png"] * n,
    }


@pytest.fixture
def cifar10_dir(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for i in range(1, 6):
        batches[f"data_batch_{i}"] = _batch(rng, 3 + i)
    batches["test_batch"] = _batch(rng, 4)
    for name, b in batches.items():
        _dump(d / name, b)
    _dump(
        d / "batches.meta", {b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_vis": 3072}
    )
    return d, batches


@pytest.fixture
def cifar100_dir(tmp_path):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(2)
    batches = {}
    for name, n in (("train", 6), ("test", 3)):
        b = _batch(rng, n, b"fine_labels", 100)
        b[b"coarse_labels"] = rng.integers(0, 20, size=n).tolist()
        batches[name] = b
        _dump(d / name, b)
    _dump(
        d / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return d, batches


def test_cifar10_train_test_layout(cifar10_dir):
    d, batches = cifar10_dir
    x, y = load_cifar10(d, "train")
    assert x.shape == (sum(3 + i for i in range(1, 6)), 3, 32, 32) and x.dtype == np.uint8
    assert y.dtype == np.int64
    exp_data = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    exp_y = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert y.tolist() == exp_y
    # Channel planes, row-major inside each plane.
    n, c, r, col = 7, 2, 5, 30
    assert x[n, c, r, col] == exp_data[n, c * 1024 + r * 32 + col]
    np.testing.assert_array_equal(x.reshape(len(x), -1), exp_data)
    xt, yt = load_cifar10(d, "test")
    assert xt.shape == (4, 3, 32, 32) and yt.tolist() == batches["test_batch"][b"labels"]
    assert cifar10_label_names(d) == CIFAR10_NAMES
    # The parent of the extracted folder works too.
    assert load_cifar10(d.parent, "test")[0].shape == (4, 3, 32, 32)


def test_cifar10_float_and_datasets(cifar10_dir):
    d, _ = cifar10_dir
    x, _ = load_cifar10(d, "test")
    f = cifar_to_float32(x)
    assert f.dtype == np.float32 and f.min() >= 0.0 and f.max() <= 1.0
    np.testing.assert_allclose(f * 255.0, x, atol=1e-4)
    tr, te = cifar_datasets(d)
    assert len(tr) == 30 and len(te) == 4
    img, lab = te[0]
    assert tuple(img.shape) == (3, 32, 32)


def test_cifar100_fine_coarse(cifar100_dir):
    d, batches = cifar100_dir
    x, y = load_cifar100(d, "train")
    assert x.shape == (6, 3, 32, 32) and y.tolist() == batches["train"][b"fine_labels"]
    _, yc = load_cifar100(d, "test", "coarse")
    assert yc.tolist() == batches["test"][b"coarse_labels"]
    assert cifar100_label_names(d)[:2] == ["fine0", "fine1"]
    assert len(cifar100_label_names(d, "coarse")) == 20
    tr, te = cifar_datasets(d, "cifar100", "coarse")
    assert len(tr) == 6 and len(te) == 3


def test_missing_directory_and_file(tmp_path, cifar10_dir):
    with pytest.raises(DataFormatError, match="directory not found"):
        load_cifar10(tmp_path / "nope")
    d, _ = cifar10_dir
    (d / "data_batch_3").unlink()
    with pytest.raises(DataFormatError, match=r"data_batch_3: CIFAR file not found"):
        load_cifar10(d, "train")
    with pytest.raises(DataFormatError, match="meta: CIFAR file not found"):
        cifar100_label_names(tmp_path)


def test_malformed_pickles(cifar10_dir):
    d, batches = cifar10_dir
    (d / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DataFormatError, match="test_batch: not a valid CIFAR pickle"):
        load_cifar10(d, "test")
    (d / "test_batch").write_bytes(pickle.dumps(batches["test_batch"], protocol=2)[:50])
    with pytest.raises(DataFormatError, match="not a valid CIFAR pickle"):
        load_cifar10(d, "test")
    _dump(d / "test_batch", [1, 2, 3])
    with pytest.raises(DataFormatError, match="expected a pickled dict, got list"):
        load_cifar10(d, "test")


def test_refuses_foreign_globals(cifar10_dir):
    d, batches = cifar10_dir
    b = dict(batches["test_batch"])
    b[b"extra"] = collections.OrderedDict()
    _dump(d / "test_batch", b)
    with pytest.raises(DataFormatError, match="collections.OrderedDict' is not allowed"):
        load_cifar10(d, "test")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b.pop(b"data"), r"missing key b'data'"),
        (lambda b: b.pop(b"labels"), r"missing key b'labels'"),
        (
            lambda b: b.__setitem__(b"data", b[b"data"].astype(np.int32)),
            r"uint8 array \[N, 3072\], got int32",
        ),
        (lambda b: b.__setitem__(b"data", b[b"data"][:, :100]), r"got uint8 \(4, 100\)"),
        (
            lambda b: b.__setitem__(b"labels", b[b"labels"][:-1]),
            "has 3 labels but b'data' has 4 rows",
        ),
        (lambda b: b.__setitem__(b"labels", [0, 1, 2, 10]), "label 10 outside 0..9"),
    ],
)
def test_bad_keys_and_values(cifar10_dir, mutate, match):
    d, batches = cifar10_dir
    b = dict(batches["test_batch"])
    mutate(b)
    _dump(d / "test_batch", b)
    with pytest.raises(DataFormatError, match=match):
        load_cifar10(d, "test")


def test_cifar100_bad_label_key(cifar100_dir):
    d, batches = cifar100_dir
    b = dict(batches["test"])
    del b[b"coarse_labels"]
    _dump(d / "test", b)
    assert load_cifar100(d, "test", "fine")[1].shape == (3,)
    with pytest.raises(DataFormatError, match=r"test: missing key b'coarse_labels'"):
        load_cifar100(d, "test", "coarse")
    with pytest.raises(ValueError, match="label_kind"):
        load_cifar100(d, "test", "medium")
