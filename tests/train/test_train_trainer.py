"""DSR trainer, configs, checkpoints and models: exact resume, atomic writes, schedule,
augmentation, the CLI, and every registered DSR architecture building and training a step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from snnsim.models import create_model, list_models
from snnsim.nn.layers import DSRNeuron
from snnsim.nn.net import DSRNet
from snnsim.train.__main__ import main as cli_main
from snnsim.train.checkpoint import (
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from snnsim.train.configs import CONFIGS, TrainConfig, get_config
from snnsim.train.trainer import Trainer, augment_batch, lr_at

TINY = TrainConfig(
    name="tiny",
    model="dsr-mlp",
    dataset="synthetic",
    neuron="if",
    T=3,
    epochs=3,
    batch_size=16,
    eval_batch_size=24,
    lr=0.05,
    crop_padding=1,
    flip=True,
    warmup_epochs=0.5,
    seed=7,
    num_threads=1,
    model_kwargs={"in_features": 144, "hidden": (16,), "num_classes": 4, "theta0": 1.0},
)


def _strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if "sec" not in k} for h in history]  # timings differ


def test_resume_continues_exactly(tmp_path: Path) -> None:
    full = Trainer(TINY, tmp_path / "full", progress=False)
    full.fit(log=None)

    part = Trainer(TINY, tmp_path / "part", progress=False)
    part.fit(log=None, stop_after=1)  # an interrupted run: checkpoint after epoch 1
    del part
    resumed = Trainer(TINY, tmp_path / "part", progress=False)
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit(log=None)
    assert _strip(resumed.history) == _strip(full.history)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert set(metrics["epochs"][0]["firing_rates"]) == {n for n, _ in full.model.neurons()}


def test_cli_trains_resumes_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    CONFIGS["tiny-test"] = TINY.with_(name="tiny-test")
    try:
        out = tmp_path / "run"
        assert (
            cli_main(
                ["--config", "tiny-test", "--epochs", "2", "--stop-after", "1", "--out", str(out)]
                + ["--no-progress"]
            )
            == 0
        )
        assert (
            cli_main(
                [
                    "--config",
                    "tiny-test",
                    "--epochs",
                    "2",
                    "--out",
                    str(out),
                    "--resume",
                    "--no-progress",
                ]
            )
            == 0
        )
        assert "resumed after epoch 1" in capsys.readouterr().out
        metrics = json.loads((out / "metrics.json").read_text())
        assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
        assert cli_main(["--list"]) == 0
        assert "dsr-cifar10-preresnet18-if-t20" in capsys.readouterr().out
        assert cli_main(["--config", "no-such-config"]) == 2
    finally:
        del CONFIGS["tiny-test"]


def test_paper_configs_exist_and_refuse_without_gpu_or_data(tmp_path: Path) -> None:
    for name in (
        "dsr-cifar10-preresnet18-if-t20",
        "dsr-dvscifar10-vgg11-lif-t20",
        "dsr-mnist5k-cnn-if-t5",
        "dsr-cifar100-preresnet18-lif-t10",
        "dsr-cifar10-preresnet56-if-t20",
        "ann-mnist5k-cnn-lr005",
    ):
        get_config(name)
    c = get_config("dsr-dvscifar10-vgg11-lif-t20")
    assert c.model == "dsr-vgg11" and c.T == 20 and c.neuron == "lif" and c.requires_gpu
    if not torch.cuda.is_available():
        assert cli_main(["--config", "dsr-cifar10-preresnet18-if-t20", "--out", str(tmp_path)]) == 2
    rc = cli_main(
        [
            "--config",
            "dsr-cifar10-preresnet18-if-t20",
            "--out",
            str(tmp_path),
            "--force",
            "--data-root",
            str(tmp_path / "missing"),
            "--epochs",
            "1",
        ]
    )
    assert rc != 0


def test_atomic_writes_leave_old_file_on_failure(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    write_json_atomic(p, {"a": 1})

    def boom(f) -> None:
        f.write("partial")
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom, mode="w")
    assert json.loads(p.read_text()) == {"a": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["m.json"]
    save_checkpoint(tmp_path / "c.pt", {"x": torch.arange(3), "epoch": 2})
    st = load_checkpoint(tmp_path / "c.pt")
    assert st["epoch"] == 2 and torch.equal(st["x"], torch.arange(3))


def test_lr_schedule_warmup_then_cosine() -> None:
    assert lr_at(0, 100, 10, 1.0, "cosine") == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert lr_at(10, 100, 10, 1.0, "cosine") == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, "cosine") == pytest.approx(0.5)
    assert lr_at(99, 100, 0, 1.0, "cosine") < 1e-3
    assert lr_at(50, 100, 0, 0.3, "constant") == 0.3


def test_augment_crop_and_flip() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4) + 1
    g = torch.Generator().manual_seed(0)
    y = augment_batch(x, 0, True, g)
    for i in range(2):
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1))
    z = augment_batch(x, 2, False, torch.Generator().manual_seed(1))
    assert z.shape == x.shape
    for i in range(2):  # every crop is a shifted window of the zero-padded image
        xp = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        assert any(
            torch.equal(z[i], xp[:, a : a + 4, b : b + 4]) for a in range(5) for b in range(5)
        )
    seq = torch.rand(3, 5, 2, 6, 6)  # [B, T, C, H, W]: one crop per sample for all steps
    s = augment_batch(seq, 1, True, torch.Generator().manual_seed(2))
    assert s.shape == seq.shape


@pytest.mark.parametrize(
    "name,shape,T,kw",
    [
        ("dsr-mlp", (2, 1, 28, 28), 2, {}),
        ("dsr-mnist-cnn", (2, 1, 28, 28), 2, {}),
        ("dsr-vgg11", (2, 2, 2, 16, 16), 2, {"image_size": 16}),
        ("dsr-preresnet20", (2, 3, 16, 16), 2, {"image_size": 16}),
        ("dsr-preresnet18", (2, 3, 16, 16), 1, {"image_size": 16}),
        ("dsr-cifarnet", (2, 3, 16, 16), 1, {"image_size": 16}),
    ],
)
def test_models_build_and_train_a_step(name: str, shape: tuple[int, ...], T: int, kw: dict) -> None:
    torch.manual_seed(0)
    neurons = ("if", "lif") if name in ("dsr-mlp", "dsr-mnist-cnn", "dsr-preresnet20") else ("lif",)
    for neuron in neurons:
        m = create_model(name, neuron=neuron, T=T, **kw)
        assert isinstance(m, DSRNet) and m.T == T
        m.train()
        out = m(torch.rand(shape))
        assert out.shape == (2, 10)
        out.sum().backward()
        assert all(n.theta.grad is not None for _, n in m.neurons())
        assert set(m.firing_rates()) == {n for n, _ in m.neurons()}
    ann = create_model(name, neuron="relu", T=T, **kw)
    assert not any(isinstance(x, DSRNeuron) for x in ann.modules())
    assert ann(torch.rand(shape)).shape == (2, 10)


def test_registry_lists_paper_architectures() -> None:
    names = set(list_models())
    for n in (
        "dsr-mlp",
        "dsr-mnist-cnn",
        "dsr-cifarnet",
        "dsr-vgg11",
        "dsr-preresnet18",
        "dsr-preresnet20",
        "dsr-preresnet32",
        "dsr-preresnet44",
        "dsr-preresnet56",
        "dsr-preresnet110",
    ):
        assert n in names
    m = create_model("dsr-preresnet110", T=1)
    assert sum(1 for x in m.modules() if type(x).__name__ == "PreActBlock") == 54
    cnn = create_model("dsr-mnist-cnn", T=5)
    assert [
        tuple(p.shape) for p in (cnn.body[0].weight, cnn.body[4].weight, cnn.body[9].weight)
    ] == [(32, 1, 3, 3), (64, 32, 3, 3), (10, 3136)]
    vgg = create_model("dsr-vgg11", T=2)
    assert sum(1 for x in vgg.modules() if type(x).__name__ == "DropoutT") == 8
