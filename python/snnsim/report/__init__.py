"""Reports of a run: one self-contained HTML page (plots embedded), the plots as PNG files, the
numbers as JSON and Markdown, and rich tables for the terminal::

    rep = snnsim.report.build_report(model, images, labels)
    rep.print()                       # rich tables
    folder = rep.write("report/")     # report.html, report.md, report.json, *.png

What a report holds: the model (layers, shapes, parameters, precision, T, preprocessing, torch
modules), accuracy, the firing rate of every layer (DSR Fig. S1), spikes per time step, a spike
raster of one sample, exact counts per layer, energy per layer split into synaptic ops / other
ops / neuron updates / memory, the SNN against the equivalent ANNs on the same basis (compute
only, compute + memory; float32 and quantised to the SNN's weight width) with the break-even
firing rate, NeuroBench's keys, the cost table (once), and optionally a verification
(:func:`snnsim.verify.verify`) and extra facts (e.g. the demo's timings).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..api import Model, as_model, run
from ..energy import CostTable, EnergyReport, energy
from ..graph import NEURON_OPS
from ..result import COUNT_FIELDS, Counts, RunResult
from . import figures

__all__ = ["Report", "build_report", "concat_results", "model_summary"]


# ---------------------------------------------------------------------- helpers
def concat_results(parts: Sequence[RunResult]) -> RunResult:
    """Join results of consecutive batches of one dataset (same model, same steps) along the
    batch axis."""
    if not parts:
        raise ValueError("concat_results needs at least one result")
    first = parts[0]
    c0 = first.counts
    counts = Counts(
        **{f: np.concatenate([p.counts.get(f) for p in parts], axis=0) for f in COUNT_FIELDS},
        layer_names=c0.layer_names,
        layer_ops=c0.layer_ops,
        dense_macs=c0.dense_macs,
    )
    sums = [p.output_sum for p in parts if p.output_sum is not None]
    return RunResult(
        output=np.concatenate([p.output for p in parts]),
        prediction=np.concatenate([p.prediction for p in parts]),
        counts=counts,
        record={k: np.concatenate([p.record[k] for p in parts]) for k in first.record},
        steps=first.steps,
        output_sum=np.concatenate(sums) if len(sums) == len(parts) else None,
        trained_steps=first.trained_steps,
    )


def model_summary(model: Model) -> dict[str, Any]:
    """The model as JSON-able facts: input, precision, T, preprocessing, source and per layer the
    op, output shape, parameter count, weight width and torch modules."""
    g = model.graph
    shapes = model.node_shapes
    mods = model.modules
    layers: list[dict[str, Any]] = []
    for n in g.topological_order():
        layers.append(
            {
                "name": n.name,
                "op": n.op,
                "inputs": list(n.inputs),
                "shape": list(shapes[n.name]),
                "parameters": int(sum(int(a.size) for a in n.tensors.values())),
                "weight_bits": n.attrs.get("weight_bits", 32 if g.precision == "float32" else None)
                if "weight" in n.tensors
                else None,
                "modules": mods.get(n.name, []),
            }
        )
    return {
        "path": model.path,
        "precision": model.precision,
        "input": {
            "kind": model.input_kind,
            "shape": list(model.input_shape),
            "scale": model.input_scale,
        },
        "T": model.T,
        "preprocess": model.preprocess,
        "source": model.meta.get("source"),
        "output": model.output,
        "parameters": int(sum(layer["parameters"] for layer in layers)),
        "layers": layers,
    }


def _take(inputs: Any, sl: slice) -> Any:
    return inputs[sl] if not isinstance(inputs, list) else inputs[sl.start : sl.stop]


def _run_batches(
    model: Model,
    inputs: Any,
    steps: int | None,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[RunResult, float]:
    n = len(inputs)
    parts, secs = [], 0.0
    for i in range(0, n, batch_size):
        sl = slice(i, min(n, i + batch_size))
        t0 = time.perf_counter()
        parts.append(run(model, _take(inputs, sl), steps=steps))
        secs += time.perf_counter() - t0
        if progress is not None:
            progress(sl.stop)
    return concat_results(parts), secs


def _energy_data(e: EnergyReport, info_ops: Sequence[str]) -> dict[str, Any]:
    per_layer = {}
    for i, name in enumerate(e.layer_names):
        per_layer[name] = {
            "op": info_ops[i],
            "synaptic_pj": float(e.sop_pj[i] + e.mac_pj[i]),
            "other_pj": float(e.aux_pj[i]),
            "neuron_pj": float(e.neuron_pj[i]),
            "memory_pj": float(e.memory_pj[i]),
        }
    cmp = e.comparison()
    return {
        "summary": e.as_dict(),
        "per_layer": per_layer,
        "comparison": cmp,
        "break_even_rate": {
            k: {"compute": e.break_even_rate(k, memory=False), "total": e.break_even_rate(k)}
            for k in cmp
            if k != "snn"
        },
        "spike_compute_pj": e.spike_compute_pj,
        "spike_memory_pj": e.spike_memory_pj,
    }


def _cost_table(t: CostTable) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(t, f.name) for f in dataclasses.fields(t)}


def _json_safe(obj: Any) -> Any:
    """Replace non-finite floats by strings (JSON has no inf/NaN) and numpy scalars by Python's."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if np.isfinite(f) else ("inf" if f > 0 else "-inf" if f < 0 else "nan")
    return obj


# ---------------------------------------------------------------------- the report
@dataclass
class Report:
    """A built report: ``data`` (JSON-able numbers, see the module docstring) and ``figures``
    (name -> PNG bytes). :meth:`write` saves it, :meth:`print` shows rich tables."""

    data: dict[str, Any]
    figures: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> str:
        """The report's data as a JSON string (figures excluded)."""
        return json.dumps(_json_safe(self.data), indent=2)

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.html`` (self-contained), ``report.md``, ``report.json`` and one PNG
        per plot into ``out_dir`` (created); return the folder."""
        from .render import html_page, markdown

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, png in self.figures.items():
            (out / f"{name}.png").write_bytes(png)
        (out / "report.json").write_text(self.to_json() + "\n")
        (out / "report.md").write_text(markdown(self.data, list(self.figures)))
        embedded = {k: base64.b64encode(v).decode("ascii") for k, v in self.figures.items()}
        (out / "report.html").write_text(html_page(self.data, embedded))
        return out

    def print(self, console: Any = None) -> None:
        """Print the report's tables with rich."""
        from .render import print_tables

        print_tables(self.data, console)


def build_report(
    model: Model | Any,
    inputs: Any,
    labels: Any = None,
    *,
    steps: int | None = None,
    result: RunResult | None = None,
    table: CostTable | None = None,
    title: str | None = None,
    verification: Any = None,
    extra: dict[str, Any] | None = None,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    raster_sample: int = 0,
    plots: bool = True,
) -> Report:
    """Run ``model`` in the engine on ``inputs`` (one sample or a dataset: an image batch, frames,
    or a list of event recordings; in batches of ``batch_size``, ``progress(n)`` after each) and
    build a :class:`Report`. ``result``: an existing run of these inputs (not rerun).
    ``labels``: for the accuracy. ``verification``: a :class:`snnsim.verify.VerifyReport` (or its
    dict) to include. ``extra``: more JSON-able facts shown in a table. ``raster_sample``: the
    sample whose spikes are plotted."""
    m = as_model(model)
    seconds = None
    if result is None:
        single = not isinstance(inputs, list) and np.ndim(inputs) == len(m.input_shape)
        if single:
            inputs = np.asarray(inputs)[None]
        result, seconds = _run_batches(m, inputs, steps, batch_size, progress)
    t = table if table is not None else CostTable()
    e = energy(result, m, t)
    nodes = [n for n, op in zip(m.node_names, m.node_ops, strict=True) if op in NEURON_OPS]
    per = result.counts.per_layer()
    b = max(1, result.batch_size)
    spikes = result.counts.spikes  # [B, L, T]
    idx = {n: i for i, n in enumerate(result.layer_names)}
    per_step = {n: (spikes[:, idx[n], :].sum(axis=0) / b).tolist() for n in nodes}
    acc = None
    if labels is not None:
        acc = float(np.mean(result.prediction == np.asarray(labels)[: result.batch_size]))
    data: dict[str, Any] = {
        "title": title or f"snnsim report: {os.path.basename(m.path or 'model')}",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "snnsim_version": _version(),
        "model": model_summary(m),
        "run": {
            "samples": result.batch_size,
            "steps": result.steps,
            "trained_steps": result.trained_steps,
            "steps_differ": result.steps_differ,
            "accuracy": acc,
            "engine_seconds": seconds,
            "us_per_sample": None if seconds is None else 1e6 * seconds / b,
        },
        "firing_rates": result.firing_rates(),
        "spikes_per_step": per_step,
        "counts_per_sample": {
            name: {k: float(per[k][i]) / b for k in (*COUNT_FIELDS, "dense_macs")}
            for i, name in enumerate(result.layer_names)
        },
        "energy": _energy_data(e, result.counts.layer_ops),
        "neurobench": {
            "SynapticOperations": e.neurobench(),
            "ActivationSparsity": e.activation_sparsity,
        },
        "cost_table": _cost_table(t),
        "verify": verification.as_dict() if hasattr(verification, "as_dict") else verification,
        "extra": extra or {},
    }
    rep = Report(data)
    if plots:
        rep.figures = _figures(m, inputs, result, data, e, steps, raster_sample, nodes)
    return rep


def _figures(
    m: Model,
    inputs: Any,
    result: RunResult,
    data: dict[str, Any],
    e: EnergyReport,
    steps: int | None,
    raster_sample: int,
    nodes: list[str],
) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    rates = data["firing_rates"]
    if nodes:
        out["firing_rates"] = figures.firing_rates(nodes, [rates.get(n, 0.0) for n in nodes])
        out["spikes_per_step"] = figures.spikes_per_step(
            nodes, [data["spikes_per_step"][n] for n in nodes]
        )
        k = min(max(0, raster_sample), len(inputs) - 1)
        one = run(m, _take(inputs, slice(k, k + 1)), steps=steps or result.steps, record=nodes)
        out["raster"] = figures.raster({n: one.record[n][0] for n in nodes})
    pl = data["energy"]["per_layer"]
    layers = [n for n in pl if sum(v for kk, v in pl[n].items() if kk != "op") > 0]
    out["energy_layers"] = figures.energy_layers(
        layers,
        [pl[n]["synaptic_pj"] for n in layers],
        [pl[n]["other_pj"] for n in layers],
        [pl[n]["neuron_pj"] for n in layers],
        [pl[n]["memory_pj"] for n in layers],
    )
    cmp = data["energy"]["comparison"]
    out["energy_compare"] = figures.energy_compare(cmp)
    fixed = e.total_pj - e.spike_compute_pj - e.spike_memory_pj
    anns = {k: v["total_pj"] for k, v in cmp.items() if k != "snn"}
    be = {k: e.break_even_rate(k) for k in anns}
    out["energy_vs_rate"] = figures.energy_vs_rate(
        e.firing_rate, fixed, e.spike_compute_pj + e.spike_memory_pj, anns, be
    )
    return out


def _version() -> str:
    from .. import __version__

    return __version__
