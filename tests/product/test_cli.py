"""The ``snnsim`` command: every subcommand on a real training run and real files, in a
subprocess (as a user runs it), with the documented exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snnsim.cli import EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_USAGE
from snnsim.data import load_digits_split

ROOT = Path(__file__).parents[2]


def snnsim_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(
        [sys.executable, "-m", "snnsim", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = load_digits_split("test")
    p = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(p, x=x[:120], y=y[:120])
    return p


def test_help_lists_commands_and_exit_codes():
    r = snnsim_cmd("--help")
    assert r.returncode == 0
    for c in ("demo", "train", "export", "run", "report", "verify", "bench", "info"):
        assert c in r.stdout
    assert "exit codes" in r.stdout
    for c in ("run", "export", "verify", "bench", "info", "report", "demo"):
        sub = snnsim_cmd(c, "--help")
        assert sub.returncode == 0 and "usage: snnsim " + c in sub.stdout
    assert snnsim_cmd().returncode == EXIT_USAGE


def test_train_delegates_to_the_training_entry():
    r = snnsim_cmd("train", "--list")
    assert r.returncode == 0
    assert "dsr-mnist5k-cnn-if-t5" in r.stdout
    bad = snnsim_cmd("train", "--config", "no-such-config")
    assert bad.returncode != 0 and "no-such-config" in bad.stderr


def test_export_info_run_verify_bench(run_dir: Path, tmp_path: Path, digits_npz: Path):
    out = tmp_path / "m.snn.safetensors"
    r = snnsim_cmd("export", str(run_dir), str(out), "--mode", "int8")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and str(out) in r.stdout

    info = snnsim_cmd("info", str(out))
    assert info.returncode == 0 and "body.1, body.2" in info.stdout and "[1, 8, 8]" in info.stdout
    j = json.loads(snnsim_cmd("info", str(out), "--json").stdout)
    assert j["T"] == 5 and j["precision"] == "int"
    ck = snnsim_cmd("info", str(run_dir))
    assert ck.returncode == 0 and "training run" in ck.stdout and "snnsim export" in ck.stdout

    run = snnsim_cmd("run", str(out), str(digits_npz), "--json")
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["run"]["samples"] == 120 and d["run"]["steps"] == 5
    assert 0.5 < d["run"]["accuracy"] <= 1.0
    assert set(d["firing_rates"]) == {"sn1", "sn2"}
    assert d["counts_per_sample"]["fc2"]["sops"] > 0
    text = snnsim_cmd("run", str(out), "digits", "--limit", "50")
    assert text.returncode == 0 and "Firing" not in text.stderr and "accuracy" in text.stdout

    ver = snnsim_cmd("verify", str(out), str(digits_npz), "--json")
    assert ver.returncode == 0, ver.stderr
    v = json.loads(ver.stdout)
    assert v["bit_exact"] is True and v["engine_vs_torch"] is not None
    assert v["agreement_torch"] > 0.9

    b = snnsim_cmd("bench", str(out), str(digits_npz), "--json", "--repeats", "1")
    assert b.returncode == 0, b.stderr
    bd = json.loads(b.stdout)
    assert bd["engine_us_per_sample"] > 0 and bd["torch_us_per_sample"] > 0

    rep = snnsim_cmd("report", str(out), str(digits_npz), "--out", str(tmp_path / "rep"), "--quiet")
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "rep" / "report.html").is_file()


def test_errors_are_one_line_with_exit_codes(run_dir: Path, tmp_path: Path, digits_npz: Path):
    missing = snnsim_cmd("info", str(tmp_path / "nope.snn.safetensors"))
    assert missing.returncode == EXIT_NOT_FOUND
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    not_model = snnsim_cmd("run", str(run_dir), str(digits_npz))
    assert not_model.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in not_model.stderr and "snnsim export" in not_model.stderr
    assert len(not_model.stderr.strip().splitlines()) == 1

    garbage = tmp_path / "garbage.snn.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    bad = snnsim_cmd("info", str(garbage))
    assert bad.returncode == EXIT_BAD_INPUT and "Traceback" not in bad.stderr

    debug = snnsim_cmd("info", str(garbage), "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr

    usage = snnsim_cmd("run")
    assert usage.returncode == EXIT_USAGE


def test_run_on_event_recordings(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import snnsim
    from snnsim.cli import main
    from snnsim.data import make_events

    rng = np.random.default_rng(0)
    g = snnsim.Graph(input_shape=(2, 6, 6), input_kind="events")
    g.flatten("flat", "input")
    g.linear("fc", "flat", rng.normal(0.4, 0.2, (5, 72)).astype(np.float32))
    g.dsr_if("sn", "fc", theta=1.0, fire=1.0)
    g.set_output("sn")
    model = tmp_path / "ev.snn.safetensors"
    snnsim.save(g, model)
    files = []
    for k, n in enumerate((300, 120)):
        ev = make_events(
            rng.integers(0, 6, n),
            rng.integers(0, 6, n),
            rng.integers(0, 2, n),
            np.sort(rng.integers(0, 50_000, n)),
        )
        files.append(tmp_path / f"rec{k}.npy")
        np.save(files[-1], ev)
    code = main(["run", str(model), *map(str, files), "--steps", "10", "--json"])
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["run"]["samples"] == 2 and d["run"]["steps"] == 10
    assert d["counts_per_sample"]["sn"]["spikes"] > 0
    # a hand-built file records no T: without --steps the error says what is missing
    code = main(["run", str(model), *map(str, files)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "steps" in err and len(err.strip().splitlines()) == 1


def test_demo_trains_exports_verifies_reports_and_reuses_the_run(tmp_path: Path):
    """The demo end to end at CI size (1 epoch, 200 test images); a second call reuses the
    finished training run."""
    out = tmp_path / "demo"
    args = ("demo", "--out", str(out), "--epochs", "1", "--samples", "200", "--no-progress")
    r = snnsim_cmd(*args)
    assert r.returncode == 0, r.stderr
    for text in (
        "epoch 1/1",
        "engine == integer reference",
        "identical spikes in every layer",
        "predictions equal to the torch",
        "energy per inference",
    ):
        assert text in r.stdout, text
    folder = Path(r.stdout.strip().splitlines()[-1])
    assert (folder / "report.html").is_file() and folder == (out / "report").resolve()
    d = json.loads((folder / "report.json").read_text())
    assert d["verify"]["bit_exact"] is True and d["verify"]["samples"] == 200
    again = snnsim_cmd(*args)
    assert again.returncode == 0 and "reusing the finished run" in again.stdout
    assert "epoch 1/1" not in again.stdout
