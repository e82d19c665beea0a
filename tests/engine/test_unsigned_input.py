"""The unsigned 8-bit static input (the file's ``input.signed`` false, docs/model-format.md):
the field's round trip and validation, old files reading as signed, the input range enforced
by the quantiser, the input checks, the engine and the reference, the exporter's choice of
signedness and scale, QAT's input grid, NIR metadata, and engine == reference bit for bit on
exported networks with an unsigned input (the random networks of tests/engine/test_parity.py
draw unsigned inputs too)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import snnsim
from _trained import int_exact, sgd_steps
from snnsim.data import load_digits_split, load_mnist5k_split
from snnsim.errors import InputError, ModelError
from snnsim.exporter import ExportError, export_graph
from snnsim.graph import Graph
from snnsim.inputs import input_range, prepare_sequence, prepare_static, quantize
from snnsim.model_file import FORMAT_KEY, GRAPH_KEY
from snnsim.models import create_model
from snnsim.native import core
from snnsim.qat import qat_finetune
from snnsim.reference import run_reference

FIXTURES = Path(__file__).parents[1] / "fixtures"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _graph(signed: object = False, kind: str = "static") -> Graph:
    g = Graph(input_shape=(3,), precision="int", input_kind=kind, input_scale=1 / 255)  # type: ignore[arg-type]
    g.input_signed = signed  # type: ignore[assignment]
    g.linear("fc", "input", np.ones((2, 3), np.int8))
    g.integrate("out", "fc")
    g.set_output("out")
    return g


def _raw_file(path: Path, graph: Graph, edit) -> Path:
    """``graph`` written without validation after ``edit`` changed its JSON document."""
    import safetensors.numpy

    doc = graph.to_json()
    edit(doc)
    meta = {FORMAT_KEY: "snnsim", GRAPH_KEY: json.dumps(doc)}
    safetensors.numpy.save_file(graph.tensor_dict(), str(path), metadata=meta)
    return path


# ------------------------------------------------------------------------------ the field
def test_round_trip_keeps_input_signed(tmp_path: Path) -> None:
    path = tmp_path / "u.snn.safetensors"
    snnsim.save(_graph(False), path)
    m = snnsim.load(path)
    assert m.input_signed is False and m.graph.input_signed is False
    assert m.engine.input_signed is False
    assert core().validate_file(path.read_bytes())["input_signed"] is False
    assert m.graph.to_json()["input"]["signed"] is False
    # a signed graph writes no field: its file is what it was before the field existed
    assert "signed" not in _graph(True).to_json()["input"]
    snnsim.save(_graph(True), path)
    assert snnsim.load(path).input_signed is True


def test_files_without_the_field_read_as_signed(tmp_path: Path) -> None:
    m = snnsim.load(FIXTURES / "conv_int8.snn.safetensors")  # written before the field existed
    assert m.input_signed is True and m.engine.input_signed is True
    path = _raw_file(
        tmp_path / "n.snn.safetensors", _graph(True), lambda d: d["input"].pop("signed", None)
    )
    assert snnsim.load(path).input_signed is True
    # JSON null reads as absent
    path = _raw_file(
        tmp_path / "z.snn.safetensors", _graph(True), lambda d: d["input"].update(signed=None)
    )
    assert snnsim.load(path).input_signed is True


@pytest.mark.parametrize("bad", [0, 1, "false", "no", [False], 0.5, {}])
def test_bad_values_are_refused_naming_the_field(tmp_path: Path, bad: object) -> None:
    path = _raw_file(
        tmp_path / "b.snn.safetensors", _graph(True), lambda d: d["input"].update(signed=bad)
    )
    with pytest.raises(ModelError, match=r"input\.signed must be true or false"):
        snnsim.load(path)
    with pytest.raises(ModelError, match=r"input\.signed must be true or false"):
        _graph(bad).validate()


# ------------------------------------------------------------------------------ the range
def test_quantiser_follows_the_range() -> None:
    assert input_range(True) == (-128, 127) and input_range(False) == (0, 255)
    x = np.array([-0.5, 0.0, 0.25, 1.0, 2.0])
    np.testing.assert_array_equal(quantize(x, 1 / 255, signed=False), [0, 0, 64, 255, 255])
    np.testing.assert_array_equal(quantize(x, 1 / 255), [-128, 0, 64, 127, 127])
    # 8-bit images k/255 (as float32) are held exactly by the unsigned grid of 1/255 and not
    # by the signed grid of 1/127
    k = np.arange(256)
    img = (k / 255.0).astype(np.float32)
    np.testing.assert_array_equal(quantize(img, 1 / 255, signed=False), k)
    signed = quantize(img, 1 / 127)
    assert np.count_nonzero(signed / 127.0 != k / 255.0) > 200
    with pytest.raises(TypeError, match="signed"):
        input_range("no")  # type: ignore[arg-type]


def test_integer_input_out_of_the_unsigned_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "u.snn.safetensors"
    snnsim.save(_graph(False), path)
    m = snnsim.load(path)
    ok = np.array([[0, 255, 17]], np.int32)
    res = snnsim.run(m, ok, steps=2)
    np.testing.assert_array_equal(res.output, [[272.0, 272.0]])
    assert np.array_equal(snnsim.run(m, ok, steps=2, mode="reference").output, res.output)
    for bad, val in (([0, 256, 0], "256"), ([-1, 0, 0], "-1")):
        x = np.array([bad], np.int32)
        with pytest.raises(InputError, match=rf"static input.*\[0, 255\].*unsigned.*got {val}"):
            snnsim.run(m, x, steps=2)
        # the engine's own check names its argument and the range
        with pytest.raises(InputError, match=rf"'x'.*{val}.*\[0, 255\].*input\.signed"):
            m.engine.run_static(x, 2, [])
        with pytest.raises(InputError, match=r"\[0, 255\]"):
            run_reference(m.graph, static=x, steps=2)
    # a signed model still refuses 128 and takes -128
    snnsim.save(_graph(True), path)
    s = snnsim.load(path)
    assert snnsim.run(s, np.array([[-128, 0, 0]], np.int32), steps=1).output[0, 0] == -128
    with pytest.raises(InputError, match=r"\[-128, 127\]"):
        snnsim.run(s, np.array([[200, 0, 0]], np.int32), steps=1)
    with pytest.raises(InputError, match=r"'x'.*200.*\[-128, 127\]"):
        s.engine.run_static(np.array([[200, 0, 0]], np.int32), 1, [])


def test_float_input_is_quantised_unsigned() -> None:
    q = prepare_static(np.array([[-0.2, 0.5, 3.0]]), (3,), "int", 1 / 255, signed=False)
    np.testing.assert_array_equal(q, [[0, 128, 255]])
    seq = prepare_sequence(np.array([[[0.5, 1.0, 2.0]]]), (3,), "int", 1 / 255, signed=False)
    np.testing.assert_array_equal(seq, [[[128, 255, 255]]])
    with pytest.raises(InputError, match=r"sequence.*\[0, 255\]"):
        prepare_sequence(np.array([[[-1, 0, 0]]], np.int32), (3,), "int", None, signed=False)


# ------------------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def digits_mlp() -> tuple[torch.nn.Module, torch.nn.Module, np.ndarray, np.ndarray]:
    xtr, ytr = load_digits_split("train")
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr).long()
    out = []
    for neuron in ("if", "lif"):
        torch.manual_seed(0)
        m = create_model("dsr-mlp", in_features=64, hidden=(48,), neuron=neuron, T=5)
        out.append(sgd_steps(m, x, y, 40, lr=3e-3))
    xte, _ = load_digits_split("test")
    return out[0], out[1], xtr, xte


def test_export_chooses_the_input_from_the_calibration_data(digits_mlp) -> None:
    model, _, xtr, _ = digits_mlp
    calib = xtr[:256]
    g = export_graph(model, "int8", calibration=calib)  # non-negative: unsigned, max/255
    assert g.input_signed is False
    assert g.input_scale == pytest.approx(float(calib.max()) / 255)
    g = export_graph(model, "int8", calibration=calib, input_signed=True)
    assert g.input_signed is True and g.input_scale == pytest.approx(float(calib.max()) / 127)
    neg = calib - 0.5  # negative values: signed, max|x|/127
    g = export_graph(model, "int8", calibration=neg)
    assert g.input_signed is True
    assert g.input_scale == pytest.approx(float(np.abs(neg).max()) / 127)
    with pytest.raises(ExportError, match="input_signed=False.*negative"):
        export_graph(model, "int8", calibration=neg, input_signed=False)
    with pytest.raises(ExportError, match="input_signed"):
        export_graph(model, "int8", calibration=calib, input_signed="yes")  # type: ignore[arg-type]
    # nothing known about the input: signed 1/127 as before; [0, 1] images said: 1/255
    g = export_graph(model, "int8", input_shape=(1, 8, 8))
    assert g.input_signed is True and g.input_scale == pytest.approx(1 / 127)
    g = export_graph(model, "int8", input_shape=(1, 8, 8), input_signed=False)
    assert g.input_signed is False and g.input_scale == pytest.approx(1 / 255)
    # normalised [0, 1] images: signed when a mean is positive
    g = export_graph(model, "int8", input_shape=(1, 8, 8), normalize=([0.5], [0.25]))
    assert g.input_signed is True and g.input_scale == pytest.approx(2.0 / 127)
    # float32 exports and explicit scales
    assert export_graph(model, "float32", calibration=calib).input_signed is True
    g = export_graph(model, "int8", calibration=calib, input_scale=0.01)
    assert g.input_signed is False and g.input_scale == 0.01


@pytest.mark.parametrize("mode", ["int8", "int4", "int16"])
def test_unsigned_mlp_exports_are_bit_exact(digits_mlp, mode: str) -> None:
    for model in digits_mlp[:2]:
        g = export_graph(model, mode, calibration=digits_mlp[2][:256], per_channel=mode == "int8")
        assert g.input_signed is False
        int_exact(g, digits_mlp[3][:120], None)


def test_unsigned_cnn_export_is_bit_exact_and_lossless_on_mnist() -> None:
    xtr, ytr = load_mnist5k_split("train")
    xte, _ = load_mnist5k_split("test")
    torch.manual_seed(0)
    model = create_model("dsr-mnist-cnn", T=4)
    model = sgd_steps(model, torch.from_numpy(xtr[:512]), torch.from_numpy(ytr[:512]).long(), 12)
    g = export_graph(model, "int8", calibration=xtr[:512])
    assert g.input_signed is False and g.input_scale == pytest.approx(1 / 255)
    # the pixels k/255 are exact on the input grid
    q = prepare_static(xte[:60], g.input_shape, "int", g.input_scale, signed=False)
    np.testing.assert_array_equal(q, np.rint(xte[:60].astype(np.float64) * 255))
    assert q.max() == 255
    int_exact(g, xte[:60], None)


def test_the_first_layer_bound_uses_255(digits_mlp) -> None:
    """The exporter's int32 bound on the first layer takes |x| <= 255 (unsigned): with the
    largest weights and every input at 255 the engine, which checks every value, runs."""
    model = copy.deepcopy(digits_mlp[0])
    with torch.no_grad():
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        first.weight.fill_(50.0)
    g = export_graph(model, "int16", input_shape=(1, 8, 8), input_signed=False, input_scale=1.0)
    x = np.full((2, 1, 8, 8), 255, np.int32)
    int_exact(g, x, None)


# ------------------------------------------------------------------------------ QAT and NIR
def test_qat_sees_the_unsigned_grid(digits_mlp) -> None:
    base, _, xtr, _ = digits_mlp
    ytr = load_digits_split("train")[1]
    for signed, top in ((None, 1.0), (False, 1.0), (True, 127 / 255)):
        seen: list[torch.Tensor] = []
        model = copy.deepcopy(base)
        h = model.register_forward_pre_hook(lambda m, a, s=seen: s.append(a[0].detach().clone()))
        try:
            qat_finetune(
                model,
                (xtr[:200], ytr[:200]),
                "int8",
                lr=1e-4,
                batch_size=100,
                input_scale=1 / 255,
                input_signed=signed,
            )
        finally:
            h.remove()
        x = torch.cat(seen).double()
        k = x * 255
        assert bool((k - torch.round(k)).abs().max() < 1e-4)
        assert float(x.max()) == pytest.approx(top)
    with pytest.raises(ValueError, match="input_signed"):
        qat_finetune(copy.deepcopy(base), (xtr[:100], ytr[:100]), "int8", input_signed="no")  # type: ignore[arg-type]


def test_nir_carries_input_signed() -> None:
    pytest.importorskip("nir")
    from snnsim.nir_interop import from_nir, to_nir

    g = Graph(input_shape=(3,))
    g.input_signed = False
    g.linear("fc", "input", np.ones((2, 3), np.float32))
    g.integrate("out", "fc")
    g.set_output("out")
    ng = to_nir(g)
    assert from_nir(ng).input_signed is False
    meta = json.loads(ng.metadata["snnsim"])
    meta["input_signed"] = "no"
    ng.metadata["snnsim"] = json.dumps(meta)
    with pytest.raises(ModelError, match="input_signed"):
        from_nir(ng)
