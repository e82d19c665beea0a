"""Side-by-side timing: MLP 784-800-800-10 DSR-IF network, T=20, batch 1, static MNIST input.

Executors measured in the same run, on the same network and the same samples:
  * ``engine``       snnsim's Rust engine through ``_core.Model.run_static`` (float32 and int8);
  * ``engine_api``   the same through ``snnsim.run`` (includes the Python API's overhead);
  * ``torch_loop``   a plain torch loop: the first layer once, then per step IF update, dense
                     matmul, IF update ... (float32, torch's default threads; and
                     ``torch_loop_1thread``); speedups are against the faster of the two;
  * ``reference``    snnsim's torch reference executor (counts everything; for information).

Each executor runs every sample one at a time; a run's time is the mean per sample, repeated
``--repeats`` times; the JSON keeps every run and the median. Weights are random, scaled so that
the hidden layers fire at a realistic rate (about 10-15%, reported).

    python benches/bench_mlp.py [--samples 200] [--repeats 5]

writes benches/results/engine_mlp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import snnsim
from snnsim import _core
from snnsim.data import load_mnist5k_split
from snnsim.model_file import save

T = 20
SIZES = (784, 800, 800, 10)
ALPHA = 0.5


def build_float(rng: np.random.Generator) -> tuple[snnsim.Graph, list[np.ndarray]]:
    g = snnsim.Graph(input_shape=(SIZES[0],), precision="float32")
    ws = []
    x = "input"
    for i, (fin, fout) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        w = (rng.standard_normal((fout, fin)) * (1.0 / np.sqrt(fin))).astype(np.float32)
        ws.append(w)
        x = g.linear(f"fc{i}", x, w)
        x = g.dsr_if(f"sn{i}", x, theta=1.0, fire=ALPHA)
    g.set_output(x)
    return g, ws


def build_int8(ws: list[np.ndarray], input_scale: float) -> snnsim.Graph:
    """Per-layer symmetric int8 quantisation of the float network (theta in accumulator scale)."""
    g = snnsim.Graph(input_shape=(SIZES[0],), precision="int", input_scale=input_scale)
    x = "input"
    in_scale = input_scale
    for i, w in enumerate(ws):
        s = float(np.abs(w).max()) / 127
        q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
        acc_scale = s * in_scale
        theta = max(1, int(round(1.0 / acc_scale)))
        x = g.linear(f"fc{i}", x, q)
        x = g.dsr_if(f"sn{i}", x, theta=theta, fire=max(1, int(round(ALPHA * theta))))
        in_scale = 1.0  # spikes are unit events
    g.set_output(x)
    return g


def torch_loop(ws: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """A plain torch SNN forward: DSR-IF neurons, reset by subtraction, static input."""
    cur0 = x @ ws[0].T
    vs = [torch.zeros(w.shape[0]) for w in ws]
    count = torch.zeros(ws[-1].shape[0])
    for _ in range(T):
        spikes = torch.empty(0)  # the previous layer's spikes at this step
        for i, w in enumerate(ws):
            cur = cur0 if i == 0 else spikes @ w.T
            u = vs[i] + cur
            spikes = (u >= ALPHA).to(u.dtype)
            vs[i] = u - spikes
        count += spikes
    return count


def time_runs(fn, samples: np.ndarray, repeats: int) -> list[float]:
    runs = []
    fn(samples[0])  # warm up
    for _ in range(repeats):
        t0 = time.perf_counter()
        for x in samples:
            fn(x)
        runs.append((time.perf_counter() - t0) / len(samples))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine_mlp.json"))
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    images, _ = load_mnist5k_split("test")
    samples = images[: args.samples].reshape(args.samples, -1).astype(np.float32)
    gf, ws = build_float(rng)
    gi = build_int8(ws, input_scale=1.0 / 127)
    tmp = Path(args.out).parent / "_bench_models"
    tmp.mkdir(parents=True, exist_ok=True)
    save(gf, tmp / "mlp_f32.snn.safetensors")
    save(gi, tmp / "mlp_int8.snn.safetensors")
    api_model = snnsim.load(tmp / "mlp_f32.snn.safetensors")
    mf = _core.Model.load(str(tmp / "mlp_f32.snn.safetensors"))
    mi = _core.Model.load(str(tmp / "mlp_int8.snn.safetensors"))
    qi = np.clip(np.round(samples / gi.input_scale), -128, 127).astype(np.int32)
    tws = [torch.from_numpy(w) for w in ws]
    tx = torch.from_numpy(samples)

    # agreement and activity, reported beside the timings
    full = snnsim.run(gf, samples, steps=T)
    rates = (full.counts.spikes.sum(axis=(0, 2)) / (len(samples) * T)).tolist()
    sizes = {n: int(np.prod(s)) for n, s in zip(mf.node_names, mf.node_shapes, strict=True)}
    firing = {n: rates[i] / sizes[n] for i, n in enumerate(mf.node_names) if n.startswith("sn")}
    loop_counts = np.stack([torch_loop(tws, tx[i]).numpy() for i in range(len(samples))])
    agree = float(np.mean(loop_counts.argmax(1) == full.prediction))

    results: dict[str, list[float]] = {}
    with torch.inference_mode():
        results["torch_loop"] = time_runs(
            lambda x: torch_loop(tws, torch.from_numpy(x)), samples, args.repeats
        )
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # batch-1 mat-vecs are often faster on one thread
        results["torch_loop_1thread"] = time_runs(
            lambda x: torch_loop(tws, torch.from_numpy(x)), samples, args.repeats
        )
        torch.set_num_threads(threads)
        results["engine_float32"] = time_runs(
            lambda x: mf.run_static(x[None], T, []), samples, args.repeats
        )
        results["engine_int8"] = time_runs(
            lambda x: mi.run_static(x[None], T, []), qi, args.repeats
        )
        results["engine_api_float32"] = time_runs(
            lambda x: snnsim.run(api_model, x, steps=T), samples, args.repeats
        )
        results["reference_float32"] = time_runs(
            lambda x: snnsim.run(gf, x, steps=T, mode="reference"),
            samples[:50],
            max(1, args.repeats // 2),
        )
    med = {k: statistics.median(v) for k, v in results.items()}
    baseline = min(med["torch_loop"], med["torch_loop_1thread"])
    out = {
        "benchmark": "mlp_784_800_800_10_dsr_if_t20_batch1_static",
        "command": "python benches/bench_mlp.py "
        + f"--samples {args.samples} --repeats {args.repeats}",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "samples": args.samples,
        "median_us_per_sample": {k: v * 1e6 for k, v in med.items()},
        "runs_us_per_sample": {k: [x * 1e6 for x in v] for k, v in results.items()},
        "speedup_vs_fastest_torch_loop": {k: baseline / v for k, v in med.items()},
        "hidden_firing_rate": firing,
        "sops_per_sample": float(full.counts.sops.sum() / len(samples)),
        "prediction_agreement_engine_vs_torch_loop": agree,
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for k, v in med.items():
        print(f"{k:22s} {v * 1e6:9.1f} us/sample   x{baseline / v:6.2f} vs the fastest torch loop")
    print(f"firing rates {firing}  agreement {agree:.3f}")


if __name__ == "__main__":
    main()
