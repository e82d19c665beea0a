"""Quantisation-aware fine-tuning (:mod:`snnsim.qat`): the fake-quant forward is the exporter's
grid exactly, the straight-through gradient is the identity inside the clip range and zero
outside, and after QAT of a small DSR MLP the int8 export still runs spike-for-spike equal in the
engine and the integer reference, and int4 accuracy does not fall."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import snnsim
from snnsim.data import load_mnist5k_split
from snnsim.exporter import QMAX, export_graph, neuron_nodes, weight_scale
from snnsim.qat import (
    _bn_fold_scale,
    _weighted_layers,
    attach_fake_quant,
    detach_fake_quant,
    fake_quant,
    qat_finetune,
)
from snnsim.train.configs import get_config
from snnsim.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
T = 5


@pytest.mark.parametrize("mode", ["int4", "int8"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fake_quant_is_exporter_grid(mode, per_channel) -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 3, 3, 3, generator=g, dtype=torch.float64)
    s = weight_scale(w.numpy(), mode, per_channel)
    q = fake_quant(w, torch.from_numpy(s), mode)
    qmax = QMAX[mode]
    k = np.clip(np.rint(w.numpy() / s.reshape(-1, 1, 1, 1)), -qmax - 1, qmax)
    np.testing.assert_array_equal(q.numpy(), k * s.reshape(-1, 1, 1, 1))  # bit-exact
    assert np.abs(k).max() == qmax
    # the parametrised weight re-quantises to itself (what the export will do)
    k2 = np.rint(q.numpy() / weight_scale(q.numpy(), mode, per_channel).reshape(-1, 1, 1, 1))
    np.testing.assert_array_equal(k2, k)


def test_ste_gradient_identity_inside_zero_outside() -> None:
    w = torch.tensor(
        [-20.0, -8.4, -8.0, -3.3, 0.0, 0.49, 2.5, 6.9, 7.0, 7.6, 30.0], requires_grad=True
    )
    q = fake_quant(w, 1.0, "int4")  # range [-8, 7]
    np.testing.assert_array_equal(q.detach().numpy(), [-8, -8, -8, -3, 0, 0, 2, 7, 7, 7, 7])
    up = torch.arange(1.0, 12.0)
    q.backward(up)
    inside = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=np.float32)
    np.testing.assert_array_equal(w.grad.numpy(), up.numpy() * inside)


@pytest.fixture(scope="module")
def setup():
    xtr, ytr = load_mnist5k_split("train")
    xte, yte = load_mnist5k_split("test")
    cfg = get_config("dsr-mnist5k-mlp-if-t5").with_(
        epochs=1, num_threads=1, eval_every=1, seed=0, model_kwargs={"hidden": (128,)}
    )
    tr = Trainer(cfg, progress=False)
    tr.fit(log=None)
    return tr.model.eval(), (xtr[:1500], ytr[:1500]), xte[:300], yte[:300]


def _int_acc(model, mode, x, y) -> float:
    g = export_graph(model, mode, input_shape=(1, 28, 28))
    return float((snnsim.run(g, x, steps=T).prediction == y).mean())


def test_attach_detach_keeps_latent_weights(setup) -> None:
    model = setup[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attach_fake_quant(model, "int4")
    w = model.body[1].weight if hasattr(model.body[1], "weight") else None
    assert any(isinstance(m, torch.nn.Linear) for m in model.body)
    detach_fake_quant(model, leave_quantised=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    del w


def test_qat_int8_exact_and_int4_not_worse(setup) -> None:
    import copy

    base, train, x, y = setup
    acc4_before = _int_acc(base, "int4", x, y)
    m4 = qat_finetune(copy.deepcopy(base), train, "int4", epochs=1, lr=5e-3, batch_size=100, seed=0)
    acc4_after = _int_acc(m4, "int4", x, y)
    assert acc4_after >= acc4_before - 0.02, (acc4_before, acc4_after)
    # weights left on the grid: the export's quantisation is lossless
    layers = _weighted_layers(m4)
    assert layers
    for _, m, bn, _ in layers:
        w = m.weight.detach().double()
        if bn is not None:  # the exporter quantises the BN-folded weight
            w = w * _bn_fold_scale(bn).double().reshape((-1,) + (1,) * (w.ndim - 1))
        w = w.cpu().numpy()
        r = w / weight_scale(w, "int4").reshape((-1,) + (1,) * (w.ndim - 1))
        np.testing.assert_allclose(r, np.rint(r), atol=1e-5)
    m8 = qat_finetune(copy.deepcopy(base), train, "int8", epochs=1, lr=5e-3, batch_size=100, seed=0)
    g = export_graph(m8, "int8", input_shape=(1, 28, 28))
    names = neuron_nodes(g)
    eng = snnsim.run(g, x[:100], steps=T, mode="engine", record=names)
    ref = snnsim.run(g, x[:100], steps=T, mode="reference", record=names)
    for n in names:
        assert int(np.count_nonzero(eng.record[n] != ref.record[n])) == 0, n
    np.testing.assert_array_equal(eng.output, ref.output)
    assert sum(int(eng.record[n].sum()) for n in names) > 0


def test_qat_input_scale_trains_on_the_int8_input_grid(setup) -> None:
    """With ``input_scale`` every batch the model sees lies on the export's int8 input grid
    (and without it the raw pixels, k/255, are seen: most are off the 1/127 grid)."""
    base, (xtr, ytr), _, _ = setup
    scale = 1.0 / 127.0
    for given, on_grid in ((scale, True), (None, False)):
        seen: list[torch.Tensor] = []
        model = copy.deepcopy(base)
        h = model.register_forward_pre_hook(
            lambda m, a, seen=seen: seen.append(a[0].detach().clone())
        )
        try:
            qat_finetune(
                model, (xtr[:200], ytr[:200]), "int8", lr=1e-3, batch_size=100, input_scale=given
            )
        finally:
            h.remove()
        assert len(seen) >= 2
        k = torch.cat(seen).double() / scale
        assert bool((k - torch.round(k)).abs().max() < 1e-3) is on_grid
    with pytest.raises(ValueError, match="input_scale"):
        qat_finetune(copy.deepcopy(base), (xtr[:100], ytr[:100]), "int8", input_scale=0.0)
