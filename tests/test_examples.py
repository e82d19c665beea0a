"""The examples run end to end (the README's demo is examples/quickstart.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_quickstart_runs_and_reports() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--steps", "8", "--hidden", "64"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout
    assert "accuracy" in out
    assert "100.0000% identical spikes" in out
    assert "Effective_ACs" in out
