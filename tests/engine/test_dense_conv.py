"""The dense int8 conv kernel (AVX-512 VNNI, ``rust/kernels/vnni.rs``) gives the reference's
spikes and counts.

The engine takes it for int8 convs with output channels in multiples of 16 and at least 8
input channels, when a step's input is dense enough and lies in ``0..=255``; otherwise the
gather or scatter kernels run. The networks here are built so that the second conv takes it
(dense pooled spikes), so that values beyond 255 or below 0 send it back to the other kernels,
and every case is compared with the reference executor bit for bit at the best SIMD level and
with AVX-512 disabled, on one and two threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import snnsim
from snnsim import _core

COUNTS = ("spikes", "sops", "macs", "aux_ops", "state_updates")


def _net(seed: int, pool_m: int, graded: bool) -> snnsim.Graph:
    rng = np.random.default_rng(seed)
    g = snnsim.Graph(input_shape=(2, 16, 16), precision="int", input_kind="events")
    w1 = rng.integers(-40, 61, size=(16, 2, 3, 3))
    w2 = rng.integers(-128, 128, size=(32, 16, 3, 3))
    w3 = rng.integers(-60, 61, size=(10, 32 * 4 * 4))
    g.conv2d("conv1", "input", w1, rng.integers(-5, 6, size=16), padding=1)
    g.dsr_if("sn1", "conv1", theta=40, fire=20)
    # pooled spikes: window sums 0..4 times pool_m / 2 (beyond 255 when pool_m is large)
    g.avgpool2d("pool1", "sn1", 2, m=pool_m, f=1)
    if graded:
        # 1 - x: some inputs of conv2 negative
        g.scale("shift", "pool1", shift=np.full(16, 1), m=np.full(16, -2), f=1)
        src = "shift"
    else:
        src = "pool1"
    g.conv2d("conv2", src, w2, rng.integers(-50, 51, size=32), padding=1)
    g.dsr_if("sn2", "conv2", theta=900, fire=450)
    g.sumpool2d("pool2", "sn2", 2)
    g.flatten("flat", "pool2")
    g.linear("fc", "flat", w3)
    g.dsr_if("sn3", "fc", theta=100, fire=50)
    g.set_output("sn3")
    return g


@pytest.mark.parametrize(("pool_m", "graded"), [(3, False), (200, False), (3, True)])
def test_dense_conv_equals_reference(pool_m: int, graded: bool, restore_level: None) -> None:
    g = _net(seed=pool_m, pool_m=pool_m, graded=graded)
    rng = np.random.default_rng(4)
    frames = (rng.random((2, 5, 2, 16, 16)) < 0.4).astype(np.int32)
    record = ["sn1", "sn2", "sn3"]
    ref = snnsim.run(g, frames, mode="reference", record=record)
    sn1_rate = ref.record["sn1"].mean()
    assert sn1_rate > 0.05, f"the pooled input of conv2 is dense (sn1 fires {sn1_rate:.3f})"
    assert ref.record["sn2"].any(), "conv2's neurons fire"
    for level in ("avx512", "avx2"):
        _core.set_simd_level(level)
        for threads in (1, 2):
            for batch in (frames, frames[:1]):
                eng = snnsim.run(g, batch, record=record, threads=threads)
                n = len(batch)
                for name in record:
                    np.testing.assert_array_equal(
                        eng.record[name], ref.record[name][:n], err_msg=f"{level} {name}"
                    )
                for field in COUNTS:
                    np.testing.assert_array_equal(
                        getattr(eng.counts, field),
                        getattr(ref.counts, field)[:n],
                        err_msg=f"{level} {threads} {field}",
                    )
                np.testing.assert_array_equal(eng.output, ref.output[:n])
