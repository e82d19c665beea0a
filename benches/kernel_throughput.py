"""Scatter-kernel throughput (G SOP/s on one core) from the criterion bench ``benches/kernels.rs``.

Runs ``cargo bench --bench kernels`` (criterion: median over its samples after warm-up), reads
criterion's estimates and throughput for each layer and precision, and writes
``benches/results/kernels.json`` with the targets of the engine-speed work (int8: linear
30 G SOP/s, conv 20 G SOP/s per core). The load average and the other busy processes before and
after are recorded (as in ``benches/inference.py``); a run that did not have the machine to
itself is marked preliminary::

    python benches/kernel_throughput.py
    python benches/kernel_throughput.py --no-run     # only collect the last criterion results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
OUT = ROOT / "benches" / "results" / "kernels.json"
CRITERION = ROOT / "target" / "criterion"
LAYERS = (
    "linear_1024x1024_in10pct",
    "linear_4096x4096_in10pct",
    "conv_64x64x3x3_32x32_in5pct",
    "conv_32x64x3x3_17x17_in10pct",
)
PRECISIONS = ("float32", "int8")
TARGETS_GSOPS = {
    "linear_1024x1024_in10pct": 30.0,
    "linear_4096x4096_in10pct": 30.0,
    "conv_64x64x3x3_32x32_in5pct": 20.0,
    "conv_32x64x3x3_17x17_in10pct": 20.0,
}


def read_row(layer: str, precision: str) -> dict[str, Any]:
    """One (layer, precision) row from criterion's files of the last run."""
    d = CRITERION / layer / precision / "new"
    est = json.loads((d / "estimates.json").read_text())
    meta = json.loads((d / "benchmark.json").read_text())
    sops = meta["throughput"]["Elements"]
    median_ns = est["median"]["point_estimate"]
    lo = est["median"]["confidence_interval"]["lower_bound"]
    hi = est["median"]["confidence_interval"]["upper_bound"]
    row: dict[str, Any] = {
        "layer": layer,
        "precision": precision,
        "sops_per_run": sops,
        "median_ms_per_run": median_ns / 1e6,
        "gsops_per_core": sops / median_ns,
        "gsops_ci95": [sops / hi, sops / lo],
    }
    if precision == "int8":
        row["target_gsops"] = TARGETS_GSOPS[layer]
        row["meets_target"] = row["gsops_per_core"] >= TARGETS_GSOPS[layer]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--no-run", action="store_true", help="collect the last results only")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--note", default="", help="conditions of the run, kept in the JSON")
    a = ap.parse_args(argv)
    from inference import load_snapshot, machine_idle

    load_start = load_snapshot()
    if not a.no_run:
        subprocess.run(
            ["cargo", "bench", "--bench", "kernels", "--", "--noplot"], cwd=ROOT, check=True
        )
    load_end = load_snapshot()
    rows = [read_row(layer, p) for layer in LAYERS for p in PRECISIONS]
    doc = {
        "benchmark": "scatter-kernel throughput, one core, through Model::run_frames",
        "command": "python benches/kernel_throughput.py" + (" --no-run" if a.no_run else ""),
        "note": a.note,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()}",
        "load": {"start": load_start, "end": load_end},
        "preliminary": not machine_idle(load_start, load_end),
        "setup": "one weighted layer fed binary spike frames (sequence input), outputs "
        "integrated each step; T=10, batch 1, 1 thread; SOPs = the engine's own count; time = "
        "criterion's median per run (integration of the outputs included)",
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    for r in rows:
        tgt = f" (target {r['target_gsops']:.0f})" if "target_gsops" in r else ""
        print(f"{r['layer']:32s} {r['precision']:8s} {r['gsops_per_core']:6.2f} G SOP/s{tgt}")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
