"""DSR on MNIST-5k: snnsim against SpikingJelly 2.0's DSR port on identical work.

One process trains, per seed, snnsim's DSR CNN (conv32-BN-N-AP2-conv64-BN-N-AP2-FC-BN1d-N) and
the same network built from SpikingJelly's layers and ``DSRIFNode`` / ``DSRLIFNode`` (the port
of the public DSR code): the same initial weights (the port loads the snnsim model's initial
state dict), the same batches in the same order with the same augmentation (both run through
:class:`snnsim.train.trainer.Trainer` with the same seed), the same recipe (the config
``dsr-mnist5k-cnn-<neuron>-t<T>``: SGD 0.9, wd 5e-4 on every parameter thresholds included,
batch 64, per-iteration cosine, crop pad 2, lr 0.05 at T = 5 and 0.1 at T >= 10, 15 epochs).
The port is used as its documentation says: ``DSRIFNode(T, v_threshold=6.0, alpha=0.5,
v_threshold_training=True, v_threshold_lower_bound=0.01)`` (LIF: ``DSRLIFNode`` with the paper's
values at ``T``, the same as snnsim's ``dsr_defaults``), the image repeated over ``T`` steps,
logits = the mean over ``T`` of the head's output spikes.

Variants (``--variants``): ``snnsim`` (snnsim's defaults at the commit the row names),
``snnsim-rate`` (the rate form without the exact batch-norm term, the default before it was
switched on), ``snnsim-exact-bn`` (the rate form with ``exact_bn_grad``, today's default),
``snnsim-step`` (the per-step backward, the public code's; with it, and for IF with the
default, the gradients equal the port's to float rounding, ``tests/train/test_dsr_peer.py``),
``port``, ``port-weighted-readout`` (LIF: the port with the lambda-weighted readout).

Rows merge into ``benches/results/dsr_vs_spikingjelly.json`` by (variant, neuron, T, seed,
epochs); each run checkpoints every epoch under ``benches/results/_bench_models/dsr_vs_sj/``
and resumes from there, and the trained snnsim models stay there for
``benches/quantization.py --trained``::

    python benches/dsr_vs_spikingjelly.py --T 5 --neurons if --seeds 0 1 2 3 4 \
        --variants snnsim port
    python benches/dsr_vs_spikingjelly.py --speed --T 5 20 --neurons if lif

``sec_per_epoch`` of training rows is the wall time of the training part of an epoch while
other work may share the machine (``load_avg`` is recorded); ``--speed`` times one-epoch runs
of snnsim and the port interleaved in one process (median of ``--repeats``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from snnsim.nn.dsr import DSRNeuronConfig  # noqa: E402
from snnsim.train.checkpoint import write_json_atomic  # noqa: E402
from snnsim.train.configs import TrainConfig, get_config  # noqa: E402
from snnsim.train.trainer import Trainer  # noqa: E402

RESULTS = ROOT / "benches" / "results"
OUT = RESULTS / "dsr_vs_spikingjelly.json"
MODELS = RESULTS / "_bench_models" / "dsr_vs_sj"
KEYS = ("variant", "neuron", "T", "seed", "epochs")
SNNSIM_VARIANTS: dict[str, dict[str, Any]] = {
    "snnsim": {},
    "snnsim-rate": {"mode": "rate", "exact_bn_grad": False},
    "snnsim-exact-bn": {"mode": "rate", "exact_bn_grad": True},
    "snnsim-step": {"mode": "step", "exact_bn_grad": False},
}
PORT_VARIANTS: dict[str, dict[str, Any]] = {
    "port": {"readout": "mean"},
    "port-weighted-readout": {"readout": "weighted"},
}
VARIANTS = list(SNNSIM_VARIANTS) + list(PORT_VARIANTS)


# ---------------------------------------------------------------------- the port's network
class PortNet(nn.Module):
    """The MNIST CNN built from SpikingJelly layers (multi-step mode) and its DSR port's
    neurons. Input ``[B, 1, 28, 28]`` is repeated over ``T`` steps; logits: the mean over
    ``T`` of the head's outputs (``readout="mean"``) or the port's lambda-weighted rate
    (``"weighted"``, LIF). Parameter names match snnsim's ``dsr-mnist-cnn`` (``body.<i>``)
    except the thresholds (``v_threshold``)."""

    def __init__(self, neuron: str, T: int, cfg: DSRNeuronConfig, readout: str = "mean") -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer
        from spikingjelly.activation_based.neuron import DSRIFNode, DSRLIFNode

        if readout not in ("mean", "weighted"):
            raise ValueError(f"PortNet: readout must be 'mean' or 'weighted', got {readout!r}")

        def node() -> nn.Module:
            if neuron == "if":
                return DSRIFNode(
                    T,
                    v_threshold=float(cfg.theta0),
                    alpha=float(cfg.alpha),
                    v_threshold_training=True,
                    v_threshold_lower_bound=float(cfg.bound),
                )
            return DSRLIFNode(
                T,
                v_threshold=float(cfg.theta0),
                tau=float(cfg.tau),
                delta_t=float(cfg.dt),
                alpha=float(cfg.alpha),
                v_threshold_training=True,
                v_threshold_lower_bound=float(cfg.bound),
            )

        self.body = nn.Sequential(
            layer.Conv2d(1, 32, 3, padding=1, bias=False),
            layer.BatchNorm2d(32),
            node(),
            layer.AvgPool2d(2),
            layer.Conv2d(32, 64, 3, padding=1, bias=False),
            layer.BatchNorm2d(64),
            node(),
            layer.AvgPool2d(2),
            layer.Flatten(),
            layer.Linear(64 * 7 * 7, 10, bias=False),
            layer.BatchNorm1d(10),
            node(),
        )
        functional.set_step_mode(self.body, "m")
        self._reset = functional.reset_net
        self.neuron, self.T, self.cfg, self.readout = neuron, T, cfg, readout

    def forward(self, x: Tensor) -> Tensor:
        xs = x.unsqueeze(0).repeat((self.T,) + (1,) * x.ndim)
        out = self.body(xs)
        self._reset(self.body)
        if self.readout == "mean" or self.neuron == "if":
            return out.mean(0)
        from spikingjelly.activation_based.neuron import DSRLIFNode

        return DSRLIFNode.weight_rate_spikes(out, self.cfg.tau, self.cfg.dt)

    def load_snnsim_state(self, state: dict[str, Tensor]) -> None:
        """Load the state dict of a snnsim ``dsr-mnist-cnn`` (the same initial weights)."""
        self.load_state_dict({k.replace(".theta", ".v_threshold"): v for k, v in state.items()})

    def thresholds(self) -> dict[str, float]:
        """Effective thresholds (the port clamps to the lower bound in its forward)."""
        return {
            f"body.{i}": max(float(m.v_threshold.detach()), float(m.v_threshold_lower_bound))
            for i, m in enumerate(self.body)
            if hasattr(m, "v_threshold")
        }


# ---------------------------------------------------------------------- one run
def config(
    neuron: str, T: int, seed: int, epochs: int, threads: int, eval_every: int | None = None
) -> TrainConfig:
    """The recipe of ``dsr-mnist5k-cnn-<neuron>-t<T>`` for one run (evaluation only after the
    last epoch unless ``eval_every`` says otherwise; it does not change what is trained).
    A ``T`` without a config of its own (tests) takes the T = 5 recipe."""
    try:
        base = get_config(f"dsr-mnist5k-cnn-{neuron}-t{T}")
    except ValueError:
        base = get_config(f"dsr-mnist5k-cnn-{neuron}-t5").with_(T=T)
    return base.with_(
        seed=seed,
        epochs=epochs,
        num_threads=threads,
        device="cpu",
        eval_every=epochs if eval_every is None else eval_every,
    )


def commit() -> str | None:
    """The git commit of the tree the run used (``+`` when it had uncommitted changes);
    ``$SNNSIM_SOURCE_COMMIT`` names it for a copy exported with ``git archive``."""
    import subprocess

    if os.environ.get("SNNSIM_SOURCE_COMMIT"):
        return os.environ["SNNSIM_SOURCE_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def initial_snnsim(cfg: TrainConfig, **over: Any) -> nn.Module:
    """The snnsim model exactly as :class:`Trainer` builds it for ``cfg`` (same RNG use)."""
    from snnsim.models import create_model

    torch.manual_seed(cfg.seed)
    kw = dict(cfg.model_kwargs)
    model = create_model(cfg.model, neuron=cfg.neuron, T=cfg.T, mode=over.get("mode", cfg.mode))
    if "channels_last" in over:
        model.channels_last = bool(over["channels_last"])
    if "exact_bn_grad" in over:
        model.exact_bn_grad = bool(over["exact_bn_grad"])
    assert not kw, "the MNIST CNN configs carry no model kwargs"
    return model


def build(variant: str, cfg: TrainConfig, **over: Any) -> nn.Module:
    """The model of ``variant`` with the seed's initial weights (identical for all variants);
    ``over``: snnsim model settings that replace the variant's (``channels_last``...)."""
    if variant in SNNSIM_VARIANTS:
        return initial_snnsim(cfg, **{**SNNSIM_VARIANTS[variant], **over})
    ref = initial_snnsim(cfg)
    net = PortNet(cfg.neuron, cfg.T, ref.cfg, **PORT_VARIANTS[variant])
    net.load_snnsim_state(ref.state_dict())
    return net


def firing_rates(model: nn.Module, x: Tensor, T: int) -> list[float]:
    """Spikes per neuron per step of each neuron layer on ``x`` (eval mode)."""
    from spikingjelly.activation_based.neuron import DSRIFNode, DSRLIFNode

    from snnsim.nn.layers import DSRNeuron

    rates: list[float] = []

    def hook(m: nn.Module, _inp: Any, out: Any) -> None:
        steps = out.steps if hasattr(out, "steps") else out
        rates.append(float((steps != 0).float().mean()))

    hs = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (DSRNeuron, DSRIFNode, DSRLIFNode))
    ]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hs:
            h.remove()
    return rates


def model_dir(variant: str, cfg: TrainConfig) -> Path:
    """Where the run of ``variant`` on ``cfg`` keeps its checkpoint (the trained model)."""
    return MODELS / f"{variant}-{cfg.neuron}-t{cfg.T}-s{cfg.seed}-e{cfg.epochs}"


def run_one(
    variant: str,
    cfg: TrainConfig,
    keep: bool = True,
    datasets: tuple[Any, Any] | None = None,
    **over: Any,
) -> tuple[dict[str, Any], nn.Module]:
    """Train ``variant`` on ``cfg`` (resuming from its checkpoint directory) and return its
    row and the trained model. ``keep``: write checkpoints (and the trained model) under
    ``MODELS``; ``datasets``: ``(train, test)`` in place of the config's (tests); ``over``: as
    :func:`build`."""
    out_dir = model_dir(variant, cfg) if keep else None
    model = build(variant, cfg, **over)
    tr = Trainer(cfg, out_dir=out_dir, progress=False, model=model, datasets=datasets)
    resumed = tr.resume()
    load = os.getloadavg()[0]
    t0 = time.time()
    tag = f"[{variant} {cfg.neuron} T={cfg.T} seed={cfg.seed}]"
    hist = tr.fit(log=lambda s: print(tag, s, flush=True))
    xte = tr._prep(tr.test_batches.tensors[0][:500], False, None)  # type: ignore[index]
    secs = [h["sec_train"] for h in hist]
    thr = model.thresholds()  # type: ignore[operator]
    row = {
        "variant": variant,
        "neuron": cfg.neuron,
        "T": cfg.T,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "acc": hist[-1]["test_acc"],
        "train_acc": hist[-1]["train_acc"],
        "acc_per_epoch": [h["test_acc"] for h in hist if h["test_acc"] is not None],
        "sec_per_epoch": statistics.median(secs),
        "cpu_sec_per_epoch": statistics.median(h["cpu_sec_train"] for h in hist),
        "thresholds": thr,
        "firing_rates": firing_rates(model, xte, cfg.T),
        "resumed": resumed,
        "wall_s": round(time.time() - t0, 1),
        "load_avg": load,
        "threads": torch.get_num_threads(),
        "commit": commit(),
        "model_dir": None if out_dir is None else str(out_dir.relative_to(ROOT)),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return row, model


# ---------------------------------------------------------------------- summary
def _ci95(xs: list[float]) -> float | None:
    """Half-width of the t-based 95 % interval of the mean (None below 2 values)."""
    if len(xs) < 2:
        return None
    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
    return t.get(len(xs) - 1, 2.0) * statistics.stdev(xs) / math.sqrt(len(xs))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (neuron, T, variant): mean, std and seeds; against the port on the seeds both have:
    the paired mean difference with its 95 % interval and the ratio of seconds per epoch."""
    groups: dict[tuple[str, int, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["neuron"], r["T"], r["variant"]), {})[r["seed"]] = r
    out = []
    for (neuron, T, variant), by_seed in sorted(groups.items()):
        accs = [by_seed[s]["acc"] for s in sorted(by_seed)]
        s: dict[str, Any] = {
            "neuron": neuron,
            "T": T,
            "variant": variant,
            "seeds": sorted(by_seed),
            "mean_acc": statistics.fmean(accs),
            "std_acc": statistics.stdev(accs) if len(accs) > 1 else None,
            "median_sec_per_epoch": statistics.median(r["sec_per_epoch"] for r in by_seed.values()),
        }
        port = groups.get((neuron, T, "port"))
        if port is not None and variant != "port":
            common = sorted(set(by_seed) & set(port))
            if common:
                d = [by_seed[k]["acc"] - port[k]["acc"] for k in common]
                s["vs_port"] = {
                    "seeds": common,
                    "mean_diff": statistics.fmean(d),
                    "ci95": _ci95(d),
                    "port_mean_acc": statistics.fmean(port[k]["acc"] for k in common),
                    "mean_acc_same_seeds": statistics.fmean(by_seed[k]["acc"] for k in common),
                    "sec_ratio_median": statistics.median(
                        by_seed[k]["sec_per_epoch"] / port[k]["sec_per_epoch"] for k in common
                    ),
                }
        out.append(s)
    return out


def speed(Ts: list[int], neurons: list[str], repeats: int, threads: int) -> list[dict[str, Any]]:
    """Seconds of one training epoch, snnsim (defaults) and the port interleaved, median of
    ``repeats``; load average before each."""
    rows = []
    for T in Ts:
        for neuron in neurons:
            cfg = config(neuron, T, 0, 1, threads)
            runs: dict[str, list[float]] = {"snnsim": [], "port": []}
            loads = []
            for _ in range(repeats):
                for variant in runs:
                    loads.append(os.getloadavg()[0])
                    tr = Trainer(cfg, progress=False, model=build(variant, cfg))
                    runs[variant].append(tr.train_epoch().seconds)
            med = {k: statistics.median(v) for k, v in runs.items()}
            row = {
                "neuron": neuron,
                "T": T,
                "snnsim_sec": med["snnsim"],
                "port_sec": med["port"],
                "ratio": med["snnsim"] / med["port"],
                "runs": runs,
                "load_avg": loads,
                "threads": threads,
            }
            print("[speed]", row, flush=True)
            rows.append(row)
    return rows


def _load() -> dict[str, Any]:
    import json

    return json.loads(OUT.read_text()) if OUT.exists() else {}


def _save(doc: dict[str, Any]) -> None:
    doc["description"] = (__doc__ or "").split("\n\n")[0]
    doc["summary"] = summarise(doc.get("rows", []))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(OUT, doc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--T", type=int, nargs="+", default=[5])
    p.add_argument("--neurons", nargs="+", default=["if"], choices=["if", "lif"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--variants", nargs="+", default=["snnsim", "port"], choices=VARIANTS)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--eval-every", type=int, default=None, help="evaluate every k epochs (default: last only)"
    )
    p.add_argument("--redo", action="store_true", help="retrain rows already in the JSON")
    p.add_argument("--speed", action="store_true", help="only the interleaved speed rows")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    doc = _load()
    doc.setdefault("rows", [])
    command = " ".join(["python", "benches/dsr_vs_spikingjelly.py"] + sys.argv[1:])
    if a.speed:
        new = speed(a.T, a.neurons, a.repeats, a.threads)
        for r in new:
            r["command"] = command
        done = {(r["neuron"], r["T"]) for r in new}
        prev = doc.get("speed", {})
        old = [r for r in prev.get("rows", []) if (r["neuron"], r["T"]) not in done]
        for r in old:
            r.setdefault("command", prev.get("command"))
        doc["speed"] = {
            "description": "wall seconds of one training epoch (63 batches of 64, no evaluation), "
            "snnsim's defaults and the port interleaved in one process, median of repeats; rows "
            "merge by (neuron, T), each with its command",
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
            "rows": sorted(old + new, key=lambda r: (r["T"], r["neuron"])),
        }
        _save(doc)
        return 0
    for T in a.T:
        for neuron in a.neurons:
            for seed in a.seeds:
                for variant in a.variants:
                    if variant == "port-weighted-readout" and neuron == "if":
                        continue  # the IF readout is the plain mean either way
                    key = (variant, neuron, T, seed, a.epochs)
                    done = [r for r in doc["rows"] if tuple(r.get(k) for k in KEYS) == key]
                    if done and not a.redo:
                        print(f"[skip] {key}: acc {done[0]['acc']}", flush=True)
                        continue
                    cfg = config(neuron, T, seed, a.epochs, a.threads, a.eval_every)
                    row, _ = run_one(variant, cfg)
                    row["command"] = command
                    doc = _load()  # another process may have added rows meanwhile
                    doc.setdefault("rows", [])
                    doc["rows"] = [
                        r for r in doc["rows"] if tuple(r.get(k) for k in KEYS) != key
                    ] + [row]
                    doc["rows"].sort(key=lambda r: tuple(str(r.get(k)) for k in KEYS))
                    _save(doc)
                    print(f"[row] {key}: acc {row['acc']}", flush=True)
    for s in summarise(doc["rows"]):
        print(s, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
