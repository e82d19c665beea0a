"""snnsim's exact SOP counts against the field's counters on the same binary-spike network:
SpikingJelly 2.0.0's ``SynOpCounter`` and NeuroBench 2.3's ``SynapticOperations``
(``Effective_ACs``). The torch side holds the graph's own weights and replays the spikes the
engine recorded, step by step, so the two count the same spikes by their own rules.

Conventions where they differ (docs/energy.md): NeuroBench counts a layer with analog input as
MACs over its *nonzero* input elements only (snnsim: every element of a dense or static input);
a zero weight is no operation for NeuroBench (snnsim counts every synapse a spike reaches); DSR's
torch layers carry theta-valued spikes, which neither counter recognises as spikes (the exported
graph moves unit spikes, theta folded into the weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import snnsim

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T = 6


def _network(seed: int) -> tuple[snnsim.Graph, nn.Module, nn.Module, nn.Module, nn.Module]:
    """input [1, 9, 9] -> conv1 (pad 1) -> IF -> conv2 (stride 2, pad 1) -> IF -> flatten ->
    fc -> integrate; float32, random nonzero weights. Returns the graph and the torch layers."""
    g = torch.Generator().manual_seed(seed)
    conv1 = nn.Conv2d(1, 4, 3, padding=1)
    conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
    fc = nn.Linear(6 * 5 * 5, 10)
    with torch.no_grad():
        for layer, scale in ((conv1, 1.5), (conv2, 0.6), (fc, 0.3)):
            w = torch.rand(layer.weight.shape, generator=g) * 2 - 1
            layer.weight.copy_(torch.where(w.abs() < 0.05, torch.full_like(w, 0.05), w) * scale)
            layer.bias.copy_(torch.rand(layer.bias.shape, generator=g) * 0.2)
    gr = snnsim.Graph(input_shape=(1, 9, 9))
    gr.conv2d(
        "conv1", "input", conv1.weight.detach().numpy(), conv1.bias.detach().numpy(), padding=1
    )
    gr.dsr_if("sn1", "conv1", theta=1.0, fire=0.5)
    gr.conv2d(
        "conv2",
        "sn1",
        conv2.weight.detach().numpy(),
        conv2.bias.detach().numpy(),
        stride=2,
        padding=1,
    )
    gr.dsr_if("sn2", "conv2", theta=1.0, fire=0.5)
    gr.flatten("flat", "sn2")
    gr.linear("fc", "flat", fc.weight.detach().numpy(), fc.bias.detach().numpy())
    gr.integrate("out", "fc")
    gr.set_output("out")
    return gr, conv1, conv2, fc, nn.Flatten()


class _Replay(nn.Module):
    """The torch layers of the network, fed with the engine's recorded spikes step by step (the
    first layer once: its input is static)."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module, fc: nn.Module, s1, s2) -> None:
        super().__init__()
        self.conv1, self.conv2, self.fc = conv1, conv2, fc
        self.s1, self.s2 = s1, s2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv1(x)
        out = 0
        for t in range(T):
            self.conv2(self.s1[:, t])
            out = out + self.fc(self.s2[:, t].flatten(1))
        return out


def _engine(seed: int, x: np.ndarray):
    gr, conv1, conv2, fc, _ = _network(seed)
    res = snnsim.run(gr, x, steps=T, record=["sn1", "sn2"])
    per = res.counts.per_layer()
    sops = dict(zip(res.layer_names, per["sops"].tolist(), strict=True))
    macs = dict(zip(res.layer_names, per["macs"].tolist(), strict=True))
    s1 = torch.from_numpy(res.record["sn1"].astype(np.float32))
    s2 = torch.from_numpy(res.record["sn2"].astype(np.float32))
    assert s1.sum() > 0 and s2.sum() > 0 and s1.mean() < 0.6
    return res, sops, macs, _Replay(conv1, conv2, fc, s1, s2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sops_equal_spikingjelly_synopcounter(seed: int):
    from spikingjelly.activation_based.op_counter import DispatchCounterMode, SynOpCounter

    rng = np.random.default_rng(seed)
    x = rng.random((5, 1, 9, 9)).astype(np.float32)
    x[:, :, :2] = 0.0  # zero rows: analog input, not spikes, for either side
    res, sops, _, net = _engine(seed, x)
    counter = SynOpCounter()
    with torch.no_grad(), DispatchCounterMode([counter]):
        net(torch.from_numpy(x))
    by_module = {k: sum(v.values()) for k, v in counter.get_counts().items()}
    sj_conv2 = sum(v for k, v in by_module.items() if k.endswith("conv2"))
    sj_fc = sum(v for k, v in by_module.items() if k.endswith("fc"))
    assert sops["conv2"] == sj_conv2 > 0  # conv with stride and padding: borders clipped alike
    assert sops["fc"] == sj_fc > 0
    assert counter.get_total() == sops["conv2"] + sops["fc"]  # the analog first layer: no SynOps
    assert res.counts.total()["sops"] == counter.get_total()


@pytest.mark.parametrize("seed", [0, 3])
def test_sops_equal_neurobench_effective_acs(seed: int):
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    rng = np.random.default_rng(seed)
    x = (rng.random((4, 1, 9, 9)) + 0.05).astype(np.float32)  # no zero pixel: see below
    res, sops, macs, net = _engine(seed, x)
    model = TorchModel(net)
    model.register_hooks()
    with torch.no_grad():
        preds = model(torch.from_numpy(x))
    nb = SynapticOperations()(model, preds, (torch.from_numpy(x), torch.zeros(len(x))))
    model.close_hooks()
    b = len(x)
    assert nb["Effective_ACs"] == pytest.approx((sops["conv2"] + sops["fc"]) / b, rel=0, abs=1e-9)
    e = snnsim.energy(res, snnsim.Model.from_graph(_network(seed)[0])).neurobench()
    assert e["Effective_ACs"] == pytest.approx(nb["Effective_ACs"], rel=0, abs=1e-9)
    # the static first layer runs once; with no zero pixel NeuroBench's MACs are snnsim's
    assert nb["Effective_MACs"] == pytest.approx(macs["conv1"] / b, rel=0, abs=1e-9)
    assert e["Effective_MACs"] == pytest.approx(nb["Effective_MACs"], rel=0, abs=1e-9)


def test_neurobench_counts_only_nonzero_analog_inputs():
    """The documented difference: zero pixels are no MACs for NeuroBench, MACs for snnsim (a
    dense/static input is processed whole)."""
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    x = np.random.default_rng(5).random((3, 1, 9, 9)).astype(np.float32)
    x[:, :, :3] = 0.0
    res, sops, macs, net = _engine(5, x)
    model = TorchModel(net)
    model.register_hooks()
    with torch.no_grad():
        preds = model(torch.from_numpy(x))
    nb = SynapticOperations()(model, preds, (torch.from_numpy(x), torch.zeros(len(x))))
    model.close_hooks()
    assert nb["Effective_MACs"] < macs["conv1"] / len(x)
    assert nb["Effective_ACs"] == pytest.approx((sops["conv2"] + sops["fc"]) / len(x), abs=1e-9)
