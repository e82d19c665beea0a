"""Recurrent training layers (snnsim.nn.recurrent): the forward equals a hand-written loop, the
DSR layer's gradient is the one stated in its docstring (checked against the per-step formula),
the Dspike layer backpropagates through the recurrence, and export runs them in the engine with
the torch model's spikes (float32) and bit-exact against the reference (int8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnsim
from snnsim.data import make_sweeps
from snnsim.exporter import export_graph, neuron_nodes
from snnsim.nn.dsr import dsr_defaults
from snnsim.nn.recurrent import RecurrentDspikeNeuron, RecurrentDSRNeuron, delayed
from snnsim.nn.surrogates import DspikeSurrogate
from snnsim.train.sweeps import sweep_frames, sweep_net, train_sweeps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_delayed_shifts_by_one_step() -> None:
    s = torch.arange(6.0).reshape(3, 1, 2)
    np.testing.assert_array_equal(delayed(s).numpy(), [[[0, 0]], [[0, 1]], [[2, 3]]])


def test_recurrent_dspike_forward_is_the_loop_and_trains_through_time() -> None:
    torch.manual_seed(0)
    layer = RecurrentDspikeNeuron(4, DspikeSurrogate(b=2.0), leak=0.8, vth=0.5, bias=True)
    x = torch.randn(7, 3, 4)
    s_out = layer(x)
    w, b = layer.rec.weight.detach(), layer.rec.bias.detach()
    v = torch.zeros(3, 4)
    s = torch.zeros(3, 4)
    for t in range(7):
        u = 0.8 * v + (x[t] + s @ w.T + b)
        s = (u > 0.5).float()
        v = u * (1 - s)
        np.testing.assert_array_equal(s_out[t].detach().numpy(), s.numpy())
    # the gradient reaches the recurrent weights and the first step's input through later steps
    x.requires_grad_(True)
    out = layer(x)
    out[-1].sum().backward()
    assert layer.rec.weight.grad is not None and layer.rec.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad[0].abs().sum() > 0


def test_recurrent_dsr_gradient_is_the_stated_per_step_form() -> None:
    """dL/dx[n] = G m / N, dL/dW_rec = (G m) r_d^T, dL/db = G m, dL/dtheta = sum G 1[I > theta],
    with I = mean_n x[n] + W_rec r_d + b and r_d the mean of the delayed spike values."""
    torch.manual_seed(1)
    T, N, F = 9, 5, 6
    cfg = dsr_defaults("if", T).with_(theta0=1.0)
    layer = RecurrentDSRNeuron(F, cfg, bias=True)
    with torch.no_grad():
        layer.rec.weight.mul_(2.0)
    x = (torch.randn(T, N, F) * 0.8 + 0.5).requires_grad_(True)
    up = torch.randn(T, N, F)  # upstream gradient per step
    y = layer(x)
    (y * up).sum().backward()
    yv = y.detach()
    theta = float(layer.theta.detach())
    r_d = delayed(yv).mean(0)  # [N, F]
    W, b = layer.rec.weight.detach(), layer.rec.bias.detach()
    cur = x.detach().mean(0) + r_d @ W.T + b  # the mean current I
    G = up.sum(0)
    m = ((cur >= 0) & (cur <= theta)).float()
    gI = G * m
    torch.testing.assert_close(x.grad, (gI / T).expand(T, N, F))
    torch.testing.assert_close(layer.rec.weight.grad, gI.T @ r_d)
    torch.testing.assert_close(layer.rec.bias.grad, gI.sum(0))
    want_theta = (G * (cur > theta)).sum() * cfg.grad_scale
    torch.testing.assert_close(layer.theta.grad, want_theta.reshape(()))
    # the forward is the recurrent loop: spikes of step n - 1 reach step n through W_rec
    again, _ = layer.simulate(x.detach())
    torch.testing.assert_close(again, yv)
    assert (yv != 0).any() and (yv != 0).float().mean() < 1


@pytest.mark.parametrize("kind", ["dspike", "dsr"])
def test_exported_recurrent_networks_run_in_the_engine(kind: str) -> None:
    C, T = 16, 12
    torch.manual_seed(2)
    model = sweep_net(kind, C, 10, 4, T).eval()
    with torch.no_grad():
        model.body[1].weight.mul_(3.0)  # enough input for the neurons to fire
    recs, _ = make_sweeps(6, channels=C, seed=3)
    x = sweep_frames(recs, C, T)
    layer = model.body[2]
    with torch.no_grad():
        spikes = layer(model.body[1](model.body[0](x.transpose(0, 1)))) != 0  # [T, B, H]
    assert spikes.any()
    g32 = export_graph(model, "float32", input_shape=(1, C))
    assert [n.op for n in g32.topological_order()].count("delay") == 1
    name = neuron_nodes(g32)[0]
    eng = snnsim.run(g32, recs, steps=T, record=[name])
    flips = int((eng.record[name] != spikes.transpose(0, 1).numpy()).sum())
    assert flips <= 0.01 * spikes.numel(), flips  # float32: only near-threshold flips
    g8 = export_graph(model, "int8", input_shape=(1, C))
    names = neuron_nodes(g8)
    a = snnsim.run(g8, recs, steps=T, record=names)
    b = snnsim.run(g8, recs, steps=T, record=names, mode="reference")
    for n in names:
        np.testing.assert_array_equal(a.record[n], b.record[n])
    np.testing.assert_array_equal(a.output, b.output)
    np.testing.assert_array_equal(a.counts.sops, b.counts.sops)


def test_a_small_recurrent_network_learns_the_sweeps_and_runs_bit_exact() -> None:
    """Rising and falling sweeps differ only in time order; trained briefly, the recurrent
    Dspike network separates them, and its int8 export agrees with the reference."""
    C, T = 32, 20
    recs, y = make_sweeps(800, channels=C, seed=4)
    rt, yt = make_sweeps(160, channels=C, seed=5)
    x, xt = sweep_frames(recs, C, T), sweep_frames(rt, C, T)
    run = train_sweeps(
        x, torch.from_numpy(y), xt, torch.from_numpy(yt), kind="dspike", hidden=48, epochs=10
    )
    assert run.test_acc >= 0.8, run.test_acc
    g = export_graph(run.model, "int8", input_shape=(1, C))
    names = neuron_nodes(g)
    a = snnsim.run(g, rt, steps=T, record=names)
    b = snnsim.run(g, rt, steps=T, record=names, mode="reference")
    for n in names:
        np.testing.assert_array_equal(a.record[n], b.record[n])
    assert (a.prediction == yt).mean() >= 0.75
    # the torch model's own spikes (snnsim.torch_spikes) against its float32 export
    g32 = export_graph(run.model, "float32", input_shape=(1, C))
    _, spikes = snnsim.torch_spikes(run.model, xt, g32)
    eng = snnsim.run(g32, rt, steps=T, record=list(spikes))
    for n, s in spikes.items():
        assert s.sum() > 0
        assert (np.asarray(s) != eng.record[n]).mean() <= 0.01


def test_export_as_a_sequence_model_runs_the_same_frames() -> None:
    C, T = 16, 10
    torch.manual_seed(6)
    model = sweep_net("dspike", C, 8, 4, T).eval()
    with torch.no_grad():
        model.body[1].weight.mul_(3.0)
    recs, _ = make_sweeps(5, channels=C, seed=7)
    frames = sweep_frames(recs, C, T).numpy()
    ev = export_graph(model, "int8", input_shape=(1, C))
    seq = export_graph(model, "int8", input_shape=(1, C), input_kind="sequence")
    assert seq.input_kind == "sequence" and seq.input_scale == 1.0
    names = neuron_nodes(ev)
    a = snnsim.run(ev, frames, record=names)
    b = snnsim.run(seq, frames, record=names)
    c = snnsim.run(seq, frames, record=names, mode="reference")
    for n in names:
        np.testing.assert_array_equal(a.record[n], b.record[n])
        np.testing.assert_array_equal(b.record[n], c.record[n])
    with pytest.raises(snnsim.ModelError, match="input_kind 'static'"):
        export_graph(model, "int8", input_shape=(1, C), input_kind="static")
