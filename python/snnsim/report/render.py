"""Rendering a report's data: the same tables as rich (terminal), Markdown and HTML."""

from __future__ import annotations

import html
from typing import Any

from .figures import FIGURES

Table = dict[str, Any]  # title, columns, rows (lists of str), note (optional)


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    f = float(v)
    if f != f:
        return "–"
    if f in (float("inf"), float("-inf")):
        return "∞"
    if f != 0 and (abs(f) >= 1e6 or abs(f) < 1e-3):
        return f"{f:.{digits - 1}e}"
    return f"{f:,.{digits}g}" if abs(f) < 1e4 else f"{f:,.0f}"


def _pct(v: Any) -> str:
    if v is None:
        return "–"
    f = float(v)
    if f in (float("inf"),):
        return "any"
    return f"{100 * f:.2f} %"


def break_even_text(v: Any) -> str:
    """A break-even firing rate: "never" (0), "any rate" (>= 100 %), else a percentage."""
    if v is None:
        return "–"
    f = float(v)
    if f == 0.0:
        return "never"
    if f >= 1.0:
        return "any rate"
    return _pct(f)


def run_table(d: dict[str, Any]) -> Table:
    """The run: samples, time steps, accuracy, engine time per sample (µs), precision, input,
    parameters."""
    r, m = d["run"], d["model"]
    steps = str(r["steps"])
    if r.get("steps_differ"):
        steps += f" (trained with T = {r['trained_steps']})"
    rows = [
        ["samples", _num(r["samples"])],
        ["time steps", steps],
        ["accuracy", _pct(r["accuracy"])],
        [
            "engine time per sample",
            "–" if r["us_per_sample"] is None else f"{r['us_per_sample']:.0f} µs",
        ],
        ["precision", m["precision"]],
        ["input", f"{m['input']['kind']} {m['input']['shape']}"],
        ["parameters", _num(m["parameters"])],
    ]
    return {"title": "Run", "columns": ["", ""], "rows": rows}


def model_table(d: dict[str, Any]) -> Table:
    """The model's layers (op, shape, parameters, weight bits, torch modules) as a table."""
    rows = [
        [
            L["name"],
            L["op"],
            str(L["shape"]),
            _num(L["parameters"]),
            _num(L["weight_bits"]),
            ", ".join(L["modules"]) or "–",
        ]
        for L in d["model"]["layers"]
    ]
    m = d["model"]
    pre = m.get("preprocess")
    note = f"T = {m['T']}" if m.get("T") else "T not recorded"
    if pre:
        norm = (
            f"normalise mean {pre['mean']} std {pre['std']}"
            if pre.get("mean")
            else "no normalisation"
        )
        note += f"; input as the loader gives it: {pre['input_shape']}, {norm}"
        if pre.get("flatten"):
            note += ", flattened"
    return {
        "title": "Model",
        "columns": ["node", "op", "shape", "parameters", "weight bits", "torch modules"],
        "rows": rows,
        "note": note,
    }


def layer_table(d: dict[str, Any]) -> Table:
    """Per layer and sample: firing rate, spikes, SOPs, MACs, dense MACs, and energy (pJ:
    synaptic, other compute, neuron updates, memory)."""
    rows = []
    rates = d["firing_rates"]
    en = d["energy"]["per_layer"]
    for name, c in d["counts_per_sample"].items():
        e = en[name]
        rows.append(
            [
                name,
                e["op"],
                _pct(rates[name]) if name in rates else "",
                _num(c["spikes"]),
                _num(c["sops"]),
                _num(c["macs"]),
                _num(c["dense_macs"]),
                _num(e["synaptic_pj"]),
                _num(e["other_pj"]),
                _num(e["neuron_pj"]),
                _num(e["memory_pj"]),
            ]
        )
    return {
        "title": "Per layer (per sample)",
        "columns": [
            "layer",
            "op",
            "firing rate",
            "spikes",
            "SOPs",
            "MACs",
            "dense MACs",
            "synaptic pJ",
            "other pJ",
            "neuron pJ",
            "memory pJ",
        ],
        "rows": rows,
    }


def energy_table(d: dict[str, Any]) -> Table:
    """The SNN against the equivalent ANNs, compute only and with memory (pJ per
    inference), with the break-even firing rates."""
    cmp = d["energy"]["comparison"]
    be = d["energy"]["break_even_rate"]
    labels = {"snn": "SNN", "ann_same_width": "ANN, same weight width", "ann_fp32": "ANN, float32"}
    rows = []
    for k, label in labels.items():
        if k not in cmp:
            continue
        r = cmp[k]
        rows.append(
            [
                label,
                str(int(r["weight_bits"])),
                _num(r["compute_pj"]),
                _num(r["total_pj"]),
                "" if k == "snn" else f"{_num(r['ratio_compute'], 3)}x",
                "" if k == "snn" else f"{_num(r['ratio_total'], 3)}x",
                "" if k == "snn" else break_even_text(be[k]["compute"]),
                "" if k == "snn" else break_even_text(be[k]["total"]),
            ]
        )
    rate = d["energy"]["summary"]["firing_rate"]
    return {
        "title": "Energy per inference: SNN vs equivalent ANN, same basis (pJ)",
        "columns": [
            "network",
            "weight bits",
            "compute",
            "compute + memory",
            "ANN/SNN compute",
            "ANN/SNN compute + memory",
            "SNN wins below (compute)",
            "SNN wins below (compute + memory)",
        ],
        "rows": rows,
        "note": (
            f"firing rate of this run: {_pct(rate)} of neurons per step; break-even rates scale "
            "every layer's spikes by one factor (docs/energy.md)"
        ),
    }


def neurobench_table(d: dict[str, Any]) -> Table:
    """The synaptic operations per inference in NeuroBench's names."""
    nb = d["neurobench"]
    rows = [[f"SynapticOperations.{k}", _num(v)] for k, v in nb["SynapticOperations"].items()]
    rows.append(["ActivationSparsity", f"{nb['ActivationSparsity']:.4f}"])
    return {"title": "NeuroBench metrics (per sample)", "columns": ["key", "value"], "rows": rows}


def verify_table(d: dict[str, Any]) -> Table | None:
    """Per layer, the engine's spikes and its mismatches against the integer reference and the
    torch model (``None`` without a verification)."""
    v = d.get("verify")
    if not v:
        return None
    ref, tor = v.get("engine_vs_reference"), v.get("engine_vs_torch")
    rows = [
        [
            layer,
            _num(v["spikes"][layer]),
            "–" if ref is None else _num(ref[layer]),
            "–" if tor is None else _num(tor[layer]),
        ]
        for layer in v["layers"]
    ]
    notes = []
    if v.get("bit_exact") is not None:
        notes.append(
            "engine == integer reference: identical spikes in every layer and step"
            if v["bit_exact"]
            else "engine and reference DIFFER"
        )
    if v.get("agreement_torch") is not None:
        notes.append(
            f"predictions equal to the trained torch model's: {_pct(v['agreement_torch'])}"
        )
    return {
        "title": f"Verification on {v['samples']} samples, {v['steps']} steps",
        "columns": ["layer", "engine spikes", "engine vs reference", "engine vs torch model"],
        "rows": rows,
        "note": "; ".join(notes),
    }


def extra_table(d: dict[str, Any]) -> Table | None:
    """The report's extra ``(key, value)`` facts (``None`` without any)."""
    ex = d.get("extra") or {}
    if not ex:
        return None
    return {"title": "Details", "columns": ["", ""], "rows": [[k, _num(v)] for k, v in ex.items()]}


def cost_table(d: dict[str, Any]) -> Table:
    """The cost table used (pJ per operation and per 64-bit memory access)."""
    t = d["cost_table"]
    rows = [[k, f"{t[k]:g} pJ"] for k in t if k != "name"]
    rows[-1][1] += " per 64-bit access"
    return {
        "title": "Cost table",
        "columns": ["operation", "energy"],
        "rows": rows,
        "note": t["name"],
    }


def tables(d: dict[str, Any]) -> list[Table]:
    """Every table of a report, in the order shown."""
    out = [run_table(d), energy_table(d), layer_table(d), model_table(d), neurobench_table(d)]
    for t in (verify_table(d), extra_table(d)):
        if t is not None:
            out.insert(2, t)
    out.append(cost_table(d))
    return out


# ---------------------------------------------------------------------- terminal
def print_tables(d: dict[str, Any], console: Any = None) -> None:
    """Print the tables with rich."""
    from rich.console import Console
    from rich.table import Table as RichTable

    con = console or Console()
    con.print(f"[bold]{d['title']}[/bold]")
    for t in tables(d):
        rt = RichTable(title=t["title"], title_justify="left", show_header=any(t["columns"]))
        for j, c in enumerate(t["columns"]):
            rt.add_column(c, justify="left" if j == 0 else "right")
        for r in t["rows"]:
            rt.add_row(*r)
        if t.get("note"):
            rt.caption = t["note"]
            rt.caption_justify = "left"
        con.print(rt)


# ---------------------------------------------------------------------- markdown
def _md_table(t: Table) -> str:
    cols = t["columns"] if any(t["columns"]) else ["", ""]
    lines = [f"## {t['title']}", "", "| " + " | ".join(cols) + " |"]
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in t["rows"]]
    if t.get("note"):
        lines += ["", t["note"]]
    return "\n".join(lines) + "\n"


def markdown(d: dict[str, Any], figure_names: list[str]) -> str:
    """The report as Markdown (plots linked as the PNG files beside it)."""
    parts = [f"# {d['title']}", "", f"snnsim {d['snnsim_version']}, {d['created']}", ""]
    for t in tables(d):
        parts.append(_md_table(t))
    parts.append("## Plots\n")
    for name in figure_names:
        parts.append(f"![{FIGURES.get(name, name)}]({name}.png)\n")
    return "\n".join(parts)


# ---------------------------------------------------------------------- html
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } .note { color: #555; font-size: 0.85em; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; } img { max-width: 100%; }
#plot-check { color: #777; font-size: 0.8em; }
"""

# Reports whether every plot decoded (checked by the test suite in headless Chromium).
_CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) {
    return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0;
  });
  var el = document.getElementById("plot-check");
  el.setAttribute("data-ok", String(ok.length));
  el.setAttribute("data-total", String(imgs.length));
  el.textContent = ok.length + " of " + imgs.length + " plots rendered";
});
"""


def _html_table(t: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in t["columns"]) if any(t["columns"]) else ""
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t["rows"])
    note = f'<p class="note">{e(t["note"])}</p>' if t.get("note") else ""
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<h2>{e(t['title'])}</h2><table>{thead}<tbody>{body}</tbody></table>{note}"


def html_page(d: dict[str, Any], figures_b64: dict[str, str]) -> str:
    """One self-contained HTML page: tables and the plots embedded as data URIs."""
    e = html.escape
    figs = "".join(
        f'<figure><img alt="{e(FIGURES.get(k, k))}" src="data:image/png;base64,{v}">'
        f"<figcaption>{e(FIGURES.get(k, k))}</figcaption></figure>"
        for k, v in figures_b64.items()
    )
    ts = tables(d)
    body = _html_table(ts[0]) + "<h2>Plots</h2>" + figs + "".join(_html_table(t) for t in ts[1:])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(d['title'])}</title><style>{_CSS}</style></head><body>"
        f'<h1>{e(d["title"])}</h1><p class="note">snnsim {e(d["snnsim_version"])}, '
        f'{e(d["created"])}</p><p id="plot-check">plots not checked</p>{body}'
        f"<script>{_CHECK}</script></body></html>\n"
    )
