"""Training cost of DSR's rate form against backpropagation through time (BPTT) with a
surrogate gradient, by latency T.

Workloads: the MNIST CNN (``dsr-mnist-cnn``, 1x28x28) and a CIFAR-shape PreAct-ResNet-18
(``dsr-preresnet18``, 3x32x32), IF neurons, batch 16, T = 1, 5, 10, 20, 40. Methods:

* ``dsr``: snnsim's DSR training as it ships (the rate form: the spiking forward over all
  steps without autograd, the backward on time means, the exact batch-norm term on);
* ``bptt``: the same network and forward, every neuron layer replaced by an IF layer whose
  spike has a rectangular surrogate derivative (width theta) and whose membrane recurrence is
  differentiated through all T steps by autograd (what surrogate-gradient libraries do).

Each (workload, method, T) runs in a fresh process: ``step_ms`` is the median wall time of
``--steps`` SGD steps (forward, backward, update) after two warm-up steps; ``peak_rss_mib`` the
growth of the process's peak resident set over the same steps (activations, gradients,
allocator caches), ``saved_mib`` what autograd keeps for the backward. A configuration that
does not fit in ``--mem-limit-gib`` is recorded as such. The load average before and after
each run is recorded: rows measured on a busy machine are marked ``preliminary``.

``--epoch``: seconds per training epoch of the DSR IF T = 5 MNIST-5k recipe
(``dsr-mnist5k-cnn-if-t5``: 63 batches of 64), median of ``--repeats`` one-epoch runs::

    python benches/training_cost.py                       # all workloads, all T
    python benches/training_cost.py --models mnist --T 5 20
    python benches/training_cost.py --epoch --repeats 3

Results merge into ``benches/results/training.json`` (rows keyed by model, method, T, batch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

OUT = ROOT / "benches" / "results" / "training.json"
MODELS = {
    "mnist": ("dsr-mnist-cnn", (1, 28, 28)),
    "resnet18": ("dsr-preresnet18", (3, 32, 32)),
}
TARGET_T = 20
TARGETS = {"time_ratio": 0.5, "memory_ratio": 0.25, "epoch_sec": 3.9}
BUSY_LOAD = 0.5  # a load average above this (besides the run itself) marks a row preliminary


def bptt_network(name: str, T: int) -> Any:
    """The workload with its DSR neurons replaced by :class:`BPTTNeuron` (per-step autograd)."""
    import torch
    from torch import nn

    from snnsim.models import create_model
    from snnsim.neurons import DsrIFParams, dsr_if_step
    from snnsim.nn.layers import DSRNeuron, Seq
    from snnsim.nn.surrogates import RectSurrogate

    class BPTTNeuron(nn.Module):
        """IF with a rectangular surrogate spike (width theta), unrolled over the steps with
        autograd through the membrane (``snnsim.neurons.dsr_if_step`` with a ``spike_fn``)."""

        def __init__(self, theta: float, alpha: float) -> None:
            super().__init__()
            self.theta, self.alpha = theta, alpha
            self.spike = RectSurrogate(a=theta)

        def forward(self, x: Seq) -> Seq:
            B = x.batch
            p = DsrIFParams(theta=self.theta, fire=self.alpha * self.theta)
            v = torch.zeros_like(x.steps[:B])
            outs = []
            for t in range(x.T):
                xt = x.steps if x.static else x.steps[t * B : (t + 1) * B]
                s, v = dsr_if_step(xt, v, p, spike_fn=self.spike)
                outs.append(s * self.theta)
            return Seq(torch.cat(outs), x.T, False)

    net = create_model(name, neuron="if", T=T, mode="step")
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, DSRNeuron):
                setattr(parent, child_name, BPTTNeuron(child.cfg.theta0, child.cfg.alpha))
    return net


_CHILD = r"""
import json, resource, sys, time, statistics
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(sys.argv[6]))
spec = __import__("importlib.util").util.spec_from_file_location("tc", sys.argv[2])
tc = __import__("importlib.util").util.module_from_spec(spec); spec.loader.exec_module(tc)
key, method, T = sys.argv[3], sys.argv[4], int(sys.argv[5])
batch, steps = int(sys.argv[7]), int(sys.argv[8])
name, shape = tc.MODELS[key]
torch.manual_seed(0)
if method == "dsr":
    from snnsim.models import create_model
    net = create_model(name, neuron="if", T=T)
else:
    net = tc.bptt_network(name, T)
net.train()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
x, y = torch.rand((batch,) + tuple(shape)), torch.randint(0, 10, (batch,))
saved = [0]
def pack(t):
    saved[0] += t.numel() * t.element_size()
    return t
def step(count):
    saved[0] = 0
    if count:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(x)
    else:
        out = net(x)
    loss = torch.nn.functional.cross_entropy(out, y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step(True)
saved_mib = saved[0] / 2**20
step(False)
times = []
for _ in range(steps):
    t0 = time.perf_counter(); step(False); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"step_ms": 1000 * statistics.median(times),
                  "step_ms_runs": [1000 * t for t in times],
                  "peak_rss_mib": (peak - base) / 1024, "saved_mib": saved_mib}))
"""


def run_config(
    key: str, method: str, T: int, batch: int, steps: int, threads: int, mem_gib: float
) -> dict[str, Any]:
    """One (workload, method, T) in a fresh process under an address-space limit."""

    def limit() -> None:
        b = int(mem_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (b, b))

    load0 = os.getloadavg()[0]
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(ROOT / "python"),
            str(Path(__file__).resolve()),
            key,
            method,
            str(T),
            str(threads),
            str(batch),
            str(steps),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    row: dict[str, Any] = {
        "model": MODELS[key][0],
        "workload": key,
        "method": method,
        "T": T,
        "batch": batch,
        "threads": threads,
        "load_avg_before": load0,
        "load_avg_after": os.getloadavg()[0],
        "wall_s": round(time.time() - t0, 1),
    }
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        oom = "memory" in tail[0].lower() or "alloc" in tail[0].lower() or proc.returncode < 0
        row.update(failed=f"does not fit in {mem_gib} GiB" if oom else "error", error=tail[0][:300])
    else:
        row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    row["preliminary"] = max(row["load_avg_before"], row["load_avg_after"]) > BUSY_LOAD + threads
    return row


def epoch_seconds(repeats: int, threads: int) -> dict[str, Any]:
    """Seconds of one training epoch of ``dsr-mnist5k-cnn-if-t5`` (no evaluation), median."""
    import torch

    from snnsim.train.configs import get_config
    from snnsim.train.trainer import Trainer

    torch.set_num_threads(threads)
    cfg = get_config("dsr-mnist5k-cnn-if-t5").with_(epochs=1, num_threads=threads, device="cpu")
    secs, cpu, loads = [], [], []
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        st = Trainer(cfg, progress=False).train_epoch()
        secs.append(st.seconds)
        cpu.append(st.cpu_seconds)
    return {
        "config": cfg.name,
        "sec_per_epoch": statistics.median(secs),
        "runs": secs,
        "cpu_sec_runs": cpu,
        "threads": threads,
        "load_avg": loads,
        "target_sec": TARGETS["epoch_sec"],
        "preliminary": max(loads) > BUSY_LOAD + threads,
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """DSR / BPTT ratios of step time and peak memory per workload and T."""
    by = {(r["workload"], r["method"], r["T"], r["batch"]): r for r in rows}
    out = []
    for (w, m, T, b), r in sorted(by.items()):
        if m != "dsr" or (w, "bptt", T, b) not in by:
            continue
        o = by[(w, "bptt", T, b)]
        s: dict[str, Any] = {"workload": w, "T": T, "batch": b}
        if "step_ms" in r and "step_ms" in o:
            s["time_ratio"] = r["step_ms"] / o["step_ms"]
            s["memory_ratio"] = r["peak_rss_mib"] / max(o["peak_rss_mib"], 1e-9)
            s["saved_ratio"] = r["saved_mib"] / max(o["saved_mib"], 1e-9)
        else:
            s["bptt"] = o.get("failed", "missing")
        if T == TARGET_T and "time_ratio" in s:
            s["meets_time"] = s["time_ratio"] <= TARGETS["time_ratio"]
            s["meets_memory"] = s["memory_ratio"] <= TARGETS["memory_ratio"]
        s["preliminary"] = bool(r.get("preliminary") or o.get("preliminary"))
        out.append(s)
    return out


def main(argv: list[str] | None = None) -> int:
    from snnsim.train.checkpoint import write_json_atomic

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=["dsr", "bptt"], choices=["dsr", "bptt"])
    ap.add_argument("--T", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mem-limit-gib", type=float, default=12.0)
    ap.add_argument("--epoch", action="store_true", help="only the MNIST-5k epoch time")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    doc: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc["description"] = (__doc__ or "").split("\n\n")[0].replace("\n", " ")
    doc["machine"] = f"{platform.machine()} {os.cpu_count()} cpus, {platform.platform()}"
    doc["targets"] = {**TARGETS, "at_T": TARGET_T}
    command = " ".join(["python", "benches/training_cost.py"] + sys.argv[1:])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    if a.epoch:
        doc["epoch"] = {**epoch_seconds(a.repeats, a.threads), "command": command}
        print(json.dumps(doc["epoch"]), flush=True)
        write_json_atomic(OUT, doc)
        return 0
    rows = doc.get("rows", [])
    key = ("workload", "method", "T", "batch")
    for w in a.models:
        for T in a.T:
            for m in a.methods:
                r = run_config(w, m, T, a.batch, a.steps, a.threads, a.mem_limit_gib)
                r["command"] = command
                rows = [x for x in rows if tuple(x.get(k) for k in key) != tuple(r[k] for k in key)]
                rows.append(r)
                rows.sort(key=lambda x: (x["workload"], x["T"], x["method"]))
                doc["rows"] = rows
                doc["summary"] = summarise(rows)
                write_json_atomic(OUT, doc)
                print(json.dumps({k: v for k, v in r.items() if k != "step_ms_runs"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
