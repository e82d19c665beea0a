"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/), reproducibly:
small model files covering every op in both precisions (model_file), and seeded random byte
strings for the targets that decode their input with `arbitrary` (event_binning, engine).

    PYTHONPATH=python python fuzz/make_seeds.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from snnsim import Graph, model_file

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "tests" / "fixtures"


def int_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(input_shape=(2, 4, 4), precision="int", input_scale=1 / 64)
    g.conv2d("c1", "input", rng.integers(-8, 8, (3, 2, 3, 3)), [1, -1, 2], padding=1, weight_bits=4)
    g.dsr_if("n1", "c1", theta=[9, 8, 7], fire=4)
    g.conv2d("c2", "n1", rng.integers(-100, 100, (3, 3, 1, 1)), weight_bits=16)
    g.scale("s2", "c2", m=[3, 2, 1], shift=[0, 1, 0], f=2)
    g.add("a", "n1", "s2")
    g.dsr_lif("n2", "a", theta=6, fire=3, leak_m=200, gain_m=-256, f=8)
    g.avgpool2d("p", "n2", 2, m=64, f=8)
    g.flatten("fl", "p")
    g.linear("fc", "fl", rng.integers(-128, 128, (5, 12)), rng.integers(-9, 9, 5))
    g.dspike_lif("n3", "fc", fire=5, leak_m=3, f=2)
    g.linear("fc2", "n3", rng.integers(-5, 5, (4, 5)))
    g.integrate("out", "fc2", leak_m=3, f=2)
    g.set_output("out")
    return g


def event_graph() -> Graph:
    rng = np.random.default_rng(1)
    g = Graph(input_shape=(2, 5, 5), input_kind="events")
    g.sumpool2d("p", "input", 2, 1)
    g.flatten("fc.in", "p")
    g.linear("fc", "fc.in", rng.normal(size=(6, 32)), rng.normal(size=6))
    g.dspike_lif("fc.sn", "fc", fire=0.5, leak=0.9)
    g.linear("fc2", "fc.sn", rng.normal(size=(3, 6)))
    g.dsr_lif("out", "fc2", theta=1.0, fire=0.5, leak=0.8, gain=0.3)
    g.set_output("out")
    return g


def main() -> None:
    seeds = HERE / "seeds"
    mf = seeds / "model_file"
    mf.mkdir(parents=True, exist_ok=True)
    for p in FIXTURES.glob("*.snn.safetensors"):
        shutil.copy(p, mf / p.name)
    (mf / "int_all_ops.snn.safetensors").write_bytes(model_file.to_bytes(int_graph()))
    (mf / "float_events.snn.safetensors").write_bytes(model_file.to_bytes(event_graph()))
    rng = np.random.default_rng(2024)
    for target in ("event_binning", "engine"):
        d = seeds / target
        d.mkdir(parents=True, exist_ok=True)
        for i in range(8):
            n = int(rng.integers(16, 512))
            (d / f"random_{i}").write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    main()
