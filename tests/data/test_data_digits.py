"""Tests of the scikit-learn 8x8 digits loader and its split."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from snnsim.data import digits_datasets, digits_split_indices, load_digits_all, load_digits_split


def test_digits_shape_and_scaling():
    x, y = load_digits_all()
    ref = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0], ref.images / 16.0, atol=1e-7)
    assert x.min() == 0.0 and x.max() == 1.0


def test_digits_split_rule():
    _, y = load_digits_all()
    tr, te = digits_split_indices()
    rng = np.random.RandomState(0)
    exp_tr, exp_te = [], []
    for c in range(10):
        idx = rng.permutation(np.where(y == c)[0])
        k = int(np.floor(0.8 * idx.size))
        exp_tr += idx[:k].tolist()
        exp_te += idx[k:].tolist()
    assert tr.tolist() == exp_tr and te.tolist() == exp_te
    assert (len(tr), len(te)) == (1433, 364)
    assert not set(tr.tolist()) & set(te.tolist())
    assert len(tr) + len(te) == len(y)
    np.testing.assert_array_equal(digits_split_indices()[0], tr)


def test_digits_split_arrays_and_datasets():
    xtr, ytr = load_digits_split("train")
    xte, _ = load_digits_split("test", train_fraction=0.5)
    assert xtr.shape == (1433, 1, 8, 8) and ytr.shape == (1433,)
    assert xte.shape[0] == 1797 - sum(
        int(np.floor(0.5 * n)) for n in np.bincount(load_digits_all()[1])
    )
    dtr, dte = digits_datasets()
    assert len(dtr) == 1433 and len(dte) == 364
    with pytest.raises(ValueError, match="train_fraction"):
        digits_split_indices(train_fraction=1.0)
