"""The controlled comparison with SpikingJelly's DSR port (``benches/dsr_vs_spikingjelly.py``):
the port's network built there is the snnsim MNIST CNN (same initial weights, same logits, and
with snnsim's per-step backward the same gradients), and the harness trains both on the same
batches in the same order with the same recipe."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BENCH = Path(__file__).resolve().parents[2] / "benches" / "dsr_vs_spikingjelly.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("dsr_vs_spikingjelly", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.train()
    model.zero_grad()
    out = model(x)
    torch.nn.functional.cross_entropy(out, y).backward()
    return [out.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("neuron", ["if", "lif"])
def test_port_equals_the_snnsim_step_form(harness, neuron: str) -> None:
    """Same init, same forward (logits bit for bit in the plain memory format, whose
    convolutions round as the port's), and the per-step backward of snnsim gives the port's
    gradients (weights, batch norms, thresholds) to float rounding."""
    cfg = harness.config(neuron, 3, seed=1, epochs=1, threads=1)
    port = harness.build("port-weighted-readout" if neuron == "lif" else "port", cfg)
    step = harness.build("snnsim-step", cfg, channels_last=False)
    rate = harness.build("snnsim", cfg, channels_last=False)
    sd = {k.replace(".v_threshold", ".theta"): v for k, v in port.state_dict().items()}
    for k, v in step.state_dict().items():
        assert torch.equal(v, sd[k]), k
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28, generator=g) * (torch.rand(16, 1, 28, 28, generator=g) < 0.3)
    y = torch.arange(16) % 10
    gp, gs, gr = _grads(port, x, y), _grads(step, x, y), _grads(rate, x, y)
    assert torch.equal(gp[0], gs[0]) and torch.equal(gp[0], gr[0])
    for a, b in zip(gp[1:], gs[1:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert any(float(t.abs().sum()) > 0 for t in gp[1:])


def test_harness_trains_both_on_the_same_batches(harness) -> None:
    """Two epochs on a small subset: the port and snnsim's default (the rate form with the
    exact batch-norm term: for IF the port's gradients) end with equal weights up to float
    rounding, which they can only do if the harness gave both the same batches in the same
    order, the same augmentation and the same learning rates; the rate form without the term
    (the old default) ends elsewhere; the rows and the paired summary carry what the report
    needs."""
    from snnsim.data import mnist5k_datasets

    tr, te = mnist5k_datasets()
    idx = torch.arange(0, 4000, 40)  # the splits are stored class by class: every 40th image
    data = (
        TensorDataset(tr.tensors[0][idx], tr.tensors[1][idx]),
        TensorDataset(te.tensors[0][::20], te.tensors[1][::20]),
    )
    cfg = harness.config("if", 2, seed=3, epochs=2, threads=1)
    rows, sd = {}, {}
    for v in ("port", "snnsim", "snnsim-rate"):
        rows[v], model = harness.run_one(v, cfg, keep=False, datasets=data, channels_last=False)
        sd[v] = {k.replace(".v_threshold", ".theta"): t for k, t in model.state_dict().items()}
    for k, t in sd["snnsim"].items():
        torch.testing.assert_close(t.float(), sd["port"][k].float(), rtol=2e-3, atol=2e-4, msg=k)
    w = "body.9.weight"
    assert not torch.allclose(sd["snnsim-rate"][w], sd["port"][w], rtol=2e-3, atol=2e-4)
    for r in rows.values():
        assert r["epochs"] == 2 and 0 <= r["acc"] <= 1 and len(r["firing_rates"]) == 3
        assert r["acc_per_epoch"] == [r["acc"]]  # evaluated after the last epoch only
    fake = [dict(rows["port"], seed=s, acc=a) for s, a in ((0, 0.90), (1, 0.92))] + [
        dict(rows["snnsim"], seed=s, acc=a) for s, a in ((0, 0.91), (1, 0.95))
    ]
    summary = {s["variant"]: s for s in harness.summarise(fake)}
    assert summary["snnsim"]["vs_port"]["mean_diff"] == pytest.approx(0.02)
    assert summary["snnsim"]["vs_port"]["seeds"] == [0, 1]
    assert summary["port"]["mean_acc"] == pytest.approx(0.91)
