"""The subcommands of ``snnsim`` except ``demo``: train, export, info, run, report, verify,
bench."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Callable, Iterator

import numpy as np

from .data import HELP as DATA_HELP
from .data import Data, load_data


# ---------------------------------------------------------------------- terminal helpers
def console(stderr: bool = False) -> Any:
    """A rich console (stdout, or stderr with ``stderr=True``), without syntax highlighting."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@contextlib.contextmanager
def progress(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``update(done)``. Silent when not enabled or when
    stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*cols, console=console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


def kv_table(title: str, rows: list[tuple[str, str]]) -> Any:
    """A two-column rich table of ``(key, value)`` rows under ``title``."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("")
    t.add_column("")
    for k, v in rows:
        t.add_row(k, v)
    return t


def _load_model(path: str) -> Any:
    import snnsim

    return snnsim.load(path)


def _torch_model(args: argparse.Namespace, model: Any, required: bool = False) -> Any:
    """The trained torch model: ``--torch RUN`` or the checkpoint recorded at export."""
    from ..exporter import load_trained

    src = getattr(args, "torch", None)
    if src is None:
        ck = (model.meta.get("source") or {}).get("checkpoint")
        if ck and os.path.exists(ck):
            src = ck
    if src is None:
        if required:
            raise FileNotFoundError(
                "no trained torch model: pass --torch RUN_DIR (the model file records no "
                "checkpoint that exists here)"
            )
        return None
    return load_trained(src).model


# ---------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    """``snnsim train ARGS``: ``python -m snnsim.train ARGS``; returns its exit code."""
    from ..train.__main__ import main as train_main

    return int(train_main(list(args.args)) or 0)


# ---------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    """``snnsim export``: export a training run to a model file; exit code 0."""
    import snnsim

    from ..exporter import checkpoint_path

    ck = checkpoint_path(args.source)
    out = args.output or os.path.join(os.path.dirname(ck), f"model-{args.mode}.snn.safetensors")
    t0 = time.perf_counter()
    g = snnsim.export(args.source, out, mode=args.mode, per_channel=args.per_channel)
    m = snnsim.load(out)
    con = console()
    src = m.meta.get("source") or {}
    con.print(
        kv_table(
            "Exported",
            [
                ("from", f"{src.get('run', '?')} (epoch {src.get('epoch', '?')})"),
                ("to", out),
                ("mode", args.mode + (", per channel" if args.per_channel else "")),
                ("nodes", str(len(g.nodes))),
                ("time steps T", str(m.T)),
                ("input", f"{m.input_kind} {list(m.input_shape)}"),
                ("seconds", f"{time.perf_counter() - t0:.2f}"),
            ],
        )
    )
    print(out)
    return 0


# ---------------------------------------------------------------------- info
def _info_checkpoint(path: str) -> int:
    from ..exporter import load_trained

    run = load_trained(path)
    cfg = run.config
    rows = [
        ("kind", "training run (torch checkpoint), not an snnsim model file"),
        ("checkpoint", run.checkpoint),
        ("config", str(cfg.get("name"))),
        ("model", f"{cfg.get('model')} ({type(run.model).__name__}), neuron {cfg.get('neuron')}"),
        ("dataset", str(cfg.get("dataset"))),
        ("T", str(cfg.get("T"))),
        ("epochs done", f"{run.epoch} of {cfg.get('epochs')}"),
        ("test accuracy", "–" if run.test_acc is None else f"{100 * run.test_acc:.2f} %"),
        ("parameters", f"{sum(p.numel() for p in run.model.parameters()):,}"),
        ("to run it in the engine", f"snnsim export {path} net.snn.safetensors --mode int8"),
    ]
    console().print(kv_table("Training run", rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """``snnsim info``: what a model file or a training run holds; exit code 0."""
    from ..report import model_summary
    from ..report.render import model_table

    p = args.model
    if os.path.isdir(p) or p.endswith(".pt"):
        return _info_checkpoint(p)
    m = _load_model(p)
    d = {"model": model_summary(m)}
    if args.json:
        print(json.dumps(d["model"], indent=2))
        return 0
    ms = d["model"]
    src = ms.get("source") or {}
    rows = [
        ("file", p),
        ("precision", ms["precision"]),
        ("input", f"{ms['input']['kind']} {ms['input']['shape']}"),
        (
            "input quantisation step",
            "–" if ms["input"]["scale"] is None else f"{ms['input']['scale']:.6g}",
        ),
        ("time steps T", "not recorded (pass --steps)" if ms["T"] is None else str(ms["T"])),
        ("parameters", f"{ms['parameters']:,}"),
        ("output node", ms["output"]),
    ]
    if src:
        rows.append(("source", ", ".join(f"{k}={v}" for k, v in src.items() if v is not None)))
    con = console()
    con.print(kv_table("Model", rows))
    t = model_table(d)
    from rich.table import Table

    rt = Table(title="Layers", title_justify="left", caption=t.get("note"), caption_justify="left")
    for j, c in enumerate(t["columns"]):
        rt.add_column(c, justify="left" if j in (0, 1, 5) else "right")
    for r in t["rows"]:
        rt.add_row(*r)
    con.print(rt)
    return 0


# ---------------------------------------------------------------------- run / report
def _data(args: argparse.Namespace) -> Data:
    return load_data(args.data).limit(args.limit)


def _build(args: argparse.Namespace, plots: bool, verification: Any = None) -> Any:
    from ..report import build_report

    m = _load_model(args.model)
    data = _data(args)
    with progress(len(data), f"engine on {data.name}", not args.json) as upd:
        rep = build_report(
            m,
            data.x,
            data.y,
            steps=args.steps,
            batch_size=args.batch_size,
            progress=upd,
            plots=plots,
            verification=verification,
            title=f"snnsim: {os.path.basename(args.model)} on {data.name}",
        )
    return rep


def cmd_run(args: argparse.Namespace) -> int:
    """``snnsim run``: accuracy, firing rates, counts and energy (pJ) of a model on data."""
    rep = _build(args, plots=args.report is not None)
    if args.json:
        print(rep.to_json())
    else:
        rep.print(console())
    if args.report is not None:
        out = rep.write(args.report)
        print(f"report: {out / 'report.html'}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``snnsim report``: write the report folder (HTML, PNG, JSON, Markdown)."""
    verification = None
    if args.verify:
        verification = _verify(args, _load_model(args.model), _data(args))
    rep = _build(args, plots=True, verification=verification)
    out = rep.write(args.out)
    if not args.quiet:
        rep.print(console())
    print(f"report written to {out.resolve()}/ (open {out.resolve() / 'report.html'})")
    return 0


# ---------------------------------------------------------------------- verify
def _verify(args: argparse.Namespace, m: Any, data: Data) -> Any:
    from ..verify import verify

    tm = _torch_model(args, m)
    with progress(len(data), "verifying", True) as upd:
        return verify(
            m,
            data.x,
            data.y,
            torch_model=tm,
            steps=args.steps,
            reference=not getattr(args, "no_reference", False),
            batch_size=args.batch_size,
            progress=upd,
        )


def cmd_verify(args: argparse.Namespace) -> int:
    """``snnsim verify``: the engine against the integer reference (and the torch model);
    exit code 1 when they disagree."""
    from ..report.render import verify_table

    m = _load_model(args.model)
    data = _data(args)
    rep = _verify(args, m, data)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        from rich.table import Table

        t = verify_table({"verify": rep.as_dict()})
        assert t is not None
        rt = Table(title=t["title"], title_justify="left")
        for j, c in enumerate(t["columns"]):
            rt.add_column(c, justify="left" if j == 0 else "right")
        for r in t["rows"]:
            rt.add_row(*r)
        con = console()
        con.print(rt)
        rows = [("precision", rep.precision)]
        if rep.bit_exact is not None:
            rows.append(("engine == reference", "yes, every spike" if rep.bit_exact else "NO"))
            rows.append(("predictions equal (reference)", f"{100 * rep.agreement_reference:.2f} %"))
        if rep.agreement_torch is not None:
            rows.append(("predictions equal (torch model)", f"{100 * rep.agreement_torch:.2f} %"))
        if rep.accuracy_engine is not None:
            rows.append(("accuracy, engine", f"{100 * rep.accuracy_engine:.2f} %"))
        if rep.accuracy_torch is not None:
            rows.append(("accuracy, torch model", f"{100 * rep.accuracy_torch:.2f} %"))
        con.print(kv_table("Summary", rows))
    failed = rep.precision == "int" and rep.bit_exact is False
    if args.min_agreement is not None and rep.agreement_torch is not None:
        failed = failed or rep.agreement_torch < args.min_agreement
    return 1 if failed else 0


# ---------------------------------------------------------------------- bench
def _time_engine(m: Any, x: Any, steps: int | None, batch: int, repeats: int) -> tuple[float, Any]:
    import snnsim

    best = float("inf")
    preds = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [
            snnsim.run(m, x[i : i + batch], steps=steps).prediction for i in range(0, len(x), batch)
        ]
        best = min(best, time.perf_counter() - t0)
        preds = np.concatenate(out)
    return best, preds


def _time_torch(tm: Any, m: Any, x: Any, batch: int, repeats: int) -> tuple[float, Any]:
    import torch

    from ..verify import torch_input

    tm.eval()
    best = float("inf")
    preds = None
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = [tm(torch_input(m, x[i : i + batch])).argmax(1) for i in range(0, len(x), batch)]
            best = min(best, time.perf_counter() - t0)
            preds = torch.cat(out).numpy()
    return best, preds


def bench(
    m: Any, tm: Any, data: Data, steps: int | None, batch: int, repeats: int
) -> dict[str, Any]:
    """Engine vs the trained torch model on the same inputs and batch size: best of
    ``repeats`` wall-clock times (µs per sample), accuracies, agreement."""
    import torch

    te, pe = _time_engine(m, data.x, steps, batch, repeats)
    res: dict[str, Any] = {
        "samples": len(data),
        "batch_size": batch,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "engine_us_per_sample": 1e6 * te / len(data),
    }
    if data.y is not None:
        res["engine_accuracy"] = float(np.mean(pe == data.y))
    if tm is not None:
        tt, pt = _time_torch(tm, m, data.x, batch, repeats)
        res["torch_us_per_sample"] = 1e6 * tt / len(data)
        res["speedup"] = tt / te
        res["agreement"] = float(np.mean(pe == pt))
        if data.y is not None:
            res["torch_accuracy"] = float(np.mean(pt == data.y))
    return res


def cmd_bench(args: argparse.Namespace) -> int:
    """``snnsim bench``: engine and torch model side by side (microseconds per sample)."""
    m = _load_model(args.model)
    data = _data(args)
    if isinstance(data.x, list):
        raise ValueError("bench takes images or frames, not event recordings")
    tm = _torch_model(args, m)
    res = bench(m, tm, data, args.steps, args.batch_size, args.repeats)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    from rich.table import Table

    t = Table(title=f"Engine vs torch model on {data.name}", title_justify="left")
    for c in ("", "snnsim engine", "torch model"):
        t.add_column(c, justify="left" if not c else "right")
    us_t = res.get("torch_us_per_sample")
    t.add_row(
        "µs per sample",
        f"{res['engine_us_per_sample']:.0f}",
        "–" if us_t is None else f"{us_t:.0f}",
    )
    acc_e, acc_t = res.get("engine_accuracy"), res.get("torch_accuracy")
    t.add_row(
        "accuracy",
        "–" if acc_e is None else f"{100 * acc_e:.2f} %",
        "–" if acc_t is None else f"{100 * acc_t:.2f} %",
    )
    t.caption = (
        f"batch {res['batch_size']}, best of {res['repeats']}, torch threads "
        f"{res['torch_threads']}"
        + (
            ""
            if us_t is None
            else f"; engine {res['speedup']:.1f}x faster than torch, "
            f"predictions equal on {100 * res['agreement']:.2f} %"
        )
    )
    t.caption_justify = "left"
    console().print(t)
    return 0


# ---------------------------------------------------------------------- parsers
def _model_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.snn.safetensors)")
    p.add_argument("data", nargs="+", help=DATA_HELP)
    p.add_argument("--steps", type=int, help="time steps (default: the T recorded in the file)")
    p.add_argument("--limit", type=int, help="use only the first N samples")
    p.add_argument("--batch-size", type=int, default=500, help="samples per engine call (500)")


def add_parsers(sub: Any) -> None:
    """Add the ``train``, ``export``, ``info``, ``run``, ``verify``, ``bench`` and ``report``
    subcommands to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "train",
        add_help=False,
        help="train a named configuration (snnsim train --list; --help for its options)",
        description="Runs python -m snnsim.train with the given arguments.",
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a training run to a model file")
    p.add_argument("source", help="training run directory (holding checkpoint.pt) or checkpoint")
    p.add_argument("output", nargs="?", help="model file (default RUN/model-MODE.snn.safetensors)")
    p.add_argument("--mode", choices=("float32", "int16", "int8", "int4"), default="int8")
    p.add_argument("--per-channel", action="store_true", help="one weight scale per channel")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="layers, shapes, parameters, precision, T, preprocessing")
    p.add_argument("model", help="model file, or a training run directory / checkpoint")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "run", help="run a model on a dataset: accuracy, firing rates, counts, energy"
    )
    _model_data(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--report", metavar="DIR", help="also write a report folder")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write a report folder (HTML, PNG, JSON, Markdown)")
    _model_data(p)
    p.add_argument("--out", default="snnsim-report", help="folder (default ./snnsim-report)")
    p.add_argument("--verify", action="store_true", help="include a verification")
    p.add_argument("--torch", metavar="RUN", help="trained torch model for --verify")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    p.set_defaults(func=cmd_report, json=False)

    p = sub.add_parser(
        "verify", help="engine vs integer reference spike for spike, and vs the torch model"
    )
    _model_data(p)
    p.add_argument(
        "--torch",
        metavar="RUN",
        help="training run or checkpoint of the torch model "
        "(default: the one recorded at export, if present)",
    )
    p.add_argument("--no-reference", action="store_true", help="skip the torch reference")
    p.add_argument("--min-agreement", type=float, help="fail (exit 1) below this agreement (0-1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="engine vs the torch model, side by side")
    _model_data(p)
    p.add_argument("--torch", metavar="RUN", help="training run or checkpoint of the torch model")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)
