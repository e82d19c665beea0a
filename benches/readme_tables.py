"""Markdown tables for the README's results sections, generated from the committed JSONs
(nothing is measured here)::

    python benches/readme_tables.py                 # every section, printed
    python benches/readme_tables.py dsr quantization
    python benches/readme_tables.py --write         # into README.md between the markers

``--write`` replaces the text between ``<!-- NAME-table:begin -->`` and
``<!-- NAME-table:end -->`` in README.md for each section that has both markers.

Sections: ``dsr`` (benches/results/dsr_vs_spikingjelly.json), ``quantization``
(quantization.json, the fully trained rows), ``dspike`` (dspike_temperature_task.json),
``cost`` (training.json).
"""

from __future__ import annotations

import json
import statistics as st
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any]:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else {}


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "–"
    sd = st.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * st.fmean(xs):.2f} ± {100 * sd:.2f}"


VARIANT_NAMES = {
    "snnsim": "snnsim (defaults: rate form + exact BN term)",
    "snnsim-rate": "snnsim, rate form without the exact BN term (old default)",
    "snnsim-exact-bn": "snnsim, rate form + exact BN term (before channels-last)",
    "snnsim-step": "snnsim, per-step backward",
    "port": "SpikingJelly DSR port",
    "port-weighted-readout": "SpikingJelly DSR port, lambda-weighted readout",
}


def dsr() -> str:
    doc = _load("dsr_vs_spikingjelly.json")
    rows = doc.get("rows", [])
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        groups.setdefault((r["neuron"], r["T"]), {}).setdefault(r["variant"], []).append(r)
    out = [
        "| neuron | T | variant | seeds | test acc % per seed | mean ± sd | train acc % (mean) "
        "| vs port, same seeds (mean diff, 95 % CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (neuron, T), by in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        port = {r["seed"]: r for r in by.get("port", [])}
        for variant in VARIANT_NAMES:
            rs = sorted(by.get(variant, []), key=lambda r: r["seed"])
            if not rs:
                continue
            accs = [r["acc"] for r in rs]
            diff = "–"
            common = [r for r in rs if r["seed"] in port]
            if variant != "port" and common:
                d = [r["acc"] - port[r["seed"]]["acc"] for r in common]
                ci = ""
                if len(d) > 1:
                    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57}.get(len(d) - 1, 2.0)
                    ci = f" ± {100 * t * st.stdev(d) / len(d) ** 0.5:.2f}"
                diff = f"{100 * st.fmean(d):+.2f}{ci} (n={len(d)})"
            out.append(
                f"| {neuron.upper()} | {T} | {VARIANT_NAMES[variant]} "
                f"| {', '.join(str(r['seed']) for r in rs)} "
                f"| {' / '.join(_pct(a, 1) for a in accs)} | {_mean_sd(accs)} "
                f"| {100 * st.fmean(r['train_acc'] for r in rs):.2f} | {diff} |"
            )
    speed = doc.get("speed", {}).get("rows", [])
    if speed:
        out += [
            "",
            "| neuron | T | snnsim s/epoch | port s/epoch | ratio | load average |",
            "|---|---|---|---|---|---|",
        ]
        for s in speed:
            loads = s.get("load_avg", [])
            out.append(
                f"| {s['neuron'].upper()} | {s['T']} | {s['snnsim_sec']:.2f} | {s['port_sec']:.2f} "
                f"| {s['ratio']:.2f} | {min(loads):.1f}-{max(loads):.1f} |"
            )
    return "\n".join(out)


QUANT_MODES = [
    ("float32", False),
    ("float32-8bit-input", False),
    ("int16", False),
    ("int8", False),
    ("int8", True),
    ("int4", False),
    ("int4", True),
]
#: The floor rows' mode in the rows measured before the unsigned input existed.
OLD_MODE = {"float32-int8-input": "float32-8bit-input"}
#: Table of each static input grid of the integer modes: rows' ``input`` (absent: int8).
QUANT_INPUTS = {
    "uint8": "unsigned 8-bit input (step 1/255, the export's default for MNIST)",
    "int8": "signed int8 input (step 1/127, every export before the unsigned input)",
}


def _quant_table(rows: list[dict[str, Any]]) -> list[str]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["neuron"], r["T"]), []).append(r)
    head = " | ".join(f"{m}{' per-ch' if pc else ''}" for m, pc in QUANT_MODES[1:])
    out = [
        f"| neuron | T | seeds | float32 torch | float32 engine | {head} | worst agreement |",
        "|---|---|---|---|---|" + "---|" * (len(QUANT_MODES) - 1) + "---|",
    ]
    for (neuron, T), rs in sorted(groups.items()):
        seeds = sorted({r["seed"] for r in rs})
        torch_acc = st.fmean({r["seed"]: r["torch_acc"] for r in rs}.values())
        cells = []
        for mode, pc in QUANT_MODES:
            same = [
                r
                for r in rs
                if OLD_MODE.get(r["mode"], r["mode"]) == mode and r["per_channel"] == pc
            ]
            ptq = [r for r in same if not r["qat"]]
            if not ptq:
                cells.append("–")
                continue
            loss = st.fmean(r["loss_vs_float"] for r in ptq)
            cell = f"{100 * st.fmean(r['acc'] for r in ptq):.2f} ({-100 * loss:+.2f})"
            for epochs in sorted({r.get("qat_epochs", 1) for r in same if r["qat"]}):
                qat = [r for r in same if r["qat"] and r.get("qat_epochs", 1) == epochs]
                # after QAT where a seed missed the target, post-training elsewhere
                tuned = {r["seed"]: r for r in qat}
                final = [tuned.get(r["seed"], r) for r in ptq]
                qacc = st.fmean(r["acc"] for r in final)
                qloss = st.fmean(r["loss_vs_float"] for r in final)
                cell += (
                    f"; with QAT x{epochs} ({len(tuned)} of {len(ptq)}) {100 * qacc:.2f} "
                    f"({-100 * qloss:+.2f})"
                )
            cells.append(cell)
        agree = min(r["agree"] for r in rs if not r["qat"])
        out.append(
            f"| {neuron.upper()} | {T} | {', '.join(map(str, seeds))} | {100 * torch_acc:.2f} "
            f"| {' | '.join(cells)} | {100 * agree:.1f} % |"
        )
    return out


def quantization() -> str:
    rows = [r for r in _load("quantization.json").get("rows", []) if r.get("source") == "trained"]
    out: list[str] = []
    for name, title in QUANT_INPUTS.items():
        rs = [r for r in rows if r.get("input", "int8") == name]
        if rs:
            out += ([""] if out else []) + [f"With the {title}:", ""] + _quant_table(rs)
    return "\n".join(out)


def dspike() -> str:
    doc = _load("dspike_temperature_task.json")
    summ = doc.get("summary", {})
    out = [
        "| method | b0 | epochs | seeds | test acc % (mean ± sd) | 95 % CI | final b per seed "
        "| vs fixed b0, paired |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in summ.get("groups", []):
        vs = g.get("vs_fixed_same_b0")
        vs_txt = "–"
        if vs:
            ci = "" if vs["ci95"] is None else f" ± {100 * vs['ci95']:.2f}"
            vs_txt = f"{100 * vs['mean_diff']:+.2f}{ci}"
        final_b = ", ".join(f"{b:.1f}" for b in g.get("final_b", [])) or "–"
        ci = "–" if g["ci95"] is None else f"± {100 * g['ci95']:.2f}"
        sd = 0.0 if g["sd"] is None else g["sd"]
        out.append(
            f"| {g['method']} | {g['b0']} | {g.get('epochs', '–')} | {len(g['seeds'])} "
            f"| {100 * g['mean_acc']:.2f} ± "
            f"{100 * sd:.2f} | {ci} | {final_b} | {vs_txt} |"
        )
    return "\n".join(out)


def cost() -> str:
    doc = _load("training.json")
    rows = doc.get("rows", [])
    by = {(r["workload"], r["T"], r["method"]): r for r in rows}
    out = [
        "| workload | T | DSR ms/step | BPTT ms/step | time ratio | DSR peak MiB | BPTT peak MiB "
        "| memory ratio | preliminary |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w, T in sorted({(r["workload"], r["T"]) for r in rows}):
        d, b = by.get((w, T, "dsr"), {}), by.get((w, T, "bptt"), {})

        def f(r: dict[str, Any], k: str) -> str:
            if k in r:
                return f"{r[k]:.0f}"
            return r.get("failed", "–")

        tr = f"{d['step_ms'] / b['step_ms']:.2f}" if "step_ms" in d and "step_ms" in b else "–"
        mr = (
            f"{d['peak_rss_mib'] / b['peak_rss_mib']:.2f}"
            if "peak_rss_mib" in d and "peak_rss_mib" in b
            else "–"
        )
        pre = "yes" if d.get("preliminary") or b.get("preliminary") else "no"
        out.append(
            f"| {w} | {T} | {f(d, 'step_ms')} | {f(b, 'step_ms')} | {tr} | {f(d, 'peak_rss_mib')} "
            f"| {f(b, 'peak_rss_mib')} | {mr} | {pre} |"
        )
    ep = doc.get("epoch")
    if ep:
        out += [
            "",
            f"DSR IF T=5 MNIST-5k epoch: {ep['sec_per_epoch']:.2f} s (median of {len(ep['runs'])}; "
            f"load average {min(ep['load_avg']):.1f}-{max(ep['load_avg']):.1f}; target "
            f"{ep['target_sec']} s{'; preliminary' if ep.get('preliminary') else ''})",
        ]
    return "\n".join(out)


SECTIONS = {"dsr": dsr, "quantization": quantization, "dspike": dspike, "cost": cost}


README = Path(__file__).resolve().parents[1] / "README.md"


def markers(name: str) -> tuple[str, str]:
    """The README markers around the table of section ``name``."""
    return f"<!-- {name}-table:begin -->", f"<!-- {name}-table:end -->"


def write(names: list[str], path: Path = README) -> list[str]:
    """Replace each section's table between its markers in ``path``; returns the sections
    written (a section without both markers is left out)."""
    text = path.read_text()
    done = []
    for n in names:
        begin, end = markers(n)
        if begin not in text or end not in text:
            continue
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + begin + "\n" + SECTIONS[n]() + "\n" + end + tail
        done.append(n)
    path.write_text(text)
    return done


def main(argv: list[str]) -> int:
    do_write = "--write" in argv
    names = [a for a in argv if a != "--write"] or list(SECTIONS)
    for n in names:
        if n not in SECTIONS:
            raise SystemExit(f"unknown section {n!r}; known: {sorted(SECTIONS)}")
    if do_write:
        print("written:", ", ".join(write(names)) or "none (no markers)")
        return 0
    for n in names:
        print(f"<!-- {n} -->")
        print(SECTIONS[n]())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
