"""Crash-safe training: non-finite losses, gradients and parameters stop training with a clear
message and leave the last good checkpoint untouched; ``--resume`` refuses a changed
configuration unless told otherwise and never rewrites the recorded seed; checkpoints load
with ``weights_only=True`` and a corrupt one is reported with its path; configurations are
validated field by field."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from snnsim.train.__main__ import main as cli_main
from snnsim.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from snnsim.train.configs import TrainConfig, load_config_file
from snnsim.train.distributed import DistContext
from snnsim.train.trainer import ConfigMismatch, Trainer, TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = TrainConfig(
    name="tiny-safety",
    model="dsr-mlp",
    dataset="synthetic",
    neuron="if",
    T=3,
    epochs=3,
    batch_size=16,
    eval_batch_size=24,
    lr=0.05,
    seed=7,
    num_threads=1,
    model_kwargs={"in_features": 144, "hidden": (16,), "num_classes": 4},
)


def _data(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 1, 12, 12, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    return TensorDataset(x[:48].clone(), y[:48].clone()), TensorDataset(x[48:], y[48:])


class _Fixed(DistContext):
    pass


def test_nan_in_the_data_stops_training_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    train_ds, test_ds = _data()
    Trainer(TINY, tmp_path, progress=False, datasets=(train_ds, test_ds)).fit(
        log=None, stop_after=1
    )
    ckpt, metrics = tmp_path / "checkpoint.pt", tmp_path / "metrics.json"
    before = ckpt.read_bytes(), metrics.read_bytes()

    train_ds.tensors[0][5, 0, 3, 3] = float("nan")  # the training data goes bad
    tr = Trainer(TINY, tmp_path, progress=False, datasets=(train_ds, test_ds))
    assert tr.resume() and tr.epoch == 1
    good = {k: v.clone() for k, v in tr.model.state_dict().items()}
    with pytest.raises(TrainingDiverged) as err:
        tr.fit(log=None)
    msg = str(err.value)
    # a NaN current fires no DSR spike, so the loss stays finite; its gradient does not
    assert "non-finite gradient of body.1.weight" in msg and "at epoch 2" in msg
    assert "input batch holds 1 NaN/inf values: the training data is not finite" in msg
    assert f"after epoch 1) is kept at {ckpt}" in msg
    assert (ckpt.read_bytes(), metrics.read_bytes()) == before  # nothing written
    # stopped before the optimiser step: the parameters in memory are still the good ones
    # (batch norm's running statistics saw the NaN batch, so only parameters are compared)
    for k, p in tr.model.named_parameters():
        assert torch.equal(p.detach(), good[k]), k


def test_nan_from_the_first_batch_says_no_checkpoint_exists(tmp_path: Path) -> None:
    train_ds, test_ds = _data()
    train_ds.tensors[0][:] = float("inf")
    with pytest.raises(TrainingDiverged, match="no epoch had finished"):
        Trainer(TINY, tmp_path, progress=False, datasets=(train_ds, test_ds)).fit(log=None)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_exploding_gradients_stop_before_the_parameters_change(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"non-finite gradient of body\.\d+\.\w+") as err:
        Trainer(TINY.with_(lr=1e30), tmp_path, progress=False).fit(log=None)
    assert "the parameters were not updated" in str(err.value)


def test_cli_exits_3_with_one_line_when_training_diverges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.json"
    d = TINY.with_(lr=1e30).to_dict()
    cfg.write_text(json.dumps(d))
    rc = cli_main(["--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: [tiny-safety] training stopped")


def test_resume_refuses_a_changed_configuration(tmp_path: Path) -> None:
    Trainer(TINY, tmp_path, progress=False).fit(log=None, stop_after=1)
    for change, text in (
        ({"seed": 8}, "seed: 7 -> 8"),
        ({"epochs": 5}, "epochs: 3 -> 5"),
        ({"lr": 0.1, "T": 4}, "T: 3 -> 4; lr: 0.05 -> 0.1"),
    ):
        with pytest.raises(ConfigMismatch, match=text):
            Trainer(TINY.with_(**change), tmp_path, progress=False).resume()
    # where and how the run executes may change
    tr = Trainer(TINY.with_(num_threads=2, eval_batch_size=7, name="x"), tmp_path, progress=False)
    assert tr.resume() and tr.epoch == 1


def test_allowed_config_change_is_recorded_and_keeps_the_seed(tmp_path: Path) -> None:
    Trainer(TINY, tmp_path, progress=False).fit(log=None, stop_after=1)
    tr = Trainer(TINY.with_(seed=8, epochs=2), tmp_path, progress=False)
    assert tr.resume(allow_config_change=True)
    tr.fit(log=None)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["config"]["seed"] == 7 and m["config"]["epochs"] == 3  # as the run started
    assert m["config_changes"] == [
        {
            "after_epoch": 1,
            "changes": {"epochs": {"from": 3, "to": 2}, "seed": {"from": 7, "to": 8}},
        }
    ]
    st = load_checkpoint(tmp_path / "checkpoint.pt")
    assert st["config"]["seed"] == 7 and st["epoch"] == 2
    # the next resume compares with the changed configuration
    assert Trainer(TINY.with_(seed=8, epochs=2), tmp_path, progress=False).resume()
    with pytest.raises(ConfigMismatch, match="seed: 8 -> 7"):
        Trainer(TINY.with_(epochs=2), tmp_path, progress=False).resume()


def test_cli_resume_with_another_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY.to_dict()))
    base = ["--config", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]
    assert cli_main(base + ["--stop-after", "1"]) == 0
    capsys.readouterr()
    assert cli_main(base + ["--resume", "--seed", "9"]) == 2
    err = capsys.readouterr().err
    assert "seed: 7 -> 9" in err and "--allow-config-change" in err
    assert cli_main(base + ["--resume", "--seed", "9", "--allow-config-change"]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["config"]["seed"] == 7 and m["config_changes"][0]["changes"]["seed"]["to"] == 9


@pytest.mark.parametrize(
    "kind", ["truncated", "random", "code", "pickle", "not-a-dict", "no-model"]
)
def test_corrupt_checkpoints_are_reported_with_their_path(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    Trainer(TINY, run, progress=False).fit(log=None, stop_after=1)
    path = run / "checkpoint.pt"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "random":
        path.write_bytes(torch.randint(0, 256, (5000,), dtype=torch.uint8).numpy().tobytes())
    elif kind == "code":  # an object weights_only refuses to rebuild
        torch.save({"model": _Fixed()}, path)
    elif kind == "pickle":  # a plain pickle, not torch's format
        path.write_bytes(pickle.dumps({"model": _Fixed()}))
    elif kind == "not-a-dict":
        save_checkpoint(path, [1, 2, 3])  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    else:
        save_checkpoint(path, {"epoch": 1})
    with pytest.raises(CheckpointError, match=str(path)):
        Trainer(TINY, run, progress=False).resume()
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY.to_dict()))
    capsys.readouterr()
    rc = cli_main(["--config", str(cfg), "--out", str(run), "--resume", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]


def test_load_checkpoint_is_weights_only(tmp_path: Path) -> None:
    p = tmp_path / "c.pt"
    torch.save({"model": _Fixed()}, p)
    with pytest.raises(CheckpointError, match="refused by weights_only loading") as err:
        load_checkpoint(p)
    assert "_Fixed" in str(err.value) and "\x1b" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"T": -1}, "T"),
        ({"epochs": -2}, "epochs"),
        ({"dtype": "float16"}, "dtype"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"lr": 0.0}, "lr"),
        ({"n_train": 0}, "n_train"),
    ],
)
def test_bad_config_fields_are_named(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        TINY.with_(**change)


def test_config_file_unknown_field_is_named(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({**TINY.to_dict(), "learning_rate": 0.1}))
    with pytest.raises(ValueError, match="learning_rate"):
        load_config_file(p)
    p.write_text(json.dumps(TINY.to_dict()))
    back = load_config_file(p)
    assert back.with_(model_kwargs=TINY.model_kwargs) == TINY
    assert back.model_kwargs["hidden"] == [16]


def test_combined_batch_must_split_over_the_processes() -> None:
    with pytest.raises(ValueError, match="batch_size=16 .* 3 processes"):
        Trainer(TINY, progress=False, dist=DistContext(rank=0, world_size=3))


def test_cli_no_tf32_turns_tf32_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(TINY.with_(epochs=1).to_dict()))
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        args = ["--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]
        assert cli_main(args + ["--no-tf32"]) == 0
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
