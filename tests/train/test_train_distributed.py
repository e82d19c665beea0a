"""Distributed training: ``torchrun`` with two gloo processes on the CPU against one process.

* Two processes for a few steps give the same weights, thresholds, batch-norm running
  statistics, Dspike temperature (and search cosines) and per-epoch metrics as one process
  on the combined batch, for a DSR CNN (rate form with and without the time-chunked forward,
  exact batch-norm gradient, crops and flips), a DSR MLP (per-step backward, LIF), the ANN
  twin and a Dspike CNN with the temperature search. Everything runs in float64; the
  tolerance is 1e-9 relative to each tensor's largest magnitude (measured differences:
  1e-16 .. 1e-14); firing rates, float32 ratios per evaluation batch, 1e-6.
  Per-process batch-norm statistics (``sync_bn=False``) must differ (the comparison can
  fail).
* A checkpoint written by one process is resumed by two, and the run ends as an
  uninterrupted one-process run.
* A two-process ``python -m snnsim.train`` run killed with SIGKILL mid-training resumes with
  ``--resume`` and ends as the uninterrupted one-process run.

The scenarios run in one multi-node launch (two ``torchrun`` agents of one process each,
c10d rendezvous on this machine), the killed run in single-node launches
(``--standalone --nproc-per-node 2``); each launch costs a few seconds of interpreter
start-up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

import snnsim
from snnsim.train.checkpoint import load_checkpoint
from snnsim.train.configs import load_config_file
from snnsim.train.trainer import Trainer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _ddp_scenarios as scen  # noqa: E402 - importable once its folder is on sys.path

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()),
        reason="this torch build has no gloo backend",
    ),
]

RTOL = 1e-9
RTOL_RATES = 1e-6
PARITY = ["dsr-cnn", "dsr-cnn-rate", "dsr-mlp-step", "ann-mlp", "dspike-cnn"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    pkg_root = str(Path(snnsim.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _standalone() -> list[str]:
    """``torchrun --standalone --nproc-per-node 2``: one node, two processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def torchrun(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = _standalone() + args
    res = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    return res


def torchrun_two_nodes(args: list[str], timeout: float = 300) -> None:
    """Two torchrun agents of one process each meeting through the c10d rendezvous on this
    machine: the multi-node launch (``--nnodes 2``), each node holding ``LOCAL_RANK`` 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node"]
    cmd += ["1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    cmd += ["--rdzv-id", "snnsim-test"] + args
    nodes = [
        subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=timeout)[0].decode(errors="replace") for p in nodes]
    for p, log in zip(nodes, logs, strict=True):
        assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{log[-4000:]}"


def assert_close(a: Any, b: Any, where: str, rtol: float = RTOL) -> None:
    """Tensors: exact for integers, else within ``rtol`` of the largest magnitude; numbers and
    nested lists/dicts likewise. Firing rates are float32 ratios per evaluation batch (the
    batches differ between one and two processes): 1e-6."""
    if where.endswith("firing_rates"):
        rtol = RTOL_RATES
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype, where
        if not a.is_floating_point():
            assert torch.equal(a, b), where
            return
        scale = max(float(a.abs().max()), 1e-12) if a.numel() else 1.0
        err = float((a - b).abs().max()) if a.numel() else 0.0
        assert err <= rtol * scale, f"{where}: max diff {err:.3g} (scale {scale:.3g})"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}", rtol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{i}]", rtol)
    elif isinstance(a, float) and b is not None:
        assert abs(a - b) <= rtol * max(1.0, abs(a)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One two-node launch (two agents, c10d rendezvous): every parity scenario, the
    per-process-BN control, and a DSR and a Dspike run resumed from one-process checkpoints
    (written here, after 1 epoch)."""
    base = tmp_path_factory.mktemp("ddp")
    out = base / "results"
    out.mkdir()
    resume_specs = []
    for name in ("dsr-cnn", "dspike-cnn"):
        run_dir = base / f"one-process-{name}"
        cfg, data, model = scen.SCENARIOS[name]()
        Trainer(cfg, run_dir, progress=False, model=model, datasets=data).fit(
            log=None, stop_after=1
        )
        resume_specs.append(f"resume:{run_dir}:{name}")
    names = PARITY + ["dsr-cnn-local-bn"] + resume_specs
    torchrun_two_nodes([str(HERE / "_ddp_scenarios.py"), str(out)] + names)
    results = {}
    for f in out.glob("*.pt"):
        results[f.stem] = torch.load(f, weights_only=False)
    results["_base"] = base
    return results


@pytest.mark.parametrize("name", PARITY)
def test_two_processes_equal_one_process_on_the_combined_batch(
    two_process_runs: dict[str, Any], name: str
) -> None:
    ref = scen.run(name)
    for rank in (0, 1):
        got = two_process_runs[f"{name}-rank{rank}"]
        assert got["world_size"] == 2
        assert_close(ref["state"], got["state"], f"{name} rank {rank} state")
        assert_close(ref["history"], got["history"], f"{name} rank {rank} history")
        assert ref["temperature"] == got["temperature"]
    if name.startswith("dsr"):  # the thresholds moved, and moved the same way
        thr = [h["thresholds"] for h in ref["history"]]
        assert thr[0] != thr[-1]
    if name == "dspike-cnn":
        temps = [h["temperature"] for h in ref["history"]]
        assert len(temps) == 3 and all(t is not None for t in temps)
        assert all(len(h["temperature_cosines"]) == 3 for h in ref["history"])


def test_per_process_batch_norm_statistics_differ(two_process_runs: dict[str, Any]) -> None:
    ref = scen.run("dsr-cnn")
    got = two_process_runs["dsr-cnn-local-bn-rank0"]["state"]
    diff = max(
        float((ref["state"][k] - got[k]).abs().max())
        for k in ref["state"]
        if k.endswith("running_var")
    )
    assert diff > 1e-6  # the parity check above would catch missing synchronisation


@pytest.mark.parametrize("name", ["dsr-cnn", "dspike-cnn"])
def test_one_process_checkpoint_resumes_on_two_processes(
    two_process_runs: dict[str, Any], name: str
) -> None:
    ref = scen.run(name)
    for rank in (0, 1):
        got = two_process_runs[f"resume-{name}-rank{rank}"]
        assert_close(ref["state"], got["state"], f"resumed {name} state")
        assert_close(ref["history"], got["history"], f"resumed {name} history")
        assert ref["temperature"] == got["temperature"]
    metrics = json.loads(
        (two_process_runs["_base"] / f"one-process-{name}" / "metrics.json").read_text()
    )
    assert [e["world_size"] for e in metrics["epochs"]] == [1] + [2] * (len(ref["history"]) - 1)


KILL_CONFIG = {
    "name": "ddp-kill",
    "model": "dsr-mlp",
    "dataset": "synthetic",
    "neuron": "if",
    "T": 3,
    "model_kwargs": {"in_features": 144, "hidden": [16], "num_classes": 4},
    "epochs": 8,
    "batch_size": 8,
    "eval_batch_size": 24,
    "lr": 0.05,
    "crop_padding": 1,
    "flip": True,
    "seed": 11,
    "num_threads": 1,
    "dtype": "float64",
}


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``): torchrun starts each worker in a session
    of its own, so killing the launcher's process group would leave the workers running."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _kill_tree(pid: int) -> None:
    for p in reversed(_process_tree(pid)):  # workers first, then the launcher
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killed_two_process_run_resumes(tmp_path: Path) -> None:
    cfg_file = tmp_path / "kill.json"
    cfg_file.write_text(json.dumps(KILL_CONFIG))
    run = tmp_path / "run"
    args = ["-m", "snnsim.train", "--config", str(cfg_file), "--out", str(run), "--no-progress"]
    log = tmp_path / "killed-run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(_standalone() + args, env=_env(), stdout=sink, stderr=sink)
    killed_after = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            metrics = run / "metrics.json"
            done = len(json.loads(metrics.read_text())["epochs"]) if metrics.exists() else 0
            if done >= 2:
                _kill_tree(proc.pid)  # the launcher and both workers, as a crashed machine
                killed_after = done
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_after is None:
            _kill_tree(proc.pid)
        proc.wait(timeout=60)
    assert killed_after is not None, f"the run ended before it was killed:\n{log.read_text()}"
    at_kill = load_checkpoint(run / "checkpoint.pt")["epoch"]
    assert 2 <= at_kill < KILL_CONFIG["epochs"]

    torchrun(args + ["--resume"])
    final = load_checkpoint(run / "checkpoint.pt")
    assert final["epoch"] == KILL_CONFIG["epochs"] and final["world_size"] == 2

    ref = Trainer(load_config_file(cfg_file), tmp_path / "ref", progress=False)
    ref.fit(log=None)
    assert_close(ref.model.state_dict(), final["model"], "state after resume")
    assert_close(scen.strip(ref.history), scen.strip(final["history"]), "history")
