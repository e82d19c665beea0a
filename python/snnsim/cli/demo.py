"""``snnsim demo``: the whole product in about two minutes on a 2-core CPU.

1. trains a small DSR CNN (conv32-BN-IF-pool-conv64-BN-IF-pool-FC-BN-IF, T = 5) on the bundled
   MNIST-5k training split (4000 images) with the registry's recipe, for a few epochs;
2. exports it to an int8 model file;
3. runs the engine on the 1000 test images and checks it against the integer reference (identical
   spikes in every layer and step) and against the trained torch model (agreement of predictions,
   spike flips per layer);
4. times the engine against the torch model on the same images;
5. estimates the energy, SNN against the equivalent ANNs;
6. writes the report folder and prints its path.

A finished training run in the output folder is reused (``--retrain`` trains again).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

CONFIG = "dsr-mnist5k-cnn-if-t5"
EPOCHS = 8


def add_parser(sub: Any) -> None:
    """Add the ``demo`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "demo",
        help="train, export, run, verify and report a DSR CNN on MNIST-5k (~2 min)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default ./runs/demo)")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs ({EPOCHS})")
    p.add_argument("--retrain", action="store_true", help="train again even if a run exists")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    p.add_argument(
        "--samples", type=int, default=1000, help="test images to run and verify (1000, all)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def _trained(run_dir: Path, epochs: int) -> bool:
    """A complete run of the demo's config and epochs exists in ``run_dir``."""
    metrics = run_dir / "metrics.json"
    if not (run_dir / "checkpoint.pt").is_file() or not metrics.is_file():
        return False
    try:
        doc = json.loads(metrics.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    cfg = doc.get("config", {})
    return (
        cfg.get("name") == CONFIG
        and cfg.get("epochs") == epochs
        and len(doc.get("epochs", [])) == epochs
    )


def _train(run_dir: Path, epochs: int, threads: int, show: bool, con: Any) -> tuple[float, float]:
    from ..train.configs import get_config
    from ..train.trainer import Trainer

    cfg = get_config(CONFIG).with_(epochs=epochs, num_threads=threads, device="cpu")
    con.print(f"[bold]1. training[/bold] {CONFIG} for {epochs} epochs on MNIST-5k (4000 images)")
    t0 = time.perf_counter()
    tr = Trainer(cfg, run_dir, progress=show)
    hist = tr.fit(log=lambda s: con.print("   " + s))
    return time.perf_counter() - t0, float(hist[-1]["test_acc"])


def _summary_rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    v, b, e = res["verify"], res["bench"], res["energy"]
    same = "yes: identical spikes in every layer and step" if v["bit_exact"] else "NO"
    rows = [
        ("torch model accuracy (float)", f"{100 * b['torch_accuracy']:.2f} %"),
        ("engine accuracy (int8)", f"{100 * b['engine_accuracy']:.2f} %"),
        ("engine == integer reference", same),
        ("predictions equal to the torch model's", f"{100 * v['agreement_torch']:.2f} %"),
        (
            f"speed, {res['verify']['samples']} images",
            f"engine {b['engine_us_per_sample']:.0f} µs/sample, torch "
            f"{b['torch_us_per_sample']:.0f} µs/sample ({b['speedup']:.1f}x)",
        ),
        (
            "energy per inference, compute + memory",
            f"SNN {e['snn_uj']:.2f} µJ, ANN int8 {e['ann_int8_uj']:.2f} µJ, ANN float32 "
            f"{e['ann_fp32_uj']:.2f} µJ",
        ),
        (
            "energy per inference, compute only",
            f"SNN {e['snn_compute_uj']:.3f} µJ, ANN int8 {e['ann_int8_compute_uj']:.3f} µJ, "
            f"ANN float32 {e['ann_fp32_compute_uj']:.3f} µJ",
        ),
        ("firing rate (break-even vs int8 ANN)", f"{100 * e['rate']:.2f} % ({e['break_even']})"),
    ]
    return rows


def cmd_demo(args: argparse.Namespace) -> int:
    """``snnsim demo``: train (or reuse) the DSR CNN, export it to int8, run, verify and
    report it; exit code 0, 1 when the engine and the integer reference disagree."""
    import torch

    import snnsim

    from ..data import load_mnist5k_split
    from ..report import build_report
    from ..report.render import break_even_text
    from ..verify import verify
    from .commands import bench, console, kv_table, progress
    from .data import Data

    torch.set_num_threads(max(1, args.threads))
    con = console()
    show = not args.no_progress
    out = Path(args.out)
    run_dir = out / "run"
    t_start = time.perf_counter()
    if args.retrain or not _trained(run_dir, args.epochs):
        train_s, torch_acc = _train(run_dir, args.epochs, args.threads, show, con)
    else:
        train_s, torch_acc = 0.0, float("nan")
        con.print(f"[bold]1. training[/bold]: reusing the finished run in {run_dir} (--retrain)")

    con.print("[bold]2. export[/bold] to int8")
    model_path = out / "model-int8.snn.safetensors"
    snnsim.export(run_dir, model_path, mode="int8")
    model = snnsim.load(model_path)
    tm = snnsim.exporter.load_trained(run_dir).model
    x, y = load_mnist5k_split("test")
    if not 1 <= args.samples <= len(x):
        raise ValueError(f"--samples must be in [1, {len(x)}], got {args.samples}")
    x, y = x[: args.samples], y[: args.samples]

    con.print(
        f"[bold]3. engine[/bold] on {len(x)} test images, against the integer reference and "
        "the torch model"
    )
    with progress(len(x), "verifying", show) as upd:
        ver = verify(model, x, y, torch_model=tm, batch_size=250, progress=upd)
    con.print("[bold]4. speed[/bold]: engine vs torch model (batch 500, best of 2)")
    b = bench(model, tm, Data(x, y, "MNIST-5k test"), None, min(500, len(x)), 2)
    con.print("[bold]5. energy and report[/bold]")
    rep = build_report(
        model,
        x,
        y,
        verification=ver,
        title="snnsim demo: DSR CNN (IF, T = 5) on MNIST-5k, int8 engine",
        extra={},
    )
    e = rep.data["energy"]
    cmp = e["comparison"]
    res = {
        "verify": ver.as_dict(),
        "bench": b,
        "energy": {
            "snn_uj": cmp["snn"]["total_pj"] * 1e-6,
            "ann_int8_uj": cmp["ann_same_width"]["total_pj"] * 1e-6,
            "ann_fp32_uj": cmp["ann_fp32"]["total_pj"] * 1e-6,
            "snn_compute_uj": cmp["snn"]["compute_pj"] * 1e-6,
            "ann_int8_compute_uj": cmp["ann_same_width"]["compute_pj"] * 1e-6,
            "ann_fp32_compute_uj": cmp["ann_fp32"]["compute_pj"] * 1e-6,
            "rate": e["summary"]["firing_rate"],
            "break_even": break_even_text(e["break_even_rate"]["ann_same_width"]["total"]),
        },
    }
    total_s = time.perf_counter() - t_start
    rep.data["extra"] = {
        "training epochs": args.epochs,
        "training seconds": round(train_s, 1) if train_s else "reused",
        "torch accuracy at the last epoch": torch_acc if torch_acc == torch_acc else "reused",
        "engine µs per sample (batch 500)": round(b["engine_us_per_sample"], 1),
        "torch model µs per sample (batch 500)": round(b["torch_us_per_sample"], 1),
        "engine speed-up vs torch": round(b["speedup"], 2),
        "torch threads": b["torch_threads"],
        "demo seconds (until the report)": round(total_s, 1),
    }
    folder = rep.write(out / "report").resolve()
    con.print(kv_table("snnsim demo", _summary_rows(res)))
    con.print(f"demo took {total_s:.0f} s; report: {folder / 'report.html'}")
    print(os.fspath(folder))
    return 0 if ver.bit_exact else 1
