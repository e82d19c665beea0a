"""A small recurrent SNN on the generated 1-d event task (``snnsim.data.make_sweeps``): accuracy
of the trained torch model and of its int8 / float32 exports in the engine, the engine's spikes
against the reference, and the engine's speed against the torch loop.

The task: 4 classes of frequency sweeps on a 32-channel 1-d sensor (tonic's SHD layout, input
``[1, 32]``), 1200 training and 400 test recordings, ``T = 20`` time bins. Rising and falling
sweeps visit the same channels: only the order of the events tells them apart (a network
needs state across steps: a recurrent layer or slowly leaking membranes). Networks
(``snnsim.train.sweeps``): 32 -> 48 recurrent -> 4, Dspike (surrogate gradient through time)
and DSR IF (the DSR rate gradient, recurrent input one-step truncated), and a feed-forward
Dspike baseline without the recurrent weights; Adam 1e-2, cosine schedule, 12 epochs, one torch
thread.

Speed, on the 400 test recordings (median of ``--repeats`` runs): the engine on the recordings
(binning included) with 1 thread and with all threads, and on pre-binned frames with 1 thread;
the torch loop (the trained model's forward on the frames, ``torch.no_grad``, one thread). The
machine is shared: timings are indicative, and the JSON records the CPU count. ::

    python benches/recurrent_sweeps.py             # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import snnsim  # noqa: E402
from snnsim.data import make_sweeps  # noqa: E402
from snnsim.events import bin_events  # noqa: E402
from snnsim.exporter import export_graph, neuron_nodes  # noqa: E402
from snnsim.train.sweeps import sweep_frames, train_sweeps  # noqa: E402

OUT = ROOT / "benches" / "results" / "recurrent_sweeps.json"
C, T, HIDDEN = 32, 20, 48


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    recs, y = make_sweeps(1200, channels=C, seed=args.seed)
    rt, yt = make_sweeps(400, channels=C, seed=args.seed + 1)
    x, xt = sweep_frames(recs, C, T), sweep_frames(rt, C, T)
    ty, tyt = torch.from_numpy(y), torch.from_numpy(yt)
    rows = []
    for kind in ("dspike", "dsr", "dspike-feedforward"):
        run = train_sweeps(
            x, ty, xt, tyt, kind=kind, hidden=HIDDEN, epochs=args.epochs, seed=args.seed
        )
        row: dict[str, Any] = {
            "network": kind,
            "train_seconds": round(run.seconds, 2),
            "torch_acc": run.test_acc,
        }
        for mode in ("float32", "int8"):
            g = export_graph(run.model, mode, input_shape=(1, C))
            names = neuron_nodes(g)
            eng = snnsim.run(g, rt, steps=T, record=names)
            row[f"engine_acc_{mode}"] = float((eng.prediction == yt).mean())
            if mode == "int8":
                ref = snnsim.run(g, rt, steps=T, record=names, mode="reference")
                row["int8_spikes_equal_reference"] = all(
                    np.array_equal(eng.record[n], ref.record[n]) for n in names
                )
                row["int8_spikes"] = int(sum(eng.record[n].sum() for n in names))
                model = snnsim.Model.from_graph(g)
                frames = np.stack([bin_events(r, (1, C), T) for r in rt])
                row["engine_s_recordings_1_thread"] = _median_seconds(
                    lambda m=model: snnsim.run(m, rt, steps=T, threads=1), args.repeats
                )
                row["engine_s_recordings_all_threads"] = _median_seconds(
                    lambda m=model: snnsim.run(m, rt, steps=T), args.repeats
                )
                row["engine_s_frames_1_thread"] = _median_seconds(
                    lambda m=model, f=frames: snnsim.run(m, f, threads=1), args.repeats
                )
        net = run.model.eval()

        def torch_loop(net: torch.nn.Module = net) -> None:
            with torch.no_grad():
                net(xt)

        row["torch_loop_s_1_thread"] = _median_seconds(torch_loop, args.repeats)
        row["speedup_engine_1_thread_vs_torch"] = round(
            row["torch_loop_s_1_thread"] / row["engine_s_frames_1_thread"], 2
        )
        rows.append(row)
        print(json.dumps(row))
    doc = {
        "command": "python benches/recurrent_sweeps.py",
        "task": {
            "generator": "snnsim.data.make_sweeps",
            "channels": C,
            "T": T,
            "train": len(recs),
            "test": len(rt),
            "classes": 4,
        },
        "hidden": HIDDEN,
        "epochs": args.epochs,
        "seed": args.seed,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "note": "shared machine; other work may have been running",
        },
        "rows": rows,
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
