"""Shared helpers of the export tests: brief training of small models, the torch model's spikes
and margins per neuron layer, and the two checks every export must pass (integer: engine ==
reference bit for bit; float32: the torch model's spikes up to near-threshold flips)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import snnsim
from snnsim.exporter import neuron_nodes
from snnsim.nn.dspike import DspikeNet, DspikeNeuron
from snnsim.nn.layers import DSRNeuron
from snnsim.testing import FLOAT_TOLERANCE as FLOAT_TOL


def sgd_steps(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> torch.nn.Module:
    """``steps`` Adam steps on random batches of ``(x, y)`` (weights, batch norm affine parameters
    and thresholds move away from their initial values), then the batch norm running statistics
    re-estimated on ``x`` (:func:`calibrate_bn`); returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(y), generator=g)[:batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    calibrate_bn(model, x, batch)
    return model.eval()


def calibrate_bn(model: torch.nn.Module, x: torch.Tensor, batch: int = 64, passes: int = 4) -> None:
    """Running statistics of every batch norm (torch's and tdBN) = the mean of the batch
    statistics of ``passes`` training-mode forward passes over ``x`` (a few optimiser steps
    leave them close to their initial 0/1 otherwise)."""
    bns = [m for m in model.modules() if hasattr(m, "running_mean") and hasattr(m, "momentum")]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
    model.train()
    try:
        with torch.no_grad():
            for k in range(passes):
                for m in bns:
                    m.momentum = 1.0 / (k + 1)
                lo = (k * batch) % max(1, len(x) - batch + 1)
                model(x[lo : lo + batch])
    finally:
        for m, mo in zip(bns, saved, strict=True):
            m.momentum = mo
    model.eval()


def train_dspike_mnist(x: torch.Tensor, y: torch.Tensor, T: int = 4, seed: int = 0) -> DspikeNet:
    """The small Dspike MNIST CNN after one pass of Adam over 512 training samples."""
    torch.manual_seed(seed)
    model = snnsim.models.create_model("dspike-mnist-cnn", T=T)
    idx = np.random.RandomState(seed).permutation(len(y))[:512]
    xs, ys = x[idx], y[idx]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for i in range(0, 512, 64):
        loss = F.cross_entropy(model(xs[i : i + 64]), ys[i : i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


# ---------------------------------------------------------------------- torch side
def torch_record(
    model: torch.nn.Module, x: torch.Tensor
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[float]]:
    """Eval-mode logits and, per neuron layer in module order, the spikes and the margins
    ``U - fire`` ``[B, T, ...]`` of the torch model, and each layer's fire level. DSR layers are
    re-simulated from their recorded input currents with the training arithmetic (and checked
    against the spikes the model produced); Dspike layers record their own. A model trained on
    a GPU is compared through a CPU copy (the export's float32 arithmetic is the CPU's)."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()
    model.eval()
    if isinstance(model, DspikeNet):
        layers = [m for m in model.modules() if isinstance(m, DspikeNeuron)]
        for m in layers:
            m.record = True
        try:
            with torch.no_grad():
                out = model(x)
        finally:
            for m in layers:
                m.record = False
        spikes = [torch.stack(m.recorded["spikes"], 1).numpy() for m in layers]
        margins = [torch.stack(m.recorded["margins"], 1).numpy() for m in layers]
        return out.numpy(), spikes, margins, [m.vth for m in layers]
    neurons = [m for m in model.modules() if isinstance(m, DSRNeuron)]
    seen: dict[int, tuple[Any, Any]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(id(mod), (inp[0], out)))
        for m in neurons
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    T, B = model.T, x.shape[0]
    spikes, margins = [], []
    for m in neurons:
        seq, out = seen[id(m)]
        p = m.params()
        cur = seq.steps
        v = torch.zeros((B,) + tuple(cur.shape[1:]))
        ss, mm = [], []
        for t in range(T):
            xt = cur if seq.static else cur[t * B : (t + 1) * B]
            u = v + xt if m.cfg.kind == "if" else p.leak * v + p.gain * xt
            s = (u >= p.fire).float()
            ss.append(s)
            mm.append(u - p.fire)
            v = u - p.theta * s
        s_all = torch.stack(ss, 1)
        got = (out.steps.reshape((T, B) + tuple(cur.shape[1:])).transpose(0, 1) != 0).float()
        assert torch.equal(s_all, got), "re-simulation disagrees with the model"
        spikes.append(s_all.numpy())
        margins.append(torch.stack(mm, 1).numpy())
    return logits.numpy(), spikes, margins, [float(m.params().fire) for m in neurons]


# ---------------------------------------------------------------------- checks
def compare_float(model: torch.nn.Module, graph: Any, x: torch.Tensor) -> dict[str, int]:
    """Run the float32 export on ``x`` and compare with the torch model: per sample, step and
    layer the spikes are identical except where the torch membrane lies within
    ``FLOAT_TOL*max(1, |fire|)`` of the fire level (asserted; a sample is not compared after its
    first such flip). Returns counts: samples, diverged samples, spike flips, prediction flips."""
    logits, spikes, margins, fires = torch_record(model, x)
    names = neuron_nodes(graph)
    assert len(names) == len(spikes), (names, len(spikes))
    steps = model.T if model.static_input else None
    res = snnsim.run(graph, x.numpy(), steps=steps, record=names)
    stats = {
        "samples": x.shape[0],
        "diverged": 0,
        "flips": 0,
        "pred_flips": int((res.prediction != logits.argmax(1)).sum()),
    }
    T = model.T
    for b in range(x.shape[0]):
        div = False
        for t in range(T):
            for k, n in enumerate(names):
                assert spikes[k][b, t].shape == res.record[n][b, t].shape, n
                diff = spikes[k][b, t] != res.record[n][b, t]
                if diff.any():
                    dist = np.abs(margins[k][b, t][diff]).max()
                    assert dist <= FLOAT_TOL * max(1.0, abs(fires[k])), (
                        f"sample {b} step {t} {n}: {dist:.3g}"
                    )
                    stats["flips"] += int(diff.sum())
                    div = True
                    break
            if div:
                break
        stats["diverged"] += div
    return stats


def int_exact(graph: Any, x: np.ndarray, steps: int | None) -> tuple[int, np.ndarray]:
    """Engine and torch reference on an integer export: spikes identical at every layer and step,
    outputs and predictions identical (asserted). Returns the spike total and the predictions."""
    names = neuron_nodes(graph)
    eng = snnsim.run(graph, x, steps=steps, mode="engine", record=names)
    ref = snnsim.run(graph, x, steps=steps, mode="reference", record=names)
    mism = {n: int(np.count_nonzero(eng.record[n] != ref.record[n])) for n in names}
    assert sum(mism.values()) == 0, f"spike mismatches per layer: {mism}"
    np.testing.assert_array_equal(eng.output, ref.output)
    np.testing.assert_array_equal(eng.prediction, ref.prediction)
    total = sum(int(eng.record[n].sum()) for n in names)
    assert total > 0
    return total, eng.prediction
