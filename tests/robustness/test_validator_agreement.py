"""One validator: the Python package and the engine accept exactly the same model files.

``snnsim.load`` / ``model_file.from_bytes`` run the engine's validator (``_core.validate_file``)
before reading a file, and ``Graph.validate`` runs it on the bytes a graph saves as. These tests
show the two sides agree -- on the cases where they once disagreed (each a named test) and on
files mutated at every level (hypothesis, :func:`snnsim.testing.mutated_model_files`): a file
the engine accepts loads in Python with the same node order and shapes, saves back to a file
the engine accepts and compiles; a file the engine refuses is a ``ModelError`` in Python (never
a ``KeyError``, ``TypeError`` or ``RecursionError``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings

import snnsim
from snnsim import Graph, LimitError, ModelError, model_file
from snnsim.api import Model
from snnsim.testing import join_model_file, mutated_model_files, split_model_file

FIXTURES = Path(__file__).parents[1] / "fixtures"
BASES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.snn.safetensors"))]


def engine_verdict(data: bytes) -> dict[str, Any] | None:
    from snnsim import _core

    try:
        return _core.validate_file(data)
    except ModelError:
        return None


def python_verdict(data: bytes) -> Model | None:
    try:
        return Model(model_file.from_bytes(data))
    except ModelError:
        return None


def assert_agree(data: bytes) -> bool:
    """Both sides give the same verdict (anything but a ModelError fails); returns it."""
    info = engine_verdict(data)
    m = python_verdict(data)
    assert (info is None) == (m is None), (info, m)
    if info is None or m is None:
        return False
    assert m.node_names == info["node_names"]
    assert m.node_ops == info["node_ops"]
    assert [m.node_shapes[n] for n in m.node_names] == [tuple(s) for s in info["node_shapes"]]
    assert (m.precision, m.input_kind, m.output) == (
        info["precision"],
        info["input_kind"],
        info["output"],
    )
    assert m.input_shape == tuple(info["input_shape"])
    # what Python read saves to a file the engine accepts, and compiles (or is too large)
    m.graph.validate()
    try:
        m.engine  # noqa: B018 - compiles
    except LimitError:
        pass
    return True


def edited(edit: Callable[[dict[str, Any]], None], base: bytes | None = None) -> bytes:
    """The file ``base`` (default: the float32 MLP fixture) with its graph JSON edited."""
    header, body = split_model_file(base or BASES[1])
    doc = json.loads(header["__metadata__"]["snnsim.graph"])
    edit(doc)
    header["__metadata__"]["snnsim.graph"] = json.dumps(doc)
    return join_model_file(header, body)


def int_graph() -> Graph:
    g = Graph(input_shape=(1, 4, 4), precision="int", input_scale=0.5)
    g.avgpool2d("pool", "input", 2, m=64, f=8)
    g.flatten("flat", "pool")
    g.linear("fc", "flat", np.ones((3, 4), np.int8))
    g.dsr_lif("lif", "fc", theta=4, fire=2, leak_m=200, gain_m=256, f=8)
    g.linear("fc2", "lif", np.ones((2, 3), np.int8))
    g.dspike_lif("out", "fc2", fire=3, leak_m=100, f=8)
    g.set_output("out")
    return g


def int_file(edit: Callable[[Graph], None]) -> bytes:
    g = int_graph()
    edit(g)
    return model_file.unchecked_bytes(g)


# ---------------------------------------------------------------- the cases of the report
def test_fixtures_are_accepted_by_both() -> None:
    for data in BASES:
        assert assert_agree(data)
    assert assert_agree(model_file.to_bytes(int_graph()))


@pytest.mark.parametrize("version", [1.0, True, "1", 2, None])
def test_disputed_version_1_0_or_true_is_refused(version: Any) -> None:
    data = edited(lambda d: d.update(version=version))
    assert not assert_agree(data)
    with pytest.raises(ModelError, match="version"):
        model_file.from_bytes(data)


def test_disputed_missing_input_kind_is_refused() -> None:
    data = edited(lambda d: d["input"].pop("kind"))
    assert not assert_agree(data)
    with pytest.raises(ModelError, match="input: missing string 'kind'"):
        model_file.from_bytes(data)


def test_disputed_stride_beyond_2_pow_30_is_refused() -> None:
    g = Graph(input_shape=(1, 4, 4))
    g.conv2d("conv", "input", np.ones((1, 1, 2, 2)), stride=(1, 2**30 + 1))
    g.integrate("out", "conv")
    g.set_output("out")
    data = model_file.unchecked_bytes(g)
    assert not assert_agree(data)
    with pytest.raises(ModelError, match=r"'stride'\[1\] = 1073741825 is out of range"):
        g.validate()


@pytest.mark.parametrize("depth", [129, 500, 100_000])
def test_disputed_json_depth_500_is_refused(depth: int) -> None:
    nested: Any = 1
    for _ in range(min(depth, 900)):  # Python's json encoder recurses too
        nested = [nested]

    def edit(d: dict[str, Any]) -> None:
        d["nodes"][0]["note"] = nested

    data = edited(edit) if depth <= 900 else None
    if data is None:  # deeper than Python can encode: write the text directly
        header, body = split_model_file(BASES[1])
        doc = header["__metadata__"]["snnsim.graph"]
        header["__metadata__"]["snnsim.graph"] = (
            doc[:-1] + ',"x":' + "[" * depth + "]" * depth + "}"
        )
        data = join_model_file(header, body)
    assert not assert_agree(data)
    with pytest.raises(ModelError, match="recursion limit"):
        model_file.from_bytes(data)


def test_shallow_unknown_attributes_are_accepted_by_both() -> None:
    data = edited(lambda d: d["nodes"][0].update(note=[[[1]]]))
    assert assert_agree(data)


def test_disputed_missing_format_key_is_refused() -> None:
    header, body = split_model_file(BASES[1])
    del header["__metadata__"]["format"]
    data = join_model_file(header, body)
    assert not assert_agree(data)
    with pytest.raises(ModelError, match="metadata key 'format' is missing"):
        model_file.from_bytes(data)


@pytest.mark.parametrize("fire", [0, -3])
def test_disputed_dspike_fire_not_positive_is_refused(fire: int) -> None:
    def edit(g: Graph) -> None:
        g.node("out").tensors["fire"][:] = fire

    data = int_file(edit)
    assert not assert_agree(data)
    with pytest.raises(ModelError, match=r"node 'out': tensor 'fire'.*must be >= 1"):
        model_file.from_bytes(data)


def test_disputed_negative_gain_m_is_accepted() -> None:
    """A negative gain is allowed in float32 (``gain``); ``gain_m`` follows it."""

    def edit(g: Graph) -> None:
        g.node("lif").tensors["gain_m"][:] = -256

    assert assert_agree(int_file(edit))


@pytest.mark.parametrize("m", [-1, -(2**31)])
def test_disputed_negative_avgpool_m_is_refused(m: int) -> None:
    def edit(g: Graph) -> None:
        g.node("pool").attrs["m"] = m

    data = int_file(edit)
    assert not assert_agree(data)
    with pytest.raises(ModelError, match=rf"'m' = {m} is out of range \[0, 2147483647\]"):
        model_file.from_bytes(data)


def test_int_static_input_without_scale_is_accepted() -> None:
    """input.scale is optional (an int static input may be given already quantised)."""
    g = Graph(input_shape=(2,), precision="int")
    g.linear("fc", "input", np.ones((2, 2), np.int8))
    g.integrate("out", "fc")
    g.set_output("out")
    assert assert_agree(model_file.unchecked_bytes(g))
    res = snnsim.run(g, np.array([1, 2], np.int32), steps=2)
    np.testing.assert_array_equal(res.output_sum, [[6, 6]])


def with_training_meta(meta: Any, base: bytes | None = None) -> bytes:
    header, body = split_model_file(base or BASES[1])
    header["__metadata__"]["snnsim.meta"] = json.dumps(meta)
    return join_model_file(header, body)


def test_training_metadata_is_validated_by_the_engine_too() -> None:
    """``snnsim.meta`` (training metadata) is read by Python only, but validated by the one
    validator: a malformed field is refused by both, a valid one accepted by both."""
    ok = {"T": 5, "modules": None, "preprocess": {"input_shape": [3, 4], "flatten": True}}
    assert assert_agree(with_training_meta(ok))
    m = Model(model_file.from_bytes(with_training_meta(ok)))
    assert m.graph.meta["T"] == 5
    bad: object
    for bad in (
        [],
        {"version": 1.0},
        {"T": 0},
        {"T": True},
        {"preprocess": {"input_shape": [15]}},
        {"preprocess": {"std": [0]}},
        {"modules": {"ghost": ["x"]}},
        {"source": "x"},
    ):
        data = with_training_meta(bad)
        assert not assert_agree(data), bad
        with pytest.raises(ModelError, match="snnsim.meta"):
            model_file.from_bytes(data)


# ---------------------------------------------------------------- mutations
@given(mutated_model_files(base=BASES[0]))
@settings(max_examples=300)
def test_mutations_of_the_int8_fixture(data: bytes) -> None:
    assert_agree(data)


@given(mutated_model_files(base=BASES[1]))
@settings(max_examples=300)
def test_mutations_of_the_float32_fixture(data: bytes) -> None:
    assert_agree(data)


@given(mutated_model_files())
def test_mutations_of_random_networks(data: bytes) -> None:
    assert_agree(data)
