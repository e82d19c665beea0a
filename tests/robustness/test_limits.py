"""The memory limit: its default, the environment variable, ``set_memory_limit``, and that it is
checked (and named) wherever the engine or the reference would allocate in proportion to an
argument."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import snnsim
from snnsim import InputError, LimitError

ROOT = Path(__file__).parents[2]


def child(code: str, **env: str) -> str:
    e = {k: v for k, v in os.environ.items() if k != "SNNSIM_MEMORY_LIMIT"}
    e.update(env)
    e["PYTHONPATH"] = str(ROOT / "python")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip()


SetLimit = Callable[[int | str | None], None]


@pytest.fixture
def limit() -> Iterator[SetLimit]:
    yield snnsim.set_memory_limit
    snnsim.set_memory_limit(None)


def test_default_is_at_most_8_gib_and_half_the_memory() -> None:
    out = child("import snnsim; print(snnsim.memory_limit())")
    assert 1 << 20 <= int(out) <= 8 << 30
    # half of a 4 GiB address space
    out = child(
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "import snnsim; print(snnsim.memory_limit())"
    )
    assert int(out) == 2 << 30


@pytest.mark.parametrize(
    ("value", "want"), [("512M", 512 << 20), ("1.5G", 3 << 29), ("4096", 4096)]
)
def test_environment_variable(value: str, want: int) -> None:
    out = child("import snnsim; print(snnsim.memory_limit())", SNNSIM_MEMORY_LIMIT=value)
    assert int(out) == want


def test_bad_environment_variable_is_named() -> None:
    out = child(
        "import snnsim\n"
        "try:\n    snnsim.memory_limit()\n"
        "except snnsim.InputError as e:\n    print(e)",
        SNNSIM_MEMORY_LIMIT="lots",
    )
    assert "SNNSIM_MEMORY_LIMIT" in out and "'lots' is not a byte count" in out


def test_set_memory_limit(limit: SetLimit) -> None:
    limit("16G")
    assert snnsim.memory_limit() == 16 << 30
    limit(12345)
    assert snnsim.memory_limit() == 12345
    for bad in (0, -1, "x", "12Q"):
        with pytest.raises(InputError, match="nbytes"):
            limit(bad)
    with pytest.raises(TypeError):
        limit(1.5)  # type: ignore[arg-type]  # deliberately wrong: the error is under test
    limit(None)
    assert snnsim.memory_limit() <= 8 << 30


def model() -> snnsim.Graph:
    g = snnsim.Graph(input_shape=(2, 4, 4), input_kind="events")
    g.flatten("f", "input")
    g.linear("fc", "f", np.ones((3, 32)))
    g.dsr_if("out", "fc", theta=1.0, fire=0.5)
    g.set_output("out")
    return g


def test_every_allocation_is_checked(limit: SetLimit) -> None:
    """One small limit; each path that allocates in proportion to an argument refuses."""
    limit(1 << 20)
    g = model()
    frames = np.zeros((1, 4, 2, 4, 4), np.float32)
    assert snnsim.run(g, frames).steps == 4  # small runs still work
    ev = np.zeros(2, [("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
    ev["t"] = [0, 5]
    with pytest.raises(LimitError, match="'steps'.*this run"):
        snnsim.run(g, ev, steps=100_000)
    with pytest.raises(LimitError, match="'steps'.*recording of 'out'"):
        snnsim.run(g, ev, steps=20_000, record="out")
    with pytest.raises(LimitError, match="'steps'.*this reference run"):
        snnsim.run(g, ev, steps=100_000, mode="reference")
    with pytest.raises(LimitError, match="'steps'.*binning these events"):
        snnsim.events.bin_events(ev, (2, 4, 4), 100_000)
    s = snnsim.Stream(g, dt_us=1)
    s.feed(ev[:1])
    late = ev[1:].copy()
    late["t"] = 10_000_000
    with pytest.raises(LimitError, match="'dt_us'.*stream step"):
        s.feed(late)
    with pytest.raises(LimitError, match="'frames'.*stream step"):
        snnsim.Stream(g).feed_frames(np.zeros((100_000, 2, 4, 4), np.float32))
    big = snnsim.Graph(input_shape=(1, 512, 512))
    big.conv2d("c", "input", np.ones((8, 1, 1, 1)))
    big.integrate("out", "c")
    big.set_output("out")
    with pytest.raises(LimitError, match="'model'.*compiling this network"):
        snnsim.run(big, np.zeros((1, 512, 512), np.float32), steps=1)
