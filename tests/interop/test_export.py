"""Guarantees of ``snnsim.export`` on briefly trained networks (DSR MLP IF/LIF, the DSR MNIST CNN,
the Dspike MNIST CNN):

(a) integer exports (int8/int4/int16, per layer and per channel): the torch reference and the
    Rust engine give identical spikes at every layer and step, identical outputs and predictions;
(b) float32 exports agree with the TRAINED TORCH MODEL: predictions on >= 99.9% of the samples
    (DSR IF and LIF, whose readout weighting lambda^(T-n) the export reproduces with a leaky
    integrate), and spikes identical except where the torch membrane lies within
    FLOAT_TOL*max(1, |fire|) of the fire level (the rule of tests/engine/test_parity.py; a sample
    is not compared after its first such flip);
(c) int8 accuracy within 2 points of the float model;
(d) unsupported modules raise ExportError naming the module.

The residual models of the registry are covered by tests/test_export_models.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnsim
from _trained import compare_float, int_exact, torch_record, train_dspike_mnist
from snnsim.data import load_mnist5k_split
from snnsim.errors import SnnsimError
from snnsim.exporter import ExportError, export, export_graph
from snnsim.models import create_model
from snnsim.train.configs import get_config
from snnsim.train.trainer import Trainer

T = 5
N_TEST = 200


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    xtr, ytr = load_mnist5k_split("train")
    xte, yte = load_mnist5k_split("test")
    return (
        torch.from_numpy(xtr),
        torch.from_numpy(ytr).long(),
        torch.from_numpy(xte[:N_TEST]),
        yte[:N_TEST],
    )


def _fit(config: str, epochs: int, **model_kwargs):
    """A briefly trained model with the project's MNIST-5k recipe (SGD, cosine, crop)."""
    cfg = get_config(config).with_(epochs=epochs, num_threads=1, eval_every=epochs)
    if model_kwargs:
        cfg = cfg.with_(model_kwargs={**cfg.model_kwargs, **model_kwargs})
    tr = Trainer(cfg, progress=False)
    tr.fit(log=None)
    return tr.model.eval()


@pytest.fixture(scope="module")
def mlp_if():
    return _fit("dsr-mnist5k-mlp-if-t5", 2, hidden=(256,))


@pytest.fixture(scope="module")
def mlp_lif():
    return _fit("dsr-mnist5k-mlp-lif-t5", 1, hidden=(256,))


@pytest.fixture(scope="module")
def cnn():
    return _fit("dsr-mnist5k-cnn-if-t5", 1)


@pytest.fixture(scope="module")
def dspike(data):
    return train_dspike_mnist(data[0], data[1], T=4)


# ---------------------------------------------------------------------- helpers
def _compare_float(model, graph, x: torch.Tensor) -> dict[str, int]:
    return compare_float(model, graph, x)


def _int_exact(graph, x: np.ndarray, steps: int) -> np.ndarray:
    return int_exact(graph, x, steps)[1]


# ----------------------------------------------------------------- (a) integer: engine == reference
@pytest.mark.parametrize("mode", ["int8", "int4", "int16"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_int_mlp_engine_equals_reference(
    mlp_if, mlp_lif, data, tmp_path, mode, per_channel
) -> None:
    x = data[2][:100].numpy()
    for model in (mlp_if, mlp_lif):
        path = tmp_path / f"{mode}.snn.safetensors"
        export(model, path, mode, input_shape=(1, 28, 28), per_channel=per_channel)
        _int_exact(str(path), x, T)
        g = snnsim.load(path).graph
        assert g.precision == "int" and g.input_scale == pytest.approx(1 / 127)
        assert {n.attrs["weight_bits"] for n in g.nodes if n.op == "linear"} == {int(mode[3:])}


@pytest.mark.parametrize("mode", ["int8", "int4", "int16"])
def test_int_cnn_engine_equals_reference(cnn, data, tmp_path, mode) -> None:
    path = tmp_path / "cnn.snn.safetensors"
    export(cnn, path, mode, input_shape=(1, 28, 28), per_channel=(mode == "int8"))
    g = snnsim.load(path).graph
    assert [n.op for n in g.nodes] == [
        "conv2d",
        "dsr_if",
        "sumpool2d",
        "conv2d",
        "dsr_if",
        "sumpool2d",
        "flatten",
        "linear",
        "dsr_if",
    ]
    _int_exact(str(path), data[2][:40].numpy(), T)


@pytest.mark.parametrize("mode", ["int8", "int4", "int16"])
def test_int_dspike_engine_equals_reference(dspike, data, mode) -> None:
    g = export_graph(dspike, mode, input_shape=(1, 28, 28), calibration=data[0][:256])
    assert g.nodes[-1].op == "integrate" and g.output == "out"
    _int_exact(g, data[2][:40].numpy(), 4)


# ------------------------------------------------------------------- (b) float32 vs the torch model
def test_float_mlp_matches_torch(mlp_if, data, tmp_path) -> None:
    path = tmp_path / "f.snn.safetensors"
    export(mlp_if, path, "float32", input_shape=(1, 28, 28))
    stats = _compare_float(mlp_if, str(path), data[2])
    print("float32 dsr-mlp IF", stats)
    assert stats["pred_flips"] <= stats["samples"] // 1000
    assert stats["diverged"] <= stats["samples"] // 20


def test_float_cnn_matches_torch(cnn, data) -> None:
    g = export_graph(cnn, "float32", input_shape=(1, 28, 28))
    assert [n.op for n in g.nodes][:3] == ["conv2d", "dsr_if", "avgpool2d"]
    stats = _compare_float(cnn, g, data[2][:100])
    print("float32 dsr-mnist-cnn IF", stats)
    assert stats["pred_flips"] <= stats["samples"] // 1000
    assert stats["diverged"] <= stats["samples"] // 20


def test_float_lif_matches_torch(mlp_lif, data) -> None:
    """LIF: spikes as the torch model's (tolerance rule) and, through the leaky integrate readout
    (leak lambda, the model's lambda^(T-n) weighting up to a positive factor), predictions on
    >= 99.9% of the test samples."""
    g = export_graph(mlp_lif, "float32", input_shape=(1, 28, 28))
    assert g.node(g.output).op == "integrate" and g.node(g.output).tensors["leak"][0] == np.float32(
        mlp_lif.cfg.leak
    )
    xte, _ = load_mnist5k_split("test")
    x = torch.from_numpy(xte)
    stats = _compare_float(mlp_lif, g, x)
    print("float32 dsr-mlp LIF", stats)
    assert stats["pred_flips"] <= stats["samples"] // 1000, stats
    assert stats["diverged"] <= stats["samples"] // 20
    logits, spikes, _, _ = torch_record(mlp_lif, x[:N_TEST])
    res = snnsim.run(g, x[:N_TEST].numpy(), steps=T)
    lam = mlp_lif.cfg.leak
    want = np.tensordot(lam ** np.arange(T - 1, -1, -1), spikes[-1].transpose(1, 0, 2), axes=1)
    np.testing.assert_allclose(res.output * T, want, rtol=1e-5, atol=1e-6)


def test_float_dspike_matches_torch(dspike, data) -> None:
    g = export_graph(dspike, "float32", input_shape=(1, 28, 28))
    with torch.no_grad():
        want = dspike(data[2]).argmax(1).numpy()
    res = snnsim.run(g, data[2].numpy(), steps=4)
    assert (res.prediction != want).sum() <= 2


# ---------------------------------------------------------------------- (c) int8 accuracy
def test_int8_accuracy_close_to_float(mlp_if, cnn, data) -> None:
    x, y = data[2].numpy(), data[3]
    for model, n in ((mlp_if, N_TEST), (cnn, 100)):
        with torch.no_grad():
            dev = next(model.parameters()).device  # the fixture trains on CUDA when there is one
            acc_f = float((model(data[2][:n].to(dev)).argmax(1).cpu().numpy() == y[:n]).mean())
        g = export_graph(model, "int8", input_shape=(1, 28, 28), calibration=data[0][:256])
        acc_q = float((snnsim.run(g, x[:n], steps=T).prediction == y[:n]).mean())
        print(f"float {acc_f:.3f} int8 {acc_q:.3f}")
        assert acc_f > 0.7
        assert acc_q >= acc_f - 0.02


# ---------------------------------------------------------------------- (d) errors
def test_unsupported_modules_raise() -> None:
    with pytest.raises(ExportError, match="ANN"):
        export_graph(create_model("dsr-mlp", neuron="relu"), "float32")
    with pytest.raises(ExportError, match="DSRNet"):
        export_graph(torch.nn.Sequential(torch.nn.Linear(4, 2)), "int8")
    with pytest.raises(ExportError, match="mode"):
        export_graph(create_model("dsr-mlp", hidden=(8,)), "int2")  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    with pytest.raises(ExportError, match="input_shape"):
        export_graph(create_model("dsr-mnist-cnn", T=2), "int8")
    assert issubclass(ExportError, SnnsimError) and issubclass(ExportError, ValueError)
