"""``snnsim.export`` / ``load_trained`` rebuild the model of any registry run from its checkpoint:
the model's factory gets only the arguments it takes (Dspike models take no ``neuron``/``mode``),
and a resumed run's recorded configuration changes are applied."""

from __future__ import annotations

from pathlib import Path

import torch

from snnsim.exporter import load_trained
from snnsim.models import create_model
from snnsim.train.checkpoint import save_checkpoint
from snnsim.train.configs import get_config, model_kwargs


def _fake_run(tmp: Path, name: str, changes: list | None = None) -> tuple[Path, torch.nn.Module]:
    cfg = get_config(name)
    torch.manual_seed(0)
    model = create_model(cfg.model, **model_kwargs(cfg))
    st = {"config": cfg.to_dict(), "model": model.state_dict(), "epoch": 1, "history": []}
    if changes:
        st["config_changes"] = changes
    run = tmp / name
    run.mkdir()
    save_checkpoint(run / "checkpoint.pt", st)
    return run, model


def test_dspike_run_rebuilds_with_its_own_factory_arguments(tmp_path: Path) -> None:
    run, model = _fake_run(tmp_path, "dspike-mnist5k-cnn-fixed-t4")
    got = load_trained(run).model
    assert type(got) is type(model)
    for k, v in model.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k


def test_recorded_config_changes_are_applied(tmp_path: Path) -> None:
    run, _ = _fake_run(
        tmp_path,
        "dsr-mnist5k-cnn-if-t5",
        changes=[{"after_epoch": 1, "changes": {"epochs": {"from": 15, "to": 20}}}],
    )
    assert load_trained(run).config["epochs"] == 20
