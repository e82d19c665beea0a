"""Model files: round trip, atomic writes, and a clear ModelError for every kind of bad file."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import safetensors.numpy

from snnsim import Graph, ModelError, model_file
from snnsim.model_file import FORMAT_KEY, GRAPH_KEY


def float_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(input_shape=(2, 8, 8), precision="float32")
    g.conv2d(
        "conv1", "input", rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), stride=1, padding=1
    )
    g.dsr_if("sn1", "conv1", theta=np.full(4, 1.5), fire=0.75)
    g.avgpool2d("pool1", "sn1", 2)
    g.flatten("flat", "pool1")
    g.linear("fc2", "flat", rng.normal(size=(10, 64)))
    g.dsr_lif("sn2", "fc2", theta=1.0, fire=0.5, leak=0.9, gain=0.1)
    g.set_output("sn2")
    return g


def int_graph() -> Graph:
    rng = np.random.default_rng(1)
    g = Graph(input_shape=(6,), precision="int", input_scale=1 / 64)
    g.linear(
        "fc1",
        "input",
        rng.integers(-8, 8, size=(5, 6)),
        rng.integers(-100, 100, size=5),
        weight_bits=4,
    )
    g.scale("bn1", "fc1", m=np.arange(1, 6), shift=np.zeros(5), f=4)
    g.dspike_lif("sn1", "bn1", fire=40, leak_m=200, f=8)
    g.linear("fc2", "sn1", rng.integers(-300, 300, size=(3, 5)), weight_bits=16)
    g.integrate("out", "fc2")
    g.set_output("out")
    return g


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert a.to_json() == b.to_json()
    ta, tb = a.tensor_dict(), b.tensor_dict()
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype, k
        np.testing.assert_array_equal(ta[k], tb[k])


def write_raw(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None) -> Path:
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    return path


def write_graph_doc(
    path: Path,
    graph: Graph,
    edit: Callable[[dict[str, Any]], None] | None = None,
    tensors: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``graph`` without validation, after ``edit`` changed its JSON document."""
    doc = graph.to_json()
    if edit is not None:
        edit(doc)
    meta = {FORMAT_KEY: "snnsim", GRAPH_KEY: json.dumps(doc)}
    return write_raw(path, graph.tensor_dict() if tensors is None else tensors, meta)


def load_error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        model_file.load(path)
    return str(info.value)


# ---------------------------------------------------------------- round trip
@pytest.mark.parametrize("make", [float_graph, int_graph])
def test_round_trip(tmp_path: Path, make: Callable[[], Graph]) -> None:
    g = make()
    path = tmp_path / "net.snn.safetensors"
    model_file.save(g, path)
    assert_same_graph(g, model_file.load(path))
    # the file carries the format tag and the graph JSON in its metadata
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    assert meta[FORMAT_KEY] == "snnsim"
    assert json.loads(meta[GRAPH_KEY]) == g.to_json()


def test_round_trip_bytes() -> None:
    g = int_graph()
    assert_same_graph(g, model_file.from_bytes(model_file.to_bytes(g)))


def test_graph_without_tensors_round_trips(tmp_path: Path) -> None:
    g = Graph(input_shape=(1, 4, 4), input_kind="events")
    g.sumpool2d("pool", "input", 2)
    g.integrate("out", "pool")
    g.set_output("out")
    model_file.save(g, tmp_path / "m.safetensors")
    assert_same_graph(g, model_file.load(tmp_path / "m.safetensors"))


def test_numpy_scalar_attributes_are_saved_as_json_ints(tmp_path: Path) -> None:
    g = Graph(input_shape=(1, 4, 4), precision="int", input_kind="events")
    g.avgpool2d("pool", "input", 2, m=np.int64(3), f=np.int32(2))
    g.integrate("out", "pool")
    g.set_output("out")
    model_file.save(g, tmp_path / "m.safetensors")
    node = model_file.load(tmp_path / "m.safetensors").node("pool")
    assert node.attrs["m"] == 3 and node.attrs["f"] == 2


# ---------------------------------------------------------------- atomic write
def test_invalid_graph_is_not_written(tmp_path: Path) -> None:
    g = float_graph()
    g.node("sn1").tensors["theta"][:] = -1.0
    path = tmp_path / "net.snn.safetensors"
    with pytest.raises(ModelError, match="'sn1'.*'theta'"):
        model_file.save(g, path)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "net.snn.safetensors"
    model_file.save(float_graph(), path)
    before = path.read_bytes()
    bad = float_graph()
    bad.node("fc2").tensors["weight"][0, 0] = np.nan
    with pytest.raises(ModelError, match="'fc2'.*'weight'.*NaN"):
        model_file.save(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_interrupted_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "net.snn.safetensors"
    model_file.save(int_graph(), path)
    before = path.read_bytes()

    def boom(fd: int) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="simulated"):
        model_file.save(float_graph(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    monkeypatch.undo()

    new = tmp_path / "new.snn.safetensors"
    monkeypatch.setattr(
        os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("rename failed (simulated)"))
    )
    with pytest.raises(OSError, match="simulated"):
        model_file.save(float_graph(), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_save_replaces_existing_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "net.snn.safetensors"
    model_file.save(float_graph(), path)
    os.chmod(path, 0o640)
    model_file.save(int_graph(), path)
    assert_same_graph(int_graph(), model_file.load(path))
    assert os.stat(path).st_mode & 0o777 == 0o640


# ---------------------------------------------------------------- corrupt files
def test_truncated_files(tmp_path: Path) -> None:
    data = model_file.to_bytes(float_graph())
    path = tmp_path / "cut.safetensors"
    (n,) = struct.unpack("<Q", data[:8])
    for cut in (0, 3, 8, 20, 8 + n - 1, 8 + n, 8 + n + 10, len(data) - 1):
        path.write_bytes(data[:cut])
        msg = load_error(path)
        assert str(path) in msg
        assert any(
            w in msg for w in ("too short", "exceeds the file size", "corrupt tensor data")
        ), msg


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_text('{"hello": "world"} and some more text to make it longer')
    assert "larger than safetensors allows" in load_error(path)
    path.write_bytes(struct.pack("<Q", 50) + b"{}")
    assert "exceeds the file size" in load_error(path)
    path.write_bytes(struct.pack("<Q", 5) + b"\xff\xfe\x00ab")
    assert "header is not valid JSON" in load_error(path)
    path.write_bytes(struct.pack("<Q", 4) + b"[12]")
    assert "header is not valid JSON" in load_error(path)


def test_random_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "r.safetensors"
    for size in (1, 7, 64, 4096):
        path.write_bytes(rng.integers(0, 256, size=size, dtype=np.uint8).tobytes())
        load_error(path)


def test_flipped_tensor_offsets(tmp_path: Path) -> None:
    data = model_file.to_bytes(float_graph())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["fc2.weight"]["data_offsets"][1] += 4
    raw = json.dumps(header).encode()
    path = tmp_path / "o.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    assert "corrupt tensor data" in load_error(path)


def test_missing_metadata(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "m.safetensors", {"a": np.zeros(2, np.float32)}, None)
    assert "no metadata" in load_error(path)


def test_wrong_format_tag(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "m.safetensors", {}, {"format": "pt"})
    msg = load_error(path)
    assert "'format'" in msg and "'pt'" in msg


def test_missing_graph_json(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "m.safetensors", {}, {"format": "snnsim"})
    assert "'snnsim.graph'" in load_error(path) and "missing" in load_error(path)


def test_bad_graph_json(tmp_path: Path) -> None:
    path = write_raw(
        tmp_path / "m.safetensors", {}, {"format": "snnsim", GRAPH_KEY: '{"version": 1,'}
    )
    msg = load_error(path)
    assert "'snnsim.graph' is not valid JSON" in msg and "line 1" in msg
    path = write_raw(tmp_path / "m.safetensors", {}, {"format": "snnsim", GRAPH_KEY: "[1, 2]"})
    assert "must be an object" in load_error(path)


def test_graph_json_missing_fields(tmp_path: Path) -> None:
    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), lambda d: d.pop("input"))
    assert "'input'" in load_error(path)
    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), lambda d: d.update(version=7))
    assert "'version'" in load_error(path)
    path = write_graph_doc(
        tmp_path / "m.safetensors", float_graph(), lambda d: d["nodes"][0].pop("op")
    )
    assert "node 'conv1' has no string 'op'" in load_error(path)


def test_malformed_json_values(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["input"]["scale"] = "big"
        d["precision"] = "int"

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), edit)
    assert "input.scale must be a number, got a string" in load_error(path)  # never a TypeError


def test_wrong_dtype(tmp_path: Path) -> None:
    g = float_graph()
    tensors = g.tensor_dict()
    tensors["fc2.weight"] = tensors["fc2.weight"].astype(np.float64)
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "node 'fc2': tensor 'weight'" in msg and "float32" in msg and "float64" in msg


def test_wrong_int_dtype(tmp_path: Path) -> None:
    g = int_graph()
    tensors = g.tensor_dict()
    tensors["sn1.fire"] = tensors["sn1.fire"].astype(np.int64)
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "node 'sn1': tensor 'fire'" in msg and "int64" in msg and "int32" in msg


def test_int4_weights_out_of_range(tmp_path: Path) -> None:
    g = int_graph()
    tensors = g.tensor_dict()
    tensors["fc1.weight"] = tensors["fc1.weight"].copy()
    tensors["fc1.weight"][0, 0] = 8
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "'fc1'" in msg and "int4" in msg


def test_nan_weights(tmp_path: Path) -> None:
    g = float_graph()
    tensors = g.tensor_dict()
    tensors["conv1.weight"] = tensors["conv1.weight"].copy()
    tensors["conv1.weight"][1, 0, 2, 2] = np.nan
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "'conv1'" in msg and "'weight'" in msg and "NaN" in msg


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_theta_not_positive(tmp_path: Path, value: float) -> None:
    g = float_graph()
    tensors = g.tensor_dict()
    tensors["sn2.theta"] = np.array([value], dtype=np.float32)
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "'sn2'" in msg and "'theta'" in msg and "> 0" in msg


def test_cycle(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["nodes"][0]["inputs"] = ["sn1"]  # conv1 <- sn1 <- conv1

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), edit)
    msg = load_error(path)
    assert "cycle" in msg and "'conv1'" in msg and "'sn1'" in msg


def test_unknown_input(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["nodes"][4]["inputs"] = ["flatten_typo"]

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), edit)
    msg = load_error(path)
    assert "'fc2'" in msg and "'inputs'" in msg and "'flatten_typo'" in msg


def test_duplicate_and_reserved_names(tmp_path: Path) -> None:
    def dup(d: dict[str, Any]) -> None:
        d["nodes"][3]["name"] = "pool1"  # 'flat' (no tensors) renamed like the node before it

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), dup)
    msg = load_error(path)
    assert "'pool1'" in msg and "duplicate" in msg

    def reserved(d: dict[str, Any]) -> None:
        d["nodes"][3]["name"] = "input"

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), reserved)
    msg = load_error(path)
    assert "'input'" in msg and "invalid name" in msg


def test_tensor_of_renamed_node_is_stray(tmp_path: Path) -> None:
    def rename(d: dict[str, Any]) -> None:
        d["nodes"][3]["name"] = "flat2"  # a node without tensors: 'flat.*' would be stray
        d["nodes"][4]["inputs"] = ["flat2"]

    g = float_graph()
    tensors = g.tensor_dict()
    tensors["flat.weight"] = np.zeros(2, np.float32)
    path = write_graph_doc(tmp_path / "m.safetensors", g, rename, tensors=tensors)
    assert "'flat.weight'" in load_error(path)

    def rename_owner(d: dict[str, Any]) -> None:
        d["nodes"][1]["name"] = "spk1"  # its tensors are still stored as 'sn1.*'
        d["nodes"][2]["inputs"] = ["spk1"]

    path = write_graph_doc(tmp_path / "m.safetensors", float_graph(), rename_owner)
    assert "node 'spk1': tensor 'theta' (stored as 'spk1.theta'): missing" in load_error(path)


def test_stray_and_missing_tensors(tmp_path: Path) -> None:
    g = float_graph()
    tensors = g.tensor_dict()
    tensors["ghost.weight"] = np.zeros(3, np.float32)
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    assert "'ghost.weight'" in load_error(path)
    tensors = g.tensor_dict()
    del tensors["sn1.fire"]
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "node 'sn1': tensor 'fire'" in msg and "missing" in msg


def test_tensor_shape_mismatch(tmp_path: Path) -> None:
    g = float_graph()
    tensors = g.tensor_dict()
    tensors["fc2.weight"] = np.zeros((10, 63), np.float32)
    path = write_graph_doc(tmp_path / "m.safetensors", g, tensors=tensors)
    msg = load_error(path)
    assert "'fc2'" in msg and "'weight'" in msg and "[10, 64]" in msg


def test_bad_output(tmp_path: Path) -> None:
    path = write_graph_doc(
        tmp_path / "m.safetensors", float_graph(), lambda d: d.update(output="fc2")
    )
    msg = load_error(path)
    assert "output" in msg and "'fc2'" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        model_file.load(tmp_path / "nope.safetensors")


def test_leaky_integrate_round_trip_and_validation(tmp_path: Path) -> None:
    """An optional leak on `integrate`: float `leak`, int `leak_m` with `f`; files without it
    keep the plain integrator, and both executors agree with the formula."""
    import snnsim

    g = Graph(input_shape=(3,), precision="int", input_scale=1.0)
    g.linear("fc", "input", np.eye(3, dtype=np.int8))
    g.integrate("out", "fc", leak_m=np.array([3, 2, 4], dtype=np.int32), f=2)
    g.set_output("out")
    path = tmp_path / "li.snn.safetensors"
    model_file.save(g, path)
    back = model_file.load(path)
    assert back.node("out").attrs == {"f": 2}
    np.testing.assert_array_equal(back.node("out").tensors["leak_m"], [3, 2, 4])
    x = np.array([[5, -5, 1]], dtype=np.int32)
    want = np.zeros(3, dtype=np.int64)
    for _ in range(4):
        want = ((np.array([3, 2, 4]) * want + 2) >> 2) + x[0]
    for mode in ("engine", "reference"):
        res = snnsim.run(str(path), x, steps=4, mode=mode)
        np.testing.assert_array_equal(res.output_sum[0], want)

    bad = Graph(input_shape=(3,), precision="int", input_scale=1.0)
    bad.linear("fc", "input", np.eye(3, dtype=np.int8))
    bad.integrate("out", "fc", leak_m=np.array([3], dtype=np.int32))
    bad.set_output("out")
    with pytest.raises(ModelError, match=r"'out'.*'f'"):
        bad.validate()

    fg = Graph(input_shape=(2,), precision="float32")
    fg.linear("fc", "input", np.eye(2))
    fg.integrate("out", "fc", leak=np.float32(0.5))
    fg.set_output("out")
    res = snnsim.run(fg, np.array([[1.0, 2.0]], dtype=np.float32), steps=3, mode="engine")
    np.testing.assert_array_equal(res.output_sum[0], [1.75, 3.5])
