"""Accuracy of exported networks by precision on MNIST-5k (CPU): models trained briefly with the
project's recipes, exported with ``snnsim.export`` as float32, int16, int8 and int4 (per-layer
weight scales; int modes also per output channel), run in the Rust engine on the 1000 test
images. Rows with ``qat`` false: post-training quantisation only; rows with ``qat`` true: the
same trained model fine-tuned for ``qat_epochs`` epoch(s) with fake-quantised weights on the
export's grid (``snnsim.qat.qat_finetune``, int8 and int4, per layer and per channel) before the
export; ``acc_before`` is the post-training-quantisation accuracy of that model in that mode.

Models: ``dsr-mlp`` (784-800-10, IF and LIF, T=5, 3 epochs), ``dsr-mnist-cnn`` (IF, T=5,
2 epochs), ``dspike-mnist-cnn`` (T=4, Adam 2e-3, 3 epochs). Rows: model, neuron, T, epochs,
mode, per_channel, qat, seed, acc (engine), torch_acc (the trained torch model), agree (fraction
of test predictions equal to the torch model's). Rows merge into the JSON by (model, neuron,
mode, per_channel, qat, seed)::

    python benches/quantization.py              # seed 0, all models (a few minutes on 2 cores)
    python benches/quantization.py --seeds 0 1 --models dsr-mlp-if
    python benches/quantization.py --qat --seeds 0 1 2   # QAT rows (DSR MLP IF and CNN by default)

Table S4 analogue (``--trained``): the fully trained MNIST CNNs of the DSR comparison
(``benches/dsr_vs_spikingjelly.py``, variant ``snnsim``, 15 epochs; trained here the same way
when a checkpoint is missing), every precision post-training, and after one epoch of
quantisation-aware fine-tuning for the integer modes that miss their target (int8 loses at
most 0.1 points against the float32 torch model, int4 at most 0.5; ``--qat-all``: every
integer mode; the fine-tuning sees its inputs on the export's 8-bit input grid,
``qat_input_grid``). The integer modes' static input is the export's default for MNIST's
non-negative pixels, unsigned 8-bit with step 1/255 (``input: "uint8"``, lossless for the
pixels k/255); ``--signed-input`` exports the signed int8 input of step 1/127 instead
(``input: "int8"``, what every export used before the unsigned input existed). Rows with mode
``float32-8bit-input`` (``float32-int8-input`` in the older signed rows) run the float32 export
on the test images rounded to that grid: the accuracy the integer modes' input alone allows
(``--floor-only``: just those rows). Rows carry ``source: "trained"`` and merge by (model,
neuron, T, epochs, mode, per_channel, qat, seed, input, qat_epochs)::

    python benches/quantization.py --trained --neurons if lif --T 5 20 --seeds 0 1 2
    python benches/quantization.py --trained --neurons if lif --T 5 20 --seeds 0 1 2 --signed-input
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import snnsim  # noqa: E402
from snnsim.data import load_mnist5k_split  # noqa: E402
from snnsim.exporter import export  # noqa: E402
from snnsim.inputs import quantize  # noqa: E402
from snnsim.models import create_model  # noqa: E402
from snnsim.qat import qat_finetune  # noqa: E402
from snnsim.train.checkpoint import write_json_atomic  # noqa: E402
from snnsim.train.configs import get_config  # noqa: E402
from snnsim.train.trainer import Trainer  # noqa: E402

OUT = ROOT / "benches" / "results" / "quantization.json"
MODELS = {
    # name: (config, epochs, neuron, T, model kwargs, trainer overrides)
    "dsr-mlp-if": ("dsr-mnist5k-mlp-if-t5", 3, "if", 5, {}, {}),
    "dsr-mlp-lif": ("dsr-mnist5k-mlp-lif-t5", 3, "lif", 5, {}, {}),
    "dsr-mnist-cnn-if": ("dsr-mnist5k-cnn-if-t5", 2, "if", 5, {}, {}),
    "dspike-mnist-cnn": (
        "dsr-mnist5k-cnn-if-t5",
        3,
        "dspike",
        4,
        {},
        {"optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0, "crop_padding": 0},
    ),
}
QAT_MODELS = ["dsr-mlp-if", "dsr-mnist-cnn-if"]
QAT_MODES = [("int8", False), ("int8", True), ("int4", False), ("int4", True)]
QAT_LR_FACTOR = 0.1  # fine-tuning lr = the recipe's lr / 10 (cosine to 0)
MODES = [
    ("float32", False),
    ("int16", False),
    ("int8", False),
    ("int8", True),
    ("int4", False),
    ("int4", True),
]


def train(key: str, seed: int, threads: int) -> tuple[torch.nn.Module, int, int]:
    model, epochs, T, _ = train_cfg(key, seed, threads)
    return model, epochs, T


def train_cfg(key: str, seed: int, threads: int) -> tuple[torch.nn.Module, int, int, Any]:
    config, epochs, neuron, T, kw, over = MODELS[key]
    cfg = get_config(config).with_(
        epochs=epochs, seed=seed, num_threads=threads, eval_every=epochs, **over
    )
    model = None
    if neuron == "dspike":
        torch.manual_seed(seed)
        model = create_model("dspike-mnist-cnn", T=T, **kw)
    tr = Trainer(cfg, progress=False, model=model)
    tr.fit(log=None)
    return tr.model.eval(), epochs, T, cfg


def _acc(model: torch.nn.Module, mode: str, per_channel: bool, calib: Any, xte: Any, T: int) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "net.snn.safetensors"
        export(
            model, path, mode, input_shape=(1, 28, 28), per_channel=per_channel, calibration=calib
        )
        return snnsim.run(str(path), xte, steps=T).prediction


def run_qat(
    args: argparse.Namespace, rows: list[dict[str, Any]], xtr: Any, ytr: Any, xte: Any, yte: Any
) -> list[dict[str, Any]]:
    import copy

    calib = xtr[:512]
    keys = (
        [k for k in args.models if k in QAT_MODELS] if args.models != list(MODELS) else QAT_MODELS
    )
    for seed in args.seeds:
        for key in keys:
            t0 = time.time()
            base, epochs, T, cfg = train_cfg(key, seed, args.threads)
            t_train = time.time() - t0
            with torch.no_grad():
                logits = torch.cat(
                    [base(torch.from_numpy(xte[i : i + 250])) for i in range(0, len(yte), 250)]
                )
            want = logits.argmax(1).numpy()
            torch_acc = float((want == yte).mean())
            neuron = MODELS[key][2]
            for mode, per_channel in QAT_MODES:
                before = float((_acc(base, mode, per_channel, calib, xte, T) == yte).mean())
                t1 = time.time()
                model = qat_finetune(
                    copy.deepcopy(base),
                    (xtr, ytr),
                    mode,
                    epochs=args.qat_epochs,
                    lr=cfg.lr * QAT_LR_FACTOR,
                    per_channel=per_channel,
                    optimizer=cfg.optimizer,
                    momentum=cfg.momentum,
                    batch_size=cfg.batch_size,
                    crop_padding=cfg.crop_padding,
                    seed=seed,
                )
                t_qat = time.time() - t1
                pred = _acc(model, mode, per_channel, calib, xte, T)
                row = {
                    "model": key.rsplit("-", 1)[0] if neuron != "dspike" else key,
                    "neuron": neuron,
                    "T": T,
                    "epochs": epochs,
                    "mode": mode,
                    "per_channel": per_channel,
                    "qat": True,
                    "seed": seed,
                    "acc": float((pred == yte).mean()),
                    "torch_acc": torch_acc,
                    "agree": float((pred == want).mean()),
                    "train_s": round(t_train, 1),
                    "acc_before": before,
                    "qat_epochs": args.qat_epochs,
                    "qat_lr": cfg.lr * QAT_LR_FACTOR,
                    "qat_s": round(t_qat, 1),
                }
                rows = _merge(rows, row)
                print(json.dumps(row), flush=True)
    return rows


KEY = (
    "model",
    "neuron",
    "T",
    "epochs",
    "mode",
    "per_channel",
    "qat",
    "seed",
    "input",
    "qat_epochs",
)
#: Key values of rows written before the field existed (every export's input was signed int8).
KEY_DEFAULTS = {"input": "int8"}
TARGET_LOSS = {"int8": 0.001, "int4": 0.005, "int16": 0.001}  # accuracy lost vs float32 torch


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(r.get(k, KEY_DEFAULTS.get(k)) for k in KEY)


def _merge(rows: list[dict[str, Any]], row: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rows if _key(r) != _key(row)] + [row]


def _harness() -> Any:
    """``benches/dsr_vs_spikingjelly.py`` (its trained models and how it trains them)."""
    import importlib.util

    path = ROOT / "benches" / "dsr_vs_spikingjelly.py"
    spec = importlib.util.spec_from_file_location("dsr_vs_spikingjelly", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def trained_cnn(neuron: str, T: int, seed: int, threads: int) -> tuple[torch.nn.Module, Any]:
    """The comparison's fully trained snnsim MNIST CNN (variant ``snnsim``, 15 epochs), loaded
    from its checkpoint, or trained now the same way (and kept) when there is none."""
    h = _harness()
    cfg = h.config(neuron, T, seed, 15, threads)
    ckpt = h.model_dir("snnsim", cfg) / "checkpoint.pt"
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=True)
        if int(st["epoch"]) >= cfg.epochs:
            model = h.build("snnsim", cfg)
            model.load_state_dict(st["model"])
            return model.eval(), cfg
    _, model = h.run_one("snnsim", cfg)
    return model.eval(), cfg


#: Mode name of the rows that run the float32 export on the test input rounded to the integer
#: modes' 8-bit input grid (``float32-int8-input`` in rows of the signed input before).
INPUT_FLOOR = "float32-8bit-input"


def _scores(pred: Any, yte: Any, want: Any, torch_acc: float) -> dict[str, float]:
    acc = float((pred == yte).mean())
    return {"acc": acc, "agree": float((pred == want).mean()), "loss_vs_float": torch_acc - acc}


def _engine_pred(
    model: Any,
    mode: str,
    per_channel: bool,
    calib: Any,
    xte: Any,
    T: int,
    signed: bool | None = None,
) -> Any:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "net.snn.safetensors"
        g = export(
            model,
            path,
            mode,
            input_shape=(1, 28, 28),
            per_channel=per_channel,
            calibration=calib,
            input_signed=signed,
        )
        if mode != "float32":
            assert g.input_signed is (bool(signed) if signed is not None else False)
        return snnsim.run(str(path), xte, steps=T).prediction


def run_trained(
    args: argparse.Namespace, rows: list[dict[str, Any]], xtr: Any, ytr: Any, xte: Any, yte: Any
) -> list[dict[str, Any]]:
    """Table S4 analogue: post-training rows for every precision of each fully trained CNN, and
    QAT rows for the integer modes that miss their target (all with ``--qat-all``)."""
    import copy

    calib = xtr[:512]
    # the integer modes' static input: the export's default for non-negative pixels (unsigned,
    # max/255), or with --signed-input the signed int8 input of max/127
    signed = bool(args.signed_input)
    in_scale = float(abs(calib).max()) / (127.0 if signed else 255.0)
    in_name = "int8" if signed else "uint8"
    for seed in args.seeds:
        for T in args.T:
            for neuron in args.neurons:
                base, cfg = trained_cnn(neuron, T, seed, args.threads)
                with torch.no_grad():
                    logits = torch.cat(
                        [base(torch.from_numpy(xte[i : i + 250])) for i in range(0, len(yte), 250)]
                    )
                want = logits.argmax(1).numpy()
                torch_acc = float((want == yte).mean())
                common = {
                    "model": "dsr-mnist-cnn",
                    "neuron": neuron,
                    "T": T,
                    "epochs": cfg.epochs,
                    "seed": seed,
                    "torch_acc": torch_acc,
                    "source": "trained",
                    "input": in_name,
                    "input_scale": in_scale,
                    "command": " ".join(["python", "benches/quantization.py"] + sys.argv[1:]),
                }
                # The floor the 8-bit input alone sets: the float32 export on rounded input.
                xq = (quantize(xte, in_scale, signed) * in_scale).astype(np.float32)
                pred = _engine_pred(base, "float32", False, calib, xq, T)
                row = {**common, "mode": INPUT_FLOOR, "per_channel": False, "qat": False}
                row.update(_scores(pred, yte, want, torch_acc))
                rows = _merge(rows, row)
                print(json.dumps(row), flush=True)
                for mode, per_channel in MODES if not args.floor_only else []:
                    t0 = time.time()
                    pred = _engine_pred(base, mode, per_channel, calib, xte, T, signed)
                    acc = float((pred == yte).mean())
                    row = {
                        **common,
                        "mode": mode,
                        "per_channel": per_channel,
                        "qat": False,
                        "acc": acc,
                        "agree": float((pred == want).mean()),
                        "loss_vs_float": torch_acc - acc,
                        "engine_s": round(time.time() - t0, 1),
                    }
                    rows = _merge(rows, row)
                    print(json.dumps(row), flush=True)
                    target = TARGET_LOSS.get(mode)
                    if target is None or (not args.qat_all and torch_acc - acc <= target + 1e-9):
                        continue
                    t1 = time.time()
                    tuned = qat_finetune(
                        copy.deepcopy(base),
                        (xtr, ytr),
                        mode,  # type: ignore[arg-type]
                        epochs=args.qat_epochs,
                        lr=cfg.lr * QAT_LR_FACTOR,
                        per_channel=per_channel,
                        optimizer=cfg.optimizer,  # type: ignore[arg-type]
                        momentum=cfg.momentum,
                        batch_size=cfg.batch_size,
                        crop_padding=cfg.crop_padding,
                        input_scale=in_scale,
                        input_signed=signed,
                        seed=seed,
                    )
                    t_qat = time.time() - t1
                    with torch.no_grad():
                        tl = torch.cat(
                            [
                                tuned(torch.from_numpy(xte[i : i + 250]))
                                for i in range(0, len(yte), 250)
                            ]
                        )
                    pred = _engine_pred(tuned, mode, per_channel, calib, xte, T, signed)
                    qrow = {
                        **common,
                        "mode": mode,
                        "per_channel": per_channel,
                        "qat": True,
                        "acc": float((pred == yte).mean()),
                        "agree": float((pred == want).mean()),
                        "agree_tuned_torch": float((pred == tl.argmax(1).numpy()).mean()),
                        "acc_before": acc,
                        "loss_vs_float": torch_acc - float((pred == yte).mean()),
                        "qat_epochs": args.qat_epochs,
                        "qat_lr": cfg.lr * QAT_LR_FACTOR,
                        "qat_input_grid": True,
                        "qat_s": round(t_qat, 1),
                    }
                    rows = _merge(rows, qrow)
                    print(json.dumps(qrow), flush=True)
                _write(rows, yte)
    return rows


def _write(rows: list[dict[str, Any]], yte: Any) -> None:
    rows.sort(key=lambda r: (str(r.get("source")), bool(r.get("qat")), r["seed"]))
    doc = {
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "n_test": int(len(yte)),
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(OUT, doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--qat", action="store_true", help="only the QAT rows (int8/int4 after fine-tuning)"
    )
    ap.add_argument("--qat-epochs", type=int, default=1)
    ap.add_argument(
        "--trained", action="store_true", help="Table S4 analogue on the fully trained CNNs"
    )
    ap.add_argument("--neurons", nargs="+", default=["if", "lif"], choices=["if", "lif"])
    ap.add_argument("--T", type=int, nargs="+", default=[5, 20])
    ap.add_argument(
        "--qat-all", action="store_true", help="--trained: QAT every integer mode, not only misses"
    )
    ap.add_argument(
        "--floor-only",
        action="store_true",
        help="--trained: only the float32 export on 8-bit-rounded input (the input's floor)",
    )
    ap.add_argument(
        "--signed-input",
        action="store_true",
        help="--trained: export the signed int8 input (1/127) instead of the unsigned (1/255)",
    )
    args = ap.parse_args(argv)

    xte, yte = load_mnist5k_split("test")
    xtr, ytr = load_mnist5k_split("train")
    calib = xtr[:512]
    doc: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    rows: list[dict[str, Any]] = doc.get("rows", [])
    t_start = time.time()
    if args.trained:
        torch.set_num_threads(args.threads)
        rows = run_trained(args, rows, xtr, ytr, xte, yte)
        print(table(rows))
        return 0
    if args.qat:
        rows = run_qat(args, rows, xtr, ytr, xte, yte)
    for seed in args.seeds if not args.qat and not args.trained else []:
        for key in args.models:
            t0 = time.time()
            model, epochs, T = train(key, seed, args.threads)
            t_train = time.time() - t0
            with torch.no_grad():
                logits = torch.cat(
                    [model(torch.from_numpy(xte[i : i + 250])) for i in range(0, len(yte), 250)]
                )
            want = logits.argmax(1).numpy()
            torch_acc = float((want == yte).mean())
            neuron = MODELS[key][2]
            for mode, per_channel in MODES:
                with tempfile.TemporaryDirectory() as d:
                    path = Path(d) / "net.snn.safetensors"
                    export(
                        model,
                        path,
                        mode,
                        input_shape=(1, 28, 28),
                        per_channel=per_channel,
                        calibration=calib,
                    )
                    res = snnsim.run(str(path), xte, steps=T)
                row = {
                    "model": key.rsplit("-", 1)[0] if neuron != "dspike" else key,
                    "neuron": neuron,
                    "T": T,
                    "epochs": epochs,
                    "mode": mode,
                    "per_channel": per_channel,
                    "qat": False,
                    "seed": seed,
                    "acc": float((res.prediction == yte).mean()),
                    "torch_acc": torch_acc,
                    "agree": float((res.prediction == want).mean()),
                    "train_s": round(t_train, 1),
                }
                rows = _merge(rows, row)
                print(json.dumps(row), flush=True)
    doc = {
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "n_test": int(len(yte)),
        "rows": rows,
        "wall_s_last_run": round(time.time() - t_start, 1),
    }
    rows.sort(key=lambda r: (bool(r.get("qat")), r["seed"]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(OUT, doc)
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | neuron | T | mode | per-channel | qat | seed | acc | acc before QAT | torch acc "
        "| agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['neuron']} | {r['T']} | {r['mode']} | {r['per_channel']} "
            f"| {r['qat']} | "
            f"{r['seed']} | {100 * r['acc']:.1f} | "
            f"{'' if r.get('acc_before') is None else format(100 * r['acc_before'], '.1f')} | "
            f"{100 * r['torch_acc']:.1f} | {100 * r['agree']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
