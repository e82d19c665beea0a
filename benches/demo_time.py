"""How long ``snnsim demo`` takes and what it reports: runs the demo from scratch (``--retrain``)
in a subprocess, records wall-clock and CPU seconds, the machine's load average before and after,
and the demo's numbers from its report JSON.

    python benches/demo_time.py [--epochs 6] [--runs 1] [--out benches/results/demo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        load0 = os.getloadavg()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "snnsim",
                "demo",
                "--out",
                str(out),
                "--epochs",
                str(epochs),
                "--retrain",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode not in (0, 1):
            raise SystemExit(f"demo failed ({r.returncode}): {r.stderr[-2000:]}")
        rep = json.loads((out / "report" / "report.json").read_text())
    v, ex, en = rep["verify"], rep["extra"], rep["energy"]["comparison"]
    return {
        "exit_code": r.returncode,
        "wall_seconds": wall,
        "cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "load_average_before": load0,
        "load_average_after": os.getloadavg(),
        "training_seconds": ex.get("training seconds"),
        "torch_accuracy": v["accuracy_torch"],
        "engine_accuracy": v["accuracy_engine"],
        "engine_equals_reference": v["bit_exact"],
        "agreement_with_torch": v["agreement_torch"],
        "engine_us_per_sample": ex.get("engine µs per sample (batch 500)"),
        "torch_us_per_sample": ex.get("torch model µs per sample (batch 500)"),
        "energy_pj": {
            k: {"compute": e["compute_pj"], "total": e["total_pj"]} for k, e in en.items()
        },
        "firing_rate": rep["energy"]["summary"]["firing_rate"],
        "demo_stdout_tail": r.stdout[-1500:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=None, help="demo epochs (default: the demo's)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", default="benches/results/demo.json")
    a = ap.parse_args()
    from snnsim.cli.demo import EPOCHS

    epochs = a.epochs or EPOCHS
    runs = [one_run(epochs) for _ in range(a.runs)]
    doc = {
        "command": " ".join(["python", *sys.argv]),
        "epochs": epochs,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "runs": runs,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    for r in runs:
        print(
            f"wall {r['wall_seconds']:.0f} s, cpu {r['cpu_seconds']:.0f} s, torch "
            f"{r['torch_accuracy']:.4f}, engine {r['engine_accuracy']:.4f}, exact "
            f"{r['engine_equals_reference']}, load {r['load_average_before']}"
        )


if __name__ == "__main__":
    main()
