"""Bugs the fuzzers found, kept as regression tests (docs/robustness.md, "Fuzzing").

The cargo-fuzz `engine` target found a stale accumulator in the engine: an int conv or linear
node that takes the checked (wide) path leaves its int64 accumulators non-zero, and the next
user of that scratch space that expects zeros (a pool scattering its window sums) adds to them.
A later chunk of steps, or the next sample run on the same state, then computed wrong values
(here a spurious overflow; with other numbers a silently wrong result). Fixed in
``rust/engine/ops/mod.rs::narrow_into``, which now zeroes the accumulators it reads.
"""

from __future__ import annotations

import numpy as np

import snnsim


def wide_conv_after_pool() -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(1, 4, 4), precision="int", input_kind="events")
    g.sumpool2d("pool", "input", 1)  # event counts are not spikes: the scatter path
    g.conv2d("conv", "pool", np.full((1, 1, 3, 3), 127), padding=1)  # bound > 2^31: wide path
    g.dsr_if("out", "conv", theta=2**30, fire=2**29)
    g.set_output("out")
    return g


def test_second_sample_on_a_reused_state_equals_the_first() -> None:
    x = np.zeros((1, 1, 4, 4), np.int32)
    x[0, 0, 1, 1] = 2**22  # 127 * 2^22 fits int32, 9 * 127 * 2^22 does not: checked path
    one = snnsim.run(wide_conv_after_pool(), x[None], record="out")
    two = snnsim.run(wide_conv_after_pool(), np.stack([x, x]), threads=1, record="out")
    np.testing.assert_array_equal(two.output_sum, np.concatenate([one.output_sum] * 2))
    np.testing.assert_array_equal(two.record["out"][1], one.record["out"][0])
