"""The committed cross-language fixtures (read by the Rust crate's own tests) still match what
tests/fixtures/make_fixtures.py produces, and the engine agrees with them through Python too."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import snnsim

HERE = Path(__file__).parents[1] / "fixtures"
_spec = importlib.util.spec_from_file_location("make_fixtures", HERE / "make_fixtures.py")
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)  # type: ignore[union-attr]  # the spec of an existing file has a loader


@pytest.mark.parametrize("name", sorted(make_fixtures.FIXTURES))
def test_fixture_is_current(name: str) -> None:
    g, x, steps = make_fixtures.FIXTURES[name]()
    committed = snnsim.load(HERE / f"{name}.snn.safetensors")
    assert committed.graph.to_json() == g.to_json()
    for key, arr in g.tensor_dict().items():
        np.testing.assert_array_equal(committed.graph.tensor_dict()[key], arr)
    want = json.loads((HERE / f"{name}.expected.json").read_text())
    assert make_fixtures.expected(g, x, steps) == want
    res = snnsim.run(committed, x, steps=steps)
    assert res.prediction.tolist() == want["prediction"]
    assert res.output_sum.reshape(-1).tolist() == want["output_sum"]
