"""Engine-only timing and profiling loops for the side-by-side workloads (no peers).

Builds workload A (MLP 784-800-800-10, T=20, static input) or B (2x34x34 events, 5 % ones per
frame, T=10, conv32-IF-pool-conv64-IF-pool-linear10-IF) with random weights scaled for 7-12 %
firing, then times ``snnsim.run`` (median of ``--repeats`` runs, each over ``--samples``
samples) or loops it for a profiler::

    python benches/profile_engine.py --workload B --batch 1 --precision int8
    perf record -g -- python benches/profile_engine.py --workload B --loop 20
    valgrind --tool=callgrind python benches/profile_engine.py --workload B --loop 2

It reports ms per sample, the exact SOPs per sample and G SOP/s, and per-layer firing rates.
The side-by-side comparison with other libraries is ``benches/inference.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import snnsim


def _dyadic(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Random weights that are multiples of 1/64 times ``scale`` (int8-exact when scale is a
    power of two)."""
    return (rng.integers(-127, 128, size=shape) / 64.0 * scale).astype(np.float32)


def workload_a(precision: str, seed: int = 0) -> tuple[snnsim.Graph, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    int_mode = precision == "int8"
    g = snnsim.Graph(input_shape=(784,), precision="int" if int_mode else "float32")
    w1 = rng.integers(-127, 128, size=(800, 784))
    w2 = rng.integers(-127, 128, size=(800, 800))
    w3 = rng.integers(-127, 128, size=(10, 800))
    if int_mode:
        g.linear("fc1", "input", w1)
        g.dsr_if("sn1", "fc1", theta=2000, fire=1000)
        g.linear("fc2", "sn1", w2)
        g.dsr_if("sn2", "fc2", theta=300, fire=150)
        g.linear("fc3", "sn2", w3)
        g.dsr_if("sn3", "fc3", theta=150, fire=75)
        x = rng.integers(0, 128, size=(256, 784)).astype(np.int32)
        x[x < 80] = 0
    else:
        g.linear("fc1", "input", (w1 / 64.0).astype(np.float32))
        g.dsr_if("sn1", "fc1", theta=2000 / 64.0, fire=1000 / 64.0)
        g.linear("fc2", "sn1", (w2 / 64.0).astype(np.float32))
        g.dsr_if("sn2", "fc2", theta=300 / 64.0, fire=150 / 64.0)
        g.linear("fc3", "sn2", (w3 / 64.0).astype(np.float32))
        g.dsr_if("sn3", "fc3", theta=150 / 64.0, fire=75 / 64.0)
        x = rng.integers(0, 128, size=(256, 784)).astype(np.float32)
        x[x < 80] = 0
    g.set_output("sn3")
    return g, x, 20


def workload_b(precision: str, seed: int = 0) -> tuple[snnsim.Graph, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    int_mode = precision == "int8"
    g = snnsim.Graph(
        input_shape=(2, 34, 34), precision="int" if int_mode else "float32", input_kind="events"
    )
    w1 = rng.integers(-127, 128, size=(32, 2, 3, 3))
    w2 = rng.integers(-127, 128, size=(64, 32, 3, 3))
    w3 = rng.integers(-127, 128, size=(10, 64 * 8 * 8))
    # thresholds for about 7-12 % firing (measured); the int network sums the pool windows
    # where the float one averages them, so its later thresholds are 4x the float ones
    t1, t2, t3 = 120, 2000, 3000
    if int_mode:
        g.conv2d("conv1", "input", w1, padding=1)
        g.dsr_if("sn1", "conv1", theta=t1, fire=t1)
        g.sumpool2d("pool1", "sn1", 2)
        g.conv2d("conv2", "pool1", w2, padding=1)
        g.dsr_if("sn2", "conv2", theta=t2, fire=t2)
        g.sumpool2d("pool2", "sn2", 2)
        g.flatten("flat", "pool2")
        g.linear("fc", "flat", w3)
        g.dsr_if("sn3", "fc", theta=t3, fire=t3)
    else:
        s = 1 / 64.0
        g.conv2d("conv1", "input", (w1 * s).astype(np.float32), padding=1)
        g.dsr_if("sn1", "conv1", theta=t1 * s, fire=t1 * s)
        g.avgpool2d("pool1", "sn1", 2)
        g.conv2d("conv2", "pool1", (w2 * s).astype(np.float32), padding=1)
        g.dsr_if("sn2", "conv2", theta=t2 * s / 4, fire=t2 * s / 4)
        g.avgpool2d("pool2", "sn2", 2)
        g.flatten("flat", "pool2")
        g.linear("fc", "flat", (w3 * s).astype(np.float32))
        g.dsr_if("sn3", "fc", theta=t3 * s / 4, fire=t3 * s / 4)
    g.set_output("sn3")
    steps = 10
    frames = (rng.random(size=(64, steps, 2, 34, 34)) < 0.05).astype(
        np.int32 if int_mode else np.float32
    )
    return g, frames, steps


WORKLOADS = {"A": workload_a, "B": workload_b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), default="B")
    ap.add_argument("--precision", choices=["float32", "int8"], default="int8")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--samples", type=int, default=32, help="samples per timed run")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--loop", type=int, default=0, help="only loop this many passes (profiling)")
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="report process CPU time instead of wall time (steadier on a busy machine; "
        "meaningful for --threads 1 only)",
    )
    args = ap.parse_args()

    g, x, steps = WORKLOADS[args.workload](args.precision)
    model = snnsim.Model.from_graph(g)
    n = x.shape[0]
    kw = {"steps": steps} if g.input_kind == "static" else {}

    def one_pass() -> None:
        for s in range(0, args.samples, args.batch):
            b = x[s % n : s % n + args.batch]
            snnsim.run(model, b, threads=args.threads, **kw)

    if args.loop:
        for _ in range(args.loop):
            one_pass()
        return
    res = snnsim.run(model, x[: min(n, 32)], threads=args.threads, record=[], **kw)
    spikes = res.counts.spikes.sum(axis=(0, 2)) / res.counts.spikes.shape[0]
    sops = float(res.counts.sops.sum()) / res.counts.sops.shape[0]
    shapes = model.node_shapes
    for name, sp in zip(model.node_names, spikes, strict=True):
        sh = shapes[name]
        if sp:
            print(f"  {name:8s} firing {sp / (np.prod(sh) * steps):6.2%}")
    one_pass()  # warm-up
    clock = time.process_time if args.cpu else time.perf_counter
    times = []
    for _ in range(args.repeats):
        t0 = clock()
        one_pass()
        times.append((clock() - t0) / args.samples)
    med = statistics.median(times)
    print(
        f"workload {args.workload} {args.precision} batch {args.batch} threads {args.threads}"
        f"{' (CPU time)' if args.cpu else ''}: "
        f"{med * 1e3:.3f} ms/sample (min {min(times) * 1e3:.3f}), {sops / 1e6:.2f} M SOP/sample, "
        f"{sops / med / 1e9:.2f} G SOP/s"
    )


if __name__ == "__main__":
    main()
