"""The engine's kernels give identical results at every instruction-set level.

Every kernel has a portable body and AVX2 / AVX-512 compilations of that same body
(``rust/kernels/simd.rs``); the level only changes the vector width, never the operations or
their order. Two checks:

* in one process, ``_core.set_simd_level`` caps the level and the same runs (float32 and int,
  conv/pool/linear/neuron paths, a sample split across threads) must agree bit for bit;
* the parity property suite (tests/engine/test_parity.py) runs unchanged in a subprocess with
  ``SNNSIM_SIMD=portable`` and ``SNNSIM_SIMD=avx2``, so the torch-vs-engine contract is checked
  with the SIMD paths disabled too (the main run covers the best level of the machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import snnsim
from snnsim import _core

LEVELS = ("portable", "avx2", "avx512")
HERE = Path(__file__).parent


def _event_net(precision: str, seed: int) -> snnsim.Graph:
    rng = np.random.default_rng(seed)
    g = snnsim.Graph(input_shape=(2, 24, 24), precision=precision, input_kind="events")
    w1 = rng.integers(-60, 61, size=(20, 2, 3, 3))
    w2 = rng.integers(-60, 61, size=(36, 20, 3, 3))
    w3 = rng.integers(-60, 61, size=(10, 36 * 6 * 6))
    if precision == "int":
        g.conv2d("conv1", "input", w1, rng.integers(-5, 6, size=20), padding=1)
        g.dsr_if("sn1", "conv1", theta=60, fire=30)
        g.avgpool2d("pool1", "sn1", 2, m=3, f=1)
        g.conv2d("conv2", "pool1", w2, padding=1)
        g.dsr_if("sn2", "conv2", theta=300, fire=150)
        g.sumpool2d("pool2", "sn2", 2)
        g.flatten("flat", "pool2")
        g.linear("fc", "flat", w3)
        g.dsr_lif("sn3", "fc", theta=400, fire=200, leak_m=7, gain_m=8, f=3)
    else:
        s = 1 / 64
        g.conv2d("conv1", "input", w1 * s, rng.uniform(-0.1, 0.1, size=20), padding=1)
        g.dsr_if("sn1", "conv1", theta=0.9, fire=0.45)
        g.avgpool2d("pool1", "sn1", 2)
        g.conv2d("conv2", "pool1", rng.uniform(-1, 1, size=w2.shape), padding=1)
        g.dsr_if("sn2", "conv2", theta=1.3, fire=0.7)
        g.sumpool2d("pool2", "sn2", 2)
        g.flatten("flat", "pool2")
        g.linear("fc", "flat", rng.uniform(-0.5, 0.5, size=w3.shape))
        g.dsr_lif("sn3", "fc", theta=1.0, fire=0.5, leak=0.9, gain=1.0)
    g.set_output("sn3")
    return g


@pytest.mark.parametrize("precision", ["float32", "int"])
def test_every_level_gives_identical_results(precision: str, restore_level: None) -> None:
    g = _event_net(precision, seed=5)
    model = snnsim.Model.from_graph(g)
    rng = np.random.default_rng(9)
    dtype = np.int32 if precision == "int" else np.float32
    frames = (rng.random((3, 6, 2, 24, 24)) < 0.3).astype(dtype)
    record = ["sn1", "sn2", "sn3"]
    results = {}
    for level in LEVELS:
        got = _core.set_simd_level(level)
        assert got in LEVELS
        for threads in (1, 2):
            for batch in (frames, frames[:1]):
                r = snnsim.run(model, batch, record=record, threads=threads)
                results.setdefault((threads, len(batch)), []).append((level, r))
    for key, runs in results.items():
        _, first = runs[0]
        assert first.counts.spikes[:, 1].sum() > 0, "the network fires"
        for level, r in runs[1:]:
            np.testing.assert_array_equal(r.output, first.output, err_msg=f"{key} {level}")
            for name in record:
                np.testing.assert_array_equal(r.record[name], first.record[name])
            for field in ("spikes", "sops", "macs", "aux_ops", "state_updates"):
                np.testing.assert_array_equal(
                    getattr(r.counts, field), getattr(first.counts, field), err_msg=field
                )


def test_set_simd_level_rejects_unknown_names(restore_level: None) -> None:
    with pytest.raises(ValueError, match="level"):
        _core.set_simd_level("sse9")
    assert _core.set_simd_level("portable") == "portable"
    assert _core.simd_level() == "portable"


@pytest.mark.parametrize("level", ["portable", "avx2"])
def test_parity_suite_passes_with_simd_capped(level: str) -> None:
    env = dict(os.environ, SNNSIM_SIMD=level)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    seen = subprocess.run(
        [sys.executable, "-c", "from snnsim import _core; print(_core.simd_level())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert LEVELS.index(seen) <= LEVELS.index(level), "SNNSIM_SIMD caps the level"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "test_parity.py"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
