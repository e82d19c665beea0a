"""Dspike experiments through the one trainer and registry: ``--list`` shows every
configuration (DSR, ANN twins, Dspike) with dataset, T, epochs and parameter count; the
temperature search runs at every epoch start with a progress bar, is saved in checkpoints and
can be split over processes by coordinate shards; Time Inheritance through ``init_from``;
the SYNTHETIC N-MNIST data comes from the disk cache after its first generation."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from snnsim.models import create_model
from snnsim.nn.dspike import DspikeNet
from snnsim.train.__main__ import main as cli_main
from snnsim.train.checkpoint import load_checkpoint
from snnsim.train.configs import (
    CONFIGS,
    TrainConfig,
    describe_configs,
    get_config,
    list_configs,
    model_kwargs,
)
from snnsim.train.dspike import temperature_search
from snnsim.train.dspike_experiment import ExperimentConfig, run_experiment
from snnsim.train.fdg import finite_difference_grad
from snnsim.train.trainer import Trainer, load_datasets

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# the module (snnsim.data re-exports its function under the same name)
synth = importlib.import_module("snnsim.data.synthetic_nmnist")

SMALL = TrainConfig(
    name="dspike-small",
    model="dspike-mnist-cnn",
    dataset="synthetic",
    neuron="dspike",
    T=2,
    model_kwargs={"in_channels": 1, "image_size": 12, "channels": (3, 4), "num_classes": 4},
    epochs=2,
    batch_size=8,
    optimizer="adam",
    lr=5e-3,
    weight_decay=0.0,
    seed=1,
    num_threads=1,
    temperature_search=True,
    fdg_batch=4,
    fdg_chunk=8,
)


def test_one_registry_lists_dsr_ann_and_dspike(capsys: pytest.CaptureFixture[str]) -> None:
    names = list_configs()
    families = {get_config(n).family for n in names}
    assert families == {"dsr", "ann", "dspike"}
    for method in ("adaptive", "fixed", "rect", "triangle"):
        for T in (6, 4, 2):
            for ds in ("mnist5k", "snmnist"):
                cfg = get_config(f"dspike-{ds}-cnn-{method}-t{T}")
                assert cfg.temperature_search == (method == "adaptive")
    rows = {r["name"]: r for r in describe_configs()}
    assert set(rows) == set(names)
    # the meta-device counts equal the parameters of the built models
    for name in ("dspike-snmnist-cnn-adaptive-t4", "dsr-mnist5k-cnn-if-t5", "ann-mnist5k-cnn-lr01"):
        cfg = get_config(name)
        model = create_model(cfg.model, **model_kwargs(cfg))
        assert rows[name]["params"] == sum(p.numel() for p in model.parameters()) > 0
        assert (rows[name]["dataset"], rows[name]["T"]) == (cfg.dataset, cfg.T)
        assert rows[name]["epochs"] == cfg.epochs
    assert rows["dspike-snmnist-cnn-adaptive-t4"]["dataset"] == "synthetic-nmnist"
    assert cli_main(["--list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["name", "family", "dataset", "T", "epochs", "params", "GPU"]
    line = next(ln for ln in out.splitlines() if ln.startswith("dspike-mnist5k-cnn-rect-t6 "))
    assert line.split()[1:6] == [
        "dspike",
        "mnist5k",
        "6",
        "3",
        f"{rows[line.split()[0]]['params']:,}",
    ]


def _images(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    proto = torch.rand(4, 1, 12, 12, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    return TensorDataset((0.7 * proto[y] + 0.3 * torch.rand(n, 1, 12, 12, generator=g)), y)


def test_trainer_runs_the_temperature_search_each_epoch_with_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (_images(24, 0), _images(16, 1))
    tr = Trainer(SMALL, tmp_path, progress=True, datasets=data)
    tr.fit(log=print)
    captured = capsys.readouterr()
    assert "temperature search (epoch 1)" in captured.err and "temperature search (epoch 2)" in (
        captured.err
    )
    assert " b " in captured.out  # the epoch line shows the temperature
    hist = tr.history
    assert [len(h["temperature_cosines"]) for h in hist] == [3, 3]
    for h in hist:  # the chosen candidate has the best cosine
        best = h["temperature_candidates"][int(np.argmax(h["temperature_cosines"]))]
        assert h["temperature"] == best
    st = load_checkpoint(tmp_path / "checkpoint.pt")
    assert st["temperature"] == hist[-1]["temperature"] == tr.model.temperature
    resumed = Trainer(SMALL.with_(epochs=2), tmp_path, progress=False, datasets=data)
    resumed.model.temperature = 9.0
    assert resumed.resume() and resumed.model.temperature == st["temperature"]


def test_fixed_temperature_configs_do_not_search() -> None:
    data = (_images(16, 0), _images(8, 1))
    tr = Trainer(SMALL.with_(temperature_search=False), None, progress=False, datasets=data)
    tr.fit(log=None)
    assert all("temperature_cosines" not in h for h in tr.history)
    assert {h["temperature"] for h in tr.history} == {1.0}


def test_temperature_search_shards_sum_to_the_whole_search() -> None:
    torch.manual_seed(0)
    model: DspikeNet = create_model(  # type: ignore[assignment]  # the registry returns nn.Module; these are Dspike networks / tensor datasets
        "dspike-mnist-cnn", T=2, image_size=8, channels=(3, 4), num_classes=4
    )
    x = torch.rand(6, 1, 8, 8)
    y = torch.randint(0, 4, (6,))
    whole = temperature_search(model, x, y, chunk=8, apply=False)
    parts: list[torch.Tensor] = []
    done: list[int] = []

    def collect(g: torch.Tensor) -> torch.Tensor:
        parts.append(g.clone())
        return g

    for r in range(3):  # three "processes": each computes its block, reduce = keep it
        temperature_search(
            model, x, y, chunk=8, apply=False, shard=(r, 3), reduce=collect, progress=done.append
        )
    n = model.first_layer().weight.numel()
    assert sum(done) == n  # every coordinate reported once
    fdg = sum(parts)
    nonzero = [(p != 0).reshape(-1) for p in parts]
    assert not (nonzero[0] & nonzero[1]).any()  # disjoint blocks
    ref = finite_difference_grad(
        model.first_layer().weight,
        0.1,
        batched_loss_fn=lambda d: model.first_layer_losses(x, y, d),
        chunk=8,
    )
    torch.testing.assert_close(fdg, ref, rtol=1e-5, atol=1e-6)
    assert whole.b in whole.candidates
    with pytest.raises(ValueError, match="shard"):
        temperature_search(model, x, y, shard=(3, 3))


def test_run_experiment_goes_through_the_trainer_with_tit(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    xtr, ytr = torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)
    xte, yte = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    data = (xtr, ytr, xte, yte)
    cfg = ExperimentConfig(method="dspike-adaptive", T=3, epochs=1, batch_size=16, fdg_batch=4)
    row = run_experiment(cfg, log=lambda s: None, data=data, save_to=tmp_path / "t3.pt")
    assert row["method"] == "dspike-adaptive" and len(row["temperatures"]) == 1
    assert len(row["cosines"][0]) == 3 and 0.0 <= row["acc"] <= 1.0
    src = load_checkpoint(tmp_path / "t3.pt")
    tit = run_experiment(
        ExperimentConfig(method="dspike-fixed", T=2, epochs=1, batch_size=16, tit_from=3),
        log=lambda s: None,
        init_state=src,
        data=data,
    )
    assert tit["method"] == "dspike-fixed+tit3" and "acc_inherited" in tit
    assert tit["temperatures"] == [src["b"]]  # inherited, not searched


def test_init_from_a_checkpoint_is_time_inheritance(tmp_path: Path) -> None:
    data = (_images(16, 0), _images(8, 1))
    src = Trainer(SMALL.with_(T=3), tmp_path / "t3", progress=False, datasets=data)
    src.fit(log=None)
    tit = Trainer(
        SMALL.with_(T=2, init_from=str(tmp_path / "t3")), None, progress=False, datasets=data
    )
    assert tit.model.T == 2 and tit.model.temperature == src.model.temperature
    for (k, a), b in zip(
        src.model.state_dict().items(), tit.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="init_from: the weights in"):
        Trainer(
            SMALL.with_(model_kwargs={**SMALL.model_kwargs, "channels": (5, 4)}).with_(
                init_from=str(tmp_path / "t3")
            ),
            None,
            progress=False,
            datasets=data,
        )


def test_event_data_is_generated_once_then_read_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path))
    calls: list[int] = []
    real = synth.synthesize_events

    def counting(images, *a, **kw):
        calls.append(len(images))
        return real(images, *a, **kw)

    monkeypatch.setattr(synth, "synthesize_events", counting)
    cfg = get_config("dspike-snmnist-cnn-fixed-t2").with_(n_train=6, n_test=4, epochs=1)
    tr1, te1 = load_datasets(cfg)
    assert sum(calls) == 10
    assert tr1.tensors[0].shape == (6, 2, 2, 34, 34)  # type: ignore[attr-defined]  # the registry returns nn.Module; these are Dspike networks / tensor datasets
    tr2, te2 = load_datasets(cfg.with_(T=3))  # another binning of the same events: cached
    assert sum(calls) == 10
    assert tr2.tensors[0].shape == (6, 3, 2, 34, 34)  # type: ignore[attr-defined]  # the registry returns nn.Module; these are Dspike networks / tensor datasets
    assert torch.equal(tr1.tensors[1], tr2.tensors[1])  # type: ignore[attr-defined]  # the registry returns nn.Module; these are Dspike networks / tensor datasets
    assert sorted(p.suffix for p in (tmp_path / "data").iterdir()) == [".json"] * 2 + [".npz"] * 2
    # a Dspike event model trains on it through the trainer
    model = Trainer(cfg, None, progress=False, datasets=(tr1, te1))
    model.fit(log=None)
    assert model.history[-1]["test_acc"] is not None


def test_indices_subset_equals_the_full_split_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNNSIM_CACHE", str(tmp_path))
    full = synth.synthetic_nmnist("train", n=10, cache=False)
    sub = synth.synthetic_nmnist("train", indices=[7, 2, 9])
    assert list(sub.labels) == [full.labels[i] for i in (7, 2, 9)]
    for a, i in zip(sub.events, (7, 2, 9), strict=True):
        assert np.array_equal(a, full.events[i])
    with pytest.raises(ValueError, match="indices must be in"):
        synth.synthetic_nmnist("train", indices=[4000])


def test_registry_configs_train_a_step() -> None:
    """Dspike registry configurations build and take a backward pass on their input shape
    (static images, event frames)."""
    for name in ("dspike-mnist5k-cnn-triangle-t2", "dspike-snmnist-cnn-rect-t2"):
        cfg = get_config(name)
        model = create_model(cfg.model, **model_kwargs(cfg))
        shape = (4, 1, 28, 28) if cfg.dataset == "mnist5k" else (4, cfg.T, 2, 34, 34)
        out = model(torch.rand(shape))
        F.cross_entropy(out, torch.randint(0, 10, (4,))).backward()
        assert out.shape == (4, 10)
    assert "dspike-mnist5k-cnn-adaptive-t4" in CONFIGS
    json.dumps(describe_configs(["dspike-mnist5k-cnn-adaptive-t4"]))
