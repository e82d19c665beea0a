"""The newcomer's path with no glue code: a training run exported in one call, a file that knows
its T, its input preprocessing and its torch module names, loader-shaped inputs that just work,
clear messages for a checkpoint given where a model file is expected, short reprs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch

import snnsim
from snnsim.data import load_digits_split
from snnsim.errors import InputError, ModelError
from snnsim.exporter import load_trained
from snnsim.model_file import META_KEY
from snnsim.verify import torch_spikes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits_split("test")


def test_export_from_run_dir_records_T_preprocessing_and_modules(run_dir: Path, int8_file: Path):
    m = snnsim.load(int8_file)
    assert m.T == 5
    assert m.input_shape == (64,)
    assert m.preprocess == {
        "input_shape": [1, 8, 8],
        "rescale": 1.0,
        "mean": None,
        "std": None,
        "flatten": True,
    }
    src = m.meta["source"]
    assert src["run"] == "dsr-digits-mlp-if-t5" and src["epoch"] == 2
    assert Path(src["checkpoint"]) == (run_dir / "checkpoint.pt").resolve()
    # every node maps to modules of the trained torch model
    tm = load_trained(run_dir).model
    names = dict(tm.named_modules())
    assert set(m.modules) == set(m.node_names)
    for node, mods in m.modules.items():
        for mod in mods:
            assert mod in names, (node, mod)
    assert m.modules["sn1"] == ["body.3"] and m.modules["fc1"] == ["body.1", "body.2"]


def test_checkpoint_path_exports_the_same_as_the_run_dir(run_dir: Path, tmp_path: Path):
    a = snnsim.export(run_dir, None, mode="int8")
    b = snnsim.export(run_dir / "checkpoint.pt", None, mode="int8")
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        for k in na.tensors:
            np.testing.assert_array_equal(na.tensors[k], nb.tensors[k])


def test_run_takes_loader_images_and_defaults_to_T(int8_file: Path, digits):
    x, y = digits
    m = snnsim.load(int8_file)
    res = snnsim.run(m, x)  # [B, 1, 8, 8] as the loader gives them, no steps
    assert res.steps == 5 and res.trained_steps == 5 and not res.steps_differ
    flat = snnsim.run(m, x.reshape(len(x), -1), steps=5)
    np.testing.assert_array_equal(res.prediction, flat.prediction)
    one = snnsim.run(m, x[3])  # one sample as the loader gives it
    assert one.prediction[0] == res.prediction[3]
    assert float(np.mean(res.prediction == y)) > 0.5  # a trained network, not chance


def test_other_steps_are_allowed_and_stated(int8_file: Path, digits):
    x, _ = digits
    res = snnsim.run(int8_file, x[:8], steps=9)
    assert res.steps == 9 and res.trained_steps == 5 and res.steps_differ
    assert "trained with T = 5" in res.summary()


def test_wrong_input_shape_names_both_accepted_shapes(int8_file: Path):
    with pytest.raises(InputError, match=r"\[B, 1, 8, 8\].*\[B, 64\]"):
        snnsim.run(int8_file, np.zeros((2, 3, 8, 8), np.float32))


def test_normalisation_is_recorded_and_applied(run_dir: Path, digits, tmp_path: Path):
    x, _ = digits
    mean, std = [0.3], [0.25]
    path = tmp_path / "norm.snn.safetensors"
    snnsim.export(run_dir, path, mode="float32", normalize=(mean, std))
    m = snnsim.load(path)
    assert m.preprocess["mean"] == mean and m.preprocess["std"] == std
    raw = snnsim.run(m, x[:40])
    manual = ((x[:40] - np.float32(0.3)) / np.float32(0.25)).reshape(40, -1)
    pre = snnsim.run(m, manual, preprocess=False)
    np.testing.assert_array_equal(raw.output, pre.output)
    # int8: the input step covers the normalised range of [0, 1] images
    g = snnsim.export(run_dir, None, mode="int8", normalize=(mean, std))
    assert g.input_scale == pytest.approx(max(0.3 / 0.25, 0.7 / 0.25) / 127)


def test_files_without_meta_still_need_steps(tmp_path: Path):
    g = snnsim.Graph(input_shape=(3,))
    g.linear("fc", "input", np.eye(3, dtype=np.float32))
    g.dsr_if("sn", "fc", theta=1.0, fire=0.5)
    g.set_output("sn")
    snnsim.save(g, tmp_path / "plain.snn.safetensors")
    m = snnsim.load(tmp_path / "plain.snn.safetensors")
    assert m.T is None and m.meta == {} and m.preprocess is None
    with pytest.raises(InputError, match="steps"):
        snnsim.run(m, np.ones((1, 3), np.float32))
    assert snnsim.run(m, np.ones((1, 3), np.float32), steps=4).trained_steps is None


def _rewrite_meta(src: Path, dst: Path, meta: object) -> None:
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    md = json.loads(data[8 : 8 + n])["__metadata__"]
    md[META_KEY] = meta if isinstance(meta, str) else json.dumps(meta)
    safetensors.numpy.save_file(safetensors.numpy.load(data), str(dst), metadata=md)


@pytest.mark.parametrize(
    "meta, field",
    [
        ({"T": 0}, "'T'"),
        ({"T": "5"}, "'T'"),
        ({"preprocess": {"input_shape": [1, 8, 9]}}, "preprocess.input_shape"),
        ({"preprocess": {"std": [0.0]}}, "preprocess.std"),
        ({"preprocess": {"mean": [0.1, 0.2, 0.3]}}, "preprocess.mean"),
        ({"preprocess": {"colour": 1}}, "unknown keys"),
        ({"modules": {"nope": ["body.0"]}}, "unknown nodes"),
        ({"modules": ["body.0"]}, "'modules'"),
        ({"version": 2}, "'version'"),
        ("{not json", "not valid JSON"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_meta_is_a_model_error_naming_the_field(int8_file: Path, tmp_path: Path, meta, field):
    bad = tmp_path / "bad.snn.safetensors"
    _rewrite_meta(int8_file, bad, meta)
    with pytest.raises(ModelError, match=field):
        snnsim.load(bad)


def test_load_of_a_checkpoint_says_what_it_is_and_what_to_call(run_dir: Path):
    with pytest.raises(ModelError, match=r"torch checkpoint.*snnsim\.export\("):
        snnsim.load(run_dir / "checkpoint.pt")
    with pytest.raises(ModelError, match=r"training run directory.*snnsim export"):
        snnsim.load(run_dir)


def test_export_of_something_that_is_no_checkpoint(tmp_path: Path):
    p = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(snnsim.ExportError, match="expected keys 'config' and 'model'"):
        snnsim.export(p, None)
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        snnsim.export(tmp_path, None)


def test_short_reprs(int8_file: Path):
    m = snnsim.load(int8_file)
    r = repr(m.graph)
    assert len(r) < 400 and "fc1:linear -> sn1:dsr_if" in r and "T=5" in r
    assert "array" not in r and "[[" not in r
    node = repr(m.graph.node("fc1"))
    assert "int8[128, 64]" in node and len(node) < 200
    assert "T=5" in repr(m)


def test_firing_rates_match_the_recorded_spikes(int8_file: Path, digits):
    x, _ = digits
    res = snnsim.run(int8_file, x[:50], record=["sn1", "sn2"])
    rates = res.firing_rates()
    assert list(rates) == ["sn1", "sn2"]
    for n in rates:
        assert rates[n] == pytest.approx(res.record[n].mean())
    assert 0 < rates["sn1"] < 1


def test_torch_spikes_in_the_engine_layout(run_dir: Path, float_file: Path, digits):
    """The trained torch model's spikes per layer, keyed and shaped as the engine records them:
    the float32 export gives the same spikes up to near-threshold flips."""
    x, _ = digits
    tm = load_trained(run_dir).model
    m = snnsim.load(float_file)
    logits, spikes = torch_spikes(tm, x[:64], m)
    res = snnsim.run(m, x[:64], record=list(spikes))
    assert set(spikes) == {"sn1", "sn2"}
    for n, s in spikes.items():
        assert s.dtype == np.uint8 and s.shape == res.record[n].shape == (64, 5, *m.node_shapes[n])
        assert np.mean(s == res.record[n]) > 0.999
    assert np.mean(logits.argmax(1) == res.prediction) >= 0.95


def test_per_channel_normalisation_of_colour_images(tmp_path: Path):
    torch.manual_seed(0)
    tm = snnsim.models.create_model("dsr-mnist-cnn", in_channels=3, T=3).eval()
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]
    path = tmp_path / "rgb.snn.safetensors"
    snnsim.export(tm, path, mode="float32", input_shape=(3, 28, 28), normalize=(mean, std))
    m = snnsim.load(path)
    x = np.random.default_rng(0).random((4, 3, 28, 28), dtype=np.float32)
    manual = (x - np.float32(mean).reshape(1, 3, 1, 1)) / np.float32(std).reshape(1, 3, 1, 1)
    a = snnsim.run(m, x, record=["sn1"])
    b = snnsim.run(m, manual, preprocess=False, record=["sn1"])
    np.testing.assert_array_equal(a.record["sn1"], b.record["sn1"])
    assert a.steps == 3
    # the torch model sees the same normalised input
    from snnsim.verify import torch_input

    np.testing.assert_allclose(torch_input(m, x).numpy(), manual, rtol=1e-6)
