"""Accuracy of exported networks by precision on MNIST-5k (CPU): models trained briefly with the
project's recipes, exported with ``snnsim.export`` as float32, int16, int8 and int4 (per-layer
weight scales; int modes also per output channel), run in the Rust engine on the 1000 test
images. No quantisation-aware fine-tuning (``qat`` false): post-training quantisation only.

Models: ``dsr-mlp`` (784-800-10, IF and LIF, T=5, 3 epochs), ``dsr-mnist-cnn`` (IF, T=5,
2 epochs), ``dspike-mnist-cnn`` (T=4, Adam 2e-3, 3 epochs). Rows: model, neuron, T, epochs,
mode, per_channel, qat, seed, acc (engine), torch_acc (the trained torch model), agree (fraction
of test predictions equal to the torch model's). Rows merge into the JSON by (model, neuron,
mode, per_channel, qat, seed)::

    python benches/quantization.py              # seed 0, all models (a few minutes on 2 cores)
    python benches/quantization.py --seeds 0 1 --models dsr-mlp-if
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

import torch  # noqa: E402

import snnsim  # noqa: E402
from snnsim.data import load_mnist5k_split  # noqa: E402
from snnsim.exporter import export  # noqa: E402
from snnsim.models import create_model  # noqa: E402
from snnsim.train.checkpoint import write_json_atomic  # noqa: E402
from snnsim.train.configs import get_config  # noqa: E402
from snnsim.train.trainer import Trainer  # noqa: E402

OUT = ROOT / "benches" / "results" / "quantization.json"
MODELS = {
    # name: (config, epochs, neuron, T, model kwargs, trainer overrides)
    "dsr-mlp-if": ("dsr-mnist5k-mlp-if-t5", 3, "if", 5, {}, {}),
    "dsr-mlp-lif": ("dsr-mnist5k-mlp-lif-t5", 3, "lif", 5, {}, {}),
    "dsr-mnist-cnn-if": ("dsr-mnist5k-cnn-if-t5", 2, "if", 5, {}, {}),
    "dspike-mnist-cnn": ("dsr-mnist5k-cnn-if-t5", 3, "dspike", 4, {},
                         {"optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0, "crop_padding": 0}),
}
MODES = [("float32", False), ("int16", False), ("int8", False), ("int8", True), ("int4", False), ("int4", True)]


def train(key: str, seed: int, threads: int) -> tuple[torch.nn.Module, int, int]:
    config, epochs, neuron, T, kw, over = MODELS[key]
    cfg = get_config(config).with_(epochs=epochs, seed=seed, num_threads=threads, eval_every=epochs, **over)
    model = None
    if neuron == "dspike":
        torch.manual_seed(seed)
        model = create_model("dspike-mnist-cnn", T=T, **kw)
    tr = Trainer(cfg, progress=False, model=model)
    tr.fit(log=None)
    return tr.model.eval(), epochs, T


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    xte, yte = load_mnist5k_split("test")
    xtr, _ = load_mnist5k_split("train")
    calib = xtr[:512]
    doc: dict[str, Any] = json.loads(OUT.read_text()) if OUT.exists() else {}
    rows: list[dict[str, Any]] = doc.get("rows", [])
    t_start = time.time()
    for seed in args.seeds:
        for key in args.models:
            t0 = time.time()
            model, epochs, T = train(key, seed, args.threads)
            t_train = time.time() - t0
            with torch.no_grad():
                logits = torch.cat([model(torch.from_numpy(xte[i:i + 250])) for i in range(0, len(yte), 250)])
            want = logits.argmax(1).numpy()
            torch_acc = float((want == yte).mean())
            neuron = MODELS[key][2]
            for mode, per_channel in MODES:
                with tempfile.TemporaryDirectory() as d:
                    path = Path(d) / "net.snn.safetensors"
                    export(model, path, mode, input_shape=(1, 28, 28), per_channel=per_channel, calibration=calib)
                    res = snnsim.run(str(path), xte, steps=T)
                row = {"model": key.rsplit("-", 1)[0] if neuron != "dspike" else key, "neuron": neuron, "T": T,
                       "epochs": epochs, "mode": mode, "per_channel": per_channel, "qat": False, "seed": seed,
                       "acc": float((res.prediction == yte).mean()), "torch_acc": torch_acc,
                       "agree": float((res.prediction == want).mean()), "train_s": round(t_train, 1)}
                rows = [r for r in rows if tuple(r.get(k) for k in ("model", "neuron", "mode", "per_channel", "qat", "seed"))
                        != tuple(row[k] for k in ("model", "neuron", "mode", "per_channel", "qat", "seed"))]
                rows.append(row)
                print(json.dumps(row), flush=True)
    doc = {"description": __doc__.split("\n\n")[0].replace("\n", " "), "n_test": int(len(yte)), "rows": rows,
           "wall_s_last_run": round(time.time() - t_start, 1)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(OUT, doc)
    print(table(rows))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | neuron | T | mode | per-channel | qat | seed | acc | torch acc | agree |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['neuron']} | {r['T']} | {r['mode']} | {r['per_channel']} | {r['qat']} | "
                     f"{r['seed']} | {100 * r['acc']:.1f} | {100 * r['torch_acc']:.1f} | {100 * r['agree']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
