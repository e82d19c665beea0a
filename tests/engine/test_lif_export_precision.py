"""Integer export of DSR LIF networks keeps the float law's spikes and readout order.

A constructed LIF layer whose weights lie exactly on the int16 grid and whose inputs lie exactly
on the int8 input grid: quantisation then loses nothing, so every difference between the int16
engine and the float32 torch model comes from how the exporter turns the leak, the input factor
``1 - lambda`` and the readout into fixed point. With 16 fraction bits the input factor was off
by up to 9e-5 (relative) and spikes flipped well away from the firing level; with all the bits
int32 allows they may differ only within a few membrane units of it. The readout is checked
against the exact ``lambda``-weighted spike sums of the recorded spikes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnsim
from _trained import torch_record
from snnsim.exporter import export_graph, lif_readout_int, neuron_nodes
from snnsim.nn.layers import DSRNeuron, LinearT
from snnsim.nn.net import DSRNet, neuron_config

N_NEURONS = 4096
QMAX16 = 32767
# Membrane error of the int16 law, as a fraction of theta: at most one unit per step (two
# half-up roundings) summed under the leak (<= 1/(1 - lambda) units), plus the rounding of
# theta_q and fire_q, on a grid of >= 2^18 units per theta. 2e-5 leaves room; the f = 16 input
# factor alone was off by 9e-5 of the current.
MARGIN_TOL = 1e-5


def _sweep_layer(T: int) -> DSRNet:
    """``1 -> N_NEURONS`` linear layer of LIF neurons, weights ``k * c`` with integers ``k``
    spread over ``1..32767`` (so the int16 grid holds them exactly), currents up to 8 (full
    rate needs about ``theta / (1 - lambda)``, 6.2 at T = 20)."""
    cfg = neuron_config("lif", T)
    assert cfg is not None
    lin = LinearT(1, N_NEURONS, bias=False)
    k = np.rint(np.linspace(1, QMAX16, N_NEURONS))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy((k * (8.0 / QMAX16)).reshape(-1, 1)))
    torch.manual_seed(0)
    return DSRNet([lin, DSRNeuron(cfg)], cfg, T).eval()


def _inputs() -> np.ndarray:
    """Static inputs on the int8 grid (``j / 127``)."""
    j = np.array([127, 113, 101, 89, 77, 64, 50, 37], dtype=np.float64)
    return (j / 127.0).astype(np.float32).reshape(-1, 1)


@pytest.mark.parametrize("T", [5, 20])
def test_int16_lif_spikes_match_float_law(T: int) -> None:
    torch.set_num_threads(1)
    model = _sweep_layer(T)
    x = _inputs()
    g = export_graph(model, "int16", input_shape=(1,), input_scale=1.0 / 127.0)
    _, spikes, margins, _ = torch_record(model, torch.from_numpy(x))
    theta = float(model.body[1].theta.detach())
    (name,) = neuron_nodes(g)
    res = snnsim.run(g, x, steps=T, record=[name])
    got = res.record[name].astype(bool)
    want = spikes[0].astype(bool)
    assert got.shape == want.shape
    assert want.any() and not want.all()
    # Compare each neuron up to its first near-threshold step (afterwards the two membranes
    # may legitimately differ by a reset).
    near = np.abs(margins[0]) <= MARGIN_TOL * theta
    before_near = np.cumsum(near, axis=1) == 0
    bad = (got != want) & before_near
    assert int(bad.sum()) == 0, (
        f"{int(bad.sum())} spikes differ where the float membrane is more than "
        f"{MARGIN_TOL} theta from the firing level"
    )


@pytest.mark.parametrize("T", [5, 20])
def test_int_lif_readout_is_the_exact_weighted_sum(T: int) -> None:
    model = _sweep_layer(T)
    x = _inputs()
    g = export_graph(model, "int16", input_shape=(1,), input_scale=1.0 / 127.0)
    (name,) = neuron_nodes(g)
    res = snnsim.run(g, x, steps=T, record=[name])
    assert res.output_sum is not None
    s = res.record[name].astype(np.float64)  # [B, T, N]
    lam = float(model.cfg.leak)
    w = lam ** (T - 1 - np.arange(T, dtype=np.float64))
    exact = np.einsum("btn,t->bn", s, w)
    R, leak_m, f = lif_readout_int(lam)
    got = res.output_sum / R
    # Each step rounds by half a unit: the readout is off by at most T / (2 R) spikes.
    assert np.abs(got - exact).max() <= T / (2.0 * R) + T * abs(leak_m / 2.0**f - lam)
    assert np.abs(got - exact).max() <= 1e-6


@pytest.mark.parametrize("lam", [float(np.exp(-0.1)), float(np.exp(-0.05)), 0.5, 0.999])
def test_lif_readout_int_resolution(lam: float) -> None:
    R, leak_m, f = lif_readout_int(lam)
    assert 1 <= f <= 31 and 0 < leak_m <= 2**31 - 1
    assert abs(leak_m / 2.0**f - lam) <= 2.0 ** -(f + 1)
    assert f >= 30
    # Membrane bound for any number of steps stays inside int32, with a fine unit per spike.
    assert (R + 1) / (1.0 - lam) < 2**31 - 1
    assert 2 * R <= 2**31 - 1 and R >= 2**14


def test_lif_readout_int_rejects_a_bad_leak() -> None:
    from snnsim.exporter import ExportError

    with pytest.raises(ExportError, match="lambda"):
        lif_readout_int(1.0)
