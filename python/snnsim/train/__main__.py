"""``python -m snnsim.train --config NAME [--resume] [--epochs N] [--out DIR]``.

Trains a named configuration (``--list`` shows them) into ``DIR`` (default
``runs/NAME``): ``metrics.json`` and ``checkpoint.pt`` after every epoch. ``--resume`` continues
from ``DIR/checkpoint.pt``. Paper rows that need a GPU refuse to start on a CPU-only machine
unless ``--force`` is given; missing datasets are reported with the path that was tried.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..data.errors import DataFormatError
from .configs import get_config, list_configs
from .trainer import train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m snnsim.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="configuration name (see --list)")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--out", help="output directory (default runs/NAME)")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the config's, 2)")
    p.add_argument("--mode", choices=("rate", "step"), help="backward form")
    p.add_argument("--data-root", help="dataset directory (default $SNNSIM_DATA)")
    p.add_argument("--force", action="store_true", help="run a GPU config without a GPU")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if a.list:
        for name in list_configs():
            print(name)
        return 0
    if not a.config:
        p.error("--config is required (or --list)")
    try:
        cfg = get_config(a.config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kw = {}
    for k in ("epochs", "seed", "device", "mode"):
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    if a.threads is not None:
        kw["num_threads"] = a.threads
    if a.data_root is not None:
        kw["data_root"] = a.data_root
    cfg = cfg.with_(**kw)
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
        return 2
    out = a.out or f"runs/{cfg.name}"
    try:
        train(cfg, out, resume=a.resume, progress=not a.no_progress)
    except (FileNotFoundError, DataFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
