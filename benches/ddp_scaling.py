"""Distributed data-parallel scaling on this machine's CPU: training samples per second of the
real trainer (:class:`snnsim.train.trainer.Trainer`, DDP over gloo, synchronised batch norm)
with 1 and 2 processes, and the Dspike temperature search split over 1 and 2 processes.

    python benches/ddp_scaling.py                      # writes benches/results/ddp_scaling.json
    python benches/ddp_scaling.py --n-train 1024 --repeats 2

Every setting is a fresh ``torchrun --standalone --nproc-per-node P`` launch of this file in
worker mode; the worker builds the trainer of a registry configuration (``n_train`` samples of
MNIST-5k, the configuration's combined batch), trains one epoch to warm up and then times
``--repeats`` epochs (median reported). Settings: 1 process with 1 thread, 1 process with 2
threads, 2 processes with 1 thread each. The combined batch is the same in all settings, so
each optimiser step does the same work; what changes is how it is split. The load average is
recorded before and after each setting: on a shared machine the figures are only
comparable when it stays below the number of cores. ``samples_per_cpu_second`` (process CPU
time summed over the processes) shows what distribution costs in work (communication,
synchronised batch norm) independently of the other load; ``samples_per_second`` is the
wall-clock throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "ddp_scaling.json"
CONFIGS = ("dsr-mnist5k-cnn-if-t5", "dspike-mnist5k-cnn-fixed-t4")
SEARCH = "dspike-mnist5k-cnn-adaptive-t4"
SETTINGS = ((1, 1), (1, 2), (2, 1))  # (processes, threads per process)


def worker(a: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from snnsim.train.configs import get_config
    from snnsim.train.trainer import Trainer

    cfg = get_config(a.config).with_(num_threads=a.threads, n_train=a.n_train, epochs=1)
    tr = Trainer(cfg, None, progress=False)
    torch.set_num_threads(a.threads)
    row: dict[str, Any] = {
        "config": a.config,
        "processes": tr.ctx.world_size,
        "threads_per_process": torch.get_num_threads(),
        "batch_size": cfg.batch_size,
        "n_train": len(tr.train_batches.ds),  # type: ignore[arg-type]
    }
    if a.search:
        tr._search(0)  # warm-up
        secs = [tr._search(0)["sec_search"] for _ in range(a.repeats)]
        row.update(search_seconds=secs, search_seconds_median=statistics.median(secs))
        row["coordinates"] = tr.model.first_layer().weight.numel()  # type: ignore[operator]
    else:
        tr.train_epoch()  # warm-up (lazy initialisation, caches)
        secs, cpu = [], []
        for _ in range(a.repeats):
            if dist.is_initialized():
                dist.barrier()
            st = tr.train_epoch()
            secs.append(st.seconds)
            cpu.append(tr._reduce([st.cpu_seconds])[0])  # CPU seconds of all processes
        med = statistics.median(secs)
        row.update(
            epoch_seconds=secs,
            epoch_seconds_median=med,
            samples_per_second=row["n_train"] / med,
            cpu_seconds_all_processes=cpu,
            samples_per_cpu_second=row["n_train"] / statistics.median(cpu),
        )
    if tr.ctx.is_main:
        Path(a.result).write_text(json.dumps(row))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def launch(a: argparse.Namespace, config: str, procs: int, threads: int, search: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "row.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(procs),
            str(Path(__file__).resolve()),
            "--worker",
            "--config",
            config,
            "--threads",
            str(threads),
            "--n-train",
            str(a.n_train),
            "--repeats",
            str(a.repeats),
            "--result",
            str(result),
        ] + (["--search"] if search else [])
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        row = json.loads(result.read_text())
        row["wall_seconds_launch"] = round(time.perf_counter() - t0, 1)
        row["load_avg_before"] = [round(v, 2) for v in load_before]
        row["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
        return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", default=CONFIGS[0], help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--search", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n-train", type=int, default=1024, help="training samples per epoch")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs (searches) per setting")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a)

    import torch

    rows = []
    for config in CONFIGS:
        for procs, threads in SETTINGS:
            row = launch(a, config, procs, threads, search=False)
            print(json.dumps(row), flush=True)
            rows.append(row)
    for procs in (1, 2):
        row = launch(a, SEARCH, procs, 1, search=True)
        print(json.dumps(row), flush=True)
        rows.append(row)
    doc = {
        "description": "training samples/s of snnsim.train.Trainer with 1 vs 2 DDP processes "
        "(gloo, CPU, synchronised batch norm) on the same combined batch, and the Dspike "
        "temperature search split over 1 vs 2 processes",
        "command": "python benches/ddp_scaling.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
