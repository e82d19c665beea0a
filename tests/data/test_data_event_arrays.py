"""Tests of snnsim.data.event_arrays and the event Dataset wrappers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from snnsim.data import (
    EVENT_DTYPE,
    DataFormatError,
    EventDataset,
    as_events,
    collate_events,
    concat_events,
    empty_events,
    make_events,
    validate_events,
)


def test_make_events_maps_polarity_and_dtype():
    ev = make_events([1, 2, 3], [4, 5, 6], [-1, 1, 0], [0, 10, 10])
    assert ev.dtype == EVENT_DTYPE
    assert ev["p"].tolist() == [0, 1, 0]
    assert ev["t"].tolist() == [0, 10, 10]
    ev_bool = make_events([0], [0], [True], [5])
    assert ev_bool["p"].tolist() == [1]


@pytest.mark.parametrize(
    "args, match",
    [
        (([0, 1], [0], [0, 0], [0, 0]), "field 'y' has 1 entries"),
        (([0], [0], [2], [0]), "polarity"),
        (([0.5], [0], [0], [0]), "field 'x' must be integer"),
        (([40000], [0], [0], [0]), "field 'x' has values outside int16"),
    ],
)
def test_make_events_rejects_bad_columns(args, match):
    with pytest.raises(ValueError, match=match):
        make_events(*args)


def test_as_events_converts_other_layouts():
    other = np.zeros(2, dtype=[("t", "<u4"), ("x", "u1"), ("y", "u1"), ("p", "?")])
    other["t"] = [3, 4]
    other["x"] = [7, 8]
    other["p"] = [True, False]
    ev = as_events(other)
    assert ev.dtype == EVENT_DTYPE
    assert ev["x"].tolist() == [7, 8] and ev["p"].tolist() == [1, 0] and ev["t"].tolist() == [3, 4]
    with pytest.raises(DataFormatError, match="missing field"):
        as_events(np.zeros(2, dtype=[("x", "i2"), ("y", "i2")]))
    with pytest.raises(DataFormatError, match="structured"):
        as_events(np.zeros(3))


def test_validate_events_reports_field_index_value():
    ev = make_events([0, 33, 34], [0, 1, 2], [0, 1, 1], [0, 5, 9])
    with pytest.raises(
        DataFormatError, match=r"rec\.bin: field 'x' must be in \[0, 34\), event 2 has x=34"
    ):
        validate_events(ev, (34, 34), name="rec.bin")
    ev = make_events([0, 1], [0, 1], [0, 1], [5, 4])
    with pytest.raises(DataFormatError, match="non-decreasing, event 1 has t=4"):
        validate_events(ev)
    assert validate_events(ev, sorted_t=False).size == 2
    ev = make_events([0], [0], [0], [-1])
    with pytest.raises(DataFormatError, match="t=-1"):
        validate_events(ev)
    assert validate_events(empty_events(), (34, 34)).size == 0


def test_concat_events_offsets():
    a = make_events([1, 2], [3, 4], [1, 0], [0, 1])
    b = empty_events()
    c = make_events([5], [6], [1], [7])
    x, y, p, t, off = concat_events([a, b, c])
    assert off.tolist() == [0, 2, 2, 3]
    assert x.tolist() == [1, 2, 5] and y.tolist() == [3, 4, 6] and p.tolist() == [1, 0, 1]
    assert t.tolist() == [0, 1, 7]
    assert all(v.dtype == np.int64 for v in (x, y, p, t, off))


def test_event_dataset_and_collate():
    recs = [make_events([i], [i], [1], [i]) for i in range(5)]
    ds = EventDataset(recs, [0, 1, 2, 3, 4], (34, 34, 2))
    assert len(ds) == 5 and ds.synthetic is False
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_events)
    items, labels = next(iter(loader))
    assert len(items) == 2 and labels.dtype == torch.int64 and labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="labels"):
        EventDataset(recs, [0, 1], (34, 34, 2))
