"""Elementwise steps split across a sample's threads (batch 1, ``threads=2``): residual adds and
fixed-point rescales of maps large enough to be split give the reference's spikes and counts,
and an overflow in either part is reported with the node's name."""

from __future__ import annotations

import numpy as np
import pytest

import snnsim
from snnsim import _core

COUNTS = ("spikes", "sops", "macs", "aux_ops", "state_updates")
SHAPE = (2, 24, 24)  # event input; the maps are 32 x 24 x 24 = 18432 values, split
C = 32


def _net(seed: int, m: int = 3) -> snnsim.Graph:
    rng = np.random.default_rng(seed)
    c = C
    g = snnsim.Graph(input_shape=SHAPE, precision="int", input_kind="events")
    g.conv2d("conv1", "input", rng.integers(-60, 61, size=(c, 2, 3, 3)), padding=1)
    g.dsr_if("sn1", "conv1", theta=120, fire=60)
    # a dense rescale and a dense + dense add (split by ranges), then a sparse + dense add
    g.scale("sc", "conv1", m=rng.integers(1, m + 1, size=c), shift=np.full(c, -1), f=1)
    g.add("sum", "conv1", "sc")
    g.add("sum2", "sn1", "sum")
    g.dsr_if("sn2", "sum2", theta=200, fire=100)
    g.sumpool2d("pool", "sn2", 4)
    g.flatten("flat", "pool")
    g.linear("fc", "flat", rng.integers(-30, 31, size=(10, c * 6 * 6)))
    g.dsr_if("out", "fc", theta=60, fire=30)
    g.set_output("out")
    return g


def test_split_elementwise_steps_equal_reference(restore_level: None) -> None:
    g = _net(seed=1)
    frames = (np.random.default_rng(2).random((1, 4, *SHAPE)) < 0.3).astype(np.int32)
    record = ["sn1", "sn2", "out"]
    ref = snnsim.run(g, frames, mode="reference", record=record)
    assert ref.record["sn2"].mean() > 0.01, "the residual stream makes sn2 fire"
    for level in ("avx512", "avx2", "portable"):
        _core.set_simd_level(level)
        for threads in (1, 2):
            eng = snnsim.run(g, frames, record=record, threads=threads)
            for name in record:
                np.testing.assert_array_equal(
                    eng.record[name], ref.record[name], err_msg=f"{level} {threads} {name}"
                )
            for field in COUNTS:
                np.testing.assert_array_equal(
                    getattr(eng.counts, field),
                    getattr(ref.counts, field),
                    err_msg=f"{level} {threads} {field}",
                )
            np.testing.assert_array_equal(eng.output, ref.output)


@pytest.mark.parametrize("threads", [1, 2])
def test_split_steps_report_overflow_by_node(threads: int) -> None:
    """A rescale by 2**30 overflows int32 somewhere in the map: the error names the node,
    whichever thread's part it was in."""
    g = _net(seed=3, m=1)
    g.node("sc").tensors["m"] = np.full(C, 2**30, np.int32)
    frames = (np.random.default_rng(4).random((1, 2, *SHAPE)) < 0.3).astype(np.int32)
    with pytest.raises(snnsim.NumericError, match=r"'sc'"):
        snnsim.run(g, frames, threads=threads)
