"""The report's plots, drawn with matplotlib (Agg backend) and returned as PNG bytes.

Every function takes plain numbers (the report's data) so that a plot can be redrawn from the
report's JSON."""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

#: The report's figures: name (file ``NAME.png``) -> caption.
FIGURES = {
    "firing_rates": "Firing rate per layer",
    "spikes_per_step": "Spikes per time step",
    "raster": "Spike raster of one sample",
    "energy_layers": "Energy per layer",
    "energy_compare": "SNN vs equivalent ANN, same basis",
    "energy_vs_rate": "Break-even firing rate",
}

_DPI = 110
_COLORS = {
    "synaptic": "#4C72B0",
    "other": "#8172B2",
    "neuron": "#DD8452",
    "memory": "#55A868",
    "snn": "#4C72B0",
    "ann_same_width": "#DD8452",
    "ann_fp32": "#C44E52",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def firing_rates(layers: Sequence[str], rates: Sequence[float]) -> bytes:
    """Bar chart: firing rate (spikes per neuron per step, %) of each neuron layer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(layers) + 2), 3.2))
    vals = 100.0 * np.asarray(rates, dtype=float)
    bars = ax.bar(list(layers), vals, color=_COLORS["synaptic"])
    for b, v in zip(bars, vals, strict=True):
        ax.annotate(f"{v:.1f} %", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom")
    ax.set_ylabel("firing rate (% of neurons per step)")
    ax.set_xlabel("neuron layer")
    ax.set_title("Firing rate per layer")
    ax.set_ylim(0, max(1.0, float(vals.max(initial=0.0)) * 1.25))
    return _png(fig)


def spikes_per_step(layers: Sequence[str], per_step: Sequence[Sequence[float]]) -> bytes:
    """Lines: spikes per sample at each time step, one line per neuron layer."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for name, row in zip(layers, per_step, strict=True):
        steps = np.arange(1, len(row) + 1)
        ax.plot(steps, row, marker="o", label=name)
    ax.set_xlabel("time step")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("spikes per sample")
    ax.set_title("Spikes per time step")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _png(fig)


def raster(records: dict[str, np.ndarray], max_neurons: int = 1500) -> bytes:
    """Spike raster of one sample: one panel per neuron layer, x = time step, y = neuron (the
    first ``max_neurons`` neurons of a larger layer)."""
    plt = _pyplot()
    names = list(records)
    fig, axes = plt.subplots(
        1,
        len(names),
        figsize=(max(4.0, 2.6 * len(names)), 3.6),
        squeeze=False,
        layout="constrained",
    )
    for ax, name in zip(axes[0], names, strict=True):
        s = np.asarray(records[name]).reshape(records[name].shape[0], -1)  # [T, N]
        n = s.shape[1]
        shown = s[:, :max_neurons]
        steps = shown.shape[0]
        ax.imshow(
            shown.T,
            aspect="auto",
            interpolation="nearest",
            cmap="Greys",
            vmin=0,
            vmax=1,
            origin="lower",
            extent=(0.5, steps + 0.5, -0.5, shown.shape[1] - 0.5),
        )
        ax.set_xlabel("time step")
        more = f"\nfirst {shown.shape[1]} of {n} neurons" if n > shown.shape[1] else ""
        ax.set_title(f"{name}: {int(s.sum())} spikes{more}", fontsize="small")
    axes[0][0].set_ylabel("neuron")
    fig.suptitle("Spike raster of one sample")
    return _png(fig)


def energy_layers(
    layers: Sequence[str],
    synaptic: Sequence[float],
    other: Sequence[float],
    neuron: Sequence[float],
    memory: Sequence[float],
) -> bytes:
    """Stacked bars per layer (pJ per inference): synaptic ops (SOPs + MACs), other ops (pools,
    adds, scales), neuron updates, memory."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(layers) + 2), 3.4))
    bottom = np.zeros(len(layers))
    for label, vals, key in (
        ("synaptic ops", synaptic, "synaptic"),
        ("other ops", other, "other"),
        ("neuron updates", neuron, "neuron"),
        ("memory", memory, "memory"),
    ):
        v = np.asarray(vals, dtype=float)
        ax.bar(list(layers), v, bottom=bottom, label=label, color=_COLORS[key])
        bottom += v
    ax.set_ylabel("energy per inference (pJ)")
    ax.set_title("Energy per layer")
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def energy_compare(rows: dict[str, dict[str, float]]) -> bytes:
    """Grouped bars (log scale): compute only and compute + memory for the SNN and the ANNs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    labels = {"snn": "SNN", "ann_same_width": "ANN, same width", "ann_fp32": "ANN, float32"}
    keys = [k for k in labels if k in rows]
    x = np.arange(2)
    w = 0.8 / max(1, len(keys))
    for j, k in enumerate(keys):
        vals = [rows[k]["compute_pj"], rows[k]["total_pj"]]
        bits = int(rows[k].get("weight_bits", 0))
        ax.bar(
            x + (j - (len(keys) - 1) / 2) * w,
            vals,
            w,
            label=f"{labels[k]} ({bits}-bit)",
            color=_COLORS[k],
        )
    ax.set_xticks(x, ["compute only", "compute + memory"])
    ax.set_yscale("log")
    ax.set_ylabel("energy per inference (pJ)")
    ax.set_title("SNN vs equivalent ANN, same basis")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def energy_vs_rate(
    rate: float,
    snn_fixed: float,
    snn_spike: float,
    anns: dict[str, float],
    break_even: dict[str, float],
) -> bytes:
    """SNN energy (compute + memory) as the firing rate scales from this run's, against the
    ANNs' (horizontal lines); the break-even rates are marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    finite = [r for r in break_even.values() if np.isfinite(r)]
    top = max([rate * 2, 0.05, *(1.2 * r for r in finite)])
    r = np.linspace(0.0, min(1.0, top), 200)
    scale = r / rate if rate > 0 else np.zeros_like(r)
    ax.plot(100 * r, snn_fixed + scale * snn_spike, color=_COLORS["snn"], label="SNN")
    names = {"ann_same_width": "ANN, same width", "ann_fp32": "ANN, float32"}
    for k, e in anns.items():
        ax.axhline(e, color=_COLORS.get(k, "gray"), linestyle="--", label=names.get(k, k))
        be = break_even.get(k, float("nan"))
        if np.isfinite(be) and 0 < be <= r[-1]:
            ax.axvline(100 * be, color=_COLORS.get(k, "gray"), linestyle=":", linewidth=1)
    ax.axvline(100 * rate, color="black", linewidth=1, label=f"this run ({rate:.1%})")
    ax.set_xlabel("mean firing rate (% of neurons per step)")
    ax.set_ylabel("compute + memory (pJ)")
    ax.set_title("Break-even firing rate")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return _png(fig)
