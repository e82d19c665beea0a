"""``python -m snnsim.train --config NAME [--resume] [--out DIR] ...``: train a configuration.

Trains a named configuration (``--list`` shows them with dataset, T, epochs and parameter
count; DSR, ANN twins and Dspike in one registry) or a :class:`TrainConfig` JSON file into
``DIR`` (default ``runs/NAME``): ``metrics.json`` and ``checkpoint.pt`` after every epoch.
``--resume`` continues from ``DIR/checkpoint.pt`` and refuses a checkpoint trained with
another configuration (``--seed``, ``--epochs``, ...) unless ``--allow-config-change``.
``--stop-after N`` ends the run after N epochs as an interruption would (resume later).
Paper rows that need a GPU refuse to start on a CPU-only machine unless ``--force`` is
given; missing datasets are reported with the path that was tried.

Distributed: the same command under ``torchrun`` (``--nproc-per-node``, multi-node
rendezvous) trains with DistributedDataParallel, gloo on CPUs and nccl on GPUs; see
``docs/training.md``.

Exit codes: 0 done; 2 bad arguments, configuration, data or checkpoint; 3 training stopped on
a non-finite loss or parameter (the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from ..data.errors import DataFormatError
from .checkpoint import CheckpointError
from .configs import TrainConfig, describe_configs, get_config, list_configs, load_config_file

EXIT_OK, EXIT_USAGE, EXIT_DIVERGED = 0, 2, 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m snnsim.train",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Distributed: torchrun --nproc-per-node 2 -m snnsim.train --config NAME",
    )
    p.add_argument("--config", help="configuration name (see --list) or a TrainConfig .json file")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue although the configuration changed (recorded in metrics)",
    )
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--stop-after", type=int, help="stop after this many epochs (resume later)")
    p.add_argument("--out", help="output directory (default runs/NAME)")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads per process (default: the config's)")
    p.add_argument("--mode", choices=("rate", "step"), help="DSR backward form")
    p.add_argument("--data-root", help="dataset directory (default $SNNSIM_DATA)")
    p.add_argument("--no-sync-bn", action="store_true", help="distributed: per-process BN stats")
    p.add_argument(
        "--no-tf32",
        action="store_true",
        help="CUDA: no TF32 in matmuls and convolutions (float32 results comparable to the CPU's)",
    )
    p.add_argument("--force", action="store_true", help="run a GPU config without a GPU")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def print_config_table(rows: list[dict[str, Any]]) -> None:
    """The ``--list`` table: rich on a terminal (when installed), plain columns otherwise
    (pipes, files)."""
    headers = ("name", "family", "dataset", "T", "epochs", "params", "GPU")
    cells = [
        (
            r["name"],
            r["family"],
            r["dataset"],
            str(r["T"]),
            str(r["epochs"]),
            f"{r['params']:,}",
            "yes" if r["gpu"] else "",
        )
        for r in rows
    ]
    try:
        if not sys.stdout.isatty():
            raise ImportError
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for c in cells:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
        return
    table = Table(title="snnsim training configurations")
    for h in headers:
        table.add_column(h, justify="right" if h in ("T", "epochs", "params") else "left")
    for c in cells:
        table.add_row(*c)
    Console().print(table)


def _resolve_config(a: argparse.Namespace) -> TrainConfig:
    if a.config.endswith(".json") or Path(a.config).is_file():
        cfg = load_config_file(a.config)
    else:
        cfg = get_config(a.config)
    kw: dict[str, Any] = {}
    for k in ("epochs", "seed", "device", "mode"):
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    if a.threads is not None:
        kw["num_threads"] = a.threads
    if a.data_root is not None:
        kw["data_root"] = a.data_root
    if a.no_sync_bn:
        kw["sync_bn"] = False
    return cfg.with_(**kw)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    p = _parser()
    a = p.parse_args(argv)
    if a.list:
        print_config_table(describe_configs(list_configs()))
        return EXIT_OK
    if not a.config:
        p.error("--config is required (or --list)")
    try:
        cfg = _resolve_config(a)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (
        cfg.requires_gpu
        and not torch.cuda.is_available()
        and not a.force
        and cfg.device in ("auto", "cuda")
    ):
        print(
            f"error: {cfg.name} needs a GPU (none found); use --force to run it on the CPU",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return _run(cfg, a)


def _run(cfg: TrainConfig, a: argparse.Namespace) -> int:
    from . import distributed
    from .trainer import ConfigMismatch, TrainingDiverged, train

    if a.no_tf32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        ctx = distributed.setup(cfg.device)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = a.out or f"runs/{cfg.name}"
    code = EXIT_OK
    finished = False
    try:
        train(
            cfg,
            out,
            resume=a.resume,
            progress=not a.no_progress,
            allow_config_change=a.allow_config_change,
            stop_after=a.stop_after,
        )
        finished = True
    except TrainingDiverged as exc:
        code = EXIT_DIVERGED
        if ctx.is_main:
            print(f"error: {exc}", file=sys.stderr)
    except (
        FileNotFoundError,
        DataFormatError,
        CheckpointError,
        ConfigMismatch,
        ValueError,
    ) as exc:
        code = EXIT_USAGE
        if ctx.is_main:
            print(f"error: {exc}", file=sys.stderr)
    finally:
        distributed.shutdown(ctx, synchronize=finished)
    return code


if __name__ == "__main__":
    sys.exit(main())
