"""DSR on MNIST-5k (CPU): accuracy and seconds per epoch of the CNN
conv(1,32,3)-BN-N-AP2-conv(32,64,3)-BN-N-AP2-FC(3136,10)-BN1d-N with DSR-IF and DSR-LIF at
T = 20, 10, 5, against the same CNN trained as an ANN (ReLU in place of the neurons, same
recipe); and the Table 3 ablation at T = 5 (threshold training on/off, alpha on/off).

Recipe (configs ``dsr-mnist5k-cnn-<neuron>-t<T>``, ``ann-mnist5k-cnn-lr005`` / ``-lr01``): SGD
momentum 0.9, weight decay 5e-4, batch 64, cosine schedule, random crop with padding 2,
lr 0.05 at T = 5 and 0.1 at T >= 10 (the ANN is trained with the lr of the row it is compared
with), 15 epochs, the fixed 4000/1000 split.

Rows MERGE into the JSON files (a row is replaced when model, neuron, T, seed, epochs and lr
match), so partial runs accumulate::

    python benches/train_dsr_mnist.py --T 5 --seeds 0 --neurons if --epochs 15 --ann
    python benches/train_dsr_mnist.py --T 5 --seeds 0 --ablation --no-main

``sec_per_epoch`` is the mean wall time of the training part of an epoch (evaluation on the
1000 test images is reported separately as ``sec_per_evaluation``); the machine's load average
at the start of each run is recorded, since other work shares the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
# Other work shares the cores: OpenMP threads that spin at barriers lose badly to preemption.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from snnsim.train.checkpoint import write_json_atomic  # noqa: E402
from snnsim.train.configs import get_config  # noqa: E402
from snnsim.train.trainer import Trainer  # noqa: E402

RESULTS = ROOT / "benches" / "results"
MAIN_JSON = RESULTS / "dsr_mnist.json"
ABL_JSON = RESULTS / "dsr_ablation.json"
TARGETS = {
    5: {"acc": 0.982, "sec": 3.9, "gap": 0.01},
    20: {"acc": 0.988, "sec": 21.8, "gap": 0.003},
}
ABLATIONS = {
    "full": {"train_theta": True, "alpha": None},
    "no-theta-training": {"train_theta": False, "alpha": None},
    "no-alpha": {"train_theta": True, "alpha": 1.0},
    "neither": {"train_theta": False, "alpha": 1.0},
}


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {}


def merge(
    rows: list[dict[str, Any]], new: dict[str, Any], keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    k = tuple(new.get(x) for x in keys)
    out = [r for r in rows if tuple(r.get(x) for x in keys) != k]
    out.append(new)
    return sorted(out, key=lambda r: tuple(str(r.get(x)) for x in keys))


def build(cfg, exact_bn_grad: bool | None = None) -> Any:
    """The config's model as the Trainer builds it, with ``exact_bn_grad`` set when given (the
    config can only switch it on; off needs the model)."""
    from snnsim.models import create_model

    if exact_bn_grad is None:
        return None
    torch.manual_seed(cfg.seed)
    kw = dict(cfg.model_kwargs)
    kw.setdefault("neuron", cfg.neuron)
    kw.setdefault("T", cfg.T)
    kw.setdefault("mode", cfg.mode)
    model = create_model(cfg.model, **kw)
    model.exact_bn_grad = exact_bn_grad
    return model


def run_one(cfg, log_prefix: str, exact_bn_grad: bool | None = None) -> dict[str, Any]:
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    tr = Trainer(cfg, out_dir=None, progress=False, model=build(cfg, exact_bn_grad))
    t0 = time.time()
    hist = tr.fit(log=lambda s: print(log_prefix, s, flush=True))
    last = hist[-1]
    secs = [h["sec_train"] for h in hist]
    return {
        "acc": last["test_acc"],
        "best_acc": max(h["test_acc"] for h in hist if h["test_acc"] is not None),
        "train_acc": last["train_acc"],
        "sec_per_epoch": sum(secs) / len(secs),
        "sec_per_epoch_min": min(secs),
        "cpu_sec_per_epoch": sum(h["cpu_sec_train"] for h in hist) / len(hist),
        "sec_per_evaluation": sum(h["sec_eval"] for h in hist if h["test_acc"] is not None)
        / max(1, sum(1 for h in hist if h["test_acc"] is not None)),
        "firing_rates": last["firing_rates"],
        "thresholds": last["thresholds"],
        "wall_s": time.time() - t0,
        "load_avg_at_start": load_avg,
        "acc_per_epoch": [h["test_acc"] for h in hist],
    }


def common(cfg) -> dict[str, Any]:
    return {
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": " ".join(["python", "benches/train_dsr_mnist.py"] + sys.argv[1:]),
    }


def summarise(doc: dict[str, Any]) -> None:
    ann = {(r["lr"], r["seed"], r["epochs"]): r["ann_acc"] for r in doc.get("ann_rows", [])}
    groups: dict[tuple[str, int, str, bool], list[dict[str, Any]]] = {}
    for r in doc.get("rows", []):
        r["ann_acc"] = ann.get((r["lr"], r["seed"], r["epochs"]))
        r.setdefault("mode", "rate")
        r.setdefault("exact_bn_grad", False)
        groups.setdefault((r["neuron"], r["T"], r["mode"], r["exact_bn_grad"]), []).append(r)
    summary = []
    for (neuron, T, mode, exact), rows in sorted(groups.items()):
        accs = [r["snn_acc"] for r in rows]
        anns = [r["ann_acc"] for r in rows if r["ann_acc"] is not None]
        s = {
            "neuron": neuron,
            "T": T,
            "mode": mode,
            "exact_bn_grad": exact,
            "seeds": sorted(r["seed"] for r in rows),
            "mean_snn_acc": sum(accs) / len(accs),
            "mean_ann_acc": sum(anns) / len(anns) if anns else None,
            "mean_sec_per_epoch": sum(r["sec_per_epoch"] for r in rows) / len(rows),
        }
        if s["mean_ann_acc"] is not None:
            s["gap_to_ann"] = s["mean_ann_acc"] - s["mean_snn_acc"]
        tgt = TARGETS.get(T)
        if tgt:
            s["target"] = tgt
            s["meets_acc"] = s["mean_snn_acc"] >= tgt["acc"]
            s["meets_sec"] = s["mean_sec_per_epoch"] <= tgt["sec"]
            if "gap_to_ann" in s:
                s["meets_gap"] = s["gap_to_ann"] <= tgt["gap"] + 1e-9
        summary.append(s)
    doc["summary"] = summary


_MEM_CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, sys.argv[4])
torch.set_num_threads(1)
from snnsim.models import create_model
mode, T, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = int(sys.argv[5]) if sys.argv[5] != "none" else None
torch.manual_seed(0)
net = create_model("dsr-mnist-cnn", neuron="if", T=T, mode=mode)
net.time_chunk = chunk
net.train()
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
saved = 0
def pack(t):
    global saved
    saved += t.numel() * t.element_size()
    return t
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(2):
    saved = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    loss = torch.nn.functional.cross_entropy(out, y)
    opt.zero_grad(); loss.backward(); opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"mode": mode, "time_chunk": chunk, "T": T, "batch": batch,
                  "autograd_saved_MB": saved / 2**20,
                  "peak_rss_increase_MB": (peak - base) / 1024}))
"""


def speed_table(
    Ts: list[int], neurons: list[str], repeats: int, threads: int
) -> list[dict[str, Any]]:
    rows = []
    for T in Ts:
        for neuron in neurons:
            for variant, kw, exact in (
                ("rate", {}, None),  # the default: the exact batch-norm term on
                ("rate-between-only", {}, False),
                ("step", {"mode": "step"}, None),
            ):
                cfg = get_config(f"dsr-mnist5k-cnn-{neuron}-t{T}").with_(
                    epochs=1, num_threads=threads, **kw
                )
                load_avg = os.getloadavg()[0]
                secs = []
                for _ in range(repeats):
                    tr = Trainer(cfg, out_dir=None, progress=False, model=build(cfg, exact))
                    secs.append(tr.train_epoch().seconds)
                secs.sort()
                row = {
                    "neuron": neuron,
                    "T": T,
                    "variant": variant,
                    "sec_per_epoch": secs[len(secs) // 2],
                    "runs": secs,
                    "load_avg_at_start": load_avg,
                    "threads": threads,
                    "target_sec": TARGETS.get(T, {}).get("sec"),
                }
                print("[speed]", row, flush=True)
                rows.append(row)
    return rows


def memory_table(Ts: list[int], batch: int = 64) -> list[dict[str, Any]]:
    """One training step of the MNIST CNN per (mode, time chunk, T) in a fresh process: bytes
    autograd keeps for backward, and the increase of the peak resident set over the process
    after model and data creation (forward transients included). The rate form runs once with
    all steps at once and once time-chunked (5 steps per chunk, :mod:`snnsim.nn.chunked`)."""
    import subprocess

    rows = []
    for mode, chunk in (("rate", "5"), ("rate", "none"), ("step", "none")):
        for T in Ts:
            outp = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _MEM_CHILD,
                    mode,
                    str(T),
                    str(batch),
                    str(ROOT / "python"),
                    chunk,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(outp.stdout.strip().splitlines()[-1])
            print("[memory]", row, flush=True)
            rows.append(row)
    return rows


KEYS = ("model", "neuron", "T", "seed", "epochs", "lr", "mode", "exact_bn_grad")


def run_ann(a: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The ANN twins (ReLU in place of the neurons) with the lr of each requested T."""
    lrs = sorted({get_config(f"dsr-mnist5k-cnn-if-t{T}").lr for T in a.T})
    for lr in lrs:
        tag = "lr005" if lr == 0.05 else "lr01"
        for seed in a.seeds:
            cfg = get_config(f"ann-mnist5k-cnn-{tag}").with_(
                seed=seed, epochs=a.epochs, num_threads=a.threads, eval_every=a.eval_every
            )
            res = run_one(cfg, f"[ann lr={lr} seed={seed}]")
            row = {
                "model": "dsr-mnist-cnn",
                "neuron": "relu",
                "T": None,
                "seed": seed,
                "ann_acc": res.pop("acc"),
                **res,
                **common(cfg),
            }
            row.pop("firing_rates"), row.pop("thresholds")
            doc["ann_rows"] = merge(doc["ann_rows"], row, KEYS)
            summarise(doc)
            write_json_atomic(MAIN_JSON, doc)


def run_main(a: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The SNN rows: every T, neuron and seed requested."""
    for T in a.T:
        for neuron in a.neurons:
            for seed in a.seeds:
                cfg = get_config(f"dsr-mnist5k-cnn-{neuron}-t{T}").with_(
                    seed=seed,
                    epochs=a.epochs,
                    num_threads=a.threads,
                    mode=a.mode,
                    eval_every=a.eval_every,
                )
                exact = a.bn_grad == "exact" and a.mode == "rate"
                res = run_one(cfg, f"[{neuron} T={T} seed={seed}]", exact)
                row = {
                    "model": "dsr-mnist-cnn",
                    "neuron": neuron,
                    "T": T,
                    "seed": seed,
                    "snn_acc": res.pop("acc"),
                    "ann_acc": None,
                    **res,
                    **common(cfg),
                    "mode": a.mode,
                    "exact_bn_grad": exact,
                }
                doc["rows"] = merge(doc["rows"], row, KEYS)
                summarise(doc)
                write_json_atomic(MAIN_JSON, doc)


def _ablation_config(a: argparse.Namespace, neuron: str, seed: int, variant: str) -> Any:
    kw = ABLATIONS[variant]
    base = get_config(f"dsr-mnist5k-cnn-{neuron}-t5")
    mk = dict(base.model_kwargs)
    mk["train_theta"] = kw["train_theta"]
    if kw["alpha"] is not None:
        mk["alpha"] = kw["alpha"]
    return base.with_(
        seed=seed,
        epochs=a.epochs,
        num_threads=a.threads,
        eval_every=a.eval_every,
        model_kwargs=mk,
    )


def run_ablation(a: argparse.Namespace, doc: dict[str, Any]) -> None:
    """The Table 3 ablation at T = 5 (threshold training and alpha on/off)."""
    abl = load(ABL_JSON)
    abl["description"] = (
        "DSR Table 3 ablation on MNIST-5k at T = 5: threshold training and alpha (alpha off = 1)"
    )
    abl.setdefault("rows", [])
    akeys = ("variant", "neuron", "T", "seed", "epochs")
    for neuron in a.neurons:
        for seed in a.seeds:
            for variant in a.variants:
                kw = ABLATIONS[variant]
                cfg = _ablation_config(a, neuron, seed, variant)
                res = run_one(cfg, f"[ablation {variant} {neuron} seed={seed}]")
                row = {
                    "variant": variant,
                    "model": "dsr-mnist-cnn",
                    "neuron": neuron,
                    "T": 5,
                    "seed": seed,
                    "train_theta": kw["train_theta"],
                    "alpha": kw["alpha"] if kw["alpha"] is not None else "default",
                    "snn_acc": res.pop("acc"),
                    **res,
                    **common(cfg),
                }
                abl["rows"] = merge(abl["rows"], row, akeys)
                write_json_atomic(ABL_JSON, abl)
            if "full" in a.variants:
                continue
            # the full method is the main table's row: reuse it rather than train it twice
            for r in doc.get("rows", []):
                if (r["neuron"], r["T"], r["seed"], r["epochs"]) == (neuron, 5, seed, a.epochs):
                    full = {
                        "variant": "full",
                        "train_theta": True,
                        "alpha": "default",
                        **{k: v for k, v in r.items() if k not in ("ann_acc",)},
                        "source": "the matching row of dsr_mnist.json",
                    }
                    abl["rows"] = merge(abl["rows"], full, akeys)
                    write_json_atomic(ABL_JSON, abl)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, nargs="+", default=[20, 10, 5])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--neurons", nargs="+", default=["if", "lif"], choices=["if", "lif"])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", default="rate", choices=["rate", "step"])
    p.add_argument(
        "--bn-grad",
        default="exact",
        choices=["exact", "between"],
        help="rate form: the batch norms' exact weight-gradient term (DSRNet.exact_bn_grad, the "
        "default) or the between-sample part only (the default before)",
    )
    p.add_argument(
        "--eval-every", type=int, default=1, help="evaluate every k epochs (always after the last)"
    )
    p.add_argument("--variants", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    p.add_argument(
        "--ann", action="store_true", help="also train the ANN baselines needed by these rows"
    )
    p.add_argument("--no-main", action="store_true", help="skip the SNN rows")
    p.add_argument(
        "--ablation", action="store_true", help="run the Table 3 ablation at T = 5 (neurons given)"
    )
    p.add_argument(
        "--memory", action="store_true", help="measure training memory vs T (rate and step forms)"
    )
    p.add_argument(
        "--speed",
        action="store_true",
        help="seconds per training epoch (median of --repeats one-epoch runs, no evaluation) per "
        "T, form and option; run it on an otherwise idle machine",
    )
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)

    doc = load(MAIN_JSON)
    doc["description"] = (__doc__ or "").split("\n\n")[0]
    doc.setdefault("rows", [])
    doc.setdefault("ann_rows", [])
    command = " ".join(["python", "benches/train_dsr_mnist.py"] + sys.argv[1:])
    if a.ann:
        run_ann(a, doc)
    if not a.no_main:
        run_main(a, doc)
    if a.memory:
        doc["memory"] = {
            "description": "one training step of the MNIST CNN (DSR-IF, batch 64) per backward "
            "form, time chunk (steps per chunk of the rate form's chunked forward; null: all "
            "steps at once) and T: autograd_saved_MB = tensors kept for backward; "
            "peak_rss_increase_MB = growth of the peak resident set during two steps (forward "
            "transients included)",
            "rows": memory_table([5, 10, 20, 40, 80]),
            "command": command,
        }
        write_json_atomic(MAIN_JSON, doc)
    if a.speed:
        doc["speed"] = {
            "description": "wall seconds of one training epoch (63 batches of 64, augmentation, "
            "no evaluation) of the MNIST CNN, median of `repeats` one-epoch runs in this "
            "process; variants: the rate form (default: exact batch-norm term on), the rate form "
            "with the between-sample term only, the per-step form; load_avg_at_start shows "
            "whether the machine was idle",
            "command": command,
            "rows": speed_table(a.T, a.neurons, a.repeats, a.threads),
        }
        write_json_atomic(MAIN_JSON, doc)
    if a.ablation:
        run_ablation(a, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
