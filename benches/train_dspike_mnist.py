"""Dspike on MNIST-5k (and the SYNTHETIC N-MNIST-like event data): adaptive temperature vs
fixed temperature vs the rectangular (and triangular) surrogate at several latencies, TIT vs
training from scratch, and an FDG step-size (eps) sweep.

Rows (method, T, seed, acc, epochs, plus dataset, per-epoch curves and temperatures) are MERGED
into ``benches/results/dspike_mnist.json`` (a row with the same dataset/method/T/seed/eps
replaces the old one), written after every run, so subsets can be run separately:

    python benches/train_dspike_mnist.py --grid --T 6,4,2 --seeds 0 \
        --methods dspike-adaptive,dspike-fixed,rect
    python benches/train_dspike_mnist.py --tit --tit-from 4 --T 2 --seeds 0
    python benches/train_dspike_mnist.py --eps-sweep 0.02,0.5 --T 4 --seeds 0
    python benches/train_dspike_mnist.py --dataset synthetic-nmnist --grid --T 4 --seeds 0 \
        --n-train 2000
    python benches/train_dspike_mnist.py --plot-only   # temperature plot and table from the JSON

The temperature per epoch of the adaptive runs is plotted to
``benches/results/dspike_temperature.png`` (Fig. 5 analogue).

``--temperature-task``: a task on which the temperature matters, to test the adaptive search
where it can make a difference: a deep plain CNN (ten conv-tdBN-LIF layers of 16 channels,
2x2 pools after the last two, FC) on the 8x8 digits (1437/360 split) at T = 2, Adam 2e-3,
cosine, ``--epochs`` epochs. Fixed temperatures ``--b-grid`` and the adaptive search from each
of ``--b0s``, ``--seeds`` seeds each; rows and a summary (mean, sd, 95 % intervals, the best
and worst fixed temperature, adaptive against fixed from the same b0) go to
``benches/results/dspike_temperature_task.json``::

    python benches/train_dspike_mnist.py --temperature-task --epochs 15 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from snnsim.train.checkpoint import load_checkpoint, write_json_atomic
from snnsim.train.dspike_experiment import ExperimentConfig, load_data, run_experiment

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "dspike_mnist.json"
PNG = ROOT / "results" / "dspike_temperature.png"
CKPT = Path(os.environ.get("SNNSIM_CACHE", Path.home() / ".cache" / "snnsim")) / "dspike_ckpt"


def _key(r: dict[str, Any]) -> tuple:
    return (r.get("dataset"), r["method"], r["T"], r["seed"], r.get("eps"))


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return json.loads(path.read_text()).get("rows", [])


def merge_row(path: Path, row: dict[str, Any]) -> None:
    rows = [r for r in load_rows(path) if _key(r) != _key(row)]
    rows.append(row)
    rows.sort(
        key=lambda r: (str(r.get("dataset")), r["method"], -r["T"], r["seed"], r.get("eps") or 0)
    )
    doc = {
        "description": "Dspike (Li et al., NeurIPS 2021) on MNIST-5k (4000/1000 split) and "
        "SYNTHETIC N-MNIST-like events (not N-MNIST); small CNN conv16-conv32-FC, tdBN, Dspike LIF "
        "(leak 0.5, Vth 0.5, hard reset), Adam + cosine LR, CPU.",
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "rows": rows,
    }
    write_json_atomic(path, doc)


def ckpt_path(dataset: str, method: str, T: int, seed: int) -> Path:
    return CKPT / f"{dataset}_{method}_T{T}_s{seed}.pt"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in rows if r["method"] == "dspike-adaptive" and r.get("temperatures")]
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in sorted(runs, key=lambda r: (r.get("dataset"), -r["T"], r["seed"], r.get("eps") or 0)):
        temps = [r.get("b0", 1.0)] + list(r["temperatures"])
        lab = f"{r.get('dataset')} T={r['T']} seed={r['seed']}" + (
            f" eps={r['eps']}" if r.get("eps") != 0.1 else ""
        )
        ax.plot(range(len(temps)), temps, marker="o", label=lab)
    ax.set_xlabel("epoch (0: initial b0; k: temperature searched at the start of epoch k)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("temperature b")
    ax.set_title("Dspike temperature chosen by the FDG search (Algorithm 1)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, Any]]) -> str:
    import statistics as st

    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(
            (r.get("dataset"), r["method"], r["T"], r.get("eps"), r["epochs"]), []
        ).append(r["acc"])
    lines = [
        "| dataset | method | T | eps | epochs | seeds | acc (mean ± sd) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (ds, m, T, eps, ep), accs in sorted(
        groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], -kv[0][2], kv[0][3] or 0)
    ):
        sd = st.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(
            f"| {ds} | {m} | {T} | {eps if eps is not None else '-'} | {ep} | {len(accs)} | "
            f"{100 * st.mean(accs):.2f} ± {100 * sd:.2f} |"
        )
    return "\n".join(lines)


def tit_table(rows: list[dict[str, Any]]) -> str:
    """TIT vs scratch at the same T: fine-tuning epochs the TIT run needs to reach the scratch
    run's final accuracy (same dataset and seed; source epochs listed separately)."""
    lines = [
        "| dataset | T | seed | scratch acc (epochs) | TIT from | acc inherited (0 epochs) "
        "| TIT acc per epoch | epochs to reach scratch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "tit_from" not in r:
            continue
        base = r["method"].split("+tit")[0]
        sc = [
            s
            for s in rows
            if s.get("dataset") == r.get("dataset")
            and s["method"] == base
            and s["T"] == r["T"]
            and s["seed"] == r["seed"]
            and s.get("eps") == r.get("eps")
        ]
        target = sc[0]["acc"] if sc else None
        curve = r.get("acc_curve", [])
        reach = "-"
        if target is not None:
            if r.get("acc_inherited", 0) >= target:
                reach = "0"
            else:
                hit = [i + 1 for i, a in enumerate(curve) if a >= target]
                reach = str(hit[0]) if hit else f"> {len(curve)}"
        sc_txt = "-" if target is None else f"{100 * target:.2f} ({sc[0]['epochs']})"
        curve_txt = ", ".join(f"{100 * a:.1f}" for a in curve)
        lines.append(
            f"| {r.get('dataset')} | {r['T']} | {r['seed']} | {sc_txt} | {r['tit_from']} "
            f"({r['epochs']} src epochs) | {100 * r.get('acc_inherited', 0):.2f} | {curve_txt} "
            f"| {reach} |"
        )
    return "\n".join(lines)


TASK_OUT = ROOT / "results" / "dspike_temperature_task.json"
TASK = {
    "name": "digits-deep10-t2",
    "T": 2,
    "channels": [16] * 10,
    "pool": [False] * 8 + [True, True],
}


def _ci95(xs: list[float]) -> float | None:
    import math
    import statistics as st

    if len(xs) < 2:
        return None
    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45}.get(len(xs) - 1, 2.0)
    return t * st.stdev(xs) / math.sqrt(len(xs))


def task_run(method: str, b0: float, seed: int, epochs: int, data: Any) -> dict[str, Any]:
    """One run of the temperature task (see the module docstring) through the trainer."""
    import time

    from torch.utils.data import TensorDataset

    from snnsim.models import create_model
    from snnsim.train.dspike_experiment import to_train_config
    from snnsim.train.trainer import Trainer

    torch.manual_seed(seed)
    model = create_model(
        "dspike-mnist-cnn",
        T=TASK["T"],
        image_size=8,
        channels=TASK["channels"],
        pool=TASK["pool"],
        surrogate="dspike",
        b=b0,
    )
    # the experiment recipe (Adam 2e-3, cosine, batch 64, no augmentation, FDG eps 0.1 on 16
    # samples, db 0.2); its dataset field only names the loader, the digits tensors are given
    cfg = ExperimentConfig(
        dataset="mnist5k", method=method, T=TASK["T"], seed=seed, epochs=epochs, b0=b0, device="cpu"
    )
    xtr, ytr, xte, yte = data
    t0 = time.time()
    tr = Trainer(
        to_train_config(cfg),
        None,
        progress=False,
        model=model,
        datasets=(TensorDataset(xtr, ytr), TensorDataset(xte, yte)),
    )
    hist = tr.fit(log=lambda s: print(" ", s, flush=True))
    return {
        "task": TASK["name"],
        "method": method,
        "b0": b0,
        "seed": seed,
        "epochs": epochs,
        "acc": hist[-1]["test_acc"],
        "acc_curve": [h["test_acc"] for h in hist],
        "temperatures": [h.get("temperature") for h in hist],
        "cosines": (
            [h.get("temperature_cosines") for h in hist] if method == "dspike-adaptive" else None
        ),
        "loss_curve": [h["train_loss"] for h in hist],
        "rates": hist[-1]["firing_rates"],
        "time_s": round(time.time() - t0, 1),
        "lr": cfg.lr,
        "db": cfg.db,
        "eps": cfg.eps,
    }


def task_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sd and 95 % interval per (method, b0); the best and worst fixed temperature and
    their difference; adaptive against fixed from the same b0 (paired by seed)."""
    import statistics as st

    groups: dict[tuple[str, float, int], dict[int, dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["b0"], r["epochs"]), {})[r["seed"]] = r
    per = []
    for (m, b0, epochs), by in sorted(groups.items()):
        accs = [by[k]["acc"] for k in sorted(by)]
        item: dict[str, Any] = {
            "method": m,
            "b0": b0,
            "epochs": epochs,
            "seeds": sorted(by),
            "mean_acc": st.fmean(accs),
            "sd": st.stdev(accs) if len(accs) > 1 else None,
            "ci95": _ci95(accs),
        }
        if m == "dspike-adaptive":
            item["final_b"] = [by[k]["temperatures"][-1] for k in sorted(by)]
            fixed = groups.get(("dspike-fixed", b0, epochs), {})
            common = sorted(set(by) & set(fixed))
            if common:
                d = [by[k]["acc"] - fixed[k]["acc"] for k in common]
                item["vs_fixed_same_b0"] = {
                    "seeds": common,
                    "mean_diff": st.fmean(d),
                    "ci95": _ci95(d),
                }
        per.append(item)
    out: dict[str, Any] = {"groups": per}
    main_epochs = max((p["epochs"] for p in per), key=lambda e: sum(q["epochs"] == e for q in per))
    fixed = [p for p in per if p["method"] == "dspike-fixed" and p["epochs"] == main_epochs]
    if len(fixed) >= 2:
        best = max(fixed, key=lambda p: p["mean_acc"])
        worst = min(fixed, key=lambda p: p["mean_acc"])
        out["best_fixed_b"] = best["b0"]
        out["worst_fixed_b"] = worst["b0"]
        out["best_minus_worst"] = best["mean_acc"] - worst["mean_acc"]
        out["epochs_of_the_grid"] = main_epochs
    return out


def run_task(args: argparse.Namespace) -> None:
    import numpy as np

    from snnsim.data.digits import load_digits_split

    xtr, ytr = load_digits_split("train")
    xte, yte = load_digits_split("test")
    data = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in (xtr, ytr, xte, yte))
    seeds = [int(s) for s in args.seeds.split(",") if s]
    jobs = [("dspike-fixed", float(b)) for b in args.b_grid.split(",") if b]
    jobs += [("dspike-adaptive", float(b)) for b in args.b0s.split(",") if b]
    doc = json.loads(TASK_OUT.read_text()) if TASK_OUT.exists() else {}
    rows = doc.get("rows", [])
    key = ("method", "b0", "seed", "epochs")
    for seed in seeds:
        for method, b0 in jobs:
            k = (method, b0, seed, args.epochs)
            if any(tuple(r.get(x) for x in key) == k for r in rows):
                print(f"skip {k}", flush=True)
                continue
            print(f"== {TASK['name']} {method} b0={b0} seed={seed}", flush=True)
            row = task_run(method, b0, seed, args.epochs, data)
            row["command"] = " ".join(["python", "benches/train_dspike_mnist.py"] + sys.argv[1:])
            rows = [r for r in rows if tuple(r.get(x) for x in key) != k] + [row]
            rows.sort(key=lambda r: (r["method"], r["b0"], r["seed"]))
            doc = {
                "description": "Dspike temperature task: "
                + (__doc__ or "").split("``--temperature-task``: ")[1].split("::")[0].strip(),
                "task": TASK,
                "n_train": int(len(ytr)),
                "n_test": int(len(yte)),
                "threads": torch.get_num_threads(),
                "command": " ".join(["python", "benches/train_dspike_mnist.py"] + sys.argv[1:]),
                "rows": rows,
                "summary": task_summary(rows),
            }
            write_json_atomic(TASK_OUT, doc)
            print(f"  -> acc {row['acc']:.4f} b {row['temperatures'][-1]} ({row['time_s']}s)")


def build_jobs(args: argparse.Namespace) -> list[ExperimentConfig]:
    """The runs the grid, TIT and eps-sweep options ask for."""
    Ts = [int(t) for t in args.T.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    base = dict(
        dataset=args.dataset,
        epochs=args.epochs,
        lr=args.lr,
        n_train=args.n_train,
        n_test=args.n_test,
        fdg_batch=args.fdg_batch,
    )
    jobs: list[ExperimentConfig] = []
    if args.grid:
        for seed in seeds:
            for T in Ts:
                jobs += [ExperimentConfig(method=m, T=T, seed=seed, **base) for m in methods]
    if args.tit:
        for seed in seeds:
            jobs += [
                ExperimentConfig(
                    method="dspike-adaptive", T=T, seed=seed, tit_from=args.tit_from, **base
                )
                for T in Ts
                if T < args.tit_from
            ]
    for e in [float(v) for v in args.eps_sweep.split(",") if v]:
        for seed in seeds:
            jobs += [
                ExperimentConfig(method="dspike-adaptive", T=T, seed=seed, eps=e, **base)
                for T in Ts
            ]
    return jobs


def run_jobs(jobs: list[ExperimentConfig], args: argparse.Namespace) -> None:
    """Run each job (skipping those in the JSON with ``--skip-existing``), merging its row."""
    done = {_key(r) for r in load_rows(args.out)}
    data_cache: dict[int, Any] = {}
    for cfg in jobs:
        name = cfg.method + (f"+tit{cfg.tit_from}" if cfg.tit_from else "")
        eps = cfg.eps if cfg.method.startswith("dspike") else None
        key = (cfg.dataset, name, cfg.T, cfg.seed, eps)
        if args.skip_existing and key in done:
            print(f"skip {key}")
            continue
        print(f"== {cfg.dataset} {name} T={cfg.T} seed={cfg.seed} eps={cfg.eps}", flush=True)
        if cfg.T not in data_cache:
            if cfg.dataset != "mnist5k":
                data_cache.clear()
            data_cache[cfg.T] = load_data(cfg.dataset, cfg.T, cfg.n_train, cfg.n_test)
        init = None
        if cfg.tit_from:
            p = ckpt_path(cfg.dataset, cfg.method, cfg.tit_from, cfg.seed)
            if p.exists():
                init = load_checkpoint(p)
                print(f"  TIT source: {p}")
        save = None
        if not cfg.tit_from and cfg.eps == 0.1:
            save = ckpt_path(cfg.dataset, cfg.method, cfg.T, cfg.seed)
        row = run_experiment(
            cfg,
            log=lambda s: print(s, flush=True),
            init_state=init,
            save_to=save,
            data=data_cache[cfg.T],
        )
        merge_row(args.out, row)
        print(f"  -> acc {row['acc']:.4f} ({row['time_s']}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="mnist5k", choices=("mnist5k", "synthetic-nmnist"))
    ap.add_argument("--grid", action="store_true", help="methods x T x seeds")
    ap.add_argument(
        "--tit",
        action="store_true",
        help="TIT from --tit-from to each T (and the scratch rows if missing)",
    )
    ap.add_argument("--tit-from", type=int, default=4)
    ap.add_argument("--eps-sweep", default="", help="comma list of FDG eps for adaptive Dspike")
    ap.add_argument("--methods", default="dspike-adaptive,dspike-fixed,rect")
    ap.add_argument("--T", default="6,4,2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--fdg-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--plot-only", action="store_true", help="only redraw the plot and print the tables"
    )
    ap.add_argument(
        "--skip-existing", action="store_true", help="do not rerun rows already in the JSON"
    )
    ap.add_argument(
        "--temperature-task",
        action="store_true",
        help="fixed vs adaptive temperature on the deep digits CNN (see the docstring)",
    )
    ap.add_argument("--b-grid", default="0.5,1,4,8,16", help="--temperature-task: fixed b values")
    ap.add_argument("--b0s", default="1,8", help="--temperature-task: adaptive starting b0 values")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.temperature_task:
        run_task(args)
        return 0

    jobs = [] if args.plot_only else build_jobs(args)
    run_jobs(jobs, args)

    rows = load_rows(args.out)
    plot(rows, PNG)
    print(table(rows))
    print()
    print(tit_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
