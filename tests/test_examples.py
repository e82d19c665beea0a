"""The examples run end to end (the README's demo is examples/quickstart.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_quickstart_runs_and_reports() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--steps",
            "8",
            "--hidden",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "accuracy" in out
    import re

    same = float(re.search(r"([0-9.]+)% identical spikes", out).group(1))
    assert same >= 99.9  # float32: flips only near the fire level (see tests/engine/test_parity.py)
    assert "Effective_ACs" in out
