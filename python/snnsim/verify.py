"""Checking an exported network against its executors and against the torch model it came from.

* :func:`torch_spikes` records a trained torch model's spikes per neuron layer in the engine's
  layout (node name -> uint8 ``[B, T, *node_shape]``), using the node <-> module map the export
  stores in the file (``Model.modules``).
* :func:`verify` runs the engine, the torch reference (integer models: they must agree spike for
  spike) and, when given, the trained torch model on the same inputs and returns a
  :class:`VerifyReport`: mismatching spikes per layer (engine vs reference), spike flips per layer
  and agreement of predictions (engine vs torch model), accuracies when labels are given.

Inputs are taken as the data loader gives them; the torch model receives them normalised as the
file records (``Model.preprocess``), the engine through :func:`snnsim.run`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .api import Model, as_model, run
from .graph import NEURON_OPS

__all__ = ["VerifyReport", "torch_input", "torch_spikes", "verify"]


def torch_input(model: Model, x: Any) -> Any:
    """``x`` (numpy or torch, as the data loader gives it) as the torch model takes it: a float32
    tensor normalised per channel as recorded in the file's preprocessing."""
    import torch

    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
    pre = model.preprocess
    if pre is None or pre.get("mean") is None:
        return t * float(pre["rescale"]) if pre and pre.get("rescale", 1.0) != 1.0 else t
    data = tuple(pre["input_shape"])
    t = t.reshape((-1, *data)) * float(pre.get("rescale", 1.0))
    shape = (1, -1) + (1,) * (len(data) - 1)
    mean = torch.tensor(pre["mean"], dtype=torch.float32).reshape(shape)
    std = torch.tensor(pre["std"], dtype=torch.float32).reshape(shape)
    return (t - mean) / std


def _neuron_modules(torch_model: Any) -> list[tuple[str, Any]]:
    from .nn.dspike import DspikeNeuron
    from .nn.layers import DSRNeuron

    return [
        (n, m) for n, m in torch_model.named_modules() if isinstance(m, (DSRNeuron, DspikeNeuron))
    ]


def _node_of_module(model: Model, torch_model: Any) -> dict[str, str]:
    """Torch neuron module name -> engine neuron node name: from the file's module map, else by
    order (the export emits the neuron layers in module order)."""
    nodes = [n for n, op in zip(model.node_names, model.node_ops, strict=True) if op in NEURON_OPS]
    mods = [n for n, _ in _neuron_modules(torch_model)]
    by_map = {w[0]: n for n, w in model.modules.items() if n in nodes and len(w) == 1}
    if by_map and set(by_map) == set(mods):
        return by_map
    if len(mods) != len(nodes):
        raise ValueError(
            f"torch model has {len(mods)} neuron layers, the model file {len(nodes)} neuron nodes"
        )
    return dict(zip(mods, nodes, strict=True))


def torch_spikes(
    torch_model: Any, x: Any, model: Model | Any
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the trained ``torch_model`` (a DSRNet or DspikeNet) on ``x`` (as the data loader gives
    it; normalised as ``model`` records) and return its logits (float ``[B, classes]``) and its
    spikes per neuron layer in the engine's layout: node name of ``model`` (the exported file) ->
    uint8 ``[B, T, *node_shape]``. The model is run on a CPU copy in eval mode."""
    import torch

    from .nn.dspike import DspikeNet

    model = as_model(model)
    if any(p.device.type != "cpu" for p in torch_model.parameters()):
        torch_model = copy.deepcopy(torch_model).cpu()
    torch_model.eval()
    xt = torch_input(model, x)
    names = _node_of_module(model, torch_model)
    layers = _neuron_modules(torch_model)
    T = int(torch_model.T)
    out: dict[str, np.ndarray] = {}
    if isinstance(torch_model, DspikeNet):
        for _, m in layers:
            m.record = True
        try:
            with torch.no_grad():
                logits = torch_model(xt)
        finally:
            for _, m in layers:
                m.record = False
        for n, m in layers:
            out[names[n]] = torch.stack(m.recorded["spikes"], 1).ne(0).to(torch.uint8).numpy()
        return logits.numpy(), out
    seen: dict[str, Any] = {}

    def hook(name: str) -> Callable[..., None]:
        return lambda mod, inp, res: seen.__setitem__(name, res)

    hooks = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        with torch.no_grad():
            logits = torch_model(xt)
    finally:
        for h in hooks:
            h.remove()
    B = xt.shape[0]
    for n, _ in layers:
        steps = seen[n].steps
        s = steps.reshape((T, B) + tuple(steps.shape[1:])).transpose(0, 1)
        out[names[n]] = s.ne(0).to(torch.uint8).contiguous().numpy()
    return logits.numpy(), out


@dataclass
class VerifyReport:
    """What :func:`verify` found. Per neuron layer (``layers`` order): ``engine_vs_reference``
    mismatching spikes (integer models: must be 0), ``engine_vs_torch`` spike flips and
    ``spikes`` (the engine's spike total). Predictions: ``agreement_reference`` and
    ``agreement_torch`` (fractions of samples), accuracies when labels were given."""

    samples: int
    steps: int
    precision: str
    layers: list[str]
    spikes: dict[str, int]
    engine_vs_reference: dict[str, int] | None = None
    engine_vs_torch: dict[str, int] | None = None
    agreement_reference: float | None = None
    agreement_torch: float | None = None
    accuracy_engine: float | None = None
    accuracy_torch: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def bit_exact(self) -> bool | None:
        """Engine == reference at every layer and step (None when the reference did not run)."""
        if self.engine_vs_reference is None:
            return None
        return sum(self.engine_vs_reference.values()) == 0 and self.agreement_reference == 1.0

    def as_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict."""
        d = dict(self.__dict__)
        d["bit_exact"] = self.bit_exact
        return d


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def verify(
    model: Model | Any,
    x: Any,
    labels: Any = None,
    *,
    torch_model: Any = None,
    steps: int | None = None,
    reference: bool = True,
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Compare the engine with the torch reference (``reference=True``) and with the trained
    ``torch_model`` (if given) on inputs ``x`` (as the data loader gives them), in batches of
    ``batch_size`` samples. ``progress(n)`` is called with the number of samples done after each
    batch. ``steps`` defaults to the file's ``T``; the torch model always runs its own ``T``, so
    torch spikes are compared only when the two agree."""
    import time

    model = as_model(model)
    events = isinstance(x, list)
    if events and torch_model is not None:
        raise ValueError(
            "verify: the comparison with the torch model takes images or frames, not event "
            "recordings (bin them into frames first)"
        )
    xs = x if events else np.asarray(x)
    n = len(xs)
    nodes = [
        nm for nm, op in zip(model.node_names, model.node_ops, strict=True) if op in NEURON_OPS
    ]
    zero = dict.fromkeys(nodes, 0)
    spikes, vs_ref, vs_torch = dict(zero), dict(zero), dict(zero)
    preds: dict[str, list[np.ndarray]] = {"engine": [], "reference": [], "torch": []}
    secs = {"engine": 0.0, "reference": 0.0, "torch": 0.0}
    used_steps = steps
    compare_torch = torch_model is not None
    for sl in _batches(n, batch_size):
        t0 = time.perf_counter()
        eng = run(model, xs[sl], steps=steps, record=nodes)
        secs["engine"] += time.perf_counter() - t0
        used_steps = eng.steps
        preds["engine"].append(eng.prediction)
        for nm in nodes:
            spikes[nm] += int(eng.record[nm].sum(dtype=np.int64))
        if reference:
            t0 = time.perf_counter()
            ref = run(model, xs[sl], steps=steps, record=nodes, mode="reference")
            secs["reference"] += time.perf_counter() - t0
            preds["reference"].append(ref.prediction)
            for nm in nodes:
                vs_ref[nm] += int(np.count_nonzero(eng.record[nm] != ref.record[nm]))
        if torch_model is not None:
            t0 = time.perf_counter()
            logits, tsp = torch_spikes(torch_model, xs[sl], model)
            secs["torch"] += time.perf_counter() - t0
            preds["torch"].append(logits.argmax(1))
            compare_torch = compare_torch and int(torch_model.T) == eng.steps
            if compare_torch:
                for nm in nodes:
                    vs_torch[nm] += int(np.count_nonzero(eng.record[nm] != tsp[nm]))
        if progress is not None:
            progress(sl.stop)
    pe = np.concatenate(preds["engine"])
    rep = VerifyReport(
        samples=n,
        steps=int(used_steps or 0),
        precision=model.precision,
        layers=nodes,
        spikes=spikes,
        seconds=secs,
    )
    if reference:
        rep.engine_vs_reference = vs_ref
        rep.agreement_reference = float(np.mean(pe == np.concatenate(preds["reference"])))
    if torch_model is not None:
        pt = np.concatenate(preds["torch"])
        rep.agreement_torch = float(np.mean(pe == pt))
        rep.engine_vs_torch = vs_torch if compare_torch else None
        if labels is not None:
            rep.accuracy_torch = float(np.mean(pt == np.asarray(labels)))
    if labels is not None:
        rep.accuracy_engine = float(np.mean(pe == np.asarray(labels)))
    return rep
